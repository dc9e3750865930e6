//! The probability-flow ODE solvers, every step in one place: the slope d = (x − D)/σ, Euler
//! (= DDIM) and Heun steps (Karras et al. 2022, Algorithms 1–2, without churn), DPM-Solver++(2M)
//! (Lu et al. 2022, multistep second order in the data-prediction form, t = −ln σ) and multistep
//! consistency sampling (Song et al. 2023, Algorithm 1). Sampling and the distillation targets
//! (progressive: two Euler steps; consistency: one Heun step) call the same functions.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Cond, Denoiser, per_example};

/// Which solver steps from σ_i to σ_{i+1}.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    /// First-order Euler step; 1 evaluation per step.
    #[default]
    Euler,
    /// DDIM (Song et al. 2021): in the σ parameterisation its update is exactly the Euler step
    /// (Karras et al. 2022, §3), so it runs the same arithmetic and is named as asked.
    Ddim,
    /// Second-order Heun step (EDM Algorithm 2); 2 evaluations per step, 1 on the last.
    Heun,
    /// DPM-Solver++(2M) (Lu et al. 2022): second order from the previous step's D; 1 evaluation
    /// per step, first order on the first step and the last (to σ = 0).
    Dpmpp2m,
}

impl Sampler {
    /// Denoiser calls for a grid of `steps` steps ending in σ = 0.
    pub fn calls(self, steps: usize) -> usize {
        match self {
            Sampler::Euler | Sampler::Ddim | Sampler::Dpmpp2m => steps,
            Sampler::Heun => (2 * steps).saturating_sub(1),
        }
    }

    /// The value of `--sampler` (and of `sampler` in JSON) that picks it.
    pub fn key(self) -> &'static str {
        match self {
            Sampler::Euler => "euler",
            Sampler::Ddim => "ddim",
            Sampler::Heun => "heun",
            Sampler::Dpmpp2m => "dpmpp2m",
        }
    }

    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Sampler::Euler => "Euler",
            Sampler::Ddim => "DDIM",
            Sampler::Heun => "Heun",
            Sampler::Dpmpp2m => "DPM-Solver++(2M)",
        }
    }
}

/// A noise level: one σ for the whole batch (sampling) or one per example (distillation targets,
/// where every example sits at its own point of the grid).
// Short-lived and passed by reference: the size of the tensor variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Sigma {
    /// The same σ for every example.
    All(f64),
    /// One σ per example, `[n]`.
    Each(Tensor<1>),
}

impl Sigma {
    /// σ per example, `[n]`: what the denoiser takes.
    pub fn tensor(&self, n: usize, device: &Device) -> Tensor<1> {
        match self {
            Sigma::All(s) => Tensor::full([n], *s, device),
            Sigma::Each(t) => t.clone(),
        }
    }

    /// σ·x, per example.
    pub fn times(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Sigma::All(s) => x.mul_scalar(*s),
            Sigma::Each(t) => x * per_example::<4>(t.clone()),
        }
    }

    /// x/σ, per example.
    pub fn divide(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Sigma::All(s) => x.div_scalar(*s),
            Sigma::Each(t) => x / per_example::<4>(t.clone()),
        }
    }

    /// σ_self − σ_other: the step size Δσ (in f64 for one σ, in the tensor's precision per example).
    pub fn minus(&self, other: &Sigma) -> Sigma {
        match (self, other) {
            (Sigma::All(a), Sigma::All(b)) => Sigma::All(a - b),
            (Sigma::Each(a), Sigma::Each(b)) => Sigma::Each(a.clone() - b.clone()),
            (Sigma::Each(a), Sigma::All(b)) => Sigma::Each(a.clone().sub_scalar(*b)),
            (Sigma::All(a), Sigma::Each(b)) => Sigma::Each(b.clone().neg().add_scalar(*a)),
        }
    }
}

/// D(x; σ) for a batch at `sigma`.
fn denoise(den: &impl Denoiser, x: &Tensor<4>, sigma: &Sigma, cond: &Cond) -> Tensor<4> {
    let sig = sigma.tensor(x.dims()[0], &x.device());
    den.denoise(x.clone(), sig, cond)
}

/// d = (x − D)/σ: the probability-flow ODE's slope dx/dσ (EDM Eq. 3 with σ(t) = t).
pub fn to_d(x: Tensor<4>, sigma: &Sigma, denoised: Tensor<4>) -> Tensor<4> {
    sigma.divide(x - denoised)
}

/// Euler step σ → σ_next: x + (σ_next − σ)·d(x, σ)  (EDM Algorithm 1, line 4). 1 evaluation.
///
/// # Shapes
/// - x: `[n, c, h, w]` → `[n, c, h, w]`
pub fn euler_step(
    den: &impl Denoiser,
    x: Tensor<4>,
    sigma: &Sigma,
    sigma_next: &Sigma,
    cond: &Cond,
) -> Tensor<4> {
    let d = to_d(x.clone(), sigma, denoise(den, &x, sigma, cond));
    x + sigma_next.minus(sigma).times(d)
}

