//! Seeded random inputs for parity checks and benchmarks: noisy images x = y + σ·z with
//! y ~ U(−1, 1) (the data range), z ~ N(0, I) and σ log-uniform over EDM's sampling range, labels
//! over every class including the null class, and w over the student's trained range.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use teacher::model::EdmModel;
use teacher::rng::{Stream, normals, rng};
use teacher::unet::ImageShape;

use crate::capture::Input;
use crate::npy::NpyData;
use crate::source::Source;

/// σ_min of EDM's sampling range (Karras et al. 2022, Table 1).
pub const SIGMA_MIN: f64 = 0.002;
/// σ_max of EDM's sampling range (Karras et al. 2022, Table 1).
pub const SIGMA_MAX: f64 = 80.0;

/// One batch of inputs, flat in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub n: usize,
    pub shape: ImageShape,
    pub x: Vec<f32>,
    pub sigma: Vec<f32>,
    pub class: Vec<i64>,
    /// The guidance weight, for students.
    pub w: Option<Vec<f32>>,
}

impl Batch {
    /// `n` random examples for `source`'s model; the same seed gives the same batch.
    pub fn random(source: &Source, n: usize, seed: u64) -> Self {
        let shape = source.model.unet_shape();
        let mut r = rng(seed, Stream::Eval, n as u64);
        let len = shape.channels * shape.height * shape.width;
        let z = normals(&mut r, n * len);
        let (ln_lo, ln_hi) = (SIGMA_MIN.ln(), SIGMA_MAX.ln());
        let sigma: Vec<f32> = (0..n)
            .map(|_| r.random_range(ln_lo..=ln_hi).exp() as f32)
            .collect();
        let x = z
            .iter()
            .enumerate()
            .map(|(i, z)| r.random_range(-1.0f32..=1.0) + sigma[i / len] * z)
            .collect();
        // Labels 0..=num_classes: the last is the learned null class.
        let classes = source.model.num_classes as i64;
        let class = (0..n).map(|_| r.random_range(0..=classes)).collect();
        let w = source.inputs.contains(&Input::W).then(|| {
            let (lo, hi) = source.w_range();
            (0..n).map(|_| r.random_range(lo..=hi) as f32).collect()
        });
        Self {
            n,
            shape,
            x,
            sigma,
            class,
            w,
        }
    }

    /// Dims and values of one input.
    pub fn get(&self, input: Input) -> (Vec<usize>, NpyData) {
        let dims = input.dims(self.n, self.shape);
        let data = match input {
            Input::X => NpyData::F32(self.x.clone()),
            Input::Sigma => NpyData::F32(self.sigma.clone()),
            Input::Class => NpyData::I64(self.class.clone()),
            Input::W => NpyData::F32(self.w.clone().unwrap_or_else(|| vec![0.0; self.n])),
        };
        (dims, data)
    }

    /// D(x; σ, class, w) by burn on `device`, flat.
    pub fn burn_forward(&self, model: &EdmModel, device: &Device) -> Vec<f32> {
        let dims = Input::X.dims(self.n, self.shape);
        let x = Tensor::<4>::from_data(TensorData::new(self.x.clone(), dims), device);
        let sigma = Tensor::<1>::from_data(TensorData::new(self.sigma.clone(), [self.n]), device);
        let class =
            Tensor::<1, Int>::from_data(TensorData::new(self.class.clone(), [self.n]), device);
        let w = self
            .w
            .as_ref()
            .map(|w| Tensor::<1>::from_data(TensorData::new(w.clone(), [self.n]), device));
        model
            .forward(x, sigma, class, w)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("the denoiser's output is a float tensor")
    }
}
