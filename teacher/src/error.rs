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
        "training diverged: loss is {loss} at step {step}. The last good checkpoint `{last_good}` is kept; \
         lower `train.lr`, raise `train.warmup_steps` or set `train.grad_clip`, then `--resume`"
    )]
    NonFinite {
        step: u64,
        loss: f64,
        last_good: String,
    },

    #[error("{0}")]
    Invalid(String),
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
