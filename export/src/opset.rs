//! The ONNX operator-set version an export targets, and what changes with it.

use std::fmt;
use std::str::FromStr;

use crate::error::{ExportError, Result};

/// Oldest opset written: 17 is the first with every op form used here (Reduce* with `axes`
/// attribute, Softmax over one axis, `Shape` with start/end) that TensorRT 8.5+ also parses.
pub const MIN_OPSET: i64 = 17;
/// Newest opset written: 21 (ONNX 1.16), whose schema onnx-protobuf and tract both know.
pub const MAX_OPSET: i64 = 21;
/// Default: 17, the widest-supported choice (TensorRT 8.5–10, onnxruntime ≥ 1.13, tract).
pub const DEFAULT_OPSET: i64 = 17;

/// A validated default-domain opset version in `MIN_OPSET..=MAX_OPSET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opset(i64);

impl Default for Opset {
    fn default() -> Self {
        Self(DEFAULT_OPSET)
    }
}

impl Opset {
    pub fn new(version: i64) -> Result<Self> {
        if (MIN_OPSET..=MAX_OPSET).contains(&version) {
            Ok(Self(version))
        } else {
            Err(ExportError::Invalid(format!(
                "`--opset {version}` is not supported: choose {MIN_OPSET}..={MAX_OPSET} \
                 ({DEFAULT_OPSET} is the default and what TensorRT 8.5+ parses)"
            )))
        }
    }

    pub fn version(self) -> i64 {
        self.0
    }

    /// The IR version released with this opset (onnx/helper.py `VERSION_TABLE`):
    /// opsets 17–18 → IR 8, 19–20 → IR 9, 21 → IR 10.
    pub fn ir_version(self) -> i64 {
        match self.0 {
            ..=18 => 8,
            19 | 20 => 9,
            _ => 10,
        }
    }

    /// ReduceMean/ReduceMax/ReduceMin take `axes` as an input from opset 18 (an attribute
    /// before); ReduceSum already does from opset 13.
    pub fn reduce_axes_as_input(self) -> bool {
        self.0 >= 18
    }
}

impl fmt::Display for Opset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Opset {
    type Err = ExportError;

    fn from_str(s: &str) -> Result<Self> {
        let v: i64 = s.trim().parse().map_err(|_| {
            ExportError::Invalid(format!(
                "`--opset {s}` is not a number: choose {MIN_OPSET}..={MAX_OPSET}"
            ))
        })?;
        Self::new(v)
    }
}
