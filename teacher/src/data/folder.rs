//! Images in one sub-folder per class (`DIR/<class>/*.png|jpg`), class index = sorted folder
//! order; or clips, one folder of frames each (`DIR/<class>/<clip>/*.png|jpg`, frames in file
//! name order).

use std::path::Path;

use image::imageops::FilterType;

use super::{Dataset, Split, in_split};
use crate::error::{Error, Result};
use crate::unet::ImageShape;

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// What one example of a class folder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// An image file: `DIR/<class>/<image>.png`.
    Images,
    /// A folder of frames: `DIR/<class>/<clip>/<frame>.png`; every clip has the same count.
    Clips,
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
    let clips = layout == Layout::Clips;
    let err = |path: &Path, message: String| Error::Data {
        path: path.to_path_buf(),
        message,
    };
    if channels != 1 && channels != 3 {
        return Err(Error::ConfigValue {
            key: "data.channels".into(),
            value: channels.to_string(),
            why: "must be 1 (grayscale) or 3 (RGB)".into(),
        });
    }
    let read_dir = |d: &Path| -> Result<Vec<std::path::PathBuf>> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .map_err(Error::io("read directory", d))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        Ok(v)
    };
    let classes: Vec<_> = read_dir(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    if classes.is_empty() {
        return Err(err(
            dir,
            "has no class sub-folders: put the images of each class in `DIR/<class name>/`".into(),
        ));
    }
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut size: Option<(u32, u32, std::path::PathBuf)> = None;
    let mut frames: Option<(usize, std::path::PathBuf)> = None;
    for (label, class_dir) in classes.iter().enumerate() {
        let examples: Vec<_> = read_dir(class_dir)?
            .into_iter()
            .filter(|p| if clips { p.is_dir() } else { is_image(p) })
            .collect();
        if examples.is_empty() {
            let what = if clips {
                "no clip folders of frames"
            } else {
                "no .png/.jpg/.jpeg"
            };
            return Err(err(
                class_dir,
                format!("is an empty class folder ({what}): add examples or remove it"),
            ));
        }
        for (i, example) in examples.iter().enumerate() {
            if !in_split(i, split) {
                continue;
            }
            let files = if clips {
                let f: Vec<_> = read_dir(example)?
                    .into_iter()
                    .filter(|p| is_image(p))
                    .collect();
                match &frames {
                    Some((t, first)) if *t != f.len() => {
                        return Err(err(
                            example,
                            format!(
                                "holds {} frames but `{}` holds {t}: every clip needs the same number of frames",
                                f.len(),
                                first.display()
                            ),
                        ));
                    }
                    None if f.is_empty() => {
                        return Err(err(example, "holds no frames (.png/.jpg/.jpeg)".into()));
                    }
                    None => frames = Some((f.len(), example.clone())),
                    _ => {}
                }
                f
            } else {
                vec![example.clone()]
            };
            let mut planes: Vec<Vec<f32>> = vec![Vec::new(); channels];
            for file in &files {
                let img = image::open(file)
                    .map_err(|e| err(file, format!("is not a readable image ({e})")))?;
                let img = match resolution {
                    Some(r) => img.resize_exact(r as u32, r as u32, FilterType::Triangle),
                    None => img,
                };
                let (w, h) = (img.width(), img.height());
                match &size {
                    Some((w0, h0, first)) if (*w0, *h0) != (w, h) => {
                        return Err(err(
                            file,
                            format!(
                                "is {w}×{h} but `{}` is {w0}×{h0}: mixed sizes; set `data.resolution` to resize all",
                                first.display()
                            ),
                        ));
                    }
                    None => size = Some((w, h, file.clone())),
                    _ => {}
                }
                let to_unit = |p: u8| p as f32 / 255.0 * 2.0 - 1.0;
                // Channel planes, each holding the frames in order: `[C, T, H, W]`.
                if channels == 1 {
                    planes[0].extend(img.to_luma8().pixels().map(|p| to_unit(p.0[0])));
                } else {
                    let rgb = img.to_rgb8();
                    for (c, plane) in planes.iter_mut().enumerate() {
                        plane.extend(rgb.pixels().map(|p| to_unit(p.0[c])));
                    }
                }
            }
            images.extend(planes.into_iter().flatten());
            labels.push(label as u8);
        }
    }
    let (w, h, _) = size.ok_or_else(|| err(dir, "holds no images for this split".into()))?;
    Ok(Dataset {
        images,
        labels,
        shape: ImageShape {
            channels,
            height: h as usize,
            width: w as usize,
            frames: frames.map(|(t, _)| t).unwrap_or(1),
        },
        num_classes: classes.len(),
        class_names: classes
            .iter()
            .map(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect(),
    })
}
