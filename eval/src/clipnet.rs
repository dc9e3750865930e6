//! The clip feature network behind "FVD (own features)": no registry ships I3D weights, so,
//! as with the LeNet behind FID, fewstep trains its own — a small 3D-convolution classifier
//! (after C3D, Tran et al. 2015) with two heads: the digit class, and whether the clip's frames
//! are in their true order or shuffled. The second head makes the features see how things move,
//! not only what is in the frames, which is what FVD must measure (Unterthiner et al. 2018).

use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::pool::{AdaptiveAvgPool3d, AdaptiveAvgPool3dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig3d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use rand::Rng;
use rand::seq::SliceRandom;
use teacher::unet::ImageShape;

/// Pooled feature map before the dense layers: (frames, height, width).
const POOLED: [usize; 3] = [2, 4, 4];

/// conv3³ → ReLU → conv3³ (stride 1,2,2) → ReLU → conv3³ (stride 2,2,2) → ReLU → adaptive
/// avg-pool 2×4×4 → linear → ReLU (features) → dropout → {class head, order head}.
#[derive(Module, Debug)]
pub struct ClipNet {
    conv1: Conv3d,
    conv2: Conv3d,
    conv3: Conv3d,
    squeeze: AdaptiveAvgPool3d,
    fc: Linear,
    dropout: Dropout,
    head: Linear,
    /// Logits of (true order, shuffled).
    order_head: Linear,
    channels: usize,
    frames: usize,
}

impl ClipNet {
    pub fn new(
        shape: ImageShape,
        widths: [usize; 2],
        feature_dim: usize,
        dropout: f64,
        num_classes: usize,
        device: &Device,
    ) -> Self {
        let [a, b] = widths;
        let conv = |cin, cout, stride: [usize; 3]| {
            Conv3dConfig::new([cin, cout], [3, 3, 3])
                .with_stride(stride)
                .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
                .init(device)
        };
        Self {
            conv1: conv(shape.channels, a, [1, 1, 1]),
            conv2: conv(a, b, [1, 2, 2]),
            conv3: conv(b, b, [2, 2, 2]),
            squeeze: AdaptiveAvgPool3dConfig::new(POOLED).init(),
            fc: LinearConfig::new(b * POOLED.iter().product::<usize>(), feature_dim).init(device),
            dropout: DropoutConfig::new(dropout).init(),
            head: LinearConfig::new(feature_dim, num_classes).init(device),
            order_head: LinearConfig::new(feature_dim, 2).init(device),
            channels: shape.channels,
            frames: shape.frames,
        }
    }

    /// Penultimate activations.
    ///
    /// # Shapes
    /// - x: `[n, c·t, h, w]` (clips as their contiguous view) in [−1, 1] → `[n, feature_dim]`
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let [n, _, h, w] = x.dims();
        let x: Tensor<5> = x.reshape([n, self.channels, self.frames, h, w]);
        let y = relu(self.conv1.forward(x));
        let y = relu(self.conv2.forward(y));
        let y = self.squeeze.forward(relu(self.conv3.forward(y)));
        relu(self.fc.forward(y.reshape([n as i32, -1])))
    }

    /// Class logits `[n, classes]`.
    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.logits_of(self.features(x))
    }

    /// Order logits `[n, 2]`: (frames in true order, frames shuffled).
    pub fn order_logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.order_logits_of(self.features(x))
    }

    /// Class logits from [`features`](Self::features).
    pub fn logits_of(&self, features: Tensor<2>) -> Tensor<2> {
        self.head.forward(self.dropout.forward(features))
    }

    /// Order logits from [`features`](Self::features).
    pub fn order_logits_of(&self, features: Tensor<2>) -> Tensor<2> {
        self.order_head.forward(self.dropout.forward(features))
    }
}

/// A clip (`[C, T, H, W]` values) with its frames in the order `perm` (frame t ← frame perm[t]).
pub fn permute_frames(clip: &[f32], shape: ImageShape, perm: &[usize]) -> Vec<f32> {
    let plane = shape.height * shape.width;
    let mut out = vec![0.0; clip.len()];
    for c in 0..shape.channels {
        for (t, &from) in perm.iter().enumerate() {
            let (dst, src) = (c * shape.frames + t, c * shape.frames + from);
            out[dst * plane..][..plane].copy_from_slice(&clip[src * plane..][..plane]);
        }
    }
    out
}

/// A uniformly random order of `frames` frames other than the identity (frames ≥ 2).
pub fn shuffled_order(frames: usize, r: &mut impl Rng) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..frames).collect();
    while perm.iter().enumerate().all(|(i, &p)| i == p) {
        perm.shuffle(r);
    }
    perm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_moves_whole_frames_of_every_channel() {
        // 2 channels × 3 frames × 1×2 pixels, value = 10·(c·3 + t) + pixel.
        let shape = ImageShape {
            channels: 2,
            height: 1,
            width: 2,
            frames: 3,
        };
        let clip: Vec<f32> = (0..6)
            .flat_map(|ct| [10.0 * ct as f32, 10.0 * ct as f32 + 1.0])
            .collect();
        let out = permute_frames(&clip, shape, &[2, 0, 1]);
        // Channel 0 frames (2, 0, 1) = values 20,0,10; channel 1 frames (5, 3, 4) = 50,30,40.
        assert_eq!(
            out,
            vec![20., 21., 0., 1., 10., 11., 50., 51., 30., 31., 40., 41.]
        );
        assert_eq!(permute_frames(&clip, shape, &[0, 1, 2]), clip);
    }

    #[test]
    fn shuffled_order_is_never_the_identity() {
        let mut r = teacher::rng::rng(0, teacher::rng::Stream::TrainStep, 0);
        for _ in 0..200 {
            let p = shuffled_order(2, &mut r);
            assert_eq!(p, vec![1, 0]);
        }
        let p = shuffled_order(8, &mut r);
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(sorted, (0..8).collect::<Vec<_>>());
    }
}
