//! `fewstep eval report`: sample every model at its step counts (same seeds), score each set,
//! and hand the numbers to `eval::report` for the markdown/HTML/JSON report and plots; with
//! `solver_nfe`, the teacher's ODE solvers side by side at equal NFE.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::Device;

use eval::fid::FeatureSpace;
use eval::metrics::{Metrics, Reference, score};
use eval::report::{GuidancePoint, ModelResult, Results, Section, write_report};
use teacher::checkpoint::Checkpoint;
use teacher::edm::solver::Sampler;
use teacher::image_io::{grid, write_png};
use teacher::recipe::{ModelKind, SamplerPlan};
use teacher::sample::{SampleSpec, Samples, sample_checkpoint};
use teacher::unet::ImageShape;

use crate::chain::{Stage, training_stages};
use crate::config::PipelineConfig;
use crate::images::image_source;

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
}

impl ReportSettings {
    /// The pipeline's report: every model of the chain against the teacher's data.
    pub fn for_pipeline(
        cfg: &PipelineConfig,
        teacher_dir: &Path,
        run: &Path,
        data: Option<PathBuf>,
    ) -> Self {
        let (e, dataset) = (&cfg.eval, cfg.teacher.data.name());
        // Clips have no named split: the reference is the teacher's own data config's.
        let (reference, real) = if cfg.teacher.data.is_clips() {
            let t = teacher_dir.display();
            (format!("run:{t}:test"), format!("run:{t}:train:{}", e.n))
        } else {
            (
                format!("{dataset}-test"),
                format!("{dataset}-train:{}", e.n),
            )
        };
        let dir = |st: Stage| match st {
            Stage::Teacher => teacher_dir.to_path_buf(),
            st => run.join(st.name()),
        };
        Self {
            runs: training_stages().map(dir).collect(),
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
        }
    }
}

/// Samples in each model's grid row(s).
const GRID_SAMPLES: usize = 20;

/// The (path, steps) pairs a run contributes.
fn targets(run: &Path, args: &ReportSettings) -> Result<Vec<(std::path::PathBuf, usize)>> {
    if teacher::runs::is_progressive_run(run) {
        return Ok(teacher::runs::available_rounds(run)
            .into_iter()
            .filter(|s| args.student_steps.contains(s))
            .map(|s| (teacher::runs::round_dir(run, s), s))
            .collect());
    }
    let ck = Checkpoint::load(run)?;
    let steps = match ck.header.kind() {
        ModelKind::Teacher => &args.teacher_steps,
        _ => &args.student_steps,
    };
    Ok(steps.iter().map(|&s| (run.to_path_buf(), s)).collect())
}

