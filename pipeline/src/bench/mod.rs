//! `fewstep bench …`: speed is measured here, never in tests. `bench suite` takes the ratios the
//! project promises, each in one run on one backend, over a finished pipeline run folder:
//! training throughput vs PyTorch, student-4 vs teacher-50 sampling, ONNX (tract) vs burn, and
//! distillation vs teacher training cost. It writes `bench.json` and `bench.md`.

pub mod distill;
pub mod sampling;
pub mod scaling;
pub mod unet;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Device;
use serde::Serialize;

use crate::config::PipelineConfig;
use crate::run::PipelineRun;

/// Which benchmarks `bench suite` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bench {
    /// Training throughput vs PyTorch's twin.
    Train,
    /// Student-4 vs teacher-50 sampling.
    Sampling,
    /// The exported ONNX file (tract) vs burn.
    Onnx,
    /// Distillation vs teacher training cost.
    Distill,
}

/// What `fewstep bench suite` measures, over a finished pipeline run.
#[derive(Debug, Clone)]
pub struct SuiteSettings {
    /// The pipeline run folder.
    pub run: PathBuf,
    /// A pipeline config to use instead of the run's own.
    pub config: Option<PathBuf>,
    pub data: Option<PathBuf>,
    /// Output folder (default `RUN/bench`).
    pub out: Option<PathBuf>,
    /// The benchmarks to run (empty: all).
    pub only: Vec<Bench>,
    /// The teacher config whose U-Net is timed against PyTorch.
    pub unet_config: PathBuf,
    pub python: PathBuf,
    pub pytorch_script: PathBuf,
    pub reps: usize,
    pub n: usize,
    pub batch: usize,
    pub teacher_steps: usize,
    pub student_steps: usize,
    pub onnx_batch: Vec<usize>,
    /// Timed optimizer steps of each stage for the distillation cost.
    pub distill_steps: u64,
}

