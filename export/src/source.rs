//! The model an export, check or benchmark works on: a run folder or checkpoint resolved (a
//! progressive run's round picked by its step count), its weights and its graph inputs.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use teacher::checkpoint::{Checkpoint, ModelKind};
use teacher::model::EdmModel;

use crate::capture::{Input, inputs_of};
use crate::error::{ExportError, Result};

/// Guidance-weight range used for random `w` inputs when a student records none.
pub const DEFAULT_W_RANGE: (f64, f64) = (0.0, 4.0);

/// A loaded fewstep model.
pub struct Source {
    /// The checkpoint file or run folder that was loaded (after picking a progressive round).
    pub path: PathBuf,
    pub checkpoint: Checkpoint,
    pub model: EdmModel,
    /// Graph inputs in order: (x, σ, class) and w for students.
    pub inputs: Vec<Input>,
}

impl Source {
    /// Load `--model RUN` (`steps` picks a progressive round) onto `device`.
    pub fn load(run: &Path, steps: Option<usize>, device: &Device) -> Result<Self> {
        let path = student::sample::resolve_model(run, steps.unwrap_or(0))?;
        let checkpoint = Checkpoint::load(&path)?;
        let model = checkpoint.inference_model(device)?;
        let inputs = inputs_of(checkpoint.header.kind);
        Ok(Self {
            path,
            checkpoint,
            model,
            inputs,
        })
    }

    pub fn kind(&self) -> ModelKind {
        self.checkpoint.header.kind
    }

    /// The trained guidance-weight range of a student (`w_range` in its checkpoint).
    pub fn w_range(&self) -> (f64, f64) {
        let range = self.checkpoint.header.extra.get("w_range");
        let get = |k: &str| range.and_then(|r| r.get(k)).and_then(|v| v.as_f64());
        match (get("min"), get("max")) {
            (Some(lo), Some(hi)) if lo <= hi => (lo, hi),
            _ => DEFAULT_W_RANGE,
        }
    }

    /// Metadata written into exported files (`metadata_props`).
    pub fn metadata(&self) -> Result<Vec<(String, String)>> {
        let h = &self.checkpoint.header;
        let spec = serde_json::to_string(&h.spec)
            .map_err(|e| ExportError::Invalid(format!("model spec is not serialisable: {e}")))?;
        let mut m = vec![
            (
                "fewstep.kind".into(),
                format!("{:?}", h.kind).to_lowercase(),
            ),
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
        if let Some(steps) = h.extra.get("steps") {
            m.push(("fewstep.sampling_steps".into(), steps.to_string()));
        }
        if h.kind != ModelKind::Teacher {
            let (lo, hi) = self.w_range();
            m.push(("fewstep.w_range".into(), format!("[{lo}, {hi}]")));
        }
        Ok(m)
    }
}