/// `args.n` samples of `ck` at `steps` steps (`sampler`: None for the model's own), timed.
fn sample_timed(
    ck: &Checkpoint,
    args: &ReportSettings,
    steps: usize,
    sampler: Option<Sampler>,
    guidance: f64,
    device: &Device,
) -> Result<(Samples, SamplerPlan, f64)> {
    let mut spec = SampleSpec::eval(args.n, steps, guidance, args.seed, args.batch);
    spec.sampler = sampler;
    let t = Instant::now();
    let (s, plan) = sample_checkpoint(ck, &spec, device)?;
    Ok((s, plan, t.elapsed().as_secs_f64()))
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

/// The feature space and reference every sample set of one report is scored against.
struct Scoring {
    space: FeatureSpace,
    reference: Reference,
    /// Neighbours of precision/recall.
    k: usize,
    device: Device,
}

impl Scoring {
    /// `example`: the models' example shape, which picks the contract of a user's ONNX network
    /// (I3D for clips).
    fn new(args: &ReportSettings, example: ImageShape, device: &Device) -> Result<Self> {
        let space = FeatureSpace::load_for(&args.features, Some(example), device)?;
        let channels = space.shape().map(|s| s.channels).unwrap_or(1);
        let (imgs, _, shape) = image_source(&args.reference, args.data.as_deref(), channels)?;
        let reference = Reference::new(&space, &imgs, shape, device)?;
        Ok(Self {
            space,
            reference,
            k: 3,
            device: device.clone(),
        })
    }

    fn score(&self, images: &[f32], classes: &[usize], shape: ImageShape) -> Result<Metrics> {
        let (space, r, k) = (&self.space, &self.reference, self.k);
        Ok(score(space, r, images, classes, shape, k, &self.device)?)
    }

    /// The real-vs-real floor: held-out real images `spec` against the reference.
    fn floor(&self, spec: &str, data: Option<&Path>) -> Result<Metrics> {
        let channels = self.space.shape().map(|s| s.channels).unwrap_or(1);
        let (imgs, classes, shape) = image_source(spec, data, channels)?;
        self.score(&imgs, &classes, shape)
    }
}

/// A clip for the report's side-by-side strip: its caption and its pixels.
type Clip = (String, Vec<f32>);

/// Sample, score and draw one model at `steps`; clips also give their first clip for the
/// side-by-side strip.
fn model_result(
    args: &ReportSettings,
    path: &Path,
    steps: usize,
    ck: &Checkpoint,
    scoring: &Scoring,
) -> Result<(ModelResult, Option<Clip>)> {
    let name = ck.header.kind().name().to_string();
    let (s, plan, seconds) = sample_timed(ck, args, steps, None, args.guidance, &scoring.device)?;
    let shape = ck.header.spec.shape;
    let metrics = scoring.score(&s.images, &s.classes, shape)?;
    let imgs: Vec<&[f32]> = s.images.chunks(shape.len()).take(GRID_SAMPLES).collect();
    let cols = ck.header.spec.num_classes.min(GRID_SAMPLES);
    let grid_file = format!("grid-{name}-{steps:03}.png");
    let (mut animation, mut first_clip) = (None, None);
    if shape.is_clip() {
        // Clips: a strip (one row of frames per clip, one clip per class) and the animation.
        first_clip = Some((
            format!("{name} · {steps} steps · NFE {}", s.nfe),
            imgs[0].to_vec(),
        ));
        let strip = &imgs[..imgs.len().min(cols)];
        teacher::clip_io::write_strip(&args.out.join(&grid_file), strip, shape)?;
        let anim = format!("anim-{name}-{steps:03}.png");
        let fps = teacher::clip_io::FPS;
        teacher::clip_io::write_grid_apng(&args.out.join(&anim), &imgs, shape, cols, fps)?;
        animation = Some(anim);
    } else {
        let scale = teacher::image_io::display_scale(shape.height);
        let (g, gs) = grid(&imgs, shape, cols, scale);
        write_png(&args.out.join(&grid_file), &g, gs)?;
    }
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
        sampler: plan.describe(),
        seed: args.seed,
        batch: args.batch,
        seconds,
        seconds_per_1000: seconds * 1000.0 / args.n as f64,
        metrics,
        grid: grid_file,
        animation,
    };
    Ok((result, first_clip))
}

/// The teacher's FID at each guidance weight of the sweep.
fn guidance_sweep(
    args: &ReportSettings,
    ck: &Checkpoint,
    scoring: &Scoring,
) -> Result<Vec<GuidancePoint>> {
    let mut sweep = Vec::new();
    for &w in &args.sweep_guidance {
        let (s, _, _) = sample_timed(ck, args, args.sweep_steps, None, w, &scoring.device)?;
        let m = scoring.score(&s.images, &s.classes, ck.header.spec.shape)?;
        sweep.push(GuidancePoint {
            name: "teacher".into(),
            steps: args.sweep_steps,
            guidance: w,
            fid: m.fid,
        });
    }
    Ok(sweep)
}

/// The most steps of `sampler` whose NFE (with CFG's 2 per call at `w`) fits in `budget`.
pub fn steps_within(sampler: Sampler, budget: usize, per_call: usize) -> Option<usize> {
    (1..=budget)
        .rev()
        .find(|&s| sampler.calls(s) * per_call <= budget)
}

