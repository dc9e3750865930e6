//! The teacher's TOML config: `[data]`, `[model]`, `[diffusion]`, `[train]`. Every key has a
//! documented default; unknown keys and impossible values are errors that name the key.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::DataConfig;
use crate::edm::loss::{LogNormal, TrainingLoss};
use crate::edm::sigma_grid::SigmaGrid;
use crate::error::{Error, Result};
use crate::model::NetworkConfig;

/// `[diffusion]`: the EDM constants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiffusionConfig {
    /// σ_data, the data's standard deviation assumed by the preconditioning (EDM default 0.5).
    pub sigma_data: f64,
    /// Probability that a training example's label is replaced by the null class, so the same
    /// network learns D_u for classifier-free guidance (Ho & Salimans use 0.1–0.2).
    pub p_uncond: f64,
    /// Training σ distribution (EDM: P_mean = −1.2, P_std = 1.2).
    pub sigma_dist: LogNormal,
    /// Sampling σ grid (EDM: σ_min = 0.002, σ_max = 80, ρ = 7).
    pub grid: SigmaGrid,
    /// `[diffusion.loss]`: the training noise levels and their weights (default EDM's:
    /// `sigma_dist` with λ(σ); `kind = "sigmoid"`: the sigmoid-weighted ELBO, docs/latent.md).
    #[serde(skip_serializing_if = "TrainingLoss::is_edm")]
    pub loss: TrainingLoss,
}

impl Default for DiffusionConfig {
    fn default() -> Self {
        Self {
            sigma_data: 0.5,
            p_uncond: 0.1,
            sigma_dist: LogNormal::default(),
            grid: SigmaGrid::default(),
            loss: TrainingLoss::Edm,
        }
    }
}

/// `[train]`: the optimisation loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimizer steps in total (`--steps` overrides).
    pub steps: u64,
    /// Images per step.
    pub batch_size: usize,
    /// Adam learning rate after warm-up.
    pub lr: f64,
    /// Steps of linear learning-rate warm-up from 0 (EDM: 10M images / batch).
    pub warmup_steps: u64,
    /// Adam β1, β2, ε (Kingma & Ba defaults 0.9, 0.999, 1e-8; EDM uses the same).
    pub adam_beta1: f32,
    pub adam_beta2: f32,
    pub adam_epsilon: f32,
    /// Clip each parameter's gradient to this L2 norm (burn's per-tensor norm clipping); none = off.
    pub grad_clip: Option<f32>,
    /// EMA half-life in images (EDM `ema_halflife_kimg`, scaled down for small runs).
    pub ema_halflife_images: f64,
    /// EMA warm-up: the half-life is at most this fraction of the images seen so far (EDM 0.05).
    pub ema_rampup_ratio: Option<f64>,
    /// Write a checkpoint every this many steps (and always at the end).
    pub checkpoint_every: u64,
    /// Append a `metrics.jsonl` line every this many steps.
    pub log_every: u64,
    /// Seed of every random draw (init, batches, σ, noise, label dropout).
    pub seed: u64,
    /// Under `mpirun`/`srun`: seconds a rank waits in a step's all-reduce for the others before
    /// it stops the whole run (a dead or hung rank); the last checkpoint is kept. Default 300.
    pub all_reduce_timeout_s: f64,
    /// Stop, with a checkpoint, at the first `metrics.jsonl` line whose logged training time
    /// (summed over resumes) reaches this many seconds, `steps` being then only the most it
    /// takes: runs compared at equal training compute (e.g. a plain U-Net beside a NestedUNet).
    /// None (default): train `steps` steps. One process only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_budget_s: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1500,
            batch_size: 64,
            lr: 1e-3,
            warmup_steps: 100,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            grad_clip: Some(1.0),
            ema_halflife_images: 25_000.0,
            ema_rampup_ratio: Some(0.05),
            checkpoint_every: 250,
            log_every: 50,
            seed: 0,
            all_reduce_timeout_s: crate::dist::DEFAULT_TIMEOUT_S,
            time_budget_s: None,
        }
    }
}

/// The largest batch a config may ask for: far above any real run, low enough that a typo is an
/// error and not an allocation that aborts the process.
pub const MAX_BATCH: usize = 65_536;

