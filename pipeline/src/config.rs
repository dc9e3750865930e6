//! `pipeline.toml`: the whole chain's config, one section per stage, each defaulting to the quick
//! digits chain that `fewstep pipeline` runs with no config.

use std::path::Path;

use anyhow::{Context, Result, bail};
use eval::metrics::IntervalConfig;
use serde::{Deserialize, Serialize};
use student::config::{ConsistencyConfig, GuidedConfig, ProgressiveConfig, StudentConfig};
use teacher::config::TeacherConfig;
use teacher::model::NetworkConfig;
use teacher::recipe::ModelKind;
use teacher::unet::UNetConfig;

/// `pipeline.toml`: one section per stage. A section left out takes the pipeline's quick
/// digits default (configs/pipeline.toml, ≤ 15 minutes on 2 CPU cores for the whole chain); a
/// section given takes each missing key from that stage's own defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The teacher (`[teacher.data]`, `[teacher.model]`, `[teacher.diffusion]`, `[teacher.train]`).
    #[serde(default = "quick::teacher")]
    pub teacher: TeacherConfig,
    #[serde(default = "quick::guided")]
    pub guided: GuidedConfig,
    #[serde(default = "quick::progressive")]
    pub progressive: ProgressiveConfig,
    #[serde(default = "quick::consistency")]
    pub consistency: ConsistencyConfig,
    #[serde(default = "quick::features")]
    pub features: FeaturesStage,
    #[serde(default)]
    pub eval: EvalStage,
    #[serde(default)]
    pub export: ExportStage,
    /// A latent chain (Unified Latents, issue #17): the stage-1 autoencoder the teacher's
    /// latents come from and the decoder distilled for serving; None: a chain over pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent: Option<LatentStages>,
}

/// `[latent]`: the stages a chain over latents adds. Stage 1 (`[latent.autoencoder]`: encoder,
/// prior and decoder trained jointly) runs first; the teacher is the base model over its frozen
/// latents (`[teacher.data] source = "latents"` with `[teacher.data.latents] autoencoder =
/// "autoencoder"`: this stage's run, relative to the run folder); after the students, the
/// decoder is distilled by consistency (`[latent.decoder]`) to `decoder_steps` steps, with which
/// the export serves the students and the report measures them. The teacher rows decode with
/// the autoencoder's own decoder at `teacher.data.latents.decoder_steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentStages {
    /// Stage 1: a `[model] kind = "latent_autoencoder"` config on the images.
    pub autoencoder: TeacherConfig,
    /// Consistency distillation of the autoencoder's decoder.
    #[serde(default)]
    pub decoder: ConsistencyConfig,
    /// Steps of the distilled decoder behind every student (default 1).
    #[serde(default = "one")]
    pub decoder_steps: usize,
    /// Test images of the report's reconstruction PSNR/FID and rate (default 1000).
    #[serde(default = "thousand")]
    pub measure_n: usize,
}

fn one() -> usize {
    1
}

fn thousand() -> usize {
    1000
}

/// The `[teacher.data.latents] autoencoder` of a latent chain: the autoencoder stage's run.
pub const LATENT_AUTOENCODER_RUN: &str = "autoencoder";

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            teacher: quick::teacher(),
            guided: quick::guided(),
            progressive: quick::progressive(),
            consistency: quick::consistency(),
            features: quick::features(),
            eval: EvalStage::default(),
            export: ExportStage::default(),
            latent: None,
        }
    }
}

/// The quick digits chain `fewstep pipeline` runs with no config: a 16-channel U-Net (8×8
/// digits need no more), and step counts that finish the whole chain in ≤ 15 minutes on 2 cores.
mod quick {
    use super::*;

    pub fn teacher() -> TeacherConfig {
        let unet = UNetConfig {
            model_channels: 16,
            num_blocks: 1,
            ..UNetConfig::default()
        };
        TeacherConfig {
            model: NetworkConfig::UNet(unet),
            ..TeacherConfig::default()
        }
    }

    fn short(t: &mut teacher::config::TrainConfig, steps: u64) {
        t.steps = steps;
        t.lr = 5e-4;
    }

    pub fn guided() -> GuidedConfig {
        let mut g = GuidedConfig::default();
        short(&mut g.train, 400);
        g
    }

    pub fn progressive() -> ProgressiveConfig {
        let mut p = ProgressiveConfig {
            start_steps: 16,
            ..Default::default()
        };
        short(&mut p.train, 150);
        p
    }

    pub fn consistency() -> ConsistencyConfig {
        let mut c = ConsistencyConfig::default();
        short(&mut c.train, 400);
        c
    }

