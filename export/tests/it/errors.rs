//! `export check` on the wrong file gives an error naming the file and the fix.

use export::check::{CheckOptions, check};
use export::source::Source;
use export::{BatchMode, ExportOptions, Opset, export_model, write_model};
use teacher::edm::precond::Precond;
use teacher::recipe::ModelKind;

use crate::fixtures::{device, save_model, student_spec, teacher_spec, temp_dir};

fn check_err(path: &std::path::Path, source: &Source, batch: usize) -> String {
    let opts = CheckOptions {
        batch,
        ..CheckOptions::default()
    };
    match check(path, source, &device(), &opts) {
        Ok(r) => panic!("check of `{}` passed: {r:?}", path.display()),
        Err(e) => e.to_string(),
    }
}

fn student(dir: &std::path::Path) -> Source {
    let run = save_model(dir, ModelKind::Guided, student_spec(Precond::Edm), 6);
    Source::load(&run, None, &device()).unwrap()
}

#[test]
fn malformed_and_missing_files_are_named_with_the_fix() {
    let dir = temp_dir("malformed");
    let source = student(&dir);
    let bad = dir.join("garbage.onnx");
    std::fs::write(&bad, b"\x08\x07 this is not protobuf \xff\xff\xff").unwrap();
    let e = check_err(&bad, &source, 2);
    assert!(e.contains("garbage.onnx") && e.contains("re-export"), "{e}");

    let missing = dir.join("nope.onnx");
    let e = check_err(&missing, &source, 2);
    assert!(
        e.contains("nope.onnx") && e.contains("fewstep export onnx"),
        "{e}"
    );
    // A folder is a folder (before: "does not exist").
    let e = check_err(&dir, &source, 2);
    assert!(
        e.contains("is a folder") && !e.contains("does not exist"),
        "{e}"
    );
}

#[test]
fn a_fixed_batch_file_names_its_batch() {
    let dir = temp_dir("fixed");
    let source = student(&dir);
    let opts = ExportOptions {
        opset: Opset::default(),
        batch: BatchMode::Fixed(2),
        ..ExportOptions::default()
    };
    let path = dir.join("b2.onnx");
    write_model(&export_model(&source, &opts).unwrap(), &path).unwrap();
    let e = check_err(&path, &source, 3);
    assert!(
        e.contains("b2.onnx") && e.contains("--batch 2") && e.contains("--batch dynamic"),
        "{e}"
    );
}

#[test]
fn a_file_from_another_model_is_rejected_before_running() {
    let dir = temp_dir("other-model");
    let student = student(&dir.join("student"));
    let teacher_run = save_model(&dir.join("teacher"), ModelKind::Teacher, teacher_spec(), 7);
    let teacher = Source::load(&teacher_run, None, &device()).unwrap();
    let path = dir.join("teacher.onnx");
    write_model(
        &export_model(&teacher, &ExportOptions::default()).unwrap(),
        &path,
    )
    .unwrap();

    // A teacher file lacks the student's w input.
    let e = check_err(&path, &student, 2);
    assert!(
        e.contains("teacher.onnx") && e.contains("no input `w`") && e.contains("--model"),
        "{e}"
    );

    // Same inputs but another image shape: the student is 1×8×8, the teacher file 3×7×7.
    let teacher_like = save_model(
        &dir.join("t2"),
        ModelKind::Teacher,
        student_spec(Precond::Edm),
        8,
    );
    let other = Source::load(&teacher_like, None, &device()).unwrap();
    let e = check_err(&path, &other, 2);
    assert!(
        e.contains("input `x` is [N, 3, 7, 7]") && e.contains("[N, 1, 8, 8]"),
        "{e}"
    );
}

#[test]
fn unsupported_opset_and_batch_say_what_is_allowed() {
    let e = "16".parse::<Opset>().unwrap_err().to_string();
    assert!(e.contains("--opset 16") && e.contains("17..=21"), "{e}");
    let e = "0".parse::<BatchMode>().unwrap_err().to_string();
    assert!(e.contains("dynamic"), "{e}");
    assert_eq!("dynamic".parse::<BatchMode>().unwrap(), BatchMode::Dynamic);
    assert_eq!("8".parse::<BatchMode>().unwrap(), BatchMode::Fixed(8));
}
