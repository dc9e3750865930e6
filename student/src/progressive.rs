//! Progressive distillation (Salimans & Ho 2022) in the σ (EDM) parameterisation, where DDIM is
//! the Euler step: each round's student takes one Euler step σ_i → σ_{i+2} where its teacher
//! took two, halving the step count (e.g. 32 → 16 → … → 1).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use teacher::checkpoint::{Checkpoint, LATEST, ModelKind};
use teacher::data::Dataset;
use teacher::edm::loss::{loss_weight_t, mean_per_example};
use teacher::edm::per_example;
use teacher::error::{Error, Result};
use teacher::model::EdmModel;
use teacher::train::{RunSpec, StepLoss, init_or_resume, run_loop};

use crate::config::{StudentConfig, WRange};
use crate::guided::StageOptions;
use crate::guided_teacher::{DenoiseW, GuidedTeacher};
use crate::source::{Source, draw, onto, onto_int};

/// One Euler step per example: x + (σ_to − σ_from)·(x − D_w(x; σ_from))/σ_from  (EDM Alg. 1).
///
/// # Shapes
/// - x: `[n, c, h, w]`; s_from, s_to, class, w: `[n]` → `[n, c, h, w]`
pub fn euler_step(
    den: &impl DenoiseW,
    x: Tensor<4>,
    s_from: Tensor<1>,
    s_to: Tensor<1>,
    class: Tensor<1, Int>,
    w: Tensor<1>,
) -> Tensor<4> {
    let d = den.denoise_w(x.clone(), s_from.clone(), class, w);
    let slope = (x.clone() - d) / per_example::<4>(s_from.clone());
    x + slope * per_example::<4>(s_to - s_from)
}

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
    train: &'a teacher::config::TrainConfig,
    device: Device,
}

impl StepLoss for RoundStep<'_> {
    fn loss(
        &mut self,
        model: &EdmModel,
        _target: Option<&EdmModel>,
        step: u64,
    ) -> Result<Tensor<1>> {
        let mut b = draw(
            self.data,
            self.train.batch_size,
            &self.w,
            self.train.seed,
            step,
            &self.device,
        );
        let n = b.y.dims()[0];
        let student_steps = (self.sigmas.len() - 1) / 2;
        // Per example a student step j: σ_i = s[2j], σ_{i+1} = s[2j+1], σ_{i+2} = s[2j+2].
        let j: Vec<usize> = (0..n)
            .map(|_| b.rng.random_range(0..student_steps))
            .collect();
        let pick = |k: usize| {
            let v: Vec<f32> = j.iter().map(|&j| self.sigmas[2 * j + k] as f32).collect();
            Tensor::<1>::from_data(TensorData::new(v, [n]), &self.device)
        };
        let (s0, s1, s2) = (pick(0), pick(1), pick(2));
        let x = b.y + b.noise * per_example::<4>(s0.clone());
        // Two teacher Euler steps σ_i → σ_{i+1} → σ_{i+2}.
        let x1 = euler_step(
            self.teacher,
            x.clone(),
            s0.clone(),
            s1.clone(),
            b.class.clone(),
            b.w.clone(),
        );
        let x2 = euler_step(
            self.teacher,
            x1,
            s1,
            s2.clone(),
            b.class.clone(),
            b.w.clone(),
        );
        let target = progressive_target(x.clone(), x2, s0.clone(), s2);
        let ad = self.device.clone().autodiff();
        let weight = loss_weight_t(onto(s0.clone(), &ad), model.sigma_data);
        let class = onto_int(b.class, &ad);
        let d = model.forward(onto(x, &ad), onto(s0, &ad), class, Some(onto(b.w, &ad)));
        Ok(mean_per_example((d - onto(target, &ad)).square()) * weight)
    }
}

/// Folder of the round whose student takes `steps` steps.
pub fn round_dir(out: &Path, steps: usize) -> PathBuf {
    out.join(format!("round-{steps:03}"))
}

