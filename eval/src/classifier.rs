//! The feature networks fewstep trains itself (no registry ships Inception or I3D weights): a
//! LeNet-style CNN (LeCun et al. 1998) for images, whose penultimate activations are the features
//! of "FID (LeNet features)", and a 3D-conv clip classifier ([`crate::clipnet`]) for clips, behind
//! "FVD (own features)". Their predictions give the class accuracy of conditional samples.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use serde::{Deserialize, Serialize};

use teacher::checkpoint::write_atomic;
use teacher::data::Dataset;
use teacher::dist::{Shard, World};
use teacher::rng::{Stream, derive_seed, rng};
use teacher::unet::ImageShape;

use crate::clipnet::{ClipNet, permute_frames, shuffled_order};
use crate::error::{EvalError, Result};

/// Shape and training of the feature classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierConfig {
    /// Channels of the two convolution stages (LeNet; the clip network uses them for its 3D
    /// convolutions).
    pub channels: [usize; 2],
    /// Width of the penultimate layer: the feature dimension.
    pub feature_dim: usize,
    /// Dropout before the last layer.
    pub dropout: f64,
    /// Random translation of each training image by up to this many pixels in x and y
    /// (augmentation; 0 = off). [`ClassifierConfig::for_shape`] picks height/14: 2 px on
    /// 28×28 MNIST (lifts its test accuracy past 99%), 0 on the 8×8 digits.
    pub max_shift: usize,
    /// Optimizer steps, batch size, Adam learning rate, seed.
    pub steps: u64,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            channels: [32, 64],
            feature_dim: 128,
            dropout: 0.3,
            max_shift: 0,
            steps: 6000,
            batch_size: 64,
            lr: 1e-3,
            seed: 0,
        }
    }
}

/// conv3×3 → ReLU → conv3×3 → ReLU → maxpool 2 → conv3×3 → ReLU → adaptive avg-pool 4×4 →
/// linear → ReLU (features) → dropout → linear (logits).
#[derive(Module, Debug)]
pub struct LeNet {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    pool: MaxPool2d,
    squeeze: AdaptiveAvgPool2d,
    fc: Linear,
    dropout: Dropout,
    head: Linear,
}

/// Side of the pooled feature map before the dense layers.
const POOLED: usize = 4;

impl ClassifierConfig {
    /// The defaults, with the augmentation scaled to the image size.
    pub fn for_shape(shape: ImageShape) -> Self {
        Self {
            max_shift: shape.height / 14,
            ..Self::default()
        }
    }

    /// The network for examples of `shape`: a LeNet for images, a [`ClipNet`] for clips.
    pub fn init(&self, shape: ImageShape, num_classes: usize, device: &Device) -> FeatureNet {
        if shape.is_clip() {
            return FeatureNet::Clip(ClipNet::new(
                shape,
                self.channels,
                self.feature_dim,
                self.dropout,
                num_classes,
                device,
            ));
        }
        let pad = PaddingConfig2d::Explicit(1, 1, 1, 1);
        let [a, b] = self.channels;
        FeatureNet::Image(LeNet {
            conv1: Conv2dConfig::new([shape.channels, a], [3, 3])
                .with_padding(pad.clone())
                .init(device),
            conv2: Conv2dConfig::new([a, b], [3, 3])
                .with_padding(pad.clone())
                .init(device),
            conv3: Conv2dConfig::new([b, b], [3, 3])
                .with_padding(pad)
                .init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            squeeze: AdaptiveAvgPool2dConfig::new([POOLED, POOLED]).init(),
            fc: LinearConfig::new(b * POOLED * POOLED, self.feature_dim).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(self.feature_dim, num_classes).init(device),
        })
    }
}

/// A trained feature network: LeNet for images, [`ClipNet`] for clips.
#[derive(Module, Debug)]
pub enum FeatureNet {
    Image(LeNet),
    Clip(ClipNet),
}

impl FeatureNet {
    /// Penultimate activations, `[n, c·t, h, w]` → `[n, feature_dim]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            FeatureNet::Image(m) => m.features(x),
            FeatureNet::Clip(m) => m.features(x),
        }
    }

    /// Class logits, `[n, c·t, h, w]` → `[n, classes]`.
    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            FeatureNet::Image(m) => m.logits(x),
            FeatureNet::Clip(m) => m.logits(x),
        }
    }

    /// What the network is, for reports.
    pub fn describe(&self) -> &'static str {
        match self {
            FeatureNet::Image(_) => "LeNet",
            FeatureNet::Clip(_) => "3D-conv clip net",
        }
    }
}

