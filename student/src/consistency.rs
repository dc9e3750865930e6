//! Consistency distillation (Song et al. 2023, "Consistency Models", Algorithm 2): a student
//! f_θ(x, σ, w) with boundary scalings (f(x, σ_min) = x) is trained so that its outputs at two
//! adjacent points of one teacher ODE trajectory agree with an EMA target network θ⁻.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use teacher::data::Dataset;
use teacher::dist::Shard;
use teacher::edm::loss::mean_per_example;
use teacher::edm::precond::Precond;
use teacher::edm::sigma_grid::SigmaGrid;
use teacher::edm::solver::{Sigma, heun_step};
use teacher::edm::{Denoiser, per_example};
use teacher::error::Result;
use teacher::model::{EdmModel, ModelSpec};
use teacher::recipe::{ModelKind, Recipe};
use teacher::train::{Method, RunSpec, TrainSummary, init_or_resume, run_loop};

use crate::config::{ConsistencyConfig, Metric, StudentConfig};
use crate::guided::StageOptions;
use crate::guided_teacher::GuidedTeacher;
use crate::source::{Regression, Source, draw};

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

impl Method for CdStep<'_> {
    fn loss(
        &mut self,
        model: &EdmModel,
        target: Option<&EdmModel>,
        step: u64,
        shard: &Shard,
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
        )
        .with_latent(self.teacher.model(), t.seed, step);
        // Karras levels σ_max = s[0] > … > s[N−1] = σ_min; pick adjacent σ_{n+1} = s[k] > σ_n = s[k+1]
        // (for the global batch, then this rank's rows kept).
        let levels = self.grid.levels(self.cfg.grid.at(step, self.total));
        let k: Vec<usize> = (0..shard.global)
            .map(|_| b.rng.random_range(0..levels.len() - 1))
            .collect();
        let (b, k, bsz) = (b.shard(shard), shard.pick(&k), shard.len);
        let pick = |o: usize| {
            let v: Vec<f32> = k.iter().map(|&k| levels[k + o] as f32).collect();
            Tensor::<1>::from_data(TensorData::new(v, [bsz]), &self.device)
        };
        let (s_hi, s_lo) = (pick(0), pick(1));
        // x_{n+1} = y + σ_{n+1}·z, and x̂_n one teacher Heun step down to σ_n.
        let x_hi = b.y.clone() + b.noise.clone() * per_example::<4>(s_hi.clone());
        let cond = b.cond();
        let (hi, lo) = (Sigma::Each(s_hi.clone()), Sigma::Each(s_lo.clone()));
        let x_lo = heun_step(self.teacher, x_hi.clone(), &hi, &lo, &cond);
        // Target f_θ⁻(x̂_n, σ_n) without gradients.
        let f_target = target.denoise(x_lo, s_lo, &cond);
        let r = Regression {
            x: x_hi,
            sigma: s_hi,
            class: b.class,
            w: b.w,
            target: f_target,
            latent: b.latent.clone(),
        };
        let (f, f_target, _) = r.predict(model, &self.device.clone().autodiff());
        Ok(distance(f, f_target, self.cfg.metric))
    }

    fn target_rate(&self, step: u64) -> Option<f64> {
        Some(self.cfg.target_ema.at(&self.cfg.grid, step, self.total))
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
    let run = RunSpec {
        recipe: Recipe::Consistency { grid, w: c.w },
        spec: spec.clone(),
        config: StudentConfig::section_toml(c),
        lineage: src.lineage(),
        train: c.train.clone(),
    };
    // Initialised from the source's weights (Song et al. initialise CD from the teacher).
    let init = |ad: &Device| src.ck.load_into("ema", spec.init(ad));
    let state = init_or_resume(
        &opts.out,
        opts.resume_mode(),
        &run,
        &opts.device,
        init,
        true,
    )?;
    let total = opts.steps.unwrap_or(c.train.steps);
    let mut method = CdStep {
        teacher: &teacher,
        data: &data,
        cfg: c,
        grid,
        total,
        device: opts.device.clone(),
    };
    run_loop(&opts.out, &run, state, total, opts, &mut method)
}
