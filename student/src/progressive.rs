//! Progressive distillation (Salimans & Ho 2022) in the σ (EDM) parameterisation, where DDIM is
//! the Euler step: each round's student takes one Euler step σ_i → σ_{i+2} where its teacher
//! took two, halving the step count (e.g. 32 → 16 → … → 1).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use teacher::checkpoint::Checkpoint;
use teacher::config::TrainConfig;
use teacher::data::Dataset;
use teacher::dist::Shard;
use teacher::edm::per_example;
use teacher::edm::solver::{Sigma, euler_step};
use teacher::error::{Error, Result};
use teacher::model::EdmModel;
use teacher::recipe::{ModelKind, Recipe, WRange};
use teacher::train::{Method, RunSpec, init_or_resume, run_loop};

use crate::config::{ProgressiveConfig, StudentConfig};
use crate::guided::StageOptions;
use crate::guided_teacher::GuidedTeacher;
use crate::source::{Regression, Source, draw};

/// x̂ = x − (x'' − x)·σ_i/(σ_{i+2} − σ_i): the denoised image for which one student Euler step
/// σ_i → σ_{i+2}, x + (σ_{i+2} − σ_i)·(x − x̂)/σ_i, lands exactly on the teacher's two-step point
/// x'' (Salimans & Ho 2022, Algorithm 2, solved in the σ parameterisation). When σ_{i+2} = 0 the
/// formula gives x̂ = x'', the teacher's two-step endpoint.
///
/// # Shapes
/// - x, x2: `[n, c, h, w]`; s_i, s_i2: `[n]` → `[n, c, h, w]`
pub fn progressive_target(
    x: Tensor<4>,
    x2: Tensor<4>,
    s_i: Tensor<1>,
    s_i2: Tensor<1>,
) -> Tensor<4> {
    let ratio = s_i.clone() / (s_i2 - s_i);
    x.clone() - (x2 - x) * per_example::<4>(ratio)
}

/// Every other σ of a grid: the student's grid with half the steps (ends in 0 like its parent).
pub fn halve_grid(sigmas: &[f64]) -> Vec<f64> {
    sigmas.iter().step_by(2).copied().collect()
}

struct RoundStep<'a> {
    teacher: &'a GuidedTeacher,
    /// The teacher's grid (2N steps, 2N + 1 values ending in 0).
    sigmas: &'a [f64],
    data: &'a Dataset,
    w: WRange,
    train: &'a TrainConfig,
    device: Device,
}

impl Method for RoundStep<'_> {
    fn loss(
        &mut self,
        model: &EdmModel,
        _: Option<&EdmModel>,
        step: u64,
        shard: &Shard,
    ) -> Result<Tensor<1>> {
        let t = self.train;
        let mut b = draw(self.data, t.batch_size, &self.w, t.seed, step, &self.device).with_latent(
            self.teacher.model(),
            t.seed,
            step,
        );
        let student_steps = (self.sigmas.len() - 1) / 2;
        // Per example a student step j: σ_i = s[2j], σ_{i+1} = s[2j+1], σ_{i+2} = s[2j+2]
        // (drawn for the global batch, then this rank's rows kept).
        let j: Vec<usize> = (0..shard.global)
            .map(|_| b.rng.random_range(0..student_steps))
            .collect();
        let (b, j, n) = (b.shard(shard), shard.pick(&j), shard.len);
        let pick = |k: usize| {
            let v: Vec<f32> = j.iter().map(|&j| self.sigmas[2 * j + k] as f32).collect();
            Tensor::<1>::from_data(TensorData::new(v, [n]), &self.device)
        };
        let (s0, s1, s2) = (pick(0), pick(1), pick(2));
        let x = b.y.clone() + b.noise.clone() * per_example::<4>(s0.clone());
        // Two teacher Euler steps σ_i → σ_{i+1} → σ_{i+2}.
        let cond = b.cond();
        let (e0, e1, e2) = (
            Sigma::Each(s0.clone()),
            Sigma::Each(s1),
            Sigma::Each(s2.clone()),
        );
        let x1 = euler_step(self.teacher, x.clone(), &e0, &e1, &cond);
        let x2 = euler_step(self.teacher, x1, &e1, &e2, &cond);
        let target = progressive_target(x.clone(), x2, s0.clone(), s2);
        let r = Regression {
            x,
            sigma: s0,
            class: b.class,
            w: b.w,
            target,
            latent: b.latent.clone(),
        };
        Ok(r.weighted_error(model, &self.device.clone().autodiff()))
    }
}

