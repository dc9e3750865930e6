//! A latent chain's own report section (issue #17): what its stage-1 autoencoder keeps and
//! costs, measured on the reference's test images — reconstruction PSNR and FID of
//! decode(encode(x)), the prior's rate in bits per latent dimension beside the channel's bound —
//! and a grid of originals above their reconstructions.

use std::path::{Path, PathBuf};

use anyhow::Result;
use eval::report::{Headline, Section};
use teacher::latent::measure::{LatentQuality, measure_run};

use crate::report::Scoring;

/// What the section measures: the stage-1 run, the decoder steps its reconstructions take (the
/// teacher's decoder), and how many test images.
#[derive(Debug, Clone)]
pub struct LatentCheck {
    pub autoencoder: PathBuf,
    pub decoder_steps: usize,
    pub n: usize,
}

impl LatentCheck {
    /// A latent chain's check in the pipeline run `run`: its autoencoder stage, measured with
    /// the teacher's decoder steps, on `[latent] measure_n` images (None: a pixel chain).
    pub fn of(cfg: &crate::config::PipelineConfig, run: &Path) -> Option<Self> {
        let l = cfg.latent.as_ref()?;
        let decoder_steps = cfg
            .teacher
            .data
            .latents
            .as_ref()
            .map_or(16, |s| s.decoder_steps);
        Some(Self {
            autoencoder: run.join(crate::chain::Stage::Autoencoder.name()),
            decoder_steps,
            n: l.measure_n,
        })
    }
}

/// Originals and reconstructions in the grid.
const GRID: usize = 10;

/// Measure `check` on the test images (`data`: `--data DIR`), score the reconstructions on
/// `scoring`'s features and reference, fill the headline's latent fields and return the
/// section; the grid goes to `out/reconstructions.png`.
pub(crate) fn section(
    check: &LatentCheck,
    data: Option<&Path>,
    scoring: &Scoring,
    seed: u64,
    out: &Path,
    headline: &mut Headline,
) -> Result<Section> {
    let dev = &scoring.device;
    let q = measure_run(
        &check.autoencoder,
        data,
        check.n,
        1,
        check.decoder_steps,
        seed,
        dev,
    )?;
    let ck = teacher::checkpoint::Checkpoint::load(
        &check.autoencoder.join(teacher::checkpoint::LATEST),
    )?;
    let shape = ck.header.spec.shape;
    let classes = vec![0; q.n];
    let recon = scoring.score(&q.recon, &classes, shape, "reconstruction")?;
    headline.recon_psnr = Some(q.recon_psnr);
    headline.bits_per_latent_dim = Some(q.rate_bits_per_dim);
    let grid = grid(&ck, data, &q, out)?;
    let m = &recon.metrics;
    let ci = m.fid_ci95.map(|c| format!(" {c}")).unwrap_or_default();
    let markdown = format!(
        "Stage 1 `{}` on the first {} test images: decode(encode(x)) with the teacher's decoder \
         ({}, NFE {}).\n\n\
         | measure | value |\n|---|---:|\n\
         | reconstruction PSNR (dB, images in [−1, 1]) | {:.2} |\n\
         | reconstruction FID vs the reference (n = {}) | {:.2}{ci} |\n\
         | prior rate (bits per latent dimension, ± s.e.) | {:.3} ± {:.3} |\n\
         | channel bound ½·log₂(1 + Var z/σ₀²) | {:.3} |\n\
         | clean latent std | {:.3} |\n\n\
         Originals (top) above their reconstructions (bottom):\n\n![reconstructions]({grid})\n",
        check.autoencoder.display(),
        q.n,
        q.decoder,
        q.decoder_nfe,
        q.recon_psnr,
        m.n_samples,
        m.fid,
        q.rate_bits_per_dim,
        q.rate_bits_per_dim_se,
        q.channel_bound_bits_per_dim,
        q.latent_std,
    );
    let data = serde_json::json!({
        "quality": q,
        "recon_fid": m.fid,
        "recon_fid_ci95": m.fid_ci95,
        "recon_kid": m.kid,
        "grid": grid,
    });
    Ok(Section {
        title: "Latent autoencoder".into(),
        markdown,
        data,
    })
}

/// Write the first originals of stage-1 run `ck` over their reconstructions as one PNG; its
/// file name.
fn grid(
    ck: &teacher::checkpoint::Checkpoint,
    data: Option<&Path>,
    q: &LatentQuality,
    out: &Path,
) -> Result<String> {
    let shape = ck.header.spec.shape;
    let cfg = ck.header.teacher_config()?;
    let dir = data.or(ck.header.lineage.data_path.as_deref());
    let test = cfg
        .data
        .load(dir, teacher::data::Split::Test)?
        .take(GRID.min(q.n));
    let (k, len) = (test.len(), shape.len());
    let tiles: Vec<&[f32]> = test
        .images
        .chunks(len)
        .chain(q.recon[..k * len].chunks(len))
        .collect();
    let scale = teacher::image_io::display_scale(shape.height);
    let (pixels, gshape) = teacher::image_io::grid(&tiles, shape, k.max(1), scale);
    let file = "reconstructions.png";
    teacher::image_io::write_png(&out.join(file), &pixels, gshape)?;
    Ok(file.into())
}
