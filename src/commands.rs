//! Subcommand implementations: resolve arguments into settings, call the library crates.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde::Serialize;

use teacher::backend::DeviceChoice;
use teacher::checkpoint::{Checkpoint, ModelKind};
use teacher::config::TeacherConfig;
use teacher::edm::sampler::Sampler;
use teacher::image_io::{grid, write_png};
use teacher::sample::{ClassChoice, SampleSpec};
use teacher::train::{TrainOptions, train_teacher};

use crate::cli::{
    ClassifyArgs, Cli, Command, DeviceArg, EvalCommand, FidArgs, LatencyArgs, SampleArgs,
    SamplerArg, StageArgs, StudentCommand, TeacherCommand, TrainArgs, TrainFeaturesArgs,
};

pub fn run(cli: Cli) -> Result<()> {
    let device = device_of(cli.device)?;
    match cli.command {
        Command::Teacher {
            command: TeacherCommand::Train(args),
        } => teacher_train(args, device, cli.quiet),
        Command::Sample(args) => sample(args, device),
        Command::Student { command } => student_cmd(command, device, cli.quiet),
        Command::Bench { command } => crate::bench::run(command, device, cli.quiet),
        Command::Clips(args) => clips(args),
        Command::Eval {
            command: EvalCommand::TrainFeatures(args),
        } => train_features(args, device, cli.quiet),
        Command::Eval {
            command: EvalCommand::Classify(args),
        } => classify(args, device),
        Command::Eval {
            command: EvalCommand::Fid(args),
        } => fid(args, device),
        Command::Eval {
            command: EvalCommand::Report(args),
        } => crate::report::report(args, device, cli.quiet),
        Command::Eval {
            command: EvalCommand::Latency(args),
        } => latency(args, device),
        Command::Eval {
            command: EvalCommand::Render(args),
        } => render(args),
        Command::Pipeline(args) => crate::pipeline::pipeline(args, device, cli.quiet),
        Command::Export { command } => crate::export_cmd::run(command, device),
    }
}

fn device_of(d: DeviceArg) -> Result<Device> {
    let choice = match d {
        DeviceArg::Cpu => DeviceChoice::Cpu,
        DeviceArg::Tch => DeviceChoice::Tch,
        DeviceArg::TchCuda => DeviceChoice::TchCuda,
        DeviceArg::Wgpu => DeviceChoice::Wgpu,
        DeviceArg::Cuda => DeviceChoice::Cuda,
    };
    choice.device().map_err(anyhow::Error::msg)
}

fn load_config(path: Option<&Path>) -> Result<TeacherConfig> {
    Ok(match path {
        Some(p) => TeacherConfig::from_file(p)?,
        None => TeacherConfig::default(),
    })
}

fn teacher_train(args: TrainArgs, device: Device, quiet: bool) -> Result<()> {
    // On --resume without --config, the run's own resolved config is the one to continue.
    let own = args.out.join("config.toml");
    let cfg = match (&args.config, args.resume && own.exists()) {
        (None, true) => TeacherConfig::from_file(&own)?,
        (c, _) => load_config(c.as_deref())?,
    };
    let opts = TrainOptions {
        out: args.out.clone(),
        data: args.data,
        resume: args.resume,
        steps: args.steps,
        quiet,
        device,
    };
    let s = train_teacher(&cfg, &opts)?;
    println!(
        "trained teacher to step {} (from {}): final loss {:.4}, {:.1} img/s, {:.1} s; checkpoint {}",
        s.steps,
        s.resumed_from,
        s.final_loss,
        s.images_per_sec,
        s.wall_seconds,
        s.checkpoint.display()
    );
    Ok(())
}

#[derive(Serialize)]
struct SamplesMeta<'a> {
    model: String,
    kind: ModelKind,
    n: usize,
    steps: usize,
    sampler: Sampler,
    guidance: f64,
    seed: u64,
    nfe: usize,
    seconds: f64,
    classes: &'a [usize],
}