/// Threads the CPU backends use: RAYON_NUM_THREADS (flex), OMP_NUM_THREADS (libtorch), else
/// every core.
pub fn threads() -> usize {
    ["RAYON_NUM_THREADS", "OMP_NUM_THREADS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[derive(Debug, Serialize)]
struct TrainBench {
    unet_config: String,
    fewstep: unet::UnetTiming,
    pytorch: Option<unet::PytorchTiming>,
    /// Why PyTorch did not run (no interpreter, no torch, different network).
    pytorch_skipped: Option<String>,
    /// fewstep train img/s ÷ PyTorch train img/s.
    ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
struct OnnxRow {
    batch: usize,
    tract_ms: f64,
    burn_ms: f64,
    /// tract ÷ burn (< 1: the exported file runs faster than burn).
    ratio: f64,
}

#[derive(Debug, Serialize)]
struct Suite {
    command: String,
    backend: String,
    threads: usize,
    train: Option<TrainBench>,
    sampling: Option<sampling::SamplingTiming>,
    onnx_file: Option<String>,
    onnx: Vec<OnnxRow>,
    distill: Option<distill::DistillCost>,
    /// What was not measured, and why.
    skipped: Vec<String>,
}

fn train_bench(
    a: &SuiteSettings,
    device: &Device,
    skipped: &mut Vec<String>,
) -> Result<TrainBench> {
    let cfg = teacher::config::TeacherConfig::from_file(&a.unet_config)?;
    let batch = cfg.train.batch_size;
    let fewstep = unet::time_unet(&cfg, batch, a.reps, device)
        .with_context(|| format!("timing the U-Net of `{}`", a.unet_config.display()))?;
    let (mut pytorch, mut why) = (None, None);
    match unet::pytorch(&a.python, &a.pytorch_script, batch, a.reps, threads()) {
        Ok(p) if p.params != fewstep.params => {
            why = Some(format!(
                "the PyTorch twin has {} parameters, fewstep's `{}` {}: they time different networks",
                p.params,
                a.unet_config.display(),
                fewstep.params
            ))
        }
        Ok(p) => pytorch = Some(p),
        Err(e) => why = Some(format!("{e:#}")),
    }
    if let Some(w) = &why {
        skipped.push(format!("training throughput vs PyTorch: {w}"));
    }
    Ok(TrainBench {
        unet_config: a.unet_config.display().to_string(),
        ratio: pytorch
            .as_ref()
            .map(|p| fewstep.train_img_per_s / p.train_img_per_s),
        fewstep,
        pytorch,
        pytorch_skipped: why,
    })
}

/// The best 4-step student of a pipeline run: the report's headline pick, else progressive.
fn best_student(run: &Path) -> PathBuf {
    let name = std::fs::read_to_string(run.join("report").join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["headline"]["best_student4"].as_str().map(String::from))
        .unwrap_or_else(|| "progressive".into());
    run.join(name)
}

fn markdown(s: &Suite) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# fewstep benchmarks\n\nProduced by:\n\n```sh\n{}\n```\n",
        s.command
    );
    let _ = writeln!(md, "Backend {}, {} threads.\n", s.backend, s.threads);
    let _ = writeln!(
        md,
        "| benchmark | fewstep | reference | ratio |\n|---|---:|---:|---:|"
    );
    if let Some(t) = &s.train {
        let (p, r) = match (&t.pytorch, t.ratio) {
            (Some(p), Some(r)) => (
                format!(
                    "{:.1} img/s (PyTorch {}, {} threads)",
                    p.train_img_per_s, p.torch_version, p.threads
                ),
                format!("{r:.2}×"),
            ),
            _ => ("not run".into(), "–".into()),
        };
        let _ = writeln!(
            md,
            "| training throughput, U-Net of `{}` ({} params, batch {}) | {:.1} img/s | {p} | {r} |",
            t.unet_config, t.fewstep.params, t.fewstep.batch, t.fewstep.train_img_per_s
        );
    }
    if let Some(x) = &s.sampling {
        let _ = writeln!(
            md,
            "| sampling {} images (batch {}): {} student at {} steps (NFE {}) vs teacher at {} guided steps (NFE {}) | {:.1} s | {:.1} s | {:.1}× faster |",
            x.n,
            x.batch,
            x.student_kind,
            x.student_steps,
            x.student_nfe,
            x.teacher_steps,
            x.teacher_nfe,
            x.student_seconds,
            x.teacher_seconds,
            x.speedup
        );
    }
    for r in &s.onnx {
        let _ = writeln!(
            md,
            "| ONNX forward, batch {} (tract vs burn) | {:.2} ms | {:.2} ms (burn) | {:.2}× |",
            r.batch, r.tract_ms, r.burn_ms, r.ratio
        );
    }
    if let Some(d) = &s.distill {
        let _ = writeln!(
            md,
            "| distillation (guided + progressive + consistency) vs teacher training, projected from {} timed steps each | {:.0} s | {:.0} s (teacher) | {:.2}× |",
            d.timed_steps, d.distillation_seconds, d.teacher_seconds, d.ratio
        );
        let _ = writeln!(
            md,
            "\n| stage | s / step | steps in config | projected s |\n|---|---:|---:|---:|"
        );
        for c in &d.stages {
            let _ = writeln!(
                md,
                "| {} | {:.3} | {} | {:.0} |",
                c.stage, c.seconds_per_step, c.config_steps, c.projected_seconds
            );
        }
    }
    if !s.skipped.is_empty() {
        let _ = writeln!(md, "\nNot measured:\n");
        for w in &s.skipped {
            let _ = writeln!(md, "- {w}");
        }
    }
    md
}

/// The exported student's ONNX file (tract) against burn, per batch size.
fn onnx_bench(
    a: &SuiteSettings,
    cfg: &PipelineConfig,
    device: &Device,
    skipped: &mut Vec<String>,
) -> Result<(Option<String>, Vec<OnnxRow>)> {
    let steps = cfg.export.steps;
    let file = a.run.join("export").join(format!("student-{steps}.onnx"));
    if !file.is_file() {
        skipped.push(format!(
            "ONNX vs burn: `{}` does not exist (the pipeline's export stage writes it)",
            file.display()
        ));
        return Ok((None, Vec::new()));
    }
    let prog = a.run.join("progressive");
    let source = export::source::Source::load(&prog, Some(steps), device)?;
    let rows = export::bench::bench(&file, &source, device, &a.onnx_batch, a.reps * 2, 0)?;
    let rows = rows
        .iter()
        .map(|r| OnnxRow {
            batch: r.batch,
            tract_ms: r.tract_ms,
            burn_ms: r.burn_ms,
            ratio: r.ratio(),
        })
        .collect();
    Ok((Some(file.display().to_string()), rows))
}

/// Every benchmark `a.only` asks for (all when empty), over the pipeline run `a.run`; writes
/// `bench.json` and `bench.md` and returns the markdown.
pub fn suite(a: &SuiteSettings, device: &Device, quiet: bool) -> Result<String> {
    let pr = PipelineRun::open(&a.run)?;
    let out = a.out.clone().unwrap_or_else(|| a.run.join("bench"));
    let cfg = match &a.config {
        Some(p) => PipelineConfig::from_file(p)?,
        None => pr.config.clone(),
    };
    let say = |what: &str| {
        if !quiet {
            eprintln!("bench: {what} …");
        }
    };
    let want = |b: Bench| a.only.is_empty() || a.only.contains(&b);
    let mut skipped = Vec::new();
    let mut suite = Suite {
        command: crate::report::command_line(),
        backend: format!("{device:?}"),
        threads: threads(),
        train: None,
        sampling: None,
        onnx_file: None,
        onnx: Vec::new(),
        distill: None,
        skipped: Vec::new(),
    };
    if want(Bench::Train) {
        say("training throughput (fewstep, then PyTorch)");
        suite.train = Some(train_bench(a, device, &mut skipped)?);
    }
    if want(Bench::Sampling) {
        say("sampling");
        let s = sampling::SamplingSettings {
            teacher: pr.teacher.clone(),
            student: best_student(&a.run),
            teacher_steps: a.teacher_steps,
            student_steps: a.student_steps,
            n: a.n,
            batch: a.batch,
            guidance: cfg.eval.guidance,
        };
        suite.sampling = Some(sampling::measure(&s, device, quiet)?);
    }
    if want(Bench::Onnx) {
        say("ONNX (tract) vs burn");
        (suite.onnx_file, suite.onnx) = onnx_bench(a, &cfg, device, &mut skipped)?;
    }
    if want(Bench::Distill) {
        say("distillation vs teacher training, a few steps of each stage");
        let t_ck = teacher::checkpoint::Checkpoint::load(&pr.teacher)?;
        let mut c = cfg.clone();
        c.teacher = teacher::config::TeacherConfig::from_toml(&t_ck.header.config)
            .with_context(|| format!("the config stored in `{}`", pr.teacher.display()))?;
        let data = a.data.as_deref().or(pr.data.as_deref());
        let scratch = a.run.join("bench-scratch");
        let k = a.distill_steps;
        suite.distill = Some(distill::measure(
            &c,
            &pr.teacher,
            data,
            k,
            &scratch,
            device,
        )?);
    }
    suite.skipped = skipped;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let json = serde_json::to_string_pretty(&suite).expect("plain data");
    teacher::checkpoint::write_atomic(&out.join("bench.json"), json.as_bytes())?;
    let md = markdown(&suite);
    teacher::checkpoint::write_atomic(&out.join("bench.md"), md.as_bytes())?;
    Ok(format!("{md}\nwrote {}", out.join("bench.json").display()))
}
