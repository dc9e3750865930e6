//! The teacher's training loop: sample a batch, EDM loss, backward, Adam step, EMA update,
//! with atomic checkpoints every N steps and exact resume.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{
    AdamConfig, GradientsParams, ModuleOptimizer, grad_clipping::GradientClippingConfig,
};
use burn::tensor::{Bytes, Device, Int, Tensor, TensorData};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    Checkpoint, FORMAT_VERSION, Header, LATEST, ModelKind, module_bytes, write_atomic,
};
use crate::config::{TeacherConfig, TrainConfig};
use crate::data::{Dataset, Split};
use crate::edm::Cond;
use crate::edm::loss::edm_loss;
use crate::edm::precond::Precond;
use crate::ema::{ema_beta, ema_update};
use crate::error::{Error, Result};
use crate::model::{EdmModel, ModelSpec};
use crate::rng::{Stream, derive_seed, normals, rng};

/// How a training run is driven (resolved from the command line).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub out: PathBuf,
    /// `--data DIR`, overriding `data.path`.
    pub data: Option<PathBuf>,
    pub resume: bool,
    /// `--steps N`, overriding `train.steps`.
    pub steps: Option<u64>,
    pub quiet: bool,
    pub device: Device,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub steps: u64,
    pub resumed_from: u64,
    pub final_loss: f64,
    pub images_per_sec: f64,
    pub wall_seconds: f64,
    pub checkpoint: PathBuf,
}

/// One training batch drawn from the step's RNG: images, labels after label dropout, σ normals
/// and noise. A pure function of (dataset, seed, step).
pub struct Batch {
    pub y: Tensor<4>,
    pub class: Tensor<1, Int>,
    pub normals: Tensor<1>,
    pub noise: Tensor<4>,
}

/// Draw step `step`'s batch: indices uniformly with replacement, label → null class with
/// probability `p_uncond`.
pub fn draw_batch(
    data: &Dataset,
    batch: usize,
    p_uncond: f64,
    seed: u64,
    step: u64,
    device: &Device,
) -> Batch {
    let mut r = rng(seed, Stream::TrainStep, step);
    let (c, h, w) = (data.shape.planes(), data.shape.height, data.shape.width);
    let mut pixels = Vec::with_capacity(batch * data.image_len());
    let mut labels = Vec::with_capacity(batch);
    for _ in 0..batch {
        let i = r.random_range(0..data.len());
        pixels.extend_from_slice(data.image(i));
        let drop = r.random::<f64>() < p_uncond;
        labels.push(if drop {
            data.num_classes as i64
        } else {
            data.labels[i] as i64
        });
    }
    let sigma_normals = normals(&mut r, batch);
    let noise = normals(&mut r, batch * data.image_len());
    Batch {
        y: Tensor::from_data(TensorData::new(pixels, [batch, c, h, w]), device),
        class: Tensor::from_data(TensorData::new(labels, [batch]), device),
        normals: Tensor::from_data(TensorData::new(sigma_normals, [batch]), device),
        noise: Tensor::from_data(TensorData::new(noise, [batch, c, h, w]), device),
    }
}

/// Linear warm-up: lr · min(1, (step + 1) / warmup).
pub fn learning_rate(t: &TrainConfig, step: u64) -> f64 {
    if t.warmup_steps == 0 {
        t.lr
    } else {
        t.lr * ((step + 1) as f64 / t.warmup_steps as f64).min(1.0)
    }
}

fn optimizer(t: &TrainConfig) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(t.adam_beta1)
        .with_beta_2(t.adam_beta2)
        .with_epsilon(t.adam_epsilon)
        .with_grad_clipping(t.grad_clip.map(GradientClippingConfig::Norm))
        .init()
}

/// The state a run carries between steps.
pub struct TrainState {
    /// The model being optimised (on the autodiff device).
    pub model: EdmModel,
    /// EMA of the weights for inference (EDM half-life schedule).
    pub ema: EdmModel,
    /// A second EMA with a stage-specific rate (the consistency target θ⁻), when the stage has one.
    pub target: Option<EdmModel>,
    pub optim: ModuleOptimizer,
    pub step: u64,
}

/// What identifies a run's checkpoints: kind, network, config, stage facts.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub kind: ModelKind,
    pub spec: ModelSpec,
    /// The resolved config (TOML), saved in the checkpoint and as `config.toml`.
    pub config: String,
    pub extra: serde_json::Map<String, serde_json::Value>,
    pub train: TrainConfig,
}