    pub fn features() -> FeaturesStage {
        FeaturesStage { steps: 1000 }
    }
}

/// The feature network trained on the teacher's dataset (LeNet for images, the 3D-conv clip
/// network for clips).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturesStage {
    /// Optimizer steps of the classifier.
    pub steps: u64,
}

impl Default for FeaturesStage {
    fn default() -> Self {
        Self { steps: 3000 }
    }
}

/// The headline a report quotes, declared before anything is measured: which student at which
/// step count (at the report's declared w, `eval.guidance`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadlineDecl {
    /// Kind of the student run: guided, progressive or consistency.
    pub student: ModelKind,
    /// Its sampling steps.
    pub steps: usize,
}

/// The verdict protocol of a report (issue #15): intervals, the declared headline and its
/// target, the sweeps' and memorisation's sample counts, and the timing pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerdictConfig {
    /// The declared headline (None: the report has no headline).
    pub headline: Option<HeadlineDecl>,
    /// The headline ratio target: met only if the ratio interval's upper end is ≤ this.
    pub target_ratio: f64,
    /// Samples per point of every guidance sweep and of the teacher's NFE curve (each set's
    /// first images are the main set's, so the declared-w point costs nothing).
    pub sweep_n: usize,
    /// Samples per model in the nearest-neighbour memorisation check (0: none).
    pub memorisation_n: usize,
    /// Training set of the memorisation check (default: the teacher's training split).
    pub train: Option<String>,
    /// Bootstrap resamples, seeds and KID's subsets.
    pub intervals: IntervalConfig,
    /// Batch of the throughput figures of the timing pass.
    pub timing_batch: usize,
    /// Timed runs per setting (after one warm-up).
    pub timing_reps: usize,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        Self {
            headline: Some(HeadlineDecl {
                student: ModelKind::Progressive,
                steps: 4,
            }),
            target_ratio: 1.05,
            sweep_n: 500,
            memorisation_n: 500,
            train: None,
            intervals: IntervalConfig::default(),
            timing_batch: 64,
            timing_reps: 3,
        }
    }
}

/// The comparison report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalStage {
    /// Samples per model and step count.
    pub n: usize,
    /// The declared guidance weight: every model of the main table and the headline.
    pub guidance: f64,
    pub seed: u64,
    /// Teacher step counts (guided Euler, 2 NFE per step).
    pub teacher_steps: Vec<usize>,
    /// Student step counts (progressive rounds, consistency, guided).
    pub student_steps: Vec<usize>,
    /// Guidance weights of the FID-vs-w sweeps (empty: none): the teacher at `sweep_steps`,
    /// every student at the headline's steps.
    pub sweep_guidance: Vec<f64>,
    pub sweep_steps: usize,
    /// NFE budgets of the teacher's quality-vs-NFE curve with Euler, Heun and
    /// DPM-Solver++(2M) (empty: none), behind the equal-quality speedup.
    pub solver_nfe: Vec<usize>,
    /// Held-out real images for the real-vs-real floor (default: the train split at n).
    pub real: Option<String>,
    /// Intervals, declared headline, sweeps' n, memorisation and timing.
    pub verdict: VerdictConfig,
    /// Models of other runs scored beside the chain's (`[[eval.baselines]]`), each compared
    /// with the chain's teacher-50 in the headline as its role says.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<Baseline>,
    /// Other reports' sample caches to read sets from before sampling them (content-keyed:
    /// the checkpoint's hash, steps, solver, w, seed, decoder), e.g. a baseline's own
    /// pipeline's `runs/mnist/report-samples`; never written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reuse_samples: Vec<std::path::PathBuf>,
}

/// A teacher from another run in the report's main table, sampled and scored like the chain's
/// models at the declared w (timed, memorisation-checked; no sweep, no fidelity: it is not
/// distilled from the chain's teacher).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Its name in the table and its files: letters, digits and `-`.
    pub name: String,
    /// The teacher's run folder (or checkpoint file).
    pub run: std::path::PathBuf,
    /// Its sampling steps (its own default sampler); default 50.
    #[serde(default = "fifty")]
    pub steps: usize,
    pub role: BaselineRole,
}

fn fifty() -> usize {
    50
}

/// What a baseline stands for; the headline reports the chain's teacher-50 FID ÷ its FID
/// under the role's key, with the interval of the ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineRole {
    /// The pixel route beside a latent chain (issue #17): `fid_latent_vs_pixel_teacher50`.
    PixelRoute,
    /// A plain U-Net trained for the same wall clock on the same data beside a NestedUNet
    /// chain (issue #18): `fid_nested_vs_unet_equal_compute`.
    EqualCompute,
    /// Any other comparison: in the table only.
    Other,
}

