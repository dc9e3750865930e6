//! fewstep's teacher crate: the shared diffusion core (EDM preconditioning, σ grid, loss,
//! guidance, samplers), the U-Net, data loaders, checkpoints, EMA and the training loop.

pub mod backend;
pub mod checkpoint;
pub mod clip_io;
pub mod config;
pub mod data;
pub mod dist;
pub mod edm;
pub mod ema;
pub mod error;
pub mod image_io;
pub mod latent;
pub mod lock;
pub mod model;
pub mod multires;
pub mod npy;
pub mod progress;
pub mod recipe;
pub mod resume;
pub mod rng;
pub mod runs;
pub mod sample;
pub mod staged;
pub mod testing;
pub mod train;
pub mod unet;
pub mod upgrade;

pub use error::{Error, Result};
