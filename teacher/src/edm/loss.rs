//! The EDM training loss (Karras et al. 2022, Eq. 2 and Table 1): σ ~ logNormal(P_mean, P_std),
//! weight λ(σ) = (σ² + σ_d²)/(σ·σ_d)², loss = λ(σ)·‖D(y + σ·n; σ) − y‖², one value per example.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::elbo::{LogSnrRange, Weighting, elbo_loss};
use super::{Cond, Denoiser, per_example};
use crate::error::Result;

/// The training distribution of σ: ln σ ~ N(P_mean, P_std²).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogNormal {
    /// P_mean, mean of ln σ (EDM default −1.2).
    pub p_mean: f64,
    /// P_std, standard deviation of ln σ (EDM default 1.2).
    pub p_std: f64,
}

impl Default for LogNormal {
    fn default() -> Self {
        Self {
            p_mean: -1.2,
            p_std: 1.2,
        }
    }
}

impl LogNormal {
    /// σ = exp(P_mean + P_std·ε) for caller-given standard normals ε, `[n]` → `[n]`.
    pub fn sigma(&self, normals: Tensor<1>) -> Tensor<1> {
        normals.mul_scalar(self.p_std).add_scalar(self.p_mean).exp()
    }
}

/// λ(σ) = (σ² + σ_d²) / (σ·σ_d)²  (EDM Table 1).
pub fn loss_weight(sigma: f64, sigma_data: f64) -> f64 {
    (sigma * sigma + sigma_data * sigma_data) / (sigma * sigma_data).powi(2)
}

/// λ(σ) for a batch, `[n]` → `[n]`; same formula as [`loss_weight`].
pub fn loss_weight_t(sigma: Tensor<1>, sigma_data: f64) -> Tensor<1> {
    let s2 = sigma.clone() * sigma;
    s2.clone().add_scalar(sigma_data * sigma_data) / s2.mul_scalar(sigma_data * sigma_data)
}

/// Mean of a per-pixel tensor over everything but the batch axis: `[n, …]` → `[n]`.
pub fn mean_per_example<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    let n = x.dims()[0];
    x.reshape([n as i32, -1]).mean_dim(1).reshape([n])
}

/// The EDM loss per example: λ(σ)·mean(m ⊙ (D(y + σ·n; σ) − y)²) with σ = P.sigma(ε).
/// `normals` (ε, `[n]`) and `noise` (n, shaped like y) come from the caller's seeded RNG; the
/// pixel weights m (`[1, c, h, w]`) turn the mean into a weighted sum over the parts of a joint
/// state — the multi-resolution loss Σ_r w_r·λ·mean_r (`multires::Canvas::weight_map`); None
/// is m = 1, EDM's loss.
///
/// # Shapes
/// - y, noise: `[n, c, h, w]`; normals: `[n]`; pixel_weights: `[1, c, h, w]` → `[n]`
#[allow(clippy::too_many_arguments)]
pub fn edm_loss(
    model: &impl Denoiser,
    y: Tensor<4>,
    cond: &Cond,
    normals: Tensor<1>,
    noise: Tensor<4>,
    p: &LogNormal,
    sigma_data: f64,
    pixel_weights: Option<Tensor<4>>,
) -> Tensor<1> {
    let sigma = p.sigma(normals);
    denoising_error(model, y, cond, sigma.clone(), noise, pixel_weights)
        * loss_weight_t(sigma, sigma_data)
}

/// mean(m ⊙ (D(y + σ·n; σ) − y)²) per example: the denoising error every training loss weights
/// (EDM's λ(σ) in [`edm_loss`], the ELBO's factor in `elbo::elbo_loss`); m as in [`edm_loss`].
///
/// # Shapes
/// - y, noise: `[n, c, h, w]`; sigma: `[n]`; pixel_weights: `[1, c, h, w]` → `[n]`
pub fn denoising_error(
    model: &impl Denoiser,
    y: Tensor<4>,
    cond: &Cond,
    sigma: Tensor<1>,
    noise: Tensor<4>,
    pixel_weights: Option<Tensor<4>>,
) -> Tensor<1> {
    let x = y.clone() + noise * per_example::<4>(sigma.clone());
    weighted_mse(model.denoise(x, sigma, cond), y, pixel_weights)
}

