//! Exponential moving average of weights with EDM's half-life schedule (Karras et al. 2022,
//! `training_loop.py`): β = 0.5^(batch / h), h = min(halflife, rampup · images seen).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// β for the update after `step` steps (1-based) of `batch` images.
pub fn ema_beta(step: u64, batch: usize, halflife_images: f64, rampup_ratio: Option<f64>) -> f64 {
    let seen = (step as f64) * batch as f64;
    let h = match rampup_ratio {
        Some(r) => halflife_images.min(seen * r),
        None => halflife_images,
    };
    0.5f64.powf(batch as f64 / h.max(1e-8))
}

struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().flatten(0, D - 1));
    }
}

struct Blend {
    live: std::vec::IntoIter<Tensor<1>>,
    beta: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let live = self
            .live
            .next()
            .expect("EMA and live model share one structure");
        let beta = self.beta;
        param.map(|ema| {
            let shape = ema.shape();
            (ema.mul_scalar(beta) + live.reshape(shape).mul_scalar(1.0 - beta)).detach()
        })
    }
}

/// θ_ema ← β·θ_ema + (1 − β)·θ, parameter by parameter in traversal order. `live` is the
/// training model without autodiff (`model.valid()`).
pub fn ema_update<M: Module>(ema: M, live: &M, beta: f64) -> M {
    let mut collect = Collect(Vec::new());
    live.visit(&mut collect);
    ema.map(&mut Blend {
        live: collect.0.into_iter(),
        beta,
    })
}
