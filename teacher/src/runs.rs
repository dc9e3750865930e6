//! Run folders: where a run keeps its checkpoint, the round folders of a progressive run, and
//! resolving `--model` (a run folder, a checkpoint file, or a progressive run plus a step count).

use std::path::{Path, PathBuf};

use crate::checkpoint::LATEST;
use crate::error::{Error, Result};

/// Folder of the progressive round whose student takes `steps` steps.
pub fn round_dir(out: &Path, steps: usize) -> PathBuf {
    out.join(format!("round-{steps:03}"))
}

/// Step counts of the finished rounds under a progressive run folder, ascending.
pub fn available_rounds(out: &Path) -> Vec<usize> {
    let mut v: Vec<usize> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(LATEST).exists())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("round-")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// Whether `path` is a progressive run folder (rounds, no checkpoint of its own).
pub fn is_progressive_run(path: &Path) -> bool {
    !path.join(LATEST).exists() && !available_rounds(path).is_empty()
}

/// Resolve `--model`: a run folder, a checkpoint file, or a progressive run folder whose round
/// with `steps` steps is picked.
pub fn resolve_model(path: &Path, steps: usize) -> Result<PathBuf> {
    if !path.exists() || path.is_file() || path.join(LATEST).exists() {
        return Ok(path.to_path_buf());
    }
    let rounds = available_rounds(path);
    if rounds.is_empty() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: "holds no checkpoint: pass a run folder written by `fewstep teacher train` or `fewstep student …`".into(),
        });
    }
    if !rounds.contains(&steps) {
        return Err(Error::Invalid(format!(
            "`{}` is a progressive run with {}-step students; ask for one of those with `--steps`",
            path.display(),
            rounds
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("-, ")
        )));
    }
    Ok(round_dir(path, steps))
}
