//! The encoder's fixed-noise channel of Unified Latents (Heek et al. 2026, "Unified Latents
//! (UL): How to train your latents"): a deterministic encoder predicts the clean latent z_clean,
//! and what the prior models and the decoder reads is
//!
//!   z₀ = z_clean + σ₀·ε,   ε ~ N(0, I),
//!
//! with σ₀ fixed by the latent's final log-SNR λ(0). In fewstep's variance-exploding states
//! (x_σ = x + σ·ε, SNR = 1/σ², `edm/elbo.rs`), λ(0) = −2·ln σ₀, so
//!
//!   σ₀ = e^(−λ(0)/2);   λ(0) = 5  →  σ₀ = e^(−2.5) = 0.082085.
//!
//! (UL writes the variance-preserving form z₀ = α₀·z_clean + σ₀·ε with α₀² + σ₀² = 1, where
//! λ(0) = 5 gives σ₀ = √sigmoid(−5) = 0.0816 and α₀ = 0.9967: the same SNR, a 0.3% different
//! scale of the latent.)
//!
//! The fixed noise bounds what z₀ can carry about x: each latent dimension is a Gaussian channel
//! of noise variance σ₀², so with per-dimension signal variance v_d = Var(z_clean,d) its
//! information is at most ½·log₂(1 + v_d/σ₀²) bits (Shannon's capacity under that power). The
//! prior's ELBO (`edm/elbo.rs` with λ_hi = λ(0)) measures the rate actually spent.

use burn::tensor::Tensor;

/// σ₀ = e^(−λ(0)/2) of the fixed-noise channel with final log-SNR `log_snr_0`.
pub fn sigma0(log_snr_0: f64) -> f64 {
    crate::edm::elbo::sigma_of(log_snr_0)
}

/// z₀ = z_clean + σ₀·ε for caller-given standard normals ε.
///
/// # Shapes
/// - z_clean, normals: `[n, c, h, w]` → `[n, c, h, w]`
pub fn noisy_latent(z_clean: Tensor<4>, normals: Tensor<4>, sigma0: f64) -> Tensor<4> {
    z_clean + normals.mul_scalar(sigma0)
}

/// The channel's bound in bits per latent dimension: the mean over dimensions of
/// ½·log₂(1 + v_d/σ₀²), v_d the variance of dimension d over `latents` (rows of one example
/// each, `len` values per row). 0 for fewer than two rows.
pub fn capacity_bits_per_dim(latents: &[f32], len: usize, sigma0: f64) -> f64 {
    let rows = latents.len().checked_div(len).unwrap_or(0);
    if rows < 2 || len == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    for d in 0..len {
        let col = (0..rows).map(|r| latents[r * len + d] as f64);
        let mean = col.clone().sum::<f64>() / rows as f64;
        let var = col.map(|v| (v - mean).powi(2)).sum::<f64>() / (rows - 1) as f64;
        total += 0.5 * (1.0 + var / (sigma0 * sigma0)).log2();
    }
    total / len as f64
}