impl LeNet {
    /// Penultimate activations.
    ///
    /// # Shapes
    /// - x: `[n, c, h, w]` in [−1, 1] → `[n, feature_dim]`
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let h = relu(self.conv1.forward(x));
        let h = self.pool.forward(relu(self.conv2.forward(h)));
        let h = self.squeeze.forward(relu(self.conv3.forward(h)));
        let [n, ..] = h.dims();
        relu(self.fc.forward(h.reshape([n as i32, -1])))
    }

    /// Class logits, `[n, c, h, w]` → `[n, classes]`.
    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.dropout.forward(self.features(x)))
    }
}

/// A trained feature network and the facts that name it in reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureMeta {
    /// Dataset it was trained on (digits, mnist, folder).
    pub dataset: String,
    pub shape: ImageShape,
    pub num_classes: usize,
    pub config: ClassifierConfig,
    /// Accuracy on the dataset's held-out test split.
    pub test_accuracy: f64,
    /// Clips: accuracy of telling true-order from shuffled clips on the test split (half of
    /// each, shuffled by a fixed seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_accuracy: Option<f64>,
    pub test_examples: usize,
    pub train_seconds: f64,
}

pub const META_FILE: &str = "features.json";
pub const WEIGHTS_FILE: &str = "lenet.bpk";

/// `img` moved by (dy, dx) pixels, the uncovered border filled with black (−1); a clip moves as
/// a whole (every frame by the same amount).
fn shifted(img: &[f32], shape: ImageShape, dy: isize, dx: isize) -> Vec<f32> {
    let (h, w) = (shape.height as isize, shape.width as isize);
    let mut out = vec![-1.0; img.len()];
    for c in 0..shape.planes() as isize {
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = (y - dy, x - dx);
                if (0..h).contains(&sy) && (0..w).contains(&sx) {
                    out[((c * h + y) * w + x) as usize] = img[((c * h + sy) * w + sx) as usize];
                }
            }
        }
    }
    out
}

/// Images (`[n·C·H·W]` values) as tensors of at most `batch` images each.
pub fn batches<'a>(
    images: &'a [f32],
    shape: ImageShape,
    batch: usize,
    device: &'a Device,
) -> impl Iterator<Item = Tensor<4>> + 'a {
    let len = shape.len();
    images.chunks(len * batch).map(move |chunk| {
        let dims = [chunk.len() / len, shape.planes(), shape.height, shape.width];
        Tensor::<4>::from_data(TensorData::new(chunk.to_vec(), dims), device)
    })
}

/// Images per forward pass when classifying or extracting features.
pub const EVAL_BATCH: usize = 500;

/// Predicted class of each image (`[n·C·H·W]` values), in batches.
pub fn predict(
    model: &FeatureNet,
    images: &[f32],
    shape: ImageShape,
    device: &Device,
) -> Vec<usize> {
    batches(images, shape, EVAL_BATCH, device)
        .flat_map(|x| {
            let pred = model.logits(x).argmax(1).into_data().convert::<i64>();
            pred.try_into_vec::<i64>()
                .expect("int argmax")
                .into_iter()
                .map(|p| p as usize)
        })
        .collect()
}

/// Train on `train`, measure accuracy on `test`, save weights and meta into `out`.
#[allow(clippy::too_many_arguments)] // what, on which data, where, and how (quiet, ranks, device)
pub fn train_classifier(
    cfg: &ClassifierConfig,
    dataset_name: &str,
    train: &Dataset,
    test: &Dataset,
    out: &Path,
    quiet: bool,
    world: &World,
    device: &Device,
) -> Result<FeatureMeta> {
    let (model, train_seconds) = fit(cfg, train, quiet, world, device)?;
    let meta = evaluate(
        &model,
        cfg,
        dataset_name,
        train,
        test,
        train_seconds,
        device,
    );
    if world.is_root() {
        save(out, model, &meta)?;
    }
    Ok(meta)
}

/// One training batch: images (shifted, and for clips half of them frame-shuffled), class
/// labels and, for clips, the order labels.
struct Batch {
    x: Tensor<4>,
    y: Tensor<1, Int>,
    order: Option<Vec<i64>>,
}

impl Batch {
    /// The rows of `shard` (the whole batch in a world of one).
    fn shard(self, shard: &Shard) -> Self {
        Self {
            x: shard.rows(self.x),
            y: shard.rows(self.y),
            order: self.order.map(|o| shard.pick(&o)),
        }
    }
}