fn sample(args: SampleArgs, device: Device) -> Result<()> {
    let path = student::sample::resolve_model(&args.model, args.steps)?;
    let ck = Checkpoint::load(&path)?;
    let num_classes = ck.header.spec.num_classes;
    let classes = match args.class.as_str() {
        "all" => ClassChoice::All,
        k => match k.parse::<usize>() {
            Ok(k) if k < num_classes => ClassChoice::One(k),
            _ => bail!("`--class {k}`: give a class index in 0..{num_classes} or `all`"),
        },
    };
    if args.steps == 0 {
        bail!("`--steps 0`: sampling needs at least 1 step");
    }
    if !args.guidance.is_finite() {
        bail!(
            "`--guidance {}`: give a finite guidance weight (1 = conditional, 0 = unconditional)",
            args.guidance
        );
    }
    if args.n == 0 {
        bail!("`--n 0`: ask for at least one image");
    }
    let spec = SampleSpec {
        n: args.n,
        classes,
        steps: args.steps,
        sampler: match args.sampler {
            SamplerArg::Euler | SamplerArg::Ddim => Sampler::Euler,
            SamplerArg::Heun => Sampler::Heun,
        },
        guidance: args.guidance,
        seed: args.seed,
        batch_size: args.batch,
    };
    let t = Instant::now();
    let (out, plan) = student::sample::sample_any(&ck, &spec, &device)?;
    let seconds = t.elapsed().as_secs_f64();
    let shape = ck.header.spec.shape;
    let len = shape.len();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating `{}`", args.out.display()))?;
    let images: Vec<&[f32]> = out.images.chunks(len).collect();
    let cols = if classes == ClassChoice::All {
        num_classes.min(args.n)
    } else {
        (args.n as f64).sqrt().ceil() as usize
    };
    if shape.is_clip() {
        // Clips: each one an animated PNG, an animated grid, and a strip of the first ten.
        use teacher::clip_io::{FPS, apng_bytes, write_grid_apng, write_strip};
        for (i, (clip, c)) in images.iter().zip(&out.classes).enumerate() {
            // Native resolution, like still samples, so `fewstep eval fid --samples` reads them.
            let p = args.out.join(format!("{i:05}_c{c}.png"));
            teacher::checkpoint::write_atomic(&p, &apng_bytes(clip, shape, FPS, 1)?)?;
        }
        write_grid_apng(&args.out.join("grid.png"), &images, shape, cols, FPS)?;
        let first = &images[..images.len().min(10)];
        write_strip(&args.out.join("strip.png"), first, shape)?;
    } else {
        for (i, (img, c)) in images.iter().zip(&out.classes).enumerate() {
            write_png(&args.out.join(format!("{i:05}_c{c}.png")), img, shape)?;
        }
        let scale = teacher::image_io::display_scale(shape.height);
        let (g, gshape) = grid(&images, shape, cols, scale);
        write_png(&args.out.join("grid.png"), &g, gshape)?;
    }
    let meta = SamplesMeta {
        model: path.display().to_string(),
        kind: ck.header.kind,
        n: args.n,
        steps: args.steps,
        sampler: spec.sampler,
        guidance: args.guidance,
        seed: args.seed,
        nfe: out.nfe,
        seconds,
        classes: &out.classes,
    };
    teacher::checkpoint::write_atomic(
        &args.out.join("samples.json"),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )?;
    let what = if shape.is_clip() {
        "clips (animated PNG), grid.png (animated) and strip.png"
    } else {
        "images and grid.png"
    };
    println!(
        "wrote {} {what} to {} — {:?} model, NFE per image {} ({} steps, {}, w = {}), {:.2} s",
        args.n,
        args.out.display(),
        plan.kind,
        out.nfe,
        args.steps,
        plan.sampler,
        args.guidance,
        seconds
    );
    Ok(())
}

/// `fewstep clips`: moving-digit clips written to look at (animated PNGs and a strip).
fn clips(a: crate::cli::ClipsArgs) -> Result<()> {
    use teacher::data::moving::{MovingDigitsConfig, moving_digits};
    use teacher::data::{DataConfig, DataSource, Split};
    let source = DataSource::from(a.dataset);
    let src = DataConfig {
        source,
        ..Default::default()
    }
    .load(a.data.as_deref(), Split::Train)?;
    let cfg = MovingDigitsConfig {
        frames: a.frames,
        size: a.size,
        digits: a.digits,
        ..Default::default()
    };
    let c = moving_digits(&src, &cfg, a.n, a.seed)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create `{}`", a.out.display()))?;
    for i in 0..c.len() {
        let p = a.out.join(format!("clip-{i:03}.png"));
        teacher::clip_io::write_apng(&p, c.image(i), c.shape, teacher::clip_io::FPS)?;
    }
    let all: Vec<&[f32]> = (0..c.len()).map(|i| c.image(i)).collect();
    teacher::clip_io::write_strip(&a.out.join("strip.png"), &all, c.shape)?;
    println!(
        "wrote {} clips of {} frames {}×{} (labels {:?}) and strip.png to {}",
        c.len(),
        c.shape.frames,
        c.shape.height,
        c.shape.width,
        c.labels,
        a.out.display()
    );
    Ok(())
}