impl BaselineRole {
    /// The role's name as configs and `results.json` write it.
    pub fn key(self) -> &'static str {
        match self {
            BaselineRole::PixelRoute => "pixel_route",
            BaselineRole::EqualCompute => "equal_compute",
            BaselineRole::Other => "other",
        }
    }
}

impl Baseline {
    pub fn validate(&self) -> Result<()> {
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '-';
        if self.name.is_empty() || !self.name.chars().all(ok) {
            bail!(
                "eval.baselines name = {:?}: use letters, digits and `-` (it names files), e.g. \"unet-equal-compute\"",
                self.name
            );
        }
        if self.steps == 0 {
            bail!("eval.baselines `{}`: steps = 0; give at least 1", self.name);
        }
        let kinds = ["teacher", "guided", "progressive", "consistency"];
        if kinds.contains(&self.name.as_str()) {
            bail!(
                "eval.baselines name = \"{}\" is a model kind of the chain's own rows: name the \
                 baseline for what it is, e.g. \"pixel-teacher\"",
                self.name
            );
        }
        Ok(())
    }
}

impl Default for EvalStage {
    fn default() -> Self {
        Self {
            n: 500,
            guidance: 2.0,
            seed: 0,
            teacher_steps: vec![4, 50],
            student_steps: vec![1, 2, 4],
            sweep_guidance: vec![0.5, 1.0, 1.5, 2.0, 3.0],
            sweep_steps: 50,
            solver_nfe: vec![4, 8, 16, 32, 64, 100],
            real: None,
            verdict: VerdictConfig::default(),
            baselines: Vec::new(),
            reuse_samples: Vec::new(),
        }
    }
}

/// Serving artefacts of the shipped student (the 4-step progressive round, or the step count
/// given): ONNX + parity check, a TensorRT engine where a TensorRT library is found (else the
/// command that builds it on the serving host), and a Triton model repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportStage {
    /// Step count of the progressive round to ship.
    pub steps: usize,
    /// Batch size of the parity check.
    pub check_batch: usize,
    /// TensorRT optimisation profile over the batch axis, MIN:OPT:MAX.
    pub engine_batch: String,
    /// Guidance weight the unrolled sampler is checked at (its w stays an input).
    pub guidance: f64,
}

impl Default for ExportStage {
    fn default() -> Self {
        Self {
            steps: 4,
            check_batch: 8,
            engine_batch: "1:8:64".into(),
            guidance: 2.0,
        }
    }
}

impl VerdictConfig {
    pub fn validate(&self) -> Result<()> {
        if self.sweep_n < 2 {
            bail!(
                "eval.verdict.sweep_n = {}: sweeps need at least 2 samples per point",
                self.sweep_n
            );
        }
        if self.memorisation_n == 1 {
            bail!("eval.verdict.memorisation_n = 1: give 0 (no check) or at least 2");
        }
        if self.intervals.bootstrap < 2 {
            bail!(
                "eval.verdict.intervals.bootstrap = {}: give at least 2 resamples (200 is the default)",
                self.intervals.bootstrap
            );
        }
        if self.timing_batch == 0 {
            bail!("eval.verdict.timing_batch = 0: time at least one sample per batch");
        }
        if let Some(h) = self.headline
            && (h.student == ModelKind::Teacher || h.steps == 0)
        {
            bail!(
                "eval.verdict.headline: name a student kind (guided, progressive, consistency) and steps ≥ 1"
            );
        }
        if !(self.target_ratio.is_finite() && self.target_ratio > 0.0) {
            bail!(
                "eval.verdict.target_ratio = {}: give a positive ratio such as 1.05",
                self.target_ratio
            );
        }
        Ok(())
    }
}

