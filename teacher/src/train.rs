//! The one training loop of every stage — the teacher and each distillation are a [`Method`]
//! (a per-example loss): batch → loss → backward → Adam step → EMA → metrics → checkpoint,
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
    Checkpoint, FORMAT_VERSION, Header, LATEST, Lineage, module_bytes, write_atomic,
};
use crate::config::{TeacherConfig, TrainConfig};
use crate::data::{Dataset, Split};
use crate::dist::{Shard, World};
use crate::edm::Cond;
use crate::edm::precond::Precond;
use crate::ema::{ema_beta, ema_update};
use crate::error::{Error, Result};
use crate::latent::stage1::{LatentDraws, latent_and_rate, null_cond};
use crate::model::{EdmModel, ModelSpec, Network, NetworkConfig};
use crate::recipe::Recipe;
use crate::resume::Resume;
use crate::rng::{Stream, derive_seed, normals, rng};

/// How a training run is driven (resolved from the command line).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub out: PathBuf,
    /// `--data DIR`, overriding `data.path`.
    pub data: Option<PathBuf>,
    pub resume: bool,
    /// `--allow-config-change`: a resume may take a changed config (recorded in metrics.jsonl).
    pub allow_config_change: bool,
    /// `--steps N`, overriding `train.steps`.
    pub steps: Option<u64>,
    pub quiet: bool,
    pub device: Device,
    /// The ranks this run is spread over (`dist::World::SINGLE` outside a launcher).
    pub world: World,
}

impl TrainOptions {
    /// How this run treats a checkpoint already in its folder.
    pub fn resume_mode(&self) -> crate::resume::Resume {
        use crate::resume::Resume;
        match (self.resume, self.allow_config_change) {
            (false, _) => Resume::No,
            (true, false) => Resume::Strict,
            (true, true) => Resume::AllowConfigChange,
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub steps: u64,
    pub resumed_from: u64,
    pub final_loss: f64,
    pub images_per_sec: f64,
    pub wall_seconds: f64,
    /// Seconds this rank spent in the gradient all-reduce (waiting for the others included);
    /// 0 in a world of one.
    pub all_reduce_seconds: f64,
    /// Ranks the run was spread over.
    pub ranks: usize,
    pub checkpoint: PathBuf,
}

impl TrainSummary {
    /// One line: where the run `what` stands, its loss, speed and checkpoint.
    pub fn describe(&self, what: &str) -> String {
        format!(
            "trained {what} to step {} (from {}): final loss {:.4}, {:.1} img/s, {:.1} s{}; checkpoint {}",
            self.steps,
            self.resumed_from,
            self.final_loss,
            self.images_per_sec,
            self.wall_seconds,
            self.ranks_note(),
            self.checkpoint.display()
        )
    }

    /// Over several ranks: how many, that they ended with the same weights (the run checks it,
    /// an error otherwise), and the all-reduce's share of rank 0's time.
    fn ranks_note(&self) -> String {
        match self.ranks {
            0 | 1 => String::new(),
            n => format!(
                " on {n} ranks (identical weights on every rank; all-reduce {:.1}% of the time)",
                100.0 * self.all_reduce_seconds / self.wall_seconds.max(1e-9)
            ),
        }
    }
}

/// One training batch drawn from the step's RNG: images, labels after label dropout, σ normals
/// and noise. A pure function of (dataset, seed, step).
pub struct Batch {
    pub y: Tensor<4>,
    pub class: Tensor<1, Int>,
    pub normals: Tensor<1>,
    pub noise: Tensor<4>,
}

impl Batch {
    /// The rows of `shard` (the whole batch in a world of one).
    pub fn shard(self, shard: &Shard) -> Self {
        Self {
            y: shard.rows(self.y),
            class: shard.rows(self.class),
            normals: shard.rows(self.normals),
            noise: shard.rows(self.noise),
        }
    }
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
    /// A second EMA with a method-specific rate (the consistency target θ⁻), when it has one.
    pub target: Option<EdmModel>,
    pub optim: ModuleOptimizer,
    pub step: u64,
    /// Config settings a resume changed (`--allow-config-change`), for metrics.jsonl.
    pub config_changes: Vec<String>,
}

impl TrainState {
    /// One optimizer step on `grads` (of the global batch mean): Adam at the step's learning
    /// rate, then θ_ema (EDM half-life β) and θ⁻ (the method's μ) follow the new weights.
    fn apply(
        mut self,
        grads: GradientsParams,
        t: &TrainConfig,
        method: &impl Method,
    ) -> (Self, f64) {
        let lr = learning_rate(t, self.step);
        self.model = self.optim.step(lr, self.model, grads);
        self.step += 1;
        let live = self.model.valid();
        let beta = ema_beta(
            self.step,
            t.batch_size,
            t.ema_halflife_images,
            t.ema_rampup_ratio,
        );
        self.ema = ema_update(self.ema, &live, beta);
        let mu = method.target_rate(self.step);
        self.target = self.target.map(|target| match mu {
            Some(mu) => ema_update(target, &live, mu),
            None => target,
        });
        (self, lr)
    }

    /// SHA-256 over the weights of every network the run carries, for the ranks' agreement.
    fn digest(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.step.to_le_bytes());
        crate::dist::grads::hash_weights(&mut h, &self.model);
        crate::dist::grads::hash_weights(&mut h, &self.ema);
        if let Some(target) = &self.target {
            crate::dist::grads::hash_weights(&mut h, target);
        }
        h.finalize().into()
    }

    /// The device the inference copies live on (the autodiff device's inner device).
    fn device(&self) -> Device {
        self.ema
            .devices()
            .first()
            .cloned()
            .expect("a model lives on a device")
    }
}

/// What identifies a run's checkpoints: what it is, its network, config and lineage.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub recipe: Recipe,
    pub spec: ModelSpec,
    /// The resolved config (TOML), saved in the checkpoint and as `config.toml`.
    pub config: String,
    pub lineage: Lineage,
    pub train: TrainConfig,
}

