//! FID as the field computes it (pytorch-fid's Fréchet distance over Gaussian fits of features),
//! in a feature space fewstep trains itself (LeNet), a user's ONNX network (Inception-v3) or raw
//! pixels, with reference statistics cached in a file keyed by the content they were computed from.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sha2::{Digest, Sha256};
use teacher::unet::ImageShape;

use crate::classifier::{FeatureMeta, FeatureNet, WEIGHTS_FILE, load_classifier};
use crate::error::{EvalError, Result};
use crate::frechet::FeatureStats;
use crate::onnx_features::OnnxFeatures;

/// Where features come from.
// One per evaluation, never stored in bulk: the size of the trained variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum FeatureSpace {
    /// Penultimate activations of a network fewstep trained itself: the LeNet classifier for
    /// images, the 3D-conv clip classifier for clips.
    Trained {
        model: FeatureNet,
        meta: FeatureMeta,
        dir: PathBuf,
    },
    /// The raw pixel vector (a baseline anyone can recompute).
    Pixels,
    /// A user's ONNX feature network (Inception-v3 for the standard FID), run by tract.
    Onnx(OnnxFeatures),
}

impl FeatureSpace {
    /// `pixels`, an `.onnx` file, or a feature directory written by `fewstep eval train-features`.
    pub fn load(arg: &Path, device: &Device) -> Result<Self> {
        Self::load_for(arg, None, device)
    }

    /// [`load`](Self::load) for examples of `shape`: an `.onnx` file is then loaded as a clip
    /// network (I3D contract, FVD) when the examples are clips.
    pub fn load_for(arg: &Path, shape: Option<ImageShape>, device: &Device) -> Result<Self> {
        if arg.as_os_str() == "pixels" {
            return Ok(FeatureSpace::Pixels);
        }
        if arg
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
        {
            return Ok(FeatureSpace::Onnx(match shape {
                Some(s) if s.is_clip() => OnnxFeatures::load_clip(arg, s.frames)?,
                _ => OnnxFeatures::load(arg)?,
            }));
        }
        let (model, meta) = load_classifier(arg, device)?;
        Ok(FeatureSpace::Trained {
            model,
            meta,
            dir: arg.to_path_buf(),
        })
    }

    /// The honest name for reports: "FID (LeNet features, mnist)" and the like.
    pub fn name(&self) -> String {
        match self {
            FeatureSpace::Trained { meta, .. } if meta.shape.is_clip() => format!(
                "own features: 3D-conv clip net, {}, {} frames, {}-d",
                meta.dataset, meta.shape.frames, meta.config.feature_dim
            ),
            FeatureSpace::Trained { meta, .. } => format!(
                "LeNet features ({}, {}-d)",
                meta.dataset, meta.config.feature_dim
            ),
            FeatureSpace::Pixels => "pixels".into(),
            FeatureSpace::Onnx(f) => format!(
                "ONNX features ({}, {}-d)",
                f.path()
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                f.dim
            ),
        }
    }

    /// The distance's name: FVD in a clip feature space, FID otherwise.
    pub fn metric(&self) -> &'static str {
        let clips = match self {
            FeatureSpace::Onnx(f) => f.frames.is_some(),
            _ => self.shape().is_some_and(|s| s.is_clip()),
        };
        if clips { "FVD" } else { "FID" }
    }

    /// A digest that changes whenever the features would.
    pub fn identity(&self) -> Result<String> {
        Ok(match self {
            FeatureSpace::Pixels => "pixels".into(),
            FeatureSpace::Trained { dir, .. } => {
                let w = std::fs::read(dir.join(WEIGHTS_FILE))
                    .map_err(|e| EvalError::io("read", &dir.join(WEIGHTS_FILE), e))?;
                hex(&Sha256::digest(&w))[..16].to_string()
            }
            FeatureSpace::Onnx(f) => {
                let w = std::fs::read(f.path()).map_err(|e| EvalError::io("read", f.path(), e))?;
                format!("onnx-{}", &hex(&Sha256::digest(&w))[..16])
            }
        })
    }

    /// Where reference statistics are cached.
    pub fn cache_dir(&self) -> PathBuf {
        match self {
            FeatureSpace::Trained { dir, .. } => dir.join("ref-stats"),
            // The user's cache directory ($XDG_CACHE_HOME or ~/.cache), else the temp dir.
            FeatureSpace::Pixels | FeatureSpace::Onnx(_) => std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("fewstep/ref-stats"),
        }
    }

    /// Features of `images` (`[n·C·H·W]` in [−1, 1]) as n rows of `dim` values.
    pub fn features(
        &self,
        images: &[f32],
        shape: ImageShape,
        device: &Device,
    ) -> Result<(Vec<f32>, usize)> {
        let len = shape.len();
        Ok(match self {
            FeatureSpace::Pixels => (images.to_vec(), len),
            FeatureSpace::Onnx(f) => (f.features(images, shape)?, f.dim),
            FeatureSpace::Trained { model, meta, .. } => {
                let out = crate::classifier::batches(
                    images,
                    shape,
                    crate::classifier::EVAL_BATCH,
                    device,
                )
                .flat_map(|x| {
                    model
                        .features(x)
                        .into_data()
                        .convert::<f32>()
                        .try_into_vec::<f32>()
                        .expect("f32 features")
                })
                .collect();
                (out, meta.config.feature_dim)
            }
        })
    }

    /// The image shape this space expects (`None` for pixels: any).
    pub fn shape(&self) -> Option<ImageShape> {
        match self {
            FeatureSpace::Trained { meta, .. } => Some(meta.shape),
            FeatureSpace::Pixels | FeatureSpace::Onnx(_) => None,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reference statistics for `images`, from the cache when the same features of the same images
/// were computed before (key: sha256 of the feature identity and the image bytes).
pub fn reference_stats(
    space: &FeatureSpace,
    images: &[f32],
    shape: ImageShape,
    device: &Device,
) -> Result<(FeatureStats, Vec<f32>, usize)> {
    let mut h = Sha256::new();
    h.update(space.identity()?.as_bytes());
    h.update(format!("{}x{}x{}", shape.channels, shape.height, shape.width).as_bytes());
    if shape.is_clip() {
        h.update(format!("x{} frames", shape.frames).as_bytes());
    }
    for v in images {
        h.update(v.to_le_bytes());
    }
    let key = hex(&h.finalize())[..24].to_string();
    let path = space.cache_dir().join(format!("{key}.json"));
    let (feats, dim) = space.features(images, shape, device)?;
    if let Ok(stats) = FeatureStats::load(&path) {
        return Ok((stats, feats, dim));
    }
    let stats = FeatureStats::from_features(&feats, feats.len() / dim, dim)?;
    std::fs::create_dir_all(space.cache_dir())
        .map_err(|e| EvalError::io("create", &space.cache_dir(), e))?;
    stats.save(&path)?;
    Ok((stats, feats, dim))
}
