//! Students against closed forms: progressive targets, the consistency boundary condition, the
//! guided target, curricula — and tiny real distillation runs through the binary.

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use student::config::Metric;
use student::consistency::distance;
use student::guided_teacher::GuidedTeacher;
use student::progressive::{halve_grid, progressive_target};
use student::schedule::{GridSize, TargetEma};
use teacher::edm::precond::Precond;
use teacher::edm::sigma_grid::SigmaGrid;
use teacher::edm::solver::{Sigma, euler_step, heun_step};
use teacher::edm::{Cond, Denoiser, per_example};
use teacher::rng::{Stream, normals, rng};

use crate::fixtures::{device, err, fewstep, ok, perturbed_model, temp_dir, values};

/// The Gaussian-data denoiser with a w-dependent pull, D_w(x; σ) = x·σ_d²/(σ² + σ_d²)·(1 + w/10):
/// closed form, so the targets below need no training. (Any D_w works for the algebra tested.)
/// w comes per example in `cond.extra`, as for every guided denoiser.
struct IdealGuided;

impl Denoiser for IdealGuided {
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, cond: &Cond) -> Tensor<4> {
        let w = cond.extra.clone().expect("w per example");
        let sd2 = 0.25;
        let scale = (sigma.clone() * sigma)
            .add_scalar(sd2)
            .recip()
            .mul_scalar(sd2)
            * w.div_scalar(10.0).add_scalar(1.0);
        x * per_example::<4>(scale)
    }
}

fn t1(v: &[f64]) -> Tensor<1> {
    Tensor::<1>::from_data(
        TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [v.len()]),
        &device(),
    )
}

#[test]
fn one_student_step_with_the_progressive_target_lands_on_two_teacher_steps() {
    let d = device();
    // Per example (σ_i, σ_{i+1}, σ_{i+2}) from an 8-step Karras grid, including the last pair
    // that ends at σ = 0 (where the target must be the teacher's two-step endpoint itself).
    let g = SigmaGrid::default().sampling(8);
    let (s0, s1, s2) = (
        t1(&[g[0], g[2], g[4], g[6]]),
        t1(&[g[1], g[3], g[5], g[7]]),
        t1(&[g[2], g[4], g[6], g[8]]),
    );
    let n = 4;
    let x = Tensor::<4>::from_data(
        TensorData::new(normals(&mut rng(1, Stream::Eval, 0), n * 16), [n, 1, 4, 4]),
        &d,
    ) * per_example::<4>(s0.clone());
    let class = Tensor::<1, Int>::zeros([n], &d);
    let w = t1(&[0.0, 1.0, 2.5, 4.0]);
    let cond = Cond {
        class,
        extra: Some(w),
        latent: None,
    };
    let (e0, e1, e2) = (
        Sigma::Each(s0.clone()),
        Sigma::Each(s1),
        Sigma::Each(s2.clone()),
    );
    let x1 = euler_step(&IdealGuided, x.clone(), &e0, &e1, &cond);
    let x2 = euler_step(&IdealGuided, x1, &e1, &e2, &cond);
    let target = progressive_target(x.clone(), x2.clone(), s0.clone(), s2.clone());
    // The student's Euler step σ_i → σ_{i+2} with D = x̂: x + (σ_{i+2} − σ_i)·(x − x̂)/σ_i.
    let student = x.clone()
        + (x.clone() - target.clone()) / per_example::<4>(s0.clone()) * per_example::<4>(s2 - s0);
    let (a, b) = (values(student), values(x2.clone()));
    for (p, q) in a.iter().zip(&b) {
        assert!(
            (p - q).abs() <= 1e-5 * (1.0 + q.abs()),
            "student {p} vs teacher {q}"
        );
    }
    // Last example ends at σ = 0: x̂ is exactly the two-step endpoint.
    let (t, e) = (values(target.narrow(0, 3, 1)), values(x2.narrow(0, 3, 1)));
    for (p, q) in t.iter().zip(&e) {
        assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()));
    }
    assert_eq!(
        halve_grid(&g).len(),
        5,
        "8 steps (9 values) halve to 4 steps (5 values)"
    );
    assert_eq!(*halve_grid(&g).last().unwrap(), 0.0);
}

