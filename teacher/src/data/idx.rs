//! MNIST's IDX files (LeCun et al. 1998), gzip-compressed or raw.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::{Dataset, Split};
use crate::error::{Error, Result};
use crate::unet::ImageShape;

/// IDX magic numbers: 0x00000803 for u8 rank-3 (images), 0x00000801 for u8 rank-1 (labels).
const IMAGES_MAGIC: u32 = 0x0803;
const LABELS_MAGIC: u32 = 0x0801;

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::Data {
            path: dir.to_path_buf(),
            message:
                "is not a directory: pass the folder holding MNIST's IDX files with `--data DIR`"
                    .into(),
        });
    }
    for name in [
        format!("{stem}.gz"),
        stem.to_string(),
        stem.replacen("-idx", ".idx", 1),
    ] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Data {
        path: dir.join(format!("{stem}.gz")),
        message: format!(
            "not found: the folder needs `{stem}` or `{stem}.gz` (the standard MNIST file names)"
        ),
    })
}

fn read_all(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(Error::io("read", path))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::Data {
                path: path.to_path_buf(),
                message: format!(
                    "is not a valid gzip file ({e}); re-download it or give the raw IDX file"
                ),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn header(bytes: &[u8], path: &Path, magic: u32, dims: usize) -> Result<Vec<usize>> {
    let bad = |m: String| Error::Data {
        path: path.to_path_buf(),
        message: m,
    };
    if bytes.len() < 4 + 4 * dims {
        return Err(bad(format!(
            "has {} bytes, too short for an IDX header",
            bytes.len()
        )));
    }
    let got = u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes"));
    if got != magic {
        return Err(bad(format!(
            "bad IDX magic 0x{got:08x}, expected 0x{magic:08x}: is this the right MNIST file (images vs labels)?"
        )));
    }
    let sizes: Vec<usize> = (0..dims)
        .map(|k| {
            u32::from_be_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let expected = 4 + 4 * dims + sizes.iter().product::<usize>();
    if bytes.len() != expected {
        return Err(bad(format!(
            "header says {sizes:?} ({expected} bytes) but the file has {} bytes: the file is truncated or corrupt",
            bytes.len()
        )));
    }
    Ok(sizes)
}

/// Load MNIST's train (60,000) or test (10,000) split from `dir`.
pub fn load_mnist(dir: &Path, split: Split) -> Result<Dataset> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let ipath = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lpath = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let ibytes = read_all(&ipath)?;
    let lbytes = read_all(&lpath)?;
    let isz = header(&ibytes, &ipath, IMAGES_MAGIC, 3)?;
    let lsz = header(&lbytes, &lpath, LABELS_MAGIC, 1)?;
    if isz[0] != lsz[0] {
        return Err(Error::Data {
            path: lpath,
            message: format!(
                "has {} labels but `{}` has {} images",
                lsz[0],
                ipath.display(),
                isz[0]
            ),
        });
    }
    let labels = lbytes[8..].to_vec();
    if let Some(bad) = labels.iter().find(|&&l| l > 9) {
        return Err(Error::Data {
            path: lpath,
            message: format!("holds label {bad}; MNIST labels are 0–9"),
        });
    }
    Ok(Dataset {
        images: ibytes[16..]
            .iter()
            .map(|&p| crate::image_io::from_u8(p))
            .collect(),
        labels,
        shape: ImageShape {
            channels: 1,
            height: isz[1],
            width: isz[2],
            frames: 1,
        },
        num_classes: 10,
        class_names: (0..10).map(|d| d.to_string()).collect(),
    })
}
