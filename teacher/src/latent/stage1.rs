//! Stage 1 of Unified Latents: encoder, decoder and prior trained jointly on
//!
//!   L(x) = c_lf · L_dec(x | z₀) / D_x  +  R(z_clean) / D_x,
//!
//! per image dimension (D_x values per image, D_z per latent), where z₀ = E(x) + σ₀·ε,
//! - L_dec is the decoder's loss, the run's `[diffusion.loss]` with z₀ as the condition (UL:
//!   the sigmoid-weighted ELBO of `edm/elbo.rs`), c_lf UL's loss factor;
//! - R is the prior's rate, KL(q(z₀ | x) ‖ p(z₀)) in nats: the prior's ELBO over λ ∈ [λ_lo, λ(0)]
//!   with w ≡ 1 — no noise level below σ₀, because z₀ already carries σ₀'s noise — plus the
//!   terminal term KL(N(z_clean, σ_max²) ‖ N(0, σ_max²)) = ‖z_clean‖²/(2σ_max²).
//!
//! Together a (reweighted) negative ELBO of x: the rate is what the latent costs in bits, and
//! its gradient is what keeps the encoder's latent cheap to model. The teacher's training loop
//! runs it (`train.rs`, `TeacherStep`): [`latent_and_rate`] gives the decoder's condition and
//! the rate term, the loop adds the decoder's loss.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::LatentAutoencoderConfig;
use super::autoencoder::LatentAutoencoder;
use super::channel::noisy_latent;
use crate::dist::Shard;
use crate::edm::Cond;
use crate::edm::elbo::{LogSnrRange, Weighting, elbo_loss, sigma_of};
use crate::edm::loss::mean_per_example;
use crate::rng::{Stream, normals, rng};
use crate::unet::ImageShape;

/// Stage 1's randomness beyond the image batch's (σ normals and noise of the decoder), drawn
/// from its own stream so the image batch is what a teacher's step `step` would draw.
pub struct LatentDraws {
    /// ε of the fixed-noise channel, shaped like the latent.
    pub channel: Tensor<4>,
    /// Standard normals that give the prior's λ (`LogSnrRange::lambda`), `[n]`.
    pub prior_normals: Tensor<1>,
    /// The prior's noise, shaped like the latent.
    pub prior_noise: Tensor<4>,
}

impl LatentDraws {
    /// Step `step`'s draws for a global batch of `batch` latents of `latent`.
    pub fn draw(seed: u64, step: u64, batch: usize, latent: ImageShape, device: &Device) -> Self {
        let mut r = rng(seed, Stream::Latent, step);
        let dims = [batch, latent.planes(), latent.height, latent.width];
        let len = batch * latent.len();
        let channel = normals(&mut r, len);
        let prior_normals = normals(&mut r, batch);
        let prior_noise = normals(&mut r, len);
        Self {
            channel: Tensor::from_data(TensorData::new(channel, dims), device),
            prior_normals: Tensor::from_data(TensorData::new(prior_normals, [batch]), device),
            prior_noise: Tensor::from_data(TensorData::new(prior_noise, dims), device),
        }
    }

    /// The rows of `shard`.
    pub fn shard(self, shard: &Shard) -> Self {
        Self {
            channel: shard.rows(self.channel),
            prior_normals: shard.rows(self.prior_normals),
            prior_noise: shard.rows(self.prior_noise),
        }
    }
}

/// An unconditional [`Cond`] of `n` examples (the class slot at `null`).
pub fn null_cond(n: usize, null: usize, latent: Option<Tensor<4>>, device: &Device) -> Cond {
    Cond {
        class: Tensor::<1, Int>::full([n], null as i64, device),
        extra: None,
        latent,
    }
}

/// KL(N(z_clean, σ_max²) ‖ N(0, σ_max²)) per dimension, ‖z_clean‖²/(2σ_max²)/D_z: the ELBO's
/// terminal term at the prior's highest noise level.
///
/// # Shapes
/// - z_clean: `[n, …]` → `[n]`
pub fn terminal_kl(z_clean: Tensor<4>, sigma_max: f64) -> Tensor<1> {
    mean_per_example(z_clean.square()).div_scalar(2.0 * sigma_max * sigma_max)
}

/// R(z_clean)/D_z, the prior's rate in nats per latent dimension, one Monte Carlo sample per
/// example: the ELBO over `range` (λ_hi = λ(0)) plus the terminal KL at σ_max = σ(λ_lo).
///
/// # Shapes
/// - z_clean, noise: `[n, c_z, h_z, w_z]`; normals: `[n]` → `[n]`
pub fn prior_rate(
    ae: &LatentAutoencoder,
    z_clean: Tensor<4>,
    normals: Tensor<1>,
    noise: Tensor<4>,
    range: &LogSnrRange,
) -> Tensor<1> {
    let [n, ..] = z_clean.dims();
    let cond = null_cond(n, 0, None, &z_clean.device());
    let terminal = terminal_kl(z_clean.clone(), sigma_of(range.min));
    let prior = ae.prior();
    elbo_loss(
        &prior,
        z_clean,
        &cond,
        normals,
        noise,
        range,
        Weighting::Elbo,
        None,
    ) + terminal
}

/// z₀ = E(y) + σ₀·ε (the decoder's condition) and R(E(y))/D_x, the rate per image dimension
/// (module docs), for images `y` and the step's latent draws.
///
/// # Shapes
/// - y: `[n, c, h, w]` → (`[n, c_z, h_z, w_z]`, `[n]`)
pub fn latent_and_rate(
    ae: &LatentAutoencoder,
    cfg: &LatentAutoencoderConfig,
    y: Tensor<4>,
    draws: LatentDraws,
) -> (Tensor<4>, Tensor<1>) {
    let z_clean = ae.encode(y.clone());
    let dims_z = z_clean.dims()[1..].iter().product::<usize>() as f64;
    let dims_x = y.dims()[1..].iter().product::<usize>() as f64;
    let z0 = noisy_latent(z_clean.clone(), draws.channel, ae.sigma0);
    let rate = prior_rate(
        ae,
        z_clean,
        draws.prior_normals,
        draws.prior_noise,
        &cfg.prior_range(),
    );
    (z0, rate.mul_scalar(dims_z / dims_x))
}
