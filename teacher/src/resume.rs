//! What `--resume` may change. A resumed run is exact only if every setting that shapes its
//! steps is the one its checkpoint was trained with; how long it runs and how often it saves and
//! logs are free. Anything else is refused unless the user says `--allow-config-change`, and
//! then recorded in `metrics.jsonl` with the step it took effect.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// How a run treats an existing checkpoint in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Refuse it (saved work is never overwritten).
    No,
    /// Continue it with the same config (schedule keys aside).
    Strict,
    /// Continue it, taking the new config's values (`--allow-config-change`).
    AllowConfigChange,
}

/// Keys of a `train` table that do not change what a step computes.
const SCHEDULE_KEYS: [&str; 4] = [
    "steps",
    "checkpoint_every",
    "log_every",
    "all_reduce_timeout_s",
];

/// The settings that differ between the `saved` and the `new` config (TOML), as
/// `key: old → new` lines; schedule keys are left out. Text that does not parse counts as empty.
/// With `older` (a checkpoint of an earlier format), keys the saved config lacks are taken to
/// be ones its fewstep did not have yet, at their default.
pub fn config_changes(saved: &str, new: &str, older: bool) -> Vec<String> {
    let flat = |text: &str| {
        let mut out = BTreeMap::new();
        let table = text.parse::<toml::Table>().unwrap_or_default();
        flatten("", &toml::Value::Table(table), &mut out);
        out.retain(|k, _| !is_schedule(k));
        out
    };
    let (a, b) = (flat(saved), flat(new));
    let none = "(unset)".to_string();
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| (!older || a.contains_key(*k)) && a.get(*k) != b.get(*k))
        .map(|k| {
            let (old, new) = (a.get(k).unwrap_or(&none), b.get(k).unwrap_or(&none));
            format!("{k}: {old} → {new}")
        })
        .collect()
}

/// Check a resume of a run saved with `saved` (by a fewstep of an earlier format: `older`)
/// under `new`; returns the changes it takes.
pub fn check(
    saved: &str,
    new: &str,
    older: bool,
    mode: Resume,
    run: &std::path::Path,
) -> Result<Vec<String>> {
    let changes = config_changes(saved, new, older);
    if changes.is_empty() || mode == Resume::AllowConfigChange {
        return Ok(changes);
    }
    Err(Error::Invalid(format!(
        "`--resume` of `{}` with a changed config ({}): the resumed run would no longer continue \
         the one its checkpoint holds. Resume with the run's own `config.toml`, or pass \
         `--allow-config-change` to take the new values (recorded in metrics.jsonl)",
        run.display(),
        changes.join("; ")
    )))
}

fn is_schedule(key: &str) -> bool {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    parts.last() == Some(&"train") && SCHEDULE_KEYS.contains(&last)
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_keys_are_free_everything_else_is_named() {
        let saved = "[train]\nsteps = 10\nlr = 0.001\nseed = 0\n[model]\nmodel_channels = 8\n";
        let longer = "[train]\nsteps = 20\nlog_every = 5\nlr = 0.001\nseed = 0\n[model]\nmodel_channels = 8\n";
        assert!(config_changes(saved, longer, false).is_empty());
        let changed = "[train]\nsteps = 10\nlr = 0.002\n[model]\nmodel_channels = 8\n";
        assert_eq!(
            config_changes(saved, changed, false),
            ["train.lr: 0.001 → 0.002", "train.seed: 0 → (unset)"]
        );
        let dir = std::path::Path::new("RUN");
        let e = check(saved, changed, false, Resume::Strict, dir)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.lr") && e.contains("--allow-config-change"),
            "{e}"
        );
        let taken = check(saved, changed, false, Resume::AllowConfigChange, dir).unwrap();
        assert_eq!(taken.len(), 2);
        // A key an older format did not have is no change; a changed value still is.
        let newer = format!("{saved}kind = \"unet\"\n");
        assert!(config_changes(saved, &newer, true).is_empty());
        assert_eq!(config_changes(saved, changed, true).len(), 2);
    }
}