/// Train a fresh network for `cfg.steps` Adam steps; returns it (inference mode) and the
/// seconds the steps took. Across the ranks of `world` each takes its shard of every batch and
/// the gradients of the global batch mean are all-reduced (dropout masks differ per rank).
fn fit(
    cfg: &ClassifierConfig,
    train: &Dataset,
    quiet: bool,
    world: &World,
    device: &Device,
) -> Result<(FeatureNet, f64)> {
    let shard = world.shard(cfg.batch_size, "features batch_size")?;
    let ad = device.clone().autodiff();
    ad.seed(derive_seed(cfg.seed, Stream::Init, 0));
    let mut model = cfg.init(train.shape, train.num_classes, &ad);
    if world.size() > 1 {
        // burn draws parameters lazily, at first use (one process: in step 0's forward pass,
        // from step 0's backend seed). Draw them now from that seed, before the ranks' own
        // dropout seeds, so every rank starts from the same weights.
        ad.seed(derive_seed(cfg.seed, Stream::Backend, 0));
        world.agree(weights_digest(&model), "feature network initial weights")?;
    }
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let pb = teacher::progress::bar(cfg.steps, quiet || !world.is_root(), "features");
    let started = Instant::now();
    for step in 0..cfg.steps {
        let batch = training_batch(cfg, train, step, &ad).shard(&shard);
        ad.seed(world.step_seed(derive_seed(cfg.seed, Stream::Backend, step)));
        let mut loss = batch_loss(&model, &loss_fn, batch, &ad);
        if !shard.is_whole() {
            // The shard's mean × its share: summed over ranks, the global batch mean.
            loss = loss.mul_scalar(shard.len as f32 / shard.global as f32);
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let grads = teacher::dist::grads::all_reduce(world, grads, &model, &mut []);
        // Step decay: full rate for the first 2/3, a tenth after (a standard LeNet schedule).
        let lr = if step < cfg.steps * 2 / 3 {
            cfg.lr
        } else {
            cfg.lr * 0.1
        };
        model = optim.step(lr, model, grads);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let train_seconds = started.elapsed().as_secs_f64();
    world.agree(weights_digest(&model), "feature network weights")?;
    Ok((model.valid(), train_seconds))
}

/// SHA-256 of a network's weights (the ranks' agreement check).
fn weights_digest(model: &FeatureNet) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    teacher::dist::grads::hash_weights(&mut h, model);
    h.finalize().into()
}

/// Draw the batch of training step `step` from its own random stream.
fn training_batch(cfg: &ClassifierConfig, train: &Dataset, step: u64, ad: &Device) -> Batch {
    let mut r = rng(cfg.seed, Stream::TrainStep, step);
    let idx: Vec<usize> = (0..cfg.batch_size)
        .map(|_| r.random_range(0..train.len()))
        .collect();
    let (s, m) = (train.shape, cfg.max_shift as i64);
    let mut px: Vec<f32> = idx
        .iter()
        .flat_map(|&i| match m {
            0 => train.image(i).to_vec(),
            _ => {
                let (dy, dx) = (r.random_range(-m..=m), r.random_range(-m..=m));
                shifted(train.image(i), s, dy as isize, dx as isize)
            }
        })
        .collect();
    // Clips: half of them shuffled for the frame-order head (drawn after the shifts).
    let order = s.is_clip().then(|| shuffle_half(&mut px, s, &mut r));
    let dims = [idx.len(), s.planes(), s.height, s.width];
    let x = Tensor::<4>::from_data(TensorData::new(px, dims), ad);
    let y = Tensor::<1, Int>::from_data(
        TensorData::new(
            idx.iter()
                .map(|&i| train.labels[i] as i64)
                .collect::<Vec<_>>(),
            [idx.len()],
        ),
        ad,
    );
    Batch { x, y, order }
}

/// The training loss of one batch: cross-entropy of the class head, plus that of the order
/// head for clips.
fn batch_loss(
    model: &FeatureNet,
    loss_fn: &CrossEntropyLoss,
    batch: Batch,
    ad: &Device,
) -> Tensor<1> {
    let Batch { x, y, order } = batch;
    match model {
        FeatureNet::Image(m) => loss_fn.forward(m.logits(x), y),
        FeatureNet::Clip(m) => {
            // Class and order heads share the features.
            let n = x.dims()[0];
            let order = order.expect("clip data builds a clip network");
            let order = Tensor::<1, Int>::from_data(TensorData::new(order, [n]), ad);
            let feats = m.features(x);
            loss_fn.forward(m.logits_of(feats.clone()), y)
                + loss_fn.forward(m.order_logits_of(feats), order)
        }
    }
}

/// Test-split class accuracy (and, for clips, frame-order accuracy) of the trained network,
/// with the facts that name it.
fn evaluate(
    model: &FeatureNet,
    cfg: &ClassifierConfig,
    dataset_name: &str,
    train: &Dataset,
    test: &Dataset,
    train_seconds: f64,
    device: &Device,
) -> FeatureMeta {
    let pred = predict(model, &test.images, test.shape, device);
    let correct = pred
        .iter()
        .zip(&test.labels)
        .filter(|(p, l)| **p == **l as usize)
        .count();
    let order_accuracy = match model {
        FeatureNet::Image(_) => None,
        FeatureNet::Clip(m) => Some(order_accuracy(m, test, cfg.seed, device)),
    };
    FeatureMeta {
        dataset: dataset_name.to_string(),
        shape: train.shape,
        num_classes: train.num_classes,
        config: cfg.clone(),
        test_accuracy: correct as f64 / test.len().max(1) as f64,
        order_accuracy,
        test_examples: test.len(),
        train_seconds,
    }
}

/// Write the weights and the meta into `out` (created if missing).
fn save(out: &Path, model: FeatureNet, meta: &FeatureMeta) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| EvalError::io("create", out, e))?;
    write_atomic(
        &out.join(WEIGHTS_FILE),
        &teacher::checkpoint::module_bytes(model),
    )?;
    write_atomic(
        &out.join(META_FILE),
        serde_json::to_string_pretty(meta)
            .expect("plain data")
            .as_bytes(),
    )?;
    Ok(())
}

