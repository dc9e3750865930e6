//! `fewstep sample`: images (or clips) from any model, written as a sample folder — one PNG per
//! sample (`NNNNN_cK.png`, clips as animated PNGs at native size), `grid.png` (clips also
//! `strip.png`) and `samples.json` saying what made them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde::Serialize;
use teacher::checkpoint::{Checkpoint, write_atomic};
use teacher::clip_io::{FPS, apng_bytes, write_grid_apng, write_strip};
use teacher::edm::solver::Sampler;
use teacher::image_io::{display_scale, grid, write_png};
use teacher::recipe::ModelKind;
use teacher::runs::resolve_model;
use teacher::sample::{ClassChoice, SampleSpec, Samples, sample_checkpoint};
use teacher::unet::ImageShape;

/// What to sample and where to write it.
#[derive(Debug, Clone)]
pub struct SampleSettings {
    /// A run folder, checkpoint file, or progressive run (its `spec.steps` round is picked).
    pub model: PathBuf,
    pub spec: SampleSpec,
    pub out: PathBuf,
}

#[derive(Serialize)]
struct SamplesMeta<'a> {
    model: String,
    kind: ModelKind,
    n: usize,
    steps: usize,
    /// The ODE solver (None: multistep consistency sampling).
    sampler: Option<Sampler>,
    /// What ran, in words.
    plan: String,
    guidance: f64,
    seed: u64,
    nfe: usize,
    seconds: f64,
    classes: &'a [usize],
}

/// Sample as `s` says and write the folder; returns the line that says what was written.
pub fn sample_to_folder(settings: &SampleSettings, device: &Device) -> Result<String> {
    let spec = &settings.spec;
    let path = resolve_model(&settings.model, spec.steps)?;
    let ck = Checkpoint::load(&path)?;
    let num_classes = ck.header.spec.num_classes;
    if let ClassChoice::One(k) = spec.classes
        && k >= num_classes
    {
        bail!("`--class {k}`: give a class index in 0..{num_classes} or `all`");
    }
    if !spec.guidance.is_finite() {
        bail!(
            "`--guidance {}`: give a finite guidance weight (1 = conditional, 0 = unconditional)",
            spec.guidance
        );
    }
    if spec.n == 0 {
        bail!("`--n 0`: ask for at least one image");
    }
    if spec.batch_size == 0 {
        bail!("`--batch 0`: sample at least one image per batch (the default is 250)");
    }
    // Written beside `--out` and swapped in whole: a folder never mixes two sample sets.
    let staged = teacher::staged::StagedFolder::begin(&settings.out, "samples.json")?;
    let dir = staged.path();
    let t = Instant::now();
    let (out, plan) = sample_checkpoint(&ck, spec, device)?;
    let seconds = t.elapsed().as_secs_f64();
    let shape = ck.header.spec.shape;
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    let cols = match spec.classes {
        ClassChoice::All => num_classes.min(spec.n),
        ClassChoice::One(_) => (spec.n as f64).sqrt().ceil() as usize,
    };
    write_images(dir, &out, shape, cols)?;
    let meta = SamplesMeta {
        model: path.display().to_string(),
        kind: ck.header.kind(),
        n: spec.n,
        steps: spec.steps,
        sampler: plan.sampler(),
        plan: plan.describe(),
        guidance: spec.guidance,
        seed: spec.seed,
        nfe: out.nfe,
        seconds,
        classes: &out.classes,
    };
    let json = serde_json::to_string_pretty(&meta)?;
    write_atomic(&dir.join("samples.json"), json.as_bytes())?;
    let dir = staged.commit()?;
    let what = match shape.is_clip() {
        true => "clips (animated PNG), grid.png (animated) and strip.png",
        false => "images and grid.png",
    };
    Ok(format!(
        "wrote {} {what} to {} — {} model, NFE per image {} ({} steps, {}, w = {}), {seconds:.2} s",
        spec.n,
        dir.display(),
        ck.header.kind().name(),
        out.nfe,
        spec.steps,
        plan.describe(),
        spec.guidance,
    ))
}

/// The sample files and the grid (clips: animated PNGs, an animated grid and a strip).
fn write_images(dir: &Path, out: &Samples, shape: ImageShape, cols: usize) -> Result<()> {
    let images: Vec<&[f32]> = out.images.chunks(shape.len()).collect();
    for (i, (img, c)) in images.iter().zip(&out.classes).enumerate() {
        let p = dir.join(format!("{i:05}_c{c}.png"));
        match shape.is_clip() {
            // Native resolution, like still samples, so `fewstep eval fid --samples` reads them.
            true => write_atomic(&p, &apng_bytes(img, shape, FPS, 1)?)?,
            false => write_png(&p, img, shape)?,
        }
    }
    if shape.is_clip() {
        write_grid_apng(&dir.join("grid.png"), &images, shape, cols, FPS)?;
        write_strip(
            &dir.join("strip.png"),
            &images[..images.len().min(10)],
            shape,
        )?;
    } else {
        let (g, gshape) = grid(&images, shape, cols, display_scale(shape.height));
        write_png(&dir.join("grid.png"), &g, gshape)?;
    }
    Ok(())
}

/// `fewstep clips`: `n` moving-digit clips made from `source` (seed `seed`) written to `out` to
/// look at, as animated PNGs and a frame strip; returns the line that says so.
pub fn write_moving_digits(
    source: &teacher::data::DataConfig,
    data_dir: Option<&std::path::Path>,
    cfg: &teacher::data::moving::MovingDigitsConfig,
    n: usize,
    seed: u64,
    out: &std::path::Path,
) -> Result<String> {
    let src = source.load(data_dir, teacher::data::Split::Train)?;
    let c = teacher::data::moving::moving_digits(&src, cfg, n, seed)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create `{}`", out.display()))?;
    for i in 0..c.len() {
        let p = out.join(format!("clip-{i:03}.png"));
        teacher::clip_io::write_apng(&p, c.image(i), c.shape, FPS)?;
    }
    let all: Vec<&[f32]> = (0..c.len()).map(|i| c.image(i)).collect();
    write_strip(&out.join("strip.png"), &all, c.shape)?;
    Ok(format!(
        "wrote {} clips of {} frames {}×{} (labels {:?}) and strip.png to {}",
        c.len(),
        c.shape.frames,
        c.shape.height,
        c.shape.width,
        c.labels,
        out.display()
    ))
}
