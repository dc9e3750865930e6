//! The canvas: the joint multi-resolution state of one example as one `[C, B, B + r₁]` image —
//! the full-resolution copy (side B) on the left, the smaller copies stacked top to bottom in
//! the column beside it, zeros elsewhere. Copy r is the image padded to B×B, average-pooled by
//! B/r (MDM §3.1: D^r = avgpool) and scaled by the schedule's s_r.
//!
//! The unused corner of the column is no pixel of any resolution: the nested network writes
//! zeros there and the denoiser's output is restricted to the copies ([`Canvas::restrict`]), so
//! D = 0 = y there and no loss, target or sample ever depends on it.

use burn::tensor::{Tensor, TensorData};

use super::MultiResConfig;
use crate::data::Dataset;
use crate::unet::ImageShape;

/// Where each resolution lives on the canvas, and how its signal is scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct Canvas {
    /// The images' own shape (before padding to B×B).
    pub image: ImageShape,
    /// Side of each copy, largest (B) first.
    pub sides: Vec<usize>,
    /// s_r of each copy ([`super::ResolutionSchedule::signal_scale`]).
    pub scales: Vec<f64>,
    /// Value of the border added around images smaller than B.
    pub pad_value: f32,
}

impl Canvas {
    /// The canvas of `cfg`'s resolutions for images of `image` (which must fit in B×B).
    pub fn new(cfg: &MultiResConfig, image: ImageShape) -> Self {
        Self {
            image,
            sides: cfg.resolutions.clone(),
            scales: cfg.signal_scales(),
            pad_value: cfg.pad_value as f32,
        }
    }

    /// B, the full resolution's side.
    pub fn base(&self) -> usize {
        self.sides[0]
    }

    /// The joint state's shape `[C, B, B + r₁]` (`[C, B, B]` with one resolution).
    pub fn shape(&self) -> ImageShape {
        let b = self.base();
        ImageShape::image(
            self.image.channels,
            b,
            b + self.sides.get(1).copied().unwrap_or(0),
        )
    }

    /// Top-left corner (row, column) of copy `r`.
    pub fn origin(&self, r: usize) -> (usize, usize) {
        if r == 0 {
            (0, 0)
        } else {
            (self.sides[1..r].iter().sum(), self.base())
        }
    }

    /// Offset (rows, columns) of the image inside the padded B×B copy.
    fn image_offset(&self) -> (usize, usize) {
        let b = self.base();
        ((b - self.image.height) / 2, (b - self.image.width) / 2)
    }

    /// One image `[C, h, w]` → its canvas `[C, B, B + r₁]`.
    pub fn pack(&self, image: &[f32]) -> Vec<f32> {
        let (c, b) = (self.image.channels, self.base());
        let (h, w) = (self.image.height, self.image.width);
        let (oy, ox) = self.image_offset();
        let mut full = vec![self.pad_value; c * b * b];
        for ch in 0..c {
            for y in 0..h {
                let src = &image[(ch * h + y) * w..(ch * h + y + 1) * w];
                let at = (ch * b + oy + y) * b + ox;
                full[at..at + w].copy_from_slice(src);
            }
        }
        let shape = self.shape();
        let mut canvas = vec![0.0f32; shape.len()];
        for (r, &side) in self.sides.iter().enumerate() {
            let f = b / side;
            let (top, left) = self.origin(r);
            let scale = self.scales[r] as f32 / (f * f) as f32;
            for ch in 0..c {
                for y in 0..side {
                    for x in 0..side {
                        let mut sum = 0.0f32;
                        for dy in 0..f {
                            let row = (ch * b + y * f + dy) * b + x * f;
                            sum += full[row..row + f].iter().sum::<f32>();
                        }
                        canvas[(ch * b + top + y) * shape.width + left + x] = sum * scale;
                    }
                }
            }
        }
        canvas
    }

    /// Copy `r` of one canvas, unscaled (÷ s_r): `[C, r, r]`.
    pub fn region(&self, canvas: &[f32], r: usize) -> Vec<f32> {
        let (c, b, width) = (self.image.channels, self.base(), self.shape().width);
        let (side, (top, left)) = (self.sides[r], self.origin(r));
        let inv = (1.0 / self.scales[r]) as f32;
        let mut out = Vec::with_capacity(c * side * side);
        for ch in 0..c {
            for y in 0..side {
                let at = (ch * b + top + y) * width + left;
                out.extend(canvas[at..at + side].iter().map(|v| v * inv));
            }
        }
        out
    }

    /// The full-resolution image of one canvas, unscaled and cropped back to `[C, h, w]`.
    pub fn to_image(&self, canvas: &[f32]) -> Vec<f32> {
        let full = self.region(canvas, 0);
        let (c, b) = (self.image.channels, self.base());
        let (h, w) = (self.image.height, self.image.width);
        let (oy, ox) = self.image_offset();
        let mut out = Vec::with_capacity(c * h * w);
        for ch in 0..c {
            for y in 0..h {
                let at = (ch * b + oy + y) * b + ox;
                out.extend_from_slice(&full[at..at + w]);
            }
        }
        out
    }

