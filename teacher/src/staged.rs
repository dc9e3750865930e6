//! Output folders replaced whole (sample sets, reports): a command writes a temp folder beside
//! the destination and swaps it in when everything is written, so a folder never mixes two runs
//! and a killed command leaves the previous folder as it was. The swap is two renames in the same
//! parent; a sibling lock file keeps one writer per destination.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::lock::{FolderLock, refuse_foreign, remove_stale};

/// A folder being written; [`StagedFolder::commit`] puts it in place.
#[derive(Debug)]
pub struct StagedFolder {
    dest: PathBuf,
    tmp: PathBuf,
    _lock: FolderLock,
    committed: bool,
}

impl StagedFolder {
    /// Start replacing `dest`. A `dest` that holds files but not `marker` (the file a fewstep
    /// folder of this kind always has) was not written by fewstep and is refused.
    pub fn begin(dest: &Path, marker: &str) -> Result<Self> {
        refuse_foreign(dest, &[marker])?;
        let (parent, name) = split(dest)?;
        std::fs::create_dir_all(&parent).map_err(Error::io("create directory", &parent))?;
        let lock = FolderLock::at(&parent.join(format!(".{name}.fewstep.lock")), dest)?;
        // We hold the lock: temp or old folders beside `dest` are a killed writer's.
        let (tmp_prefix, old_prefix) = (format!(".{name}.tmp-"), format!(".{name}.old-"));
        remove_stale(&parent, |n| {
            n.starts_with(&tmp_prefix) || n.starts_with(&old_prefix)
        });
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).map_err(Error::io("create directory", &tmp))?;
        Ok(Self {
            dest: dest.to_path_buf(),
            tmp,
            _lock: lock,
            committed: false,
        })
    }

    /// Where to write the folder's files.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Swap the written folder in for `dest`. Files of the old folder that fewstep did not
    /// write (a README, a script beside a report) are carried over; the rest of the old folder
    /// is removed. What fewstep wrote is listed in the folder's [`MANIFEST`].
    pub fn commit(mut self) -> Result<PathBuf> {
        let (parent, name) = split(&self.dest)?;
        let written = list(&self.tmp);
        if self.dest.is_dir() {
            let theirs = manifest(&self.dest);
            for f in list(&self.dest) {
                let ours = match &theirs {
                    Some(m) => m.contains(&f),
                    None => legacy_output(&f),
                };
                if !ours && f != MANIFEST && !written.contains(&f) {
                    let (from, to) = (self.dest.join(&f), self.tmp.join(&f));
                    std::fs::rename(&from, &to).map_err(Error::io("carry over", &from))?;
                }
            }
        }
        let text: String = written.iter().map(|f| format!("{f}\n")).collect();
        crate::checkpoint::write_atomic(&self.tmp.join(MANIFEST), text.as_bytes())?;
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        if self.dest.exists() {
            std::fs::rename(&self.dest, &old).map_err(Error::io("move aside", &self.dest))?;
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(Error::io("move into place", &self.dest))?;
        self.committed = true;
        let _ = std::fs::remove_dir_all(&old);
        Ok(self.dest.clone())
    }
}

/// The list of files fewstep wrote into a staged folder.
pub const MANIFEST: &str = ".fewstep-files";

/// The names of the entries of `dir`, sorted.
fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The manifest of `dir`, if it has one.
fn manifest(dir: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(dir.join(MANIFEST)).ok()?;
    Some(text.lines().map(str::to_string).collect())
}

/// For folders written before manifests: what fewstep's sample and report commands wrote
/// (images, the report's markdown, HTML and JSON).
fn legacy_output(name: &str) -> bool {
    let ext = Path::new(name).extension().and_then(|e| e.to_str());
    name == "report.md" || matches!(ext, Some("png" | "html" | "json"))
}

impl Drop for StagedFolder {
    /// An abandoned folder (an error before `commit`) is removed; `dest` stays as it was.
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// `dest`'s parent folder and file name.
fn split(dest: &Path) -> Result<(PathBuf, String)> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "`{}` names no folder: give an output folder such as `runs/samples`",
                dest.display()
            ))
        })?;
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok((parent, name))
}
