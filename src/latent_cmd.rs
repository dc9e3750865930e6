//! `fewstep latent …`: what a Unified-Latents stage-1 run's latent costs and keeps.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum LatentCommand {
    /// Measure a stage-1 run (`[model] kind = "latent_autoencoder"`) on its test images: the
    /// prior's rate and the channel's bound in bits per latent dimension, the latent's scale,
    /// and the PSNR of decode(encode(x)).
    Measure(MeasureArgs),
}

#[derive(Args, Debug)]
pub struct MeasureArgs {
    /// The stage-1 run folder.
    #[arg(long)]
    pub autoencoder: PathBuf,
    /// Directory of the run's image files (MNIST, folders); default: what it trained on.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Test images measured (the first n).
    #[arg(long, default_value_t = 500)]
    pub n: usize,
    /// Draws of the prior's noise level per image for the rate.
    #[arg(long, default_value_t = 4)]
    pub draws: usize,
    /// Steps of the decoder's sampler.
    #[arg(long, default_value_t = 16)]
    pub decoder_steps: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: LatentCommand, device: Device) -> Result<()> {
    match command {
        LatentCommand::Measure(a) => {
            if a.n == 0 || a.decoder_steps == 0 {
                anyhow::bail!("`--n` and `--decoder-steps` must be ≥ 1");
            }
            let q = teacher::latent::measure::measure_run(
                &a.autoencoder,
                a.data.as_deref(),
                a.n,
                a.draws,
                a.decoder_steps,
                a.seed,
                &device,
            )?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&q)?);
            } else {
                println!(
                    "{}: n = {} test images; rate {:.3} ± {:.3} bits per latent dimension (channel bound {:.3}); \
                     latent std {:.3}; reconstruction PSNR {:.2} dB ({}, NFE {})",
                    a.autoencoder.display(),
                    q.n,
                    q.rate_bits_per_dim,
                    q.rate_bits_per_dim_se,
                    q.channel_bound_bits_per_dim,
                    q.latent_std,
                    q.recon_psnr,
                    q.decoder,
                    q.decoder_nfe
                );
            }
            Ok(())
        }
    }
}
