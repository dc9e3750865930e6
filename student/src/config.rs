//! Student configs: one section per distillation stage, each with its own `[*.train]` loop
//! settings. Every key has a default suited to the embedded digits; unknown keys are errors.

use std::path::Path;

use serde::{Deserialize, Serialize};
use teacher::config::TrainConfig;
use teacher::edm::loss::LogNormal;
use teacher::error::{Error, Result};

use crate::schedule::{GridSize, TargetEma};

pub use teacher::recipe::WRange;

fn train_defaults(steps: u64) -> TrainConfig {
    TrainConfig {
        steps,
        lr: 2e-4,
        warmup_steps: 50,
        checkpoint_every: 100,
        log_every: 25,
        ema_halflife_images: 5000.0,
        ..TrainConfig::default()
    }
}

/// `[guided]`: guided distillation (Meng et al. 2023, stage one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuidedConfig {
    /// w ~ U[w.min, w.max] per example (Meng et al. train on w ∈ [0, 4]).
    pub w: WRange,
    /// Training σ distribution (the teacher's EDM default).
    pub sigma_dist: LogNormal,
    pub train: TrainConfig,
}

impl Default for GuidedConfig {
    fn default() -> Self {
        Self {
            w: WRange { min: 0.0, max: 4.0 },
            sigma_dist: LogNormal::default(),
            train: train_defaults(800),
        }
    }
}

/// `[progressive]`: progressive distillation (Salimans & Ho 2022) from the guided student.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgressiveConfig {
    /// Steps of the first teacher (the guided student on a Karras grid); a power of two.
    pub start_steps: usize,
    /// `[progressive.train]`: settings of every round (`steps` = optimizer steps per round).
    pub train: TrainConfig,
}

impl Default for ProgressiveConfig {
    fn default() -> Self {
        Self {
            start_steps: 32,
            train: train_defaults(250),
        }
    }
}

/// Distance between student and target outputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Metric {
    /// Mean squared error.
    L2,
    /// √(‖a − b‖²/d + c²) − c (Song & Dhariwal 2023, "improved CT"), robust to outliers.
    PseudoHuber { c: f64 },
}

/// `[consistency]`: consistency distillation (Song et al. 2023, Algorithm 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsistencyConfig {
    /// Grid points N of the Karras discretisation (σ_min, σ_max, ρ from the teacher).
    pub grid: GridSize,
    /// Target-network EMA rate μ.
    pub target_ema: TargetEma,
    pub metric: Metric,
    /// w ~ U[w.min, w.max] per example (the student is w-conditioned, as in LCM).
    pub w: WRange,
    pub train: TrainConfig,
}

impl Default for ConsistencyConfig {
    fn default() -> Self {
        Self {
            grid: GridSize::Fixed { n: 18 },
            target_ema: TargetEma::Fixed { mu: 0.95 },
            metric: Metric::PseudoHuber { c: 0.03 },
            w: WRange { min: 0.0, max: 4.0 },
            train: train_defaults(600),
        }
    }
}

/// A whole student config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StudentConfig {
    pub guided: GuidedConfig,
    pub progressive: ProgressiveConfig,
    pub consistency: ConsistencyConfig,
}

fn bad(key: &str, value: impl std::fmt::Display, why: &str) -> Error {
    Error::ConfigValue {
        key: key.into(),
        value: value.to_string(),
        why: why.into(),
    }
}

fn check_w(key: &str, w: &WRange) -> Result<()> {
    if !(w.min.is_finite() && w.max.is_finite() && w.min <= w.max) {
        return Err(bad(
            key,
            format!("[{}, {}]", w.min, w.max),
            "needs finite min ≤ max",
        ));
    }
    Ok(())
}

impl StudentConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read config", path))?;
        let cfg: Self = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        check_w("guided.w", &self.guided.w)?;
        check_w("consistency.w", &self.consistency.w)?;
        let s = self.progressive.start_steps;
        if s < 2 || !s.is_power_of_two() {
            return Err(bad(
                "progressive.start_steps",
                s,
                "must be a power of two ≥ 2 so rounds can halve it",
            ));
        }
        let n = self.consistency.grid.initial();
        if n < 2 {
            return Err(bad("consistency.grid", n, "needs at least 2 grid points"));
        }
        if let TargetEma::Fixed { mu } | TargetEma::Adaptive { mu0: mu } =
            self.consistency.target_ema
            && !(0.0..1.0).contains(&mu)
        {
            return Err(bad("consistency.target_ema", mu, "μ must be in [0, 1)"));
        }
        for (key, t) in [
            ("guided.train", &self.guided.train),
            ("progressive.train", &self.progressive.train),
            ("consistency.train", &self.consistency.train),
        ] {
            t.validate(key)?;
        }
        Ok(())
    }

    /// The config of a stage as TOML (saved beside its checkpoints).
    pub fn section_toml<T: Serialize>(section: &T) -> String {
        toml::to_string_pretty(section).expect("configs are plain data")
    }
}
