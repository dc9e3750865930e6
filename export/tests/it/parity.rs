//! Exported files compute what burn computes: teacher and students, two batch sizes on one
//! dynamic file, every supported opset form.

use export::capture::Input;
use export::check::{CheckOptions, check, max_abs_diff};
use export::inputs::Batch;
use export::npy::{NpyData, read_npy};
use export::onnx::{declared_inputs, read_model};
use export::report::OpReport;
use export::runtime::{TractPlan, match_inputs};
use export::source::Source;
use export::{BatchMode, ExportOptions, Opset, Precision, export_model, write_model};
use teacher::edm::precond::Precond;
use teacher::recipe::ModelKind;

use crate::fixtures::{device, save_model, student_spec, teacher_spec, temp_dir};

fn export_to(
    source: &Source,
    opts: ExportOptions,
    dir: &std::path::Path,
    name: &str,
) -> std::path::PathBuf {
    let model = export_model(source, &opts).expect("the tiny network exports");
    let path = dir.join(name);
    write_model(&model, &path).expect("temp dir is writable");
    path
}

fn check_at(path: &std::path::Path, source: &Source, batch: usize, seed: u64) -> f64 {
    let opts = CheckOptions {
        batch,
        seed,
        ..CheckOptions::default()
    };
    let r = check(path, source, &device(), &opts).expect("the check runs");
    assert!(
        r.max_abs_ref > 0.1,
        "outputs are not trivially zero: {}",
        r.max_abs_ref
    );
    r.max_abs_err
}

#[test]
fn teacher_with_every_block_matches_burn_at_two_batch_sizes_on_one_file() {
    let dir = temp_dir("teacher");
    let run = save_model(&dir, ModelKind::Teacher, teacher_spec(), 1);
    let source = Source::load(&run, None, &device()).unwrap();
    let path = export_to(&source, ExportOptions::default(), &dir, "teacher.onnx");

    // The file declares a symbolic batch and the static image size.
    let model = read_model(&path).unwrap();
    let x = declared_inputs(&model)
        .into_iter()
        .find(|i| i.name == "x")
        .unwrap();
    assert_eq!(x.dims, vec![None, Some(3), Some(7), Some(7)]);
    assert_eq!(
        declared_inputs(&model)
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        ["x", "sigma", "class"]
    );

    for (batch, seed) in [(1, 3), (5, 4)] {
        let err = check_at(&path, &source, batch, seed);
        assert!(err <= 1e-4, "batch {batch}: max abs error {err:e}");
    }
}

#[test]
fn w_conditioned_student_matches_burn_and_uses_w() {
    let dir = temp_dir("guided");
    let run = save_model(&dir, ModelKind::Guided, student_spec(Precond::Edm), 2);
    let source = Source::load(&run, None, &device()).unwrap();
    assert_eq!(
        source.inputs,
        [Input::X, Input::Sigma, Input::Class, Input::W]
    );
    let path = export_to(&source, ExportOptions::default(), &dir, "guided.onnx");
    for (batch, seed) in [(2, 0), (6, 1)] {
        let err = check_at(&path, &source, batch, seed);
        assert!(err <= 1e-4, "batch {batch}: max abs error {err:e}");
    }

    // w reaches the output through the file: changing only w changes tract's result.
    let model = read_model(&path).unwrap();
    let order = match_inputs(&path, &model, &source, 3).unwrap();
    let plan = TractPlan::load(&path, &order, 3, &source).unwrap();
    let batch = Batch::random(&source, 3, 9);
    let mut other = batch.clone();
    other.w = Some(batch.w.as_ref().unwrap().iter().map(|w| w + 1.0).collect());
    let a = plan.run(plan.feeds(&batch).unwrap()).unwrap();
    let b = plan.run(plan.feeds(&other).unwrap()).unwrap();
    assert!(
        max_abs_diff(&a, &b) > 1e-3,
        "w has no effect on the exported graph"
    );
}

#[test]
fn consistency_student_boundary_scalings_export() {
    // Consistency preconditioning: c_skip = σ_d²/((σ−σ_min)² + σ_d²), c_out = (σ−σ_min)·σ_d/√(σ²+σ_d²).
    let dir = temp_dir("consistency");
    let spec = student_spec(Precond::Consistency { sigma_min: 0.002 });
    let run = save_model(&dir, ModelKind::Consistency, spec, 3);
    let source = Source::load(&run, None, &device()).unwrap();
    let path = export_to(&source, ExportOptions::default(), &dir, "cm.onnx");
    let err = check_at(&path, &source, 3, 2);
    assert!(err <= 1e-4, "max abs error {err:e}");
}

