//! `fewstep export …`: ONNX export, parity check against burn, and tract-vs-burn latency.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::{Args, Subcommand};

use export::bench::bench;
use export::check::{CheckOptions, check};
use export::report::OpReport;
use export::source::Source;
use export::{BatchMode, ExportOptions, Opset, Precision, export_model, write_model};

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Export a model (teacher or student) to ONNX: inputs x, sigma, class (and w for
    /// students), output the denoised image, preconditioning included.
    Onnx(OnnxArgs),
    /// Run an exported file through tract and compare it with burn on seeded random inputs;
    /// prints the op/opset report and exits non-zero above the tolerance.
    Check(CheckArgs),
    /// Median milliseconds per forward pass, tract vs burn, per batch size.
    Bench(BenchArgs),
    /// Build a serialized TensorRT engine (plus `OUT.json` sidecar) from an exported ONNX file,
    /// one optimisation profile over the batch axis; TensorRT is opened at run time.
    Engine(EngineArgs),
    /// Write a Triton model repository (`NAME/config.pbtxt`, `NAME/1/model.onnx|model.plan`).
    Triton(TritonArgs),
}

#[derive(Args, Debug)]
pub struct EngineArgs {
    /// The exported ONNX file.
    pub onnx: PathBuf,
    /// Output engine (`model.plan`); the sidecar goes to `model.plan.json`.
    #[arg(long)]
    pub out: PathBuf,
    /// Batch profile MIN:OPT:MAX (or N for a fixed batch).
    #[arg(long, default_value = "1:8:64")]
    pub batch: export::engine::BatchProfile,
    /// Timing cache file (datacenter TensorRT; TensorRT-RTX has none and ignores it).
    #[arg(long)]
    pub timing_cache: Option<PathBuf>,
    /// `rtx` (TensorRT-RTX 1.x, builder needs no GPU) or `datacenter` (TensorRT 11).
    #[arg(long, default_value = "rtx")]
    pub flavor: export::engine::Flavor,
}

#[derive(Args, Debug)]
pub struct TritonArgs {
    /// The exported ONNX file (its inputs/outputs define the config).
    #[arg(long)]
    pub onnx: PathBuf,
    /// A datacenter TensorRT engine built from that file (e.g. by `trtexec` on the serving host):
    /// serve it under `tensorrt_plan` instead of the ONNX. TensorRT-RTX engines are refused.
    #[arg(long)]
    pub engine: Option<PathBuf>,
    /// What built `--engine` when it has no fewstep sidecar: `datacenter` (trtexec) or `rtx`.
    #[arg(long, requires = "engine")]
    pub engine_flavor: Option<export::engine::Flavor>,
    /// How Triton's ONNX Runtime backend runs the ONNX: `tensorrt` (builds a datacenter engine
    /// on the serving GPU and caches it), `cuda` or `cpu`.
    #[arg(long, default_value = "tensorrt")]
    pub accelerator: export::triton_accel::AcceleratorKind,
    /// TensorRT accelerator precision: `fp32` (what the parity check measured) or `fp16`.
    #[arg(long, default_value = "fp32")]
    pub trt_precision: export::triton_accel::TrtPrecision,
    /// TensorRT accelerator builder workspace, MiB.
    #[arg(long, default_value_t = export::triton_accel::DEFAULT_WORKSPACE_MIB)]
    pub trt_workspace_mib: u64,
    /// Engine cache folder on the serving host (default /tmp/fewstep_trt_cache/NAME).
    #[arg(long)]
    pub trt_cache: Option<String>,
    /// Model repository folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Model name (default: the ONNX file's stem).
    #[arg(long)]
    pub name: Option<String>,
    /// max_batch_size (default: the engine profile's max, else 64).
    #[arg(long)]
    pub max_batch: Option<usize>,
}

