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

    /// A metric was given inputs it cannot use (mismatched lengths, too few rows, …).
    #[error("{metric}: {message}")]
    Input {
        /// The function that refused its input, e.g. "kid" or "pixel_rmse".
        metric: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl EvalError {
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        EvalError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// An [`EvalError::Input`] from `metric` with a message saying what is wrong and how to fix it.
    pub fn input(metric: &'static str, message: impl Into<String>) -> Self {
        EvalError::Input {
            metric,
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, EvalError>;

/// n = len/d for a row-major buffer `what` of n rows × `d` values, checking the shape and that every value is finite.
pub(crate) fn rows(metric: &'static str, what: &str, values: &[f32], d: usize) -> Result<usize> {
    if d == 0 {
        return Err(EvalError::input(
            metric,
            format!("feature dimension is 0 for {what}; pass d ≥ 1, the number of values per row"),
        ));
    }
    if !values.len().is_multiple_of(d) {
        return Err(EvalError::input(
            metric,
            format!(
                "{what} holds {} values, not a multiple of d = {d}; pass whole rows \
                 (row-major, n rows of d values) or fix d",
                values.len()
            ),
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(EvalError::input(
            metric,
            format!(
                "{what} row {}, column {} is {}; the producer emitted a non-finite value, fix it \
                 or drop that row",
                i / d,
                i % d,
                values[i]
            ),
        ));
    }
    Ok(values.len() / d)
}
