//! Consistency distillation (Song et al. 2023, "Consistency Models", Algorithm 2): a student
//! f_θ(x, σ, w) with boundary scalings (f(x, σ_min) = x) is trained so that its outputs at two
//! adjacent points of one teacher ODE trajectory agree with an EMA target network θ⁻.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use teacher::checkpoint::ModelKind;
use teacher::data::Dataset;
use teacher::edm::Cond;
use teacher::edm::loss::mean_per_example;
use teacher::edm::per_example;
use teacher::edm::precond::Precond;
use teacher::edm::sampler::Sampled;
use teacher::edm::sigma_grid::SigmaGrid;
use teacher::error::Result;
use teacher::model::{EdmModel, ModelSpec};
use teacher::train::{RunSpec, StepLoss, TrainSummary, init_or_resume, run_loop};

use crate::config::{ConsistencyConfig, Metric, StudentConfig};
use crate::guided::StageOptions;
use crate::guided_teacher::{DenoiseW, GuidedTeacher};
use crate::source::{Source, draw, onto, onto_int};

/// One Heun step per example of the guided probability-flow ODE from σ_a to σ_b > 0
/// (EDM Algorithm 2, lines 4–7): 2 evaluations of D_w.
///
/// # Shapes
/// - x: `[n, c, h, w]`; s_a, s_b, class, w: `[n]` → `[n, c, h, w]`
pub fn heun_step(
    den: &impl DenoiseW,
    x: Tensor<4>,
    s_a: Tensor<1>,
    s_b: Tensor<1>,
    class: Tensor<1, Int>,
    w: Tensor<1>,
) -> Tensor<4> {
    let dt = per_example::<4>(s_b.clone() - s_a.clone());
    let d_a = (x.clone() - den.denoise_w(x.clone(), s_a.clone(), class.clone(), w.clone()))
        / per_example::<4>(s_a);
    let x_euler = x.clone() + d_a.clone() * dt.clone();
    let d_b =
        (x_euler.clone() - den.denoise_w(x_euler, s_b.clone(), class, w)) / per_example::<4>(s_b);
    x + (d_a + d_b).mul_scalar(0.5) * dt
}

/// d(a, b) per example: L2 = mean((a − b)²); pseudo-Huber = √(mean((a − b)²) + c²) − c
/// (Song & Dhariwal 2023, Eq. 11, written on the per-pixel mean so `c` is resolution-free:
/// their c = 0.00054·√d on the sum is c = 0.00054 here).
pub fn distance(a: Tensor<4>, b: Tensor<4>, metric: Metric) -> Tensor<1> {
    let mse = mean_per_example((a - b).square());
    match metric {
        Metric::L2 => mse,
        Metric::PseudoHuber { c } => mse.add_scalar(c * c).sqrt().sub_scalar(c),
    }
}

/// The consistency student's network: the source's U-Net with boundary scalings at σ_min.
pub fn student_spec(source: &ModelSpec, grid: &SigmaGrid) -> ModelSpec {
    ModelSpec {
        precond: Precond::Consistency {
            sigma_min: grid.sigma_min,
        },
        ..source.clone()
    }
}

struct CdStep<'a> {
    teacher: &'a GuidedTeacher,
    data: &'a Dataset,
    cfg: &'a ConsistencyConfig,
    grid: SigmaGrid,
    total: u64,
    device: Device,
}

impl StepLoss for CdStep<'_> {
    fn loss(
        &mut self,
        model: &EdmModel,
        target: Option<&EdmModel>,
        step: u64,
    ) -> Result<Tensor<1>> {
        let target = target.expect("consistency distillation runs with a target network");
        let t = &self.cfg.train;
        let mut b = draw(
            self.data,
            t.batch_size,
            &self.cfg.w,
            t.seed,
            step,
            &self.device,
        );
        let bsz = b.y.dims()[0];
        // Karras levels σ_max = s[0] > … > s[N−1] = σ_min; pick adjacent σ_{n+1} = s[k] > σ_n = s[k+1].
        let levels = self.grid.levels(self.cfg.grid.at(step, self.total));
        let k: Vec<usize> = (0..bsz)
            .map(|_| b.rng.random_range(0..levels.len() - 1))
            .collect();
        let pick = |o: usize| {
            let v: Vec<f32> = k.iter().map(|&k| levels[k + o] as f32).collect();
            Tensor::<1>::from_data(TensorData::new(v, [bsz]), &self.device)
        };
        let (s_hi, s_lo) = (pick(0), pick(1));
        // x_{n+1} = y + σ_{n+1}·z, and x̂_n one teacher Heun step down to σ_n.
        let x_hi = b.y + b.noise * per_example::<4>(s_hi.clone());
        let x_lo = heun_step(
            self.teacher,
            x_hi.clone(),
            s_hi.clone(),
            s_lo.clone(),
            b.class.clone(),
            b.w.clone(),
        );
        // Target f_θ⁻(x̂_n, σ_n) without gradients.
        let f_target = target.forward(x_lo, s_lo, b.class.clone(), Some(b.w.clone()));
        let ad = self.device.clone().autodiff();
        let class = onto_int(b.class, &ad);
        let f = model.forward(
            onto(x_hi, &ad),
            onto(s_hi, &ad),
            class,
            Some(onto(b.w, &ad)),
        );
        Ok(distance(f, onto(f_target, &ad), self.cfg.metric))
    }

    fn target_rate(&self, step: u64) -> f64 {
        self.cfg.target_ema.at(&self.cfg.grid, step, self.total)
    }
}

