//! Stage 2's data and its way back to pixels. `[data] source = "latents"` with `[data.latents]`
//! makes a run's examples the clean latents E(x) of the stage-1 run's own images (its EMA
//! encoder, frozen), labels kept; the base model trained on them is an EDM teacher like any
//! other, over latents, with noise levels σ ≥ σ₀ (`[diffusion.loss]` sigmoid up to λ(0)), and
//! every model distilled from it samples latents. [`Decoding`] turns a sampled latent ẑ into
//! images: z₀ = ẑ + σ₀·ε (the encoder's channel, applied to the sample), then the decoder's
//! sampler conditioned on z₀.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::autoencoder::LatentAutoencoder;
use super::channel::noisy_latent;
use super::stage1::null_cond;
use crate::checkpoint::{Checkpoint, LATEST};
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::model::{EdmModel, Network};
use crate::recipe::{SamplerPlan, run_plan};
use crate::sample::renoise_for;

/// `[data.latents]`: which stage-1 run encodes the data and decodes samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentSource {
    /// The stage-1 run's folder (`fewstep teacher train` of a `latent_autoencoder` config).
    pub autoencoder: PathBuf,
    /// A decoder distilled from it to decode with instead (its run folder); default: the
    /// stage-1 run's own decoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<PathBuf>,
    /// Steps of the decoder's sampler (its recipe's default sampler; default 16).
    #[serde(default = "default_decoder_steps")]
    pub decoder_steps: usize,
}

fn default_decoder_steps() -> usize {
    16
}

/// Load a run's checkpoint whose network is a latent autoencoder (its EMA weights), with the
/// autoencoder's σ₀.
fn load_autoencoder(run: &Path, device: &Device) -> Result<(Checkpoint, EdmModel, f64)> {
    let path = run.join(LATEST);
    if !path.exists() {
        return Err(Error::Invalid(format!(
            "`[data.latents]` names `{}`, which holds no `{LATEST}`: train the stage-1 run first \
             (`fewstep teacher train --config LATENT_AUTOENCODER.toml --out {}`) or fix the path",
            run.display(),
            run.display()
        )));
    }
    let ck = Checkpoint::load(&path)?;
    let model = ck.inference_model(device)?;
    let Network::LatentAutoencoder(ae) = &model.net else {
        return Err(Error::Checkpoint {
            path,
            message: "is not a latent autoencoder (its `[model]` kind is not \
                      \"latent_autoencoder\"): point `data.latents.autoencoder` at a stage-1 run"
                .into(),
        });
    };
    let sigma0 = ae.sigma0;
    Ok((ck, model, sigma0))
}

impl LatentSource {
    /// The shape of the images the stage-1 run encodes and decodes.
    pub fn image_shape(&self) -> Result<crate::unet::ImageShape> {
        let path = self.autoencoder.join(LATEST);
        Ok(Checkpoint::load(&path)?.header.spec.shape)
    }

    /// The `split` of the stage-1 run's images (`images_dir`: `--data DIR` for its files),
    /// encoded to clean latents.
    pub fn load(&self, images_dir: Option<&Path>, split: Split) -> Result<Dataset> {
        let device = Device::default();
        let (ck, model, _) = load_autoencoder(&self.autoencoder, &device)?;
        let cfg = ck.header.teacher_config()?;
        let dir = images_dir.or(ck.header.lineage.data_path.as_deref());
        let images = cfg.data.load(dir, split)?;
        match &model.net {
            Network::LatentAutoencoder(ae) => encode_dataset(ae, &images, &device),
            _ => Err(Error::Invalid("not a latent autoencoder".into())),
        }
    }
}

/// Every image of `data` encoded to its clean latent E(x), labels kept.
pub fn encode_dataset(ae: &LatentAutoencoder, data: &Dataset, device: &Device) -> Result<Dataset> {
    let s = data.shape;
    let mut latents = Vec::new();
    let mut shape = None;
    for first in (0..data.len()).step_by(256) {
        let b = 256.min(data.len() - first);
        let px = data.images[first * s.len()..(first + b) * s.len()].to_vec();
        let x = Tensor::<4>::from_data(
            TensorData::new(px, [b, s.planes(), s.height, s.width]),
            device,
        );
        let z = ae.encode(x);
        let [_, c, h, w] = z.dims();
        shape = Some(crate::unet::ImageShape::image(c, h, w));
        latents.extend(
            z.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| Error::Invalid(format!("reading encoded latents: {e:?}")))?,
        );
    }
    Ok(Dataset {
        images: latents,
        labels: data.labels.clone(),
        shape: shape.ok_or_else(|| Error::Invalid("no images to encode into latents".into()))?,
        num_classes: data.num_classes,
        class_names: data.class_names.clone(),
    })
}

/// A decoder other than the chain's own for sampling a model of latents (`fewstep sample
/// --decoder RUN --decoder-steps K`): e.g. the distilled decoder beside a few-step student.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderChoice {
    /// The decoder's run (the stage-1 run or one distilled from it); None: the chain's.
    pub run: Option<PathBuf>,
    /// Its sampler's steps; None: the chain's `decoder_steps`.
    pub steps: Option<usize>,
}

