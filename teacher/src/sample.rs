//! Generating a labelled batch of images from a model: seeded noise per image, classes, an ODE
//! sampler, guidance — and an honest count of network evaluations.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::checkpoint::Checkpoint;
use crate::edm::guidance::Guided;
use crate::edm::solver::{Sampled, Sampler, sample};
use crate::edm::{Cond, Denoiser};
use crate::error::Result;
use crate::model::EdmModel;
use crate::recipe::{SamplerPlan, run_plan};
use crate::rng::{Stream, normals, rng};
use crate::unet::ImageShape;

/// Which classes to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassChoice {
    /// Every sample of this class.
    One(usize),
    /// Sample i gets class i mod K, spreading N evenly over the K classes.
    All,
}

impl ClassChoice {
    pub fn class_of(self, i: usize, num_classes: usize) -> usize {
        match self {
            ClassChoice::One(k) => k,
            ClassChoice::All => i % num_classes,
        }
    }
}

/// Unit Gaussian noise for images `first..first+n`; image i's noise depends only on (seed, i),
/// so the same seed gives the same images whatever the batch size.
pub fn noise_for(first: usize, n: usize, len: usize, seed: u64) -> Vec<f32> {
    (first..first + n)
        .flat_map(|i| normals(&mut rng(seed, Stream::Sample, i as u64), len))
        .collect()
}

/// Unit Gaussian noise z_k (k ≥ 1) for re-noising images `first..first+n` at step k of
/// multistep sampling; like [`noise_for`], a function of (seed, image, k) only.
pub fn renoise_for(first: usize, n: usize, len: usize, seed: u64, k: usize) -> Vec<f32> {
    (first..first + n)
        .flat_map(|i| {
            normals(
                &mut rng(
                    crate::rng::derive_seed(seed, Stream::Sample, i as u64),
                    Stream::Eval,
                    k as u64,
                ),
                len,
            )
        })
        .collect()
}

/// What to sample from a teacher.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// Index of the first image: image i's noise and class depend only on (seed, i), so a set
    /// sampled in pieces (`first` = 0, 250, …) equals the set sampled at once.
    pub first: usize,
    pub n: usize,
    pub classes: ClassChoice,
    pub steps: usize,
    /// The ODE solver; None: the model's own default (its recipe decides what it allows).
    pub sampler: Option<Sampler>,
    pub guidance: f64,
    pub seed: u64,
    pub batch_size: usize,
    /// A model of latents: which decoder turns its samples into images (None: the chain's
    /// `[data.latents]`); ignored for models of images.
    pub decoder: Option<crate::latent::source::DecoderChoice>,
}

impl SampleSpec {
    /// What evaluation samples: classes 0, 1, … in turn, each model's default sampler (Euler
    /// where it has a choice), the given guidance, seed and batch.
    pub fn eval(n: usize, steps: usize, guidance: f64, seed: u64, batch_size: usize) -> Self {
        Self {
            first: 0,
            n,
            classes: ClassChoice::All,
            steps,
            sampler: None,
            guidance,
            seed,
            batch_size,
            decoder: None,
        }
    }
}

/// Images (`[n·C·H·W]` in ≈[−1, 1]), their classes, and the NFE per image.
pub struct Samples {
    pub images: Vec<f32>,
    pub classes: Vec<usize>,
    pub nfe: usize,
}

/// One batch from a teacher along `sigmas` with guidance weight `w` (CFG; w = 1 and w = 0 take
/// the single exact evaluation).
pub fn guided_sample(
    model: &EdmModel,
    noise: Tensor<4>,
    sigmas: &[f64],
    sampler: Sampler,
    w: f64,
    cond: &Cond,
) -> Sampled {
    if w == 1.0 {
        sample(model, noise, sigmas, sampler, cond)
    } else if w == 0.0 {
        let uncond = Cond {
            class: cond
                .class
                .clone()
                .zeros_like()
                .add_scalar(model.null_class() as i64),
            extra: None,
            latent: cond.latent.clone(),
        };
        sample(model, noise, sigmas, sampler, &uncond)
    } else {
        let guided = Guided {
            model,
            w,
            null_class: model.null_class(),
        };
        sample(&guided, noise, sigmas, sampler, cond)
    }
}

/// Split a request into batches, draw noise and classes, run `f` on each, and hand each
/// batch's images (`[b·C·H·W]`), classes and first index to `sink` as soon as it is done, so
/// no more than one batch is held; returns the NFE per image.
pub fn for_each_batch<E>(
    spec: &SampleSpec,
    shape: ImageShape,
    num_classes: usize,
    device: &Device,
    mut f: impl FnMut(Tensor<4>, &Cond, std::ops::Range<usize>) -> Sampled,
    mut sink: impl FnMut(usize, Vec<f32>, &[usize]) -> std::result::Result<(), E>,
) -> std::result::Result<usize, E> {
    let len = shape.len();
    let batch = spec.batch_size.max(1);
    let mut nfe = 0;
    let end = spec.first + spec.n;
    for first in (spec.first..end).step_by(batch) {
        let b = batch.min(end - first);
        let noise = Tensor::<4>::from_data(
            TensorData::new(
                noise_for(first, b, len, spec.seed),
                [b, shape.planes(), shape.height, shape.width],
            ),
            device,
        );
        let classes: Vec<usize> = (first..first + b)
            .map(|i| spec.classes.class_of(i, num_classes))
            .collect();
        let labels: Vec<i64> = classes.iter().map(|&c| c as i64).collect();
        let cond = Cond {
            class: Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), device),
            extra: None,
            latent: None,
        };
        let out = f(noise, &cond, first..first + b);
        nfe = out.nfe;
        let images = out
            .x
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 images");
        sink(first, images, &classes)?;
    }
    Ok(nfe)
}

