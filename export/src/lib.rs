//! fewstep's export crate: any fewstep model (teacher or student) to ONNX by capturing its
//! forward pass with burn's capture backend and lowering the recorded ops, then a parity check
//! against burn with tract (a pure-Rust ONNX runtime), an op/opset report and a latency bench.

pub mod bench;
pub mod capture;
pub mod check;
pub mod dynamic;
pub mod engine;
#[cfg(feature = "tensorrt")]
pub mod engine_trt;
pub mod error;
pub mod exporter;
pub mod graph;
pub mod groupnorm;
pub mod inputs;
pub mod lower;
pub use teacher::npy;
pub mod onnx;
pub mod opset;
pub mod precision;
pub mod report;
pub mod runtime;
pub mod source;
pub mod triton;
pub mod triton_accel;

pub use error::{ExportError, Result};
pub use exporter::{BatchMode, ExportOptions, export_model, write_model};
pub use opset::Opset;
pub use precision::Precision;
