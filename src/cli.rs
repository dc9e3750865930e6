//! Command-line arguments (clap derive), resolved into settings by `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// One line per optional backend: whether this binary has it (`fewstep --version`).
macro_rules! feature_line {
    ($feature:literal, $($yes:tt)+) => {{
        #[cfg(feature = $feature)]
        let line = concat!($feature, ": ", $($yes)+);
        #[cfg(not(feature = $feature))]
        let line = concat!($feature, ": not built (--features ", $feature, ")");
        line
    }};
}

#[cfg(feature = "tch")]
macro_rules! libtorch {
    () => {
        concat!(
            "libtorch ",
            env!("FEWSTEP_LIBTORCH_VERSION"),
            " from ",
            env!("FEWSTEP_LIBTORCH_LIB")
        )
    };
}
#[cfg(not(feature = "tch"))]
#[allow(unused_macros)] // `feature_line!` drops its text without the feature
macro_rules! libtorch {
    () => {
        ""
    };
}

/// `fewstep --version`: the version and the optional backends compiled in (the GPU script's dry
/// mode reads it).
pub fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        [
            env!("CARGO_PKG_VERSION"),
            feature_line!("tch", libtorch!()),
            feature_line!("wgpu", "yes"),
            feature_line!("cuda", "yes"),
            feature_line!("tensorrt", "in-process TensorRT-RTX builder"),
            feature_line!("mpi", "yes"),
        ]
        .join("\n")
    })
}

