//! The export crate's errors: each names the model, file or op and says how to fix it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Teacher(#[from] teacher::Error),

    #[error(
        "capturing the forward pass failed: {message}. The network must run on burn's capture \
         device (no data reads, no randomness inside `forward`)"
    )]
    Capture { message: String },

    #[error(
        "burn op `{op}` has no ONNX lowering in fewstep's exporter: {hint}. Add a lowering for it \
         in export/src/lower.rs, or keep the network to the ops listed in docs/export.md"
    )]
    Unsupported { op: String, hint: String },

    #[error(
        "dynamic batch axis: {0}. Export with a fixed batch instead (`--batch N`), or keep \
         batch-dependent shapes to reshapes/expands/slices of the batch axis"
    )]
    DynamicBatch(String),

    #[error("ONNX file `{path}`: {message}")]
    OnnxFile { path: PathBuf, message: String },

    #[error("tract could not run `{path}`: {message}")]
    Runtime { path: PathBuf, message: String },

    // The cause is printed by the caller's error chain (`{:#}`), not repeated here.
    #[error("failed to {action} `{path}`")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// TensorRT missing, not compiled in, or its builder failed (the message says which and
    /// what to run instead).
    #[error("{0}")]
    TensorRt(String),

    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, ExportError>;

impl ExportError {
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ExportError {
        let path = path.into();
        move |source| ExportError::Io {
            action,
            path,
            source,
        }
    }

    pub fn onnx_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ExportError::OnnxFile {
            path: path.into(),
            message: message.into(),
        }
    }
}
