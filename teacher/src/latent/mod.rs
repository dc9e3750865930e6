//! Latent diffusion the Unified-Latents way (Heek, Hoogeboom, Mensink & Salimans 2026, "Unified
//! Latents (UL): How to train your latents"; docs/latent.md):
//!
//! - `channel.rs`: the encoder's fixed-noise channel z₀ = z_clean + σ₀·ε, σ₀ from λ(0), and the
//!   bound it puts on the latent's bits per dimension;
//! - `encoder.rs`, `autoencoder.rs`: stage 1's network (encoder, diffusion decoder, prior);
//! - `stage1.rs`: stage 1's loss, the decoder's (`[diffusion.loss]`, UL: the sigmoid-weighted
//!   ELBO of `edm/elbo.rs`) + the prior's rate over σ ≥ σ₀;
//! - `measure.rs`: a stage-1 run's rate, channel bound and reconstruction PSNR;
//! - `source.rs`: stage 2's data, a dataset encoded by a stage-1 run, and decoding sampled
//!   latents back to images.

pub mod autoencoder;
pub mod channel;
pub mod encoder;
pub mod measure;
pub mod source;
pub mod stage1;

pub use autoencoder::{LatentAutoencoder, LatentAutoencoderConfig};