/// The decoder of `header`'s chain when its root teacher was trained on latents, with
/// `choice` applied; None for models of images.
pub fn decoding_of(
    header: &crate::checkpoint::Header,
    choice: Option<&DecoderChoice>,
    device: &Device,
) -> Result<Option<Decoding>> {
    let cfg = header.teacher_config()?;
    if cfg.data.source != crate::data::DataSource::Latents {
        return Ok(None);
    }
    let mut source = cfg.data.latent_source()?.clone();
    if let Some(c) = choice {
        source.decoder = c.run.clone().or(source.decoder);
        source.decoder_steps = c.steps.unwrap_or(source.decoder_steps);
    }
    Ok(Some(Decoding::open(&source, device)?))
}

/// The re-noising index offset of the decoder's draws, far above any sampler's own steps, so a
/// latent sample's decoder noise never repeats its prior's.
const DECODER_NOISE: usize = 1 << 20;

/// A decoder ready to turn sampled latents into images.
#[derive(Clone)]
pub struct Decoding {
    model: EdmModel,
    plan: SamplerPlan,
    sigma0: f64,
    /// The run the decoder was loaded from.
    run: PathBuf,
    /// Its sampler's steps.
    steps: usize,
}

impl std::fmt::Debug for Decoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoding")
            .field("run", &self.run)
            .field("steps", &self.steps)
            .field("sigma0", &self.sigma0)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

/// The random draws of one decoding, flat in C order: the channel's ε (latent-shaped) and the
/// decoder sampler's unit noises (image-shaped), every one a function of (seed, sample index).
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderDraws {
    pub eps: Vec<f32>,
    pub noises: Vec<Vec<f32>>,
}

impl Decoding {
    /// The decoder of `source` (its distilled decoder when it names one) with its plan.
    pub fn open(source: &LatentSource, device: &Device) -> Result<Self> {
        let run = source.decoder.as_ref().unwrap_or(&source.autoencoder);
        let (ck, model, sigma0) = load_autoencoder(run, device)?;
        let plan = ck.header.recipe.plan(source.decoder_steps, None, 1.0)?;
        Ok(Self {
            model,
            plan,
            sigma0,
            run: run.clone(),
            steps: source.decoder_steps,
        })
    }

    /// The same decoder with its weights on `device` (e.g. the export's capture device).
    pub fn to_device(&self, device: &Device) -> Self {
        Self {
            model: self.model.clone().to_device(device),
            ..self.clone()
        }
    }

    /// Network evaluations per image of one decoding.
    pub fn nfe(&self) -> usize {
        self.plan.nfe()
    }

    /// What the decoder runs, for reports.
    pub fn describe(&self) -> String {
        self.plan.describe()
    }

    /// The decoder's sampler (its steps, σ grid and unit noises).
    pub fn plan(&self) -> &SamplerPlan {
        &self.plan
    }

    /// The channel's σ₀ (z₀ = ẑ + σ₀·ε).
    pub fn sigma0(&self) -> f64 {
        self.sigma0
    }

    /// The run the decoder comes from.
    pub fn run(&self) -> &Path {
        &self.run
    }

    /// Its sampler's steps.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The decoder network D(x; σ, z₀).
    pub fn model(&self) -> &EdmModel {
        &self.model
    }

    /// The shape of the images it decodes to.
    pub fn image_shape(&self) -> crate::unet::ImageShape {
        self.model.example_shape()
    }

    /// The draws [`Decoding::decode`] takes for samples `first..first + n` of `seed` whose
    /// latents have `latent_len` values each.
    pub fn draws(&self, first: usize, n: usize, latent_len: usize, seed: u64) -> DecoderDraws {
        let draw = |k: usize, len: usize| renoise_for(first, n, len, seed, DECODER_NOISE + k);
        let img = self.image_shape().len();
        DecoderDraws {
            eps: draw(0, latent_len),
            noises: (0..self.plan.noises()).map(|k| draw(1 + k, img)).collect(),
        }
    }

    /// Images of the sampled latents `z_hat` of samples `first..` drawn with `seed`: every
    /// draw (the channel's ε, the decoder's noise) a function of (seed, sample index) only.
    ///
    /// # Shapes
    /// - z_hat: `[n, c_z, h_z, w_z]` → `[n, c, h, w]`
    pub fn decode(&self, z_hat: Tensor<4>, first: usize, seed: u64) -> Tensor<4> {
        let [n, c, h, w] = z_hat.dims();
        let device = z_hat.device();
        let d = self.draws(first, n, c * h * w, seed);
        let img = self.image_shape();
        let dims = [n, img.planes(), img.height, img.width];
        let t = |v: Vec<f32>, dims: [usize; 4]| {
            Tensor::<4>::from_data(TensorData::new(v, dims), &device)
        };
        let eps = t(d.eps, [n, c, h, w]);
        let noises: Vec<Tensor<4>> = d.noises.into_iter().map(|v| t(v, dims)).collect();
        self.decode_with(z_hat, eps, &noises)
    }

    /// The decoding itself, its draws given (what an exported serving graph records):
    /// z₀ = ẑ + σ₀·ε, then the decoder's sampler conditioned on z₀ from `noises`.
    ///
    /// # Shapes
    /// - z_hat, eps: `[n, c_z, h_z, w_z]`; noises: `[n, c, h, w]` each → `[n, c, h, w]`
    pub fn decode_with(&self, z_hat: Tensor<4>, eps: Tensor<4>, noises: &[Tensor<4>]) -> Tensor<4> {
        let n = z_hat.dims()[0];
        let device = z_hat.device();
        let z0 = noisy_latent(z_hat, eps, self.sigma0);
        let cond = null_cond(n, self.model.null_class(), Some(z0), &device);
        run_plan(&self.model, &self.plan, noises, &self.plan.cond(&cond)).x
    }
}