/// A fresh state from `init` (given the autodiff device, seeded from the run's seed), or the
/// checkpoint in `out` when `resume` is set. An existing checkpoint without `resume` is an error
/// so saved work is never overwritten.
pub fn init_or_resume(
    out: &Path,
    resume: bool,
    run: &RunSpec,
    device: &Device,
    init: impl FnOnce(&Device) -> Result<EdmModel>,
    with_target: bool,
) -> Result<TrainState> {
    let ckpt_path = out.join(LATEST);
    let ad = device.clone().autodiff();
    let t = &run.train;
    if ckpt_path.exists() {
        if !resume {
            return Err(Error::Invalid(format!(
                "`{}` already holds a checkpoint: pass `--resume` to continue it, or choose another `--out`",
                out.display()
            )));
        }
        let ck = Checkpoint::load(&ckpt_path)?;
        if ck.header.kind != run.kind || ck.header.spec != run.spec {
            return Err(Error::Checkpoint {
                path: ckpt_path.clone(),
                message: "was trained with another network or data shape than this config: resume with the run's own \
                          `config.toml`, or train into a new `--out`"
                    .into(),
            });
        }
        let optim = optimizer(t)
            .from_bytes(Bytes::from_bytes_vec(ck.blob("optimizer")?.to_vec()))
            .map_err(|e| Error::Checkpoint {
                path: ckpt_path.clone(),
                message: format!("optimizer state: {e}"),
            })?;
        let target = match with_target {
            true => Some(ck.load_into("target", run.spec.init(device))?),
            false => None,
        };
        Ok(TrainState {
            model: ck.load_into("model", run.spec.init(&ad))?,
            ema: ck.load_into("ema", run.spec.init(device))?,
            target,
            optim,
            step: ck.header.step,
        })
    } else {
        ad.seed(derive_seed(t.seed, Stream::Init, 0));
        let model = init(&ad)?;
        let ema = model.valid();
        let target = with_target.then(|| model.valid());
        Ok(TrainState {
            model,
            ema,
            target,
            optim: optimizer(t),
            step: 0,
        })
    }
}

/// The per-step part of a stage: the per-example loss of step `step` given the current model
/// and (for stages that have one) the target network.
pub trait StepLoss {
    fn loss(&mut self, model: &EdmModel, target: Option<&EdmModel>, step: u64)
    -> Result<Tensor<1>>;

    /// Rate μ of the target EMA after `step` steps (only for stages with a target).
    fn target_rate(&self, _step: u64) -> f64 {
        0.0
    }
}

/// Optimise `state` up to `total` steps: loss → backward → Adam → EMA(s), with metrics,
/// a progress bar and atomic checkpoints. The stage supplies only its loss.
pub fn run_loop(
    out: &Path,
    run: &RunSpec,
    mut state: TrainState,
    total: u64,
    quiet: bool,
    stage: &mut impl StepLoss,
) -> Result<TrainSummary> {
    let t = &run.train;
    let ckpt_path = out.join(LATEST);
    std::fs::create_dir_all(out).map_err(Error::io("create run directory", out))?;
    write_atomic(&out.join("config.toml"), run.config.as_bytes())?;
    let metrics_path = out.join("metrics.jsonl");
    trim_metrics(&metrics_path, state.step)?;
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(Error::io("open", &metrics_path))?;

    let save = |s: &TrainState| -> Result<()> {
        let header = Header {
            format: FORMAT_VERSION,
            kind: run.kind,
            step: s.step,
            seed: t.seed,
            spec: run.spec.clone(),
            config: run.config.clone(),
            extra: run.extra.clone(),
            blobs: vec![],
        };
        let optim = s
            .optim
            .into_bytes()
            .map_err(|e| Error::Invalid(format!("encoding optimizer state: {e}")))?;
        let mut ck = Checkpoint::new(header)
            .with_blob("model", module_bytes(s.model.clone()))
            .with_blob("ema", module_bytes(s.ema.clone()))
            .with_blob("optimizer", optim.to_vec());
        if let Some(target) = &s.target {
            ck = ck.with_blob("target", module_bytes(target.clone()));
        }
        ck.save(&ckpt_path)
    };

    let resumed_from = state.step;
    let label = format!("{:?}", run.kind).to_lowercase();
    let pb = crate::progress::bar(total, quiet, &label);
    pb.set_position(state.step);
    let started = Instant::now();
    let (mut window_loss, mut window_n, mut window_t) = (0.0, 0u64, Instant::now());
    let mut last_loss = f64::NAN;
    let device = state
        .ema
        .devices()
        .first()
        .cloned()
        .expect("a model lives on a device");
    let ad = device.clone().autodiff();
    while state.step < total {
        let step = state.step;
        ad.seed(derive_seed(t.seed, Stream::Backend, step));
        let loss = stage
            .loss(&state.model, state.target.as_ref(), step)?
            .mean();
        let loss_value = loss.clone().into_scalar::<f32>() as f64;
        if !loss_value.is_finite() {
            pb.abandon();
            return Err(Error::NonFinite {
                step,
                loss: loss_value,
                last_good: ckpt_path.display().to_string(),
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &state.model);
        let lr = learning_rate(t, step);
        state.model = state.optim.step(lr, state.model, grads);
        state.step += 1;
        let live = state.model.valid();
        let beta = ema_beta(
            state.step,
            t.batch_size,
            t.ema_halflife_images,
            t.ema_rampup_ratio,
        );
        state.ema = ema_update(state.ema, &live, beta);
        if let Some(target) = state.target.take() {
            state.target = Some(ema_update(target, &live, stage.target_rate(state.step)));
        }

        last_loss = loss_value;
        window_loss += loss_value;
        window_n += 1;
        if state.step % t.log_every == 0 || state.step == total {
            let ips = (window_n as usize * t.batch_size) as f64 / window_t.elapsed().as_secs_f64();
            let line = MetricsLine {
                step: state.step,
                loss: window_loss / window_n as f64,
                lr,
                img_per_s: ips,
            };
            writeln!(
                metrics,
                "{}",
                serde_json::to_string(&line).expect("plain data")
            )
            .map_err(Error::io("append to", &metrics_path))?;
            pb.set_message(format!("loss {:.4} · {:.0} img/s", line.loss, ips));
            (window_loss, window_n, window_t) = (0.0, 0, Instant::now());
        }
        if state.step % t.checkpoint_every == 0 || state.step == total {
            save(&state)?;
        }
        pb.set_position(state.step);
    }
    pb.finish();
    if !ckpt_path.exists() {
        save(&state)?;
    }
    let wall = started.elapsed().as_secs_f64();
    Ok(TrainSummary {
        steps: state.step,
        resumed_from,
        final_loss: last_loss,
        images_per_sec: ((state.step - resumed_from) as usize * t.batch_size) as f64
            / wall.max(1e-9),
        wall_seconds: wall,
        checkpoint: ckpt_path,
    })
}

#[derive(Serialize, Deserialize)]
struct MetricsLine {
    step: u64,
    loss: f64,
    lr: f64,
    img_per_s: f64,
}

/// Training time a run's `metrics.jsonl` accounts for: each line covers the steps since the
/// previous one at its `img_per_s`, so seconds = Σ Δstep · batch / img_per_s (checkpoint writes
/// fall inside the next window; process start-up and data loading are not counted).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoggedTime {
    /// The last logged step.
    pub steps: u64,
    pub seconds: f64,
}

/// [`LoggedTime`] of the run in `out` trained at `batch` images per step (None: no metrics).
pub fn logged_seconds(out: &Path, batch: usize) -> Option<LoggedTime> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).ok()?;
    let (mut prev, mut seconds) = (0u64, 0.0);
    for line in text.lines() {
        let m: MetricsLine = serde_json::from_str(line).ok()?;
        if m.step <= prev || !(m.img_per_s > 0.0) {
            return None;
        }
        seconds += (m.step - prev) as f64 * batch as f64 / m.img_per_s;
        prev = m.step;
    }
    (prev > 0).then_some(LoggedTime {
        steps: prev,
        seconds,
    })
}