/// Distil the model at `teacher_run` (a CFG teacher, or a w-conditioned student as a cheaper
/// ODE solver) into a consistency student in `opts.out`.
pub fn run_consistency(
    teacher_run: &Path,
    cfg: &StudentConfig,
    opts: &StageOptions,
) -> Result<TrainSummary> {
    let src = Source::load(
        teacher_run,
        &[ModelKind::Teacher, ModelKind::Guided],
        "consistency distillation (a teacher or a guided student)",
    )?;
    let c = &cfg.consistency;
    let data = src.data(opts.data.as_deref())?;
    let teacher = GuidedTeacher::from_checkpoint(&src.ck, &opts.device)?;
    let grid = src.teacher_cfg.diffusion.grid;
    let spec = student_spec(&src.ck.header.spec, &grid);
    let mut extra = src.chain_extra();
    extra.insert(
        "w_range".into(),
        serde_json::to_value(c.w).expect("plain data"),
    );
    extra.insert("source".into(), teacher_run.display().to_string().into());
    let run = RunSpec {
        kind: ModelKind::Consistency,
        spec: spec.clone(),
        config: StudentConfig::section_toml(c),
        extra,
        train: c.train.clone(),
    };
    // Initialised from the source's weights (Song et al. initialise CD from the teacher).
    let state = init_or_resume(
        &opts.out,
        opts.resume,
        &run,
        &opts.device,
        |ad| src.ck.load_into("ema", spec.init(ad)),
        true,
    )?;
    let total = opts.steps.unwrap_or(c.train.steps);
    let mut stage = CdStep {
        teacher: &teacher,
        data: &data,
        cfg: c,
        grid,
        total,
        device: opts.device.clone(),
    };
    run_loop(&opts.out, &run, state, total, opts.quiet, &mut stage)
}

/// The σ's at which S-step consistency sampling evaluates f: the first S of the Karras grid with
/// S + 1 levels (σ_max first; the last level σ_min is where f is the identity).
pub fn multistep_sigmas(grid: &SigmaGrid, steps: usize) -> Vec<f64> {
    let mut s = grid.levels(steps + 1);
    s.truncate(steps);
    s
}

/// Multistep consistency sampling (Song et al. 2023, Algorithm 1): x = σ_0·z_0; for each k,
/// x̂ = f(x, σ_k), then re-noise x = x̂ + √(σ_{k+1}² − σ_min²)·z_{k+1}. `noises[k]` is z_k from
/// the caller, so a seed fixes the images. Costs one evaluation per step.
///
/// # Shapes
/// - each noise: `[n, c, h, w]` → x: `[n, c, h, w]`
pub fn multistep_sample(
    model: &EdmModel,
    noises: &[Tensor<4>],
    sigmas: &[f64],
    sigma_min: f64,
    cond: &Cond,
) -> Sampled {
    assert_eq!(noises.len(), sigmas.len(), "one noise per step");
    let n = noises[0].dims()[0];
    let device = noises[0].device();
    let mut x = noises[0].clone().mul_scalar(sigmas[0]);
    let mut x0 = x.clone();
    for (k, &s) in sigmas.iter().enumerate() {
        x0 = model.forward(
            x,
            Tensor::full([n], s, &device),
            cond.class.clone(),
            cond.extra.clone(),
        );
        x = match sigmas.get(k + 1) {
            Some(&next) => {
                x0.clone()
                    + noises[k + 1]
                        .clone()
                        .mul_scalar((next * next - sigma_min * sigma_min).max(0.0).sqrt())
            }
            None => x0.clone(),
        };
    }
    Sampled {
        x: x0,
        nfe: sigmas.len(),
    }
}
