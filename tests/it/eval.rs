//! `fewstep eval` end to end on the embedded digits: a feature network, FID as JSON, and a
//! comparison report whose numbers come back identical when it is re-run with the same seeds.

use std::path::Path;

use crate::fixtures::{err, fewstep, ok, temp_dir};
use crate::student::tiny_teacher_and_guided;

fn results(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("results.json")).expect("results.json written");
    serde_json::from_str(&text).expect("results.json parses")
}

/// (name, steps, fid, class accuracy, precision, recall) of every row: what must repeat.
fn scores(r: &serde_json::Value) -> Vec<(String, u64, f64, f64, f64, f64)> {
    r["models"]
        .as_array()
        .expect("models array")
        .iter()
        .map(|m| {
            let x = &m["metrics"];
            (
                m["name"].as_str().unwrap().to_string(),
                m["steps"].as_u64().unwrap(),
                x["fid"].as_f64().unwrap(),
                x["class_accuracy"].as_f64().unwrap(),
                x["precision"].as_f64().unwrap(),
                x["recall"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn features_fid_and_a_reproducible_report_on_the_embedded_digits() {
    let dir = temp_dir("eval");
    let p = |n: &str| dir.join(n).display().to_string();
    tiny_teacher_and_guided(&dir);
    let train = |args: &[&str]| ok(fewstep(&[&["--quiet"], args].concat()));
    let feat = train(&[
        "eval",
        "train-features",
        "--dataset",
        "digits",
        "--steps",
        "40",
        "--out",
        &p("feat"),
    ]);
    assert!(feat.contains("test accuracy"), "{feat}");

    // FID as one JSON object with the documented keys; a set against itself scores 0.
    let fid = ok(fewstep(&[
        "eval",
        "fid",
        "--samples",
        "digits-test:100",
        "--reference",
        "digits-test:100",
        "--features",
        &p("feat"),
        "--json",
    ]));
    let j: serde_json::Value = serde_json::from_str(fid.trim()).expect("one JSON object");
    assert!(j["fid"].as_f64().unwrap().abs() < 1e-6, "{j}");
    assert_eq!(j["n_samples"], 100);
    assert_eq!(j["n_reference"], 100);
    assert!(
        j["features"]
            .as_str()
            .unwrap()
            .starts_with("LeNet features")
    );

    // --model samples the run itself (a guided student: 1 evaluation per step).
    let fid = ok(fewstep(&[
        "eval",
        "fid",
        "--model",
        &p("guided"),
        "--steps",
        "2",
        "--n",
        "20",
        "--reference",
        "digits-test",
        "--features",
        &p("feat"),
        "--json",
    ]));
    let j: serde_json::Value = serde_json::from_str(fid.trim()).expect("one JSON object");
    assert_eq!(j["n_samples"], 20);
    assert!(j["fid"].as_f64().unwrap() > 0.0, "{j}");
    let e = err(fewstep(&[
        "eval",
        "fid",
        "--model",
        &p("guided"),
        "--reference",
        "digits-test",
        "--features",
        &p("feat"),
    ]));
    assert!(e.contains("--steps"), "{e}");

    let report_with = |out: &str, extra: &[&str]| {
        let args = [
            "--quiet",
            "eval",
            "report",
            "--runs",
            &p("teacher"),
            &p("guided"),
            "--features",
            &p("feat"),
            "--reference",
            "digits-test",
            "--real",
            "digits-train:200",
            "--n",
            "40",
            "--batch",
            "16",
            "--teacher-steps",
            "2,4",
            "--student-steps",
            "1,4",
            "--sweep-guidance",
            "0,2",
            "--sweep-steps",
            "2",
            "--sweep-n",
            "16",
            "--bootstrap",
            "20",
            "--timing-batch",
            "4",
            "--timing-reps",
            "1",
            "--out",
            &p(out),
        ];
        ok(fewstep(&[&args[..], extra].concat()))
    };
    let report = |out: &str| report_with(out, &[]);
    let said = report("r1");
    assert!(said.contains("report written"), "{said}");
    let r1 = results(&dir.join("r1"));
    let rows = scores(&r1);
    let names: Vec<(&str, u64)> = rows.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(
        names,
        [("teacher", 2), ("teacher", 4), ("guided", 1), ("guided", 4)]
    );
    // NFE is honest: a guided teacher step costs 2, a student step 1.
    let nfe: Vec<u64> = r1["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["nfe"].as_u64().unwrap())
        .collect();
    assert_eq!(nfe, [4, 8, 1, 4]);
    // The sweep covers the teacher and the student: 2 models × 2 weights.
    assert_eq!(r1["guidance_sweep"].as_array().unwrap().len(), 4);
    assert!(r1["real_vs_real"]["fid"].as_f64().unwrap() >= 0.0);
    for f in [
        "report.md",
        "report.html",
        "fid_vs_nfe.png",
        "latency_vs_nfe.png",
        "fid_vs_guidance.png",
        "grid-teacher-004.png",
        "grid-guided-001.png",
    ] {
        assert!(dir.join("r1").join(f).is_file(), "missing {f}");
    }
    let html = std::fs::read_to_string(dir.join("r1/report.html")).unwrap();
    assert!(
        html.contains("data:image/png;base64,"),
        "images are inlined"
    );

    // Same seeds, same numbers (wall clock aside), from a fresh sample cache (r2.samples)…
    report("r2");
    assert_eq!(scores(&results(&dir.join("r2"))), rows);
    // … and from r1's cache: a re-run (as after a kill) samples nothing again.
    report("r1");
    let again = results(&dir.join("r1"));
    assert_eq!(scores(&again), rows);
    assert_eq!(again["protocol"]["new_chunks"], 0, "{}", again["protocol"]);
    assert!(again["protocol"]["cached_chunks"].as_u64().unwrap() > 0);
    // A report with a cache of its own reusing r1's copies every set in, sampling none.
    report_with("r3", &["--reuse-samples", &p("r1.samples")]);
    let reused = results(&dir.join("r3"));
    assert_eq!(scores(&reused), rows);
    assert_eq!(
        reused["protocol"]["new_chunks"], 0,
        "{}",
        reused["protocol"]
    );
    let e = err(fewstep(&[
        "eval",
        "report",
        "--runs",
        &p("teacher"),
        "--features",
        &p("feat"),
        "--reference",
        "digits-test",
        "--out",
        &p("r4"),
        "--reuse-samples",
        &p("feat"),
    ]));
    assert!(e.contains("not a fewstep sample cache"), "{e}");
    // Every FID carries an interval that holds it, and KID comes with it.
    for m in again["models"].as_array().unwrap() {
        let (fid, ci) = (
            m["metrics"]["fid"].as_f64().unwrap(),
            &m["metrics"]["fid_ci95"],
        );
        let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
        assert!(lo <= hi && lo >= 0.0 && hi.is_finite(), "{m}");
        assert!(hi >= 0.5 * fid, "interval [{lo}, {hi}] far below FID {fid}");
        assert!(m["metrics"]["kid"]["kid"].is_f64(), "{m}");
        assert!(m["timing"]["batch1_ms"].as_f64().unwrap() > 0.0, "{m}");
    }

    // Re-drawing from results.json keeps the numbers.
    ok(fewstep(&["eval", "render", "--report", &p("r1")]));
    assert_eq!(scores(&results(&dir.join("r1"))), rows);

    // The sampling benchmark: both models in one run, NFE counted honestly.
    let b = ok(fewstep(&[
        "--quiet",
        "bench",
        "sampling",
        "--teacher",
        &p("teacher"),
        "--student",
        &p("guided"),
        "--teacher-steps",
        "4",
        "--student-steps",
        "1",
        "--n",
        "8",
        "--batch",
        "4",
        "--json",
    ]));
    let b: serde_json::Value = serde_json::from_str(b.trim()).expect("one JSON object");
    assert_eq!(
        (b["teacher_nfe"].as_u64(), b["student_nfe"].as_u64()),
        (Some(8), Some(1))
    );
    assert_eq!(b["nfe_ratio"].as_f64(), Some(8.0));
    assert!(b["speedup"].as_f64().unwrap() > 0.0, "{b}");
    let e = err(fewstep(&[
        "bench",
        "sampling",
        "--teacher",
        &p("guided"),
        "--student",
        &p("guided"),
    ]));
    assert!(e.contains("--teacher takes a run"), "{e}");

    // Errors name the thing and the fix.
    let e = err(fewstep(&[
        "eval",
        "fid",
        "--samples",
        "digits-test",
        "--reference",
        "digits-test",
        "--features",
        &p("nowhere"),
    ]));
    assert!(e.contains("nowhere") && e.contains("train-features"), "{e}");
    let e = err(fewstep(&["eval", "render", "--report", &p("teacher")]));
    assert!(
        e.contains("results.json") && e.contains("eval report"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).ok();
}