fn train_features(args: TrainFeaturesArgs, device: Device, quiet: bool) -> Result<()> {
    use teacher::data::{DataConfig, DataSource, Split};
    let data = match &args.config {
        Some(path) => TeacherConfig::from_file(path)?.data,
        None => DataConfig {
            source: DataSource::from(args.dataset),
            ..Default::default()
        },
    };
    let name = data.name();
    let train = data.load(args.data.as_deref(), Split::Train)?;
    let test = data.load(args.data.as_deref(), Split::Test)?;
    let mut cfg = eval::classifier::ClassifierConfig::for_shape(train.shape);
    if let Some(s) = args.steps {
        cfg.steps = s;
    }
    let meta =
        eval::classifier::train_classifier(&cfg, &name, &train, &test, &args.out, quiet, &device)?;
    let net = if train.shape.is_clip() {
        "3D-conv clip net"
    } else {
        "LeNet"
    };
    if let Some(o) = meta.order_accuracy {
        println!(
            "frame order (true vs shuffled) test accuracy {:.2}%",
            100.0 * o
        );
    }
    println!(
        "feature network ({net}, {}-d features) trained on {name} in {:.0} s: test accuracy {:.2}% on {} examples; saved in {}",
        cfg.feature_dim,
        meta.train_seconds,
        100.0 * meta.test_accuracy,
        meta.test_examples,
        args.out.display()
    );
    Ok(())
}

fn classify(args: ClassifyArgs, device: Device) -> Result<()> {
    let (model, meta) = eval::classifier::load_classifier(&args.features, &device)?;
    let set = eval::samples::load_samples(&args.samples, meta.shape.channels)?;
    if set.shape != meta.shape {
        bail!(
            "samples in `{}` are {}×{} but the feature network `{}` expects {}×{}: use features trained on the same dataset",
            args.samples.display(),
            set.shape.width,
            set.shape.height,
            args.features.display(),
            meta.shape.width,
            meta.shape.height
        );
    }
    let pred = eval::classifier::predict(&model, &set.images, set.shape, &device);
    let correct = pred
        .iter()
        .zip(&set.classes)
        .filter(|(p, c)| p == c)
        .count();
    let acc = correct as f64 / set.classes.len() as f64;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"class_accuracy": acc, "n_samples": set.classes.len(), "features": format!("LeNet ({})", meta.dataset), "classifier_test_accuracy": meta.test_accuracy})
        );
    } else {
        println!(
            "class accuracy {:.2}% ({correct}/{}) under the LeNet classifier trained on {} (its own test accuracy {:.2}%)",
            100.0 * acc,
            set.classes.len(),
            meta.dataset,
            100.0 * meta.test_accuracy
        );
    }
    Ok(())
}

fn stage_options(
    stage: &StageArgs,
    device: Device,
    quiet: bool,
) -> (
    student::guided::StageOptions,
    Result<student::config::StudentConfig>,
) {
    let cfg = match &stage.config {
        Some(p) => student::config::StudentConfig::from_file(p).map_err(anyhow::Error::from),
        None => Ok(student::config::StudentConfig::default()),
    };
    let opts = student::guided::StageOptions {
        out: stage.out.clone(),
        data: stage.data.clone(),
        resume: stage.resume,
        steps: stage.steps,
        quiet,
        device,
    };
    (opts, cfg)
}

