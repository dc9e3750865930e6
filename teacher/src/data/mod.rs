//! Labelled datasets held in memory as f32 in [−1, 1]: images `[N, C, H, W]` or clips
//! `[N, C, T, H, W]`, row-major.

pub mod digits;
pub mod folder;
pub mod idx;
pub mod moving;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::unet::ImageShape;

/// Where training images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// The 1,797 8×8 UCI handwritten digits embedded in the binary (no files needed).
    #[default]
    Digits,
    /// MNIST's four IDX files (gzip or raw) in `--data DIR`.
    Mnist,
    /// Images in one sub-folder per class under `--data DIR`.
    Folder,
    /// Clips in one sub-folder per class under `--data DIR`, each clip a folder of frames.
    ClipFolder,
    /// The clean latents of a stage-1 latent autoencoder's own images (`[data.latents]`;
    /// `--data DIR` then names that run's image files).
    Latents,
}

impl DataSource {
    /// The name configs and reports use (`digits`, `mnist`, `folder`).
    pub fn name(self) -> &'static str {
        match self {
            DataSource::Digits => "digits",
            DataSource::Mnist => "mnist",
            DataSource::Folder => "folder",
            DataSource::ClipFolder => "clip_folder",
            DataSource::Latents => "latents",
        }
    }
}

/// Which part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// The `[data]` section of a config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Which loader; `digits` needs no files.
    pub source: DataSource,
    /// Directory of the files (`mnist`, `folder`); `--data DIR` overrides it.
    pub path: Option<PathBuf>,
    /// `folder` only: side length images are resized to (square); none = keep, all must match.
    pub resolution: Option<usize>,
    /// `folder` only: 1 = grayscale, 3 = RGB.
    pub channels: usize,
    /// `[data.clips]`: turn the source's images into moving-digit clips (Moving-MNIST style);
    /// left out = the images themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clips: Option<moving::MovingDigitsConfig>,
    /// `[data.latents]` (source `latents` only): the stage-1 run whose encoder makes the
    /// examples and whose decoder turns samples back into images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latents: Option<crate::latent::source::LatentSource>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            source: DataSource::Digits,
            path: None,
            resolution: None,
            channels: 1,
            clips: None,
            latents: None,
        }
    }
}

/// An in-memory labelled set of images or clips.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Pixels in [−1, 1], `[len, C, H, W]` row-major.
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
    pub shape: ImageShape,
    pub num_classes: usize,
    /// Class names, index = label.
    pub class_names: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image, C·H·W.
    pub fn image_len(&self) -> usize {
        self.shape.len()
    }

    /// The pixels of image (or clip) `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let l = self.image_len();
        &self.images[i * l..(i + 1) * l]
    }

    /// Frame t of clip i, `[C, H, W]`.
    pub fn frame(&self, i: usize, t: usize) -> Vec<f32> {
        crate::clip_io::frame(self.image(i), self.shape, t)
    }

    /// Keep the examples whose index satisfies `keep`.
    pub fn filter(&self, keep: impl Fn(usize) -> bool) -> Dataset {
        let idx: Vec<usize> = (0..self.len()).filter(|&i| keep(i)).collect();
        Dataset {
            images: idx
                .iter()
                .flat_map(|&i| self.image(i).iter().copied())
                .collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
            num_classes: self.num_classes,
            class_names: self.class_names.clone(),
        }
    }

    /// The first `n` examples (all when `n` ≥ len).
    pub fn take(&self, n: usize) -> Dataset {
        self.filter(|i| i < n)
    }
}

impl DataConfig {
    /// The dataset's name for reports: the source's (`digits`, `mnist`, …), prefixed `moving-`
    /// when `[data.clips]` turns it into clips.
    pub fn name(&self) -> String {
        match self.clips {
            Some(_) => format!("moving-{}", self.source.name()),
            None => self.source.name().to_string(),
        }
    }

    /// Whether examples are clips (`[data.clips]` or a clip folder).
    pub fn is_clips(&self) -> bool {
        self.clips.is_some() || self.source == DataSource::ClipFolder
    }

    /// The example shape this config will produce, when it is known without reading files.
    pub fn nominal_shape(&self) -> Option<ImageShape> {
        if let Some(c) = &self.clips {
            return self.base_shape().map(|s| ImageShape {
                channels: s.channels,
                height: c.size,
                width: c.size,
                frames: c.frames,
            });
        }
        self.base_shape()
    }