impl RunSpec {
    /// The run's checkpoint of `state`.
    fn checkpoint(&self, state: &TrainState) -> Result<Checkpoint> {
        let header = Header {
            format: FORMAT_VERSION,
            recipe: self.recipe.clone(),
            step: state.step,
            seed: self.train.seed,
            spec: self.spec.clone(),
            config: self.config.clone(),
            lineage: self.lineage.clone(),
            blobs: vec![],
        };
        let optim = state
            .optim
            .into_bytes()
            .map_err(|e| Error::Invalid(format!("encoding optimizer state: {e}")))?;
        let mut ck = Checkpoint::new(header)
            .with_blob("model", module_bytes(state.model.clone()))
            .with_blob("ema", module_bytes(state.ema.clone()))
            .with_blob("optimizer", optim.to_vec());
        if let Some(target) = &state.target {
            ck = ck.with_blob("target", module_bytes(target.clone()));
        }
        Ok(ck)
    }
}

/// A fresh state from `init` (given the autodiff device, seeded from the run's seed), or the
/// checkpoint in `out` when `resume` is set. An existing checkpoint without `resume` is an error
/// so saved work is never overwritten.
pub fn init_or_resume(
    out: &Path,
    resume: Resume,
    run: &RunSpec,
    device: &Device,
    init: impl FnOnce(&Device) -> Result<EdmModel>,
    with_target: bool,
) -> Result<TrainState> {
    let ckpt_path = out.join(LATEST);
    let ad = device.clone().autodiff();
    let t = &run.train;
    if !ckpt_path.exists() {
        ad.seed(derive_seed(t.seed, Stream::Init, 0));
        let model = init(&ad)?;
        let ema = model.valid();
        let target = with_target.then(|| model.valid());
        return Ok(TrainState {
            model,
            ema,
            target,
            optim: optimizer(t),
            step: 0,
            config_changes: vec![],
        });
    }
    if resume == Resume::No {
        return Err(Error::Invalid(format!(
            "`{}` already holds a checkpoint: pass `--resume` to continue it, or choose another `--out`",
            out.display()
        )));
    }
    let ck = Checkpoint::load(&ckpt_path)?;
    if ck.header.kind() != run.recipe.kind() || ck.header.spec != run.spec {
        return Err(Error::Checkpoint {
            path: ckpt_path.clone(),
            message: "was trained with another network or data shape than this config: resume with the run's own \
                      `config.toml`, or train into a new `--out`"
                .into(),
        });
    }
    let older = ck.header.format < FORMAT_VERSION;
    let config_changes = crate::resume::check(&ck.header.config, &run.config, older, resume, out)?;
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
        config_changes,
    })
}

