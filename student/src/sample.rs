//! Sampling any fewstep model with its own sampler: teachers with CFG (2 evaluations per step),
//! guided students with w as input (1), progressive students on their stored grid (Euler/DDIM),
//! consistency students with multistep consistency sampling.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use teacher::checkpoint::{Checkpoint, LATEST, ModelKind};
use teacher::edm::Cond;
use teacher::edm::sampler::{Sampler, sample};
use teacher::error::{Error, Result};
use teacher::sample::{SampleSpec, Samples, renoise_for, run_batches, sample_teacher};

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

/// Sample `spec` from the checkpoint `ck` with the sampler its kind needs.
pub fn sample_any(ck: &Checkpoint, spec: &SampleSpec, device: &Device) -> Result<(Samples, Plan)> {
    let kind = ck.header.kind;
    let model = ck.inference_model(device)?;
    let src_cfg = Source::teacher_config_of(ck)?;
    let grid = src_cfg.diffusion.grid;
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
    let with_w = |cond: &Cond| Cond {
        class: cond.class.clone(),
        extra: Some(Tensor::full([cond.class.dims()[0]], spec.guidance, device)),
    };
    let shape = model.unet_shape();
    let classes = model.num_classes;
    Ok(match kind {
        ModelKind::Teacher => {
            let s = sample_teacher(&model, &grid, spec, device);
            (
                s,
                Plan {
                    kind,
                    sampler: format!("{:?} + CFG", spec.sampler),
                },
            )
        }
        ModelKind::Guided => {
            let sigmas = grid.sampling(spec.steps);
            let s = run_batches(spec, shape, classes, device, |noise, cond, _| {
                sample(&model, noise, &sigmas, spec.sampler, &with_w(cond))
            });
            (
                s,
                Plan {
                    kind,
                    sampler: format!("{:?}, w as input", spec.sampler),
                },
            )
        }
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
            let s = run_batches(spec, shape, classes, device, |noise, cond, _| {
                sample(&model, noise, &sigmas, Sampler::Euler, &with_w(cond))
            });
            (
                s,
                Plan {
                    kind,
                    sampler: "Euler (DDIM) on its distilled grid, w as input".into(),
                },
            )
        }
        ModelKind::Consistency => {
            let sigmas = multistep_sigmas(&grid, spec.steps);
            let len = shape.channels * shape.height * shape.width;
            let s = run_batches(spec, shape, classes, device, |noise, cond, range| {
                let n = range.len();
                let dims = [n, shape.channels, shape.height, shape.width];
                let mut noises = vec![noise];
                for k in 1..sigmas.len() {
                    let z = renoise_for(range.start, n, len, spec.seed, k);
                    noises.push(Tensor::from_data(TensorData::new(z, dims), device));
                }
                multistep_sample(&model, &noises, &sigmas, grid.sigma_min, &with_w(cond))
            });
            (
                s,
                Plan {
                    kind,
                    sampler: "multistep consistency, w as input".into(),
                },
            )
        }
    })
}