#[derive(Args, Debug)]
pub struct OnnxArgs {
    /// Run folder or checkpoint file (a progressive run folder picks its round with --steps).
    #[arg(long)]
    pub model: PathBuf,
    /// Output ONNX file.
    #[arg(long)]
    pub out: PathBuf,
    /// Default-domain opset (17–21).
    #[arg(long, default_value_t = Opset::default())]
    pub opset: Opset,
    /// `dynamic` (symbolic batch axis N) or a fixed batch size.
    #[arg(long, default_value_t = BatchMode::Dynamic)]
    pub batch: BatchMode,
    /// Sampling steps of the progressive round to export.
    #[arg(long)]
    pub steps: Option<usize>,
    /// `fp32`, or `fp16`: float16 weights and image path, float32 conditioning and I/O.
    #[arg(long, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// Export the whole S-step sampler as one graph (noise, class, w and — consistency — the
    /// per-step re-noising noise in; the image out): one engine call per batch.
    #[arg(long)]
    pub unroll_steps: Option<usize>,
    /// Guidance weight of an unrolled teacher (a constant of its graph; students take w as an
    /// input, this is only checked against their trained range).
    #[arg(long, default_value_t = 2.0)]
    pub guidance: f64,
    /// An unrolled model of latents: the decoder run to end the graph with (e.g. one distilled
    /// to 1–2 steps); default: its chain's (`[data.latents]`).
    #[arg(long, requires = "unroll_steps")]
    pub decoder: Option<PathBuf>,
    /// An unrolled model of latents: the decoder's steps (default: its chain's `decoder_steps`).
    #[arg(long, requires = "unroll_steps")]
    pub decoder_steps: Option<usize>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The ONNX file to check.
    pub onnx: PathBuf,
    /// The run folder or checkpoint the file was exported from.
    #[arg(long)]
    pub model: PathBuf,
    /// Sampling steps of the progressive round the file was exported from.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Examples per run.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Largest max-abs error that passes (default: 1e-4 for fp32 files, 1e-2 for fp16).
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Write the inputs and burn's output as .npy files named after the graph's values.
    #[arg(long)]
    pub save_io: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The ONNX file to time.
    pub onnx: PathBuf,
    /// The run folder or checkpoint the file was exported from.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub steps: Option<usize>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub batch: Vec<usize>,
    /// Timed repetitions per engine and batch size (after one warm-up).
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(command: ExportCommand, device: Device) -> Result<()> {
    match command {
        ExportCommand::Onnx(a) => onnx(a, device),
        ExportCommand::Check(a) => check_cmd(a, device),
        ExportCommand::Bench(a) => bench_cmd(a, device),
        ExportCommand::Engine(a) => engine_cmd(a),
        ExportCommand::Triton(a) => triton_cmd(a),
    }
}

fn onnx(a: OnnxArgs, device: Device) -> Result<()> {
    let source = match a.unroll_steps {
        None => Source::load(&a.model, a.steps, &device)?,
        Some(s) => {
            if a.steps.is_some_and(|given| given != s) {
                bail!("`--steps` and `--unroll-steps` disagree: give `--unroll-steps {s}` alone");
            }
            let decoder = (a.decoder.is_some() || a.decoder_steps.is_some()).then(|| {
                teacher::latent::source::DecoderChoice {
                    run: a.decoder.clone(),
                    steps: a.decoder_steps,
                }
            });
            Source::load_unrolled(&a.model, s, a.guidance, decoder.as_ref(), &device)?
        }
    };
    let opts = ExportOptions {
        opset: a.opset,
        batch: a.batch,
        precision: a.precision,
    };
    let model = export_model(&source, &opts)
        .with_context(|| format!("exporting `{}` to ONNX", source.path.display()))?;
    let bytes = write_model(&model, &a.out)?;
    if let Some(u) = &source.unroll {
        println!(
            "unrolled: {} steps of {} (NFE {}), guidance {}; inputs {}",
            u.steps,
            u.describe(),
            u.nfe(),
            u.guidance,
            source.input_names()
        );
    }
    println!(
        "exported {:?} model `{}` → `{}` ({:.1} KiB, opset {}, batch {}, {})",
        source.kind(),
        source.path.display(),
        a.out.display(),
        bytes as f64 / 1024.0,
        opts.opset,
        opts.batch,
        opts.precision
    );
    println!("{}", OpReport::of(&model));
    Ok(())
}

fn check_cmd(a: CheckArgs, device: Device) -> Result<()> {
    let source = Source::for_file(&a.onnx, &a.model, a.steps, &device)?;
    let opts = CheckOptions {
        batch: a.batch,
        seed: a.seed,
        tolerance: a.tolerance,
        save_io: a.save_io,
    };
    let r = check(&a.onnx, &source, &device, &opts)?;
    println!("{}", r.ops);
    for p in &r.saved {
        println!("wrote {}", p.display());
    }
    if let Some(u) = &source.unroll {
        let decoder = u
            .decoding
            .as_ref()
            .map(|d| {
                format!(
                    " --decoder {} --decoder-steps {}",
                    d.run().display(),
                    d.steps()
                )
            })
            .unwrap_or_default();
        println!(
            "unrolled {}-step sampler: compared with `fewstep sample --model {} --steps {} --guidance {}{decoder} --n {} --seed {}` (the same noise, classes 0, 1, …)",
            u.steps,
            a.model.display(),
            u.steps,
            u.guidance,
            r.batch,
            a.seed
        );
    }
    println!("{}", r.summary(&source, a.seed));
    r.verdict().map_err(anyhow::Error::msg)?;
    println!("PASS");
    Ok(())
}

fn bench_cmd(a: BenchArgs, device: Device) -> Result<()> {
    let source = Source::for_file(&a.onnx, &a.model, a.steps, &device)?;
    let rows = bench(&a.onnx, &source, &device, &a.batch, a.reps, a.seed)?;
    println!(
        "`{}` (tract, CPU) vs burn ({:?}) on `{}`, median of {} runs:",
        a.onnx.display(),
        device,
        source.path.display(),
        a.reps.max(1)
    );
    print!("{}", export::bench::table(&rows));
    Ok(())
}

fn engine_cmd(a: EngineArgs) -> Result<()> {
    use export::engine::{EngineOptions, Flavor, build_engine};
    if a.timing_cache.is_some() && a.flavor == Flavor::Rtx {
        eprintln!("note: TensorRT-RTX has no timing cache; --timing-cache is only recorded");
    }
    let opts = EngineOptions {
        batch: a.batch,
        flavor: a.flavor,
        timing_cache: a.timing_cache,
    };
    let sc = build_engine(&a.onnx, &a.out, &opts)?;
    println!("{}", sc.summary(&a.onnx, &a.out));
    Ok(())
}

fn triton_cmd(a: TritonArgs) -> Result<()> {
    use export::triton_accel::{Accelerator, TrtAccelerator};
    let trt = TrtAccelerator {
        precision: a.trt_precision,
        workspace_mib: a.trt_workspace_mib,
        cache_dir: a.trt_cache,
    };
    let opts = export::triton::TritonOptions {
        name: a.name,
        max_batch: a.max_batch,
        engine: a.engine,
        engine_flavor: a.engine_flavor,
        accelerator: Accelerator::of(a.accelerator, trt),
    };
    let r = export::triton::write_repository(&a.onnx, &a.out, &opts)?;
    println!("wrote {}", r.model_file.display());
    println!("wrote {}:\n{}", r.config.display(), r.config_text);
    Ok(())
}
