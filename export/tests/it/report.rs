//! The op/opset report: GroupNorm as InstanceNormalization, every op in TensorRT's list, and a
//! snapshot of the tiny teacher's summary.

use export::onnx::read_model;
use export::report::{OpReport, TENSORRT_OPS};
use export::source::Source;
use export::{ExportOptions, export_model, write_model};
use teacher::recipe::ModelKind;

use crate::fixtures::{device, save_model, teacher_spec, temp_dir};

#[test]
fn teacher_ops_snapshot_and_tensorrt_coverage() {
    let dir = temp_dir("report");
    let run = save_model(&dir, ModelKind::Teacher, teacher_spec(), 1);
    let source = Source::load(&run, None, &device()).unwrap();
    let path = dir.join("t.onnx");
    write_model(
        &export_model(&source, &ExportOptions::default()).unwrap(),
        &path,
    )
    .unwrap();
    let report = OpReport::of(&read_model(&path).unwrap());

    // GroupNorm went to InstanceNormalization, never to (opset-18) GroupNormalization, and its
    // statistics left no ReduceMean behind.
    let ops: Vec<&str> = report.ops.iter().map(|o| o.op_type.as_str()).collect();
    assert!(ops.contains(&"InstanceNormalization"), "{ops:?}");
    assert!(
        !ops.contains(&"GroupNormalization") && !ops.contains(&"ReduceMean"),
        "{ops:?}"
    );
    assert!(report.unsupported().is_empty(), "{report}");
    assert!(
        report
            .ops
            .iter()
            .all(|o| TENSORRT_OPS.contains(&o.op_type.as_str()))
    );

    // Counts by hand for this network (channel_mult [1, 2], 1 block per level, attention at
    // 4×4): ResBlocks = 1 + 1 (encoder) + 2 (middle) + 2 + 2 (decoder, one more per level) = 8,
    // two GroupNorms each; attention layers = 1 (encoder 4×4) + 2 (middle: the first always,
    // the second because the middle runs at 4×4) + 2 (decoder 4×4), one GroupNorm and one
    // softmax each; plus the output GroupNorm: 8·2 + 5 + 1 = 22.
    let count = |op: &str| {
        report
            .ops
            .iter()
            .find(|o| o.op_type == op)
            .map_or(0, |o| o.count)
    };
    assert_eq!(count("InstanceNormalization"), 22);
    assert_eq!(count("Softmax"), 5);
    // One input pad (7×7 → 8×8) and one crop back.
    assert_eq!(count("Pad"), 1);

    let snapshot =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/teacher_ops.txt");
    let text = report.to_string();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &text).unwrap();
    }
    let want = std::fs::read_to_string(&snapshot).unwrap_or_default();
    assert_eq!(
        text, want,
        "op report changed; rerun with UPDATE_SNAPSHOTS=1 if intended"
    );
}