/// Sample `spec` from the checkpoint `ck` as its recipe plans it; returns the samples and the
/// plan that ran (its NFE and description are what reports quote).
pub fn sample_checkpoint(
    ck: &Checkpoint,
    spec: &SampleSpec,
    device: &Device,
) -> Result<(Samples, SamplerPlan)> {
    let (mut images, mut classes) = (Vec::new(), Vec::new());
    let (nfe, plan) = sample_checkpoint_each(ck, spec, device, |_, x, c| -> Result<()> {
        images.extend(x);
        classes.extend_from_slice(c);
        Ok(())
    })?;
    let s = Samples {
        images,
        classes,
        nfe,
    };
    Ok((s, plan))
}

/// What sampling hands on: the images, or the whole final state (a multi-resolution model's
/// canvas with every copy; the same as the images for one-resolution models).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Images,
    States,
}

/// [`sample_checkpoint`], handing each batch to `sink` as it is done (first index, images,
/// classes) instead of holding them all; returns the NFE per image and the plan.
pub fn sample_checkpoint_each<E: From<crate::Error>>(
    ck: &Checkpoint,
    spec: &SampleSpec,
    device: &Device,
    sink: impl FnMut(usize, Vec<f32>, &[usize]) -> std::result::Result<(), E>,
) -> std::result::Result<(usize, SamplerPlan), E> {
    sample_checkpoint_as(ck, spec, Output::Images, device, sink)
}

/// [`sample_checkpoint_each`] handing on `output`: images, or final states
/// (shaped as the model's `example_shape()`).
pub fn sample_checkpoint_as<E: From<crate::Error>>(
    ck: &Checkpoint,
    spec: &SampleSpec,
    output: Output,
    device: &Device,
    sink: impl FnMut(usize, Vec<f32>, &[usize]) -> std::result::Result<(), E>,
) -> std::result::Result<(usize, SamplerPlan), E> {
    let plan = ck
        .header
        .recipe
        .plan(spec.steps, spec.sampler, spec.guidance)?;
    let model = ck.inference_model(device)?;
    if matches!(model.net, crate::model::Network::LatentAutoencoder(_)) {
        return Err(crate::Error::Invalid(
            "this run is a latent autoencoder (Unified Latents' stage 1, or a decoder distilled \
             from one): its decoder samples images of given latents, not from noise alone; sample \
             the base model trained on its latents (`[data] source = \"latents\"`), or measure \
             it with `fewstep latent measure`"
                .to_string(),
        )
        .into());
    }
    let shape = model.example_shape();
    let len = shape.len();
    // A latent model's samples are latents; as images they go through its decoder.
    let decoding = match output {
        Output::Images => {
            crate::latent::source::decoding_of(&ck.header, spec.decoder.as_ref(), device)?
        }
        Output::States => None,
    };
    let run = |noise, cond: &Cond, range: std::ops::Range<usize>| {
        let n = range.len();
        let dims = [n, shape.planes(), shape.height, shape.width];
        let mut noises = vec![noise];
        for k in 1..plan.noises() {
            let z = renoise_for(range.start, n, len, spec.seed, k);
            noises.push(Tensor::from_data(TensorData::new(z, dims), device));
        }
        let mut out = run_plan(&model, &plan, &noises, &plan.cond(cond));
        if output == Output::Images {
            out.x = model.to_images(out.x);
        }
        if let Some(d) = &decoding {
            out.x = d.decode(out.x, range.start, spec.seed);
            out.nfe += d.nfe();
        }
        out
    };
    let nfe = for_each_batch(spec, shape, model.num_classes, device, run, sink)?;
    Ok((nfe, plan))
}

/// The shape of the images sampling `ck` hands on: its examples', or for a model of latents
/// the images its decoder makes.
pub fn output_shape(ck: &Checkpoint) -> Result<ImageShape> {
    let cfg = ck.header.teacher_config()?;
    match cfg.data.source {
        crate::data::DataSource::Latents => cfg.data.latent_source()?.image_shape(),
        _ => Ok(ck.header.spec.shape),
    }
}

/// A model as a plain denoiser, for callers that hold one behind a reference.
impl<T: Denoiser> Denoiser for &T {
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, cond: &Cond) -> Tensor<4> {
        (*self).denoise(x, sigma, cond)
    }
    fn nfe_per_call(&self) -> usize {
        (*self).nfe_per_call()
    }
}
