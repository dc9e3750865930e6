//! Seeded random inputs for parity checks and benchmarks: noisy images x = y + σ·z with
//! y ~ U(−1, 1) (the data range), z ~ N(0, I) and σ log-uniform over EDM's sampling range, labels
//! over every class including the null class, and w over the student's trained range.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use teacher::latent::source::DecoderDraws;
use teacher::model::EdmModel;
use teacher::rng::{Stream, normals, rng};

use crate::capture::{Input, Shapes};
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
    pub shapes: Shapes,
    /// Denoisers: the noisy examples; unrolled samplers: the initial unit noise.
    pub x: Vec<f32>,
    pub sigma: Vec<f32>,
    pub class: Vec<i64>,
    /// The guidance weight, for students.
    pub w: Option<Vec<f32>>,
    /// Unrolled samplers: z_1, z_2, … (consistency re-noising); `x` holds the initial noise.
    pub renoise: Vec<Vec<f32>>,
    /// Unrolled samplers: the seed `fewstep sample --seed` would take for these inputs.
    pub sample_seed: Option<u64>,
    /// Unrolled latent chains: the decoder's draws (the channel's ε, its sampler's noises).
    pub decoder: Option<DecoderDraws>,
}

impl Batch {
    /// `n` random examples for `source`'s model; the same seed gives the same batch. For an
    /// unrolled sampler: exactly the noise, re-noising noise, classes (i mod K) and w that
    /// `fewstep sample --n n --seed seed` draws.
    pub fn random(source: &Source, n: usize, seed: u64) -> Self {
        let shapes = source.shapes();
        if let Some(u) = &source.unroll {
            let len = shapes.example.len();
            let k = source.model.num_classes.max(1);
            return Self {
                n,
                shapes,
                x: teacher::sample::noise_for(0, n, len, seed),
                sigma: Vec::new(),
                class: (0..n).map(|i| (i % k) as i64).collect(),
                w: source
                    .inputs
                    .contains(&Input::W)
                    .then(|| vec![u.guidance as f32; n]),
                renoise: (1..u.plan.noises())
                    .map(|j| teacher::sample::renoise_for(0, n, len, seed, j))
                    .collect(),
                sample_seed: Some(seed),
                decoder: u.decoding.as_ref().map(|d| d.draws(0, n, len, seed)),
            };
        }
        let mut r = rng(seed, Stream::Eval, n as u64);
        let len = shapes.example.len();
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
            shapes,
            x,
            sigma,
            class,
            w,
            renoise: Vec::new(),
            sample_seed: None,
            decoder: None,
        }
    }

    /// Dims of the graph's output: a denoiser's examples, or an unrolled sampler's images.
    pub fn output_dims(&self) -> Vec<usize> {
        match self.sample_seed {
            Some(_) => self.shapes.image_dims(self.n),
            None => self.shapes.example_dims(self.n),
        }
    }

    /// Dims and values of one input.
    pub fn get(&self, input: Input) -> (Vec<usize>, NpyData) {
        let dims = input.dims(self.n, self.shapes);
        let zeros = || vec![0.0; dims.iter().product()];
        let d = self.decoder.as_ref();
        let data = match input {
            Input::X | Input::Noise => NpyData::F32(self.x.clone()),
            Input::Renoise(k) => NpyData::F32(
                self.renoise
                    .get(usize::from(k).wrapping_sub(1))
                    .cloned()
                    .unwrap_or_else(zeros),
            ),
            Input::LatentNoise => NpyData::F32(d.map(|d| d.eps.clone()).unwrap_or_else(zeros)),
            Input::DecoderNoise(k) => NpyData::F32(
                d.and_then(|d| d.noises.get(usize::from(k)).cloned())
                    .unwrap_or_else(zeros),
            ),
            Input::Sigma => NpyData::F32(self.sigma.clone()),
            Input::Class => NpyData::I64(self.class.clone()),
            Input::W => NpyData::F32(self.w.clone().unwrap_or_else(|| vec![0.0; self.n])),
        };
        (dims, data)
    }

    /// What burn computes for these inputs, flat: D(x; σ, class, w), or for an unrolled
    /// sampler the images `fewstep sample` produces from the same seed.
    pub fn reference(&self, source: &Source, device: &Device) -> crate::error::Result<Vec<f32>> {
        match (&source.unroll, self.sample_seed) {
            (Some(u), Some(seed)) => {
                let spec = teacher::sample::SampleSpec {
                    first: 0,
                    n: self.n,
                    classes: teacher::sample::ClassChoice::All,
                    steps: u.steps,
                    sampler: u.plan.sampler(),
                    guidance: u.guidance,
                    seed,
                    batch_size: self.n,
                    decoder: u.decoder_choice(),
                };
                Ok(
                    teacher::sample::sample_checkpoint(&source.checkpoint, &spec, device)?
                        .0
                        .images,
                )
            }
            _ => Ok(self.burn_forward(&source.model, device)),
        }
    }

    /// burn's computation for these inputs with the model already loaded (what benchmarks
    /// time): one forward pass, or the unrolled sampler's `run_plan`.
    pub fn burn_run(&self, source: &Source, device: &Device) -> Vec<f32> {
        let Some(u) = &source.unroll else {
            return self.burn_forward(&source.model, device);
        };
        let img = |v: &Vec<f32>, input: Input| {
            let dims = input.dims(self.n, self.shapes);
            Tensor::<4>::from_data(TensorData::new(v.clone(), dims), device)
        };
        let noises: Vec<Tensor<4>> = std::iter::once(&self.x)
            .chain(&self.renoise)
            .map(|v| img(v, Input::Noise))
            .collect();
        let cond = teacher::edm::Cond {
            class: Tensor::<1, Int>::from_data(
                TensorData::new(self.class.clone(), [self.n]),
                device,
            ),
            extra: self
                .w
                .as_ref()
                .map(|w| Tensor::<1>::from_data(TensorData::new(w.clone(), [self.n]), device)),
            latent: None,
        };
        let x = teacher::recipe::run_plan(&source.model, &u.plan, &noises, &cond).x;
        let mut x = source.model.to_images(x);
        if let (Some(dec), Some(d)) = (&u.decoding, &self.decoder) {
            let dn: Vec<Tensor<4>> = d
                .noises
                .iter()
                .map(|v| img(v, Input::DecoderNoise(0)))
                .collect();
            x = dec.decode_with(x, img(&d.eps, Input::LatentNoise), &dn);
        }
        x.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("images are float")
    }

    /// D(x; σ, class, w) by burn on `device`, flat.
    pub fn burn_forward(&self, model: &EdmModel, device: &Device) -> Vec<f32> {
        let dims = Input::X.dims(self.n, self.shapes);
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