    /// The shape of [`display`](Self::display): `[C, B, R·B]`.
    pub fn display_shape(&self) -> ImageShape {
        let b = self.base();
        ImageShape::image(self.image.channels, b, b * self.sides.len())
    }

    /// One canvas for looking at: every copy unscaled and enlarged (nearest) to B×B, side by
    /// side, largest first — `[C, B, R·B]`.
    pub fn display(&self, canvas: &[f32]) -> Vec<f32> {
        let (c, b, r) = (self.image.channels, self.base(), self.sides.len());
        let mut out = vec![0.0f32; c * b * b * r];
        for (k, &side) in self.sides.iter().enumerate() {
            let copy = self.region(canvas, k);
            let f = b / side;
            for ch in 0..c {
                for y in 0..b {
                    for x in 0..b {
                        out[(ch * b + y) * b * r + k * b + x] =
                            copy[(ch * side + y / f) * side + x / f];
                    }
                }
            }
        }
        out
    }

    /// Per-pixel weights `[C, B, B + r₁]` turning a canvas mean into the multi-resolution sum:
    /// mean(m ⊙ e) = Σ_r w_r·mean_r(e) with m = w_r·N/N_r on copy r (N pixels on the canvas,
    /// N_r in copy r) and 0 on the unused corner.
    pub fn weight_map(&self, weights: &[f64]) -> Vec<f32> {
        let shape = self.shape();
        let (c, n) = (self.image.channels, shape.len() as f64);
        let mut m = vec![0.0f32; shape.len()];
        for (r, &side) in self.sides.iter().enumerate() {
            let v = (weights[r] * n / (c * side * side) as f64) as f32;
            let (top, left) = self.origin(r);
            for ch in 0..c {
                for y in 0..side {
                    let at = (ch * shape.height + top + y) * shape.width + left;
                    m[at..at + side].fill(v);
                }
            }
        }
        m
    }

    /// Every image of `data` as its canvas: the training set of a multi-resolution model.
    pub fn pack_dataset(&self, data: &Dataset) -> Dataset {
        let images = (0..data.len())
            .flat_map(|i| self.pack(data.image(i)))
            .collect();
        Dataset {
            images,
            labels: data.labels.clone(),
            shape: self.shape(),
            num_classes: data.num_classes,
            class_names: data.class_names.clone(),
        }
    }

    /// A batch of canvases → each copy as it sits on the canvas (scaled):
    /// `[n, C, B, B + r₁]` → `[n, C, r, r]` for every r.
    pub fn split(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let [n, c, _, _] = x.dims();
        (0..self.sides.len())
            .map(|r| {
                let (side, (top, left)) = (self.sides[r], self.origin(r));
                x.clone()
                    .slice([0..n, 0..c, top..top + side, left..left + side])
            })
            .collect()
    }

    /// The inverse of [`split`](Self::split): copies (as on the canvas) → `[n, C, B, B + r₁]`,
    /// zeros on the unused corner.
    pub fn join(&self, mut copies: Vec<Tensor<4>>) -> Tensor<4> {
        if copies.len() == 1 {
            return copies.remove(0);
        }
        let [n, c, b, _] = copies[0].dims();
        let device = copies[0].device();
        let col = self.sides[1];
        let mut column = Vec::new();
        for copy in copies.drain(1..) {
            let side = copy.dims()[2];
            column.push(if side < col {
                Tensor::cat(
                    vec![copy, Tensor::zeros([n, c, side, col - side], &device)],
                    3,
                )
            } else {
                copy
            });
        }
        let used: usize = self.sides[1..].iter().sum();
        if used < b {
            column.push(Tensor::zeros([n, c, b - used, col], &device));
        }
        Tensor::cat(vec![copies.remove(0), Tensor::cat(column, 2)], 3)
    }

    /// x restricted to the copies: the unused corner set to 0.
    pub fn restrict(&self, x: Tensor<4>) -> Tensor<4> {
        self.join(self.split(x))
    }

    /// A batch of canvases → its full-resolution images, unscaled and cropped to `[n, C, h, w]`.
    pub fn images(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, _, _] = x.dims();
        let (oy, ox) = self.image_offset();
        let (h, w) = (self.image.height, self.image.width);
        x.slice([0..n, 0..c, oy..oy + h, ox..ox + w])
            .div_scalar(self.scales[0])
    }

    /// The per-pixel weight map as a `[1, C, B, B + r₁]` tensor for broadcasting over a batch.
    pub fn weight_tensor(&self, weights: &[f64], device: &burn::tensor::Device) -> Tensor<4> {
        let s = self.shape();
        Tensor::from_data(
            TensorData::new(self.weight_map(weights), [1, s.channels, s.height, s.width]),
            device,
        )
    }
}
