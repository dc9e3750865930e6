//! Deterministic ODE samplers over a σ grid (Karras et al. 2022, Algorithm 1 with Euler steps —
//! which in the σ parameterisation is DDIM — and Algorithm 2, Heun, without churn).

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::{Cond, Denoiser};

/// Which ODE solver steps from σ_i to σ_{i+1}.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    /// First-order Euler step (= DDIM in the σ parameterisation); 1 evaluation per step.
    #[default]
    Euler,
    /// Second-order Heun step (EDM Algorithm 2); 2 evaluations per step, 1 on the last.
    Heun,
}

impl Sampler {
    /// Denoiser calls for a grid of `steps` steps ending in σ = 0.
    pub fn calls(self, steps: usize) -> usize {
        match self {
            Sampler::Euler => steps,
            Sampler::Heun => (2 * steps).saturating_sub(1),
        }
    }
}

/// The result of one sampling run.
pub struct Sampled {
    /// Final images, `[n, c, h, w]`.
    pub x: Tensor<4>,
    /// Network evaluations per image actually spent.
    pub nfe: usize,
}

fn sigma_like(x: &Tensor<4>, sigma: f64) -> Tensor<1> {
    Tensor::full([x.dims()[0]], sigma, &x.device())
}

/// dx/dσ = (x − D(x; σ)) / σ  (EDM Eq. 3 with σ(t) = t).
fn slope(den: &impl Denoiser, x: &Tensor<4>, sigma: f64, cond: &Cond) -> Tensor<4> {
    let d = den.denoise(x.clone(), sigma_like(x, sigma), cond);
    (x.clone() - d).div_scalar(sigma)
}

/// Integrate the probability-flow ODE along `sigmas` (σ_0 > … > σ_N = 0) starting from
/// x_0 = σ_0·noise; `noise` is unit Gaussian from the caller, so a seed fixes the images.
///
/// # Shapes
/// - noise: `[n, c, h, w]` → x: `[n, c, h, w]`
pub fn sample(
    den: &impl Denoiser,
    noise: Tensor<4>,
    sigmas: &[f64],
    sampler: Sampler,
    cond: &Cond,
) -> Sampled {
    assert!(
        sigmas.len() >= 2,
        "a σ grid has at least σ_0 and the final 0"
    );
    // 1: sample x_0 ~ N(0, σ_0² I)
    let mut x = noise.mul_scalar(sigmas[0]);
    let mut calls = 0;
    // 2: for i ∈ {0, …, N−1}
    for pair in sigmas.windows(2) {
        let (s_cur, s_next) = (pair[0], pair[1]);
        // 3: d_i = (x_i − D(x_i; σ_i)) / σ_i
        let d = slope(den, &x, s_cur, cond);
        calls += 1;
        // 4: x_{i+1} = x_i + (σ_{i+1} − σ_i)·d_i   (Euler step)
        let x_euler = x.clone() + d.clone().mul_scalar(s_next - s_cur);
        x = match sampler {
            // 5–7: Heun's correction, skipped on the last step to σ = 0
            Sampler::Heun if s_next > 0.0 => {
                let d_next = slope(den, &x_euler, s_next, cond);
                calls += 1;
                x + (d + d_next).mul_scalar(0.5 * (s_next - s_cur))
            }
            _ => x_euler,
        };
    }
    Sampled {
        x,
        nfe: calls * den.nfe_per_call(),
    }
}
