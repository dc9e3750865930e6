//! `fewstep pipeline` on a tiny digits config: every stage's artefact exists and is valid, a
//! re-run skips finished stages, and a run killed mid-stage resumes without redoing the stages
//! it had finished.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures::{err, fewstep, ok, temp_dir};
use crate::student::{TINY_STUDENTS, TINY_TEACHER};

/// The tiny teacher and students of the student tests, as pipeline sections, with a guided
/// stage long enough (60 steps, a checkpoint every 5) to be killed in the middle.
pub fn tiny_pipeline() -> String {
    let teacher = TINY_TEACHER
        .replace("[model]", "[teacher.model]")
        .replace("[train]", "[teacher.train]");
    let students = TINY_STUDENTS.replacen(
        "[guided.train]\nsteps = 3",
        "[guided.train]\ncheckpoint_every = 5\nsteps = 60",
        1,
    );
    assert!(
        students.contains("steps = 60"),
        "TINY_STUDENTS changed shape"
    );
    format!(
        "{teacher}{students}[features]\nsteps = 30\n[eval]\nn = 20\nteacher_steps = [2, 4]\n\
         student_steps = [1, 2, 4]\n{TINY_VERDICT}[export]\nsteps = 4\ncheck_batch = 4\n"
    )
}

/// The verdict's sweeps, curve, memorisation, intervals and timing, sized for tests.
pub const TINY_VERDICT: &str = "sweep_guidance = [1.0, 2.0]\nsweep_steps = 4\nsolver_nfe = [4, 8]\n\
     [eval.verdict]\nsweep_n = 16\nmemorisation_n = 16\ntiming_batch = 4\ntiming_reps = 1\n\
     [eval.verdict.intervals]\nbootstrap = 20\n";

const STAGES: [&str; 7] = [
    "teacher",
    "guided",
    "progressive",
    "consistency",
    "features",
    "export",
    "report",
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

/// The tiny pipeline with its teacher a NestedUNet (8×8 ⊃ 4×4, the 4×4 copy alone for the
/// first 2 of 3 steps) and a short guided stage.
fn tiny_nested_pipeline() -> String {
    let text = tiny_pipeline()
        .replace(
            "[teacher.model]\n",
            "[teacher.model]\nkind = \"nested_unet\"\n[teacher.model.multires]\n\
             resolutions = [8, 4]\nloss_weights = [1.0, 0.5]\nstart_steps = [2, 0]\n\
             [teacher.model.unet]\n",
        )
        .replace("checkpoint_every = 5\nsteps = 60", "steps = 3");
    assert!(text.contains("nested_unet") && !text.contains("steps = 60"));
    text
}

/// Matryoshka diffusion end to end (issue #18): the NestedUNet teacher, its three students,
/// the export (ONNX forward and unrolled sampler, each parity-checked against burn — the stage
/// fails otherwise) and the report, on the embedded digits; samples are 8×8 images.
#[test]
fn tiny_nested_pipeline_runs_end_to_end() {
    let dir = temp_dir("pipeline-nested");
    let cfg = dir.join("pipeline.toml");
    std::fs::write(&cfg, tiny_nested_pipeline()).unwrap();
    let out = dir.join("a");
    let said = run(&pipeline(&cfg.display().to_string(), &out));
    for s in STAGES {
        assert!(said.contains(&format!("{s}: ")), "stage {s} silent: {said}");
    }
    for f in [
        "progressive/round-004/checkpoint.fsk",
        "consistency/checkpoint.fsk",
        "export/student-4.onnx",
        "export/sampler-4.onnx",
        "report/results.json",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let teacher = std::fs::read_to_string(out.join("teacher/config.toml")).unwrap();
    assert!(teacher.contains("nested_unet"), "{teacher}");
    let export = std::fs::read_to_string(out.join("export/export.json")).unwrap();
    assert!(export.contains("parity"), "{export}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report/results.json")).unwrap())
            .unwrap();
    assert!(
        !r["headline"]["fid_ratio_student4_vs_teacher50"].is_null(),
        "{r}"
    );
    // `fewstep sample` writes the 8×8 images and every resolution of each sample side by side.
    let samples = dir.join("samples");
    let (model, o) = (
        out.join("progressive").display().to_string(),
        samples.display().to_string(),
    );
    ok(fewstep(&[
        "--quiet", "sample", "--model", &model, "--n", "4", "--steps", "4", "--out", &o,
    ]));
    let img = image::open(samples.join("00000_c0.png")).unwrap();
    assert_eq!((img.width(), img.height()), (8, 8));
    let grid = image::open(samples.join("grid-resolutions.png")).unwrap();
    let single = image::open(samples.join("grid.png")).unwrap();
    assert_eq!(grid.height(), single.height());
    assert!(grid.width() > single.width(), "8×8 and 4×4 side by side");
}