// Round folders are `teacher::runs`'s (where `--model RUN --steps S` resolves them).
pub use teacher::runs::{available_rounds, round_dir};

/// Summary of one round.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoundSummary {
    pub steps: usize,
    pub dir: PathBuf,
    pub wall_seconds: f64,
    pub final_loss: f64,
    /// True when the round was already complete and skipped.
    pub skipped: bool,
}

/// `--to-steps` must be reached by halving `start_steps`.
fn check_to_steps(start_steps: usize, to_steps: usize) -> Result<()> {
    if to_steps == 0
        || to_steps >= start_steps
        || !(start_steps / to_steps).is_power_of_two()
        || !start_steps.is_multiple_of(to_steps)
    {
        return Err(Error::Invalid(format!(
            "`--to-steps {to_steps}`: give a step count reached by halving progressive.start_steps = {start_steps} (one of {})",
            std::iter::successors(Some(start_steps / 2), |s| (*s > 1).then_some(s / 2))
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// Halving rounds from the guided student at `from` down to `to_steps` steps, one sub-folder per
/// round; finished rounds are skipped, an interrupted one resumes with `opts.resume`.
pub fn run_progressive(
    from: &Path,
    to_steps: usize,
    cfg: &StudentConfig,
    opts: &StageOptions,
) -> Result<Vec<RoundSummary>> {
    let p = &cfg.progressive;
    check_to_steps(p.start_steps, to_steps)?;
    let src = Source::load(
        from,
        &[ModelKind::Guided],
        "progressive distillation (start from `fewstep student guided`)",
    )?;
    let data = src.data(opts.data.as_deref())?;
    let mut sigmas = src.teacher_cfg.diffusion.grid.sampling(p.start_steps);
    let mut teacher_ck = src.ck.clone();
    let mut out = Vec::new();
    let mut steps = p.start_steps;
    while steps > to_steps {
        steps /= 2;
        let round = Round {
            src: &src,
            data: &data,
            cfg: p,
            opts,
            steps,
        };
        let (ck, summary) = round.run(&teacher_ck, &sigmas)?;
        out.push(summary);
        teacher_ck = ck;
        sigmas = halve_grid(&sigmas);
    }
    Ok(out)
}

/// One halving round: its teacher is the previous round's student (the guided one first).
struct Round<'a> {
    src: &'a Source,
    data: &'a Dataset,
    cfg: &'a ProgressiveConfig,
    opts: &'a StageOptions,
    /// The student's step count.
    steps: usize,
}

impl Round<'_> {
    /// Train (or keep, when finished) the student of `teacher_ck` on the teacher's grid `sigmas`.
    fn run(&self, teacher_ck: &Checkpoint, sigmas: &[f64]) -> Result<(Checkpoint, RoundSummary)> {
        let (p, opts) = (self.cfg, self.opts);
        let dir = round_dir(&opts.out, self.steps);
        let total = opts.steps.unwrap_or(p.train.steps);
        let summary = |wall_seconds, final_loss, skipped| RoundSummary {
            steps: self.steps,
            dir: dir.clone(),
            wall_seconds,
            final_loss,
            skipped,
        };
        if let Some(ck) = Checkpoint::load(&dir)
            .ok()
            .filter(|c| c.header.step >= total)
        {
            return Ok((ck, summary(0.0, f64::NAN, true)));
        }
        let w = self.src.w_range()?;
        let spec = self.src.ck.header.spec.clone();
        let run = RunSpec {
            recipe: Recipe::Progressive {
                steps: self.steps,
                sigmas: halve_grid(sigmas),
                w,
            },
            spec: spec.clone(),
            config: StudentConfig::section_toml(p),
            lineage: self.src.lineage(),
            train: p.train.clone(),
        };
        let teacher = GuidedTeacher::WInput(teacher_ck.inference_model(&opts.device)?);
        let init = |ad: &Device| teacher_ck.load_into("ema", spec.init(ad));
        let state = init_or_resume(&dir, opts.resume_mode(), &run, &opts.device, init, false)?;
        let mut method = RoundStep {
            teacher: &teacher,
            sigmas,
            data: self.data,
            w,
            train: &p.train,
            device: opts.device.clone(),
        };
        let s = run_loop(&dir, &run, state, total, opts, &mut method)?;
        Ok((
            Checkpoint::load(&dir)?,
            summary(s.wall_seconds, s.final_loss, false),
        ))
    }
}
