//! What a stage-1 run's latent costs and keeps, measured on held-out images: the rate the prior
//! assigns (its ELBO from σ₀ up, in bits per latent dimension), the channel's bound on it, the
//! latent's scale, and how well decode(encode(x)) reconstructs x (PSNR on the [−1, 1] range).

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use super::LatentAutoencoderConfig;
use super::autoencoder::LatentAutoencoder;
use super::channel::capacity_bits_per_dim;
use super::source::Decoding;
use super::stage1::{LatentDraws, prior_rate};
use crate::data::Dataset;
use crate::error::{Error, Result};

/// The measurements of [`measure`].
#[derive(Debug, Clone, Serialize)]
pub struct LatentQuality {
    /// Images measured.
    pub n: usize,
    /// The prior's rate, bits per latent dimension (mean over images and `draws` λ draws each),
    /// with its standard error.
    pub rate_bits_per_dim: f64,
    pub rate_bits_per_dim_se: f64,
    /// ½·log₂(1 + Var z_clean/σ₀²) averaged over latent dimensions: what σ₀ allows at most.
    pub channel_bound_bits_per_dim: f64,
    /// The clean latents' standard deviation over all values (the base model's σ_data).
    pub latent_std: f64,
    /// PSNR of decode(encode(x)) against x, images in [−1, 1] (peak-to-peak 2), in dB: 10·log₁₀(4/MSE)
    /// of the pooled MSE.
    pub recon_psnr: f64,
    /// The decoder's plan and its NFE per image.
    pub decoder: String,
    pub decoder_nfe: usize,
    /// The reconstructions decode(encode(x)), flat, in the data's order (for their FID).
    #[serde(skip)]
    pub recon: Vec<f32>,
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Invalid(format!("reading a tensor: {e:?}")))
}

/// Measure `ae` (its config `cfg`, decoded with `decoding`) on `data`, `draws` prior draws per
/// image, batches of `batch`, every draw seeded by `seed`.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    ae: &LatentAutoencoder,
    cfg: &LatentAutoencoderConfig,
    decoding: &Decoding,
    data: &Dataset,
    draws: usize,
    batch: usize,
    seed: u64,
    device: &Device,
) -> Result<LatentQuality> {
    let s = data.shape;
    let (mut rates, mut latents, mut sq_err) = (Vec::new(), Vec::new(), 0.0f64);
    let mut all_recon = Vec::with_capacity(data.images.len());
    for first in (0..data.len()).step_by(batch.max(1)) {
        let b = batch.max(1).min(data.len() - first);
        let px = data.images[first * s.len()..(first + b) * s.len()].to_vec();
        let x = Tensor::<4>::from_data(
            TensorData::new(px.clone(), [b, s.planes(), s.height, s.width]),
            device,
        );
        let z = ae.encode(x);
        let shape = cfg.latent_shape(s);
        for k in 0..draws {
            let d = LatentDraws::draw(seed, (first * draws + k) as u64, b, shape, device);
            let r = prior_rate(
                ae,
                z.clone(),
                d.prior_normals,
                d.prior_noise,
                &cfg.prior_range(),
            );
            rates.extend(to_vec(r)?);
        }
        let recon = to_vec(decoding.decode(z.clone(), first, seed))?;
        sq_err += recon
            .iter()
            .zip(&px)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>();
        all_recon.extend(recon);
        latents.extend(to_vec(z)?);
    }
    let n = data.len();
    let nats: Vec<f64> = rates.iter().map(|&r| r as f64).collect();
    let mean = nats.iter().sum::<f64>() / nats.len().max(1) as f64;
    let var = nats.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (nats.len().max(2) - 1) as f64;
    let ln2 = std::f64::consts::LN_2;
    let len_z = cfg.latent_shape(s).len();
    let all_mean = latents.iter().map(|&v| v as f64).sum::<f64>() / latents.len().max(1) as f64;
    let all_var = latents
        .iter()
        .map(|&v| (v as f64 - all_mean).powi(2))
        .sum::<f64>()
        / latents.len().max(1) as f64;
    let mse = sq_err / (n * s.len()).max(1) as f64;
    Ok(LatentQuality {
        n,
        rate_bits_per_dim: mean / ln2,
        rate_bits_per_dim_se: (var / nats.len().max(1) as f64).sqrt() / ln2,
        channel_bound_bits_per_dim: capacity_bits_per_dim(&latents, len_z, ae.sigma0),
        latent_std: all_var.sqrt(),
        recon_psnr: 10.0 * (4.0 / mse.max(1e-12)).log10(),
        decoder: decoding.describe(),
        decoder_nfe: decoding.nfe(),
        recon: all_recon,
    })
}

/// [`measure`] of the stage-1 run in `run` on the first `n` images of its test split
/// (`images_dir`: `--data DIR` for its files), decoded with `decoder_steps` steps.
pub fn measure_run(
    run: &std::path::Path,
    images_dir: Option<&std::path::Path>,
    n: usize,
    draws: usize,
    decoder_steps: usize,
    seed: u64,
    device: &Device,
) -> Result<LatentQuality> {
    let source = super::source::LatentSource {
        autoencoder: run.to_path_buf(),
        decoder: None,
        decoder_steps,
    };
    let decoding = Decoding::open(&source, device)?;
    let ck = crate::checkpoint::Checkpoint::load(&run.join(crate::checkpoint::LATEST))?;
    let cfg = ck.header.teacher_config()?;
    let crate::model::NetworkConfig::LatentAutoencoder(ae_cfg) = &cfg.model else {
        return Err(Error::Invalid(format!(
            "`{}` is not a latent autoencoder run (`[model] kind = \"latent_autoencoder\"`)",
            run.display()
        )));
    };
    let model = ck.inference_model(device)?;
    let crate::model::Network::LatentAutoencoder(ae) = &model.net else {
        return Err(Error::Invalid(
            "the run's network is not a latent autoencoder".into(),
        ));
    };
    let dir = images_dir.or(ck.header.lineage.data_path.as_deref());
    let test = cfg.data.load(dir, crate::data::Split::Test)?.take(n);
    measure(
        ae,
        ae_cfg,
        &decoding,
        &test,
        draws.max(1),
        128,
        seed,
        device,
    )
}