#[test]
fn consistency_boundary_condition_holds_at_sigma_min() {
    let d = device();
    // c_skip(σ_min) = 1 and c_out(σ_min) = 0, so f(x, σ_min) = x whatever the network says.
    let model = perturbed_model(Precond::Consistency { sigma_min: 0.002 });
    let x = Tensor::<4>::from_data(
        TensorData::new(normals(&mut rng(2, Stream::Eval, 0), 3 * 64), [3, 1, 8, 8]),
        &d,
    );
    let class = Tensor::<1, Int>::from_ints([0, 5, 10], &d);
    let out = model.forward(
        x.clone(),
        Tensor::full([3], 0.002, &d),
        class.clone(),
        Some(t1(&[0.0, 2.0, 4.0])),
    );
    assert_eq!(values(out), values(x.clone()), "f(x, σ_min) = x exactly");
    // Away from σ_min the network does contribute.
    let out = model.forward(
        x.clone(),
        Tensor::full([3], 1.0, &d),
        class,
        Some(t1(&[0.0, 2.0, 4.0])),
    );
    assert_ne!(values(out), values(x));
}

#[test]
fn guided_target_is_cfg_with_per_example_w() {
    let d = device();
    let model = perturbed_model(Precond::Edm);
    let x = Tensor::<4>::from_data(
        TensorData::new(normals(&mut rng(3, Stream::Eval, 0), 3 * 64), [3, 1, 8, 8]),
        &d,
    );
    let sigma = t1(&[0.1, 1.0, 10.0]);
    let class = Tensor::<1, Int>::from_ints([2, 7, 9], &d);
    let w = [0.0f64, 1.0, 2.5];
    let d_c = values(model.forward(x.clone(), sigma.clone(), class.clone(), None));
    let d_u = values(model.forward(x.clone(), sigma.clone(), Tensor::full([3], 10, &d), None));
    let teacher = GuidedTeacher::Cfg(model);
    let cond = Cond {
        class,
        extra: Some(t1(&w)),
        latent: None,
    };
    let got = values(teacher.denoise(x, sigma, &cond));
    for (i, g) in got.iter().enumerate() {
        // D_u + w·(D_c − D_u) with example i's w.
        let e = d_u[i] + w[i / 64] as f32 * (d_c[i] - d_u[i]);
        assert!((g - e).abs() < 1e-5, "element {i}: {g} vs {e}");
    }
    assert_eq!(teacher.nfe_per_call(), 2);
}

#[test]
fn heun_step_is_exact_enough_on_the_gaussian() {
    // For D = x·σ_d²/(σ²+σ_d²) (w = 0) the ODE solution is x·√(σ_b²+σ_d²)/√(σ_a²+σ_d²);
    // one Heun step from 1.0 to 0.8 is second-order accurate: error ≪ 1e-3 relative.
    let d = device();
    let x = Tensor::<4>::ones([1, 1, 2, 2], &d);
    let cond = Cond {
        class: Tensor::zeros([1], &d),
        extra: Some(t1(&[0.0])),
        latent: None,
    };
    let out = values(heun_step(
        &IdealGuided,
        x,
        &Sigma::Each(t1(&[1.0])),
        &Sigma::Each(t1(&[0.8])),
        &cond,
    ));
    let exact = ((0.64f64 + 0.25) / (1.0 + 0.25)).sqrt() as f32;
    assert!(
        (out[0] - exact).abs() < 1e-3 * exact,
        "{} vs {exact}",
        out[0]
    );
}

