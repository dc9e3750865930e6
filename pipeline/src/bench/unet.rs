//! `fewstep bench unet`: one training step (EDM loss, backward, Adam) and one guided sampling
//! step (2 NFE per image) of a teacher config's U-Net — and the same work in PyTorch
//! (`bench/pytorch_unet.py`, the identical network) for the training-throughput ratio.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use teacher::config::TeacherConfig;
use teacher::edm::guidance::Guided;
use teacher::edm::loss::edm_loss;
use teacher::edm::{Cond, Denoiser};
use teacher::model::{EdmModel, ModelSpec};

use export::bench::median;

/// Median throughput of one U-Net.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnetTiming {
    pub params: usize,
    pub batch: usize,
    /// Images per second through forward + backward + Adam.
    pub train_img_per_s: f64,
    /// Images per second through one guided (CFG, 2 NFE) denoiser evaluation.
    pub sample_img_per_s: f64,
}

/// Time `reps` training and guided-sampling steps of `cfg`'s network (after one warm-up each).
pub fn time_unet(
    cfg: &TeacherConfig,
    batch: usize,
    reps: usize,
    device: &Device,
) -> Result<UnetTiming> {
    let shape = cfg
        .data
        .nominal_shape()
        .context("set `data.resolution` so the benchmark knows the image size")?;
    let spec = ModelSpec {
        net: cfg.model.clone(),
        shape,
        num_classes: 10,
        sigma_data: cfg.diffusion.sigma_data,
        precond: teacher::edm::precond::Precond::Edm,
    };
    let dims = [batch, shape.planes(), shape.height, shape.width];
    let ad = device.clone().autodiff();
    let model = spec.init(&ad);
    let params = model.num_params();
    let (model, train_times) = time_training(model, cfg, dims, reps.max(1), &ad);
    let sample_times = time_sampling(&model.valid(), dims, reps.max(1), device);
    Ok(UnetTiming {
        params,
        batch,
        train_img_per_s: batch as f64 / median(train_times),
        sample_img_per_s: batch as f64 / median(sample_times),
    })
}

/// Fixed normal noise of shape `dims` (seeded, so every run times the same work).
fn randn(dims: [usize; 4], dev: &Device) -> Tensor<4> {
    let n = dims.iter().product();
    let mut rng = teacher::rng::rng(0, teacher::rng::Stream::Eval, 0);
    Tensor::<4>::from_data(
        TensorData::new(teacher::rng::normals(&mut rng, n), dims),
        dev,
    )
}

/// Class labels 0, 1, …, 9, 0, … for a batch of `b`.
fn labels(b: usize, dev: &Device) -> Cond {
    let l: Vec<i64> = (0..b as i64).map(|i| i % 10).collect();
    Cond {
        class: Tensor::<1, Int>::from_data(TensorData::new(l, [b]), dev),
        extra: None,
        latent: None,
    }
}

/// Seconds per training step (EDM loss, backward, Adam) over `reps` steps after one warm-up.
fn time_training(
    mut model: EdmModel,
    cfg: &TeacherConfig,
    dims: [usize; 4],
    reps: usize,
    ad: &Device,
) -> (EdmModel, Vec<f64>) {
    let mut optim = burn::optim::AdamConfig::new().init();
    let mut times = Vec::new();
    for rep in 0..=reps {
        let t = Instant::now();
        // normals = 0: σ = exp(P_mean) for every example (the PyTorch twin does the same).
        let loss = edm_loss(
            &model,
            randn(dims, ad),
            &labels(dims[0], ad),
            Tensor::zeros([dims[0]], ad),
            randn(dims, ad),
            &cfg.diffusion.sigma_dist,
            cfg.diffusion.sigma_data,
            None,
        )
        .mean();
        let _ = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model, grads);
        // Force the update to finish before stopping the clock.
        let _ = model.clone().valid().num_params();
        if rep > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    (model, times)
}

/// Seconds per guided (CFG, 2 NFE) denoiser evaluation over `reps` calls after one warm-up.
fn time_sampling(model: &EdmModel, dims: [usize; 4], reps: usize, device: &Device) -> Vec<f64> {
    let guided = Guided {
        model,
        w: 2.0,
        null_class: 10,
    };
    let mut times = Vec::new();
    for rep in 0..=reps {
        let t = Instant::now();
        let sigma = Tensor::full([dims[0]], 1.0, device);
        let d = guided.denoise(randn(dims, device), sigma, &labels(dims[0], device));
        let _ = d.into_data();
        if rep > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times
}

/// What `bench/pytorch_unet.py --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PytorchTiming {
    pub params: usize,
    pub batch: usize,
    pub threads: usize,
    pub train_img_per_s: f64,
    pub sample_img_per_s: f64,
    pub torch_version: String,
}

/// Run the PyTorch twin with `python`; an error says why it could not run (no interpreter, no
/// torch) and how to install it.
pub fn pytorch(
    python: &Path,
    script: &Path,
    batch: usize,
    reps: usize,
    threads: usize,
) -> Result<PytorchTiming> {
    if !script.is_file() {
        bail!(
            "`{}` not found: run from the repository root or pass --pytorch-script",
            script.display()
        );
    }
    let out = Command::new(python)
        .arg(script)
        .args(["--json", "--batch", &batch.to_string()])
        .args(["--reps", &reps.to_string(), "--threads", &threads.to_string()])
        .env("OMP_NUM_THREADS", threads.to_string())
        .output()
        .with_context(|| {
            format!(
                "cannot run `{}`: pass --python PATH to an interpreter with torch (bench/README.md)",
                python.display()
            )
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").to_string();
        bail!(
            "`{} {}` failed ({last}): install torch in that interpreter (bench/README.md) or pass --python",
            python.display(),
            script.display()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line)
        .with_context(|| format!("`{}` printed `{line}`, not its JSON line", script.display()))
}

/// `fewstep bench unet` in words: the timing of `cfg` (read from `config_name`) at `batch`.
pub fn describe(cfg: &TeacherConfig, config_name: &str, b: usize, t: &UnetTiming) -> String {
    let example = match cfg.data.nominal_shape() {
        Some(shape) if shape.is_clip() => format!(
            "clips {}×{}×{}×{} (C×T×H×W; img/s below counts clips)",
            shape.channels, shape.frames, shape.height, shape.width
        ),
        Some(shape) => format!("{}×{}×{}", shape.channels, shape.height, shape.width),
        None => "examples".into(),
    };
    format!(
        "U-Net of `{config_name}`: {} parameters, batch {b} × {example}\n\
         train step:          {:8.1} ms  → {:8.1} img/s (fwd + bwd + Adam)\n\
         guided sampling step:{:8.1} ms  → {:8.1} img/s (2 NFE per image)\n\
         → 50 guided steps for 1,000 images ≈ {:.1} s",
        t.params,
        b as f64 / t.train_img_per_s * 1e3,
        t.train_img_per_s,
        b as f64 / t.sample_img_per_s * 1e3,
        t.sample_img_per_s,
        50.0 * 1000.0 / t.sample_img_per_s
    )
}
