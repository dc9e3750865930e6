//! Moving digits (Srivastava et al. 2015, "Moving MNIST"): digits from an image dataset
//! bouncing inside a larger frame, one clip per example, labelled with its first digit's class.
//! Deterministic: clip i depends only on (seed, i) and the source images.
//!
//! A clip is `[C, T, H, W]` row-major (channels, then frames), pixels in [−1, 1] with −1 the
//! background; digits that overlap combine by the brighter pixel, as in the original.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::Dataset;
use crate::error::{Error, Result};
use crate::rng::{Stream, rng};
use crate::unet::ImageShape;

/// How clips are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MovingDigitsConfig {
    /// Frames per clip, T.
    pub frames: usize,
    /// Side of the square frame, H = W; at least the source digits' side.
    pub size: usize,
    /// Digits per clip (the label is the first one's class).
    pub digits: usize,
    /// Largest speed per axis, in pixels per frame (each axis draws from −max…max, not both 0).
    pub max_speed: i64,
    /// Clips made from the train split's images (a dataset config's train set).
    pub train_clips: usize,
    /// Clips made from the test split's images (its test set).
    pub test_clips: usize,
}

impl Default for MovingDigitsConfig {
    fn default() -> Self {
        Self {
            frames: 8,
            size: 16,
            digits: 1,
            max_speed: 2,
            train_clips: 10_000,
            test_clips: 1_000,
        }
    }
}

impl MovingDigitsConfig {
    /// The clips of one split as a dataset of shape `[C, T, H, W]`: `train_clips` (or
    /// `test_clips`) clips from that split's images, with a seed per split (0 train, 1 test) so
    /// the two never share a trajectory draw.
    pub fn dataset(&self, images: &Dataset, split: super::Split) -> Result<Dataset> {
        let (n, seed) = match split {
            super::Split::Train => (self.train_clips, 0),
            super::Split::Test => (self.test_clips, 1),
        };
        if n == 0 {
            return Err(Error::Invalid(format!(
                "`data.clips.{}_clips` is 0: ask for at least one clip",
                if seed == 0 { "train" } else { "test" }
            )));
        }
        moving_digits(images, self, n, seed)
    }
}

/// Position along one axis after a step of `v` inside `[0, lim]`, reflecting off the walls;
/// returns the new position and velocity.
pub fn bounce(p: i64, v: i64, lim: i64) -> (i64, i64) {
    if lim == 0 {
        return (0, v);
    }
    let (mut p, mut v) = (p + v, v);
    // Reflect until inside (a speed larger than the room reflects more than once).
    while p < 0 || p > lim {
        if p < 0 {
            p = -p;
        } else {
            p = 2 * lim - p;
        }
        v = -v;
    }
    (p, v)
}

/// `n` clips `[C, T, H, W]` from `src` (digits drawn uniformly, positions and velocities from
/// the seed), as a dataset with `src`'s classes.
pub fn moving_digits(
    src: &Dataset,
    cfg: &MovingDigitsConfig,
    n: usize,
    seed: u64,
) -> Result<Dataset> {
    let s = src.shape;
    if cfg.size < s.height.max(s.width) || cfg.frames == 0 || cfg.digits == 0 || src.is_empty() {
        return Err(Error::Invalid(format!(
            "moving digits: frames = {}, digits = {}, size = {} must be ≥ 1, ≥ 1 and ≥ the source \
             digits' side {} (and the source must hold images)",
            cfg.frames,
            cfg.digits,
            cfg.size,
            s.height.max(s.width)
        )));
    }
    if cfg.max_speed < 1 {
        return Err(Error::Invalid(format!(
            "moving digits: max_speed = {} must be ≥ 1 pixel per frame",
            cfg.max_speed
        )));
    }
    let shape = ImageShape {
        channels: s.channels,
        height: cfg.size,
        width: cfg.size,
        frames: cfg.frames,
    };
    let (t_n, hw, clip_len) = (cfg.frames, cfg.size * cfg.size, shape.len());
    let (lim_y, lim_x) = ((cfg.size - s.height) as i64, (cfg.size - s.width) as i64);
    let mut data = vec![-1.0f32; n * clip_len];
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let mut r = rng(seed, Stream::Data, i as u64);
        let clip = &mut data[i * clip_len..(i + 1) * clip_len];
        for d in 0..cfg.digits {
            let k = r.random_range(0..src.len());
            if d == 0 {
                labels.push(src.labels[k]);
            }
            let (mut y, mut x) = (r.random_range(0..=lim_y), r.random_range(0..=lim_x));
            let (mut vy, mut vx) = (0, 0);
            while vy == 0 && vx == 0 {
                vy = r.random_range(-cfg.max_speed..=cfg.max_speed);
                vx = r.random_range(-cfg.max_speed..=cfg.max_speed);
            }
            let img = src.image(k);
            for t in 0..t_n {
                for c in 0..s.channels {
                    for dy in 0..s.height {
                        for dx in 0..s.width {
                            let v = img[(c * s.height + dy) * s.width + dx];
                            let at =
                                (c * t_n + t) * hw + (y as usize + dy) * cfg.size + x as usize + dx;
                            clip[at] = clip[at].max(v);
                        }
                    }
                }
                (y, vy) = bounce(y, vy, lim_y);
                (x, vx) = bounce(x, vx, lim_x);
            }
        }
    }
    Ok(Dataset {
        images: data,
        labels,
        shape,
        num_classes: src.num_classes,
        class_names: src.class_names.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_reflects_off_both_walls() {
        // Room [0, 5]: 4 + 3 = 7 → reflected to 2·5 − 7 = 3, moving back.
        assert_eq!(bounce(4, 3, 5), (3, -3));
        // 1 − 3 = −2 → 2, moving forward.
        assert_eq!(bounce(1, -3, 5), (2, 3));
        // Inside: plain step.
        assert_eq!(bounce(2, 2, 5), (4, 2));
        // Faster than the room is wide: 0 + 12 = 12 → −2 → 2 (two reflections, v back to +).
        assert_eq!(bounce(0, 12, 5), (2, 12));
    }
}
