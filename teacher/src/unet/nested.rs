//! The NestedUNet of Matryoshka diffusion (Gu et al. 2023, §3.2, Fig. 3; apple/ml-mdm
//! `NestedUNet`): one network denoising the image at several resolutions jointly, the U-Net of
//! each smaller resolution nested inside the larger one's levels. Resolution r's noisy copy
//! enters where the large U-Net's features have side r (its own input convolution, plus the
//! outer features through a zero-initialised adapter); the level emits r's denoised copy through
//! its own output head, and hands its features back to the outer decoder through a second
//! zero-initialised adapter. The U-Net itself is `super::UNet`, unchanged: the nesting is the
//! pieces added at its level boundaries ([`super::LevelHooks`]).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::{ImageShape, LevelHooks, UNet, UNetConfig};
use crate::error::{Error, Result};
use crate::multires::{Canvas, MultiResConfig};

/// What the network nested at a smaller resolution sees besides its own noisy copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Nesting {
    /// The outer encoder's features at that size too, added through a zero-initialised
    /// convolution (every released ml-mdm config: `skip_inner_unet_input = false`); a small
    /// copy's output then depends on every input, but never on the outer decoder.
    #[default]
    Features,
    /// Only its own noisy copy (ml-mdm's `skip_inner_unet_input = true`): resolution r's output
    /// depends only on the copies at r and below.
    InputOnly,
}

/// The NestedUNet's shape: the U-Net whose levels run at B, B/2, …, and the resolutions nested
/// in it (each must be one of those sizes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NestedUNetConfig {
    /// The U-Net the resolutions are nested in (`[model.unet]`); it runs on B×B.
    pub unet: UNetConfig,
    /// The resolutions, their loss weights, noise schedule and curriculum (`[model.multires]`).
    pub multires: MultiResConfig,
    /// What a nested resolution sees of the outer network (default: features, as ml-mdm).
    pub nesting: Nesting,
}

impl Default for NestedUNetConfig {
    /// The default U-Net (levels 8 and 4) with 8×8 and 4×4 nested: the digits' tiny variant.
    fn default() -> Self {
        Self {
            unet: UNetConfig::default(),
            multires: MultiResConfig::default(),
            nesting: Nesting::Features,
        }
    }
}

impl NestedUNetConfig {
    pub fn validate(&self) -> Result<()> {
        self.unet.validate()?;
        self.multires.validate()
    }

    /// The canvas of images of `image`'s shape.
    pub fn canvas(&self, image: ImageShape) -> Canvas {
        Canvas::new(&self.multires, image)
    }

    /// Reject images this network cannot take: clips, images larger than B, resolutions that are
    /// no level of the U-Net.
    pub fn check_shape(&self, image: ImageShape) -> Result<()> {
        self.multires.validate()?;
        let sides = &self.multires.resolutions;
        let b = sides[0];
        if image.is_clip() {
            return Err(Error::value(
                "model.kind",
                "nested_unet",
                "nests images, not clips: use kind = \"unet\" for clip data",
            ));
        }
        if image.height > b || image.width > b {
            return Err(Error::value(
                "model.multires.resolutions",
                format!("{sides:?}"),
                &format!(
                    "the first side must hold the {}×{} images (they are padded up to it)",
                    image.width, image.height
                ),
            ));
        }
        let square = ImageShape::image(image.channels, b, b);
        self.unet.check_shape(square)?;
        let levels = self.unet.resolutions(square);
        if !b.is_multiple_of(self.unet.size_multiple()) || sides.iter().any(|r| !levels.contains(r))
        {
            return Err(Error::value(
                "model.multires.resolutions",
                format!("{sides:?}"),
                &format!(
                    "every side must be a level of `[model.unet]` on {b}×{b}: its levels are {levels:?}"
                ),
            ));
        }
        Ok(())
    }

    /// Build the network for images of `image` and `num_classes` classes (plus the null class):
    /// the U-Net first (so it draws its initial weights as a plain U-Net would), then one
    /// [`Nested`] per smaller resolution.
    pub fn init(&self, image: ImageShape, num_classes: usize, device: &Device) -> NestedUNet {
        let canvas = self.canvas(image);
        let b = canvas.base();
        let unet = self
            .unet
            .init(ImageShape::image(image.channels, b, b), num_classes, device);
        let width = |k: usize| self.unet.model_channels * self.unet.channel_mult[k];
        let c = image.channels;
        let inner = canvas.sides[1..]
            .iter()
            .map(|&side| {
                let level = (b / side).ilog2() as usize;
                let (outer, own) = (width(level - 1), width(level));
                Nested {
                    conv_in: conv(c, outer, 3, device),
                    in_adapter: (self.nesting == Nesting::Features)
                        .then(|| zero_conv(outer, outer, device)),
                    bottom_proj: conv(outer, own, 1, device),
                    out_adapter: zero_conv(own, own, device),
                    norm_out: GroupNormConfig::new(self.unet.norm_groups, own).init(device),
                    conv_out: zero_conv(own, c, device),
                    level,
                }
            })
            .collect();
        NestedUNet {
            unet,
            inner,
            canvas,
        }
    }
}

