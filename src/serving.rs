//! The pipeline's serving stage: the shipped student as ONNX (parity-checked against burn under
//! tract), a TensorRT engine where a TensorRT library is found — otherwise the exact command
//! that builds it on the serving host — and a Triton model repository; `export.json` records
//! it all for the report's "Serving" section.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde_json::json;

use export::engine::{BatchProfile, EngineOptions, Flavor, build_engine};
use export::error::ExportError;

use crate::pipeline::ExportStage;

/// `export.json` in the export folder.
pub const SUMMARY: &str = "export.json";

/// Export, check, build (or plan) the engine, write the Triton repository.
pub fn ship(prog: &Path, out: &Path, ex: &ExportStage, dev: &Device) -> Result<String> {
    let steps = ex.steps;
    let source = export::source::Source::load(prog, Some(steps), dev)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let onnx = out.join(format!("student-{steps}.onnx"));
    let opts = export::check::CheckOptions {
        batch: ex.check_batch,
        seed: 0,
        tolerance: None,
        save_io: None,
    };
    let (onnx_bytes, r) = export_checked(&source, &onnx, &opts, dev, "burn")?;
    let batch: BatchProfile = ex
        .engine_batch
        .parse()
        .map_err(|e| anyhow::anyhow!("export.engine_batch: {e}"))?;
    let plan = out.join(format!("student-{steps}.plan"));
    let engine_opts = EngineOptions {
        batch,
        flavor: Flavor::Rtx,
        timing_cache: None,
    };
    let engine = match build_engine(&onnx, &plan, &engine_opts) {
        Ok(sc) => {
            json!({ "built": true, "plan": plan.display().to_string(), "sidecar": sc.to_json() })
        }
        // No TensorRT here: the error carries the serving-host command lines.
        Err(ExportError::TensorRt(why)) => json!({ "built": false, "reason": why }),
        Err(e) => return Err(e).context("building the TensorRT engine"),
    };
    let built = engine["built"].as_bool() == Some(true);
    // The whole sampler as one graph: one engine call per batch of images.
    let w = ex.guidance;
    let unrolled = export::source::Source::load_unrolled(prog, steps, w, dev)?;
    let sampler = out.join(format!("sampler-{steps}.onnx"));
    let (sampler_bytes, rs) = export_checked(&unrolled, &sampler, &opts, dev, "`fewstep sample`")?;
    export::triton::write_repository(
        &sampler,
        &out.join("model_repository"),
        &export::triton::TritonOptions {
            name: Some("fewstep_sampler".into()),
            max_batch: Some(batch.max),
            engine: None,
        },
    )?;
    let triton = export::triton::write_repository(
        &onnx,
        &out.join("model_repository"),
        &export::triton::TritonOptions {
            name: Some("fewstep_student".into()),
            max_batch: Some(batch.max),
            engine: built.then(|| plan.clone()),
        },
    )?;
    let summary = json!({
        "onnx": onnx.display().to_string(),
        "onnx_bytes": onnx_bytes,
        "steps": steps,
        "parity": { "runtime": "tract", "batch": r.batch, "max_abs_err": r.max_abs_err,
                    "tolerance": r.tolerance },
        "engine": engine,
        "sampler": { "onnx": sampler.display().to_string(), "onnx_bytes": sampler_bytes,
                     "steps": steps, "guidance": w, "inputs": unrolled.inputs.iter().map(|i| i.name()).collect::<Vec<_>>(),
                     "parity": { "reference": "fewstep sample (same seed)", "batch": rs.batch,
                                 "max_abs_err": rs.max_abs_err, "tolerance": rs.tolerance } },
        "triton": { "model_file": triton.model_file.display().to_string(),
                    "config": triton.config.display().to_string(),
                    "backend": if built { "tensorrt_plan" } else { "onnxruntime_onnx" } },
    });
    let text = serde_json::to_string_pretty(&summary).expect("plain data");
    teacher::checkpoint::write_atomic(&out.join(SUMMARY), text.as_bytes())?;
    Ok(format!(
        "{} (parity {:.1e} ≤ {:.0e} under tract); unrolled sampler {:.1e}; engine {}; Triton {}",
        onnx.display(),
        r.max_abs_err,
        r.tolerance,
        rs.max_abs_err,
        if built {
            "built"
        } else {
            "planned (no TensorRT here)"
        },
        triton.config.display()
    ))
}

