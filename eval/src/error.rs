//! The eval crate's errors (besides the Fréchet distance's own).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("feature network `{path}`: {message}")]
    Features { path: PathBuf, message: String },

    #[error("samples `{path}`: {message}")]
    Samples { path: PathBuf, message: String },

    #[error("failed to {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Teacher(#[from] teacher::Error),

    #[error(transparent)]
    Frechet(#[from] crate::frechet::FrechetError),
}

impl EvalError {
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        EvalError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, EvalError>;