/// mean(m ⊙ (a − b)²) per example, m broadcast over the batch (None: m = 1).
fn weighted_mse<const D: usize>(a: Tensor<D>, b: Tensor<D>, m: Option<Tensor<D>>) -> Tensor<1> {
    let err = (a - b).square();
    mean_per_example(match m {
        None => err,
        Some(m) => err * m,
    })
}

/// λ(σ)·mean((D − target)²) per example (EDM Eq. 2 with Table 1's λ): the teacher's loss with
/// target y, and the guided and progressive students' with their teacher-made targets.
///
/// # Shapes
/// - denoised, target: `[n, …]`; sigma: `[n]` → `[n]`
pub fn weighted_error<const D: usize>(
    denoised: Tensor<D>,
    target: Tensor<D>,
    sigma: Tensor<1>,
    sigma_data: f64,
) -> Tensor<1> {
    weighted_error_map(denoised, target, sigma, sigma_data, None)
}

/// λ(σ)·mean(m ⊙ (D − target)²) per example: [`weighted_error`] with pixel weights m
/// (`[1, …]`, broadcast over the batch; None: m = 1).
pub fn weighted_error_map<const D: usize>(
    denoised: Tensor<D>,
    target: Tensor<D>,
    sigma: Tensor<1>,
    sigma_data: f64,
    pixel_weights: Option<Tensor<D>>,
) -> Tensor<1> {
    weighted_mse(denoised, target, pixel_weights) * loss_weight_t(sigma, sigma_data)
}

/// `[diffusion.loss]`: which noise levels a model trains on and how each is weighted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TrainingLoss {
    /// EDM's: σ ~ logNormal(`diffusion.sigma_dist`), weight λ(σ) (the default).
    #[default]
    Edm,
    /// Kingma & Gao's sigmoid-weighted ELBO, w(λ) = sigmoid(b − λ) with λ uniform over
    /// `log_snr` (`edm/elbo.rs`): Unified Latents' decoder and base model.
    Sigmoid {
        /// b, the log-SNR where the weight is ½.
        bias: f64,
        /// The noise levels trained on, as log-SNRs (λ = −2·ln σ); a latent base model's
        /// `max` is λ(0), so it never trains below the encoder's σ₀.
        log_snr: LogSnrRange,
    },
}

impl TrainingLoss {
    pub fn is_edm(&self) -> bool {
        *self == TrainingLoss::Edm
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            TrainingLoss::Edm => Ok(()),
            TrainingLoss::Sigmoid { bias, log_snr } => {
                if !bias.is_finite() {
                    let why = "must be a finite log-SNR (e.g. 0)";
                    return Err(crate::Error::value("diffusion.loss.bias", bias, why));
                }
                log_snr.validate("diffusion.loss.log_snr")
            }
        }
    }

    /// The per-example loss of `y` under `model` with the caller's σ normals and noise: EDM's
    /// (`sigma_dist`, λ(σ) with `sigma_data`) or the sigmoid-weighted ELBO; pixel weights as
    /// in [`edm_loss`].
    ///
    /// # Shapes
    /// - y, noise: `[n, c, h, w]`; normals: `[n]`; pixel_weights: `[1, c, h, w]` → `[n]`
    #[allow(clippy::too_many_arguments)]
    pub fn per_example(
        &self,
        model: &impl Denoiser,
        y: Tensor<4>,
        cond: &Cond,
        normals: Tensor<1>,
        noise: Tensor<4>,
        sigma_dist: &LogNormal,
        sigma_data: f64,
        pixel_weights: Option<Tensor<4>>,
    ) -> Tensor<1> {
        match *self {
            TrainingLoss::Edm => {
                let (p, w) = (sigma_dist, pixel_weights);
                edm_loss(model, y, cond, normals, noise, p, sigma_data, w)
            }
            TrainingLoss::Sigmoid { bias, log_snr } => {
                let w = Weighting::Sigmoid { bias };
                elbo_loss(model, y, cond, normals, noise, &log_snr, w, pixel_weights)
            }
        }
    }
}