/// Heun step σ → σ_next > 0: Euler to x', then x + (σ_next − σ)·(d + d')/2 with
/// d' = d(x', σ_next)  (EDM Algorithm 2, lines 4–7). 2 evaluations.
///
/// # Shapes
/// - x: `[n, c, h, w]` → `[n, c, h, w]`
pub fn heun_step(
    den: &impl Denoiser,
    x: Tensor<4>,
    sigma: &Sigma,
    sigma_next: &Sigma,
    cond: &Cond,
) -> Tensor<4> {
    let dt = sigma_next.minus(sigma);
    let d = to_d(x.clone(), sigma, denoise(den, &x, sigma, cond));
    let x_euler = x.clone() + dt.times(d.clone());
    let d_next = to_d(
        x_euler.clone(),
        sigma_next,
        denoise(den, &x_euler, sigma_next, cond),
    );
    x + dt.times((d + d_next).mul_scalar(0.5))
}

/// What DPM-Solver++(2M) carries from one step to the next: D of the step, and its h.
pub struct Dpm2mHistory {
    denoised: Tensor<4>,
    h: f64,
}

/// DPM-Solver++(2M) step σ → σ_next (Lu et al. 2022, Algorithm 2, in t = −ln σ): with
/// h = t_next − t = ln(σ/σ_next), x_next = (σ_next/σ)·x − expm1(−h)·D̂, where D̂ = D on the first
/// step and D̂ = (1 + 1/2r)·D − (1/2r)·D_prev with r = h_prev/h after it. The last step to σ = 0
/// returns D (h = ∞: the first-order update's limit). 1 evaluation.
///
/// # Shapes
/// - x: `[n, c, h, w]` → `[n, c, h, w]`
pub fn dpmpp2m_step(
    den: &impl Denoiser,
    x: Tensor<4>,
    sigma: f64,
    sigma_next: f64,
    prev: Option<&Dpm2mHistory>,
    cond: &Cond,
) -> (Tensor<4>, Dpm2mHistory) {
    let denoised = denoise(den, &x, &Sigma::All(sigma), cond);
    if sigma_next == 0.0 {
        let h = f64::INFINITY;
        return (denoised.clone(), Dpm2mHistory { denoised, h });
    }
    let h = (sigma / sigma_next).ln();
    let d_hat = match prev {
        Some(p) => {
            let r = p.h / h;
            denoised.clone().mul_scalar(1.0 + 1.0 / (2.0 * r))
                - p.denoised.clone().mul_scalar(1.0 / (2.0 * r))
        }
        None => denoised.clone(),
    };
    let x_next = x.mul_scalar(sigma_next / sigma) - d_hat.mul_scalar((-h).exp_m1());
    (x_next, Dpm2mHistory { denoised, h })
}

/// The result of one sampling run.
pub struct Sampled {
    /// Final images, `[n, c, h, w]`.
    pub x: Tensor<4>,
    /// Network evaluations per image actually spent.
    pub nfe: usize,
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
    let mut history = None;
    // 2: for i ∈ {0, …, N−1}: one step σ_i → σ_{i+1}
    for pair in sigmas.windows(2) {
        let (s, s_next) = (pair[0], pair[1]);
        x = match sampler {
            // 5–7: Heun's correction, skipped on the last step to σ = 0
            Sampler::Heun if s_next > 0.0 => {
                heun_step(den, x, &Sigma::All(s), &Sigma::All(s_next), cond)
            }
            Sampler::Dpmpp2m => {
                let (x_next, h) = dpmpp2m_step(den, x, s, s_next, history.as_ref(), cond);
                history = Some(h);
                x_next
            }
            _ => euler_step(den, x, &Sigma::All(s), &Sigma::All(s_next), cond),
        };
    }
    Sampled {
        x,
        nfe: sampler.calls(sigmas.len() - 1) * den.nfe_per_call(),
    }
}

/// Multistep consistency sampling (Song et al. 2023, Algorithm 1): x = σ_0·z_0; for each k,
/// x̂ = f(x, σ_k), then re-noise x = x̂ + √(σ_{k+1}² − σ_min²)·z_{k+1}. `noises[k]` is z_k from
/// the caller, so a seed fixes the images. Costs one evaluation per step.
///
/// # Shapes
/// - each noise: `[n, c, h, w]` → x: `[n, c, h, w]`
pub fn multistep_consistency(
    f: &impl Denoiser,
    noises: &[Tensor<4>],
    sigmas: &[f64],
    sigma_min: f64,
    cond: &Cond,
) -> Sampled {
    assert_eq!(noises.len(), sigmas.len(), "one noise per step");
    let mut x = noises[0].clone().mul_scalar(sigmas[0]);
    let mut x0 = x.clone();
    for (k, &s) in sigmas.iter().enumerate() {
        x0 = denoise(f, &x, &Sigma::All(s), cond);
        x = match sigmas.get(k + 1) {
            Some(&next) => {
                let scale = (next * next - sigma_min * sigma_min).max(0.0).sqrt();
                x0.clone() + noises[k + 1].clone().mul_scalar(scale)
            }
            None => x0.clone(),
        };
    }
    Sampled {
        x: x0,
        nfe: sigmas.len() * f.nfe_per_call(),
    }
}