fn student_cmd(command: StudentCommand, device: Device, quiet: bool) -> Result<()> {
    match command {
        StudentCommand::Guided { teacher, stage } => {
            let (opts, cfg) = stage_options(&stage, device, quiet);
            let s = student::guided::run_guided(&teacher, &cfg?, &opts)?;
            println!(
                "guided student: step {} (from {}), final loss {:.4}, {:.1} s; {}",
                s.steps,
                s.resumed_from,
                s.final_loss,
                s.wall_seconds,
                s.checkpoint.display()
            );
        }
        StudentCommand::Progressive {
            from,
            to_steps,
            stage,
        } => {
            let (opts, cfg) = stage_options(&stage, device, quiet);
            for r in student::progressive::run_progressive(&from, to_steps, &cfg?, &opts)? {
                if r.skipped {
                    println!(
                        "round {:>3} steps: already done ({})",
                        r.steps,
                        r.dir.display()
                    );
                } else {
                    println!(
                        "round {:>3} steps: final loss {:.4}, {:.1} s ({})",
                        r.steps,
                        r.final_loss,
                        r.wall_seconds,
                        r.dir.display()
                    );
                }
            }
        }
        StudentCommand::Consistency { teacher, stage } => {
            let (opts, cfg) = stage_options(&stage, device, quiet);
            let s = student::consistency::run_consistency(&teacher, &cfg?, &opts)?;
            println!(
                "consistency student: step {} (from {}), final loss {:.5}, {:.1} s; {}",
                s.steps,
                s.resumed_from,
                s.final_loss,
                s.wall_seconds,
                s.checkpoint.display()
            );
        }
    }
    Ok(())
}

/// Images from a sample folder or a dataset split (`mnist-test`, `digits-train:500`, …), with
/// the classes they belong to (asked-for classes for samples, labels for data).
pub fn image_source(
    spec: &str,
    data: Option<&Path>,
    channels: usize,
) -> Result<(Vec<f32>, Vec<usize>, teacher::unet::ImageShape)> {
    use teacher::data::{DataConfig, DataSource, Split};
    let (name, limit) = match spec.rsplit_once(':') {
        Some((n, l)) if l.chars().all(|c| c.is_ascii_digit()) => (n, Some(l.parse::<usize>()?)),
        _ => (spec, None),
    };
    let split = |source, split| -> Result<_> {
        let d = DataConfig {
            source,
            ..Default::default()
        }
        .load(data, split)?;
        let d = limit.map(|n| d.take(n)).unwrap_or(d);
        Ok((
            d.images.clone(),
            d.labels.iter().map(|&l| l as usize).collect(),
            d.shape,
        ))
    };
    if let Some(rest) = name.strip_prefix("run:") {
        // `run:DIR:test` — the split of the data the model in DIR was trained on (its config's
        // `[data]`, clips included).
        let (dir, which) = rest.rsplit_once(':').unwrap_or((rest, "test"));
        let which = match which {
            "train" => Split::Train,
            "test" => Split::Test,
            other => bail!("`{spec}`: the split after the run is `train` or `test`, not `{other}`"),
        };
        let ck = teacher::checkpoint::Checkpoint::load(&student::sample::resolve_model(
            Path::new(dir),
            4,
        )?)?;
        let cfg = student::source::Source::teacher_config_of(&ck)?;
        let recorded = ck.header.extra.get("data_path").and_then(|v| v.as_str());
        let d = cfg.data.load(data.or(recorded.map(Path::new)), which)?;
        let d = limit.map(|n| d.take(n)).unwrap_or(d);
        let classes = d.labels.iter().map(|&l| l as usize).collect();
        return Ok((d.images, classes, d.shape));
    }
    match name {
        "digits-train" => split(DataSource::Digits, Split::Train),
        "digits-test" => split(DataSource::Digits, Split::Test),
        "mnist-train" => split(DataSource::Mnist, Split::Train),
        "mnist-test" => split(DataSource::Mnist, Split::Test),
        dir => {
            let path = Path::new(dir);
            if !path.is_dir() {
                bail!(
                    "`{spec}`: not a folder of samples nor one of digits-train, digits-test, mnist-train, mnist-test, run:DIR:train, run:DIR:test (optionally `:N`)"
                );
            }
            let mut set = eval::samples::load_samples(path, channels)?;
            if let Some(n) = limit {
                let len = set.shape.len();
                set.images.truncate(n * len);
                set.classes.truncate(n);
            }
            Ok((set.images, set.classes, set.shape))
        }
    }
}

