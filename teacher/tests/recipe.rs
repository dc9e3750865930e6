//! Each recipe plans its own sampling: the solvers it allows, its σ's, its NFE and its noises.

use teacher::edm::sigma_grid::SigmaGrid;
use teacher::edm::solver::Sampler;
use teacher::recipe::{Guidance, Recipe, WRange};

const W: WRange = WRange { min: 0.0, max: 4.0 };

#[test]
fn plans_count_nfe_and_noises_per_kind() {
    let grid = SigmaGrid::default();
    // A CFG teacher: 10 DPM-Solver++(2M) steps, 2 evaluations each at w = 2 → NFE 20;
    // at w = 1 the conditional model alone → NFE 10.
    let teacher = Recipe::Teacher { grid };
    let p = teacher.plan(10, Some(Sampler::Dpmpp2m), 2.0).unwrap();
    assert_eq!((p.nfe(), p.noises(), p.sigmas().len()), (20, 1, 11));
    assert_eq!(p.guidance, Guidance::Cfg(2.0));
    assert_eq!(
        teacher.plan(10, Some(Sampler::Dpmpp2m), 1.0).unwrap().nfe(),
        10
    );
    // Heun on a guided student: 2·5 − 1 = 9 calls, w as input (1 evaluation a call).
    let guided = Recipe::Guided { grid, w: W };
    assert_eq!(guided.plan(5, Some(Sampler::Heun), 2.0).unwrap().nfe(), 9);
    // Consistency: one evaluation and one noise per step (the first noise is the initial one).
    let cm = Recipe::Consistency { grid, w: W };
    let p = cm.plan(3, None, 2.0).unwrap();
    assert_eq!((p.nfe(), p.noises(), p.sampler()), (3, 3, None));
}

#[test]
fn a_recipe_refuses_what_it_was_not_made_for() {
    let grid = SigmaGrid::default();
    let prog = Recipe::Progressive {
        steps: 2,
        sigmas: vec![80.0, 1.2, 0.0],
        w: W,
    };
    let e = prog
        .plan(2, Some(Sampler::Heun), 2.0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`--sampler heun`") && e.contains("euler, ddim"),
        "{e}"
    );
    let e = prog.plan(4, None, 2.0).unwrap_err().to_string();
    assert!(e.contains("takes 2 steps"), "{e}");
    let e = prog.plan(2, None, 9.0).unwrap_err().to_string();
    assert!(e.contains("outside the range"), "{e}");
    let cm = Recipe::Consistency { grid, w: W };
    let e = cm
        .plan(2, Some(Sampler::Euler), 2.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("multistep consistency"), "{e}");
    let e = Recipe::Teacher { grid }
        .plan(0, None, 2.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 to 10000 steps"), "{e}");
    let e = Recipe::Teacher { grid }
        .plan(usize::MAX, None, 2.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 to 10000 steps"), "{e}");
    // The planned σ's are the distilled grid itself.
    assert_eq!(prog.plan(2, None, 2.0).unwrap().sigmas(), [80.0, 1.2, 0.0]);
}
