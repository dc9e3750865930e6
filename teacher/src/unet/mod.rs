//! The class-conditional U-Net F(c_in·x; c_noise, class, w) whose shape is data (channel
//! multipliers, blocks per level, attention resolutions), after the ADM U-Net used by EDM.

pub mod attention;
pub mod blocks;
pub mod embedding;
pub mod nested;
pub mod temporal;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    Embedding, EmbeddingConfig, GroupNorm, GroupNormConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::tensor::activation::silu;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use blocks::{Downsample, ResBlock, ResBlockSpec, Upsample};
use embedding::sinusoidal;

/// The network's shape. Every field has a default suited to 8×8 digits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UNetConfig {
    /// Base channel count; level k has `model_channels · channel_mult[k]` channels.
    pub model_channels: usize,
    /// Channel multiplier per resolution level; each level after the first halves the resolution.
    pub channel_mult: Vec<usize>,
    /// Residual blocks per level in the encoder (the decoder has one more, as in ADM).
    pub num_blocks: usize,
    /// Feature-map sizes (after padding) at which a self-attention layer follows each block.
    pub attn_resolutions: Vec<usize>,
    /// Heads of each self-attention layer.
    pub attn_heads: usize,
    /// Dropout probability inside residual blocks (EDM uses 0.1 on CIFAR-10).
    pub dropout: f64,
    /// Groups of every GroupNorm; must divide every level's channel count.
    pub norm_groups: usize,
    /// Scale s of c_noise before the sinusoidal embedding, 1000/4 so that c_noise = ln(σ)/4 spans
    /// the DDPM timestep range the frequencies were designed for (as the consistency-models code).
    pub noise_embedding_scale: f64,
    /// Scale of the extra scalar (the guidance weight w of students) before its embedding.
    pub extra_embedding_scale: f64,
    /// Clips only: taps of the temporal convolution after each residual block (odd; default 3).
    #[serde(
        default = "default_temporal_kernel",
        skip_serializing_if = "is_default_temporal_kernel"
    )]
    pub temporal_kernel: usize,
}

fn default_temporal_kernel() -> usize {
    3
}

fn is_default_temporal_kernel(k: &usize) -> bool {
    *k == default_temporal_kernel()
}

impl Default for UNetConfig {
    fn default() -> Self {
        Self {
            model_channels: 32,
            channel_mult: vec![1, 2],
            num_blocks: 2,
            attn_resolutions: vec![4],
            attn_heads: 1,
            dropout: 0.0,
            norm_groups: 8,
            noise_embedding_scale: 250.0,
            extra_embedding_scale: 100.0,
            temporal_kernel: default_temporal_kernel(),
        }
    }
}

/// Shape of one example: an image `[C, H, W]`, or a clip `[C, T, H, W]` of T frames.
///
/// Tensors carry a clip as its contiguous view `[C·T, H, W]` (the [`planes`](Self::planes)),
/// so everything shape-agnostic — preconditioning, losses, samplers, students, export — works on
/// clips unchanged; only the U-Net and the clip feature network view the planes as frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Frames T of a clip; 1 for images (and left out of files then, so image checkpoints and
    /// configs read the same as before clips existed).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub frames: usize,
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl ImageShape {
    /// An image shape `[C, H, W]`.
    pub fn image(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
            frames: 1,
        }
    }

    /// Planes of the tensor's channel axis: C·T.
    pub fn planes(&self) -> usize {
        self.channels * self.frames
    }

    /// Values per example: C·T·H·W.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.planes() * self.height * self.width
    }

    /// One frame's shape `[C, H, W]`.
    pub fn frame(&self) -> Self {
        Self::image(self.channels, self.height, self.width)
    }

    pub fn is_clip(&self) -> bool {
        self.frames > 1
    }
}

