//! The model an export, check or benchmark works on: a run folder or checkpoint resolved (a
//! progressive run's round picked by its step count), its weights and its graph inputs.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use teacher::checkpoint::Checkpoint;
use teacher::model::EdmModel;
use teacher::recipe::{ModelKind, SamplerPlan};

use crate::capture::{Input, MAX_UNROLL_STEPS, inputs_of};
use crate::error::{ExportError, Result};

/// Metadata key of an unrolled file's step count.
pub const UNROLLED_STEPS_KEY: &str = "fewstep.unrolled_steps";
/// Metadata key of an unrolled file's guidance weight (a teacher's constant).
pub const UNROLLED_GUIDANCE_KEY: &str = "fewstep.guidance";

/// Guidance-weight range used for random `w` inputs when a student records none.
pub const DEFAULT_W_RANGE: (f64, f64) = (0.0, 4.0);

/// A loaded fewstep model.
pub struct Source {
    /// The checkpoint file or run folder that was loaded (after picking a progressive round).
    pub path: PathBuf,
    pub checkpoint: Checkpoint,
    pub model: EdmModel,
    /// Graph inputs in order: (x, σ, class) and w for students; unrolled: noise, class, w
    /// (students), z_1 … (consistency).
    pub inputs: Vec<Input>,
    /// `Some`: the whole sampler is the graph (`--unroll-steps`), not one denoiser call.
    pub unroll: Option<Unroll>,
}

/// An unrolled sampler: what `fewstep sample --steps S --guidance W` runs, as one graph.
#[derive(Debug, Clone)]
pub struct Unroll {
    pub steps: usize,
    pub guidance: f64,
    pub plan: SamplerPlan,
}

impl Source {
    /// Load `--model RUN` (`steps` picks a progressive round) onto `device`.
    pub fn load(run: &Path, steps: Option<usize>, device: &Device) -> Result<Self> {
        let path = teacher::runs::resolve_model(run, steps.unwrap_or(0))?;
        let checkpoint = Checkpoint::load(&path)?;
        let model = checkpoint.inference_model(device)?;
        if matches!(model.net, teacher::model::Network::LatentAutoencoder(_)) {
            return Err(ExportError::Invalid(format!(
                "`{}` is a latent autoencoder: its decoder takes the latent z₀ as an input, which \
                 export does not build yet; export the base model (or its students) over latents instead",
                path.display()
            )));
        }
        let inputs = inputs_of(checkpoint.header.kind());
        Ok(Self {
            path,
            checkpoint,
            model,
            inputs,
            unroll: None,
        })
    }

    /// Load `--model RUN` for an unrolled export of its `steps`-step sampler at guidance `w`
    /// (teachers: a constant of the graph; students: the default of their `w` input).
    pub fn load_unrolled(run: &Path, steps: usize, w: f64, device: &Device) -> Result<Self> {
        if steps == 0 || steps > MAX_UNROLL_STEPS {
            return Err(ExportError::Invalid(format!(
                "`--unroll-steps {steps}`: unrolled samplers take 1 to {MAX_UNROLL_STEPS} steps"
            )));
        }
        let mut s = Self::load(run, Some(steps), device)?;
        if s.checkpoint.header.teacher_config()?.data.source == teacher::data::DataSource::Latents {
            return Err(ExportError::Invalid(format!(
                "`{}` samples latents: its unrolled serving graph (prior steps + decoder steps) is \
                 not built yet; export its denoiser without `--unroll-steps`",
                s.path.display()
            )));
        }
        let plan = s.checkpoint.header.recipe.plan(steps, None, w)?;
        let mut inputs = vec![Input::Noise, Input::Class];
        if s.kind() != ModelKind::Teacher {
            inputs.push(Input::W);
        }
        inputs.extend((1..plan.noises()).map(|k| Input::Renoise(k as u8)));
        s.inputs = inputs;
        s.unroll = Some(Unroll {
            steps,
            guidance: w,
            plan,
        });
        Ok(s)
    }