/// Drop metrics lines past `step` (logged after the checkpoint a resume starts from).
fn trim_metrics(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    write_atomic(path, kept.as_bytes())
}

/// The teacher's step: the EDM loss on a fresh batch.
struct TeacherStep<'a> {
    data: &'a Dataset,
    cfg: &'a TeacherConfig,
    device: Device,
}

impl StepLoss for TeacherStep<'_> {
    fn loss(
        &mut self,
        model: &EdmModel,
        _target: Option<&EdmModel>,
        step: u64,
    ) -> Result<Tensor<1>> {
        let (t, d) = (&self.cfg.train, &self.cfg.diffusion);
        let b = draw_batch(
            self.data,
            t.batch_size,
            d.p_uncond,
            t.seed,
            step,
            &self.device,
        );
        let cond = Cond {
            class: b.class,
            extra: None,
        };
        Ok(edm_loss(
            model,
            b.y,
            &cond,
            b.normals,
            b.noise,
            &d.sigma_dist,
            d.sigma_data,
        ))
    }
}

/// Train (or resume) a teacher into `opts.out`.
pub fn train_teacher(cfg: &TeacherConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    let data = cfg.data.load(opts.data.as_deref(), Split::Train)?;
    let spec = ModelSpec {
        unet: cfg.model.clone(),
        shape: data.shape,
        num_classes: data.num_classes,
        sigma_data: cfg.diffusion.sigma_data,
        precond: Precond::Edm,
    };
    let mut extra = serde_json::Map::new();
    if let Some(p) = opts.data.as_ref().or(cfg.data.path.as_ref()) {
        extra.insert("data_path".into(), p.display().to_string().into());
    }
    let run = RunSpec {
        kind: ModelKind::Teacher,
        spec: spec.clone(),
        config: cfg.to_toml(),
        extra,
        train: cfg.train.clone(),
    };
    let state = init_or_resume(
        &opts.out,
        opts.resume,
        &run,
        &opts.device,
        |d| Ok(spec.init(d)),
        false,
    )?;
    let total = opts.steps.unwrap_or(cfg.train.steps);
    let mut stage = TeacherStep {
        data: &data,
        cfg,
        device: opts.device.clone().autodiff(),
    };
    run_loop(&opts.out, &run, state, total, opts.quiet, &mut stage)
}