impl PipelineConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read pipeline config `{}`", path.display()))?;
        let cfg: Self = toml::from_str(&text).with_context(|| {
            format!(
                "pipeline config `{}`: sections are [teacher.*], [guided], [progressive], [consistency], [features], [eval], [export], [latent.*]",
                path.display()
            )
        })?;
        cfg.validate()
            .with_context(|| format!("pipeline config `{}`", path.display()))?;
        Ok(cfg)
    }

    pub fn students(&self) -> StudentConfig {
        StudentConfig {
            guided: self.guided.clone(),
            progressive: self.progressive.clone(),
            consistency: self.consistency.clone(),
        }
    }

    /// The students' settings with the decoder's distillation as the consistency one.
    pub fn decoder_students(&self) -> Option<StudentConfig> {
        let l = self.latent.as_ref()?;
        Some(StudentConfig {
            consistency: l.decoder.clone(),
            ..self.students()
        })
    }

    /// The data of the chain's images: the teacher's, or in a latent chain the autoencoder's
    /// (the features, the report's reference and the memorisation check read images).
    pub fn image_data(&self) -> &teacher::data::DataConfig {
        match &self.latent {
            Some(l) => &l.autoencoder.data,
            None => &self.teacher.data,
        }
    }

    /// The teacher config as the run in `run` trains it: a latent chain's `[teacher.data.latents]`
    /// pointed at `run`'s autoencoder stage (an absolute path: every model distilled from the
    /// teacher decodes through it, from wherever it is sampled).
    pub fn teacher_in(&self, run: &Path) -> TeacherConfig {
        let mut t = self.teacher.clone();
        if self.latent.is_some()
            && let Some(l) = t.data.latents.as_mut()
        {
            let run = std::path::absolute(run).unwrap_or_else(|_| run.to_path_buf());
            l.autoencoder = run.join(LATENT_AUTOENCODER_RUN);
        }
        t
    }

    /// A latent chain's checks: stage 1 is an autoencoder, the teacher reads its latents, and
    /// neither the autoencoder nor the decoder is named elsewhere.
    fn validate_latent(&self) -> Result<()> {
        let over_latents = self.teacher.data.source == teacher::data::DataSource::Latents;
        let Some(l) = &self.latent else {
            if over_latents {
                bail!(
                    "[teacher.data] source = \"latents\" in a pipeline needs a [latent.autoencoder] \
                     section (the chain trains its own stage 1): add one, or train the base model \
                     with `fewstep teacher train`"
                );
            }
            return Ok(());
        };
        if !matches!(l.autoencoder.model, NetworkConfig::LatentAutoencoder(_)) {
            bail!(
                "[latent.autoencoder.model]: give kind = \"latent_autoencoder\" (Unified Latents' stage 1)"
            );
        }
        let named = self.teacher.data.latents.as_ref();
        if !over_latents || named.is_none_or(|s| s.autoencoder != Path::new(LATENT_AUTOENCODER_RUN))
        {
            bail!(
                "a pipeline with [latent] trains its teacher on the autoencoder stage's latents: \
                 give [teacher.data] source = \"latents\" and [teacher.data.latents] autoencoder = \
                 \"{LATENT_AUTOENCODER_RUN}\""
            );
        }
        if named.is_some_and(|s| s.decoder.is_some()) {
            bail!(
                "[teacher.data.latents] decoder: a pipeline distils its own decoder ([latent.decoder]); \
                 leave `decoder` out"
            );
        }
        if l.decoder_steps == 0 {
            bail!("latent.decoder_steps = 0: the distilled decoder takes at least 1 step");
        }
        if l.measure_n < 2 {
            bail!(
                "latent.measure_n = {}: measure at least 2 test images",
                l.measure_n
            );
        }
        l.autoencoder.validate()?;
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        self.validate_latent()?;
        self.teacher.validate()?;
        self.students().validate()?;
        if let Some(d) = self.decoder_students() {
            d.validate()?;
        }
        let start = self.progressive.start_steps;
        if !start.is_power_of_two()
            || self.export.steps > start
            || !self.export.steps.is_power_of_two()
        {
            bail!(
                "export.steps = {} must be a power of two ≤ progressive.start_steps ({start}): it names the progressive round to ship",
                self.export.steps
            );
        }
        self.export
            .engine_batch
            .parse::<export::engine::BatchProfile>()
            .map_err(|e| anyhow::anyhow!("export.engine_batch: {e}"))?;
        if self.eval.n < 2 {
            bail!(
                "eval.n = {}: the report needs at least 2 samples per model (a covariance)",
                self.eval.n
            );
        }
        self.eval.verdict.validate()?;
        for (i, b) in self.eval.baselines.iter().enumerate() {
            b.validate()?;
            let earlier = &self.eval.baselines[..i];
            if earlier.iter().any(|e| e.name == b.name) {
                bail!(
                    "eval.baselines: two are named `{}`; names must differ",
                    b.name
                );
            }
            if b.role != BaselineRole::Other && earlier.iter().any(|e| e.role == b.role) {
                bail!(
                    "eval.baselines `{}`: another baseline already has role {:?}, which the \
                     headline reports once; give one of them role = \"other\"",
                    b.name,
                    b.role
                );
            }
        }
        Ok(())
    }
}
