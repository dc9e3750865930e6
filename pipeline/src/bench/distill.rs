//! Distillation cost vs teacher training cost, measured in one process on one backend: a few
//! optimizer steps of every stage (teacher, guided, one progressive round, consistency) into a
//! scratch folder, the steady-state seconds per step read from the stage's own `metrics.jsonl`
//! (the second logging window, so start-up is not counted), scaled by the steps the config asks
//! for. The recorded wall clocks of real runs are reported next to it by the pipeline report.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use teacher::config::TrainConfig;
use teacher::train::TrainOptions;

use crate::chain::{Stage, distil, training_stages};
use crate::config::PipelineConfig;

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

/// Time `k` steps of each training stage of the chain into `scratch` (a fresh folder, removed
/// afterwards); students start from the real teacher in `teacher_run` (the network sizes are
/// what matter), later students from the scratch guided one.
pub fn measure(
    cfg: &PipelineConfig,
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
    let mut short = cfg.clone();
    // The teacher and its students (a latent chain's autoencoder and decoder are not timed here).
    let stages: Vec<Stage> = training_stages(cfg).filter(|s| s.samples()).collect();
    for &stage in &stages {
        let t = stage
            .train_config_mut(&mut short)
            .expect("a training stage");
        *t = timing(t, k);
    }
    let mut costs = Vec::new();
    for stage in stages {
        let opts = TrainOptions {
            out: scratch.join(stage.name()),
            data: data.map(PathBuf::from),
            resume: false,
            allow_config_change: false,
            steps: Some(k),
            quiet: true,
            device: device.clone(),
            world: teacher::dist::World::SINGLE,
        };
        let timed = || format!("timing {}", stage.name());
        let dir = match stage {
            Stage::Teacher => {
                teacher::train::train_teacher(&short.teacher, &opts).with_context(timed)?;
                opts.out.clone()
            }
            _ => {
                let source = match stage.reads()[0] {
                    Stage::Teacher => teacher_run.to_path_buf(),
                    s => scratch.join(s.name()),
                };
                let half = short.progressive.start_steps / 2;
                distil(stage, &source, &short.students(), &opts, half).with_context(timed)?;
                // one progressive round stands for every round
                stage.run_dirs(&opts.out).pop().unwrap_or(opts.out.clone())
            }
        };
        let sps = last_window(&dir, stage.batch(&short).expect("a training stage"))?;
        let config_steps = stage.total_steps(cfg).expect("a training stage");
        costs.push(StageCost {
            stage: stage.name().into(),
            seconds_per_step: sps,
            config_steps,
            projected_seconds: sps * config_steps as f64,
        });
    }
    let _ = std::fs::remove_dir_all(scratch);
    let teacher_seconds = costs[0].projected_seconds;
    let distillation_seconds: f64 = costs[1..].iter().map(|c| c.projected_seconds).sum();
    Ok(DistillCost {
        stages: costs,
        timed_steps: k,
        distillation_seconds,
        teacher_seconds,
        ratio: distillation_seconds / teacher_seconds,
    })
}
