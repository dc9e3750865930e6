//! Sampling any fewstep model with its own sampler: teachers with CFG (2 evaluations per step),
//! guided students with w as input (1), progressive students on their stored grid (Euler/DDIM),
//! consistency students with multistep consistency sampling.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use teacher::checkpoint::{Checkpoint, LATEST, ModelKind};
use teacher::edm::Cond;
use teacher::edm::sampler::{Sampled, Sampler, sample};
use teacher::error::{Error, Result};
use teacher::model::EdmModel;
use teacher::sample::{SampleSpec, Samples, guided_sample, renoise_for, run_batches};

use crate::config::WRange;
use crate::consistency::{multistep_sample, multistep_sigmas};
use crate::progressive::{available_rounds, round_dir};
use crate::source::Source;

/// Resolve `--model`: a run folder, a checkpoint file, or a progressive run folder whose round
/// with `steps` steps is picked.
pub fn resolve_model(path: &Path, steps: usize) -> Result<PathBuf> {
    if !path.exists() || path.is_file() || path.join(LATEST).exists() {
        return Ok(path.to_path_buf());
    }
    let rounds = available_rounds(path);
    if rounds.is_empty() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: "holds no checkpoint: pass a run folder written by `fewstep teacher train` or `fewstep student …`".into(),
        });
    }
    if !rounds.contains(&steps) {
        return Err(Error::Invalid(format!(
            "`{}` is a progressive run with {}-step students; ask for one of those with `--steps`",
            path.display(),
            rounds
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("-, ")
        )));
    }
    Ok(round_dir(path, steps))
}

/// What actually ran, for honest reporting.
pub struct Plan {
    pub kind: ModelKind,
    pub sampler: String,
}

/// How a checkpoint samples: its kind's sampler, σ grid and guidance, resolved and validated
/// once; [`run_plan`] runs it on tensors (any device — the capture device records it as one
/// graph for `export onnx --unroll-steps`).
#[derive(Debug, Clone)]
pub struct SamplerPlan {
    pub kind: ModelKind,
    /// σ_0 > … (ending in 0 for ODE samplers; multistep consistency: the σ of each step).
    pub sigmas: Vec<f64>,
    pub sampler: Sampler,
    /// Teachers: the CFG weight (a constant); students take w as their extra input instead.
    pub guidance: f64,
    /// σ_min of the consistency boundary (re-noising).
    pub sigma_min: f64,
    pub description: String,
}

impl SamplerPlan {
    /// Unit-Gaussian noises a batch needs: the initial one, plus one per re-noising step.
    pub fn noises(&self) -> usize {
        match self.kind {
            ModelKind::Consistency => self.sigmas.len(),
            _ => 1,
        }
    }

    /// Network evaluations per image.
    pub fn nfe(&self, steps: usize) -> usize {
        match self.kind {
            ModelKind::Teacher if self.guidance != 0.0 && self.guidance != 1.0 => {
                2 * self.sampler.calls(steps)
            }
            ModelKind::Consistency => self.sigmas.len(),
            _ => self.sampler.calls(steps),
        }
    }
}

/// Resolve and validate how `ck` samples `spec.steps` steps at `spec.guidance`.
pub fn plan_for(ck: &Checkpoint, spec: &SampleSpec) -> Result<SamplerPlan> {
    let kind = ck.header.kind;
    let grid = Source::teacher_config_of(ck)?.diffusion.grid;
    if kind != ModelKind::Teacher {
        let w: WRange =
            serde_json::from_value(ck.header.extra.get("w_range").cloned().unwrap_or_default())
                .map_err(|_| {
                    Error::Invalid("the student checkpoint records no `w_range`".into())
                })?;
        if !w.contains(spec.guidance) {
            return Err(Error::Invalid(format!(
                "`--guidance {}` is outside the range this student was trained on, [{}, {}]",
                spec.guidance, w.min, w.max
            )));
        }
    }
    let plan = |sigmas, sampler, description: String| SamplerPlan {
        kind,
        sigmas,
        sampler,
        guidance: spec.guidance,
        sigma_min: grid.sigma_min,
        description,
    };
    Ok(match kind {
        ModelKind::Teacher => plan(
            grid.sampling(spec.steps),
            spec.sampler,
            format!("{:?} + CFG", spec.sampler),
        ),
        ModelKind::Guided => plan(
            grid.sampling(spec.steps),
            spec.sampler,
            format!("{:?}, w as input", spec.sampler),
        ),
        ModelKind::Progressive => {
            let steps = ck
                .header
                .extra
                .get("steps")
                .and_then(|v| v.as_u64())
                .unwrap_or(0) as usize;
            if steps != spec.steps {
                return Err(Error::Invalid(format!(
                    "this progressive student takes {steps} steps; `--steps {}` needs the round with that many",
                    spec.steps
                )));
            }
            let sigmas: Vec<f64> =
                serde_json::from_value(ck.header.extra.get("sigmas").cloned().unwrap_or_default())
                    .map_err(|_| {
                        Error::Invalid("the progressive checkpoint records no σ grid".into())
                    })?;
            plan(
                sigmas,
                Sampler::Euler,
                "Euler (DDIM) on its distilled grid, w as input".into(),
            )
        }
        ModelKind::Consistency => plan(
            multistep_sigmas(&grid, spec.steps),
            Sampler::Euler,
            "multistep consistency, w as input".into(),
        ),
    })
}

/// One batch along `plan`: `noises[0]` is the initial unit noise, `noises[k]` the re-noising
/// noise of step k (consistency); students read w from `cond.extra`.
pub fn run_plan(
    model: &EdmModel,
    plan: &SamplerPlan,
    noises: &[Tensor<4>],
    cond: &Cond,
) -> Sampled {
    match plan.kind {
        ModelKind::Teacher => guided_sample(
            model,
            noises[0].clone(),
            &plan.sigmas,
            plan.sampler,
            plan.guidance,
            cond,
        ),
        ModelKind::Guided | ModelKind::Progressive => {
            sample(model, noises[0].clone(), &plan.sigmas, plan.sampler, cond)
        }
        ModelKind::Consistency => {
            multistep_sample(model, noises, &plan.sigmas, plan.sigma_min, cond)
        }
    }
}

/// Sample `spec` from the checkpoint `ck` with the sampler its kind needs.
pub fn sample_any(ck: &Checkpoint, spec: &SampleSpec, device: &Device) -> Result<(Samples, Plan)> {
    let plan = plan_for(ck, spec)?;
    let model = ck.inference_model(device)?;
    let shape = model.unet_shape();
    let len = shape.len();
    let s = run_batches(
        spec,
        shape,
        model.num_classes,
        device,
        |noise, cond, range| {
            let n = range.len();
            let dims = [n, shape.planes(), shape.height, shape.width];
            let mut noises = vec![noise];
            for k in 1..plan.noises() {
                let z = renoise_for(range.start, n, len, spec.seed, k);
                noises.push(Tensor::from_data(TensorData::new(z, dims), device));
            }
            let cond = match plan.kind {
                ModelKind::Teacher => cond.clone(),
                _ => Cond {
                    class: cond.class.clone(),
                    extra: Some(Tensor::full([n], spec.guidance, device)),
                },
            };
            run_plan(&model, &plan, &noises, &cond)
        },
    );
    Ok((
        s,
        Plan {
            kind: plan.kind,
            sampler: plan.description,
        },
    ))
}
