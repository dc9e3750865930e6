//! The diffusion core after Karras et al. 2022 (EDM): preconditioning, σ grid, loss, guidance
//! and samplers, as small pure functions named after the paper's symbols.

pub mod elbo;
pub mod guidance;
pub mod loss;
pub mod precond;
pub mod sigma_grid;
pub mod solver;

use burn::tensor::{Int, Tensor};

/// Broadcast a per-example value `[n]` to `[n, 1, …, 1]` so it scales whole examples.
pub fn per_example<const D: usize>(v: Tensor<1>) -> Tensor<D> {
    let [n] = v.dims();
    let mut shape = [1usize; D];
    shape[0] = n;
    v.reshape(shape)
}

/// Conditioning of one batch: class labels (the null class for "unconditional") and, for
/// w-conditioned students, the guidance weight fed through the network's extra scalar slot.
#[derive(Debug, Clone)]
pub struct Cond {
    /// Class label per example, `[n]`; `num_classes` is the learned null class.
    pub class: Tensor<1, Int>,
    /// Extra scalar conditioning per example (the guidance weight w), `[n]`.
    pub extra: Option<Tensor<1>>,
    /// A latent decoder's condition z₀ per example, `[n, c_z, h_z, w_z]` (`latent/`); None
    /// for every other model.
    pub latent: Option<Tensor<4>>,
}

/// A denoiser D(x; σ, cond) evaluated on a batch.
pub trait Denoiser {
    /// # Shapes
    /// - x: `[n, c, h, w]`, sigma: `[n]`, cond: `[n]` each → `[n, c, h, w]`
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, cond: &Cond) -> Tensor<4>;

    /// Network evaluations per image that one `denoise` call costs (2 for classic CFG).
    fn nfe_per_call(&self) -> usize {
        1
    }
}