impl UNetConfig {
    /// Reject shapes no U-Net can be built with; each error names the `model.*` key and the range.
    pub fn validate(&self) -> Result<()> {
        let m = self;
        // Upper bounds far above any CPU- or single-GPU-sized net, so that a typo is an error,
        // not an allocation that aborts the process.
        let bounds = [
            ("model.model_channels", m.model_channels, 1024),
            ("model.num_blocks", m.num_blocks, 16),
            ("model.channel_mult (levels)", m.channel_mult.len(), 8),
            (
                "model.channel_mult (largest)",
                m.channel_mult.iter().copied().max().unwrap_or(1),
                16,
            ),
            ("model.attn_heads", m.attn_heads, 64),
        ];
        if let Some((k, v, max)) = bounds.iter().find(|(_, v, max)| v > max) {
            return Err(Error::value(k, v, &format!("must be ≤ {max}")));
        }
        if m.model_channels == 0 {
            return Err(Error::value(
                "model.model_channels",
                m.model_channels,
                "must be > 0",
            ));
        }
        if m.channel_mult.is_empty() || m.channel_mult.contains(&0) {
            return Err(Error::value(
                "model.channel_mult",
                format!("{:?}", m.channel_mult),
                "needs ≥ 1 level, all > 0",
            ));
        }
        if m.num_blocks == 0 {
            return Err(Error::value(
                "model.num_blocks",
                m.num_blocks,
                "must be ≥ 1",
            ));
        }
        if m.norm_groups == 0
            || m.channel_mult
                .iter()
                .any(|k| !(k * m.model_channels).is_multiple_of(m.norm_groups))
        {
            return Err(Error::value(
                "model.norm_groups",
                m.norm_groups,
                "must divide every level's channel count (model_channels × channel_mult[k])",
            ));
        }
        if m.attn_heads == 0
            || m.channel_mult
                .iter()
                .any(|k| !(k * m.model_channels).is_multiple_of(m.attn_heads))
        {
            return Err(Error::value(
                "model.attn_heads",
                m.attn_heads,
                "must be ≥ 1 and divide every level's channel count",
            ));
        }
        if m.temporal_kernel.is_multiple_of(2) {
            return Err(Error::value(
                "model.temporal_kernel",
                m.temporal_kernel,
                "must be odd (1, 3, 5, …) so frames stay centred",
            ));
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return Err(Error::value(
                "model.dropout",
                m.dropout,
                "must be in [0, 1)",
            ));
        }
        Ok(())
    }

    /// The feature-map sizes of the levels for examples of `shape` (after padding), largest first.
    pub fn resolutions(&self, shape: ImageShape) -> Vec<usize> {
        let m = self.size_multiple();
        let top = shape.height.div_ceil(m) * m;
        (0..self.channel_mult.len()).map(|k| top >> k).collect()
    }

    /// Reject levels the image does not have (2^(levels−1) > its side) and attention
    /// resolutions no level has.
    pub fn check_shape(&self, shape: ImageShape) -> Result<()> {
        let side = shape.height.min(shape.width);
        if self.size_multiple() > side {
            return Err(Error::value(
                "model.channel_mult",
                format!("{:?}", self.channel_mult),
                &format!(
                    "has {} levels, but {}×{} images allow at most {} (each level halves the side)",
                    self.channel_mult.len(),
                    shape.width,
                    shape.height,
                    side.max(1).ilog2() + 1
                ),
            ));
        }
        let have = self.resolutions(shape);
        if let Some(r) = self.attn_resolutions.iter().find(|r| !have.contains(r)) {
            return Err(Error::value(
                "model.attn_resolutions",
                format!("{:?}", self.attn_resolutions),
                &format!(
                    "{r} is no feature-map size of this net on {}×{} images: use some of {have:?} (or [] for none)",
                    shape.width, shape.height
                ),
            ));
        }
        Ok(())
    }

    /// The multiple of which height and width are padded to (2^(levels−1)).
    pub fn size_multiple(&self) -> usize {
        1 << (self.channel_mult.len().saturating_sub(1))
    }

    /// Build the network for examples of `shape` and `num_classes` classes (plus the null class).
    /// A clip shape (frames > 1) gives the factorised space-time U-Net: the same 2D layers on
    /// every frame, and a temporal convolution after each residual block.
    pub fn init(&self, shape: ImageShape, num_classes: usize, device: &Device) -> UNet {
        self.init_with_inputs(shape, shape.planes(), num_classes, device)
    }

