//! `fewstep eval report`: sample every model at its step counts (same seeds, through the
//! resumable sample cache), score each set with intervals, and hand the numbers to
//! `eval::report` for the markdown/HTML/JSON report and plots. The verdict's further analyses
//! (ratios, fidelity, sweeps, the teacher's NFE curve, memorisation, timing, the declared
//! headline) are in `verdict`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;

use eval::fid::FeatureSpace;
use eval::metrics::{Metrics, Reference, Scored, score};
use eval::report::{ModelResult, Protocol, Results, Section, write_report};
use teacher::checkpoint::Checkpoint;
use teacher::edm::solver::Sampler;
use teacher::image_io::{grid, write_png};
use teacher::recipe::ModelKind;
use teacher::unet::ImageShape;

use crate::chain::{Stage, model_stages};
use crate::config::{PipelineConfig, VerdictConfig};
use teacher::latent::source::DecoderChoice;

use crate::config::{Baseline, BaselineRole};
use crate::images::image_source;
use crate::sample_cache::{CachedSet, SampleCache, SetKey};

/// What a report compares and how.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Run folders (teacher, students; a progressive run contributes its rounds).
    pub runs: Vec<PathBuf>,
    /// The feature network (a folder from `eval train-features`, `pixels`, or an ONNX file).
    pub features: PathBuf,
    /// Reference images (`mnist-test`, `run:DIR:test`, a folder …).
    pub reference: String,
    /// Real held-out images for the real-vs-real floor.
    pub real: Option<String>,
    pub out: PathBuf,
    pub data: Option<PathBuf>,
    /// Samples per model and step count.
    pub n: usize,
    pub guidance: f64,
    pub seed: u64,
    pub batch: usize,
    pub teacher_steps: Vec<usize>,
    pub student_steps: Vec<usize>,
    /// The teacher's FID-vs-w sweep (empty: none), at `sweep_steps`.
    pub sweep_guidance: Vec<f64>,
    pub sweep_steps: usize,
    /// NFE budgets at which the teacher's Euler, Heun and DPM-Solver++(2M) are compared
    /// (empty: no comparison).
    pub solver_nfe: Vec<usize>,
    pub title: String,
    /// Intervals, declared headline, sweeps' n, memorisation and timing.
    pub verdict: VerdictConfig,
    /// The resumable sample cache (kept apart from `out`, which is replaced whole).
    pub cache: PathBuf,
    /// Models of latents: the decoder every student decodes with (a latent chain's distilled
    /// one); None: each model's chain decoder. Teachers always take their chain's.
    pub student_decoder: Option<DecoderChoice>,
    /// A latent chain: its autoencoder's reconstruction and rate section.
    pub latent: Option<crate::latent_report::LatentCheck>,
    /// Teachers of other runs scored beside the chain's models.
    pub baselines: Vec<Baseline>,
    /// Other reports' sample caches, read before sampling a set.
    pub reuse_samples: Vec<PathBuf>,
}

impl ReportSettings {
    /// The cache beside `out` when none is named: `OUT.samples`.
    pub fn default_cache(out: &Path) -> PathBuf {
        let mut name = out.file_name().unwrap_or_default().to_os_string();
        name.push(".samples");
        out.with_file_name(name)
    }
}