fn fid(args: FidArgs, device: Device) -> Result<()> {
    let mut space = eval::fid::FeatureSpace::load(&args.features, &device)?;
    let channels = space.shape().map(|s| s.channels).unwrap_or(1);
    let (ref_imgs, _, ref_shape) = image_source(&args.reference, args.data.as_deref(), channels)?;
    if ref_shape.is_clip() && matches!(space, eval::fid::FeatureSpace::Onnx(_)) {
        // A user's ONNX network on clips takes the I3D contract.
        space = eval::fid::FeatureSpace::load_for(&args.features, Some(ref_shape), &device)?;
    }
    let (imgs, classes, shape) = match (&args.samples, &args.model) {
        (Some(spec), _) => image_source(spec, args.data.as_deref(), channels)?,
        (None, Some(run)) => {
            let Some(steps) = args.steps else {
                bail!("--model needs --steps (e.g. --steps 50 for a teacher, 4 for a student)");
            };
            let ck = Checkpoint::load(&student::sample::resolve_model(run, steps)?)?;
            let spec = SampleSpec::eval(args.n, steps, args.guidance, args.seed, 250);
            let (s, _) = student::sample::sample_any(&ck, &spec, &device)?;
            (s.images, s.classes, ck.header.spec.shape)
        }
        (None, None) => bail!("pass --samples DIR|SPLIT or --model RUN --steps S"),
    };
    if shape != ref_shape || space.shape().is_some_and(|s| s != shape) {
        bail!(
            "samples ({}×{}, {} frame(s)), reference ({}×{}, {} frame(s)) and features must share one example shape",
            shape.width,
            shape.height,
            shape.frames,
            ref_shape.width,
            ref_shape.height,
            ref_shape.frames
        );
    }
    let reference = eval::metrics::Reference::new(&space, &ref_imgs, ref_shape, &device)?;
    let m = eval::metrics::score(&space, &reference, &imgs, &classes, shape, args.k, &device)?;
    let (fid, n, accuracy) = (m.fid, m.n_samples, m.class_accuracy);
    let (precision, recall) = (m.precision, m.recall);
    let report = serde_json::json!({
        "fid": fid,
        "metric": space.metric(),
        "n_samples": n,
        "n_reference": m.n_reference,
        "features": space.name(),
        "class_accuracy": accuracy,
        "precision": precision,
        "recall": recall,
        "k": args.k,
        "samples": args.samples.clone().unwrap_or_else(|| format!(
            "{} at {} steps, w = {}, seed {}",
            args.model.as_ref().map(|m| m.display().to_string()).unwrap_or_default(),
            args.steps.unwrap_or(0),
            args.guidance,
            args.seed
        )),
        "reference": args.reference,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{} ({}) = {fid:.4}  [{n} samples vs {} reference]",
            space.metric(),
            space.name(),
            m.n_reference
        );
        if let Some(a) = accuracy {
            println!("class accuracy {:.2}%", 100.0 * a);
        }
        println!(
            "precision {precision:.4}, recall {recall:.4} (k = {})",
            args.k
        );
    }
    Ok(())
}

fn render(args: crate::cli::RenderArgs) -> Result<()> {
    let path = args.report.join("results.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read `{}`: pass a folder written by `fewstep eval report`",
            path.display()
        )
    })?;
    let results: eval::report::Results = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is not a fewstep results file: re-run `fewstep eval report`",
            path.display()
        )
    })?;
    eval::report::write_report(&args.report, &results)?;
    println!(
        "report re-drawn in {}",
        args.report.join("report.md").display()
    );
    Ok(())
}

fn latency(args: LatencyArgs, device: Device) -> Result<()> {
    let path = student::sample::resolve_model(&args.model, args.steps)?;
    let ck = Checkpoint::load(&path)?;
    let spec = SampleSpec::eval(args.batch, args.steps, args.guidance, 0, args.batch);
    let mut times = Vec::new();
    let mut nfe = 0;
    for rep in 0..=args.reps.max(1) {
        let t = Instant::now();
        let (out, _) = student::sample::sample_any(&ck, &spec, &device)?;
        nfe = out.nfe;
        if rep > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let (lo, med, hi) = (times[0], times[times.len() / 2], times[times.len() - 1]);
    let ips = args.batch as f64 / med;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"model": path.display().to_string(), "kind": ck.header.kind, "steps": args.steps, "nfe": nfe, "batch": args.batch, "median_s": med, "min_s": lo, "max_s": hi, "images_per_s": ips, "reps": times.len()})
        );
    } else {
        println!(
            "{:?} {} steps (NFE {nfe}), batch {}: median {:.1} ms (min {:.1}, max {:.1} over {} runs) → {:.1} img/s",
            ck.header.kind,
            args.steps,
            args.batch,
            med * 1e3,
            lo * 1e3,
            hi * 1e3,
            times.len(),
            ips
        );
    }
    Ok(())
}
