//! The parity check: an exported file run by tract against burn's forward pass on the same
//! seeded random inputs; the max absolute difference must stay under the tolerance.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::error::{ExportError, Result};
use crate::inputs::Batch;
use crate::npy::{NpyData, write_npy};
use crate::onnx::{declared_outputs, read_model};
use crate::precision::Precision;
use crate::report::OpReport;
use crate::runtime::{TractPlan, match_inputs};
use crate::source::Source;

/// Settings of one check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Examples per run.
    pub batch: usize,
    /// Seed of the random inputs.
    pub seed: u64,
    /// Largest max-abs error that passes; `None` takes the file's precision's
    /// ([`Precision::tolerance`]: 1e-4 for fp32, 1e-2 for fp16).
    pub tolerance: Option<f64>,
    /// Folder for the inputs and burn's outputs as `.npy`, named after the graph's values.
    pub save_io: Option<PathBuf>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            batch: 4,
            seed: 0,
            tolerance: None,
            save_io: None,
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub path: PathBuf,
    pub batch: usize,
    /// max |tract − burn| over every output element.
    pub max_abs_err: f64,
    /// max |burn|, for scale.
    pub max_abs_ref: f64,
    pub tolerance: f64,
    pub precision: Precision,
    pub ops: OpReport,
    /// Files written by `--save-io`.
    pub saved: Vec<PathBuf>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.max_abs_err <= self.tolerance
    }

    /// The parity line: file, precision, what it was compared with, error against tolerance.
    pub fn summary(&self, source: &Source, seed: u64) -> String {
        format!(
            "parity `{}` ({}) vs burn (`{}`), batch {}, seed {seed}: max abs error {:.3e} (max |burn| {:.3}), tolerance {:.0e}",
            self.path.display(),
            self.precision,
            source.path.display(),
            self.batch,
            self.max_abs_err,
            self.max_abs_ref,
            self.tolerance
        )
    }

    /// `Err` with what a failed check means and what to do about it.
    pub fn verdict(&self) -> std::result::Result<(), String> {
        if self.passed() {
            return Ok(());
        }
        let why = match self.precision {
            Precision::Fp32 => {
                "an fp32 file this far from burn computes something else: re-export it, and if it persists report the op list above"
            }
            Precision::Fp16 => {
                "float16 rounding through this network exceeds the fp16 bar: serve the fp32 export, or measure on the target engine (float32 accumulation)"
            }
        };
        Err(format!(
            "`{}` differs from burn by {:.3e} > {:.0e}: {why}",
            self.path.display(),
            self.max_abs_err,
            self.tolerance
        ))
    }
}

/// max |a − b|; NaN anywhere counts as infinitely wrong.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = (f64::from(x) - f64::from(y)).abs();
            if d.is_nan() { f64::INFINITY } else { d }
        })
        .fold(0.0, f64::max)
}

/// Check `onnx` against `source`'s burn forward pass on `device`.
pub fn check(
    onnx: &Path,
    source: &Source,
    device: &Device,
    opts: &CheckOptions,
) -> Result<CheckReport> {
    let model = read_model(onnx)?;
    let ops = OpReport::of(&model);
    let precision = crate::precision::of_model(&model);
    let order = match_inputs(onnx, &model, source, opts.batch)?;
    let batch = Batch::random(source, opts.batch, opts.seed);
    let want = batch.reference(source, device)?;
    let plan = TractPlan::load(onnx, &order, opts.batch, source)?;
    let got = plan.run(plan.feeds(&batch)?)?;
    if got.len() != want.len() {
        return Err(ExportError::onnx_file(
            onnx,
            format!(
                "its output has {} values but burn's has {}: the file computes another shape; \
                 re-export it from `{}`",
                got.len(),
                want.len(),
                source.path.display()
            ),
        ));
    }
    let mut saved = Vec::new();
    if let Some(dir) = &opts.save_io {
        for &input in &order {
            let (dims, data) = batch.get(input);
            let path = dir.join(format!("{}.npy", input.name()));
            write_npy(&path, &dims, &data)?;
            saved.push(path);
        }
        let out_name = declared_outputs(&model)
            .first()
            .map(|o| o.name.clone())
            .unwrap_or_else(|| crate::capture::OUTPUT.into());
        let path = dir.join(format!("{out_name}.npy"));
        let dims = batch.output_dims();
        write_npy(&path, &dims, &NpyData::F32(want.clone()))?;
        saved.push(path);
    }
    Ok(CheckReport {
        path: onnx.to_path_buf(),
        batch: opts.batch,
        max_abs_err: max_abs_diff(&got, &want),
        max_abs_ref: want.iter().map(|v| f64::from(v.abs())).fold(0.0, f64::max),
        tolerance: opts.tolerance.unwrap_or(precision.tolerance()),
        precision,
        ops,
        saved,
    })
}
