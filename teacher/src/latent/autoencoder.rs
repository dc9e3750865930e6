//! Stage 1 of Unified Latents as one network: the encoder E, the diffusion decoder p(x | z₀)
//! and the diffusion prior p(z₀), trained jointly. As a denoiser the network *is* the decoder,
//! D(x; σ, z₀): the image state and the latent (nearest-upsampled to the image's side) enter
//! its U-Net side by side as channels; the encoder and prior ride along for training and for
//! encoding data. `kind = "latent_autoencoder"` in `[model]`; the decoder trains with the run's
//! `[diffusion.loss]` like any teacher (UL: the sigmoid-weighted ELBO).

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::channel::sigma0;
use super::encoder::{Encoder, EncoderConfig};
use crate::edm::elbo::LogSnrRange;
use crate::edm::precond::{Precond, combine};
use crate::edm::{Cond, Denoiser, per_example};
use crate::error::{Error, Result};
use crate::unet::{ImageShape, UNet, UNetConfig};

/// `[model]` of a stage-1 run. Every field has a default suited to the 8×8 digits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatentAutoencoderConfig {
    /// Channels of the latent (e.g. 4 for MNIST's 7×7×4).
    pub latent_channels: usize,
    /// The image side over the latent side, a power of two (2: 8×8 → 4×4; 4: 28×28 → 7×7).
    pub downsample: usize,
    /// λ(0), the final log-SNR of the latent: σ₀ = e^(−λ(0)/2) (`latent/channel.rs`; UL: 5).
    pub log_snr_0: f64,
    /// λ_lo of the prior's ELBO (its highest noise, σ = e^(−λ_lo/2)); the prior's loss runs
    /// over λ ∈ [λ_lo, λ(0)] only, i.e. σ ≥ σ₀. Default −10 (σ = 148).
    pub prior_log_snr_min: f64,
    /// σ_data of the prior's EDM preconditioning (the latent's scale; default 1).
    pub prior_sigma_data: f64,
    /// UL's loss factor c_lf: the decoder's loss (`[diffusion.loss]`) is multiplied by it
    /// against the prior's rate, so a larger c_lf buys reconstruction with bits. Default 10: at
    /// c_lf ≤ 1 the digits' latent collapses to no information (the decoder models the digits
    /// alone; docs/latent.md has the measurements).
    pub loss_factor: f64,
    pub encoder: EncoderConfig,
    /// The decoder's U-Net (over the image; its input also takes the latent's channels).
    pub decoder: UNetConfig,
    /// The prior's U-Net (over the latent, unconditional).
    pub prior: UNetConfig,
}

impl Default for LatentAutoencoderConfig {
    fn default() -> Self {
        Self {
            latent_channels: 4,
            downsample: 2,
            log_snr_0: 5.0,
            prior_log_snr_min: -10.0,
            prior_sigma_data: 1.0,
            loss_factor: 10.0,
            encoder: EncoderConfig::default(),
            decoder: UNetConfig::default(),
            prior: UNetConfig {
                channel_mult: vec![1],
                attn_resolutions: vec![],
                num_blocks: 1,
                ..UNetConfig::default()
            },
        }
    }
}

impl LatentAutoencoderConfig {
    pub fn validate(&self) -> Result<()> {
        self.encoder.validate()?;
        self.decoder.validate()?;
        self.prior.validate()?;
        if self.latent_channels == 0 || self.latent_channels > 256 {
            let why = "must be in 1..=256";
            return Err(Error::value(
                "model.latent_channels",
                self.latent_channels,
                why,
            ));
        }
        if !self.downsample.is_power_of_two() || self.downsample > 64 {
            let why =
                "must be a power of two ≤ 64 (1, 2, 4, …): the image side over the latent side";
            return Err(Error::value("model.downsample", self.downsample, why));
        }
        let range = self.prior_range();
        range.validate("model.prior_log_snr_min .. model.log_snr_0")?;
        let finite_pos = |v: f64| v.is_finite() && v > 0.0;
        if !finite_pos(self.prior_sigma_data) {
            let why = "must be a positive number";
            return Err(Error::value(
                "model.prior_sigma_data",
                self.prior_sigma_data,
                why,
            ));
        }
        if !finite_pos(self.loss_factor) {
            return Err(Error::value(
                "model.loss_factor",
                self.loss_factor,
                "must be > 0",
            ));
        }
        Ok(())
    }

    /// The latent's shape for images of `image`.
    pub fn latent_shape(&self, image: ImageShape) -> ImageShape {
        let f = self.downsample.max(1);
        ImageShape::image(self.latent_channels, image.height / f, image.width / f)
    }

