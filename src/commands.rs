//! Subcommands: resolve arguments into settings, call the library crates, print the result.

use anyhow::{Context, Result};
use burn::tensor::Device;

use pipeline::measure::SampleSet;
use teacher::backend::DeviceChoice;
use teacher::checkpoint::Checkpoint;
use teacher::config::TeacherConfig;
use teacher::train::{TrainOptions, train_teacher};

use crate::cli::{
    BenchCommand, ClassifyArgs, Cli, Command, DeviceArg, EvalCommand, FidArgs, LatencyArgs,
    StageArgs, StudentCommand, TeacherCommand, TrainArgs, TrainFeaturesArgs,
};

pub fn run(cli: Cli) -> Result<()> {
    let device = device_of(cli.device)?;
    let quiet = cli.quiet;
    match cli.command {
        Command::Teacher {
            command: TeacherCommand::Train(args),
        } => teacher_train(args, device, quiet),
        Command::Sample(args) => {
            let s = args.settings()?;
            println!("{}", pipeline::samples::sample_to_folder(&s, &device)?);
            Ok(())
        }
        Command::Student { command } => student_cmd(command, device, quiet),
        Command::Bench { command } => bench(command, device, quiet),
        Command::Clips(args) => args.run(),
        Command::Eval { command } => eval_cmd(command, device, quiet),
        Command::Pipeline(args) => {
            pipeline::run::run_pipeline(&args.settings(device, quiet)?)
        }
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

fn teacher_train(args: TrainArgs, device: Device, quiet: bool) -> Result<()> {
    // On --resume without --config, the run's own resolved config is the one to continue.
    let own = args.out.join("config.toml");
    let cfg = match (&args.config, args.resume && own.exists()) {
        (None, true) => TeacherConfig::from_file(&own)?,
        (Some(p), _) => TeacherConfig::from_file(p)?,
        (None, false) => TeacherConfig::default(),
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

fn student_cmd(command: StudentCommand, device: Device, quiet: bool) -> Result<()> {
    let (stage, source, args, to_steps) = match command {
        StudentCommand::Guided { teacher, stage } => (pipeline::chain::Stage::Guided, teacher, stage, 1),
        StudentCommand::Consistency { teacher, stage } => {
            (pipeline::chain::Stage::Consistency, teacher, stage, 1)
        }
        StudentCommand::Progressive {
            from,
            to_steps,
            stage,
        } => (pipeline::chain::Stage::Progressive, from, stage, to_steps),
    };
    let StageArgs {
        config,
        data,
        out,
        resume,
        steps,
    } = args;
    let cfg = match &config {
        Some(p) => student::config::StudentConfig::from_file(p)?,
        None => student::config::StudentConfig::default(),
    };
    let opts = TrainOptions {
        out,
        data,
        resume,
        steps,
        quiet,
        device,
    };
    let done = pipeline::chain::distil(stage, &source, &cfg, &opts, to_steps)?;
    println!("{}", done.lines(stage));
    Ok(())
}

fn bench(command: BenchCommand, device: Device, quiet: bool) -> Result<()> {
    match command {
        BenchCommand::Unet(a) => {
            let cfg = TeacherConfig::from_file(&a.config)?;
            let b = a.batch.unwrap_or(cfg.train.batch_size);
            let t = pipeline::bench::unet::time_unet(&cfg, b, a.reps, &device)
                .with_context(|| format!("benchmarking `{}`", a.config.display()))?;
            let name = a.config.display().to_string();
            println!("{}", pipeline::bench::unet::describe(&cfg, &name, b, &t));
        }
        BenchCommand::Sampling(a) => {
            let r = pipeline::bench::sampling::measure(&a.settings(), &device, quiet)?;
            match a.json {
                true => println!("{}", serde_json::to_string(&r)?),
                false => println!("{}", r.describe()),
            }
        }
        BenchCommand::Suite(a) => {
            println!("{}", pipeline::bench::suite(&a.settings(), &device, quiet)?);
        }
    }
    Ok(())
}

fn eval_cmd(command: EvalCommand, device: Device, quiet: bool) -> Result<()> {
    match command {
        EvalCommand::TrainFeatures(args) => train_features(args, device, quiet),
        EvalCommand::Classify(args) => classify(args, device),
        EvalCommand::Fid(args) => fid(args, device),
        EvalCommand::Report(args) => {
            pipeline::report::report_with(&args.settings(), &device, quiet, Vec::new())
        }
        EvalCommand::Latency(args) => latency(args, device),
        EvalCommand::Render(args) => {
            let path = args.report.join("results.json");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("cannot read `{}`: pass a folder written by `fewstep eval report`", path.display())
            })?;
            let results: eval::report::Results = serde_json::from_str(&text).with_context(|| {
                format!("`{}` is not a fewstep results file: re-run `fewstep eval report`", path.display())
            })?;
            eval::report::write_report(&args.report, &results)?;
            println!("report re-drawn in {}", args.report.join("report.md").display());
            Ok(())
        }
    }
}

fn train_features(args: TrainFeaturesArgs, device: Device, quiet: bool) -> Result<()> {
    let data = match &args.config {
        Some(path) => TeacherConfig::from_file(path)?.data,
        None => teacher::data::DataConfig {
            source: args.dataset.into(),
            ..Default::default()
        },
    };
    let (cfg, meta, _) =
        pipeline::features::train(&data, args.steps, args.data.as_deref(), &args.out, false, quiet, &device)?;
    let net = if meta.shape.is_clip() { "3D-conv clip net" } else { "LeNet" };
    if let Some(o) = meta.order_accuracy {
        println!("frame order (true vs shuffled) test accuracy {:.2}%", 100.0 * o);
    }
    println!(
        "feature network ({net}, {}-d features) trained on {} in {:.0} s: test accuracy {:.2}% on {} examples; saved in {}",
        cfg.feature_dim,
        data.name(),
        meta.train_seconds,
        100.0 * meta.test_accuracy,
        meta.test_examples,
        args.out.display()
    );
    Ok(())
}

fn classify(args: ClassifyArgs, device: Device) -> Result<()> {
    let (correct, n, meta) = pipeline::measure::classify(&args.samples, &args.features, &device)?;
    let acc = correct as f64 / n as f64;
    match args.json {
        true => println!(
            "{}",
            serde_json::json!({"class_accuracy": acc, "n_samples": n, "features": format!("LeNet ({})", meta.dataset), "classifier_test_accuracy": meta.test_accuracy})
        ),
        false => println!(
            "class accuracy {:.2}% ({correct}/{n}) under the LeNet classifier trained on {} (its own test accuracy {:.2}%)",
            100.0 * acc,
            meta.dataset,
            100.0 * meta.test_accuracy
        ),
    }
    Ok(())
}

fn fid(args: FidArgs, device: Device) -> Result<()> {
    let set = match (&args.samples, &args.model, args.steps) {
        (Some(spec), _, _) => SampleSet::Named(spec.clone()),
        (None, Some(run), Some(steps)) => SampleSet::Model {
            run: run.clone(),
            steps,
            n: args.n,
            guidance: args.guidance,
            seed: args.seed,
        },
        (None, Some(_), None) => {
            anyhow::bail!("--model needs --steps (e.g. --steps 50 for a teacher, 4 for a student)")
        }
        (None, None, _) => anyhow::bail!("pass --samples DIR|SPLIT or --model RUN --steps S"),
    };
    let data = args.data.as_deref();
    let (m, metric, name) =
        pipeline::measure::fid(&set, &args.reference, &args.features, data, args.k, &device)?;
    if args.json {
        let report = serde_json::json!({
            "fid": m.fid, "metric": metric, "n_samples": m.n_samples, "n_reference": m.n_reference,
            "features": name, "class_accuracy": m.class_accuracy, "precision": m.precision,
            "recall": m.recall, "k": args.k, "samples": set.describe(), "reference": args.reference,
        });
        println!("{report}");
        return Ok(());
    }
    println!(
        "{metric} ({name}) = {:.4}  [{} samples vs {} reference]",
        m.fid, m.n_samples, m.n_reference
    );
    if let Some(a) = m.class_accuracy {
        println!("class accuracy {:.2}%", 100.0 * a);
    }
    println!("precision {:.4}, recall {:.4} (k = {})", m.precision, m.recall, args.k);
    Ok(())
}

fn latency(args: LatencyArgs, device: Device) -> Result<()> {
    let path = teacher::runs::resolve_model(&args.model, args.steps)?;
    let ck = Checkpoint::load(&path)?;
    let l = pipeline::measure::latency(&ck, args.steps, args.batch, args.guidance, args.reps, &device)?;
    let ips = args.batch as f64 / l.median_s;
    let kind = ck.header.kind();
    if args.json {
        println!(
            "{}",
            serde_json::json!({"model": path.display().to_string(), "kind": kind, "steps": args.steps, "nfe": l.nfe, "batch": args.batch, "median_s": l.median_s, "min_s": l.min_s, "max_s": l.max_s, "images_per_s": ips, "reps": l.reps})
        );
    } else {
        println!(
            "{} {} steps (NFE {}), batch {}: median {:.1} ms (min {:.1}, max {:.1} over {} runs) → {ips:.1} img/s",
            kind.name(),
            args.steps,
            l.nfe,
            args.batch,
            l.median_s * 1e3,
            l.min_s * 1e3,
            l.max_s * 1e3,
            l.reps,
        );
    }
    Ok(())
}