/// A training method: what one optimizer step minimises. The teacher's EDM loss and every
/// distillation are methods (loss functions, as in consistency_models); the loop is shared.
pub trait Method {
    /// Per-example loss (on the autodiff device) of the `shard` of step `step`'s global batch,
    /// for the live `model` and, for methods that have one, the `target` network θ⁻. A method
    /// draws the whole global batch's randomness and keeps the shard's rows, so N ranks see
    /// exactly the examples one process would.
    fn loss(
        &mut self,
        model: &EdmModel,
        target: Option<&EdmModel>,
        step: u64,
        shard: &Shard,
    ) -> Result<Tensor<1>>;

    /// Rate μ of the target update θ⁻ ← μ·θ⁻ + (1 − μ)·θ after `step` steps; None: no target.
    fn target_rate(&self, _step: u64) -> Option<f64> {
        None
    }
}

/// Optimise `state` up to `total` steps: batch → loss → backward → all-reduce → Adam → EMA(s),
/// with metrics, a progress bar and atomic checkpoints. The method supplies only its loss.
/// Across ranks (`opts.world`) every rank computes its shard and applies the same averaged
/// step; rank 0 alone writes, and the ranks check they hold the same weights at both ends.
pub fn run_loop(
    out: &Path,
    run: &RunSpec,
    mut state: TrainState,
    total: u64,
    opts: &TrainOptions,
    method: &mut impl Method,
) -> Result<TrainSummary> {
    let t = &run.train;
    let world = opts.world.with_timeout(t.all_reduce_timeout_s);
    let ckpt = out.join(LATEST);
    let shard = world.shard(t.batch_size, "train.batch_size")?;
    world.agree(state.digest(), "weights at the start")?;
    if total == 0 {
        return Err(Error::Invalid(
            "`--steps 0`: a run trains at least 1 step (give `--steps N` with N ≥ 1)".into(),
        ));
    }
    if t.time_budget_s.is_some() && world.size() > 1 {
        return Err(Error::Invalid(
            "`train.time_budget_s` stops on one process's clock: remove it, or train on one process"
                .into(),
        ));
    }
    let mut log = RunLog::open(out, run, &state, total, opts.quiet, &world)?;
    let ad = state.device().autodiff();
    while state.step < total && !log.over_budget(t.time_budget_s) {
        let step = state.step;
        ad.seed(world.step_seed(derive_seed(t.seed, Stream::Backend, step)));
        let per_example = method.loss(&state.model, state.target.as_ref(), step, &shard)?;
        let (grads, value) = backward(per_example, &shard, &state.model, &mut log);
        let value = log.finite(value, step, &ckpt)?;
        let lr;
        (state, lr) = state.apply(grads, t, method);
        log.record(state.step, value, lr, total)?;
        let over = log.over_budget(t.time_budget_s);
        let due = state.step.is_multiple_of(t.checkpoint_every) || state.step == total;
        if world.is_root() && (due || over) {
            run.checkpoint(&state)?.save(&ckpt)?;
        }
        if over {
            break;
        }
    }
    world.agree(state.digest(), "weights at the end")?;
    if world.is_root() && !ckpt.exists() {
        run.checkpoint(&state)?.save(&ckpt)?;
    }
    Ok(log.finish(state.step, ckpt))
}

/// Gradients of the global batch mean and its value. One process: the batch mean, as always.
/// Several: each rank's shard sum / global batch, summed over ranks by one all-reduce that
/// also carries the loss (its time is added to `log`).
fn backward(
    per_example: Tensor<1>,
    shard: &Shard,
    model: &EdmModel,
    log: &mut RunLog,
) -> (GradientsParams, f64) {
    if log.world.size() == 1 {
        let loss = per_example.mean();
        let value = loss.clone().into_scalar::<f32>() as f64;
        return (GradientsParams::from_grads(loss.backward(), model), value);
    }
    let loss = per_example.sum().div_scalar(shard.global as f32);
    let mut value = [loss.clone().into_scalar::<f32>()];
    let grads = GradientsParams::from_grads(loss.backward(), model);
    let started = Instant::now();
    let grads = crate::dist::grads::all_reduce(&log.world, grads, model, &mut value);
    log.all_reduce_seconds += started.elapsed().as_secs_f64();
    (grads, value[0] as f64)
}

