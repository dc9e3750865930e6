//! The pipeline's serving stage: the shipped student as ONNX (parity-checked against burn under
//! tract), a TensorRT engine where a TensorRT library is found — otherwise the exact command
//! that builds it on the serving host — and a Triton model repository; `export.json` records
//! it all for the report's "Serving" section.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use export::check::{CheckOptions, CheckReport};
use export::engine::{BatchProfile, EngineOptions, EngineSidecar, Flavor, build_engine};
use export::error::ExportError;
use export::source::Source;
use export::triton::{TritonOptions, write_repository};
use export::triton_accel::Accelerator;

use teacher::latent::source::DecoderChoice;

use crate::config::ExportStage;

/// `export.json` in the export folder.
pub const SUMMARY: &str = "export.json";

/// What `export.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportSummary {
    pub onnx: String,
    pub onnx_bytes: u64,
    pub steps: usize,
    pub parity: Parity,
    pub engine: EngineSummary,
    pub sampler: SamplerSummary,
    pub triton: TritonSummary,
}

/// The tract parity check of one exported graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Parity {
    /// What the graph was compared with ("tract" for the denoiser: burn's output under tract).
    #[serde(alias = "runtime")]
    pub reference: String,
    pub batch: usize,
    pub max_abs_err: f64,
    pub tolerance: f64,
}

impl Parity {
    fn new(reference: &str, r: &CheckReport) -> Self {
        Parity {
            reference: reference.into(),
            batch: r.batch,
            max_abs_err: r.max_abs_err,
            tolerance: r.tolerance,
        }
    }
}

/// The TensorRT engine: built (with its sidecar), or why not (with the serving-host commands).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineSummary {
    pub built: bool,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub sidecar: Option<serde_json::Value>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Which runtime and GPUs can load the engine (it is never put into the Triton repository).
    #[serde(default)]
    pub loads_on: Option<String>,
}

/// The unrolled sampler graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplerSummary {
    pub onnx: String,
    pub onnx_bytes: u64,
    pub steps: usize,
    pub guidance: f64,
    pub inputs: Vec<String>,
    pub parity: Parity,
    /// Network evaluations per image of the whole graph (a latent chain's decoder included).
    #[serde(default)]
    pub nfe: Option<usize>,
    /// A latent chain: the decoder ending the graph, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<String>,
}

/// The Triton model repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TritonSummary {
    pub model_file: String,
    pub config: String,
    pub backend: String,
    /// ONNX Runtime's execution provider in the config (absent in summaries before it existed).
    #[serde(default)]
    pub accelerator: String,
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

