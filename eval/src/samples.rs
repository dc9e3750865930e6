//! Reading a folder of samples written by `fewstep sample` (`NNNNN_cK.png`: still PNGs for
//! images, animated PNGs for clips).

use std::path::{Path, PathBuf};

use teacher::clip_io::read_clip;
use teacher::unet::ImageShape;

use crate::error::{EvalError, Result};

/// Images (or clips) in [−1, 1] and the class each was asked for (from the `_cK` in its name).
pub struct SampleSet {
    pub images: Vec<f32>,
    pub classes: Vec<usize>,
    pub shape: ImageShape,
}

/// Load every `*_cK.png` in `dir` (sorted by name) as `channels`-channel images.
pub fn load_samples(dir: &Path, channels: usize) -> Result<SampleSet> {
    let err = |m: String| EvalError::Samples {
        path: dir.to_path_buf(),
        message: m,
    };
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| EvalError::io("read directory", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png") && class_of(p).is_some())
        .collect();
    names.sort();
    check_against_record(dir, &names).map_err(err)?;
    if names.is_empty() {
        return Err(err(
            "holds no `NNNNN_cK.png` samples: write some with `fewstep sample --out DIR`".into(),
        ));
    }
    let mut images = Vec::new();
    let mut classes = Vec::new();
    let mut shape = None;
    for p in &names {
        let (px, s) = read_clip(p, channels)?;
        if *shape.get_or_insert(s) != s {
            return Err(err(format!(
                "`{}` is {}×{} with {} frame(s), unlike the others",
                p.display(),
                s.width,
                s.height,
                s.frames
            )));
        }
        images.extend(px);
        classes.push(class_of(p).expect("filtered above"));
    }
    Ok(SampleSet {
        images,
        classes,
        shape: shape.expect("at least one sample"),
    })
}

fn class_of(p: &Path) -> Option<usize> {
    let stem = p.file_stem()?.to_str()?;
    stem.rsplit_once("_c")?.1.parse().ok()
}

/// A folder written by `fewstep sample` says in `samples.json` how many samples it holds
/// (files `00000_cK.png` … `{n−1}_cK.png`); a folder whose files are not exactly those (added,
/// removed or renamed by hand, or by another program) is refused.
fn check_against_record(dir: &Path, names: &[PathBuf]) -> std::result::Result<(), String> {
    let Ok(text) = std::fs::read_to_string(dir.join("samples.json")) else {
        return Ok(());
    };
    let n = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("n")?.as_u64())
        .ok_or("has a `samples.json` that fewstep cannot read: sample again into it")?;
    let index =
        |p: &PathBuf| -> Option<u64> { p.file_stem()?.to_str()?.split_once("_c")?.0.parse().ok() };
    let mut seen: Vec<u64> = names.iter().filter_map(index).collect();
    seen.sort_unstable();
    seen.dedup();
    let listed = seen.len() == names.len() && seen.iter().copied().eq(0..n);
    match listed {
        true => Ok(()),
        false => Err(format!(
            "holds {} sample images but its `samples.json` lists {n} (00000 to {:05}): the \
             folder was changed after `fewstep sample` wrote it; sample again into it",
            names.len(),
            n.saturating_sub(1)
        )),
    }
}
