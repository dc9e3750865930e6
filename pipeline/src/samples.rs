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
use teacher::sample::{
    ClassChoice, Output, SampleSpec, sample_checkpoint_as, sample_checkpoint_each,
};
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
struct SamplesMeta {
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
    /// Which class each image has (its file name says it too: `NNNNN_cK.png`).
    classes: String,
}

/// Sample as `s` says and write the folder; returns the line that says what was written.
pub fn sample_to_folder(settings: &SampleSettings, device: &Device) -> Result<String> {
    let spec = &settings.spec;
    let path = resolve_model(&settings.model, spec.steps)?;
    let ck = Checkpoint::load(&path)?;
    let num_classes = ck.header.spec.num_classes;
    check_request(spec, num_classes)?;
    // Written beside `--out` and swapped in whole: a folder never mixes two sample sets.
    let staged = teacher::staged::StagedFolder::begin(&settings.out, "samples.json")?;
    let dir = staged.path();
    let t = Instant::now();
    let shape = teacher::sample::output_shape(&ck)?;
    // Each batch goes to disk as it is done; only the grid's first images are kept.
    let mut shown = Vec::new();
    let (nfe, plan) =
        sample_checkpoint_each(&ck, spec, device, |first, images, classes| -> Result<()> {
            write_batch(dir, first, &images, classes, shape)?;
            let room = GRID_MAX.saturating_sub(shown.len() / shape.len());
            shown.extend_from_slice(&images[..room.min(classes.len()) * shape.len()]);
            Ok(())
        })?;
    let seconds = t.elapsed().as_secs_f64();
    let shown_n = shown.len() / shape.len();
    let cols = match spec.classes {
        ClassChoice::All => num_classes.min(shown_n),
        ClassChoice::One(_) => (shown_n as f64).sqrt().ceil() as usize,
    };
    write_grid(dir, &shown, shape, cols)?;
    if let Some(canvas) = ck.header.spec.net.canvas(shape) {
        write_resolutions_grid(dir, &ck, spec, shown_n, cols, &canvas, device)?;
    }
    let meta = SamplesMeta {
        model: path.display().to_string(),
        kind: ck.header.kind(),
        n: spec.n,
        steps: spec.steps,
        sampler: plan.sampler(),
        plan: plan.describe(),
        guidance: spec.guidance,
        seed: spec.seed,
        nfe,
        seconds,
        classes: match spec.classes {
            ClassChoice::All => format!("image i has class i mod {num_classes}"),
            ClassChoice::One(k) => format!("every image has class {k}"),
        },
    };
    let json = serde_json::to_string_pretty(&meta)?;
    write_atomic(&dir.join("samples.json"), json.as_bytes())?;
    let dir = staged.commit()?;
    let what = match (shape.is_clip(), ck.header.spec.net.canvas(shape).is_some()) {
        (true, _) => "clips (animated PNG), grid.png (animated) and strip.png",
        (false, true) => "images, grid.png and grid-resolutions.png (every resolution)",
        (false, false) => "images and grid.png",
    };
    Ok(format!(
        "wrote {} {what} to {} — {} model, NFE per image {} ({} steps, {}, w = {}), {seconds:.2} s",
        spec.n,
        dir.display(),
        ck.header.kind().name(),
        nfe,
        spec.steps,
        plan.describe(),
        spec.guidance,
    ))
}

/// Reject requests no model can serve, naming the flag and the fix.
fn check_request(spec: &SampleSpec, num_classes: usize) -> Result<()> {
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
    Ok(())
}

/// The most samples `grid.png` shows.
const GRID_MAX: usize = 100;

/// One batch's sample files (clips: animated PNGs), numbered from `first`.
fn write_batch(
    dir: &Path,
    first: usize,
    images: &[f32],
    classes: &[usize],
    shape: ImageShape,
) -> Result<()> {
    for (k, (img, c)) in images.chunks(shape.len()).zip(classes).enumerate() {
        let p = dir.join(format!("{:05}_c{c}.png", first + k));
        match shape.is_clip() {
            // Native resolution, like still samples, so `fewstep eval fid --samples` reads them.
            true => write_atomic(&p, &apng_bytes(img, shape, FPS, 1)?)?,
            false => write_png(&p, img, shape)?,
        }
    }
    Ok(())
}

/// The grid of the first samples (clips: an animated grid and a strip).
fn write_grid(dir: &Path, shown: &[f32], shape: ImageShape, cols: usize) -> Result<()> {
    let images: Vec<&[f32]> = shown.chunks(shape.len()).collect();
    if shape.is_clip() {
        write_grid_apng(&dir.join("grid.png"), &images, shape, cols, FPS)?;
        let strip = &images[..images.len().min(10)];
        write_strip(&dir.join("strip.png"), strip, shape)?;
    } else {
        let (g, gshape) = grid(&images, shape, cols, display_scale(shape.height));
        write_png(&dir.join("grid.png"), &g, gshape)?;
    }
    Ok(())
}

/// A multi-resolution model's first `n` samples again, as whole final states: every copy of
/// each, side by side (`grid-resolutions.png`, one row of R copies per sample, `cols` per row).
fn write_resolutions_grid(
    dir: &Path,
    ck: &Checkpoint,
    spec: &SampleSpec,
    n: usize,
    cols: usize,
    canvas: &teacher::multires::Canvas,
    device: &Device,
) -> Result<()> {
    let first = SampleSpec { n, ..spec.clone() };
    let mut shown = Vec::new();
    sample_checkpoint_as(
        ck,
        &first,
        Output::States,
        device,
        |_, states, _| -> Result<()> {
            for s in states.chunks(canvas.shape().len()) {
                shown.extend(canvas.display(s));
            }
            Ok(())
        },
    )?;
    let shape = canvas.display_shape();
    let images: Vec<&[f32]> = shown.chunks(shape.len()).collect();
    let (g, gshape) = grid(&images, shape, cols.max(1), display_scale(shape.height));
    Ok(write_png(&dir.join("grid-resolutions.png"), &g, gshape)?)
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
