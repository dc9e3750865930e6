//! `pipeline.toml`: the whole chain's config, one section per stage, each defaulting to the quick
//! digits chain that `fewstep pipeline` runs with no config.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use student::config::{ConsistencyConfig, GuidedConfig, ProgressiveConfig, StudentConfig};
use teacher::config::TeacherConfig;
use teacher::model::NetworkConfig;
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
}

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

/// The comparison report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalStage {
    /// Samples per model and step count.
    pub n: usize,
    /// Guidance weight of every sample set.
    pub guidance: f64,
    pub seed: u64,
    /// Teacher step counts (guided Euler, 2 NFE per step).
    pub teacher_steps: Vec<usize>,
    /// Student step counts (progressive rounds, consistency, guided).
    pub student_steps: Vec<usize>,
    /// Guidance weights of the teacher's FID-vs-w sweep (empty: none).
    pub sweep_guidance: Vec<f64>,
    pub sweep_steps: usize,
    /// NFE budgets at which the teacher's Euler, Heun and DPM-Solver++(2M) are compared in the
    /// report (empty: no comparison).
    pub solver_nfe: Vec<usize>,
    /// Held-out real images for the real-vs-real floor (default: the test split at n).
    pub real: Option<String>,
}

impl Default for EvalStage {
    fn default() -> Self {
        Self {
            n: 500,
            guidance: 2.0,
            seed: 0,
            teacher_steps: vec![4, 50],
            student_steps: vec![1, 2, 4],
            sweep_guidance: vec![],
            sweep_steps: 10,
            solver_nfe: vec![8, 20],
            real: None,
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

impl PipelineConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read pipeline config `{}`", path.display()))?;
        let cfg: Self = toml::from_str(&text).with_context(|| {
            format!(
                "pipeline config `{}`: sections are [teacher.*], [guided], [progressive], [consistency], [features], [eval], [export]",
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

    pub fn validate(&self) -> Result<()> {
        self.teacher.validate()?;
        self.students().validate()?;
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
        if self.eval.n == 0 {
            bail!("eval.n = 0: the report needs at least one sample per model");
        }
        Ok(())
    }
}
