//! The multi-resolution joint state of Matryoshka diffusion (Gu et al. 2023, "Matryoshka
//! Diffusion Models", §3.1): an image together with its average-pooled copies at smaller
//! resolutions, all noised with one σ and denoised jointly. The copies are laid side by side on
//! one canvas ([`canvas::Canvas`]), so every shape-agnostic part of fewstep — the EDM loss, the
//! samplers, the three distillations, export — runs on the joint state unchanged.

pub mod canvas;
pub mod curriculum;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use canvas::Canvas;

/// How the one noise level σ of the joint ODE maps onto each resolution.
///
/// MDM (§3.1) noises every resolution at the same time t, each with "a resolution-specific noise
/// schedule"; its code (apple/ml-mdm, `get_schedule_shifted`) shifts the SNR of resolution r by
/// (r/r_min)^p against the smallest. With one EDM σ for the whole canvas, a shift is realised by
/// scaling resolution r's *signal* by s_r = (r_min/r)^(p/2) before noising (ml-mdm's
/// `get_image_rescaled` route): SNR_r(σ) = s_r²·σ_d²/σ² = SNR(σ)·(r_min/r)^p.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResolutionSchedule {
    /// Every resolution at the same σ with its signal unscaled (s_r = 1): the joint state is an
    /// EDM state like any image's, so the teacher's σ grid and samplers apply as they are.
    #[default]
    Shared,
    /// Resolution r's signal scaled by s_r = (r_min/r)^(p/2): log-SNR shifted by −p·ln(r/r_min)
    /// (ml-mdm: p = 1 at 256², p = 2 at 1024², the latter Hoogeboom et al. 2023's shift).
    Shifted {
        /// p, the power of the resolution ratio in the SNR shift.
        power: f64,
    },
}

impl ResolutionSchedule {
    /// s_r, the factor resolution `side`'s signal is scaled by on the canvas (1 for Shared).
    pub fn signal_scale(self, side: usize, smallest: usize) -> f64 {
        match self {
            ResolutionSchedule::Shared => 1.0,
            ResolutionSchedule::Shifted { power } => {
                (smallest as f64 / side as f64).powf(power / 2.0)
            }
        }
    }
}

/// The resolutions a multi-resolution model denoises, how they are weighted and when each joins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiResConfig {
    /// Side of each resolution, largest first, each the previous halved one or more times (MDM's
    /// nesting ratio 2: e.g. [32, 16, 8] for MNIST). Images are padded up to the first.
    pub resolutions: Vec<usize>,
    /// w_r, the weight of resolution r's EDM loss in the multi-resolution loss
    /// Σ_r w_r·λ(σ)·mean_r((D_r − y_r)²) (ml-mdm's `multi_res_weights`; default 1 each).
    pub loss_weights: Vec<f64>,
    /// How σ maps to each resolution (default: shared).
    pub schedule: ResolutionSchedule,
    /// Progressive training (MDM §3.3): the step at which each resolution's loss is switched on,
    /// in the order of `resolutions`; the smallest starts at 0 and a larger one never before a
    /// smaller one. All 0: every resolution from the start (no curriculum).
    pub start_steps: Vec<u64>,
    /// Pixel value of the border added when images are smaller than `resolutions[0]`
    /// (−1: black in fewstep's [−1, 1] pixel range, as MNIST's background).
    pub pad_value: f64,
}

impl Default for MultiResConfig {
    /// 8×8 digits nested with 4×4, both from the start.
    fn default() -> Self {
        Self {
            resolutions: vec![8, 4],
            loss_weights: vec![1.0, 1.0],
            schedule: ResolutionSchedule::Shared,
            start_steps: vec![0, 0],
            pad_value: -1.0,
        }
    }
}

impl MultiResConfig {
    /// Reject resolution sets the canvas cannot hold; errors name the `model.multires.*` key.
    pub fn validate(&self) -> Result<()> {
        let r = &self.resolutions;
        if r.is_empty() || r.len() > 6 {
            return Err(Error::value(
                "model.multires.resolutions",
                format!("{r:?}"),
                "needs 1 to 6 sides, largest first (e.g. [32, 16, 8])",
            ));
        }
        let halvings = r.windows(2).all(|p| {
            p[1] > 0 && p[0] > p[1] && p[0].is_multiple_of(p[1]) && (p[0] / p[1]).is_power_of_two()
        });
        if !halvings || r[0] == 0 || r[0] > 4096 {
            return Err(Error::value(
                "model.multires.resolutions",
                format!("{r:?}"),
                "each side must be the previous one halved one or more times (e.g. [32, 16, 8]), the first ≤ 4096",
            ));
        }
        self.validate_per_resolution()
    }

    fn validate_per_resolution(&self) -> Result<()> {
        let n = self.resolutions.len();
        let w = &self.loss_weights;
        if w.len() != n
            || w.iter().any(|x| !x.is_finite() || *x < 0.0)
            || w.iter().all(|x| *x == 0.0)
        {
            return Err(Error::value(
                "model.multires.loss_weights",
                format!("{w:?}"),
                &format!("needs {n} finite weights ≥ 0 (one per resolution), not all 0"),
            ));
        }
        curriculum::validate(&self.start_steps, n)?;
        if let ResolutionSchedule::Shifted { power } = self.schedule
            && !(0.0..=4.0).contains(&power)
        {
            return Err(Error::value(
                "model.multires.schedule.power",
                power,
                "must be in [0, 4] (ml-mdm uses 1 and 2)",
            ));
        }
        if !self.pad_value.is_finite() {
            return Err(Error::value(
                "model.multires.pad_value",
                self.pad_value,
                "must be finite (−1 is black)",
            ));
        }
        Ok(())
    }

    /// s_r for every resolution, in the order of `resolutions`.
    pub fn signal_scales(&self) -> Vec<f64> {
        let smallest = *self.resolutions.last().unwrap_or(&1);
        self.resolutions
            .iter()
            .map(|&r| self.schedule.signal_scale(r, smallest))
            .collect()
    }
}
