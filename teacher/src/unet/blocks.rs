//! U-Net building blocks: residual block with embedding injection, down- and up-sampling
//! (after the DDPM / ADM U-Nets as used by EDM).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    Dropout, DropoutConfig, GroupNorm, GroupNormConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};

use super::attention::Attention;
use super::temporal::TemporalConv;

fn conv3x3(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// GroupNorm → SiLU → conv → (+ emb) → GroupNorm → SiLU → dropout → conv (zero-init), plus a
/// 1×1 skip when the channel count changes; the sum is scaled by 1/√2 (EDM `skip_scale`).
#[derive(Module, Debug)]
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    emb: Linear,
    norm2: GroupNorm,
    dropout: Dropout,
    conv2: Conv2d,
    skip: Option<Conv2d>,
    /// Mixing across frames (clips only).
    temporal: Option<TemporalConv>,
    attn: Option<Attention>,
}

/// Shape of one residual block.
pub struct ResBlockSpec {
    pub cin: usize,
    pub cout: usize,
    pub emb_dim: usize,
    pub groups: usize,
    pub dropout: f64,
    /// Heads of a self-attention layer after the block, if any.
    pub attn_heads: Option<usize>,
    /// Frames per clip and the temporal kernel; a temporal layer follows the block when > 1.
    pub frames: usize,
    pub temporal_kernel: usize,
}

impl ResBlock {
    pub fn new(s: &ResBlockSpec, device: &Device) -> Self {
        Self {
            norm1: GroupNormConfig::new(s.groups, s.cin).init(device),
            conv1: conv3x3(s.cin, s.cout, device),
            emb: LinearConfig::new(s.emb_dim, s.cout).init(device),
            norm2: GroupNormConfig::new(s.groups, s.cout).init(device),
            dropout: DropoutConfig::new(s.dropout).init(),
            conv2: Conv2dConfig::new([s.cout, s.cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_initializer(Initializer::Zeros)
                .init(device),
            skip: (s.cin != s.cout)
                .then(|| Conv2dConfig::new([s.cin, s.cout], [1, 1]).init(device)),
            temporal: (s.frames > 1)
                .then(|| TemporalConv::new(s.cout, s.groups, s.frames, s.temporal_kernel, device)),
            attn: s
                .attn_heads
                .map(|heads| Attention::new(s.cout, heads, s.groups, device)),
        }
    }

    /// # Shapes
    /// - x: `[n, cin, h, w]`, emb: `[n, emb_dim]` (already through SiLU) → `[n, cout, h, w]`;
    ///   for clips n counts frames (`[n·t, …]`, each clip's frames in order)
    pub fn forward(&self, x: Tensor<4>, emb: Tensor<2>) -> Tensor<4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let [n, c, ..] = h.dims();
        let h = h + self.emb.forward(emb).reshape([n, c, 1, 1]);
        let h = self
            .conv2
            .forward(self.dropout.forward(silu(self.norm2.forward(h))));
        let skip = match &self.skip {
            Some(conv) => conv.forward(x),
            None => x,
        };
        let mut out = (h + skip).mul_scalar(std::f64::consts::FRAC_1_SQRT_2);
        if let Some(temporal) = &self.temporal {
            out = temporal.forward(out);
        }
        match &self.attn {
            Some(attn) => attn.forward(out),
            None => out,
        }
    }
}

/// 3×3 convolution with stride 2: `[n, c, h, w]` → `[n, c, h/2, w/2]`.
#[derive(Module, Debug)]
pub struct Downsample {
    conv: Conv2d,
}

impl Downsample {
    pub fn new(channels: usize, device: &Device) -> Self {
        let conv = Conv2dConfig::new([channels, channels], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(device);
        Self { conv }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv.forward(x)
    }
}

/// Nearest-neighbour 2× upsampling (reshape + expand, which every runtime has) then a 3×3
/// convolution: `[n, c, h, w]` → `[n, c, 2h, 2w]`.
#[derive(Module, Debug)]
pub struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            conv: conv3x3(channels, channels, device),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let up = x
            .reshape([n, c, h, 1, w, 1])
            .expand([n, c, h, 2, w, 2])
            .reshape([n, c, 2 * h, 2 * w]);
        self.conv.forward(up)
    }
}
