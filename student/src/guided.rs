//! Guided distillation (Meng et al. 2023, "On Distillation of Guided Diffusion Models", stage
//! one): a w-conditioned student learns the teacher's guided output D_w = D_u + w·(D_c − D_u), so
//! one evaluation per step replaces the cond + uncond pair.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use teacher::checkpoint::ModelKind;
use teacher::data::Dataset;
use teacher::edm::loss::{loss_weight_t, mean_per_example};
use teacher::edm::per_example;
use teacher::error::Result;
use teacher::model::EdmModel;
use teacher::rng::normals;
use teacher::train::{RunSpec, StepLoss, TrainSummary, init_or_resume, run_loop};

use crate::config::{GuidedConfig, StudentConfig};
use crate::guided_teacher::{DenoiseW, GuidedTeacher};
use crate::source::{Source, draw, onto, onto_int};

/// Per-example guided-distillation loss λ(σ)·mean((D_θ(x; σ, c, w) − target)²), where `target`
/// is the teacher's D_w(x; σ, c) computed without gradients (Meng et al. 2023, Eq. 6, with
/// EDM's weighting λ(σ) so the loss is uniform in the network's output space).
///
/// # Shapes
/// - x, target: `[n, c, h, w]`; sigma, class, w: `[n]` → `[n]`
pub fn guided_loss(
    student: &EdmModel,
    x: Tensor<4>,
    sigma: Tensor<1>,
    class: Tensor<1, Int>,
    w: Tensor<1>,
    target: Tensor<4>,
) -> Tensor<1> {
    let weight = loss_weight_t(sigma.clone(), student.sigma_data);
    let d = student.forward(x, sigma, class, Some(w));
    mean_per_example((d - target).square()) * weight
}

/// Options of a distillation command: the teacher's [`TrainOptions`] (`steps` is per round for
/// progressive distillation).
pub use teacher::train::TrainOptions as StageOptions;

struct GuidedStep<'a> {
    teacher: &'a GuidedTeacher,
    data: &'a Dataset,
    cfg: &'a GuidedConfig,
    device: Device,
}

impl StepLoss for GuidedStep<'_> {
    fn loss(
        &mut self,
        model: &EdmModel,
        _target: Option<&EdmModel>,
        step: u64,
    ) -> Result<Tensor<1>> {
        let t = &self.cfg.train;
        let mut b = draw(
            self.data,
            t.batch_size,
            &self.cfg.w,
            t.seed,
            step,
            &self.device,
        );
        let n = b.y.dims()[0];
        // σ ~ logNormal(P_mean, P_std), x = y + σ·noise.
        let eps = normals(&mut b.rng, n);
        let sigma = self
            .cfg
            .sigma_dist
            .sigma(Tensor::from_data(TensorData::new(eps, [n]), &self.device));
        let x = b.y + b.noise * per_example::<4>(sigma.clone());
        let target = self
            .teacher
            .denoise_w(x.clone(), sigma.clone(), b.class.clone(), b.w.clone());
        let ad = self.device.clone().autodiff();
        let class = onto_int(b.class, &ad);
        Ok(guided_loss(
            model,
            onto(x, &ad),
            onto(sigma, &ad),
            class,
            onto(b.w, &ad),
            onto(target, &ad),
        ))
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
    let mut extra = src.chain_extra();
    extra.insert(
        "w_range".into(),
        serde_json::to_value(g.w).expect("plain data"),
    );
    extra.insert("source".into(), teacher_run.display().to_string().into());
    let spec = src.ck.header.spec.clone();
    let run = RunSpec {
        kind: ModelKind::Guided,
        spec: spec.clone(),
        config: StudentConfig::section_toml(g),
        extra,
        train: g.train.clone(),
    };
    // The student starts as the teacher (EMA weights); its w slot starts at zero.
    let state = init_or_resume(
        &opts.out,
        opts.resume,
        &run,
        &opts.device,
        |ad| src.ck.load_into("ema", spec.init(ad)),
        false,
    )?;
    let mut stage = GuidedStep {
        teacher: &teacher,
        data: &data,
        cfg: g,
        device: opts.device.clone(),
    };
    run_loop(
        &opts.out,
        &run,
        state,
        opts.steps.unwrap_or(g.train.steps),
        opts.quiet,
        &mut stage,
    )
}
