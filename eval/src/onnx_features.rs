//! Features from an ONNX file the user brings (Inception-v3 for the standard FID), run by tract,
//! a pure-Rust ONNX runtime, so no Python and no download is needed.
//!
//! The file must follow pytorch-fid's `InceptionV3` contract: input `[N, 3, 299, 299]` RGB in
//! [0, 1] (the network normalises to [−1, 1] itself), output the pool features `[N, D]` or
//! `[N, D, 1, 1]` (D = 2048 for Inception-v3's final average pool). Images are brought there the
//! way pytorch-fid does: grey replicated to RGB, then bilinear resize to 299×299 with
//! `align_corners = False` (PyTorch's `F.interpolate` convention).
//!
//! For clips (FVD) the file follows the I3D contract of the FVD reference code (Unterthiner et
//! al. 2018): input `[N, 3, T, 224, 224]` RGB in [−1, 1], output `[N, D]` (D = 400 Kinetics
//! logits for the reference I3D). Each frame is brought there as above, at 224×224, and kept
//! in [−1, 1].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

use teacher::unet::ImageShape;

use crate::error::{EvalError, Result};

/// Side of the square input Inception-v3 takes.
pub const INPUT_SIDE: usize = 299;
/// Side of the square frames I3D takes.
pub const CLIP_SIDE: usize = 224;
/// Images per tract call; the last call is padded with black images whose rows are dropped.
pub const ONNX_BATCH: usize = 16;

/// A loaded ONNX feature network.
pub struct OnnxFeatures {
    plan: Arc<TypedRunnableModel>,
    path: PathBuf,
    /// Images per call the plan was optimised for (`ONNX_BATCH`, or 1 for a fixed-batch file).
    batch: usize,
    /// Feature dimension (product of the output's non-batch dims).
    pub dim: usize,
    /// Frames per clip for a clip (I3D) network; `None` for an image (Inception) network.
    pub frames: Option<usize>,
}

/// Input dims for `batch` examples: `[batch, 3, 299, 299]`, or `[batch, 3, T, 224, 224]` for
/// a clip network of T frames.
fn input_dims(frames: Option<usize>, batch: usize) -> Vec<usize> {
    match frames {
        Some(t) => vec![batch, 3, t, CLIP_SIDE, CLIP_SIDE],
        None => vec![batch, 3, INPUT_SIDE, INPUT_SIDE],
    }
}

impl OnnxFeatures {
    fn dims(&self, batch: usize) -> Vec<usize> {
        input_dims(self.frames, batch)
    }

    /// Input values per example.
    fn per(&self) -> usize {
        self.dims(1).iter().product()
    }
}

impl OnnxFeatures {
    /// Load and optimise `path` for `[batch, 3, 299, 299]` inputs, then probe its output size.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_as(path, None)
    }

    /// Load `path` as a clip network (I3D contract) for clips of `frames` frames.
    pub fn load_clip(path: &Path, frames: usize) -> Result<Self> {
        Self::load_as(path, Some(frames))
    }

    fn load_as(path: &Path, frames: Option<usize>) -> Result<Self> {
        let err = |message: String| EvalError::Features {
            path: path.to_path_buf(),
            message,
        };
        if !path.is_file() {
            return Err(err(
                "no such file: pass an Inception-v3 ONNX file (pytorch-fid's `InceptionV3` exported with \
                 torch.onnx.export), a feature directory from `fewstep eval train-features`, or `pixels`"
                    .into(),
            ));
        }
        let model = tract_onnx::onnx().model_for_path(path).map_err(|e| {
            err(format!(
                "is not a readable ONNX model ({e:#}); re-export it with torch.onnx.export"
            ))
        })?;
        let plan_for = |batch: usize| -> TractResult<Arc<TypedRunnableModel>> {
            model
                .clone()
                .with_input_fact(0, f32::fact(input_dims(frames, batch)).into())?
                .into_optimized()?
                .into_runnable()
        };
        // A file with a dynamic batch axis takes ONNX_BATCH; one fixed at batch 1 takes 1.
        let (plan, batch) = match plan_for(ONNX_BATCH) {
            Ok(p) => (p, ONNX_BATCH),
            Err(first) => match plan_for(1) {
                Ok(p) => (p, 1),
                Err(_) => {
                    let contract = match frames {
                        Some(t) => format!(
                            "[N, 3, {t}, {CLIP_SIDE}, {CLIP_SIDE}] float input ({first:#}); for clips the \
                             file must follow the FVD reference's I3D input contract"
                        ),
                        None => format!(
                            "[N, 3, {INPUT_SIDE}, {INPUT_SIDE}] float input ({first:#}); the file must \
                             follow pytorch-fid's InceptionV3 input contract"
                        ),
                    };
                    return Err(err(format!("does not take a {contract}")));
                }
            },
        };
        let mut me = Self {
            plan,
            path: path.to_path_buf(),
            batch,
            dim: 0,
            frames,
        };
        let probe = me.run(&vec![0.0; batch * me.per()])?;
        me.dim = probe.len() / batch;
        if me.dim == 0 {
            return Err(err(
                "has an empty output: expected [N, D] pool features".into()
            ));
        }
        Ok(me)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One tract call on `batch` preprocessed images; the output flattened.
    fn run(&self, input: &[f32]) -> Result<Vec<f32>> {
        let err = |message: String| EvalError::Features {
            path: self.path.clone(),
            message,
        };
        let x = Tensor::from_shape(&self.dims(self.batch), input)
            .map_err(|e| err(format!("input tensor: {e:#}")))?;
        let out = self
            .plan
            .run(tvec!(x.into()))
            .map_err(|e| err(format!("failed to run ({e:#})")))?;
        let y = out
            .first()
            .ok_or_else(|| err("has no output".into()))?
            .to_plain_array_view::<f32>()
            .map_err(|e| err(format!("output is not f32 ({e:#})")))?
            .iter()
            .copied()
            .collect();
        Ok(y)
    }

    /// Features of `images` (`[n·C·H·W]` in [−1, 1], C = 1 or 3; clips `[n·C·T·H·W]` for a clip
    /// network), n rows of `dim` values.
    pub fn features(&self, images: &[f32], shape: ImageShape) -> Result<Vec<f32>> {
        if self.frames.unwrap_or(1) != shape.frames {
            return Err(EvalError::Features {
                path: self.path.clone(),
                message: format!(
                    "was loaded for {} frame(s) but the examples have {}: load it for this data",
                    self.frames.unwrap_or(1),
                    shape.frames
                ),
            });
        }
        let len = shape.len();
        let per = self.per();
        let mut out = Vec::with_capacity(images.len() / len * self.dim);
        for chunk in images.chunks(len * self.batch) {
            let n = chunk.len() / len;
            let mut input = vec![0.0f32; self.batch * per];
            for (i, img) in chunk.chunks(len).enumerate() {
                let dst = &mut input[i * per..(i + 1) * per];
                match self.frames {
                    Some(_) => preprocess_clip(img, shape, dst),
                    None => preprocess(img, shape, dst),
                }
            }
            let y = self.run(&input)?;
            out.extend_from_slice(&y[..n * self.dim]);
        }
        Ok(out)
    }
}

