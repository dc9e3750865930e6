//! Images in one sub-folder per class (`DIR/<class>/*.png|jpg`), class index = sorted folder
//! order; or clips, each a folder of frames (`DIR/<class>/<clip>/*.png|jpg`, frames in file-name
//! order) or a raw array (`DIR/<class>/<clip>.npy`, `[T, H, W]` or `[C, T, H, W]` float32 in
//! [−1, 1], as `np.save` writes it).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::{Dataset, Split, in_split};
use crate::error::{Error, Result};
use crate::image_io::from_u8;
use crate::npy::{NpyData, read_npy};
use crate::unet::ImageShape;

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .is_some_and(|e| exts.contains(&e.as_str()))
}

fn is_image(p: &Path) -> bool {
    has_ext(p, &["png", "jpg", "jpeg"])
}

/// What one example of a class folder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// An image file: `DIR/<class>/<image>.png`.
    Images,
    /// A clip: a folder of frames `DIR/<class>/<clip>/<frame>.png`, or an array
    /// `DIR/<class>/<clip>.npy`; every clip has the same number of frames.
    Clips,
}

fn data_err(path: &Path, message: String) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        message,
    }
}

fn sorted_entries(d: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<_> = std::fs::read_dir(d)
        .map_err(Error::io("read directory", d))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// One example read: values `[C, T, H, W]` (T = 1 for an image), T, and (width, height).
struct Example {
    values: Vec<f32>,
    frames: usize,
    size: (usize, usize),
}

/// Read image files as the frames of one example, each resized to `resolution` if given.
fn read_frames(files: &[PathBuf], resolution: Option<usize>, channels: usize) -> Result<Example> {
    let mut planes: Vec<Vec<f32>> = vec![Vec::new(); channels];
    let mut size = None;
    for file in files {
        let img = image::open(file)
            .map_err(|e| data_err(file, format!("is not a readable image ({e})")))?;
        let img = match resolution {
            Some(r) => img.resize_exact(r as u32, r as u32, FilterType::Triangle),
            None => img,
        };
        let s = (img.width() as usize, img.height() as usize);
        if *size.get_or_insert(s) != s {
            return Err(data_err(
                file,
                "differs in size from the clip's first frame: set `data.resolution` to resize all"
                    .into(),
            ));
        }
        // Channel planes, each holding the frames in order: `[C, T, H, W]`.
        if channels == 1 {
            planes[0].extend(img.to_luma8().pixels().map(|p| from_u8(p.0[0])));
        } else {
            let rgb = img.to_rgb8();
            for (c, plane) in planes.iter_mut().enumerate() {
                plane.extend(rgb.pixels().map(|p| from_u8(p.0[c])));
            }
        }
    }
    Ok(Example {
        values: planes.into_iter().flatten().collect(),
        frames: files.len(),
        size: size.expect("callers pass at least one frame"),
    })
}

/// Read a clip saved as a `.npy` array `[T, H, W]` (one channel) or `[C, T, H, W]`.
fn read_array(path: &Path, resolution: Option<usize>, channels: usize) -> Result<Example> {
    let (shape, data) = read_npy(path)?;
    let NpyData::F32(values) = data else {
        return Err(data_err(
            path,
            "holds int64: save clips as float32 in [−1, 1]".into(),
        ));
    };
    let (c, t, h, w) = match shape[..] {
        [t, h, w] => (1, t, h, w),
        [c, t, h, w] => (c, t, h, w),
        _ => {
            return Err(data_err(
                path,
                format!("has shape {shape:?}: a clip array is [T, H, W] or [C, T, H, W]"),
            ));
        }
    };
    if c != channels {
        return Err(data_err(
            path,
            format!("has {c} channel(s) but `data.channels` is {channels}: make them agree"),
        ));
    }
    if resolution.is_some_and(|r| (r, r) != (w, h)) {
        return Err(data_err(
            path,
            format!("is {w}×{h}: arrays are not resized, so save them at `data.resolution`"),
        ));
    }
    if t == 0 || values.iter().any(|v| !(-1.0..=1.0).contains(v)) {
        return Err(data_err(
            path,
            "needs ≥ 1 frame and values in [−1, 1] (map 8-bit pixels p to p/127.5 − 1)".into(),
        ));
    }
    Ok(Example {
        values,
        frames: t,
        size: (w, h),
    })
}

/// Load a class-folder tree; with `resolution` every image (frame) is resized to that square
/// size, without it all must share one size. Every 5th example of a class is test.
pub fn load(
    dir: &Path,
    resolution: Option<usize>,
    channels: usize,
    split: Split,
    layout: Layout,
) -> Result<Dataset> {
    check_channels(channels)?;
    let classes = class_dirs(dir)?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    // The first example's frame count and size, which every other must match.
    let mut first: Option<(usize, (usize, usize), PathBuf)> = None;
    for (label, class_dir) in classes.iter().enumerate() {
        let examples = class_examples(class_dir, layout)?;
        for (i, path) in examples.iter().enumerate() {
            if !in_split(i, split) {
                continue;
            }
            let ex = read_example(path, resolution, channels, layout)?;
            check_matches_first(&mut first, path, &ex)?;
            images.extend(ex.values);
            labels.push(label as u8);
        }
    }
    let (frames, (w, h), _) =
        first.ok_or_else(|| data_err(dir, "holds no examples for this split".into()))?;
    Ok(Dataset {
        images,
        labels,
        shape: ImageShape {
            channels,
            height: h,
            width: w,
            frames,
        },
        num_classes: classes.len(),
        class_names: class_names(&classes),
    })
}

/// Reject channel counts other than 1 (grayscale) and 3 (RGB).
fn check_channels(channels: usize) -> Result<()> {
    if channels != 1 && channels != 3 {
        return Err(Error::ConfigValue {
            key: "data.channels".into(),
            value: channels.to_string(),
            why: "must be 1 (grayscale) or 3 (RGB)".into(),
        });
    }
    Ok(())
}

/// The class sub-folders of `dir`, sorted; an error if there are none.
fn class_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let classes: Vec<_> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if classes.is_empty() {
        return Err(data_err(
            dir,
            "has no class sub-folders: put the examples of each class in `DIR/<class name>/`"
                .into(),
        ));
    }
    Ok(classes)
}

