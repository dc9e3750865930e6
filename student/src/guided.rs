//! Guided distillation (Meng et al. 2023, "On Distillation of Guided Diffusion Models", stage
//! one): a w-conditioned student learns the teacher's guided output D_w = D_u + w·(D_c − D_u), so
//! one evaluation per step replaces the cond + uncond pair. The loss is EDM's λ(σ)-weighted
//! error against D_w (Meng et al. 2023, Eq. 6, weighted so it is uniform in the network's
//! output space).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use teacher::data::Dataset;
use teacher::dist::Shard;
use teacher::edm::Denoiser;
use teacher::edm::per_example;
use teacher::error::Result;
use teacher::model::EdmModel;
use teacher::recipe::{ModelKind, Recipe};
use teacher::rng::normals;
use teacher::train::{Method, RunSpec, TrainSummary, init_or_resume, run_loop};

use crate::config::{GuidedConfig, StudentConfig};
use crate::guided_teacher::GuidedTeacher;
use crate::source::{Regression, Source, draw};

/// Options of a distillation command: the teacher's [`TrainOptions`] (`steps` is per round for
/// progressive distillation).
pub use teacher::train::TrainOptions as StageOptions;

struct GuidedStep<'a> {
    teacher: &'a GuidedTeacher,
    data: &'a Dataset,
    cfg: &'a GuidedConfig,
    device: Device,
}

impl Method for GuidedStep<'_> {
    fn loss(
        &mut self,
        model: &EdmModel,
        _: Option<&EdmModel>,
        step: u64,
        shard: &Shard,
    ) -> Result<Tensor<1>> {
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
        let n = shard.global;
        // σ ~ logNormal(P_mean, P_std), x = y + σ·noise (drawn for the global batch).
        let eps = normals(&mut b.rng, n);
        let sigma = self
            .cfg
            .sigma_dist
            .sigma(Tensor::from_data(TensorData::new(eps, [n]), &self.device));
        let (b, sigma) = (b.shard(shard), shard.rows(sigma));
        let cond = b.cond();
        let x = b.y + b.noise * per_example::<4>(sigma.clone());
        let target = self.teacher.denoise(x.clone(), sigma.clone(), &cond);
        let r = Regression {
            x,
            sigma,
            class: b.class,
            w: b.w,
            target,
            latent: b.latent.clone(),
        };
        Ok(r.weighted_error(model, &self.device.clone().autodiff()))
    }
}

/// Distil the CFG teacher at `teacher` into a w-conditioned student in `opts.out`.
pub fn run_guided(
    teacher_run: &Path,
    cfg: &StudentConfig,
    opts: &StageOptions,
) -> Result<TrainSummary> {
    let src = Source::load(teacher_run, &[ModelKind::Teacher], "guided distillation")?;
    let data = src.data(opts.data.as_deref())?;
    let teacher = GuidedTeacher::from_checkpoint(&src.ck, &opts.device)?;
    let g = &cfg.guided;
    let spec = src.ck.header.spec.clone();
    let run = RunSpec {
        recipe: Recipe::Guided {
            grid: src.teacher_cfg.diffusion.grid,
            w: g.w,
        },
        spec: spec.clone(),
        config: StudentConfig::section_toml(g),
        lineage: src.lineage(),
        train: g.train.clone(),
    };
    // The student starts as the teacher (EMA weights); its w slot starts at zero.
    let init = |ad: &Device| src.ck.load_into("ema", spec.init(ad));
    let state = init_or_resume(
        &opts.out,
        opts.resume_mode(),
        &run,
        &opts.device,
        init,
        false,
    )?;
    let mut method = GuidedStep {
        teacher: &teacher,
        data: &data,
        cfg: g,
        device: opts.device.clone(),
    };
    let total = opts.steps.unwrap_or(g.train.steps);
    run_loop(&opts.out, &run, state, total, opts, &mut method)
}