    /// [`init`](Self::init) for a network whose input has `in_planes` planes (the example's
    /// own and, e.g., a latent decoder's upsampled condition beside them); it still outputs
    /// the example's planes.
    pub fn init_with_inputs(
        &self,
        shape: ImageShape,
        in_planes: usize,
        num_classes: usize,
        device: &Device,
    ) -> UNet {
        let ch = self.model_channels;
        let emb_dim = 4 * ch;
        let m = self.size_multiple();
        // Built in this order (encoder, middle, decoder, then the rest) so that random
        // initialisation draws as it always has.
        let mut widths = Widths {
            cur: ch,
            res: shape.height.div_ceil(m) * m,
            skips: vec![ch],
        };
        let enc = self.init_encoder(shape, &mut widths, device);
        let mid = self.init_mid(shape, &widths, device);
        let dec = self.init_decoder(shape, &mut widths, device);
        let cur = widths.cur;
        let pad3 = PaddingConfig2d::Explicit(1, 1, 1, 1);
        UNet {
            conv_in: Conv2dConfig::new([in_planes / shape.frames.max(1), ch], [3, 3])
                .with_padding(pad3.clone())
                .init(device),
            noise_mlp: [
                LinearConfig::new(ch, emb_dim).init(device),
                LinearConfig::new(emb_dim, emb_dim).init(device),
            ]
            .into(),
            class_emb: EmbeddingConfig::new(num_classes + 1, emb_dim).init(device),
            extra_mlp: LinearConfig::new(ch, emb_dim)
                .with_initializer(Initializer::Zeros)
                .init(device),
            enc,
            mid,
            dec,
            norm_out: GroupNormConfig::new(self.norm_groups, cur).init(device),
            conv_out: Conv2dConfig::new([cur, shape.channels], [3, 3])
                .with_padding(pad3)
                .with_initializer(Initializer::Zeros)
                .init(device),
            model_channels: ch,
            size_multiple: m,
            frames: shape.frames,
            noise_embedding_scale: self.noise_embedding_scale,
            extra_embedding_scale: self.extra_embedding_scale,
        }
    }

    /// The spec of a residual block from `cin` to `cout` channels at feature-map size `res`.
    fn block_spec(&self, shape: ImageShape, cin: usize, cout: usize, res: usize) -> ResBlockSpec {
        ResBlockSpec {
            cin,
            cout,
            emb_dim: 4 * self.model_channels,
            groups: self.norm_groups,
            dropout: self.dropout,
            attn_heads: self
                .attn_resolutions
                .contains(&res)
                .then_some(self.attn_heads),
            frames: shape.frames,
            temporal_kernel: self.temporal_kernel,
        }
    }

    /// The encoder levels: `num_blocks` residual blocks each, then a downsample on all but the
    /// last; records every output's channel count as a skip.
    fn init_encoder(&self, shape: ImageShape, w: &mut Widths, device: &Device) -> Vec<EncLevel> {
        let ch = self.model_channels;
        let mut enc = Vec::new();
        for (level, mult) in self.channel_mult.iter().enumerate() {
            let cout = ch * mult;
            let mut blocks = Vec::new();
            for _ in 0..self.num_blocks {
                blocks.push(ResBlock::new(
                    &self.block_spec(shape, w.cur, cout, w.res),
                    device,
                ));
                w.cur = cout;
                w.skips.push(w.cur);
            }
            let down = (level + 1 < self.channel_mult.len()).then(|| {
                w.skips.push(w.cur);
                Downsample::new(w.cur, device)
            });
            if down.is_some() {
                w.res /= 2;
            }
            enc.push(EncLevel { blocks, down });
        }
        enc
    }