/// The loop's bookkeeping: `config.toml`, `metrics.jsonl` (one line per `log_every` steps),
/// the progress bar and the timing of the run. Only rank 0 writes; the other ranks keep time.
struct RunLog {
    /// The run folder's lock: one writer per run (rank 0's).
    _lock: Option<crate::lock::FolderLock>,
    metrics: Option<std::fs::File>,
    path: PathBuf,
    bar: indicatif::ProgressBar,
    batch: usize,
    log_every: u64,
    resumed_from: u64,
    started: Instant,
    window: (f64, u64, Instant),
    last_loss: f64,
    world: World,
    all_reduce_seconds: f64,
    /// Training seconds `metrics.jsonl` logs (as [`logged_seconds`] sums them: each line
    /// covers the steps since the previous line) and the step of its last line.
    logged_s: f64,
    logged_step: u64,
}

impl RunLog {
    fn open(
        out: &Path,
        run: &RunSpec,
        state: &TrainState,
        total: u64,
        quiet: bool,
        world: &World,
    ) -> Result<Self> {
        let step = state.step;
        let path = out.join("metrics.jsonl");
        let (lock, metrics) = match world.is_root() {
            true => {
                let lock = crate::lock::FolderLock::acquire(out, &[LATEST])?;
                (Some(lock), Some(open_metrics(out, run, state)?))
            }
            false => (None, None),
        };
        let bar = crate::progress::bar(total, quiet || !world.is_root(), run.recipe.kind().name());
        bar.set_position(step);
        let earlier = logged_seconds(out, run.train.batch_size);
        Ok(Self {
            _lock: lock,
            metrics,
            path,
            bar,
            batch: run.train.batch_size,
            log_every: run.train.log_every,
            resumed_from: step,
            started: Instant::now(),
            window: (0.0, 0, Instant::now()),
            last_loss: f64::NAN,
            world: *world,
            all_reduce_seconds: 0.0,
            logged_s: earlier.map_or(0.0, |t| t.seconds),
            logged_step: earlier.map_or(0, |t| t.steps),
        })
    }

    /// Whether the logged training time has reached `budget` (seconds; None: no budget). It
    /// moves with each `metrics.jsonl` line, so the run stops at the line's step.
    fn over_budget(&self, budget: Option<f64>) -> bool {
        budget.is_some_and(|b| self.logged_s >= b)
    }

    /// The loss value, or the divergence error (the bar is abandoned, the last checkpoint kept).
    fn finite(&mut self, loss: f64, step: u64, ckpt: &Path) -> Result<f64> {
        if loss.is_finite() {
            return Ok(loss);
        }
        self.bar.abandon();
        let (last_good, then) = match ckpt.is_file() {
            true => (
                format!("The last good checkpoint `{}` is kept", ckpt.display()),
                "`--resume --allow-config-change`",
            ),
            false => (
                "No checkpoint was written yet".to_string(),
                "train again into the same `--out`",
            ),
        };
        Err(Error::NonFinite {
            step,
            loss,
            last_good,
            then,
        })
    }

    /// Account for the step that ended at `step`; every `log_every` steps (and at the end) a
    /// metrics line with the window's mean loss and throughput.
    fn record(&mut self, step: u64, loss: f64, lr: f64, total: u64) -> Result<()> {
        self.last_loss = loss;
        self.window.0 += loss;
        self.window.1 += 1;
        if step.is_multiple_of(self.log_every) || step == total {
            let (sum, n, since) = self.window;
            let ips = (n as usize * self.batch) as f64 / since.elapsed().as_secs_f64();
            // As `logged_seconds` reads this line back: the steps since the last line at `ips`.
            self.logged_s +=
                (step.saturating_sub(self.logged_step) as usize * self.batch) as f64 / ips;
            self.logged_step = step;
            let line = MetricsLine {
                step,
                loss: sum / n as f64,
                lr,
                img_per_s: ips,
            };
            if let Some(metrics) = &mut self.metrics {
                let text = serde_json::to_string(&line).expect("plain data");
                writeln!(metrics, "{text}").map_err(Error::io("append to", &self.path))?;
            }
            self.bar
                .set_message(format!("loss {:.4} · {:.0} img/s", line.loss, ips));
            self.window = (0.0, 0, Instant::now());
        }
        self.bar.set_position(step);
        Ok(())
    }

