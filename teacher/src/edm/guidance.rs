//! Classifier-free guidance (Ho & Salimans 2022): D_w = D_u + w·(D_c − D_u), so w = 1 is the plain
//! conditional denoiser and w = 0 the unconditional one.

use burn::tensor::{Int, Tensor};

use super::{Cond, Denoiser};

/// D_w = D_u + w·(D_c − D_u)  (Ho & Salimans 2022, Eq. 6 written on denoised images).
pub fn cfg<const D: usize>(d_uncond: Tensor<D>, d_cond: Tensor<D>, w: f64) -> Tensor<D> {
    d_uncond.clone() + (d_cond - d_uncond).mul_scalar(w)
}

/// D_w = D_u + w·(D_c − D_u) with one w per example (`[n]`), as the w-conditioned students
/// are trained on a range of w.
pub fn cfg_per_example<const D: usize>(
    d_uncond: Tensor<D>,
    d_cond: Tensor<D>,
    w: Tensor<1>,
) -> Tensor<D> {
    d_uncond.clone() + (d_cond - d_uncond) * super::per_example::<D>(w)
}

/// Classic two-evaluation CFG around a conditional denoiser with a learned null class.
/// Conditional and unconditional halves run as one batch of 2n; that is still 2 network
/// evaluations per image, and `nfe_per_call` says so.
pub struct Guided<'a, M: Denoiser> {
    pub model: &'a M,
    /// Guidance weight w.
    pub w: f64,
    /// Index of the null ("unconditional") class.
    pub null_class: usize,
}

/// (D_c, D_u) of one batch: conditional and unconditional halves run as one batch of 2n.
///
/// # Shapes
/// - x: `[n, c, h, w]`, sigma: `[n]`, cond: `[n]` → two `[n, c, h, w]`
pub fn cond_and_uncond(
    model: &impl Denoiser,
    x: Tensor<4>,
    sigma: Tensor<1>,
    cond: &Cond,
    null_class: usize,
) -> (Tensor<4>, Tensor<4>) {
    let [n, ..] = x.dims();
    let null = Tensor::<1, Int>::full([n], null_class as i64, &cond.class.device());
    let both = Cond {
        class: Tensor::cat(vec![cond.class.clone(), null], 0),
        extra: cond
            .extra
            .clone()
            .map(|e| Tensor::cat(vec![e.clone(), e], 0)),
        latent: cond
            .latent
            .clone()
            .map(|z| Tensor::cat(vec![z.clone(), z], 0)),
    };
    let out = model.denoise(
        Tensor::cat(vec![x.clone(), x], 0),
        Tensor::cat(vec![sigma.clone(), sigma], 0),
        &both,
    );
    (out.clone().narrow(0, 0, n), out.narrow(0, n, n))
}

impl<M: Denoiser> Denoiser for Guided<'_, M> {
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, cond: &Cond) -> Tensor<4> {
        let (d_cond, d_uncond) = cond_and_uncond(self.model, x, sigma, cond, self.null_class);
        cfg(d_uncond, d_cond, self.w)
    }

    fn nfe_per_call(&self) -> usize {
        2 * self.model.nfe_per_call()
    }
}