    /// Reject images the encoder cannot halve down to the latent, clips, and U-Nets that do
    /// not fit the image (decoder) or the latent (prior).
    pub fn check_shape(&self, image: ImageShape) -> Result<()> {
        let f = self.downsample.max(1);
        if image.is_clip() {
            let why = "latent autoencoders take images, not clips; use kind = \"unet\" for clips";
            return Err(Error::value("model.kind", "latent_autoencoder", why));
        }
        if !image.height.is_multiple_of(f) || !image.width.is_multiple_of(f) || image.height < f {
            let why = format!(
                "must divide the {}×{} images' sides (the latent is the image side / downsample)",
                image.width, image.height
            );
            return Err(Error::value("model.downsample", f, &why));
        }
        self.decoder.check_shape(image)?;
        self.prior.check_shape(self.latent_shape(image))
    }

    /// λ ∈ [λ_lo, λ(0)]: the prior's ELBO, no term below σ₀.
    pub fn prior_range(&self) -> LogSnrRange {
        LogSnrRange {
            min: self.prior_log_snr_min,
            max: self.log_snr_0,
        }
    }

    /// Build the three networks for images of `image` with `num_classes` classes (the decoder
    /// takes a class slot, given the null class; the prior has no classes).
    pub fn init(
        &self,
        image: ImageShape,
        num_classes: usize,
        device: &Device,
    ) -> LatentAutoencoder {
        let latent = self.latent_shape(image);
        let downsamples = self.downsample.max(1).ilog2() as usize;
        LatentAutoencoder {
            encoder: self
                .encoder
                .init(image.channels, latent.channels, downsamples, device),
            decoder: self.decoder.init_with_inputs(
                image,
                image.channels + latent.channels,
                num_classes,
                device,
            ),
            prior: self.prior.init(latent, 0, device),
            downsample: self.downsample.max(1),
            sigma0: sigma0(self.log_snr_0),
            prior_sigma_data: self.prior_sigma_data,
        }
    }
}

/// E, the decoder's U-Net and the prior's U-Net. Build it with [`LatentAutoencoderConfig::init`].
#[derive(Module, Debug)]
pub struct LatentAutoencoder {
    pub encoder: Encoder,
    decoder: UNet,
    prior: UNet,
    downsample: usize,
    /// σ₀ of the encoder's fixed-noise channel.
    pub sigma0: f64,
    prior_sigma_data: f64,
}

impl LatentAutoencoder {
    /// The decoder's network F(c_in·x, z₀; c_noise): the U-Net on the image state with the
    /// latent upsampled beside it. Without a latent (a caller that checked nothing) it reads
    /// z₀ = 0.
    ///
    /// # Shapes
    /// - x: `[n, c, h, w]`, latent: `[n, c_z, h/f, w/f]`, c_noise, class, extra: `[n]` →
    ///   `[n, c, h, w]`
    pub fn forward(
        &self,
        x: Tensor<4>,
        latent: Option<Tensor<4>>,
        c_noise: Tensor<1>,
        class: Tensor<1, Int>,
        extra: Option<Tensor<1>>,
    ) -> Tensor<4> {
        let [n, _, h, w] = x.dims();
        let f = self.downsample;
        let z = match latent {
            Some(z) => upsample_nearest(z, f),
            None => {
                let c = self.prior_channels();
                Tensor::zeros([n, c, h, w], &x.device())
            }
        };
        self.decoder
            .forward(Tensor::cat(vec![x, z], 1), c_noise, class, extra)
    }

    /// z_clean = E(x).
    ///
    /// # Shapes
    /// - x: `[n, c, h, w]` → `[n, c_z, h/f, w/f]`
    pub fn encode(&self, x: Tensor<4>) -> Tensor<4> {
        self.encoder.forward(x)
    }

    /// The prior as a denoiser of latents (EDM preconditioning with its own σ_data).
    pub fn prior(&self) -> Prior<'_> {
        Prior { ae: self }
    }

    fn prior_channels(&self) -> usize {
        self.prior.in_channels()
    }
}

/// The prior p(z₀) as a [`Denoiser`] of latent states, unconditional (class and extra unused).
pub struct Prior<'a> {
    ae: &'a LatentAutoencoder,
}

impl Denoiser for Prior<'_> {
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, _cond: &Cond) -> Tensor<4> {
        let [n, ..] = x.dims();
        let s = Precond::Edm.scalings(sigma, self.ae.prior_sigma_data);
        let x_in = x.clone() * per_example::<4>(s.c_in.clone());
        let null = Tensor::<1, Int>::zeros([n], &x.device());
        let f = self.ae.prior.forward(x_in, s.c_noise.clone(), null, None);
        combine(x, f, &s)
    }
}

/// Each latent pixel repeated f×f times: `[n, c, h, w]` → `[n, c, h·f, w·f]`.
pub fn upsample_nearest(z: Tensor<4>, f: usize) -> Tensor<4> {
    if f == 1 {
        return z;
    }
    let [n, c, h, w] = z.dims();
    z.reshape([n, c, h, 1, w, 1])
        .repeat_dim(3, f)
        .repeat_dim(5, f)
        .reshape([n, c, h * f, w * f])
}