#[test]
fn curricula_against_hand_values() {
    // N(k) = ⌈√(k/K·((s1+1)² − s0²) + s0²) − 1⌉ + 1 with s0 = 2, s1 = 150, K = 1000:
    // k = 0 → ⌈2 − 1⌉ + 1 = 2; k = 500 → ⌈√11402.5 − 1⌉ + 1 = ⌈105.78⌉ + 1 = 107; k = K → 151.
    let n = GridSize::Progressive { s0: 2, s1: 150 };
    assert_eq!(
        (n.at(0, 1000), n.at(500, 1000), n.at(1000, 1000)),
        (2, 107, 151)
    );
    // μ(k) = exp(s0·ln μ0 / N(k)), μ0 = 0.9: k = 0 → 0.9; k = 500 → exp(2·ln 0.9/107) = 0.9980326.
    let mu = TargetEma::Adaptive { mu0: 0.9 };
    assert!((mu.at(&n, 0, 1000) - 0.9).abs() < 1e-12);
    assert!((mu.at(&n, 500, 1000) - 0.998_032_582_475_201_9).abs() < 1e-12);
    assert_eq!(
        TargetEma::Fixed { mu: 0.95 }.at(&GridSize::Fixed { n: 18 }, 77, 100),
        0.95
    );
    assert_eq!(GridSize::Fixed { n: 18 }.at(5, 10), 18);
    // Multistep σ's: 1 step starts at σ_max; 2 steps add the middle of a 3-level grid (2.51522).
    let g = SigmaGrid::default();
    assert_eq!(g.consistency(1), vec![80.0]);
    let two = g.consistency(2);
    assert!((two[1] - 2.51522).abs() < 1e-4, "{two:?}");
}

#[test]
fn pseudo_huber_distance_hand_values() {
    let d = device();
    // a − b = 0.3 everywhere: mse = 0.09; L2 = 0.09; pseudo-Huber(c = 0.4) = √(0.09 + 0.16) − 0.4 = 0.1.
    let a = Tensor::<4>::full([1, 1, 2, 2], 0.3, &d);
    let b = Tensor::<4>::zeros([1, 1, 2, 2], &d);
    let l2 = distance(a.clone(), b.clone(), Metric::L2).into_scalar::<f32>();
    let ph = distance(a, b, Metric::PseudoHuber { c: 0.4 }).into_scalar::<f32>();
    assert!(
        (l2 - 0.09).abs() < 1e-6 && (ph - 0.1).abs() < 1e-6,
        "{l2} {ph}"
    );
}

pub const TINY_TEACHER: &str = "[model]\nmodel_channels = 8\nchannel_mult = [1, 2]\nnum_blocks = 1\nnorm_groups = 4\n[train]\nsteps = 3\nbatch_size = 8\n";
pub const TINY_STUDENTS: &str = r#"
[guided.train]
steps = 3
batch_size = 8
[progressive]
start_steps = 8
[progressive.train]
steps = 2
batch_size = 8
[consistency]
grid = { kind = "fixed", n = 6 }
[consistency.train]
steps = 3
batch_size = 8
"#;

/// Train the tiny teacher (`DIR/teacher`) and its guided student (`DIR/guided`) through the
/// binary, leaving the configs at `DIR/t.toml` and `DIR/s.toml`.
pub fn tiny_teacher_and_guided(dir: &Path) {
    let p = |n: &str| dir.join(n).display().to_string();
    std::fs::write(p("t.toml"), TINY_TEACHER).unwrap();
    std::fs::write(p("s.toml"), TINY_STUDENTS).unwrap();
    let t = [
        "teacher",
        "train",
        "--config",
        &p("t.toml"),
        "--out",
        &p("teacher"),
    ];
    ok(fewstep(&[&["--quiet"], &t[..]].concat()));
    let g = [
        "student",
        "guided",
        "--teacher",
        &p("teacher"),
        "--config",
        &p("s.toml"),
    ];
    ok(fewstep(
        &[&["--quiet"], &g[..], &["--out", &p("guided")]].concat(),
    ));
}

