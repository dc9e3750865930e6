//! Distillation cost vs teacher training cost, measured in one process on one backend: a few
//! optimizer steps of every stage (teacher, guided, one progressive round, consistency) into a
//! scratch folder, the steady-state seconds per step read from the stage's own `metrics.jsonl`
//! (the second logging window, so start-up is not counted), scaled by the steps the config asks
//! for. The recorded wall clocks of real runs are reported next to it by the pipeline report.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use student::config::StudentConfig;
use teacher::config::{TeacherConfig, TrainConfig};
use teacher::train::TrainOptions;

/// Seconds per optimizer step of one stage and what the config makes of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageCost {
    pub stage: String,
    pub seconds_per_step: f64,
    /// Optimizer steps the config asks for (progressive: per round × rounds).
    pub config_steps: u64,
    /// seconds_per_step × config_steps.
    pub projected_seconds: f64,
}

/// The stages' costs; `ratio` = Σ distillation projected seconds ÷ the teacher's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DistillCost {
    pub stages: Vec<StageCost>,
    pub timed_steps: u64,
    pub distillation_seconds: f64,
    pub teacher_seconds: f64,
    pub ratio: f64,
}

/// Steady-state seconds per step of the run in `dir`: its last metrics window.
fn last_window(dir: &Path, batch: usize) -> Result<f64> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("benchmark stage wrote no `{}`", path.display()))?;
    let last = text.lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(last)
        .with_context(|| format!("`{}`: last line is not JSON", path.display()))?;
    let ips = v["img_per_s"].as_f64().unwrap_or(0.0);
    if ips <= 0.0 {
        bail!("`{}`: no img_per_s in `{last}`", path.display());
    }
    Ok(batch as f64 / ips)
}

/// Log twice in `k` steps, checkpoint only at the end.
fn timing(t: &TrainConfig, k: u64) -> TrainConfig {
    TrainConfig {
        log_every: (k / 2).max(1),
        checkpoint_every: k,
        ..t.clone()
    }
}

/// Time `k` steps of each stage into `scratch` (a fresh folder, removed afterwards).
pub fn measure(
    teacher_cfg: &TeacherConfig,
    students: &StudentConfig,
    teacher_run: &Path,
    data: Option<&Path>,
    k: u64,
    scratch: &Path,
    device: &Device,
) -> Result<DistillCost> {
    let k = k.max(2);
    if scratch.exists() {
        std::fs::remove_dir_all(scratch)
            .with_context(|| format!("cannot clear `{}`", scratch.display()))?;
    }
    let opts = |name: &str| TrainOptions {
        out: scratch.join(name),
        data: data.map(PathBuf::from),
        resume: false,
        steps: Some(k),
        quiet: true,
        device: device.clone(),
    };
    let mut t = teacher_cfg.clone();
    t.train = timing(&t.train, k);
    let mut s = students.clone();
    s.guided.train = timing(&s.guided.train, k);
    s.progressive.train = timing(&s.progressive.train, k);
    s.consistency.train = timing(&s.consistency.train, k);

    let mut stages = Vec::new();
    let mut push = |stage: &str, dir: PathBuf, batch: usize, config_steps: u64| -> Result<()> {
        let sps = last_window(&dir, batch)?;
        stages.push(StageCost {
            stage: stage.into(),
            seconds_per_step: sps,
            config_steps,
            projected_seconds: sps * config_steps as f64,
        });
        Ok(())
    };
    teacher::train::train_teacher(&t, &opts("teacher")).context("timing the teacher")?;
    push(
        "teacher",
        scratch.join("teacher"),
        t.train.batch_size,
        teacher_cfg.train.steps,
    )?;
    // Students are timed from the real teacher (the network sizes are what matter).
    student::guided::run_guided(teacher_run, &s, &opts("guided")).context("timing guided")?;
    push(
        "guided",
        scratch.join("guided"),
        s.guided.train.batch_size,
        students.guided.train.steps,
    )?;
    let start = s.progressive.start_steps;
    let guided = scratch.join("guided");
    student::progressive::run_progressive(&guided, start / 2, &s, &opts("progressive"))
        .context("timing a progressive round")?;
    let rounds = start.trailing_zeros() as u64; // start → 1 in halvings
    push(
        "progressive",
        student::progressive::round_dir(&scratch.join("progressive"), start / 2),
        s.progressive.train.batch_size,
        students.progressive.train.steps * rounds,
    )?;
    student::consistency::run_consistency(&guided, &s, &opts("consistency"))
        .context("timing consistency")?;
    push(
        "consistency",
        scratch.join("consistency"),
        s.consistency.train.batch_size,
        students.consistency.train.steps,
    )?;
    let _ = std::fs::remove_dir_all(scratch);
    let teacher_seconds = stages[0].projected_seconds;
    let distillation_seconds: f64 = stages[1..].iter().map(|c| c.projected_seconds).sum();
    Ok(DistillCost {
        stages,
        timed_steps: k,
        distillation_seconds,
        teacher_seconds,
        ratio: distillation_seconds / teacher_seconds,
    })
}