impl ReportSettings {
    /// The pipeline's report: every model of the chain against the teacher's data.
    pub fn for_pipeline(
        cfg: &PipelineConfig,
        teacher_dir: &Path,
        run: &Path,
        data: Option<PathBuf>,
    ) -> Self {
        // The images the chain makes (a latent chain's: its autoencoder's data).
        let images = cfg.image_data();
        let (e, dataset) = (&cfg.eval, images.name());
        // Clips have no named split: the reference is the teacher's own data config's.
        let (reference, real, train) = if images.is_clips() {
            let t = teacher_dir.display();
            let train = format!("run:{t}:train");
            (format!("run:{t}:test"), format!("{train}:{}", e.n), train)
        } else {
            let train = format!("{dataset}-train");
            (format!("{dataset}-test"), format!("{train}:{}", e.n), train)
        };
        let dir = |st: Stage| match st {
            Stage::Teacher => teacher_dir.to_path_buf(),
            st => run.join(st.name()),
        };
        Self {
            runs: model_stages().map(dir).collect(),
            features: run.join(Stage::Features.name()),
            real: Some(e.real.clone().unwrap_or(real)),
            reference,
            out: run.join(Stage::Report.name()),
            data,
            n: e.n,
            guidance: e.guidance,
            seed: e.seed,
            batch: 250,
            teacher_steps: e.teacher_steps.clone(),
            student_steps: e.student_steps.clone(),
            sweep_guidance: e.sweep_guidance.clone(),
            sweep_steps: e.sweep_steps,
            solver_nfe: e.solver_nfe.clone(),
            title: format!("fewstep pipeline report ({dataset})"),
            verdict: VerdictConfig {
                train: e.verdict.train.clone().or(Some(train)),
                ..e.verdict.clone()
            },
            cache: run.join("report-samples"),
            student_decoder: cfg.latent.as_ref().map(|l| DecoderChoice {
                run: Some(run.join(Stage::Decoder.name())),
                steps: Some(l.decoder_steps),
            }),
            latent: crate::latent_report::LatentCheck::of(cfg, run),
            baselines: e.baselines.clone(),
            reuse_samples: e.reuse_samples.clone(),
        }
    }
}

/// Samples in each model's grid row(s).
const GRID_SAMPLES: usize = 20;

/// The (path, steps) pairs a run contributes at `steps` (teacher) / `student` step counts.
pub(crate) fn targets_at(
    run: &Path,
    teacher: &[usize],
    student: &[usize],
) -> Result<Vec<(PathBuf, usize)>> {
    if teacher::runs::is_progressive_run(run) {
        return Ok(teacher::runs::available_rounds(run)
            .into_iter()
            .filter(|s| student.contains(s))
            .map(|s| (teacher::runs::round_dir(run, s), s))
            .collect());
    }
    let ck = Checkpoint::load(run)?;
    let steps = match ck.header.kind() {
        ModelKind::Teacher => teacher,
        _ => student,
    };
    Ok(steps.iter().map(|&s| (run.to_path_buf(), s)).collect())
}

/// Clips: one strip with the first clip of every sample set (labelled), as a report section.
fn strips_section(
    out: &Path,
    first_clips: &[(String, Vec<f32>)],
    shape: ImageShape,
) -> Result<Option<Section>> {
    if first_clips.is_empty() {
        return Ok(None);
    }
    let rows: Vec<&[f32]> = first_clips.iter().map(|(_, c)| c.as_slice()).collect();
    let file = "strips.png";
    teacher::clip_io::write_strip(&out.join(file), &rows, shape)?;
    let labels: Vec<&String> = first_clips.iter().map(|(l, _)| l).collect();
    let order: Vec<String> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{}. {l}", i + 1))
        .collect();
    Ok(Some(Section {
        title: "Frame strips side by side".into(),
        markdown: format!(
            "The first clip of every sample set (same noise seed, class 0), one row each, \
             frames left to right:\n\n![strips]({file})\n\nRows, top to bottom:\n\n{}\n",
            order.join("\n")
        ),
        data: serde_json::json!({ "file": file, "rows": labels }),
    }))
}

/// This process's command line, quoted where an argument has a space.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The feature space and reference every sample set of one report is scored against, and the
/// sample cache every set is drawn through.
pub(crate) struct Scoring {
    pub space: FeatureSpace,
    pub reference: Reference,
    /// The reference's images (the memorisation check's test side).
    pub reference_images: Vec<f32>,
    /// Neighbours of precision/recall.
    k: usize,
    pub device: Device,
    pub cache: SampleCache,
    pub batch: usize,
    pub seed: u64,
    student_decoder: Option<DecoderChoice>,
}