/// One image in [−1, 1] (C = 1 or 3) → RGB in [0, 1] at 299×299 (bilinear, `align_corners=False`).
pub fn preprocess(img: &[f32], shape: ImageShape, out: &mut [f32]) {
    let plane = shape.height * shape.width;
    let side = INPUT_SIDE;
    for c in 0..3 {
        let src_c = if shape.channels == 1 { 0 } else { c };
        let src = &img[src_c * plane..(src_c + 1) * plane];
        let dst = &mut out[c * side * side..(c + 1) * side * side];
        resize_bilinear(src, shape.height, shape.width, dst, side, side);
        for v in dst.iter_mut() {
            *v = (*v + 1.0) / 2.0;
        }
    }
}

/// One clip in [−1, 1] (`[C, T, H, W]`, C = 1 or 3) → RGB `[3, T, 224, 224]` in [−1, 1], each
/// frame resized as in [`preprocess`].
pub fn preprocess_clip(clip: &[f32], shape: ImageShape, out: &mut [f32]) {
    let (plane, side, t_n) = (shape.height * shape.width, CLIP_SIDE, shape.frames);
    for c in 0..3 {
        let src_c = if shape.channels == 1 { 0 } else { c };
        for t in 0..t_n {
            let src = &clip[(src_c * t_n + t) * plane..][..plane];
            let dst = &mut out[(c * t_n + t) * side * side..][..side * side];
            resize_bilinear(src, shape.height, shape.width, dst, side, side);
        }
    }
}

/// PyTorch's source coordinate for `align_corners = False`: (dst + ½)·in/out − ½, clamped at 0;
/// returns the two taps and the weight of the second.
fn taps(dst: usize, n_in: usize, n_out: usize) -> (usize, usize, f32) {
    let scale = n_in as f32 / n_out as f32;
    let s = ((dst as f32 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (s as usize).min(n_in - 1);
    let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
    (i0, i1, s - i0 as f32)
}

/// Bilinear resize of one `[h, w]` plane into `[oh, ow]`, as `F.interpolate(mode="bilinear",
/// align_corners=False)` without antialiasing.
pub fn resize_bilinear(src: &[f32], h: usize, w: usize, dst: &mut [f32], oh: usize, ow: usize) {
    let xs: Vec<_> = (0..ow).map(|x| taps(x, w, ow)).collect();
    for y in 0..oh {
        let (y0, y1, ly) = taps(y, h, oh);
        for (x, &(x0, x1, lx)) in xs.iter().enumerate() {
            let top = src[y0 * w + x0] * (1.0 - lx) + src[y0 * w + x1] * lx;
            let bottom = src[y1 * w + x0] * (1.0 - lx) + src[y1 * w + x1] * lx;
            dst[y * ow + x] = top * (1.0 - ly) + bottom * ly;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_matches_pytorch_hand_values() {
        // F.interpolate([[0, 1], [2, 3]], size=(4, 4), mode="bilinear", align_corners=False):
        // source x of output column j is (j + ½)/2 − ½ = −¼ → 0, ¼, ¾, 1¼ → clamp at the edge,
        // so each row is [a, a + ¼(b−a), a + ¾(b−a), b]; the first row is [0, .25, .75, 1] and
        // the second (source y = ¼) is the first plus ¼·2.
        let src = [0.0, 1.0, 2.0, 3.0];
        let mut dst = [0.0; 16];
        resize_bilinear(&src, 2, 2, &mut dst, 4, 4);
        let want = [
            0.0, 0.25, 0.75, 1.0, //
            0.5, 0.75, 1.25, 1.5, //
            1.5, 1.75, 2.25, 2.5, //
            2.0, 2.25, 2.75, 3.0,
        ];
        for (a, b) in dst.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{dst:?}");
        }
    }
}
