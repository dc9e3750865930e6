//! Preconditioning of the denoiser, after Karras et al. 2022 ("EDM", Table 1) and, for
//! consistency models, Song et al. 2023 (Appendix C): D(x;σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ)).

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::per_example;

/// c_skip(σ) = σ_d² / (σ² + σ_d²)  (EDM Table 1).
pub fn c_skip(sigma: f64, sigma_data: f64) -> f64 {
    sigma_data * sigma_data / (sigma * sigma + sigma_data * sigma_data)
}

/// c_out(σ) = σ·σ_d / √(σ² + σ_d²)  (EDM Table 1).
pub fn c_out(sigma: f64, sigma_data: f64) -> f64 {
    sigma * sigma_data / (sigma * sigma + sigma_data * sigma_data).sqrt()
}

/// c_in(σ) = 1 / √(σ² + σ_d²)  (EDM Table 1).
pub fn c_in(sigma: f64, sigma_data: f64) -> f64 {
    1.0 / (sigma * sigma + sigma_data * sigma_data).sqrt()
}

/// c_noise(σ) = ln(σ) / 4  (EDM Table 1).
pub fn c_noise(sigma: f64) -> f64 {
    sigma.ln() / 4.0
}

/// Consistency boundary scaling c_skip(σ) = σ_d² / ((σ − σ_min)² + σ_d²)  (Song et al. 2023, App. C):
/// equals 1 at σ = σ_min, so f(x, σ_min) = x.
pub fn c_skip_consistency(sigma: f64, sigma_data: f64, sigma_min: f64) -> f64 {
    let s = sigma - sigma_min;
    sigma_data * sigma_data / (s * s + sigma_data * sigma_data)
}

/// Consistency boundary scaling c_out(σ) = (σ − σ_min)·σ_d / √(σ² + σ_d²)  (Song et al. 2023, App. C):
/// equals 0 at σ = σ_min.
pub fn c_out_consistency(sigma: f64, sigma_data: f64, sigma_min: f64) -> f64 {
    (sigma - sigma_min) * sigma_data / (sigma * sigma + sigma_data * sigma_data).sqrt()
}

/// Which pair of skip/output scalings wraps the network; c_in and c_noise are shared.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Precond {
    /// EDM scalings (teachers, guided and progressive students).
    Edm,
    /// Consistency-model boundary scalings with σ_min (consistency students).
    Consistency {
        /// σ_min, the smallest noise level of the consistency grid, where f(x, σ_min) = x.
        sigma_min: f64,
    },
}

/// The four scalings of one noise level σ for a given preconditioning, as tensors of shape `[n]`.
pub struct Scalings {
    pub c_skip: Tensor<1>,
    pub c_out: Tensor<1>,
    pub c_in: Tensor<1>,
    pub c_noise: Tensor<1>,
}

impl Precond {
    /// The scalings for a batch of noise levels, computed with tensor ops (so they are part of
    /// any captured/exported graph). Same formulas as the scalar functions above.
    ///
    /// # Shapes
    /// - sigma: `[n]`; every output: `[n]`
    pub fn scalings(&self, sigma: Tensor<1>, sigma_data: f64) -> Scalings {
        let sd2 = sigma_data * sigma_data;
        let s2 = sigma.clone() * sigma.clone();
        // √(σ² + σ_d²)
        let root = s2.clone().add_scalar(sd2).sqrt();
        let c_in = root.clone().recip();
        let c_noise = sigma.clone().log().div_scalar(4.0);
        let (c_skip, c_out) = match *self {
            Precond::Edm => (
                s2.add_scalar(sd2).recip().mul_scalar(sd2),
                (sigma / root).mul_scalar(sigma_data),
            ),
            Precond::Consistency { sigma_min } => {
                let shifted = sigma.sub_scalar(sigma_min);
                (
                    (shifted.clone() * shifted.clone())
                        .add_scalar(sd2)
                        .recip()
                        .mul_scalar(sd2),
                    (shifted / root).mul_scalar(sigma_data),
                )
            }
        };
        Scalings {
            c_skip,
            c_out,
            c_in,
            c_noise,
        }
    }
}

/// D = c_skip·x + c_out·F, with per-example scalings broadcast over the image.
///
/// # Shapes
/// - x, f: `[n, ...]`; c_skip, c_out: `[n]`
pub fn combine<const D: usize>(x: Tensor<D>, f: Tensor<D>, s: &Scalings) -> Tensor<D> {
    x * per_example::<D>(s.c_skip.clone()) + f * per_example::<D>(s.c_out.clone())
}