#[derive(Parser, Debug)]
#[command(
    name = "fewstep",
    version,
    long_version = long_version(),
    about = "Distil slow guided diffusion models into few-step students"
)]
pub struct Cli {
    /// No progress bars (errors and results are still printed).
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Compute device; backends other than `cpu` need the matching cargo feature.
    #[arg(long, global = true, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Float precision of every tensor: `fp32`, or `bf16` (weights, activations and optimizer
    /// state in bfloat16 — burn's dtype setting, not PyTorch-style autocast; for libtorch on
    /// GPUs with bf16 units, e.g. Hopper). Checkpoints are stored in the same precision.
    /// (`--dtype`, not `--precision`: `export onnx --precision` is the ONNX file's.)
    #[arg(long, global = true, value_enum, default_value_t = PrecisionArg::Fp32)]
    pub dtype: PrecisionArg,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceArg {
    /// burn's pure-Rust `flex` CPU backend.
    Cpu,
    /// libtorch CPU (`--features tch`).
    Tch,
    /// libtorch CUDA (`--features tch`).
    TchCuda,
    /// wgpu, e.g. Vulkan (`--features wgpu`).
    Wgpu,
    /// CubeCL CUDA (`--features cuda`).
    Cuda,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecisionArg {
    Fp32,
    Bf16,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train the guided diffusion teacher.
    Teacher {
        #[command(subcommand)]
        command: TeacherCommand,
    },
    /// Distil a teacher into few-step students.
    Student {
        #[command(subcommand)]
        command: StudentCommand,
    },
    /// Sample images from a trained model (PNG per sample + grid.png).
    Sample(SampleArgs),
    /// Evaluate models: feature networks, class accuracy, Fréchet distances.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// Benchmarks (speed is measured here, never in tests).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// The whole job, resumable: teacher → guided → progressive → consistency → features →
    /// export (ONNX + parity, unrolled sampler, engine or its command, Triton) → report.
    Pipeline(PipelineArgs),
    /// Moving-digits clips (digits bouncing in a frame) written as animated PNGs and a strip.
    Clips(ClipsArgs),
    /// Export models to ONNX, check them against burn, time them.
    Export {
        #[command(subcommand)]
        command: crate::export_cmd::ExportCommand,
    },
    /// Latent diffusion (Unified Latents): measure a stage-1 autoencoder run.
    Latent {
        #[command(subcommand)]
        command: crate::latent_cmd::LatentCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum TeacherCommand {
    /// Train (or `--resume`) a teacher into RUN_DIR.
    Train(TrainArgs),
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// TOML config (default: the built-in digits config, same as configs/digits.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (MNIST IDX files or class folders), overriding `data.path`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run directory for checkpoints, config and metrics.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the checkpoint in RUN_DIR exactly where it stopped.
    #[arg(long)]
    pub resume: bool,
    /// With --resume: take a config that differs from the run's (recorded in metrics.jsonl).
    #[arg(long, requires = "resume")]
    pub allow_config_change: bool,
    /// Total optimizer steps, overriding `train.steps`.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Print the summary as one JSON line (what `bench scaling` reads).
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplerArg {
    /// Euler, 1 evaluation per step.
    Euler,
    /// DDIM: in the σ parameterisation the same update as Euler.
    Ddim,
    /// Heun (EDM Algorithm 2), 2 evaluations per step (1 on the last).
    Heun,
    /// DPM-Solver++(2M) (Lu et al. 2022), second order, 1 evaluation per step.
    Dpmpp2m,
}

impl From<SamplerArg> for teacher::edm::solver::Sampler {
    fn from(s: SamplerArg) -> Self {
        match s {
            SamplerArg::Euler => Self::Euler,
            SamplerArg::Ddim => Self::Ddim,
            SamplerArg::Heun => Self::Heun,
            SamplerArg::Dpmpp2m => Self::Dpmpp2m,
        }
    }
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Run directory (or checkpoint file) of the model.
    #[arg(long)]
    pub model: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 100)]
    pub n: usize,
    /// Class index, or `all` to spread the samples evenly over the classes.
    #[arg(long, default_value = "all")]
    pub class: String,
    /// Sampling steps (σ intervals of the Karras grid).
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// ODE solver (default: the model's own; progressive students take euler|ddim,
    /// consistency students their own multistep rule).
    #[arg(long, value_enum)]
    pub sampler: Option<SamplerArg>,
    /// Classifier-free guidance weight w (1 = conditional, 0 = unconditional).
    #[arg(long, default_value_t = 2.0)]
    pub guidance: f64,
    /// Seed of the initial noise; the same seed gives the same images.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per forward batch (memory vs speed; results do not depend on it).
    #[arg(long, default_value_t = 250)]
    pub batch: usize,
    /// A model of latents: decode with this run's decoder (the stage-1 run or one distilled
    /// from it) instead of the chain's `[data.latents]` one.
    #[arg(long)]
    pub decoder: Option<PathBuf>,
    /// A model of latents: steps of the decoder's sampler (default: the chain's `decoder_steps`).
    #[arg(long)]
    pub decoder_steps: Option<usize>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time one training step and one sampling step of a U-Net (default: the MNIST config).
    Unet(BenchUnetArgs),
    /// Wall clock of N images from a student at few steps vs the teacher at many guided steps,
    /// same backend, batch and seed, in one run; prints the speedup.
    Sampling(BenchSamplingArgs),
    /// Every ratio the project promises, over a finished pipeline run: training throughput vs
    /// PyTorch, student-4 vs teacher-50 sampling, ONNX (tract) vs burn per batch, distillation vs
    /// teacher training; writes `bench.json` and `bench.md`.
    Suite(BenchSuiteArgs),
    /// Data-parallel training throughput at 1, 2, … ranks (`mpirun -np K fewstep teacher
    /// train`, threads split over the ranks) and the all-reduce's share of the step time;
    /// writes `scaling.json` and `scaling.md`. Needs a `--features mpi` build and `mpirun`.
    Scaling(BenchScalingArgs),
}

#[derive(Args, Debug)]
pub struct BenchScalingArgs {
    /// Teacher config trained at every rank count (its `train.batch_size` is the global batch).
    #[arg(long, default_value = "configs/digits.toml")]
    pub config: PathBuf,
    /// Rank counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2])]
    pub ranks: Vec<usize>,
    /// Optimizer steps per rank count.
    #[arg(long, default_value_t = 30)]
    pub steps: u64,
    /// Output folder (default: target/bench-scaling).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// MPI launcher (default: `mpirun` on PATH).
    #[arg(long)]
    pub mpirun: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchArg {
    Train,
    Sampling,
    Onnx,
    Distill,
}

#[derive(Args, Debug)]
pub struct BenchSuiteArgs {
    /// A `fewstep pipeline` output folder (its teacher, students, export and config are used).
    #[arg(long)]
    pub run: PathBuf,
    /// Pipeline config (default: the one the run recorded in `RUN/pipeline.toml`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data folder for the distillation timing (default: the run's).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder for bench.json and bench.md (default: RUN/bench).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only these benchmarks (comma-separated: train, sampling, onnx, distill).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub only: Vec<BenchArg>,
    /// Teacher config whose U-Net is timed against the PyTorch twin (which defines that network).
    #[arg(long, default_value = "configs/mnist.toml")]
    pub unet_config: PathBuf,
    /// Python interpreter with torch for `bench/pytorch_unet.py`.
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    #[arg(long, default_value = "bench/pytorch_unet.py")]
    pub pytorch_script: PathBuf,
    /// Timed repetitions (U-Net steps; ONNX runs are twice this).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Images per model in the sampling benchmark.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Images per forward batch in the sampling benchmark (both models).
    #[arg(long, default_value_t = 250)]
    pub batch: usize,
    #[arg(long, default_value_t = 50)]
    pub teacher_steps: usize,
    #[arg(long, default_value_t = 4)]
    pub student_steps: usize,
    /// Batch sizes of the ONNX benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub onnx_batch: Vec<usize>,
    /// Optimizer steps timed per training stage (the second half is the measured window).
    #[arg(long, default_value_t = 8)]
    pub distill_steps: u64,
}

#[derive(Args, Debug)]
pub struct BenchSamplingArgs {
    /// Teacher run (sampled with CFG: 2 evaluations per step).
    #[arg(long)]
    pub teacher: PathBuf,
    /// Student run (a progressive run folder picks the round with --student-steps).
    #[arg(long)]
    pub student: PathBuf,
    #[arg(long, default_value_t = 50)]
    pub teacher_steps: usize,
    #[arg(long, default_value_t = 4)]
    pub student_steps: usize,
    /// Images per model.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Images per forward batch (the same for both).
    #[arg(long, default_value_t = 250)]
    pub batch: usize,
    #[arg(long, default_value_t = 2.0)]
    pub guidance: f64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchUnetArgs {
    /// Teacher config whose network is timed.
    #[arg(long, default_value = "configs/mnist.toml")]
    pub config: PathBuf,
    /// Batch size (default: the config's `train.batch_size`).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Timed repetitions after one warm-up.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Print one JSON object (the timing, the config, the device and its float type).
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetArg {
    Digits,
    Mnist,
    Folder,
}

impl From<DatasetArg> for teacher::data::DataSource {
    fn from(d: DatasetArg) -> Self {
        match d {
            DatasetArg::Digits => Self::Digits,
            DatasetArg::Mnist => Self::Mnist,
            DatasetArg::Folder => Self::Folder,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Train the feature network (LeNet classifier for images, 3D-conv clip classifier for clips)
    /// on a dataset and keep it.
    TrainFeatures(TrainFeaturesArgs),
    /// Class accuracy of conditional samples (`NNNNN_cK.png`) under a feature network.
    Classify(ClassifyArgs),
    /// FID (pytorch-fid semantics) in a feature space, plus class accuracy and precision/recall.
    Fid(FidArgs),
    /// Sample every model at its step counts, score them, and write a comparison report.
    Report(Box<ReportArgs>),
    /// Sampling latency of one model: median and spread over repeated runs after warm-up.
    Latency(LatencyArgs),
    /// Re-draw a report (markdown, HTML, plots) from its `results.json`, without re-sampling.
    Render(RenderArgs),
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Report folder holding `results.json` (and the sample grids it names).
    #[arg(long)]
    pub report: PathBuf,
}

#[derive(Args, Debug)]
pub struct TrainFeaturesArgs {
    #[arg(long, value_enum, default_value_t = DatasetArg::Digits)]
    pub dataset: DatasetArg,
    /// Data directory (mnist, folder).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Train on the `[data]` of this teacher config instead of `--dataset` (e.g. the moving-digit
    /// clips of configs/moving-digits.toml, which gives the clip network behind FVD).
    #[arg(long, conflicts_with = "dataset")]
    pub config: Option<PathBuf>,
    /// Output directory (features.json + lenet.bpk).
    #[arg(long)]
    pub out: PathBuf,
    /// Optimizer steps (default 6000).
    #[arg(long)]
    pub steps: Option<u64>,
}

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Folder written by `fewstep sample`.
    #[arg(long)]
    pub samples: PathBuf,
    /// Feature network directory from `fewstep eval train-features`.
    #[arg(long)]
    pub features: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags shared by every distillation stage.
#[derive(Args, Debug)]
pub struct StageArgs {
    /// Student config (TOML with [guided], [progressive], [consistency]; default: built-in digits defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory, overriding the path recorded by the teacher run.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output run directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue an interrupted run in --out.
    #[arg(long)]
    pub resume: bool,
    /// With --resume: take a config that differs from the run's (recorded in metrics.jsonl).
    #[arg(long, requires = "resume")]
    pub allow_config_change: bool,
    /// Optimizer steps (per round for progressive), overriding the config.
    #[arg(long)]
    pub steps: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum StudentCommand {
    /// Guided distillation: one w-conditioned model replaces CFG's cond + uncond pair.
    Guided {
        /// Teacher run directory.
        #[arg(long)]
        teacher: PathBuf,
        #[command(flatten)]
        stage: StageArgs,
    },
    /// Progressive distillation: halving rounds from a guided student (a sub-folder per round).
    Progressive {
        /// Guided-student run directory.
        #[arg(long)]
        from: PathBuf,
        /// Final step count (a halving of progressive.start_steps).
        #[arg(long, default_value_t = 1)]
        to_steps: usize,
        #[command(flatten)]
        stage: StageArgs,
    },
    /// Consistency distillation from a teacher (CFG) or a guided student (w as input).
    Consistency {
        #[arg(long)]
        teacher: PathBuf,
        #[command(flatten)]
        stage: StageArgs,
    },
}

#[derive(Args, Debug)]
pub struct FidArgs {
    /// Images to score: a folder of PNGs from `fewstep sample`, or a dataset split
    /// `digits-train|digits-test|mnist-train|mnist-test`, optionally `:N` for the first N.
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    pub samples: Option<String>,
    /// Or sample a run here and score those images (with --steps, --n, --guidance, --seed).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Sampling steps of --model (a progressive run folder picks this round).
    #[arg(long, requires = "model")]
    pub steps: Option<usize>,
    /// Images sampled from --model (classes 0, 1, … in turn).
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Guidance weight of --model's samples.
    #[arg(long, default_value_t = 2.0)]
    pub guidance: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Reference images, in the same forms (e.g. `mnist-test`).
    #[arg(long)]
    pub reference: String,
    /// Feature network directory, `pixels`, or an Inception-v3 `.onnx` file (pytorch-fid contract).
    #[arg(long)]
    pub features: PathBuf,
    /// Data directory for mnist splits.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// k of the k-NN manifolds for precision/recall.
    #[arg(long, default_value_t = 3)]
    pub k: usize,
    /// Bootstrap resamples behind the FID's 95% interval.
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run folders (teacher, guided, progressive, consistency) to compare.
    #[arg(long, num_args = 1.., required = true)]
    pub runs: Vec<PathBuf>,
    /// Feature network directory, `pixels`, or an Inception-v3 `.onnx` file (pytorch-fid contract).
    #[arg(long)]
    pub features: PathBuf,
    /// Reference images (`mnist-test`, `digits-test`, a PNG folder).
    #[arg(long)]
    pub reference: String,
    /// Held-out real images scored like samples, for the real-vs-real floor (e.g. `mnist-train:10000`).
    #[arg(long)]
    pub real: Option<String>,
    /// Output folder (report.md, report.html, results.json, PNGs).
    #[arg(long)]
    pub out: PathBuf,
    /// Data directory for mnist splits.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Samples per model and step count.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Guidance weight of every sample set.
    #[arg(long, default_value_t = 2.0)]
    pub guidance: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 250)]
    pub batch: usize,
    /// Step counts of teachers (guided Euler, 2 NFE per step).
    #[arg(long, value_delimiter = ',', default_value = "4,10,25,50")]
    pub teacher_steps: Vec<usize>,
    /// Step counts of students (progressive rounds that exist, consistency, guided).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub student_steps: Vec<usize>,
    /// Guidance weights of the FID-vs-w sweep (empty: no sweep).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4")]
    pub sweep_guidance: Vec<f64>,
    /// Teacher step count used for the guidance sweep.
    #[arg(long, default_value_t = 25)]
    pub sweep_steps: usize,
    /// NFE budgets of the teacher's quality-vs-NFE curve with Euler, Heun and
    /// DPM-Solver++(2M) (comma-separated; none by default).
    #[arg(long, value_delimiter = ',')]
    pub solver_nfe: Vec<usize>,
    /// Report title.
    #[arg(long, default_value = "fewstep comparison report")]
    pub title: String,
    /// The declared headline, KIND:STEPS (e.g. `progressive:4`), judged against the teacher's
    /// 50 steps at --guidance; none by default.
    #[arg(long)]
    pub headline: Option<String>,
    /// The headline's FID-ratio target (met when the interval's upper end is ≤ it).
    #[arg(long, default_value_t = 1.05)]
    pub target_ratio: f64,
    /// Samples per point of the guidance sweeps and the teacher's NFE curve.
    #[arg(long, default_value_t = 500)]
    pub sweep_n: usize,
    /// Samples per model of the nearest-neighbour memorisation check (0: none).
    #[arg(long, default_value_t = 0)]
    pub memorisation_n: usize,
    /// Training set of the memorisation check (e.g. `mnist-train`).
    #[arg(long)]
    pub train: Option<String>,
    /// Bootstrap resamples behind every FID interval.
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Batch of the timing pass's throughput figures.
    #[arg(long, default_value_t = 64)]
    pub timing_batch: usize,
    /// Timed runs per setting in the timing pass (after one warm-up).
    #[arg(long, default_value_t = 3)]
    pub timing_reps: usize,
    /// The resumable sample cache (default: OUT.samples beside --out).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Other reports' sample caches to copy a set from before sampling it (same checkpoint,
    /// steps, solver, w, seed and decoder); read only. Repeatable.
    #[arg(long)]
    pub reuse_samples: Vec<PathBuf>,
    /// Models of latents: the decoder every student decodes with (e.g. one distilled to 1–2
    /// steps); teachers keep their chain's. Default: each model's chain decoder.
    #[arg(long)]
    pub student_decoder: Option<PathBuf>,
    /// Steps of `--student-decoder` (default: the chain's `decoder_steps`).
    #[arg(long)]
    pub student_decoder_steps: Option<usize>,
}

#[derive(Args, Debug)]
pub struct LatencyArgs {
    /// Run folder (a progressive run folder picks the round with --steps).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, default_value_t = 4)]
    pub steps: usize,
    /// Images per call.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value_t = 2.0)]
    pub guidance: f64,
    /// Timed repetitions (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ClipsArgs {
    /// Where the digits come from: the embedded 8×8 digits, or MNIST (with --data DIR).
    #[arg(long, value_enum, default_value_t = DatasetArg::Digits)]
    pub dataset: DatasetArg,
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Clips to write.
    #[arg(long, default_value_t = 8)]
    pub n: usize,
    /// Frames per clip.
    #[arg(long, default_value_t = 8)]
    pub frames: usize,
    /// Side of the square frame (≥ the digits' side).
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Digits per clip.
    #[arg(long, default_value_t = 1)]
    pub digits: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder: clip-NNN.png (animated) and strip.png (one row per clip).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct PipelineArgs {
    /// Pipeline config (sections [teacher.*], [guided], [progressive], [consistency], [features],
    /// [eval], [export]); default: every stage's defaults on the embedded digits.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (MNIST IDX files or class folders), overriding `teacher.data.path`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run folder: one sub-folder per stage, `pipeline.json`, and `report/`.
    #[arg(long, default_value = "runs/pipeline")]
    pub out: PathBuf,
    /// Start from an existing teacher run instead of training one.
    #[arg(long)]
    pub from_teacher: Option<PathBuf>,
    /// Check the config and print which stages would run, skip or resume; train nothing.
    #[arg(long)]
    pub dry_run: bool,
}
