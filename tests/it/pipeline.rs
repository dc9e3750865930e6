//! `fewstep pipeline` on a tiny digits config: every stage's artefact exists and is valid, a
//! re-run skips finished stages, and a run killed mid-stage resumes without redoing the stages
//! it had finished.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures::{err, fewstep, ok, temp_dir};

/// Tiny everything; the guided stage is long enough (60 steps, a checkpoint every 5) to be
/// killed in the middle.
const TINY_PIPELINE: &str = r#"
[teacher.model]
model_channels = 8
channel_mult = [1, 2]
num_blocks = 1
norm_groups = 4
[teacher.train]
steps = 3
batch_size = 8
[guided.train]
steps = 60
batch_size = 8
checkpoint_every = 5
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
[features]
steps = 30
[eval]
n = 20
teacher_steps = [2, 4]
student_steps = [1, 2, 4]
[export]
steps = 4
check_batch = 4
"#;

const STAGES: [&str; 7] = [
    "teacher",
    "guided",
    "progressive",
    "consistency",
    "features",
    "report",
    "export",
];

fn pipeline(cfg: &str, out: &Path) -> Vec<String> {
    let o = out.display().to_string();
    vec![
        "--quiet".into(),
        "pipeline".into(),
        "--config".into(),
        cfg.into(),
        "--out".into(),
        o,
    ]
}

fn run(args: &[String]) -> String {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(fewstep(&a))
}

#[test]
fn tiny_pipeline_runs_every_stage_skips_and_resumes() {
    let dir = temp_dir("pipeline");
    let cfg = dir.join("pipeline.toml");
    std::fs::write(&cfg, TINY_PIPELINE).unwrap();
    let cfg = cfg.display().to_string();

    // 1. A full run: every stage reports, every artefact is there and valid.
    let a = dir.join("a");
    let said = run(&pipeline(&cfg, &a));
    for s in STAGES {
        assert!(said.contains(&format!("{s}: ")), "stage {s} silent: {said}");
    }
    assert!(
        said.contains("report: ") && said.contains("report.md"),
        "{said}"
    );
    for f in [
        "teacher/checkpoint.fsk",
        "guided/checkpoint.fsk",
        "progressive/round-004/checkpoint.fsk",
        "progressive/round-001/checkpoint.fsk",
        "consistency/checkpoint.fsk",
        "features/features.json",
        "report/report.html",
        "export/student-4.onnx",
    ] {
        assert!(a.join(f).is_file(), "missing {f}");
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("report/results.json")).unwrap())
            .expect("results.json parses");
    let kinds: Vec<&str> = r["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    for k in ["teacher", "guided", "progressive", "consistency"] {
        assert!(kinds.contains(&k), "report lacks {k}: {kinds:?}");
    }
    assert!(r["headline"].is_object(), "{r}");
    // The shipped student passes the parity check on its own, too.
    ok(fewstep(&[
        "export",
        "check",
        &a.join("export/student-4.onnx").display().to_string(),
        "--model",
        &a.join("progressive").display().to_string(),
        "--steps",
        "4",
    ]));

    // 2. Re-running skips every finished stage.
    let again = run(&pipeline(&cfg, &a));
    for s in STAGES {
        assert!(
            again.contains(&format!("{s}: skipped")),
            "{s} redone: {again}"
        );
    }

    // 3. Killed in the middle of the guided stage, then re-run: the teacher is not redone and
    //    the guided student resumes from its last checkpoint.
    let b = dir.join("b");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fewstep"))
        .args(pipeline(&cfg, &b))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary runs");
    let t = Instant::now();
    while !b.join("guided/checkpoint.fsk").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no guided checkpoint"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = run(&pipeline(&cfg, &b));
    assert!(resumed.contains("teacher: skipped"), "{resumed}");
    let guided = resumed
        .lines()
        .find(|l| l.starts_with("guided: "))
        .expect("guided line");
    assert!(
        guided.contains("step 60") && !guided.contains("resumed from 0)"),
        "{guided}"
    );
    assert!(b.join("export/student-4.onnx").is_file());

    // 4. A changed config is refused, not mixed into the finished run.
    let changed = dir.join("changed.toml");
    std::fs::write(&changed, TINY_PIPELINE.replace("steps = 30", "steps = 31")).unwrap();
    let e = err(fewstep(&[
        "pipeline",
        "--config",
        &changed.display().to_string(),
        "--out",
        &a.display().to_string(),
    ]));
    assert!(
        e.contains("features") && e.contains("another config"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).ok();
}