/// The examples of one class folder for `layout`, sorted; an error if there are none.
fn class_examples(class_dir: &Path, layout: Layout) -> Result<Vec<PathBuf>> {
    let examples: Vec<_> = sorted_entries(class_dir)?
        .into_iter()
        .filter(|p| match layout {
            Layout::Images => is_image(p),
            Layout::Clips => p.is_dir() || has_ext(p, &["npy"]),
        })
        .collect();
    if examples.is_empty() {
        let what = match layout {
            Layout::Images => "no .png/.jpg/.jpeg",
            Layout::Clips => "no clip folders of frames and no .npy clips",
        };
        return Err(data_err(
            class_dir,
            format!("is an empty class folder ({what}): add examples or remove it"),
        ));
    }
    Ok(examples)
}

/// Read one example: an image file, a clip folder of frames, or a `.npy` clip.
fn read_example(
    path: &Path,
    resolution: Option<usize>,
    channels: usize,
    layout: Layout,
) -> Result<Example> {
    Ok(match layout {
        Layout::Images => read_frames(&[path.to_path_buf()], resolution, channels)?,
        Layout::Clips if path.is_dir() => {
            let frames: Vec<_> = sorted_entries(path)?
                .into_iter()
                .filter(|p| is_image(p))
                .collect();
            if frames.is_empty() {
                return Err(data_err(path, "holds no frames (.png/.jpg/.jpeg)".into()));
            }
            read_frames(&frames, resolution, channels)?
        }
        Layout::Clips => read_array(path, resolution, channels)?,
    })
}

/// Check `ex` (read from `path`) against the first example's frame count and size, or record
/// it as the first.
fn check_matches_first(
    first: &mut Option<(usize, (usize, usize), PathBuf)>,
    path: &Path,
    ex: &Example,
) -> Result<()> {
    match first {
        Some((t, _, f)) if *t != ex.frames => {
            return Err(data_err(
                path,
                format!(
                    "holds {} frames but `{}` holds {t}: every clip needs the same number of frames",
                    ex.frames,
                    f.display()
                ),
            ));
        }
        Some((_, (w0, h0), f)) if (*w0, *h0) != ex.size => {
            let (w, h) = ex.size;
            return Err(data_err(
                path,
                format!(
                    "is {w}×{h} but `{}` is {w0}×{h0}: mixed sizes; set `data.resolution` to resize all",
                    f.display()
                ),
            ));
        }
        None => *first = Some((ex.frames, ex.size, path.to_path_buf())),
        _ => {}
    }
    Ok(())
}

/// The class names: each class folder's name.
fn class_names(classes: &[PathBuf]) -> Vec<String> {
    classes
        .iter()
        .map(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect()
}