    fn finish(self, steps: u64, checkpoint: PathBuf) -> TrainSummary {
        self.bar.finish();
        let wall = self.started.elapsed().as_secs_f64();
        TrainSummary {
            steps,
            resumed_from: self.resumed_from,
            final_loss: self.last_loss,
            images_per_sec: ((steps - self.resumed_from) as usize * self.batch) as f64
                / wall.max(1e-9),
            wall_seconds: wall,
            all_reduce_seconds: self.all_reduce_seconds,
            ranks: self.world.size(),
            checkpoint,
        }
    }
}

/// Write `config.toml`, trim `metrics.jsonl` to the resumed step and open it for appending
/// (with a line for the config settings a resume changed).
fn open_metrics(out: &Path, run: &RunSpec, state: &TrainState) -> Result<std::fs::File> {
    let step = state.step;
    write_atomic(&out.join("config.toml"), run.config.as_bytes())?;
    let path = out.join("metrics.jsonl");
    trim_metrics(&path, step)?;
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(Error::io("open", &path))?;
    if !state.config_changes.is_empty() {
        let line = serde_json::json!({"step": step, "config_change": state.config_changes});
        writeln!(metrics, "{line}").map_err(Error::io("append to", &path))?;
    }
    Ok(metrics)
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
    for line in text.lines().filter(|l| !l.contains("\"config_change\"")) {
        let m: MetricsLine = serde_json::from_str(line).ok()?;
        if m.step <= prev || m.img_per_s.is_nan() || m.img_per_s <= 0.0 {
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

/// The teacher's method: the EDM loss on a fresh batch.
struct TeacherStep<'a> {
    data: &'a Dataset,
    cfg: &'a TeacherConfig,
    device: Device,
}

impl Method for TeacherStep<'_> {
    fn loss(
        &mut self,
        model: &EdmModel,
        _target: Option<&EdmModel>,
        step: u64,
        shard: &Shard,
    ) -> Result<Tensor<1>> {
        let (t, d) = (&self.cfg.train, &self.cfg.diffusion);
        let b = draw_batch(
            self.data,
            t.batch_size,
            d.p_uncond,
            t.seed,
            step,
            &self.device,
        )
        .shard(shard);
        let weights = self
            .cfg
            .model
            .loss_weights(model.image_shape(), step, &self.device);
        let mut cond = Cond {
            class: b.class,
            extra: None,
            latent: None,
        };
        // Unified Latents' stage 1: the decoder denoises given z₀ = E(y) + σ₀·ε, and the prior's
        // rate joins its loss (`latent/stage1.rs`).
        let mut rate = None;
        if let (NetworkConfig::LatentAutoencoder(c), Network::LatentAutoencoder(ae)) =
            (&self.cfg.model, &model.net)
        {
            let shape = c.latent_shape(model.image_shape());
            let draws = LatentDraws::draw(t.seed, step, t.batch_size, shape, &self.device);
            let (z0, r) = latent_and_rate(ae, c, b.y.clone(), draws.shard(shard));
            cond = null_cond(b.y.dims()[0], model.null_class(), Some(z0), &self.device);
            rate = Some((r, c.loss_factor));
        }
        let (p, sd) = (&d.sigma_dist, d.sigma_data);
        let loss = d
            .loss
            .per_example(model, b.y, &cond, b.normals, b.noise, p, sd, weights);
        Ok(match rate {
            None => loss,
            Some((r, c_lf)) => loss.mul_scalar(c_lf) + r,
        })
    }
}

/// Train (or resume) a teacher into `opts.out`.
pub fn train_teacher(cfg: &TeacherConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    let data = cfg.data.load(opts.data.as_deref(), Split::Train)?;
    cfg.model.check_shape(data.shape)?;
    let spec = ModelSpec {
        net: cfg.model.clone(),
        shape: data.shape,
        num_classes: data.num_classes,
        sigma_data: cfg.diffusion.sigma_data,
        precond: Precond::Edm,
    };
    // What the denoiser takes: the images, or their multi-resolution canvases.
    let data = cfg.model.prepare(data);
    let config = cfg.to_toml();
    let run = RunSpec {
        recipe: Recipe::Teacher {
            grid: cfg.diffusion.grid,
        },
        spec: spec.clone(),
        lineage: Lineage {
            teacher_config: config.clone(),
            data_path: opts.data.clone().or_else(|| cfg.data.path.clone()),
            source: None,
        },
        config,
        train: cfg.train.clone(),
    };
    let state = init_or_resume(
        &opts.out,
        opts.resume_mode(),
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
    run_loop(&opts.out, &run, state, total, opts, &mut stage)
}
