//! One writer per folder: an advisory lock (`.fewstep.lock`, flock) held while a command writes
//! a run, sample or report folder. The kernel drops the lock when its process ends, so a killed
//! writer leaves no stale lock; the PID written into the file names the holder in the refusal.
//! Whoever takes the lock is the folder's only writer, so temp files left in it by a killed
//! write (`.NAME.tmp-PID`, see `checkpoint::write_atomic`) are removed then.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file inside a locked folder.
pub const LOCK_FILE: &str = ".fewstep.lock";

/// A held folder lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    pub dir: PathBuf,
}

impl FolderLock {
    /// Lock `dir` (created if missing) for writing, or say who holds it. A folder that exists,
    /// is not empty and holds none of `markers` (nor a lock file) was not written by fewstep:
    /// it is refused, never written into.
    pub fn acquire(dir: &Path, markers: &[&str]) -> Result<Self> {
        refuse_foreign(dir, markers)?;
        std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        let lock = Self::at(&dir.join(LOCK_FILE), dir)?;
        // `.NAME.tmp-PID` files of killed atomic writes (`checkpoint::write_atomic`).
        remove_stale(dir, |n| n.starts_with('.') && n.contains(".tmp-"));
        Ok(lock)
    }

    /// Hold the lock file `path` for writing `dir` (which may live elsewhere, as for folders
    /// that are replaced whole).
    pub fn at(path: &Path, dir: &Path) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(Error::io("open the lock file", path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(Error::Invalid(format!(
                    "`{}` is being written by another fewstep process (PID {}): wait for it to \
                     finish, or write to another folder",
                    dir.display(),
                    if pid.is_empty() { "unknown" } else { pid }
                )));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", path)(e)),
        }
        let record = (|| {
            file.set_len(0)?;
            file.rewind()?;
            write!(file, "{}", std::process::id())?;
            file.flush()
        })();
        record.map_err(Error::io("write the lock file", path))?;
        Ok(Self {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }
}

/// Refuse `dir` if it exists, is not empty and holds neither a lock file nor one of `markers`.
pub fn refuse_foreign(dir: &Path, markers: &[&str]) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let ours = names
        .iter()
        .any(|n| n == LOCK_FILE || markers.contains(&n.as_str()));
    match names.first() {
        Some(first) if !ours => Err(Error::Invalid(format!(
            "`{}` holds files fewstep did not write (`{first}`, {} in all): fewstep never \
             overwrites them; choose a new or empty folder",
            dir.display(),
            names.len()
        ))),
        _ => Ok(()),
    }
}

/// Remove the entries of `dir` (files, or folders with all they hold) whose names `stale`
/// picks: what a killed writer left behind (best effort: what cannot be removed stays).
pub fn remove_stale(dir: &Path, stale: impl Fn(&str) -> bool) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if stale(&e.file_name().to_string_lossy()) {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}
