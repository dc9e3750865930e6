//! Subcommands: resolve arguments into settings, call the library crates, print the result.

use anyhow::{Context, Result};
use burn::tensor::Device;

use pipeline::measure::SampleSet;
use teacher::backend::DeviceChoice;
use teacher::checkpoint::Checkpoint;
use teacher::config::TeacherConfig;
use teacher::dist::World;
use teacher::train::{TrainOptions, train_teacher};

use crate::cli::{
    BenchCommand, ClassifyArgs, Cli, Command, DeviceArg, EvalCommand, FidArgs, LatencyArgs,
    PrecisionArg, StageArgs, StudentCommand, TeacherCommand, TrainArgs, TrainFeaturesArgs,
};

pub fn run(cli: Cli, world: World) -> Result<()> {
    let device = device_of(cli.device, cli.dtype)?;
    let quiet = cli.quiet;
    if world.size() > 1 && !trains(&cli.command) {
        anyhow::bail!(
            "only training runs data parallel (`teacher train`, `student guided|progressive|consistency`, \
             `eval train-features`); run this command as one process, without mpirun/srun"
        );
    }
    match cli.command {
        Command::Teacher {
            command: TeacherCommand::Train(args),
        } => teacher_train(args, device, quiet, world),
        Command::Sample(args) => {
            let s = args.settings()?;
            println!("{}", pipeline::samples::sample_to_folder(&s, &device)?);
            Ok(())
        }
        Command::Student { command } => student_cmd(command, device, quiet, world),
        Command::Bench { command } => bench(command, device, quiet),
        Command::Clips(args) => args.run(),
        Command::Eval { command } => eval_cmd(command, device, quiet, world),
        Command::Pipeline(args) => pipeline::run::run_pipeline(&args.settings(device, quiet)?),
        Command::Export { command } => crate::export_cmd::run(command, device),
        Command::Latent { command } => crate::latent_cmd::run(command, device),
    }
}

/// Whether `command` is a training stage (the commands that run over several ranks).
fn trains(command: &Command) -> bool {
    matches!(
        command,
        Command::Teacher { .. }
            | Command::Student { .. }
            | Command::Eval {
                command: EvalCommand::TrainFeatures(_)
            }
    )
}

fn device_of(d: DeviceArg, precision: PrecisionArg) -> Result<Device> {
    let choice = match d {
        DeviceArg::Cpu => DeviceChoice::Cpu,
        DeviceArg::Tch => DeviceChoice::Tch,
        DeviceArg::TchCuda => DeviceChoice::TchCuda,
        DeviceArg::Wgpu => DeviceChoice::Wgpu,
        DeviceArg::Cuda => DeviceChoice::Cuda,
    };
    let mut device = choice.device().map_err(anyhow::Error::msg)?;
    if precision == PrecisionArg::Bf16 {
        teacher::backend::use_bf16(&mut device, choice).map_err(anyhow::Error::msg)?;
    }
    Ok(device)
}

fn teacher_train(args: TrainArgs, device: Device, quiet: bool, world: World) -> Result<()> {
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
        allow_config_change: args.allow_config_change,
        steps: args.steps,
        quiet,
        device,
        world,
    };
    let done = train_teacher(&cfg, &opts)?;
    match (world.is_root(), args.json) {
        (false, _) => {}
        (true, true) => println!("{}", serde_json::to_string(&done)?),
        (true, false) => println!("{}", done.describe("teacher")),
    }
    Ok(())
}

fn student_cmd(command: StudentCommand, device: Device, quiet: bool, world: World) -> Result<()> {
    let (stage, source, args, to_steps) = match command {
        StudentCommand::Guided { teacher, stage } => {
            (pipeline::chain::Stage::Guided, teacher, stage, 1)
        }
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
        allow_config_change,
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
        allow_config_change,
        steps,
        quiet,
        device,
        world,
    };
    let done = pipeline::chain::distil(stage, &source, &cfg, &opts, to_steps)?;
    if world.is_root() {
        println!("{}", done.lines(stage));
    }
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
            if a.json {
                let mut v = serde_json::to_value(&t)?;
                v["config"] = name.into();
                v["device"] = format!("{device:?}").into();
                v["float_dtype"] = format!("{:?}", device.settings().float_dtype).into();
                println!("{v}");
            } else {
                println!("{}", pipeline::bench::unet::describe(&cfg, &name, b, &t));
            }
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
        BenchCommand::Scaling(a) => {
            let s = a.settings()?;
            pipeline::bench::scaling::measure(&s)?;
            print!("{}", std::fs::read_to_string(s.out.join("scaling.md"))?);
        }
    }
    Ok(())
}

fn eval_cmd(command: EvalCommand, device: Device, quiet: bool, world: World) -> Result<()> {
    match command {
        EvalCommand::TrainFeatures(args) => train_features(args, device, quiet, world),
        EvalCommand::Classify(args) => classify(args, device),
        EvalCommand::Fid(args) => fid(args, device),
        EvalCommand::Report(args) => {
            pipeline::report::report_with(&args.settings()?, &device, quiet, Vec::new())
        }
        EvalCommand::Latency(args) => latency(args, device),
        EvalCommand::Render(args) => {
            let md = pipeline::report::rerender(&args.report)?;
            println!("report re-drawn in {}", md.display());
            Ok(())
        }
    }
}

fn train_features(
    args: TrainFeaturesArgs,
    device: Device,
    quiet: bool,
    world: World,
) -> Result<()> {
    let data = match &args.config {
        Some(path) => TeacherConfig::from_file(path)?.data,
        None => teacher::data::DataConfig {
            source: args.dataset.into(),
            ..Default::default()
        },
    };
    let (cfg, meta, _) = pipeline::features::train(
        &data,
        args.steps,
        args.data.as_deref(),
        &args.out,
        false,
        quiet,
        &world,
        &device,
    )?;
    if world.is_root() {
        let said = pipeline::features::describe(&cfg, &meta, &data, &args.out);
        println!("{said}");
    }
    Ok(())
}

fn classify(args: ClassifyArgs, device: Device) -> Result<()> {
    let c = pipeline::measure::classify(&args.samples, &args.features, &device)?;
    match args.json {
        true => println!("{}", c.json()),
        false => println!("{}", c.text()),
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
    let intervals = eval::metrics::IntervalConfig {
        bootstrap: args.bootstrap,
        ..Default::default()
    };
    let (r, feats) = (&args.reference, &args.features);
    let f = pipeline::measure::fid(&set, r, feats, data, args.k, &intervals, &device)?;
    match args.json {
        true => println!("{}", f.json()),
        false => println!("{}", f.text()),
    }
    Ok(())
}

fn latency(args: LatencyArgs, device: Device) -> Result<()> {
    let path = teacher::runs::resolve_model(&args.model, args.steps)?;
    let ck = Checkpoint::load(&path)?;
    let (steps, batch, w) = (args.steps, args.batch, args.guidance);
    let spec = teacher::sample::SampleSpec::eval(batch, steps, w, 0, batch);
    let l = pipeline::measure::latency(&ck, &spec, args.reps, &device)?;
    match args.json {
        true => println!("{}", l.json(&path)),
        false => println!("{}", l.text()),
    }
    Ok(())
}
