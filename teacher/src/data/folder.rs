//! Images in one sub-folder per class (`DIR/<class>/*.png|jpg`), class index = sorted folder order.

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

/// Load a class-folder tree; with `resolution` every image is resized to that square size,
/// without it all images must share one size. Every 5th image of a class is test.
pub fn load(
    dir: &Path,
    resolution: Option<usize>,
    channels: usize,
    split: Split,
) -> Result<Dataset> {
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
    for (label, class_dir) in classes.iter().enumerate() {
        let files: Vec<_> = read_dir(class_dir)?
            .into_iter()
            .filter(|p| is_image(p))
            .collect();
        if files.is_empty() {
            return Err(err(
                class_dir,
                "is an empty class folder (no .png/.jpg/.jpeg): add images or remove it".into(),
            ));
        }
        for (i, file) in files.iter().enumerate() {
            if !in_split(i, split) {
                continue;
            }
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
            if channels == 1 {
                images.extend(img.to_luma8().pixels().map(|p| to_unit(p.0[0])));
            } else {
                let rgb = img.to_rgb8();
                for c in 0..3 {
                    images.extend(rgb.pixels().map(|p| to_unit(p.0[c])));
                }
            }
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