/// Export, check, build (or plan) the engine, write the Triton repository; a latent chain's
/// sampler graph ends in `decoder`.
pub fn ship(
    prog: &Path,
    out: &Path,
    ex: &ExportStage,
    decoder: Option<&DecoderChoice>,
    dev: &Device,
) -> Result<String> {
    let steps = ex.steps;
    let source = Source::load(prog, Some(steps), dev)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let onnx = out.join(format!("student-{steps}.onnx"));
    let opts = CheckOptions {
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
    let engine = engine(&onnx, &plan, batch)?;
    // The whole sampler as one graph: one engine call per batch of images.
    let sampler_onnx = out.join(format!("sampler-{steps}.onnx"));
    let sampler = ship_sampler(prog, ex, decoder, &sampler_onnx, &opts, dev)?;
    let repo = out.join("model_repository");
    // Both graphs under onnxruntime_onnx with the TensorRT accelerator: the engine built here is
    // TensorRT-RTX, which Triton's tensorrt_plan backend cannot load (it stays beside, labelled).
    let accelerator = Accelerator::default();
    let triton_opts = |name: &str| TritonOptions {
        name: Some(name.into()),
        max_batch: Some(batch.max),
        accelerator: accelerator.clone(),
        ..TritonOptions::default()
    };
    write_repository(&sampler_onnx, &repo, &triton_opts("fewstep_sampler"))?;
    let triton = write_repository(&onnx, &repo, &triton_opts("fewstep_student"))?;
    let summary = ExportSummary {
        onnx: show(&onnx),
        onnx_bytes,
        steps,
        parity: Parity::new("tract", &r),
        sampler,
        triton: TritonSummary {
            model_file: show(&triton.model_file),
            config: show(&triton.config),
            backend: "onnxruntime_onnx".into(),
            accelerator: accelerator.to_string(),
        },
        engine,
    };
    let text = serde_json::to_string_pretty(&summary).context("serialising export.json")?;
    teacher::checkpoint::write_atomic(&out.join(SUMMARY), text.as_bytes())?;
    let built = if summary.engine.built {
        "built"
    } else {
        "planned (no TensorRT here)"
    };
    Ok(format!(
        "{} (parity {:.1e} ≤ {:.0e} under tract); unrolled sampler {:.1e}; engine {built}; Triton {}",
        onnx.display(),
        r.max_abs_err,
        r.tolerance,
        summary.sampler.parity.max_abs_err,
        triton.config.display()
    ))
}

/// The unrolled sampler of the shipped round (a latent chain's ending in `decoder`) exported to
/// `path` and checked against `fewstep sample`.
fn ship_sampler(
    prog: &Path,
    ex: &ExportStage,
    decoder: Option<&DecoderChoice>,
    path: &Path,
    opts: &CheckOptions,
    dev: &Device,
) -> Result<SamplerSummary> {
    let unrolled = Source::load_unrolled(prog, ex.steps, ex.guidance, decoder, dev)?;
    let (onnx_bytes, rs) = export_checked(&unrolled, path, opts, dev, "`fewstep sample`")?;
    let u = unrolled.unroll.as_ref();
    Ok(SamplerSummary {
        onnx: show(path),
        onnx_bytes,
        steps: ex.steps,
        guidance: ex.guidance,
        inputs: unrolled
            .inputs
            .iter()
            .map(|i| i.name().to_string())
            .collect(),
        parity: Parity::new("fewstep sample (same seed)", &rs),
        nfe: u.map(|u| u.nfe()),
        decoder: u.and_then(|u| u.decoding.as_ref()).map(|d| {
            format!(
                "`{}`, {} steps of {}",
                d.run().display(),
                d.steps(),
                d.describe()
            )
        }),
    })
}

/// Build the engine where TensorRT is found; otherwise record why, with the serving-host
/// command lines the error carries.
fn engine(onnx: &Path, plan: &Path, batch: BatchProfile) -> Result<EngineSummary> {
    let opts = EngineOptions {
        batch,
        flavor: Flavor::Rtx,
        timing_cache: None,
    };
    match build_engine(onnx, plan, &opts) {
        Ok(sc) => Ok(EngineSummary {
            built: true,
            plan: Some(show(plan)),
            sidecar: Some(sc.to_json()),
            reason: None,
            loads_on: Some(format!("TensorRT-RTX engine: {}", sc.flavor.loads_on())),
        }),
        Err(ExportError::TensorRt(why)) => Ok(EngineSummary {
            built: false,
            plan: None,
            sidecar: None,
            reason: Some(why),
            loads_on: None,
        }),
        Err(e) => Err(e).context("building the TensorRT engine"),
    }
}

/// Export `source` to `path` and check it under tract; an error when it differs from
/// `reference` (what the check compares with) beyond the tolerance. Returns the file's size.
fn export_checked(
    source: &Source,
    path: &Path,
    opts: &CheckOptions,
    dev: &Device,
    reference: &str,
) -> Result<(u64, CheckReport)> {
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
    let v: ExportSummary = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is damaged: delete the export folder and re-run",
            path.display()
        )
    })?;
    let mut md = String::new();
    let p = &v.parity;
    let _ = writeln!(
        md,
        "- ONNX: `{}` ({:.1} KiB, the {}-step student, preconditioning included); parity vs burn under {}: max abs error {:.2e} at batch {} (tolerance {:.0e}).",
        v.onnx,
        v.onnx_bytes as f64 / 1024.0,
        v.steps,
        p.reference,
        p.max_abs_err,
        p.batch,
        p.tolerance
    );
    let sm = &v.sampler;
    let decoder = sm
        .decoder
        .as_ref()
        .map(|d| format!(", then the decoder {d}"))
        .unwrap_or_default();
    let nfe = sm.nfe.map(|n| format!(" (NFE {n})")).unwrap_or_default();
    let _ = writeln!(
        md,
        "- Unrolled sampler: `{}` ({:.1} KiB): all {} steps{decoder} in one graph{nfe}, inputs {}; equals `fewstep sample` at the same seed to {:.2e} (batch {}).",
        sm.onnx,
        sm.onnx_bytes as f64 / 1024.0,
        sm.steps,
        sm.inputs.join(", "),
        sm.parity.max_abs_err,
        sm.parity.batch
    );
    engine_lines(&mut md, &v.engine)?;
    let _ = writeln!(
        md,
        "- Triton model repository: `{}` (denoiser `fewstep_student` and sampler `fewstep_sampler`, backend {} with ONNX Runtime's {} accelerator, which builds a datacenter engine on the serving GPU; dynamic batching).",
        v.triton.config,
        v.triton.backend,
        if v.triton.accelerator.is_empty() {
            "default"
        } else {
            &v.triton.accelerator
        }
    );
    Ok(eval::report::Section {
        title: "Serving".into(),
        markdown: md,
        data: serde_json::to_value(&v).context("serialising the serving section")?,
    })
}

/// The engine's lines of the "Serving" section.
fn engine_lines(md: &mut String, e: &EngineSummary) -> Result<()> {
    if let (true, Some(plan), Some(sc)) = (e.built, &e.plan, &e.sidecar) {
        let sc =
            EngineSidecar::from_json(sc).map_err(|why| anyhow::anyhow!("export.json: {why}"))?;
        let b = sc.batch;
        let _ = writeln!(
            md,
            "- TensorRT engine: `{plan}` (TensorRT {} {}, {} network layers, {} bytes, batch profile {}:{}:{}); it {}, so the Triton repository serves the ONNX instead.",
            sc.flavor,
            sc.tensorrt_version,
            sc.network_layers,
            sc.engine_bytes,
            b.min,
            b.opt,
            b.max,
            sc.flavor.loads_on()
        );
        return Ok(());
    }
    let why = e.reason.as_deref().unwrap_or("");
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
    Ok(())
}
