//! The deterministic encoder E of Unified Latents: image → clean latent z_clean, a stack of
//! residual convolution stages, each halving the side with a stride-2 convolution (as the
//! downsampling path of an LDM/SD autoencoder, without attention or time embedding).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `[model.encoder]`: the encoder's width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// Channels of every stage.
    pub channels: usize,
    /// Groups of every GroupNorm; must divide `channels`.
    pub norm_groups: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            channels: 32,
            norm_groups: 8,
        }
    }
}

impl EncoderConfig {
    pub fn validate(&self) -> Result<()> {
        if self.channels == 0 || self.channels > 1024 {
            return Err(Error::value(
                "model.encoder.channels",
                self.channels,
                "must be in 1..=1024",
            ));
        }
        if self.norm_groups == 0 || !self.channels.is_multiple_of(self.norm_groups) {
            return Err(Error::value(
                "model.encoder.norm_groups",
                self.norm_groups,
                "must be ≥ 1 and divide model.encoder.channels",
            ));
        }
        Ok(())
    }

    /// An encoder from `in_channels` image planes to `latent_channels`, with `downsamples`
    /// stride-2 stages (the side shrinks by 2^downsamples).
    pub fn init(
        &self,
        in_channels: usize,
        latent_channels: usize,
        downsamples: usize,
        device: &Device,
    ) -> Encoder {
        let ch = self.channels;
        let conv3 = |cin, cout| {
            Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let stages = (0..downsamples)
            .map(|_| Stage {
                norm: GroupNormConfig::new(self.norm_groups, ch).init(device),
                conv: conv3(ch, ch),
                down: Conv2dConfig::new([ch, ch], [3, 3])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device),
            })
            .collect();
        Encoder {
            conv_in: conv3(in_channels, ch),
            stages,
            norm_mid: GroupNormConfig::new(self.norm_groups, ch).init(device),
            conv_mid: conv3(ch, ch),
            norm_out: GroupNormConfig::new(self.norm_groups, ch).init(device),
            conv_out: conv3(ch, latent_channels),
        }
    }
}

/// One stage: a residual convolution, then a stride-2 convolution.
#[derive(Module, Debug)]
pub struct Stage {
    norm: GroupNorm,
    conv: Conv2d,
    down: Conv2d,
}

/// E: x → z_clean. Build it with [`EncoderConfig::init`].
#[derive(Module, Debug)]
pub struct Encoder {
    conv_in: Conv2d,
    stages: Vec<Stage>,
    norm_mid: GroupNorm,
    conv_mid: Conv2d,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Encoder {
    /// # Shapes
    /// - x: `[n, c, h, w]` → `[n, latent_channels, h / 2^stages, w / 2^stages]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = self.conv_in.forward(x);
        for s in &self.stages {
            h = h.clone() + s.conv.forward(silu(s.norm.forward(h)));
            h = s.down.forward(h);
        }
        h = h.clone() + self.conv_mid.forward(silu(self.norm_mid.forward(h)));
        self.conv_out.forward(silu(self.norm_out.forward(h)))
    }
}
