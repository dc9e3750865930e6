//! The diffusion ELBO over noise levels and its sigmoid reweighting, in the log-SNR λ of
//! fewstep's variance-exploding states x_σ = x + σ·ε (EDM's): SNR = 1/σ², so
//!
//!   λ(σ) = −2·ln σ,   σ(λ) = e^(−λ/2).
//!
//! Kingma et al. 2021 (VDM, Eq. 17 in λ form) give the diffusion part of the negative ELBO of
//! data x between log-SNRs λ_lo < λ_hi, in nats summed over dimensions, as
//!
//!   L(x) = ½ ∫_{λ_lo}^{λ_hi} w(λ)·e^λ·‖x − D(x_σ(λ); σ(λ))‖² dλ     with w ≡ 1,
//!
//! invariant to the schedule between the ends (VDM §5.1), so it holds for VE states as for VP
//! ones. Kingma & Gao 2023 ("Understanding Diffusion Objectives") reweight it with
//! w(λ) = sigmoid(b − λ) (bias b), which keeps the ELBO's weight at high noise and lets it fall
//! off at low noise. With λ drawn uniformly from [λ_lo, λ_hi] (density 1/(λ_hi − λ_lo)), one
//! Monte Carlo sample of L is
//!
//!   L̂ = ½·(λ_hi − λ_lo)·w(λ)·e^λ·‖x − D‖²,
//!
//! and for the sigmoid, w(λ)·e^λ = 1/(e^(−λ) + e^(−b)) = 1/(σ² + e^(−b)): bounded at σ → 0.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::{Cond, Denoiser};
use crate::error::{Error, Result};

/// λ = −2·ln σ.
pub fn log_snr(sigma: f64) -> f64 {
    -2.0 * sigma.ln()
}

/// σ = e^(−λ/2).
pub fn sigma_of(lambda: f64) -> f64 {
    (-lambda / 2.0).exp()
}

/// w(λ) = sigmoid(b − λ) = 1 / (1 + e^(λ − b)) (Kingma & Gao 2023).
pub fn sigmoid_weight(lambda: f64, bias: f64) -> f64 {
    1.0 / (1.0 + (lambda - bias).exp())
}

/// A uniform draw of λ over `[min, max]`: the proposal the Monte Carlo ELBO samples from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSnrRange {
    /// λ_lo, the highest noise level (σ_max = e^(−λ_lo/2)).
    pub min: f64,
    /// λ_hi, the lowest noise level (σ_min = e^(−λ_hi/2)).
    pub max: f64,
}

impl LogSnrRange {
    /// Reject an empty or non-finite range; `key` is the TOML key errors name.
    pub fn validate(&self, key: &str) -> Result<()> {
        if !(self.min.is_finite() && self.max.is_finite() && self.min < self.max) {
            return Err(Error::value(
                key,
                format!("[{}, {}]", self.min, self.max),
                "needs finite log-SNRs with min < max (e.g. min = -10, max = 12: σ from 148 down to 0.0025)",
            ));
        }
        if self.min < -40.0 || self.max > 40.0 {
            return Err(Error::value(
                key,
                format!("[{}, {}]", self.min, self.max),
                "must lie within [-40, 40] (σ from 5e8 down to 2e-9); wider ranges only lose precision",
            ));
        }
        Ok(())
    }

    /// λ for caller-given standard normals ε: λ = λ_lo + Φ(ε)·(λ_hi − λ_lo), Φ the normal CDF
    /// (so the training RNG draws the same normals whatever the σ distribution), `[n]` → `[n]`.
    pub fn lambda(&self, normals: Tensor<1>) -> Tensor<1> {
        let u = normals
            .div_scalar(std::f64::consts::SQRT_2)
            .erf()
            .add_scalar(1.0)
            .mul_scalar(0.5);
        u.mul_scalar(self.max - self.min).add_scalar(self.min)
    }
}

/// σ(λ) = e^(−λ/2) for a batch, `[n]` → `[n]`.
pub fn sigma_t(lambda: Tensor<1>) -> Tensor<1> {
    lambda.mul_scalar(-0.5).exp()
}

/// How the ELBO's noise levels are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Weighting {
    /// w ≡ 1: the ELBO itself (a rate, in nats).
    Elbo,
    /// w(λ) = sigmoid(b − λ).
    Sigmoid {
        /// b, the log-SNR where the weight is ½.
        bias: f64,
    },
}

/// ½·(λ_hi − λ_lo)·w(λ)·e^λ, the per-example factor of ‖x − D‖² in one Monte Carlo sample of
/// the (reweighted) ELBO with λ uniform over `range`, `[n]` → `[n]`.
pub fn elbo_factor(lambda: Tensor<1>, range: &LogSnrRange, weighting: Weighting) -> Tensor<1> {
    let half_width = 0.5 * (range.max - range.min);
    let w_exp = match weighting {
        Weighting::Elbo => lambda.exp(),
        // 1 / (e^(−λ) + e^(−b)), the stable form of sigmoid(b − λ)·e^λ.
        Weighting::Sigmoid { bias } => lambda.neg().exp().add_scalar((-bias).exp()).recip(),
    };
    w_exp.mul_scalar(half_width)
}

/// One Monte Carlo sample per example of the (reweighted) ELBO of `y` under `model`, divided by
/// the values per example (nats per dimension): ½·(λ_hi − λ_lo)·w(λ)·e^λ·mean(m ⊙ (D − y)²),
/// λ = `range.lambda(normals)`, x_σ = y + σ(λ)·noise, m the pixel weights as in
/// [`edm_loss`](super::loss::edm_loss) (None: m = 1). No noise level outside `range` is ever
/// drawn, so a range with λ_hi = λ(σ₀) has no term below σ₀.
///
/// # Shapes
/// - y, noise: `[n, c, h, w]`; normals: `[n]`; pixel_weights: `[1, c, h, w]` → `[n]`
#[allow(clippy::too_many_arguments)]
pub fn elbo_loss(
    model: &impl Denoiser,
    y: Tensor<4>,
    cond: &Cond,
    normals: Tensor<1>,
    noise: Tensor<4>,
    range: &LogSnrRange,
    weighting: Weighting,
    pixel_weights: Option<Tensor<4>>,
) -> Tensor<1> {
    let lambda = range.lambda(normals);
    let sigma = sigma_t(lambda.clone());
    super::loss::denoising_error(model, y, cond, sigma, noise, pixel_weights)
        * elbo_factor(lambda, range, weighting)
}