    /// The two middle blocks at the lowest resolution, the first always with attention.
    fn init_mid(&self, shape: ImageShape, w: &Widths, device: &Device) -> Vec<ResBlock> {
        let (cur, res) = (w.cur, w.res);
        vec![
            ResBlock::new(
                &ResBlockSpec {
                    attn_heads: Some(self.attn_heads),
                    ..self.block_spec(shape, cur, cur, res)
                },
                device,
            ),
            ResBlock::new(&self.block_spec(shape, cur, cur, res), device),
        ]
    }

    /// The decoder levels: `num_blocks + 1` residual blocks each, every one taking a skip, then
    /// an upsample on all but the first level.
    fn init_decoder(&self, shape: ImageShape, w: &mut Widths, device: &Device) -> Vec<DecLevel> {
        let ch = self.model_channels;
        let mut dec = Vec::new();
        for (level, mult) in self.channel_mult.iter().enumerate().rev() {
            let cout = ch * mult;
            let mut blocks = Vec::new();
            for _ in 0..=self.num_blocks {
                let skip = w
                    .skips
                    .pop()
                    .expect("one skip per encoder output, by construction");
                blocks.push(ResBlock::new(
                    &self.block_spec(shape, w.cur + skip, cout, w.res),
                    device,
                ));
                w.cur = cout;
            }
            let up = (level > 0).then(|| Upsample::new(w.cur, device));
            if up.is_some() {
                w.res *= 2;
            }
            dec.push(DecLevel { blocks, up });
        }
        dec
    }
}

/// Channel bookkeeping while [`UNetConfig::init`] builds the levels: the current channel count
/// and feature-map size, and the channel counts of the skips not yet consumed.
struct Widths {
    cur: usize,
    res: usize,
    skips: Vec<usize>,
}

#[derive(Module, Debug)]
pub struct EncLevel {
    blocks: Vec<ResBlock>,
    down: Option<Downsample>,
}

#[derive(Module, Debug)]
pub struct DecLevel {
    blocks: Vec<ResBlock>,
    up: Option<Upsample>,
}

/// The U-Net F. Build it with [`UNetConfig::init`].
#[derive(Module, Debug)]
pub struct UNet {
    conv_in: Conv2d,
    noise_mlp: Vec<Linear>,
    class_emb: Embedding,
    /// The extra scalar slot (zero-initialised, so a network that never sees it is unchanged).
    extra_mlp: Linear,
    enc: Vec<EncLevel>,
    mid: Vec<ResBlock>,
    dec: Vec<DecLevel>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    model_channels: usize,
    size_multiple: usize,
    /// Frames per clip (1 for images).
    frames: usize,
    noise_embedding_scale: f64,
    extra_embedding_scale: f64,
}

impl UNet {
    /// Channels the input convolution takes.
    pub fn in_channels(&self) -> usize {
        self.conv_in.weight.dims()[1]
    }

    /// # Shapes
    /// - x: `[n, c, h, w]` (already scaled by c_in), c_noise: `[n]`, class: `[n]`,
    ///   extra: `[n]` → `[n, c, h, w]`; a clip model takes and returns `[n, c·t, h, w]`
    pub fn forward(
        &self,
        x: Tensor<4>,
        c_noise: Tensor<1>,
        class: Tensor<1, Int>,
        extra: Option<Tensor<1>>,
    ) -> Tensor<4> {
        let [n, _, h, w] = x.dims();
        let mut emb = self.embed(n, c_noise, class, extra);
        // Clips: the frames become the batch of the 2D layers, each with its clip's embedding.
        let (x, n) = if self.frames > 1 {
            emb = temporal::per_frame(emb, self.frames);
            let x = temporal::to_frames(x, self.frames);
            let nt = x.dims()[0];
            (x, nt)
        } else {
            (x, n)
        };

        // Pad to a size every level divides; cropped back at the end.
        let m = self.size_multiple;
        let (ph, pw) = (h.div_ceil(m) * m - h, w.div_ceil(m) * m - w);
        let x = if ph + pw > 0 {
            x.pad((0, pw, 0, ph), PadMode::Constant(0.0))
        } else {
            x
        };

        let out = self.backbone(x, emb);
        let c = out.dims()[1];
        let out = if ph + pw > 0 {
            out.slice([0..n, 0..c, 0..h, 0..w])
        } else {
            out
        };
        if self.frames > 1 {
            temporal::from_frames(out, self.frames)
        } else {
            out
        }
    }