impl Scoring {
    /// `example`: the models' example shape, which picks the contract of a user's ONNX network
    /// (I3D for clips).
    fn new(args: &ReportSettings, example: ImageShape, device: &Device) -> Result<Self> {
        let space = FeatureSpace::load_for(&args.features, Some(example), device)?;
        let channels = space.shape().map(|s| s.channels).unwrap_or(1);
        let (imgs, _, shape) = image_source(&args.reference, args.data.as_deref(), channels)?;
        let intervals = &args.verdict.intervals;
        let reference = Reference::new(&space, &imgs, shape, intervals, device)?;
        Ok(Self {
            space,
            reference,
            reference_images: imgs,
            k: 3,
            device: device.clone(),
            cache: SampleCache::open(&args.cache)?.reusing(&args.reuse_samples)?,
            batch: args.batch,
            seed: args.seed,
            student_decoder: args.student_decoder.clone(),
        })
    }

    /// The decoder `ck`'s samples go through when it is not its chain's: a student's under
    /// `student_decoder`.
    pub fn decoder_for(&self, ck: &Checkpoint) -> Option<DecoderChoice> {
        match ck.header.kind() {
            ModelKind::Teacher => None,
            _ => self.student_decoder.clone(),
        }
    }

    pub fn channels(&self) -> usize {
        self.space.shape().map(|s| s.channels).unwrap_or(1)
    }

    pub fn score(
        &self,
        images: &[f32],
        classes: &[usize],
        shape: ImageShape,
        label: &str,
    ) -> Result<Scored> {
        let (space, r, k) = (&self.space, &self.reference, self.k);
        Ok(score(
            space,
            r,
            (images, classes, shape),
            k,
            label,
            &self.device,
        )?)
    }

    /// The first `n` samples of `ck` at `steps` (`sampler`: None for the model's own) and `w`.
    pub fn sample(
        &self,
        ck: &Checkpoint,
        steps: usize,
        sampler: Option<Sampler>,
        w: f64,
        n: usize,
    ) -> Result<CachedSet> {
        let kind = ck.header.kind().name();
        let solver = sampler.map_or("own", |s| s.name());
        let decoder = self.decoder_for(ck);
        let dec = decoder
            .as_ref()
            .and_then(|d| d.steps)
            .map(|k| format!("-dec{k}"))
            .unwrap_or_default();
        let key = SetKey {
            label: format!("{kind}-{steps:03}-{solver}-w{w}{dec}"),
            steps,
            sampler,
            guidance: w,
            seed: self.seed,
            decoder,
        };
        self.cache.get(ck, &key, n, self.batch, &self.device)
    }

    /// The real-vs-real floor: held-out real images `spec` against the reference.
    fn floor(&self, spec: &str, data: Option<&Path>) -> Result<Metrics> {
        let (imgs, classes, shape) = image_source(spec, data, self.channels())?;
        Ok(self.score(&imgs, &classes, shape, "real-vs-real")?.metrics)
    }
}

/// A clip for the report's side-by-side strip: its caption and its pixels.
type Clip = (String, Vec<f32>);

/// One main-table row as sampled and scored, with what the verdict's analyses need.
pub(crate) struct Row {
    pub result: ModelResult,
    pub path: PathBuf,
    pub kind: ModelKind,
    pub images: Vec<f32>,
    pub scored: Scored,
    /// A model of another run beside the chain's, and what it stands for.
    pub baseline: Option<BaselineRole>,
}

/// Draw the grid (clips: strip and animation) of a row's first samples; returns the grid's
/// file, the animation's, and the first clip for the side-by-side strip.
fn draw_samples(
    out: &Path,
    name: &str,
    steps: usize,
    s: &CachedSet,
    ck: &Checkpoint,
) -> Result<(String, Option<String>, Option<Clip>)> {
    let shape = teacher::sample::output_shape(ck)?;
    let imgs: Vec<&[f32]> = s.images.chunks(shape.len()).take(GRID_SAMPLES).collect();
    let cols = ck.header.spec.num_classes.min(GRID_SAMPLES);
    let grid_file = format!("grid-{name}-{steps:03}.png");
    if !shape.is_clip() {
        let scale = teacher::image_io::display_scale(shape.height);
        let (g, gs) = grid(&imgs, shape, cols, scale);
        write_png(&out.join(&grid_file), &g, gs)?;
        return Ok((grid_file, None, None));
    }
    // Clips: a strip (one row of frames per clip, one clip per class) and the animation.
    let first = (
        format!("{name} · {steps} steps · NFE {}", s.nfe),
        imgs[0].to_vec(),
    );
    let strip = &imgs[..imgs.len().min(cols)];
    teacher::clip_io::write_strip(&out.join(&grid_file), strip, shape)?;
    let anim = format!("anim-{name}-{steps:03}.png");
    let fps = teacher::clip_io::FPS;
    teacher::clip_io::write_grid_apng(&out.join(&anim), &imgs, shape, cols, fps)?;
    Ok((grid_file, Some(anim), Some(first)))
}

