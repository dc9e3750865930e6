//! Temporal mixing for the factorised space-time U-Net (the "pseudo-3D" layers of VDM, Ho et al.
//! 2022, and Make-A-Video, Singer et al. 2022): every 2D layer runs on each frame, and after each
//! residual block this layer convolves along time at every pixel.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};

/// x + conv_t(SiLU(GroupNorm(x))), conv_t a `kernel`-tap convolution over frames (zero padding
/// at both ends of the clip). The convolution starts at zero, so a fresh network treats frames
/// independently and learns how they couple.
#[derive(Module, Debug)]
pub struct TemporalConv {
    norm: GroupNorm,
    conv: Conv2d,
    frames: usize,
}

impl TemporalConv {
    pub fn new(
        channels: usize,
        groups: usize,
        frames: usize,
        kernel: usize,
        device: &Device,
    ) -> Self {
        let pad = kernel / 2;
        Self {
            norm: GroupNormConfig::new(groups, channels).init(device),
            // Over [n, c, t, h·w]: a k×1 kernel mixes frames, never pixels.
            conv: Conv2dConfig::new([channels, channels], [kernel, 1])
                .with_padding(PaddingConfig2d::Explicit(pad, 0, pad, 0))
                .with_initializer(Initializer::Zeros)
                .init(device),
            frames,
        }
    }

    /// # Shapes
    /// - x: `[n·t, c, h, w]`, the frames of n clips in order → `[n·t, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [nt, c, h, w] = x.dims();
        let t = self.frames;
        let y = silu(self.norm.forward(x.clone()))
            .reshape([nt / t, t, c, h * w])
            .swap_dims(1, 2);
        let y = self.conv.forward(y).swap_dims(1, 2).reshape([nt, c, h, w]);
        x + y
    }
}

/// `[n, c·t, h, w]` (a clip's contiguous view) → `[n·t, c, h, w]` (its frames as a batch).
pub fn to_frames(x: Tensor<4>, frames: usize) -> Tensor<4> {
    let [n, ct, h, w] = x.dims();
    let c = ct / frames;
    x.reshape([n, c, frames, h * w])
        .swap_dims(1, 2)
        .reshape([n * frames, c, h, w])
}

/// Inverse of [`to_frames`]: `[n·t, c, h, w]` → `[n, c·t, h, w]`.
pub fn from_frames(x: Tensor<4>, frames: usize) -> Tensor<4> {
    let [nt, c, h, w] = x.dims();
    let n = nt / frames;
    x.reshape([n, frames, c, h * w])
        .swap_dims(1, 2)
        .reshape([n, c * frames, h, w])
}

/// Repeat a per-clip embedding for each of its frames: `[n, e]` → `[n·t, e]`.
pub fn per_frame(emb: Tensor<2>, frames: usize) -> Tensor<2> {
    let [n, e] = emb.dims();
    emb.reshape([n, 1, e])
        .expand([n, frames, e])
        .reshape([n * frames, e])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn vals(t: Tensor<4>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn frames_view_is_the_clip_layout_and_round_trips() {
        let d = Device::flex();
        // 1 clip, c = 2, t = 3, 1×1 pixels: planes (c, t) hold 10c + t.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.0f32, 1., 2., 10., 11., 12.], [1, 6, 1, 1]),
            &d,
        );
        let f = to_frames(x.clone(), 3);
        assert_eq!(f.dims(), [3, 2, 1, 1]);
        // Frame t holds (channel 0, channel 1) = (t, 10 + t).
        assert_eq!(vals(f.clone()), vec![0., 10., 1., 11., 2., 12.]);
        assert_eq!(vals(from_frames(f, 3)), vals(x));
    }

    #[test]
    fn fresh_temporal_layer_is_the_identity() {
        // The temporal convolution starts at zero, so x + conv_t(…) = x exactly.
        let d = Device::flex();
        d.seed(5);
        let layer = TemporalConv::new(4, 2, 3, 3, &d);
        let x = Tensor::<4>::random([6, 4, 2, 2], burn::tensor::Distribution::Default, &d);
        assert_eq!(vals(layer.forward(x.clone())), vals(x));
    }
}