impl TrainConfig {
    /// Reject loop settings no run could use; `section` is the TOML table (`train`,
    /// `guided.train`, …) that errors name.
    pub fn validate(&self, section: &str) -> Result<()> {
        let key = |k: &str| format!("{section}.{k}");
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let t = self;
        let counts = [
            ("steps", t.steps),
            ("batch_size", t.batch_size as u64),
            ("checkpoint_every", t.checkpoint_every),
            ("log_every", t.log_every),
        ];
        if let Some((k, v)) = counts.iter().find(|(_, v)| *v == 0) {
            return Err(Error::value(&key(k), v, "must be ≥ 1"));
        }
        if t.batch_size > MAX_BATCH {
            return Err(Error::value(
                &key("batch_size"),
                t.batch_size,
                &format!("must be ≤ {MAX_BATCH} images per step"),
            ));
        }
        // Finite and > 0 where given (an absent optional key is always fine).
        let positives = [
            ("lr", Some(t.lr), "must be a finite number > 0"),
            (
                "adam_epsilon",
                Some(t.adam_epsilon as f64),
                "must be > 0 (Adam: 1e-8)",
            ),
            (
                "ema_halflife_images",
                Some(t.ema_halflife_images),
                "must be > 0",
            ),
            (
                "time_budget_s",
                t.time_budget_s,
                "must be a number of seconds > 0 (remove the key to train `steps` steps)",
            ),
            (
                "grad_clip",
                t.grad_clip.map(f64::from),
                "must be > 0 (remove the key to disable clipping)",
            ),
        ];
        for (k, v, why) in positives {
            if let Some(v) = v.filter(|&v| !positive(v)) {
                return Err(Error::value(&key(k), v, why));
            }
        }
        for (k, b) in [("adam_beta1", t.adam_beta1), ("adam_beta2", t.adam_beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::value(
                    &key(k),
                    b,
                    "must be in [0, 1) (Adam: 0.9, 0.999)",
                ));
            }
        }
        if !(positive(t.all_reduce_timeout_s) && t.all_reduce_timeout_s <= 86_400.0) {
            return Err(Error::value(
                &key("all_reduce_timeout_s"),
                t.all_reduce_timeout_s,
                "must be a number of seconds in (0, 86400] (default 300)",
            ));
        }
        if let Some(r) = t.ema_rampup_ratio
            && !(r > 0.0 && r <= 1.0)
        {
            return Err(Error::value(
                &key("ema_rampup_ratio"),
                r,
                "must be in (0, 1] (EDM: 0.05); remove the key for no ramp-up",
            ));
        }
        Ok(())
    }
}

/// A whole teacher config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TeacherConfig {
    pub data: DataConfig,
    /// `[model]`: the network F and its shape (`kind = "unet"`, the default).
    pub model: NetworkConfig,
    pub diffusion: DiffusionConfig,
    pub train: TrainConfig,
}

impl TeacherConfig {
    /// Parse and validate a config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read config", path))?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::Invalid(message) => Error::Config {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parse and validate config text (unknown keys are errors naming the key).
    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| Error::Invalid(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configs are plain data and always serialise")
    }

    /// Reject values no run could use; each error names the key and the allowed range.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        let d = &self.diffusion;
        if d.sigma_data.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(Error::value(
                "diffusion.sigma_data",
                d.sigma_data,
                "must be > 0",
            ));
        }
        if !(0.0..1.0).contains(&d.p_uncond) {
            return Err(Error::value(
                "diffusion.p_uncond",
                d.p_uncond,
                "must be in [0, 1); > 0 is needed for guidance",
            ));
        }
        if d.sigma_dist.p_std.is_nan() || d.sigma_dist.p_std <= 0.0 {
            return Err(Error::value(
                "diffusion.sigma_dist.p_std",
                d.sigma_dist.p_std,
                "must be > 0",
            ));
        }
        let g = &d.grid;
        if !(g.sigma_min.is_finite() && g.sigma_min > 0.0) {
            return Err(Error::value(
                "diffusion.grid.sigma_min",
                g.sigma_min,
                "must be a finite number > 0 (EDM: 0.002)",
            ));
        }
        if g.sigma_max.is_nan() || g.sigma_max <= g.sigma_min {
            return Err(Error::value(
                "diffusion.grid.sigma_max",
                g.sigma_max,
                &format!("needs 0 < sigma_min ({}) < sigma_max", g.sigma_min),
            ));
        }
        if g.rho.is_nan() || g.rho <= 0.0 {
            return Err(Error::value("diffusion.grid.rho", g.rho, "must be > 0"));
        }
        d.loss.validate()?;
        self.train.validate("train")?;
        self.data.validate_latents(&self.model)?;
        if self.data.channels != 1 && self.data.channels != 3 {
            return Err(Error::value(
                "data.channels",
                self.data.channels,
                "must be 1 or 3",
            ));
        }
        let grayscale = matches!(
            self.data.source,
            crate::data::DataSource::Digits | crate::data::DataSource::Mnist
        );
        if grayscale && self.data.channels != 1 {
            return Err(Error::value(
                "data.channels",
                self.data.channels,
                &format!(
                    "`{}` is grayscale: set 1 (3 channels need a folder source of colour images)",
                    self.data.source.name()
                ),
            ));
        }
        Ok(())
    }
}
