//! `fewstep eval report`: sample every model at its step counts (same seeds), score each set,
//! and hand the numbers to `eval::report` for the markdown/HTML/JSON report and plots.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::Device;
use sha2::{Digest, Sha256};

use eval::fid::FeatureSpace;
use eval::metrics::{Reference, score};
use eval::report::{GuidancePoint, ModelResult, Results, write_report};
use teacher::checkpoint::{Checkpoint, ModelKind};
use teacher::image_io::{grid, write_png};
use teacher::sample::{SampleSpec, Samples};

use crate::cli::ReportArgs;
use crate::commands::image_source;

/// Samples in each model's grid row(s).
const GRID_SAMPLES: usize = 20;

/// The (path, steps) pairs a run contributes.
fn targets(run: &Path, args: &ReportArgs) -> Result<Vec<(std::path::PathBuf, usize)>> {
    let rounds = student::progressive::available_rounds(run);
    if !rounds.is_empty() && !run.join(teacher::checkpoint::LATEST).exists() {
        return Ok(rounds
            .into_iter()
            .filter(|s| args.student_steps.contains(s))
            .map(|s| (student::progressive::round_dir(run, s), s))
            .collect());
    }
    let ck = Checkpoint::load(run)?;
    let steps = match ck.header.kind {
        ModelKind::Teacher => &args.teacher_steps,
        _ => &args.student_steps,
    };
    Ok(steps.iter().map(|&s| (run.to_path_buf(), s)).collect())
}

fn kind_name(k: ModelKind) -> &'static str {
    match k {
        ModelKind::Teacher => "teacher",
        ModelKind::Guided => "guided",
        ModelKind::Progressive => "progressive",
        ModelKind::Consistency => "consistency",
    }
}

fn sample_timed(
    ck: &Checkpoint,
    args: &ReportArgs,
    steps: usize,
    guidance: f64,
    device: &Device,
) -> Result<(Samples, String, f64)> {
    let spec = SampleSpec::eval(args.n, steps, guidance, args.seed, args.batch);
    let t = Instant::now();
    let (s, plan) = student::sample::sample_any(ck, &spec, device)?;
    Ok((s, plan.sampler, t.elapsed().as_secs_f64()))
}

/// Clips: one strip with the first clip of every sample set (labelled), as a report section.
fn strips_section(
    out: &Path,
    first_clips: &[(String, Vec<f32>)],
    shape: teacher::unet::ImageShape,
) -> Result<Option<eval::report::Section>> {
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
    Ok(Some(eval::report::Section {
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

pub fn report(args: ReportArgs, device: Device, quiet: bool) -> Result<()> {
    report_with(args, device, quiet, Vec::new())
}

/// [`report`] with further sections (the pipeline's serving and training-cost sections).
pub fn report_with(
    args: ReportArgs,
    device: Device,
    quiet: bool,
    mut sections: Vec<eval::report::Section>,
) -> Result<()> {
    let mut todo = Vec::new();
    for run in &args.runs {
        for t in targets(run, &args)? {
            todo.push(t);
        }
    }
    if todo.is_empty() {
        bail!(
            "no model of the given runs has one of the requested step counts (--teacher-steps / --student-steps)"
        );
    }
    // The models' example shape picks the contract of a user's ONNX network (I3D for clips).
    let example = Checkpoint::load(&todo[0].0)?.header.spec.shape;
    let space = FeatureSpace::load_for(&args.features, Some(example), &device)?;
    let channels = space.shape().map(|s| s.channels).unwrap_or(1);
    let (ref_imgs, _, ref_shape) = image_source(&args.reference, args.data.as_deref(), channels)?;
    let reference = Reference::new(&space, &ref_imgs, ref_shape, &device)?;
    std::fs::create_dir_all(&args.out)?;
    let k = 3;
    let real_vs_real = match &args.real {
        Some(spec) => {
            let (imgs, classes, shape) = image_source(spec, args.data.as_deref(), channels)?;
            Some(score(
                &space, &reference, &imgs, &classes, shape, k, &device,
            )?)
        }
        None => None,
    };
    let pb = teacher::progress::bar(todo.len() as u64, quiet, "report");
    let mut models = Vec::new();
    // Clips: the first clip (same seed, same class) of every model, for one side-by-side strip.
    let mut first_clips: Vec<(String, Vec<f32>)> = Vec::new();
    let mut teacher_ck = None;
    for (path, steps) in &todo {
        let ck = Checkpoint::load(path)?;
        let name = kind_name(ck.header.kind).to_string();
        pb.set_message(format!("{name} at {steps} steps"));
        let (s, sampler, seconds) = sample_timed(&ck, &args, *steps, args.guidance, &device)?;
        let shape = ck.header.spec.shape;
        let metrics = score(&space, &reference, &s.images, &s.classes, shape, k, &device)?;
        let len = shape.len();
        let imgs: Vec<&[f32]> = s.images.chunks(len).take(GRID_SAMPLES).collect();
        let cols = ck.header.spec.num_classes.min(GRID_SAMPLES);
        let grid_file = format!("grid-{name}-{steps:03}.png");
        let animation = if shape.is_clip() {
            // Clips: a strip (one row of frames per clip, one clip per class) and the animation.
            let label = format!("{name} · {steps} steps · NFE {}", s.nfe);
            first_clips.push((label, imgs[0].to_vec()));
            let strip = &imgs[..imgs.len().min(cols)];
            teacher::clip_io::write_strip(&args.out.join(&grid_file), strip, shape)?;
            let anim = format!("anim-{name}-{steps:03}.png");
            let anim_path = args.out.join(&anim);
            teacher::clip_io::write_grid_apng(
                &anim_path,
                &imgs,
                shape,
                cols,
                teacher::clip_io::FPS,
            )?;
            Some(anim)
        } else {
            let scale = teacher::image_io::display_scale(shape.height);
            let (g, gs) = grid(&imgs, shape, cols, scale);
            write_png(&args.out.join(&grid_file), &g, gs)?;
            None
        };
        let config_hash = Sha256::digest(ck.header.config.as_bytes())
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        models.push(ModelResult {
            name: name.clone(),
            kind: name.clone(),
            run: path.display().to_string(),
            config_hash,
            steps: *steps,
            nfe: s.nfe,
            guidance: args.guidance,
            sampler,
            seed: args.seed,
            batch: args.batch,
            seconds,
            seconds_per_1000: seconds * 1000.0 / args.n as f64,
            metrics,
            grid: grid_file,
            animation,
        });
        if ck.header.kind == ModelKind::Teacher && teacher_ck.is_none() {
            teacher_ck = Some(ck);
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    if let Some(section) = strips_section(&args.out, &first_clips, example)? {
        sections.push(section);
    }
    let mut sweep = Vec::new();
    if let Some(ck) = &teacher_ck {
        for &w in &args.sweep_guidance {
            let (s, _, _) = sample_timed(ck, &args, args.sweep_steps, w, &device)?;
            let m = score(
                &space,
                &reference,
                &s.images,
                &s.classes,
                ck.header.spec.shape,
                k,
                &device,
            )?;
            sweep.push(GuidancePoint {
                name: "teacher".into(),
                steps: args.sweep_steps,
                guidance: w,
                fid: m.fid,
            });
        }
    }
    let mut results = Results {
        title: args.title.clone(),
        command: command_line(),
        metric: space.metric().into(),
        features: space.name(),
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
    println!("report written to {}", args.out.join("report.md").display());
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