#[test]
fn fixed_batch_and_newer_opsets_match_burn() {
    let dir = temp_dir("opsets");
    let run = save_model(&dir, ModelKind::Guided, student_spec(Precond::Edm), 4);
    let source = Source::load(&run, None, &device()).unwrap();
    for opset in [18, 21] {
        let opts = ExportOptions {
            opset: Opset::new(opset).unwrap(),
            batch: BatchMode::Fixed(3),
            ..ExportOptions::default()
        };
        let path = export_to(&source, opts, &dir, &format!("fixed-{opset}.onnx"));
        let model = read_model(&path).unwrap();
        assert_eq!(OpReport::of(&model).opset, opset);
        let x = declared_inputs(&model)
            .into_iter()
            .find(|i| i.name == "x")
            .unwrap();
        assert_eq!(x.dims, vec![Some(3), Some(1), Some(8), Some(8)]);
        let err = check_at(&path, &source, 3, 5);
        assert!(err <= 1e-4, "opset {opset}: max abs error {err:e}");
    }
}

#[test]
fn save_io_writes_the_inputs_and_burn_output_under_graph_names() {
    let dir = temp_dir("save-io");
    let run = save_model(&dir, ModelKind::Guided, student_spec(Precond::Edm), 5);
    let source = Source::load(&run, None, &device()).unwrap();
    let path = export_to(&source, ExportOptions::default(), &dir, "g.onnx");
    let io = dir.join("io");
    let opts = CheckOptions {
        batch: 2,
        seed: 11,
        save_io: Some(io.clone()),
        ..CheckOptions::default()
    };
    let r = check(&path, &source, &device(), &opts).unwrap();
    let names: Vec<String> = r
        .saved
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["x.npy", "sigma.npy", "class.npy", "w.npy", "denoised.npy"]
    );

    // The saved inputs are the seeded batch; the saved output is burn's forward on them.
    let batch = Batch::random(&source, 2, 11);
    let (shape, x) = read_npy(&io.join("x.npy")).unwrap();
    assert_eq!(shape, [2, 1, 8, 8]);
    assert_eq!(x, NpyData::F32(batch.x.clone()));
    let (_, class) = read_npy(&io.join("class.npy")).unwrap();
    assert_eq!(class, NpyData::I64(batch.class.clone()));
    let (shape, out) = read_npy(&io.join("denoised.npy")).unwrap();
    assert_eq!(shape, [2, 1, 8, 8]);
    assert_eq!(
        out,
        NpyData::F32(batch.burn_forward(&source.model, &device()))
    );
}

#[test]
fn fp16_export_keeps_float32_io_and_matches_within_fp16_tolerance() {
    let dir = temp_dir("fp16");
    let run = save_model(&dir, ModelKind::Guided, student_spec(Precond::Edm), 9);
    let source = Source::load(&run, None, &device()).unwrap();
    let opts = ExportOptions {
        precision: Precision::Fp16,
        ..ExportOptions::default()
    };
    let path = export_to(&source, opts, &dir, "g16.onnx");
    let model = read_model(&path).unwrap();
    let graph = model.graph.as_ref().unwrap();

    // Inputs and output keep their float32/int64 types; the weights are float16 (code 10).
    let floats: Vec<i32> = declared_inputs(&model).iter().map(|i| i.elem).collect();
    assert_eq!(floats, [1, 1, 7, 1]);
    assert_eq!(export::onnx::declared_outputs(&model)[0].elem, 1);
    let conv_weights = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Conv")
        .map(|n| &n.input[1])
        .collect::<Vec<_>>();
    assert!(!conv_weights.is_empty());
    for w in conv_weights {
        let init = graph.initializer.iter().find(|t| &t.name == w).unwrap();
        assert_eq!(init.data_type, 10, "Conv weight `{w}` is not float16");
    }
    // Normalisation runs in float32: every InstanceNormalization reads a Cast-to-float output.
    for n in graph
        .node
        .iter()
        .filter(|n| n.op_type == "InstanceNormalization")
    {
        let producer = graph
            .node
            .iter()
            .find(|p| p.output.contains(&n.input[0]))
            .unwrap();
        assert_eq!(producer.op_type, "Cast", "{} input", n.name);
    }

    let r = check(
        &path,
        &source,
        &device(),
        &CheckOptions {
            batch: 4,
            ..CheckOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.precision, Precision::Fp16);
    assert_eq!(r.tolerance, 1e-2);
    // float16 really is in use (the error is above float32 round-off) and within its bar.
    assert!(
        r.max_abs_err > 1e-5 && r.passed(),
        "max abs error {:e}",
        r.max_abs_err
    );
}
