//! What every distillation stage starts from: a source run (teacher or student), its data,
//! and batches of noised training images with per-example w.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use teacher::checkpoint::{Checkpoint, Lineage};
use teacher::config::TeacherConfig;
use teacher::data::{Dataset, Split};
use teacher::edm::Cond;
use teacher::edm::loss::weighted_error;
use teacher::error::{Error, Result};
use teacher::latent::channel::noisy_latent;
use teacher::latent::stage1::LatentDraws;
use teacher::model::EdmModel;
use teacher::recipe::{ModelKind, WRange};
use teacher::rng::{Stream, normals, rng};

/// A loaded source run.
pub struct Source {
    pub path: PathBuf,
    pub ck: Checkpoint,
    /// The teacher config at the root of the chain (data, σ grid, σ_data).
    pub teacher_cfg: TeacherConfig,
}

impl Source {
    /// Load `path` and check its kind is one of `allowed`.
    pub fn load(path: &Path, allowed: &[ModelKind], what: &str) -> Result<Self> {
        let ck = Checkpoint::load(path)?;
        let kind = ck.header.kind();
        if !allowed.contains(&kind) {
            return Err(Error::Invalid(format!(
                "`{}` holds a {} model, but {what} needs {}",
                path.display(),
                kind.name(),
                allowed
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        let teacher_cfg = ck.header.teacher_config()?;
        Ok(Self {
            path: path.to_path_buf(),
            ck,
            teacher_cfg,
        })
    }

    /// The training data of the chain's teacher as its denoiser takes it (images, or their
    /// multi-resolution canvases); `--data DIR` overrides the recorded path.
    pub fn data(&self, data: Option<&Path>) -> Result<Dataset> {
        let recorded = self.ck.header.lineage.data_path.as_deref();
        let images = self
            .teacher_cfg
            .data
            .load(data.or(recorded), Split::Train)?;
        Ok(self.teacher_cfg.model.prepare(images))
    }

    /// The lineage of a student distilled from this source: the root teacher's config and
    /// data, and this run as its source.
    pub fn lineage(&self) -> Lineage {
        Lineage {
            source: Some(self.path.clone()),
            ..self.ck.header.lineage.clone()
        }
    }

    /// The trained w range of a student source.
    pub fn w_range(&self) -> Result<WRange> {
        self.ck.header.recipe.w_range().ok_or_else(|| {
            Error::Invalid(format!(
                "`{}` is a teacher: it has no trained guidance range",
                self.path.display()
            ))
        })
    }
}

/// One distillation batch: clean images y, their labels, unit noise, w per example, the RNG
/// left over for stage-specific draws (σ or grid indices), and for a latent decoder the
/// condition z₀ of each image.
pub struct StudentBatch {
    pub y: Tensor<4>,
    pub class: Tensor<1, Int>,
    pub noise: Tensor<4>,
    pub w: Tensor<1>,
    pub rng: rand::rngs::StdRng,
    pub latent: Option<Tensor<4>>,
}

impl StudentBatch {
    /// The rows of `shard` (the whole batch in a world of one); the RNG stays as drawn, so
    /// a method draws its per-example values for the global batch first, then shards them.
    pub fn shard(self, shard: &teacher::dist::Shard) -> Self {
        Self {
            y: shard.rows(self.y),
            class: shard.rows(self.class),
            noise: shard.rows(self.noise),
            w: shard.rows(self.w),
            rng: self.rng,
            latent: self.latent.map(|z| shard.rows(z)),
        }
    }

    /// The batch with z₀ = E(y) + σ₀·ε when `teacher` is a latent decoder (Unified Latents'
    /// stage 1: its frozen encoder, the channel noise of step `step`'s own stream), so a
    /// decoder distils like any denoiser; unchanged for every other teacher.
    pub fn with_latent(mut self, teacher: &EdmModel, seed: u64, step: u64) -> Self {
        if let teacher::model::Network::LatentAutoencoder(ae) = &teacher.net {
            let z = ae.encode(self.y.clone());
            let [n, c, h, w] = z.dims();
            let shape = teacher::unet::ImageShape::image(c, h, w);
            let d = LatentDraws::draw(seed, step, n, shape, &z.device());
            self.latent = Some(noisy_latent(z, d.channel, ae.sigma0));
        }
        self
    }

    /// The batch's conditioning for a guided denoiser: its classes, and its w as `extra`.
    pub fn cond(&self) -> Cond {
        Cond {
            class: self.class.clone(),
            extra: Some(self.w.clone()),
            latent: self.latent.clone(),
        }
    }
}

/// Draw step `step`'s batch (a pure function of seed and step).
pub fn draw(
    data: &Dataset,
    batch: usize,
    w: &WRange,
    seed: u64,
    step: u64,
    device: &Device,
) -> StudentBatch {
    let mut r = rng(seed, Stream::TrainStep, step);
    let s = data.shape;
    let mut px = Vec::with_capacity(batch * data.image_len());
    let mut labels = Vec::with_capacity(batch);
    for _ in 0..batch {
        let i = r.random_range(0..data.len());
        px.extend_from_slice(data.image(i));
        labels.push(data.labels[i] as i64);
    }
    let ws: Vec<f32> = (0..batch)
        .map(|_| r.random_range(w.min..=w.max) as f32)
        .collect();
    let noise = normals(&mut r, batch * data.image_len());
    let dims = [batch, s.planes(), s.height, s.width];
    StudentBatch {
        y: Tensor::from_data(TensorData::new(px, dims), device),
        class: Tensor::from_data(TensorData::new(labels, [batch]), device),
        noise: Tensor::from_data(TensorData::new(noise, dims), device),
        w: Tensor::from_data(TensorData::new(ws, [batch]), device),
        rng: r,
        latent: None,
    }
}

/// Class labels onto `device` (the student's autodiff device).
pub fn onto_int(t: Tensor<1, Int>, device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(t.into_data(), device)
}

/// Copy a tensor computed without autodiff onto `device` (the student's autodiff device), as
/// a constant target.
pub fn onto<const D: usize>(t: Tensor<D>, device: &Device) -> Tensor<D> {
    Tensor::from_data(t.into_data(), device)
}

/// The student side of one distillation step, computed without gradients: the student's input
/// x at σ with (class, w), and the target its output should match.
pub struct Regression {
    pub x: Tensor<4>,
    pub sigma: Tensor<1>,
    pub class: Tensor<1, Int>,
    pub w: Tensor<1>,
    pub target: Tensor<4>,
    /// A latent decoder's condition z₀ (None for every other model).
    pub latent: Option<Tensor<4>>,
}

impl Regression {
    /// (D_θ(x; σ, class, w), target, σ) on the autodiff device `ad`, the target a constant.
    pub fn predict(self, model: &EdmModel, ad: &Device) -> (Tensor<4>, Tensor<4>, Tensor<1>) {
        let sigma = onto(self.sigma, ad);
        let (class, w) = (onto_int(self.class, ad), Some(onto(self.w, ad)));
        let latent = self.latent.map(|z| onto(z, ad));
        let d = model.forward_with(onto(self.x, ad), sigma.clone(), class, w, latent);
        (d, onto(self.target, ad), sigma)
    }

    /// λ(σ)·mean((D_θ − target)²) per example (`teacher::edm::loss::weighted_error`).
    pub fn weighted_error(self, model: &EdmModel, ad: &Device) -> Tensor<1> {
        let sigma_data = model.sigma_data;
        let (d, target, sigma) = self.predict(model, ad);
        weighted_error(d, target, sigma, sigma_data)
    }
}
