//! Fixtures shared by the tests of every crate: seeded noise on a network's parameters, so
//! that zero-initialised layers carry signal and outputs depend on every path.

use burn::module::{ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};

use crate::edm::{Cond, Denoiser, per_example};
use crate::rng::{Stream, normals, rng};

/// The ideal denoiser for data ~ N(0, σ_d² I): D(x; σ) = x·σ_d²/(σ² + σ_d²)
/// (the posterior mean E[y | y + σn = x] of a Gaussian prior) — the closed-form fixture that
/// checks samplers, losses and distillation targets without training.
pub struct IdealGaussian {
    pub sigma_data: f64,
}

impl Denoiser for IdealGaussian {
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, _cond: &Cond) -> Tensor<4> {
        let sd2 = self.sigma_data * self.sigma_data;
        let scale = (sigma.clone() * sigma)
            .add_scalar(sd2)
            .recip()
            .mul_scalar(sd2);
        x * per_example::<4>(scale)
    }
}

/// Adds `scale`·N(0, 1) to every float parameter; the k-th parameter visited draws from seed
/// `first` + k, stream `Eval`, index `index`, so the same arguments perturb alike every time.
pub struct Jitter {
    count: u64,
    index: u64,
    scale: f64,
}

impl Jitter {
    pub fn new(first: u64, index: u64, scale: f64) -> Self {
        Self {
            count: first,
            index,
            scale,
        }
    }
}

impl ModuleMapper for Jitter {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        self.count += 1;
        let (k, index, scale) = (self.count, self.index, self.scale);
        p.map(|t| {
            let shape = t.shape();
            let n = shape.num_elements();
            let noise = normals(&mut rng(k, Stream::Eval, index), n);
            let noise = Tensor::<1>::from_data(TensorData::new(noise, [n]), &t.device());
            t + noise.reshape(shape).mul_scalar(scale)
        })
    }
}
