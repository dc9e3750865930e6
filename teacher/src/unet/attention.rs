//! Multi-head self-attention over the pixels of a feature map (as in the ADM / EDM U-Nets).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Initializer};
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

/// GroupNorm → 1×1 qkv → softmax(qᵀk/√d)·v → 1×1 projection (zero-initialised) → residual.
#[derive(Module, Debug)]
pub struct Attention {
    norm: GroupNorm,
    qkv: Conv2d,
    proj: Conv2d,
    heads: usize,
}

impl Attention {
    pub fn new(
        channels: usize,
        heads: usize,
        groups: usize,
        device: &burn::tensor::Device,
    ) -> Self {
        Self {
            norm: GroupNormConfig::new(groups, channels).init(device),
            qkv: Conv2dConfig::new([channels, 3 * channels], [1, 1]).init(device),
            proj: Conv2dConfig::new([channels, channels], [1, 1])
                .with_initializer(Initializer::Zeros)
                .init(device),
            heads,
        }
    }

    /// # Shapes
    /// - x: `[n, c, h, w]` → `[n, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let hd = c / self.heads;
        let qkv = self.qkv.forward(self.norm.forward(x.clone()));
        // [n, 3, heads, hd, hw] → three [n, heads, hw, hd]
        let qkv = qkv.reshape([n, 3, self.heads, hd, h * w]);
        let part = |i: usize| {
            qkv.clone()
                .narrow(1, i, 1)
                .reshape([n, self.heads, hd, h * w])
                .swap_dims(2, 3)
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let attn = softmax(
            q.matmul(k.swap_dims(2, 3)).div_scalar((hd as f64).sqrt()),
            3,
        );
        let out = attn.matmul(v).swap_dims(2, 3).reshape([n, c, h, w]);
        (x + self.proj.forward(out)).mul_scalar(std::f64::consts::FRAC_1_SQRT_2)
    }
}