/// Sample (or read from the cache), score and draw one model at `steps` at the declared w;
/// `baseline` names a model of another run and its role.
fn model_row(
    args: &ReportSettings,
    (path, steps): (&Path, usize),
    ck: &Checkpoint,
    scoring: &Scoring,
    baseline: Option<&Baseline>,
) -> Result<(Row, Option<Clip>)> {
    let name = baseline.map_or(ck.header.kind().name().to_string(), |b| b.name.clone());
    let s = scoring.sample(ck, steps, None, args.guidance, args.n)?;
    let shape = teacher::sample::output_shape(ck)?;
    let scored = scoring.score(&s.images, &s.classes, shape, &format!("{name}-{steps}"))?;
    let (grid, animation, first_clip) = draw_samples(&args.out, &name, steps, &s, ck)?;
    let config_hash =
        teacher::checkpoint::sha256_hex(ck.header.config.as_bytes())[..16].to_string();
    let result = ModelResult {
        kind: name.clone(),
        name,
        run: path.display().to_string(),
        config_hash,
        steps,
        nfe: s.nfe,
        guidance: args.guidance,
        sampler: s.sampler.clone(),
        seed: args.seed,
        batch: args.batch,
        seconds: s.seconds,
        seconds_per_1000: s.seconds * 1000.0 / args.n as f64,
        metrics: scored.metrics.clone(),
        vs_teacher: None,
        fidelity: None,
        memorisation: None,
        timing: None,
        grid,
        animation,
        baseline: baseline.map(|b| b.role.key().to_string()),
    };
    let row = Row {
        result,
        path: path.to_path_buf(),
        kind: ck.header.kind(),
        images: s.images,
        scored,
        baseline: baseline.map(|b| b.role),
    };
    Ok((row, first_clip))
}

/// The most steps of `sampler` whose NFE (with CFG's 2 per call at `w`) fits in `budget`.
pub fn steps_within(sampler: Sampler, budget: usize, per_call: usize) -> Option<usize> {
    (1..=budget)
        .rev()
        .find(|&s| sampler.calls(s) * per_call <= budget)
}

/// Every main-table row, and the first clips for the strip.
fn main_rows(
    args: &ReportSettings,
    todo: &[(PathBuf, usize)],
    scoring: &Scoring,
    quiet: bool,
) -> Result<(Vec<Row>, Vec<Clip>)> {
    let pb = teacher::progress::bar(todo.len() as u64, quiet, "report");
    let (mut rows, mut clips) = (Vec::new(), Vec::new());
    for (path, steps) in todo {
        let ck = Checkpoint::load(path)?;
        pb.set_message(format!("{} at {steps} steps", ck.header.kind().name()));
        let (row, clip) = model_row(args, (path, *steps), &ck, scoring, None)?;
        rows.push(row);
        clips.extend(clip);
        pb.inc(1);
    }
    for b in &args.baselines {
        let path = teacher::runs::resolve_model(&b.run, 0)?;
        let ck = Checkpoint::load(&path).with_context(|| {
            format!(
                "baseline `{}`: train its run `{}` first, or remove it from eval.baselines",
                b.name,
                b.run.display()
            )
        })?;
        if ck.header.kind() != ModelKind::Teacher {
            bail!(
                "baseline `{}`: `{}` is a {} student; a baseline is a teacher run",
                b.name,
                path.display(),
                ck.header.kind().name()
            );
        }
        pb.set_message(format!("baseline {} at {} steps", b.name, b.steps));
        let (row, clip) = model_row(args, (&path, b.steps), &ck, scoring, Some(b))?;
        rows.push(row);
        clips.extend(clip);
    }
    pb.finish_and_clear();
    Ok((rows, clips))
}