/// Step counts of the finished rounds under a progressive run folder, ascending.
pub fn available_rounds(out: &Path) -> Vec<usize> {
    let mut v: Vec<usize> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(LATEST).exists())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("round-")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

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

/// Halving rounds from the guided student at `from` down to `to_steps` steps, one sub-folder per
/// round; finished rounds are skipped, an interrupted one resumes with `opts.resume`.
pub fn run_progressive(
    from: &Path,
    to_steps: usize,
    cfg: &StudentConfig,
    opts: &StageOptions,
) -> Result<Vec<RoundSummary>> {
    let p = &cfg.progressive;
    if to_steps == 0
        || to_steps >= p.start_steps
        || !(p.start_steps / to_steps).is_power_of_two()
        || p.start_steps % to_steps != 0
    {
        return Err(Error::Invalid(format!(
            "`--to-steps {to_steps}`: give a step count reached by halving progressive.start_steps = {} (one of {})",
            p.start_steps,
            std::iter::successors(Some(p.start_steps / 2), |s| (*s > 1).then_some(s / 2))
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let src = Source::load(
        from,
        &[ModelKind::Guided],
        "progressive distillation (start from `fewstep student guided`)",
    )?;
    let data = src.data(opts.data.as_deref())?;
    let w: WRange = serde_json::from_value(
        src.ck
            .header
            .extra
            .get("w_range")
            .cloned()
            .unwrap_or_default(),
    )
    .map_err(|_| {
        Error::Invalid(format!(
            "`{}` records no guidance range `w_range`",
            from.display()
        ))
    })?;
    let spec = src.ck.header.spec.clone();
    let mut sigmas = src.teacher_cfg.diffusion.grid.sampling(p.start_steps);
    let mut teacher_ck = src.ck.clone();
    let mut out = Vec::new();
    let mut steps = p.start_steps;
    while steps > to_steps {
        steps /= 2;
        let student_sigmas = halve_grid(&sigmas);
        let dir = round_dir(&opts.out, steps);
        let total = opts.steps.unwrap_or(p.train.steps);
        let done = Checkpoint::load(&dir)
            .ok()
            .filter(|c| c.header.step >= total);
        let (ck, summary) = match done {
            Some(ck) => (
                ck,
                RoundSummary {
                    steps,
                    dir: dir.clone(),
                    wall_seconds: 0.0,
                    final_loss: f64::NAN,
                    skipped: true,
                },
            ),
            None => {
                let mut extra = src.chain_extra();
                extra.insert(
                    "w_range".into(),
                    serde_json::to_value(w).expect("plain data"),
                );
                extra.insert("steps".into(), steps.into());
                extra.insert(
                    "sigmas".into(),
                    serde_json::to_value(&student_sigmas).expect("plain data"),
                );
                extra.insert("source".into(), from.display().to_string().into());
                let run = RunSpec {
                    kind: ModelKind::Progressive,
                    spec: spec.clone(),
                    config: StudentConfig::section_toml(p),
                    extra,
                    train: p.train.clone(),
                };
                let teacher = GuidedTeacher::WInput(teacher_ck.inference_model(&opts.device)?);
                let resume = opts.resume;
                let state = init_or_resume(
                    &dir,
                    resume,
                    &run,
                    &opts.device,
                    |ad| teacher_ck.load_into("ema", spec.init(ad)),
                    false,
                )?;
                let mut stage = RoundStep {
                    teacher: &teacher,
                    sigmas: &sigmas,
                    data: &data,
                    w,
                    train: &p.train,
                    device: opts.device.clone(),
                };
                let s = run_loop(&dir, &run, state, total, opts.quiet, &mut stage)?;
                (
                    Checkpoint::load(&dir)?,
                    RoundSummary {
                        steps,
                        dir: dir.clone(),
                        wall_seconds: s.wall_seconds,
                        final_loss: s.final_loss,
                        skipped: false,
                    },
                )
            }
        };
        out.push(summary);
        teacher_ck = ck;
        sigmas = student_sigmas;
    }
    Ok(out)
}