#[test]
fn tiny_real_distillation_chain_on_the_embedded_digits() {
    let dir = temp_dir("students");
    let p = |n: &str| dir.join(n).display().to_string();
    tiny_teacher_and_guided(&dir);
    let rounds = ok(fewstep(&[
        "--quiet",
        "student",
        "progressive",
        "--from",
        &p("guided"),
        "--to-steps",
        "2",
        "--config",
        &p("s.toml"),
        "--out",
        &p("prog"),
    ]));
    assert!(
        rounds.contains("round   4") && rounds.contains("round   2"),
        "{rounds}"
    );
    assert!(
        Path::new(&p("prog"))
            .join("round-004/checkpoint.fsk")
            .exists()
    );
    // Re-running skips finished rounds.
    let again = ok(fewstep(&[
        "--quiet",
        "student",
        "progressive",
        "--from",
        &p("guided"),
        "--to-steps",
        "2",
        "--config",
        &p("s.toml"),
        "--out",
        &p("prog"),
    ]));
    assert!(again.matches("already done").count() == 2, "{again}");
    ok(fewstep(&[
        "--quiet",
        "student",
        "consistency",
        "--teacher",
        &p("guided"),
        "--config",
        &p("s.toml"),
        "--out",
        &p("cm"),
    ]));

    // Each student samples with its own sampler and reports its real NFE.
    for (model, steps, nfe) in [
        ("guided", "4", 4),
        ("prog", "2", 2),
        ("prog", "4", 4),
        ("cm", "1", 1),
        ("cm", "2", 2),
        ("teacher", "4", 8),
    ] {
        let out = ok(fewstep(&[
            "--quiet",
            "sample",
            "--model",
            &p(model),
            "--steps",
            steps,
            "--n",
            "3",
            "--guidance",
            "2",
            "--out",
            &p(&format!("s-{model}-{steps}")),
        ]));
        assert!(
            out.contains(&format!("NFE per image {nfe} ")),
            "{model} at {steps} steps: {out}"
        );
    }
    // Clear errors.
    let e = err(fewstep(&[
        "sample",
        "--model",
        &p("prog"),
        "--steps",
        "3",
        "--out",
        &p("x"),
    ]));
    assert!(e.contains("2-, 4-step"), "{e}");
    let e = err(fewstep(&[
        "sample",
        "--model",
        &p("cm"),
        "--guidance",
        "9",
        "--out",
        &p("x"),
    ]));
    assert!(
        e.contains("outside the range") && e.contains("[0, 4]"),
        "{e}"
    );
    let e = err(fewstep(&[
        "student",
        "guided",
        "--teacher",
        &p("guided"),
        "--out",
        &p("gg"),
    ]));
    assert!(e.contains("needs teacher"), "{e}");
    let e = err(fewstep(&[
        "student",
        "progressive",
        "--from",
        &p("guided"),
        "--to-steps",
        "3",
        "--config",
        &p("s.toml"),
        "--out",
        &p("pp"),
    ]));
    assert!(e.contains("--to-steps 3") && e.contains("4, 2, 1"), "{e}");
}

#[test]
fn shipped_student_config_is_the_default() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/digits-students.toml");
    let cfg = student::config::StudentConfig::from_file(&p).unwrap();
    assert_eq!(cfg, student::config::StudentConfig::default());
    let bad = temp_dir("bad-student-config").join("s.toml");
    std::fs::write(&bad, "[progressive]\nstart_steps = 12\n").unwrap();
    let e = student::config::StudentConfig::from_file(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("progressive.start_steps") && e.contains("power of two"),
        "{e}"
    );
}

#[test]
fn mnist_student_config_parses() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/mnist-students.toml");
    let cfg = student::config::StudentConfig::from_file(&p).unwrap();
    assert_eq!(cfg.progressive.start_steps, 32);
    assert_eq!(cfg.guided.train.steps, 3000);
}
