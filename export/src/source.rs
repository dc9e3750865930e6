//! The model an export, check or benchmark works on: a run folder or checkpoint resolved (a
//! progressive run's round picked by its step count), its weights and its graph inputs.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use teacher::checkpoint::Checkpoint;
use teacher::model::EdmModel;
use teacher::recipe::{ModelKind, SamplerPlan};

use teacher::latent::source::{DecoderChoice, Decoding, decoding_of};

use crate::capture::{Input, MAX_DECODER_NOISES, MAX_UNROLL_STEPS, Shapes, inputs_of};
use crate::error::{ExportError, Result};

/// Metadata key of an unrolled file's step count.
pub const UNROLLED_STEPS_KEY: &str = "fewstep.unrolled_steps";
/// Metadata key of an unrolled file's guidance weight (a teacher's constant).
pub const UNROLLED_GUIDANCE_KEY: &str = "fewstep.guidance";
/// Metadata key of an unrolled latent chain's decoder run.
pub const DECODER_KEY: &str = "fewstep.decoder";
/// Metadata key of an unrolled latent chain's decoder steps.
pub const DECODER_STEPS_KEY: &str = "fewstep.decoder_steps";

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
    /// A model of latents: the decoder that turns its samples into images, in the same graph.
    pub decoding: Option<Decoding>,
}

impl Unroll {
    /// Network evaluations per image of the whole graph (the decoder's included).
    pub fn nfe(&self) -> usize {
        self.plan.nfe() + self.decoding.as_ref().map_or(0, Decoding::nfe)
    }

    /// What the graph runs, for reports.
    pub fn describe(&self) -> String {
        match &self.decoding {
            None => self.plan.describe(),
            Some(d) => format!(
                "{}, then the decoder `{}` {} steps of {}",
                self.plan.describe(),
                d.run().display(),
                d.steps(),
                d.describe()
            ),
        }
    }

    /// The decoder as `fewstep sample --decoder RUN --decoder-steps K` names it.
    pub fn decoder_choice(&self) -> Option<DecoderChoice> {
        self.decoding.as_ref().map(|d| DecoderChoice {
            run: Some(d.run().to_path_buf()),
            steps: Some(d.steps()),
        })
    }
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
    /// (teachers: a constant of the graph; students: the default of their `w` input). A model of
    /// latents is followed by its decoder (`decoder` picks another run or step count).
    pub fn load_unrolled(
        run: &Path,
        steps: usize,
        w: f64,
        decoder: Option<&DecoderChoice>,
        device: &Device,
    ) -> Result<Self> {
        if steps == 0 || steps > MAX_UNROLL_STEPS {
            return Err(ExportError::Invalid(format!(
                "`--unroll-steps {steps}`: unrolled samplers take 1 to {MAX_UNROLL_STEPS} steps"
            )));
        }
        let mut s = Self::load(run, Some(steps), device)?;
        let decoding = decoding_of(&s.checkpoint.header, decoder, device)?;
        if decoder.is_some() && decoding.is_none() {
            return Err(ExportError::Invalid(format!(
                "`--decoder`: `{}` samples images, not latents; drop `--decoder`/`--decoder-steps`",
                s.path.display()
            )));
        }
        let plan = s.checkpoint.header.recipe.plan(steps, None, w)?;
        let mut inputs = vec![Input::Noise, Input::Class];
        if s.kind() != ModelKind::Teacher {
            inputs.push(Input::W);
        }
        inputs.extend((1..plan.noises()).map(|k| Input::Renoise(k as u8)));
        if let Some(d) = &decoding {
            if s.model.example_shape() != s.model.image_shape() {
                return Err(ExportError::Invalid(format!(
                    "`{}` is a multi-resolution model of latents: its serving graph is not built; \
                     export its denoiser without `--unroll-steps`",
                    s.path.display()
                )));
            }
            let n = d.plan().noises();
            if n > MAX_DECODER_NOISES {
                return Err(ExportError::Invalid(format!(
                    "the decoder `{}` at {} steps takes {n} unit noises; an unrolled graph takes \
                     at most {MAX_DECODER_NOISES}: pass fewer `--decoder-steps`",
                    d.run().display(),
                    d.steps()
                )));
            }
            inputs.push(Input::LatentNoise);
            inputs.extend((0..n).map(|k| Input::DecoderNoise(k as u8)));
        }
        s.inputs = inputs;
        s.unroll = Some(Unroll {
            steps,
            guidance: w,
            plan,
            decoding,
        });
        Ok(s)
    }

    /// The shapes of the graph's tensors (an unrolled latent chain ends in its decoder's images).
    pub fn shapes(&self) -> Shapes {
        let decoding = self.unroll.as_ref().and_then(|u| u.decoding.as_ref());
        Shapes::decoded(&self.model, decoding)
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
                let decoder = match (meta(DECODER_KEY), meta(DECODER_STEPS_KEY)) {
                    (Some(run), Some(k)) => Some(DecoderChoice {
                        run: Some(PathBuf::from(run)),
                        steps: Some(k.parse().map_err(|_| bad(DECODER_STEPS_KEY))?),
                    }),
                    _ => None,
                };
                Self::load_unrolled(run, s, w, decoder.as_ref(), device)
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
            if let Some(d) = &u.decoding {
                m[4].1 += "; latent_noise: the channel's unit Gaussian ε [N,C_z,H_z,W_z] \
                           (z_0 = sample + sigma_0·ε); decoder_noise_k: the decoder sampler's unit \
                           Gaussian k [N,C,H,W] (k = 0: its initial noise)";
                m.push((DECODER_KEY.into(), d.run().display().to_string()));
                m.push((DECODER_STEPS_KEY.into(), d.steps().to_string()));
                m.push(("fewstep.sigma_0".into(), d.sigma0().to_string()));
            }
            m.push((UNROLLED_STEPS_KEY.into(), u.steps.to_string()));
            m.push((UNROLLED_GUIDANCE_KEY.into(), u.guidance.to_string()));
            m.push(("fewstep.sampler".into(), u.describe()));
            m.push(("fewstep.nfe".into(), u.nfe().to_string()));
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
