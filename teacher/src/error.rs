//! The teacher crate's errors: each names the file or key and says how to fix it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config `{path}`: {message}")]
    Config { path: PathBuf, message: String },

    #[error("config key `{key}` = {value}: {why}")]
    ConfigValue {
        key: String,
        value: String,
        why: String,
    },

    #[error("data `{path}`: {message}")]
    Data { path: PathBuf, message: String },

    #[error("checkpoint `{path}`: {message}")]
    Checkpoint { path: PathBuf, message: String },

    #[error("failed to {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "training diverged: loss is {loss} at step {step}. {last_good}; \
         lower `train.lr`, raise `train.warmup_steps` or set `train.grad_clip`, then {then}"
    )]
    NonFinite {
        step: u64,
        loss: f64,
        /// What is kept: the last good checkpoint, or that none was written yet.
        last_good: String,
        /// How to go on: `--resume` (from the kept checkpoint) or train again.
        then: &'static str,
    },

    #[error("{0}")]
    Invalid(String),

    #[error("data-parallel run: {0}")]
    Distributed(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// A config value out of range: names the key, the value and the valid range.
    pub fn value(key: &str, value: impl std::fmt::Display, why: &str) -> Error {
        Error::ConfigValue {
            key: key.into(),
            value: value.to_string(),
            why: why.into(),
        }
    }
}