/// A k×k convolution from `cin` to `cout` channels keeping the size (burn's default init).
fn conv(cin: usize, cout: usize, k: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init(device)
}

/// A 3×3 convolution initialised to zero: at initialisation the path it opens adds nothing
/// (ml-mdm's adapters and output layers), so a nested level starts as if it were absent.
fn zero_conv(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_initializer(Initializer::Zeros)
        .init(device)
}

/// What one smaller resolution adds at its level of the U-Net.
#[derive(Module, Debug)]
pub struct Nested {
    /// The copy's own input convolution, to the width the level is entered with.
    conv_in: Conv2d,
    /// Outer encoder features → the nested input (zero-initialised; [`Nesting::Features`]).
    in_adapter: Option<Conv2d>,
    /// The outer network's bottleneck: its encoder features at this size, to the level's width.
    bottom_proj: Conv2d,
    /// The nested decoder's features → the outer decoder (zero-initialised).
    out_adapter: Conv2d,
    /// The copy's output head (GroupNorm, SiLU, zero-initialised convolution, as the U-Net's).
    norm_out: GroupNorm,
    conv_out: Conv2d,
    /// The U-Net level (0 = B) this resolution sits at.
    level: usize,
}

/// The NestedUNet F. Build it with [`NestedUNetConfig::init`].
#[derive(Module, Debug)]
pub struct NestedUNet {
    unet: UNet,
    /// One per resolution after the first, largest first.
    inner: Vec<Nested>,
    #[module(skip)]
    canvas: Canvas,
}

impl NestedUNet {
    /// # Shapes
    /// - x: the canvas `[n, c, B, B + r₁]` (scaled by c_in), c_noise, class, extra: `[n]` →
    ///   the denoised copies on their canvas `[n, c, B, B + r₁]`, zeros on the unused corner
    pub fn forward(
        &self,
        x: Tensor<4>,
        c_noise: Tensor<1>,
        class: Tensor<1, Int>,
        extra: Option<Tensor<1>>,
    ) -> Tensor<4> {
        let [n, _, _, _] = x.dims();
        let emb = self.unet.embed(n, c_noise, class, extra);
        let mut copies = self.canvas.split(x);
        let full = copies.remove(0);
        let mut nest = Nest {
            inner: &self.inner,
            inputs: copies,
            bottoms: vec![None; self.inner.len()],
            outputs: vec![None; self.inner.len()],
        };
        let top = self.unet.backbone_with(full, emb, &mut nest);
        let mut outputs = vec![top];
        outputs.extend(
            nest.outputs
                .into_iter()
                .map(|o| o.expect("every nested level is left once, by construction")),
        );
        self.canvas.join(outputs)
    }

    /// The canvas this network was built for.
    pub fn canvas(&self) -> &Canvas {
        &self.canvas
    }
}

/// The forward pass's state at the level boundaries: each nested copy's input, the outer
/// features it was entered with, and its output once its level is left.
struct Nest<'a> {
    inner: &'a [Nested],
    inputs: Vec<Tensor<4>>,
    bottoms: Vec<Option<Tensor<4>>>,
    outputs: Vec<Option<Tensor<4>>>,
}

impl Nest<'_> {
    fn at(&self, k: usize) -> Option<usize> {
        self.inner.iter().position(|n| n.level == k)
    }
}

impl LevelHooks for Nest<'_> {
    /// Entering level k of resolution r: its own input convolution (+ the adapted outer
    /// features), kept as the level's first skip; the outer features wait for the way up.
    fn enter(&mut self, k: usize, h: Tensor<4>) -> Tensor<4> {
        let Some(i) = self.at(k) else { return h };
        let net = &self.inner[i];
        let mut e = net.conv_in.forward(self.inputs[i].clone());
        if let Some(a) = &net.in_adapter {
            e = e + a.forward(h.clone());
        }
        self.bottoms[i] = Some(h);
        e
    }

    /// Leaving level k of resolution r: r's output head, then the outer bottleneck plus the
    /// adapted nested features go on up.
    fn leave(&mut self, k: usize, h: Tensor<4>) -> Tensor<4> {
        let Some(i) = self.at(k) else { return h };
        let net = &self.inner[i];
        self.outputs[i] = Some(net.conv_out.forward(silu(net.norm_out.forward(h.clone()))));
        let bottom = self.bottoms[i]
            .take()
            .expect("a level is entered before it is left");
        net.bottom_proj.forward(bottom) + net.out_adapter.forward(h)
    }
}

#[cfg(test)]
mod tests {
    //! The nesting's dependency structure, checked by perturbing inputs and weights of a small
    //! 32×32 ⊃ 16×16 ⊃ 8×8 network whose every weight carries seeded noise (so no zero-
    //! initialised layer hides a path).
    use burn::module::Module;
    use burn::tensor::TensorData;

    use super::*;
    use crate::rng::{Stream, normals, rng};
    use crate::testing::Jitter;

