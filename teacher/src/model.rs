//! The preconditioned denoiser D(x; σ, class, w) = c_skip·x + c_out·F(c_in·x; c_noise, class, w)
//! (Karras et al. 2022, Eq. 7), the one model type every fewstep run is; the network F inside
//! is data: a [`NetworkConfig`] variant names it and builds it.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::data::Dataset;
use crate::edm::precond::{Precond, combine};
use crate::edm::{Cond, Denoiser};
use crate::error::Result;
use crate::latent::{LatentAutoencoder, LatentAutoencoderConfig};
use crate::multires::{Canvas, curriculum};
use crate::unet::nested::{NestedUNet, NestedUNetConfig};
use crate::unet::{ImageShape, UNet, UNetConfig};

/// Which network F sits inside the preconditioner, with its shape. A new network is a module of
/// its own and one variant here (and in [`Network`]); nothing above the denoiser changes.
///
/// In TOML it is the `[model]` section, `kind = "unet"` by default.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NetworkConfig {
    /// The class-conditional (space-time for clips) U-Net after ADM (`teacher/src/unet/`).
    #[serde(rename = "unet")]
    UNet(UNetConfig),
    /// Matryoshka diffusion's NestedUNet over several resolutions at once
    /// (`teacher/src/unet/nested.rs`); its examples are multi-resolution canvases.
    #[serde(rename = "nested_unet")]
    NestedUNet(NestedUNetConfig),
    /// Unified Latents' stage 1 (`teacher/src/latent/`): encoder, diffusion decoder and prior;
    /// as a denoiser it is the decoder D(x; σ, z₀).
    #[serde(rename = "latent_autoencoder")]
    LatentAutoencoder(LatentAutoencoderConfig),
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig::UNet(UNetConfig::default())
    }
}

/// `kind` may be left out: configs written before there was a choice name the U-Net's keys only.
impl<'de> Deserialize<'de> for NetworkConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        enum Tagged {
            #[serde(rename = "unet")]
            UNet(UNetConfig),
            #[serde(rename = "nested_unet")]
            NestedUNet(NestedUNetConfig),
            #[serde(rename = "latent_autoencoder")]
            LatentAutoencoder(LatentAutoencoderConfig),
        }
        let mut v = serde_json::Value::deserialize(d)?;
        if let Some(m) = v.as_object_mut() {
            m.entry("kind").or_insert_with(|| "unet".into());
        }
        Ok(
            match Tagged::deserialize(v).map_err(serde::de::Error::custom)? {
                Tagged::UNet(c) => NetworkConfig::UNet(c),
                Tagged::NestedUNet(c) => NetworkConfig::NestedUNet(c),
                Tagged::LatentAutoencoder(c) => NetworkConfig::LatentAutoencoder(c),
            },
        )
    }
}

impl NetworkConfig {
    /// Build the network for examples of `shape` with `num_classes` classes (plus the null one).
    pub fn init(&self, shape: ImageShape, num_classes: usize, device: &Device) -> Network {
        match self {
            NetworkConfig::UNet(c) => Network::UNet(c.init(shape, num_classes, device)),
            NetworkConfig::NestedUNet(c) => Network::NestedUNet(c.init(shape, num_classes, device)),
            NetworkConfig::LatentAutoencoder(c) => {
                Network::LatentAutoencoder(c.init(shape, num_classes, device))
            }
        }
    }

    /// Reject shapes no network of this kind can be built with; errors name the `model.*` key.
    pub fn validate(&self) -> Result<()> {
        match self {
            NetworkConfig::UNet(c) => c.validate(),
            NetworkConfig::NestedUNet(c) => c.validate(),
            NetworkConfig::LatentAutoencoder(c) => c.validate(),
        }
    }

    /// Reject a network that cannot be built for examples of `shape` (levels the image does not
    /// have, attention at sizes no feature map has); errors name the `model.*` key.
    pub fn check_shape(&self, shape: ImageShape) -> Result<()> {
        match self {
            NetworkConfig::UNet(c) => c.check_shape(shape),
            NetworkConfig::NestedUNet(c) => c.check_shape(shape),
            NetworkConfig::LatentAutoencoder(c) => c.check_shape(shape),
        }
    }

    /// The U-Net's config, when the network is one (benchmarks against PyTorch's twin).
    pub fn unet(&self) -> Option<&UNetConfig> {
        match self {
            NetworkConfig::UNet(c) => Some(c),
            NetworkConfig::NestedUNet(_) | NetworkConfig::LatentAutoencoder(_) => None,
        }
    }

    /// The canvas of a multi-resolution network for images of `image`; None for one-resolution
    /// networks, whose examples are the images themselves.
    pub fn canvas(&self, image: ImageShape) -> Option<Canvas> {
        match self {
            NetworkConfig::UNet(_) | NetworkConfig::LatentAutoencoder(_) => None,
            NetworkConfig::NestedUNet(c) => Some(c.canvas(image)),
        }
    }

    /// The training set as the denoiser sees it: `data` itself, or every image as its canvas.
    pub fn prepare(&self, data: Dataset) -> Dataset {
        match self.canvas(data.shape) {
            None => data,
            Some(c) => c.pack_dataset(&data),
        }
    }

