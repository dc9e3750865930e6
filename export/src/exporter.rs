//! The export pipeline: capture the forward pass (twice for a dynamic batch axis), lower it to
//! ONNX, and write the file atomically.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use teacher::checkpoint::write_atomic;
use tract_onnx::pb;

use crate::capture::{Captured, capture_forward, capture_sampler};
use crate::dynamic;
use crate::error::{ExportError, Result};
use crate::lower::lower;
use crate::onnx::{encode, model_proto};
use crate::opset::Opset;
use crate::precision::{PRECISION_KEY, Precision, to_fp16};
use crate::source::Source;

/// Batch sizes a dynamic export is captured at: any two distinct sizes work; 2 and 3 keep the
/// captures small and stay clear of size-1 special cases (broadcasting, squeezes).
pub const DYNAMIC_CAPTURE_BATCHES: (usize, usize) = (2, 3);

/// How the batch axis is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchMode {
    /// A symbolic axis `N`: one file serves every batch size.
    #[default]
    Dynamic,
    /// A fixed batch size (some runtimes plan better for it).
    Fixed(usize),
}

impl fmt::Display for BatchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchMode::Dynamic => write!(f, "dynamic"),
            BatchMode::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for BatchMode {
    type Err = ExportError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "dynamic" => Ok(BatchMode::Dynamic),
            other => match other.parse::<usize>() {
                Ok(n) if n > 0 => Ok(BatchMode::Fixed(n)),
                _ => Err(ExportError::Invalid(format!(
                    "`--batch {s}` is neither `dynamic` nor a batch size ≥ 1"
                ))),
            },
        }
    }
}

/// Settings of one export.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions {
    pub opset: Opset,
    pub batch: BatchMode,
    pub precision: Precision,
}

/// `source`'s graph at batch `n`: one forward pass, or the whole unrolled sampler.
fn capture(source: &Source, n: usize) -> Result<Captured> {
    match &source.unroll {
        None => capture_forward(&source.model, &source.inputs, n),
        Some(u) => capture_sampler(
            &source.model,
            &u.plan,
            u.decoding.as_ref(),
            &source.inputs,
            n,
        ),
    }
}

/// The ONNX model of `source`'s forward pass, preconditioning included (or, for an unrolled
/// source, of its whole sampler).
pub fn export_model(source: &Source, opts: &ExportOptions) -> Result<pb::ModelProto> {
    let graph = match opts.batch {
        BatchMode::Fixed(n) => lower(&capture(source, n)?, opts.opset)?,
        BatchMode::Dynamic => {
            let (na, nb) = DYNAMIC_CAPTURE_BATCHES;
            let a = lower(&capture(source, na)?, opts.opset)?;
            let b = lower(&capture(source, nb)?, opts.opset)?;
            dynamic::merge(a, &b, na, nb)?
        }
    };
    let graph = match opts.precision {
        Precision::Fp32 => graph,
        Precision::Fp16 => to_fp16(graph),
    };
    let mut metadata = source.metadata()?;
    metadata.push(("fewstep.opset".into(), opts.opset.to_string()));
    metadata.push(("fewstep.batch".into(), opts.batch.to_string()));
    metadata.push((PRECISION_KEY.into(), opts.precision.to_string()));
    let name = match &source.unroll {
        None => format!("fewstep_{:?}", source.kind()).to_lowercase(),
        Some(u) => format!("fewstep_{:?}_sampler_{}", source.kind(), u.steps).to_lowercase(),
    };
    Ok(model_proto(&graph, &name, opts.opset, &metadata))
}

/// Write a model to `path` atomically (temp file, fsync, rename).
pub fn write_model(model: &pb::ModelProto, path: &Path) -> Result<u64> {
    let bytes = encode(model);
    write_atomic(path, &bytes).map_err(|e| match e {
        teacher::Error::Io { source, .. } => ExportError::Io {
            action: "write ONNX model to",
            path: path.to_path_buf(),
            source,
        },
        other => other.into(),
    })?;
    Ok(bytes.len() as u64)
}