/// Shuffle the frames of a random half of the clips (`[n·C·T·H·W]` values) in place; returns
/// the order labels (0 = true order, 1 = shuffled).
fn shuffle_half(px: &mut [f32], shape: ImageShape, r: &mut impl Rng) -> Vec<i64> {
    px.chunks_mut(shape.len())
        .map(|clip| {
            let shuffle = r.random::<bool>();
            if shuffle {
                let p = permute_frames(clip, shape, &shuffled_order(shape.frames, r));
                clip.copy_from_slice(&p);
            }
            shuffle as i64
        })
        .collect()
}

/// Share of test clips whose order (true or shuffled) the network tells right; every odd clip is
/// shuffled by a fixed draw.
fn order_accuracy(model: &ClipNet, test: &Dataset, seed: u64, device: &Device) -> f64 {
    let mut r = rng(seed, Stream::Data, u64::MAX);
    let s = test.shape;
    let px: Vec<f32> = (0..test.len())
        .flat_map(|i| match i % 2 {
            1 => permute_frames(test.image(i), s, &shuffled_order(s.frames, &mut r)),
            _ => test.image(i).to_vec(),
        })
        .collect();
    let pred: Vec<i64> = batches(&px, s, EVAL_BATCH, device)
        .flat_map(|x| {
            model
                .order_logits(x)
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .expect("int argmax")
        })
        .collect();
    let right = pred
        .iter()
        .enumerate()
        .filter(|(i, p)| **p == (i % 2) as i64)
        .count();
    right as f64 / test.len().max(1) as f64
}

/// Load a feature network saved by [`train_classifier`].
pub fn load_classifier(dir: &Path, device: &Device) -> Result<(FeatureNet, FeatureMeta)> {
    let meta_path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&meta_path).map_err(|_| EvalError::Features {
        path: dir.to_path_buf(),
        message: format!(
            "has no `{META_FILE}`: train one with `fewstep eval train-features --out {}`",
            dir.display()
        ),
    })?;
    let meta: FeatureMeta = serde_json::from_str(&text).map_err(|e| EvalError::Features {
        path: meta_path.clone(),
        message: format!("unreadable ({e})"),
    })?;
    let model = meta.config.init(meta.shape, meta.num_classes, device);
    let model = model
        .try_load_file(dir.join(WEIGHTS_FILE))
        .map_err(|e| EvalError::Features {
            path: dir.join(WEIGHTS_FILE),
            message: format!(
                "weights do not load ({e}); retrain with `fewstep eval train-features`"
            ),
        })?;
    Ok((teacher::checkpoint::to_device_dtype(model), meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_moves_pixels_and_fills_black() {
        // A 1×3×3 ramp 0..9 moved one pixel right and one down: row 0 and column 0 are
        // uncovered (−1); out[y][x] = in[y−1][x−1].
        let shape = ImageShape {
            channels: 1,
            height: 3,
            width: 3,
            frames: 1,
        };
        let img: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let out = shifted(&img, shape, 1, 1);
        assert_eq!(out, vec![-1., -1., -1., -1., 0., 1., -1., 3., 4.]);
        assert_eq!(shifted(&img, shape, 0, 0), img);
    }
}