/// Write the report for `args`, with further `sections` (the pipeline's serving and
/// training-cost sections).
pub fn report_with(
    args: &ReportSettings,
    device: &Device,
    quiet: bool,
    mut sections: Vec<Section>,
) -> Result<()> {
    let started = Instant::now();
    let mut todo = Vec::new();
    for run in &args.runs {
        todo.extend(targets_at(run, &args.teacher_steps, &args.student_steps)?);
    }
    if todo.is_empty() {
        bail!(
            "no model of the given runs has one of the requested step counts (--teacher-steps / --student-steps)"
        );
    }
    args.verdict.validate()?;
    let example = teacher::sample::output_shape(&Checkpoint::load(&todo[0].0)?)?;
    let scoring = Scoring::new(args, example, device)?;
    // Written beside `--out` and swapped in whole: a killed report leaves the old one whole
    // (its samples stay in the cache, so the next run resumes).
    let staged = teacher::staged::StagedFolder::begin(&args.out, "results.json")?;
    let dest = args.out.clone();
    let args = &ReportSettings {
        out: staged.path().to_path_buf(),
        ..args.clone()
    };
    let real_vs_real = match &args.real {
        Some(spec) => Some(scoring.floor(spec, args.data.as_deref())?),
        None => None,
    };
    let (mut rows, clips) = main_rows(args, &todo, &scoring, quiet)?;
    sections.extend(strips_section(&args.out, &clips, example)?);
    let mut verdict = crate::verdict::analyse(args, &mut rows, &scoring, quiet)?;
    if let Some(check) = &args.latent {
        let (data, out) = (args.data.as_deref(), &args.out);
        let h = &mut verdict.headline;
        sections.push(crate::latent_report::section(
            check, data, &scoring, args.seed, out, h,
        )?);
    }
    let v = &args.verdict.intervals;
    let protocol = Protocol {
        bootstrap: v.bootstrap,
        kid_blocks: v.kid.blocks,
        kid_subsets: v.kid.subsets,
        kid_subset_size: v.kid.subset_size,
        sweep_n: args.verdict.sweep_n,
        memorisation_n: args.verdict.memorisation_n,
        train: args.verdict.train.clone().unwrap_or_default(),
        seconds: started.elapsed().as_secs_f64(),
        new_chunks: scoring.cache.new_chunks(),
        cached_chunks: scoring.cache.cached_chunks(),
    };
    let results = Results {
        title: args.title.clone(),
        command: command_line(),
        metric: scoring.space.metric().into(),
        features: scoring.space.name(),
        reference: args.reference.clone(),
        real_vs_real,
        backend: format!("{device:?}"),
        protocol,
        models: rows.into_iter().map(|r| r.result).collect(),
        guidance_sweep: verdict.sweep,
        solver_curve: verdict.curve,
        headline: verdict.headline,
        sections,
    };
    write_report(&args.out, &results)?;
    staged.commit()?;
    println!("report written to {}", dest.join("report.md").display());
    print_headline(&results);
    Ok(())
}

/// The headline's one line on stdout (when the report has one).
fn print_headline(results: &Results) {
    if let (Some((f, ci)), Some(s)) = (
        results.headline.ratio(),
        results.headline.speedup_student4_vs_teacher50,
    ) {
        let (d, h) = (&results.metric, &results.headline);
        let ci = ci.map_or(String::new(), |c| format!(" {c}"));
        println!(
            "headline: {} {} steps {d} = {f:.3}×{ci} teacher-50's, {s:.1}× faster",
            h.student.as_deref().unwrap_or("student"),
            h.steps.unwrap_or(0)
        );
    }
}

/// `fewstep eval render`: re-draw the report in `dir` from its `results.json`; returns the
/// path of the new `report.md`.
pub fn rerender(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("results.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read `{}`: pass a folder written by `fewstep eval report`",
            path.display()
        )
    })?;
    let results: Results = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is not a fewstep results file: re-run `fewstep eval report`",
            path.display()
        )
    })?;
    write_report(dir, &results)?;
    Ok(dir.join("report.md"))
}