/// Export `source` to `path` and check it under tract; an error when it differs from
/// `reference` (what the check compares with) beyond the tolerance. Returns the file's size.
fn export_checked(
    source: &export::source::Source,
    path: &Path,
    opts: &export::check::CheckOptions,
    dev: &Device,
    reference: &str,
) -> Result<(u64, export::check::CheckReport)> {
    let model = export::export_model(source, &export::ExportOptions::default())?;
    let bytes = export::write_model(&model, path)?;
    let r = export::check::check(path, source, dev, opts)?;
    if !r.passed() {
        bail!(
            "`{}` differs from {reference} by {:.3e} > {:.0e}",
            path.display(),
            r.max_abs_err,
            r.tolerance
        );
    }
    Ok((bytes, r))
}

/// The report's "Serving" section from `export.json`.
pub fn section(export_dir: &Path) -> Result<eval::report::Section> {
    let path = export_dir.join(SUMMARY);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read `{}`: re-run the export stage", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is damaged: delete the export folder and re-run",
            path.display()
        )
    })?;
    let mut md = String::new();
    let p = &v["parity"];
    let _ = writeln!(
        md,
        "- ONNX: `{}` ({:.1} KiB, the {}-step student, preconditioning included); parity vs burn under {}: max abs error {:.2e} at batch {} (tolerance {:.0e}).",
        v["onnx"].as_str().unwrap_or("?"),
        v["onnx_bytes"].as_f64().unwrap_or(0.0) / 1024.0,
        v["steps"],
        p["runtime"].as_str().unwrap_or("?"),
        p["max_abs_err"].as_f64().unwrap_or(f64::NAN),
        p["batch"],
        p["tolerance"].as_f64().unwrap_or(f64::NAN)
    );
    let sm = &v["sampler"];
    if sm.is_object() {
        let _ = writeln!(
            md,
            "- Unrolled sampler: `{}` ({:.1} KiB): all {} steps in one graph, inputs {}; equals `fewstep sample` at the same seed to {:.2e} (batch {}).",
            sm["onnx"].as_str().unwrap_or("?"),
            sm["onnx_bytes"].as_f64().unwrap_or(0.0) / 1024.0,
            sm["steps"],
            sm["inputs"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            sm["parity"]["max_abs_err"].as_f64().unwrap_or(f64::NAN),
            sm["parity"]["batch"]
        );
    }
    let e = &v["engine"];
    if e["built"].as_bool() == Some(true) {
        let sc = &e["sidecar"];
        let _ = writeln!(
            md,
            "- TensorRT engine: `{}` (TensorRT {} {}, {} network layers, {} bytes, batch profile {}).",
            e["plan"].as_str().unwrap_or("?"),
            sc["flavor"].as_str().unwrap_or("?"),
            sc["tensorrt_version"].as_str().unwrap_or("?"),
            sc["network_layers"],
            sc["engine_bytes"],
            format!(
                "{}:{}:{}",
                sc["batch"]["min"], sc["batch"]["opt"], sc["batch"]["max"]
            )
        );
    } else {
        let why = e["reason"].as_str().unwrap_or("");
        let first = why.lines().next().unwrap_or("");
        let _ = writeln!(
            md,
            "- TensorRT engine: **not built here** — {first}\n\n  Build it on the serving host:\n"
        );
        let _ = writeln!(md, "```sh");
        for l in why.lines().skip(1).map(str::trim).filter(|l| !l.is_empty()) {
            if !l.ends_with(':') {
                let _ = writeln!(md, "{l}");
            }
        }
        let _ = writeln!(md, "```\n");
    }
    let t = &v["triton"];
    let _ = writeln!(
        md,
        "- Triton model repository: `{}` (denoiser `fewstep_student`, backend {}; sampler `fewstep_sampler`, onnxruntime; dynamic batching).",
        t["config"].as_str().unwrap_or("?"),
        t["backend"].as_str().unwrap_or("?")
    );
    Ok(eval::report::Section {
        title: "Serving".into(),
        markdown: md,
        data: v,
    })
}
