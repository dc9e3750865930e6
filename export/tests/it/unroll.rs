//! `--unroll-steps`: a whole sampler as one graph computes what `fewstep sample` computes from
//! the same seed — teachers with CFG (w a constant), w-conditioned students on their grid, and
//! multistep consistency with its per-step re-noising noise as inputs.

use export::capture::Input;
use export::check::{CheckOptions, check, max_abs_diff};
use export::inputs::Batch;
use export::onnx::{declared_inputs, declared_outputs, read_model};
use export::runtime::{TractPlan, match_inputs};
use export::source::Source;
use export::{ExportOptions, export_model, write_model};
use teacher::checkpoint::Checkpoint;
use teacher::edm::precond::Precond;
use teacher::recipe::ModelKind;
use teacher::sample::{ClassChoice, SampleSpec};

use crate::fixtures::{device, save_model, student_spec, teacher_spec, temp_dir};

fn export(source: &Source, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let model = export_model(source, &ExportOptions::default()).expect("the sampler exports");
    let path = dir.join(name);
    write_model(&model, &path).unwrap();
    path
}

fn input_names(path: &std::path::Path) -> Vec<String> {
    declared_inputs(&read_model(path).unwrap())
        .into_iter()
        .map(|i| i.name)
        .collect()
}

/// tract on the file vs `fewstep sample`'s own code path (`sample_any`) at the same seed.
fn tract_vs_sample(
    path: &std::path::Path,
    source: &Source,
    n: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let model = read_model(path).unwrap();
    let order = match_inputs(path, &model, source, n).unwrap();
    let plan = TractPlan::load(path, &order, n, source).unwrap();
    let got = plan
        .run(plan.feeds(&Batch::random(source, n, seed)).unwrap())
        .unwrap();
    let u = source.unroll.as_ref().unwrap();
    let spec = SampleSpec {
        first: 0,
        n,
        classes: ClassChoice::All,
        steps: u.steps,
        sampler: u.plan.sampler(),
        guidance: u.guidance,
        seed,
        batch_size: n,
        decoder: None,
    };
    let ck = Checkpoint::load(&source.path).unwrap();
    let (want, _) = teacher::sample::sample_checkpoint(&ck, &spec, &device()).unwrap();
    (got, want.images)
}

#[test]
fn unrolled_guided_student_equals_fewstep_sample_at_two_batch_sizes() {
    let dir = temp_dir("unroll-guided");
    let run = save_model(&dir, ModelKind::Guided, student_spec(Precond::Edm), 11);
    let source = Source::load_unrolled(&run, 3, 1.5, None, &device()).unwrap();
    let path = export(&source, &dir, "guided-3.onnx");
    assert_eq!(input_names(&path), ["noise", "class", "w"]);
    let outputs = declared_outputs(&read_model(&path).unwrap());
    assert_eq!(outputs[0].name, "image");
    for (n, seed) in [(1, 4), (5, 9)] {
        let (got, want) = tract_vs_sample(&path, &source, n, seed);
        assert_eq!(got.len(), n * 64);
        let err = max_abs_diff(&got, &want);
        assert!(err <= 1e-4, "batch {n}: {err:e}");
        assert!(
            want.iter().any(|v| v.abs() > 0.1),
            "images are not trivially zero"
        );
    }
    // The check command takes the unrolled file through the same comparison.
    let r = check(
        &path,
        &source,
        &device(),
        &CheckOptions {
            batch: 3,
            seed: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.passed(), "{}", r.max_abs_err);
    // Reloaded from the file's metadata alone (what `export check` does).
    let again = Source::for_file(&path, &run, None, &device()).unwrap();
    assert_eq!(again.unroll.as_ref().unwrap().steps, 3);
    assert_eq!(again.inputs, source.inputs);
}

#[test]
fn unrolled_consistency_takes_the_renoising_noise_as_inputs() {
    let dir = temp_dir("unroll-cm");
    let spec = student_spec(Precond::Consistency { sigma_min: 0.002 });
    let run = save_model(&dir, ModelKind::Consistency, spec, 12);
    let source = Source::load_unrolled(&run, 3, 2.0, None, &device()).unwrap();
    assert_eq!(
        source.inputs,
        [
            Input::Noise,
            Input::Class,
            Input::W,
            Input::Renoise(1),
            Input::Renoise(2)
        ]
    );
    let path = export(&source, &dir, "cm-3.onnx");
    assert_eq!(
        input_names(&path),
        ["noise", "class", "w", "renoise_1", "renoise_2"]
    );
    let (got, want) = tract_vs_sample(&path, &source, 4, 5);
    let err = max_abs_diff(&got, &want);
    assert!(err <= 1e-4, "{err:e}");
    // The last re-noising noise reaches the output (the final step denoises x̂ + σ·z_2).
    let model = read_model(&path).unwrap();
    let order = match_inputs(&path, &model, &source, 4).unwrap();
    let plan = TractPlan::load(&path, &order, 4, &source).unwrap();
    let batch = Batch::random(&source, 4, 5);
    let mut other = batch.clone();
    other.renoise[1] = batch.renoise[1].iter().map(|z| -z).collect();
    let a = plan.run(plan.feeds(&batch).unwrap()).unwrap();
    let b = plan.run(plan.feeds(&other).unwrap()).unwrap();
    assert!(max_abs_diff(&a, &b) > 1e-3, "renoise_2 has no effect");
}

#[test]
fn unrolled_teacher_bakes_in_cfg_and_progressive_needs_its_own_step_count() {
    let dir = temp_dir("unroll-teacher");
    let t = dir.join("teacher");
    std::fs::create_dir_all(&t).unwrap();
    let run = save_model(&t, ModelKind::Teacher, teacher_spec(), 13);
    let source = Source::load_unrolled(&run, 2, 2.0, None, &device()).unwrap();
    let path = export(&source, &dir, "teacher-2.onnx");
    // CFG at w = 2: two evaluations per step inside the graph; w is not an input.
    assert_eq!(input_names(&path), ["noise", "class"]);
    assert_eq!(source.unroll.as_ref().unwrap().plan.nfe(), 4);
    let (got, want) = tract_vs_sample(&path, &source, 3, 1);
    assert!(max_abs_diff(&got, &want) <= 1e-4);

    // A progressive round samples only on its own distilled grid (2 steps, see `recipe`).
    let p = dir.join("progressive");
    std::fs::create_dir_all(&p).unwrap();
    let prog = save_model(&p, ModelKind::Progressive, student_spec(Precond::Edm), 14);
    let source = Source::load_unrolled(&prog, 2, 1.0, None, &device()).unwrap();
    let path = export(&source, &dir, "prog-2.onnx");
    let (got, want) = tract_vs_sample(&path, &source, 2, 3);
    assert!(max_abs_diff(&got, &want) <= 1e-4);
    let e = Source::load_unrolled(&prog, 4, 1.0, None, &device())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("takes 2 steps"), "{e}");
    let e = Source::load_unrolled(&prog, 17, 1.0, None, &device())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("1 to 16"), "{e}");
    let e = Source::load_unrolled(&prog, 2, 9.0, None, &device())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("outside the range"), "{e}");
}
