//! The preconditioned denoiser D(x; σ, class, w) = c_skip·x + c_out·F(c_in·x; c_noise, class, w)
//! (Karras et al. 2022, Eq. 7), the one network type every fewstep model is.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::edm::precond::{Precond, combine};
use crate::edm::{Cond, Denoiser};
use crate::unet::{ImageShape, UNet, UNetConfig};

/// Everything needed to rebuild a model's structure (weights come from a checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub unet: UNetConfig,
    pub shape: ImageShape,
    pub num_classes: usize,
    /// σ_data, the standard deviation of the training data (EDM default 0.5).
    pub sigma_data: f64,
    pub precond: Precond,
}

impl ModelSpec {
    pub fn init(&self, device: &Device) -> EdmModel {
        EdmModel {
            unet: self.unet.init(self.shape, self.num_classes, device),
            precond: self.precond,
            sigma_data: self.sigma_data,
            num_classes: self.num_classes,
            shape: self.shape,
        }
    }
}

#[derive(Module, Debug)]
pub struct EdmModel {
    pub unet: UNet,
    #[module(skip)]
    pub precond: Precond,
    pub sigma_data: f64,
    pub num_classes: usize,
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
        let s = self.precond.scalings(sigma, self.sigma_data);
        let x_in = x.clone() * crate::edm::per_example::<4>(s.c_in.clone());
        let f = self.unet.forward(x_in, s.c_noise.clone(), class, extra);
        combine(x, f, &s)
    }

    /// The image shape the network was built for.
    pub fn unet_shape(&self) -> crate::unet::ImageShape {
        self.shape
    }

    /// Index of the learned null ("unconditional") class.
    pub fn null_class(&self) -> usize {
        self.num_classes
    }
}

impl Denoiser for EdmModel {
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, cond: &Cond) -> Tensor<4> {
        self.forward(x, sigma, cond.class.clone(), cond.extra.clone())
    }
}