    fn base_shape(&self) -> Option<ImageShape> {
        match self.source {
            DataSource::Digits => Some(ImageShape {
                channels: 1,
                height: 8,
                width: 8,
                frames: 1,
            }),
            DataSource::Mnist => Some(ImageShape {
                channels: 1,
                height: 28,
                width: 28,
                frames: 1,
            }),
            DataSource::Folder => self.resolution.map(|r| ImageShape {
                channels: self.channels,
                height: r,
                width: r,
                frames: 1,
            }),
            DataSource::ClipFolder | DataSource::Latents => None,
        }
    }

    /// The `[data.latents]` of a `latents` source, or an error saying what to add.
    pub fn latent_source(&self) -> Result<&crate::latent::source::LatentSource> {
        self.latents.as_ref().ok_or_else(|| {
            Error::Invalid(
                "`[data] source = \"latents\"` needs a `[data.latents]` section naming the stage-1 run: \
                 `autoencoder = \"runs/…/autoencoder\"`"
                    .into(),
            )
        })
    }

    /// Reject a `[data.latents]` without source `latents` (or the reverse), latents of clips,
    /// and a latent autoencoder trained on latents.
    pub fn validate_latents(&self, model: &crate::model::NetworkConfig) -> Result<()> {
        let is_latents = self.source == DataSource::Latents;
        if is_latents {
            self.latent_source()?;
        } else if self.latents.is_some() {
            let why = "`[data.latents]` is read only with `source = \"latents\"`: set the source or remove the section";
            return Err(Error::value("data.source", self.source.name(), why));
        }
        if is_latents && self.clips.is_some() {
            let why = "latents are made from images: remove `[data.clips]`";
            return Err(Error::value("data.source", "latents", why));
        }
        if is_latents && matches!(model, crate::model::NetworkConfig::LatentAutoencoder(_)) {
            let why = "a latent autoencoder encodes images: give it an image source (digits, mnist, folder)";
            return Err(Error::value("data.source", "latents", why));
        }
        if let Some(l) = &self.latents
            && l.decoder_steps == 0
        {
            return Err(Error::value("data.latents.decoder_steps", 0, "must be ≥ 1"));
        }
        Ok(())
    }

    /// Load the split named by this config; `override_path` (`--data DIR`) wins over `path`.
    pub fn load(&self, override_path: Option<&Path>, split: Split) -> Result<Dataset> {
        let dir = || -> Result<PathBuf> {
            override_path.map(Path::to_path_buf).or_else(|| self.path.clone()).ok_or_else(|| {
                Error::Invalid(format!(
                    "data source `{:?}` reads files: pass `--data DIR` or set `data.path` in the config",
                    self.source
                ))
            })
        };
        let base = match self.source {
            DataSource::Latents => return self.latent_source()?.load(override_path, split),
            DataSource::Digits => digits::load(split),
            DataSource::Mnist => idx::load_mnist(&dir()?, split)?,
            DataSource::Folder => {
                let layout = folder::Layout::Images;
                folder::load(&dir()?, self.resolution, self.channels, split, layout)?
            }
            DataSource::ClipFolder => {
                let layout = folder::Layout::Clips;
                folder::load(&dir()?, self.resolution, self.channels, split, layout)?
            }
        };
        if base.is_empty() || base.shape.height == 0 || base.shape.width == 0 {
            let what = format!(
                "{:?} split of `{}` holds {} examples of {}×{}: a run needs at least one example \
                 of at least 1×1; check the files (or `--data DIR`)",
                split,
                self.source.name(),
                base.len(),
                base.shape.width,
                base.shape.height
            );
            return Err(match override_path.or(self.path.as_deref()) {
                Some(path) => Error::Data {
                    path: path.to_path_buf(),
                    message: what,
                },
                None => Error::Invalid(what),
            });
        }
        match &self.clips {
            None => Ok(base),
            Some(_) if base.shape.is_clip() => Err(Error::Invalid(format!(
                "`[data.clips]` makes clips from images, but source `{}` already holds clips: remove `[data.clips]`",
                self.source.name()
            ))),
            Some(c) => c.dataset(&base, split),
        }
    }
}

/// Deterministic hold-out rule shared by loaders without a native test split: every 5th
/// example (index ≡ 4 mod 5) is test, the rest train.
pub fn in_split(i: usize, split: Split) -> bool {
    (i % 5 == 4) == (split == Split::Test)
}