    /// The conditioning embedding: MLP(sinusoid(c_noise)) + class embedding (+ the extra
    /// scalar's), then SiLU.
    ///
    /// # Shapes
    /// - c_noise, class, extra: `[n]` → `[n, 4·model_channels]`
    fn embed(
        &self,
        n: usize,
        c_noise: Tensor<1>,
        class: Tensor<1, Int>,
        extra: Option<Tensor<1>>,
    ) -> Tensor<2> {
        let mut emb = sinusoidal(c_noise, self.model_channels, self.noise_embedding_scale);
        emb = self.noise_mlp[1].forward(silu(self.noise_mlp[0].forward(emb)));
        let [_, e] = emb.dims();
        emb = emb
            + self
                .class_emb
                .forward(class.reshape([n, 1]))
                .reshape([n, e]);
        if let Some(extra) = extra {
            emb = emb
                + self.extra_mlp.forward(sinusoidal(
                    extra,
                    self.model_channels,
                    self.extra_embedding_scale,
                ));
        }
        silu(emb)
    }

    /// Input convolution, encoder, middle, decoder (fed the encoder's skips) and output head on
    /// padded 2D inputs.
    ///
    /// # Shapes
    /// - x: `[n, c, h, w]` with h, w multiples of `size_multiple`, emb: `[n, e]` → `[n, c, h, w]`
    fn backbone(&self, x: Tensor<4>, emb: Tensor<2>) -> Tensor<4> {
        self.backbone_with(x, emb, &mut Plain)
    }

    /// [`backbone`](Self::backbone) with `hooks` called where a nested network joins in: on
    /// entering level k ≥ 1 (the downsampled features, before they become a skip) and on
    /// leaving level k ≥ 1 of the decoder (before its upsample).
    fn backbone_with(
        &self,
        x: Tensor<4>,
        emb: Tensor<2>,
        hooks: &mut impl LevelHooks,
    ) -> Tensor<4> {
        let mut hcur = self.conv_in.forward(x);
        let mut skips = vec![hcur.clone()];
        for (k, level) in self.enc.iter().enumerate() {
            for block in &level.blocks {
                hcur = block.forward(hcur, emb.clone());
                skips.push(hcur.clone());
            }
            if let Some(down) = &level.down {
                hcur = hooks.enter(k + 1, down.forward(hcur));
                skips.push(hcur.clone());
            }
        }
        for block in &self.mid {
            hcur = block.forward(hcur, emb.clone());
        }
        let levels = self.dec.len();
        for (i, level) in self.dec.iter().enumerate() {
            for block in &level.blocks {
                let skip = skips
                    .pop()
                    .expect("one skip per decoder block, by construction");
                hcur = block.forward(Tensor::cat(vec![hcur, skip], 1), emb.clone());
            }
            if let Some(up) = &level.up {
                hcur = up.forward(hooks.leave(levels - 1 - i, hcur));
            }
        }
        self.conv_out.forward(silu(self.norm_out.forward(hcur)))
    }
}

/// Where a network nested around the U-Net's levels joins in ([`UNet::backbone_with`]).
trait LevelHooks {
    /// Entering encoder level `k` (≥ 1) with the downsampled features `h`; returns the features
    /// the level runs on (and keeps as its first skip).
    fn enter(&mut self, k: usize, h: Tensor<4>) -> Tensor<4>;
    /// Leaving decoder level `k` (≥ 1) with its features `h`; returns what is upsampled.
    fn leave(&mut self, k: usize, h: Tensor<4>) -> Tensor<4>;
}

/// The plain U-Net: no hooks.
struct Plain;

impl LevelHooks for Plain {
    fn enter(&mut self, _k: usize, h: Tensor<4>) -> Tensor<4> {
        h
    }
    fn leave(&mut self, _k: usize, h: Tensor<4>) -> Tensor<4> {
        h
    }
}