    /// Per-pixel weights of the teacher's loss at training step `step` (the multi-resolution
    /// loss with its curriculum, `[1, C, H, W]`); None: the plain mean over pixels.
    pub fn loss_weights(&self, image: ImageShape, step: u64, device: &Device) -> Option<Tensor<4>> {
        match self {
            NetworkConfig::UNet(_) | NetworkConfig::LatentAutoencoder(_) => None,
            NetworkConfig::NestedUNet(c) => {
                let m = &c.multires;
                let w = curriculum::weights_at(&m.loss_weights, &m.start_steps, step);
                Some(c.canvas(image).weight_tensor(&w, device))
            }
        }
    }
}

/// The network F(c_in·x; c_noise, class, w), one variant per [`NetworkConfig`] variant.
// One network per model, built once and moved rarely: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    UNet(UNet),
    NestedUNet(NestedUNet),
    LatentAutoencoder(LatentAutoencoder),
}

impl Network {
    /// # Shapes
    /// - x: `[n, c, h, w]`, c_noise, class, extra: `[n]`, latent: `[n, c_z, h_z, w_z]` (a
    ///   latent decoder's z₀; ignored by the others) → `[n, c, h, w]`
    pub fn forward(
        &self,
        x: Tensor<4>,
        c_noise: Tensor<1>,
        class: Tensor<1, Int>,
        extra: Option<Tensor<1>>,
        latent: Option<Tensor<4>>,
    ) -> Tensor<4> {
        match self {
            Network::UNet(u) => u.forward(x, c_noise, class, extra),
            Network::NestedUNet(u) => u.forward(x, c_noise, class, extra),
            Network::LatentAutoencoder(a) => a.forward(x, latent, c_noise, class, extra),
        }
    }
}

/// Everything needed to rebuild a model's structure (weights come from a checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub net: NetworkConfig,
    pub shape: ImageShape,
    pub num_classes: usize,
    /// σ_data, the standard deviation of the training data (EDM default 0.5).
    pub sigma_data: f64,
    pub precond: Precond,
}

impl ModelSpec {
    pub fn init(&self, device: &Device) -> EdmModel {
        EdmModel {
            net: self.net.init(self.shape, self.num_classes, device),
            precond: self.precond,
            sigma_data: self.sigma_data,
            num_classes: self.num_classes,
            shape: self.shape,
        }
    }
}

#[derive(Module, Debug)]
pub struct EdmModel {
    pub net: Network,
    #[module(skip)]
    pub precond: Precond,
    pub sigma_data: f64,
    pub num_classes: usize,
    /// The images' shape (what the model generates).
    #[module(skip)]
    pub shape: ImageShape,
}

impl EdmModel {
    /// D(x; σ, class, extra).
    ///
    /// # Shapes
    /// - x: `[n, c, h, w]`, sigma: `[n]`, class: `[n]`, extra: `[n]` → `[n, c, h, w]`
    pub fn forward(
        &self,
        x: Tensor<4>,
        sigma: Tensor<1>,
        class: Tensor<1, Int>,
        extra: Option<Tensor<1>>,
    ) -> Tensor<4> {
        self.forward_with(x, sigma, class, extra, None)
    }

    /// D(x; σ, class, extra, z₀): [`forward`](Self::forward) with a latent decoder's condition.
    ///
    /// # Shapes
    /// - as `forward`; latent: `[n, c_z, h_z, w_z]`
    pub fn forward_with(
        &self,
        x: Tensor<4>,
        sigma: Tensor<1>,
        class: Tensor<1, Int>,
        extra: Option<Tensor<1>>,
        latent: Option<Tensor<4>>,
    ) -> Tensor<4> {
        let s = self.precond.scalings(sigma, self.sigma_data);
        let x_in = x.clone() * crate::edm::per_example::<4>(s.c_in.clone());
        let f = self
            .net
            .forward(x_in, s.c_noise.clone(), class, extra, latent);
        let d = combine(x, f, &s);
        match &self.net {
            Network::UNet(_) | Network::LatentAutoencoder(_) => d,
            // D = 0 = y on the canvas's unused corner (`multires::canvas`).
            Network::NestedUNet(n) => n.canvas().restrict(d),
        }
    }

    /// The shape of one example of the state the model denoises (noise is drawn in it).
    pub fn example_shape(&self) -> ImageShape {
        match &self.net {
            Network::UNet(_) | Network::LatentAutoencoder(_) => self.shape,
            Network::NestedUNet(n) => n.canvas().shape(),
        }
    }

    /// The shape of the images the model generates.
    pub fn image_shape(&self) -> ImageShape {
        self.shape
    }

    /// Final states → images: the identity, or the full-resolution copy of each canvas.
    ///
    /// # Shapes
    /// - x: `[n, …state]` → `[n, …image]`
    pub fn to_images(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.net {
            Network::UNet(_) | Network::LatentAutoencoder(_) => x,
            Network::NestedUNet(n) => n.canvas().images(x),
        }
    }

    /// Index of the learned null ("unconditional") class.
    pub fn null_class(&self) -> usize {
        self.num_classes
    }
}

impl Denoiser for EdmModel {
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, cond: &Cond) -> Tensor<4> {
        let (class, extra) = (cond.class.clone(), cond.extra.clone());
        self.forward_with(x, sigma, class, extra, cond.latent.clone())
    }
}
