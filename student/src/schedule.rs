//! Curricula of consistency distillation as pure functions of the training step (after
//! `cm/script_util.py`'s `create_ema_and_scales_fn`, Song et al. 2023).

use serde::{Deserialize, Serialize};

/// Rate μ of the target network θ⁻ ← μ·θ⁻ + (1 − μ)·θ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetEma {
    /// A constant μ (the paper's CD setting, μ = 0.95 on ImageNet 64).
    Fixed { mu: f64 },
    /// μ(k) = exp(s0·ln μ0 / N(k)) (the paper's CT setting), tied to the N schedule.
    Adaptive { mu0: f64 },
}

/// Number of grid points N of the discretisation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GridSize {
    /// A constant N (CD: 18 on CIFAR-10, 40 on ImageNet 64).
    Fixed { n: usize },
    /// N(k) = ⌈√(k/K·((s1+1)² − s0²) + s0²) − 1⌉ + 1, growing from s0 to s1 over K steps (CT).
    Progressive { s0: usize, s1: usize },
}

impl GridSize {
    /// N after `step` of `total` steps.
    pub fn at(&self, step: u64, total: u64) -> usize {
        match *self {
            GridSize::Fixed { n } => n,
            GridSize::Progressive { s0, s1 } => {
                let frac = step as f64 / total.max(1) as f64;
                let (s0f, s1f) = (s0 as f64, s1 as f64);
                ((frac * ((s1f + 1.0).powi(2) - s0f * s0f) + s0f * s0f).sqrt() - 1.0).ceil()
                    as usize
                    + 1
            }
        }
    }

    /// The first N (s0 for progressive), the one `Adaptive` μ is scaled by.
    pub fn initial(&self) -> usize {
        match *self {
            GridSize::Fixed { n } => n,
            GridSize::Progressive { s0, .. } => s0,
        }
    }
}

impl TargetEma {
    /// μ after `step` of `total` steps under grid schedule `grid`.
    pub fn at(&self, grid: &GridSize, step: u64, total: u64) -> f64 {
        match *self {
            TargetEma::Fixed { mu } => mu,
            TargetEma::Adaptive { mu0 } => {
                (grid.initial() as f64 * mu0.ln() / grid.at(step, total) as f64).exp()
            }
        }
    }
}