#[test]
fn tiny_pipeline_runs_every_stage_skips_and_resumes() {
    let dir = temp_dir("pipeline");
    let cfg = dir.join("pipeline.toml");
    std::fs::write(&cfg, tiny_pipeline()).unwrap();
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
        "export/export.json",
        "export/model_repository/fewstep_student/config.pbtxt",
        "pipeline.toml",
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
    // The declared headline (progressive, 4 steps) with every key the verdict protocol names.
    let h = &r["headline"];
    assert_eq!(
        (h["student"].as_str(), h["steps"].as_u64()),
        (Some("progressive"), Some(4)),
        "{h}"
    );
    for key in [
        "n",
        "w",
        "fid_ratio_student4_vs_teacher50",
        "kid_student4",
        "kid_teacher50",
        "fidelity_rmse_student4",
        "speedup_student4_vs_teacher50",
        "target_met",
    ] {
        assert!(!h[key].is_null(), "headline lacks {key}: {h}");
    }
    let (ratio, ci) = (
        h["fid_ratio_student4_vs_teacher50"].as_f64().unwrap(),
        &h["fid_ratio_ci95"],
    );
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    assert!(lo <= hi && hi > 0.0 && ratio > 0.0, "{h}");
    assert_eq!(h["target_met"].as_bool(), Some(hi <= 1.05), "{h}");
    // Sweeps for the teacher and every student kind, the teacher's solver curve, memorisation.
    assert_eq!(
        r["guidance_sweep"].as_array().unwrap().len(),
        4 * 2,
        "{}",
        r["guidance_sweep"]
    );
    let solvers: Vec<&str> = r["solver_curve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["solver"].as_str().unwrap())
        .collect();
    for s in ["Euler", "Heun", "DPM-Solver++(2M)"] {
        assert!(solvers.contains(&s), "{solvers:?}");
    }
    for m in r["models"].as_array().unwrap() {
        let f = m["memorisation"]["pixels"]["fraction_below"]
            .as_f64()
            .unwrap();
        assert!((0.0..=1.0).contains(&f), "{m}");
    }
    // Serving and training-cost sections: the parity number, the engine (built, or the command
    // that builds it on the serving host), the Triton backend to match, and logged times.
    let sections = r["sections"].as_array().expect("sections");
    let serving = sections
        .iter()
        .find(|s| s["title"] == "Serving")
        .expect("Serving");
    let err_max = serving["data"]["parity"]["max_abs_err"].as_f64().unwrap();
    assert!(err_max <= 1e-4, "{serving}");
    let built = serving["data"]["engine"]["built"].as_bool().unwrap();
    // With the `tensorrt` feature and the TensorRT-RTX libraries (CI installs both), the
    // pipeline builds a real engine from the exported digits student; otherwise it plans one.
    let trt = cfg!(feature = "tensorrt")
        && export::engine::find_libraries(export::engine::Flavor::Rtx).is_ok();
    assert_eq!(built, trt, "{serving}");
    if built {
        let sc = &serving["data"]["engine"]["sidecar"];
        assert!(sc["network_layers"].as_i64().unwrap() > 100, "{sc}");
        assert_eq!(
            sc["batch"],
            serde_json::json!({"min": 1, "opt": 8, "max": 64})
        );
        let x = &sc["profile"][0];
        assert_eq!(
            (x["name"].as_str(), &x["max"]),
            (Some("x"), &serde_json::json!([64, 1, 8, 8])),
            "{sc}"
        );
        assert!(a.join("export/student-4.plan").is_file());
        // The RTX engine is labelled and kept out of the Triton repository.
        let loads_on = serving["data"]["engine"]["loads_on"].as_str().unwrap();
        assert!(loads_on.contains("TensorRT-RTX") && loads_on.contains("not on datacenter"));
        assert!(
            !a.join("export/model_repository/fewstep_student/1/model.plan")
                .exists()
        );
    } else {
        eprintln!("SKIP engine build in the pipeline: TensorRT feature or libraries absent");
    }
    // Built or not, Triton serves the ONNX through ONNX Runtime's TensorRT accelerator: an RTX
    // engine is never put under tensorrt_plan.
    let backend = serving["data"]["triton"]["backend"].as_str().unwrap();
    assert_eq!(backend, "onnxruntime_onnx");
    assert_eq!(serving["data"]["triton"]["accelerator"], "tensorrt");
    let md = serving["markdown"].as_str().unwrap();
    assert!(
        built || md.contains("--saveEngine="),
        "no serving-host command: {md}"
    );
    let pbtxt =
        std::fs::read_to_string(a.join("export/model_repository/fewstep_student/config.pbtxt"))
            .unwrap();
    assert!(pbtxt.contains(backend), "{pbtxt}");
    assert!(
        pbtxt.contains("name : \"tensorrt\"")
            && pbtxt.contains("key: \"trt_profile_max_shapes\" value: \"x:64x1x8x8,"),
        "{pbtxt}"
    );
    let sm = &serving["data"]["sampler"];
    assert!(
        sm["parity"]["max_abs_err"].as_f64().unwrap() <= 1e-4,
        "{sm}"
    );
    assert!(
        a.join("export/model_repository/fewstep_sampler/config.pbtxt")
            .is_file()
    );
    let cost = sections
        .iter()
        .find(|s| s["title"] == "Training cost")
        .expect("cost");
    for stage in ["teacher", "guided", "progressive", "consistency"] {
        let secs = cost["data"][stage]["logged"]["seconds"].as_f64();
        assert!(secs.is_some_and(|s| s > 0.0), "{stage}: {cost}");
    }
    // 3 progressive rounds (8 → 4 → 2 → 1) of 2 steps each.
    assert_eq!(cost["data"]["progressive"]["logged"]["steps"], 6, "{cost}");
    let report_md = std::fs::read_to_string(a.join("report/report.md")).unwrap();
    assert!(report_md.contains("## Serving") && report_md.contains("## Training cost"));
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

    // Any student's whole sampler as one graph, from the command line, checked against
    // `fewstep sample` at the same seed.
    let cm = a.join("cm-2.onnx").display().to_string();
    let said = ok(fewstep(&[
        "export",
        "onnx",
        "--model",
        &a.join("consistency").display().to_string(),
        "--unroll-steps",
        "2",
        "--out",
        &cm,
    ]));
    assert!(said.contains("renoise_1"), "{said}");
    let said = ok(fewstep(&[
        "export",
        "check",
        &cm,
        "--model",
        &a.join("consistency").display().to_string(),
        "--batch",
        "3",
    ]));
    assert!(
        said.contains("fewstep sample") && said.contains("PASS"),
        "{said}"
    );

    // The benchmark suite over the finished run (tiny sizes; PyTorch from a missing interpreter
    // is skipped with its reason, not an error).
    let bench = ok(fewstep(&[
        "--quiet",
        "bench",
        "suite",
        "--run",
        &a.display().to_string(),
        "--unet-config",
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("configs/digits.toml")
            .display()
            .to_string(),
        "--python",
        "/nonexistent/python",
        "--reps",
        "1",
        "--n",
        "8",
        "--batch",
        "8",
        "--teacher-steps",
        "4",
        "--onnx-batch",
        "1,2",
        "--distill-steps",
        "2",
    ]));
    assert!(
        bench.contains("faster") && bench.contains("tract vs burn"),
        "{bench}"
    );
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("bench/bench.json")).unwrap())
            .unwrap();
    assert!(b["sampling"]["speedup"].as_f64().unwrap() > 0.0, "{b}");
    assert_eq!(b["onnx"].as_array().unwrap().len(), 2, "{b}");
    assert!(
        b["train"]["pytorch_skipped"]
            .as_str()
            .unwrap()
            .contains("nonexistent"),
        "{b}"
    );
    let d = &b["distill"];
    assert_eq!(d["stages"].as_array().unwrap().len(), 4, "{d}");
    assert!(d["ratio"].as_f64().unwrap() > 0.0, "{d}");
    assert!(!a.join("bench-scratch").exists(), "scratch left behind");
    let e = err(fewstep(&[
        "bench",
        "suite",
        "--run",
        &dir.display().to_string(),
    ]));
    assert!(e.contains("not a pipeline run"), "{e}");

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
    std::fs::write(
        &changed,
        tiny_pipeline().replace("steps = 30", "steps = 31"),
    )
    .unwrap();
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

    // 5. Deleting the folder of the stage whose config changed redoes that stage alone, as the
    //    refusal says (here the report, with another n).
    let eval_changed = dir.join("eval.toml");
    let text = tiny_pipeline().replace("[eval]\nn = 20", "[eval]\nn = 24");
    std::fs::write(&eval_changed, text).unwrap();
    let eval_cfg = eval_changed.display().to_string();
    let e = err(fewstep(
        &pipeline(&eval_cfg, &a)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));
    assert!(e.contains("`report`") && e.contains("delete"), "{e}");
    std::fs::remove_dir_all(a.join("report")).unwrap();
    let redone = run(&pipeline(&eval_cfg, &a));
    assert!(redone.contains("features: skipped"), "{redone}");
    assert!(!redone.contains("report: skipped"), "{redone}");
    let results = std::fs::read_to_string(a.join("report/results.json")).unwrap();
    assert!(
        results.contains("\"n_samples\": 24"),
        "the report ran with the new n"
    );
    let again = run(&pipeline(&eval_cfg, &a));
    assert!(again.contains("report: skipped"), "{again}");
    // 6. Deleting a finished stage's folder with the same config redoes it too; the report's
    //    samples come back from its resumable cache (RUN/report-samples), nothing is resampled.
    std::fs::remove_dir_all(a.join("report")).unwrap();
    let redone = run(&pipeline(&eval_cfg, &a));
    assert!(!redone.contains("report: skipped"), "{redone}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("report/results.json")).unwrap())
            .unwrap();
    assert_eq!(r["protocol"]["new_chunks"], 0, "{}", r["protocol"]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn shipped_pipeline_config_plans_every_stage_and_bad_keys_are_named() {
    let dir = temp_dir("pipeline-plan");
    let out = dir.join("run");
    for name in [
        "mnist-pipeline.toml",
        "nested-mnist-pipeline.toml",
        "nested-digits-pipeline.toml",
        "latent-mnist-pipeline.toml",
        "latent-digits-pipeline.toml",
    ] {
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("configs")
            .join(name);
        let plan = ok(fewstep(&[
            "pipeline",
            "--config",
            &cfg.display().to_string(),
            "--out",
            &out.display().to_string(),
            "--dry-run",
        ]));
        for s in STAGES {
            assert!(plan.contains(&format!("{s}: would run")), "{name}: {plan}");
        }
        // A latent chain runs its autoencoder first and distils its decoder after the students.
        let latent = name.starts_with("latent-");
        for s in ["autoencoder", "decoder"] {
            assert_eq!(
                plan.contains(&format!("{s}: would run")),
                latent,
                "{name}: {plan}"
            );
        }
        assert!(!out.exists(), "a dry run creates nothing");
    }
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[eval]\nsamples = 10\n").unwrap();
    let e = err(fewstep(&[
        "pipeline",
        "--config",
        &bad.display().to_string(),
        "--dry-run",
    ]));
    assert!(e.contains("samples") && e.contains("bad.toml"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn nested_baselines_differ_from_the_nested_teacher_only_as_declared() {
    // The report's comparisons are fair only if the baselines are the chain's teacher with
    // exactly the stated change: no curriculum (same steps), or no nesting at equal compute.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let chain =
        pipeline::config::PipelineConfig::from_file(&root.join("nested-mnist-pipeline.toml"))
            .unwrap()
            .teacher;
    let load = |f: &str| teacher::config::TeacherConfig::from_file(&root.join(f)).unwrap();
    let multires = |c: &mut teacher::config::TeacherConfig| match &mut c.model {
        teacher::model::NetworkConfig::NestedUNet(n) => n.multires.clone(),
        _ => panic!("a NestedUNet"),
    };
    let mut no_curriculum = chain.clone();
    if let teacher::model::NetworkConfig::NestedUNet(n) = &mut no_curriculum.model {
        n.multires.start_steps = vec![0, 0, 0];
    }
    assert_eq!(load("nested-mnist-nocurriculum.toml"), no_curriculum);
    let mut unet = load("nested-mnist-unet.toml");
    let m = multires(&mut unet);
    assert_eq!((m.resolutions, m.start_steps), (vec![32], vec![0]));
    assert_eq!(unet.train.steps, 6550);
    // everything but the resolutions and the steps is the chain's teacher
    let mut same = unet.clone();
    if let teacher::model::NetworkConfig::NestedUNet(n) = &mut same.model {
        n.multires = multires(&mut chain.clone());
    }
    same.train.steps = chain.train.steps;
    assert_eq!(same, chain);
    let names: Vec<String> =
        pipeline::config::PipelineConfig::from_file(&root.join("nested-mnist-pipeline.toml"))
            .unwrap()
            .eval
            .baselines
            .iter()
            .map(|b| b.run.display().to_string())
            .collect();
    assert_eq!(
        names,
        ["runs/nested-mnist-nocurriculum", "runs/nested-mnist-unet"]
    );
}