    /// The source an exported file was made from: `--model RUN` as exported, unrolled when the
    /// file's metadata says so (its step count and guidance come from the file).
    pub fn for_file(
        onnx: &Path,
        run: &Path,
        steps: Option<usize>,
        device: &Device,
    ) -> Result<Self> {
        let model = crate::onnx::read_model(onnx)?;
        let meta = |key: &str| {
            model
                .metadata_props
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.value.clone())
        };
        match meta(UNROLLED_STEPS_KEY) {
            None => Self::load(run, steps, device),
            Some(v) => {
                let bad = |what: &str| {
                    ExportError::onnx_file(
                        onnx,
                        format!("metadata `{what}` is not a number: re-export the file"),
                    )
                };
                let s: usize = v.parse().map_err(|_| bad(UNROLLED_STEPS_KEY))?;
                let w: f64 = meta(UNROLLED_GUIDANCE_KEY)
                    .unwrap_or_default()
                    .parse()
                    .map_err(|_| bad(UNROLLED_GUIDANCE_KEY))?;
                if steps.is_some_and(|given| given != s) {
                    return Err(ExportError::onnx_file(
                        onnx,
                        format!(
                            "is a {s}-step unrolled sampler, but `--steps` asks for another count: drop `--steps`"
                        ),
                    ));
                }
                Self::load_unrolled(run, s, w, device)
            }
        }
    }

    /// The graph inputs' names, comma-separated.
    pub fn input_names(&self) -> String {
        self.inputs
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn kind(&self) -> ModelKind {
        self.checkpoint.header.kind()
    }

    /// The trained guidance-weight range of a student (`w_range` in its checkpoint).
    pub fn w_range(&self) -> (f64, f64) {
        match self.checkpoint.header.recipe.w_range() {
            Some(r) if r.min <= r.max => (r.min, r.max),
            _ => DEFAULT_W_RANGE,
        }
    }

    /// Metadata written into exported files (`metadata_props`).
    pub fn metadata(&self) -> Result<Vec<(String, String)>> {
        let h = &self.checkpoint.header;
        let spec = serde_json::to_string(&h.spec)
            .map_err(|e| ExportError::Invalid(format!("model spec is not serialisable: {e}")))?;
        let mut m: Vec<(String, String)> = vec![
            ("fewstep.kind".into(), h.kind().name().into()),
            ("fewstep.source".into(), self.path.display().to_string()),
            ("fewstep.step".into(), h.step.to_string()),
            ("fewstep.spec".into(), spec),
            (
                "fewstep.inputs".into(),
                "x: noisy image [N,C,H,W]; sigma: noise level [N]; class: label [N] \
                 (num_classes = the null class); w: guidance weight [N] (students)"
                    .into(),
            ),
        ];
        if h.spec.shape.is_clip() {
            // Clips travel as their contiguous view: channel c, frame t is plane c·T + t.
            let t = h.spec.shape.frames;
            m.push((
                "fewstep.layout".into(),
                format!(
                    "clips: every [N,C,H,W] tensor here is [N, C·T, H, W] with T = {t} frames, plane \
                     c·{t} + t = channel c of frame t (reshape to [N, C, {t}, H, W])"
                ),
            ));
        }
        if let Some(u) = &self.unroll {
            m[4].1 = match self.kind() {
                ModelKind::Teacher => "noise: unit Gaussian [N,C,H,W] (x_0 = sigma_max·noise); class: label [N]".into(),
                _ => "noise: unit Gaussian [N,C,H,W] (x_0 = sigma_max·noise); class: label [N]; \
                      w: guidance weight [N]; renoise_k: unit Gaussian re-noising step k (consistency)"
                    .into(),
            };
            m.push((UNROLLED_STEPS_KEY.into(), u.steps.to_string()));
            m.push((UNROLLED_GUIDANCE_KEY.into(), u.guidance.to_string()));
            m.push(("fewstep.sampler".into(), u.plan.describe()));
            m.push(("fewstep.sigmas".into(), format!("{:?}", u.plan.sigmas())));
        }
        if let Some(steps) = h.recipe.fixed_steps() {
            m.push(("fewstep.sampling_steps".into(), steps.to_string()));
        }
        if h.kind() != ModelKind::Teacher {
            let (lo, hi) = self.w_range();
            m.push(("fewstep.w_range".into(), format!("[{lo}, {hi}]")));
        }
        Ok(m)
    }
}