/// "Teacher solvers at equal NFE": Euler, Heun and DPM-Solver++(2M) on the teacher at each
/// NFE budget of `args.solver_nfe` (each at the most steps the budget allows), same seeds.
fn solver_section(args: &ReportSettings, ck: &Checkpoint, scoring: &Scoring) -> Result<Section> {
    use std::fmt::Write as _;
    let solvers = [Sampler::Euler, Sampler::Heun, Sampler::Dpmpp2m];
    let per_call = teacher::recipe::Guidance::Cfg(args.guidance).nfe_per_call();
    let mut md = format!(
        "The teacher with each ODE solver at equal NFE (network evaluations per image, CFG \
         counting {per_call} per call at w = {}), n = {} per row, seed {}, against `{}`. Heun \
         takes the most steps whose NFE fits the budget (2·steps − 1 calls).\n\n\
         | NFE budget | solver | steps | NFE | {} | s / 1,000 |\n|---:|---|---:|---:|---:|---:|\n",
        args.guidance,
        args.n,
        args.seed,
        args.reference,
        scoring.space.metric()
    );
    let mut rows = Vec::new();
    for &budget in &args.solver_nfe {
        for sampler in solvers {
            let Some(steps) = steps_within(sampler, budget, per_call) else {
                continue;
            };
            let dev = &scoring.device;
            let (s, _, secs) = sample_timed(ck, args, steps, Some(sampler), args.guidance, dev)?;
            let m = scoring.score(&s.images, &s.classes, ck.header.spec.shape)?;
            let per_1000 = secs * 1000.0 / args.n as f64;
            let _ = writeln!(
                md,
                "| {budget} | {} | {steps} | {} | {:.2} | {per_1000:.1} |",
                sampler.name(),
                s.nfe,
                m.fid
            );
            rows.push(
                serde_json::json!({"budget": budget, "sampler": sampler, "steps": steps,
                "nfe": s.nfe, "fid": m.fid, "seconds_per_1000": per_1000}),
            );
        }
    }
    Ok(Section {
        title: "Teacher solvers at equal NFE".into(),
        markdown: md,
        data: serde_json::json!({ "rows": rows, "guidance": args.guidance, "n": args.n }),
    })
}

/// Write the report for `args`, with further `sections` (the pipeline's serving and
/// training-cost sections).
pub fn report_with(
    args: &ReportSettings,
    device: &Device,
    quiet: bool,
    mut sections: Vec<Section>,
) -> Result<()> {
    let mut todo = Vec::new();
    for run in &args.runs {
        todo.extend(targets(run, args)?);
    }
    if todo.is_empty() {
        bail!(
            "no model of the given runs has one of the requested step counts (--teacher-steps / --student-steps)"
        );
    }
    let example = Checkpoint::load(&todo[0].0)?.header.spec.shape;
    let scoring = Scoring::new(args, example, device)?;
    // Written beside `--out` and swapped in whole: a killed report leaves the old one whole.
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
    let pb = teacher::progress::bar(todo.len() as u64, quiet, "report");
    let (mut models, mut first_clips, mut teacher_ck) = (Vec::new(), Vec::new(), None);
    for (path, steps) in &todo {
        let ck = Checkpoint::load(path)?;
        pb.set_message(format!("{} at {steps} steps", ck.header.kind().name()));
        let (result, clip) = model_result(args, path, *steps, &ck, &scoring)?;
        models.push(result);
        first_clips.extend(clip);
        if ck.header.kind() == ModelKind::Teacher && teacher_ck.is_none() {
            teacher_ck = Some(ck);
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    sections.extend(strips_section(&args.out, &first_clips, example)?);
    let mut sweep = Vec::new();
    if let Some(ck) = &teacher_ck {
        sweep = guidance_sweep(args, ck, &scoring)?;
        if !args.solver_nfe.is_empty() {
            sections.push(solver_section(args, ck, &scoring)?);
        }
    }
    let mut results = Results {
        title: args.title.clone(),
        command: command_line(),
        metric: scoring.space.metric().into(),
        features: scoring.space.name(),
        reference: args.reference.clone(),
        real_vs_real,
        backend: format!("{device:?}"),
        models,
        guidance_sweep: sweep,
        headline: Default::default(),
        sections,
    };
    results.compute_headline();
    write_report(&args.out, &results)?;
    staged.commit()?;
    println!("report written to {}", dest.join("report.md").display());
    let h = &results.headline;
    if let (Some(f), Some(s)) = (
        h.fid_ratio_student4_vs_teacher50
            .or(h.fvd_ratio_student4_vs_teacher50),
        h.speedup_student4_vs_teacher50,
    ) {
        let d = &results.metric;
        println!("headline: best 4-step student {d} = {f:.3}× teacher-50's, {s:.1}× faster");
    }
    Ok(())
}

/// `fewstep eval render`: re-draw the report in `dir` from its `results.json`; returns the
/// path of the new `report.md`.
pub fn rerender(dir: &Path) -> Result<PathBuf> {
    use anyhow::Context;
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