    fn net(nesting: Nesting) -> NestedUNet {
        let cfg = NestedUNetConfig {
            unet: UNetConfig {
                model_channels: 8,
                channel_mult: vec![1, 1, 1],
                num_blocks: 1,
                attn_resolutions: vec![],
                norm_groups: 4,
                ..UNetConfig::default()
            },
            multires: MultiResConfig {
                resolutions: vec![32, 16, 8],
                loss_weights: vec![1.0; 3],
                start_steps: vec![0; 3],
                ..MultiResConfig::default()
            },
            nesting,
        };
        let d = crate::backend::test_device();
        cfg.init(ImageShape::image(1, 32, 32), 10, &d)
            .map(&mut Jitter::new(0, 5, 0.1))
    }

    /// A batch of 2 canvases `[2, 1, 32, 48]` of unit noise from `seed`.
    fn canvas(seed: u64) -> Tensor<4> {
        let v = normals(&mut rng(seed, Stream::Eval, 0), 2 * 32 * 48);
        Tensor::from_data(
            TensorData::new(v, [2, 1, 32, 48]),
            &crate::backend::test_device(),
        )
    }

    /// `x` with copy `r` taken from `other`.
    fn swap_copy(net: &NestedUNet, x: Tensor<4>, other: Tensor<4>, r: usize) -> Tensor<4> {
        let mut copies = net.canvas.split(x);
        copies[r] = net.canvas.split(other).remove(r);
        net.canvas.join(copies)
    }

    /// Each copy of F(x) as numbers.
    fn outputs(net: &NestedUNet, x: Tensor<4>) -> Vec<Vec<f32>> {
        let d = x.device();
        let class = Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, 7], [2]), &d);
        let c_noise = Tensor::<1>::from_data(TensorData::new(vec![-0.3f32, 0.4], [2]), &d);
        let f = net.forward(x, c_noise, class, None);
        net.canvas
            .split(f)
            .into_iter()
            .map(|t| {
                t.into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .unwrap()
            })
            .collect()
    }

    fn differ(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-6)
    }

    #[test]
    fn an_8x8_input_reaches_the_32x32_output() {
        for nesting in [Nesting::Features, Nesting::InputOnly] {
            let net = net(nesting);
            let x = canvas(1);
            let moved = swap_copy(&net, x.clone(), canvas(2), 2);
            let (a, b) = (outputs(&net, x), outputs(&net, moved));
            assert!(
                differ(&a[0], &b[0]),
                "{nesting:?}: 8×8 input must reach 32×32"
            );
            assert!(
                differ(&a[2], &b[2]),
                "{nesting:?}: 8×8 input must reach 8×8"
            );
        }
    }

    #[test]
    fn input_only_a_small_output_sees_only_inputs_at_its_size_and_below() {
        let net = net(Nesting::InputOnly);
        let x = canvas(1);
        let base = outputs(&net, x.clone());
        // The 32×32 and 16×16 copies changed: the 8×8 output is exactly the same.
        let big = swap_copy(&net, swap_copy(&net, x.clone(), canvas(3), 0), canvas(4), 1);
        let o = outputs(&net, big);
        assert!(!differ(&base[2], &o[2]));
        assert!(differ(&base[0], &o[0]) && differ(&base[1], &o[1]));
        // The 32×32 copy changed: the 16×16 output too is the same.
        let o = outputs(&net, swap_copy(&net, x.clone(), canvas(3), 0));
        assert!(!differ(&base[1], &o[1]));
        assert!(!differ(&base[2], &o[2]));
    }

    #[test]
    fn features_a_small_output_sees_the_outer_encoder_never_the_outer_decoder() {
        let net = net(Nesting::Features);
        let x = canvas(1);
        let base = outputs(&net, x.clone());
        // The outer encoder's features enter the nested levels (MDM Fig. 3's red arrows) …
        let o = outputs(&net, swap_copy(&net, x.clone(), canvas(3), 0));
        assert!(differ(&base[2], &o[2]) && differ(&base[1], &o[1]));
        // … but whatever runs after a level is left (outer decoder levels, outer heads, the way
        // back up) never reaches it: perturb all of that, and the 8×8 output is unchanged while
        // the 32×32 output moves.
        let mut changed = net.clone();
        let levels = changed.unet.dec.len();
        changed.unet.dec = changed
            .unet
            .dec
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    l
                } else {
                    l.map(&mut Jitter::new(50, 6, 0.3))
                }
            })
            .collect();
        assert_eq!(levels, 3);
        changed.unet.conv_out = changed.unet.conv_out.map(&mut Jitter::new(60, 6, 0.3));
        changed.inner = changed
            .inner
            .into_iter()
            .map(|mut n| {
                n.out_adapter = n.out_adapter.map(&mut Jitter::new(70, 6, 0.3));
                n.bottom_proj = n.bottom_proj.map(&mut Jitter::new(80, 6, 0.3));
                n
            })
            .collect();
        let o = outputs(&changed, x);
        assert!(!differ(&base[2], &o[2]));
        assert!(differ(&base[0], &o[0]));
    }
}
