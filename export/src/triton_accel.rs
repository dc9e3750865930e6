//! How Triton's `onnxruntime_onnx` backend runs an exported ONNX model: the execution provider
//! (`--accelerator`) and, for TensorRT, the accelerator block of `config.pbtxt`
//! (`optimization { execution_accelerators { gpu_execution_accelerator [ { name: "tensorrt" … } ] } }`,
//! the keys of Triton's onnxruntime_backend README). With it the serving host's ONNX Runtime
//! builds a datacenter TensorRT engine itself, for the GPU it runs on, and caches it; fewstep
//! never has to ship an engine that only one GPU family can load.

use std::fmt;
use std::fmt::Write as _;
use std::str::FromStr;

use crate::onnx::DeclaredIo;

/// Default TensorRT builder workspace, MiB (the value Triton's README shows: 1 GiB).
pub const DEFAULT_WORKSPACE_MIB: u64 = 1024;

/// Default engine cache folder on the serving host; the model name is appended.
pub const DEFAULT_CACHE_ROOT: &str = "/tmp/fewstep_trt_cache";

/// The precision ONNX Runtime's TensorRT provider may build with (`precision_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrtPrecision {
    /// FP32 kernels only: the numbers fewstep's parity check measured.
    #[default]
    Fp32,
    /// TensorRT may pick FP16 kernels (faster; re-check quality on the serving host).
    Fp16,
}

impl TrtPrecision {
    fn mode(self) -> &'static str {
        match self {
            TrtPrecision::Fp32 => "FP32",
            TrtPrecision::Fp16 => "FP16",
        }
    }
}

impl FromStr for TrtPrecision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" => Ok(TrtPrecision::Fp32),
            "fp16" => Ok(TrtPrecision::Fp16),
            _ => Err(format!(
                "unknown TensorRT precision `{s}`: use fp32 or fp16"
            )),
        }
    }
}

/// ONNX Runtime's TensorRT execution provider settings for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrtAccelerator {
    pub precision: TrtPrecision,
    /// `max_workspace_size_bytes`, in MiB.
    pub workspace_mib: u64,
    /// `trt_engine_cache_path` on the serving host; `None`: [`DEFAULT_CACHE_ROOT`]/NAME.
    pub cache_dir: Option<String>,
}

impl Default for TrtAccelerator {
    fn default() -> Self {
        TrtAccelerator {
            precision: TrtPrecision::Fp32,
            workspace_mib: DEFAULT_WORKSPACE_MIB,
            cache_dir: None,
        }
    }
}

/// Which execution provider Triton's ONNX Runtime backend runs the model with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accelerator {
    /// GPU instance, TensorRT provider (CUDA provider for the nodes TensorRT does not take).
    TensorRt(TrtAccelerator),
    /// GPU instance, CUDA provider only.
    Cuda,
    /// CPU instance.
    Cpu,
}

impl Default for Accelerator {
    fn default() -> Self {
        Accelerator::TensorRt(TrtAccelerator::default())
    }
}

impl fmt::Display for Accelerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accelerator::TensorRt(_) => "tensorrt",
            Accelerator::Cuda => "cuda",
            Accelerator::Cpu => "cpu",
        })
    }
}

/// The `--accelerator` kinds (the TensorRT settings come from their own flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcceleratorKind {
    #[default]
    TensorRt,
    Cuda,
    Cpu,
}

impl FromStr for AcceleratorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tensorrt" => Ok(AcceleratorKind::TensorRt),
            "cuda" => Ok(AcceleratorKind::Cuda),
            "cpu" => Ok(AcceleratorKind::Cpu),
            _ => Err(format!(
                "unknown accelerator `{s}`: use tensorrt (ONNX Runtime builds a TensorRT engine on \
                 the serving GPU), cuda or cpu"
            )),
        }
    }
}

impl Accelerator {
    /// The accelerator of `kind`, with `trt` used when it is TensorRT.
    pub fn of(kind: AcceleratorKind, trt: TrtAccelerator) -> Self {
        match kind {
            AcceleratorKind::TensorRt => Accelerator::TensorRt(trt),
            AcceleratorKind::Cuda => Accelerator::Cuda,
            AcceleratorKind::Cpu => Accelerator::Cpu,
        }
    }

    /// Triton's instance kind for it.
    pub fn instance_kind(&self) -> &'static str {
        match self {
            Accelerator::Cpu => "KIND_CPU",
            Accelerator::TensorRt(_) | Accelerator::Cuda => "KIND_GPU",
        }
    }
}

/// `name:d0xd1x…,…` for every input at batch `n` (the batch axis is the leading one); the form
/// of `trt_profile_{min,opt,max}_shapes`.
fn profile_shapes(inputs: &[DeclaredIo], n: usize) -> String {
    inputs
        .iter()
        .map(|io| {
            let dims: Vec<String> = std::iter::once(n.to_string())
                .chain(io.dims.iter().skip(1).map(|d| d.unwrap_or(1).to_string()))
                .collect();
            format!("{}:{}", io.name, dims.join("x"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The `optimization { … }` block for `accel` (empty for CUDA/CPU). With a batch axis
/// (`max_batch > 0`) it carries one TensorRT profile 1 : min(8, max) : max over it, so the
/// provider builds one engine for every batch Triton forms rather than one per shape.
pub fn optimization_block(
    accel: &Accelerator,
    model: &str,
    inputs: &[DeclaredIo],
    max_batch: usize,
) -> String {
    let Accelerator::TensorRt(t) = accel else {
        return String::new();
    };
    let cache = t
        .cache_dir
        .clone()
        .unwrap_or_else(|| format!("{DEFAULT_CACHE_ROOT}/{model}"));
    let mut params = vec![
        ("precision_mode", t.precision.mode().to_string()),
        (
            "max_workspace_size_bytes",
            (t.workspace_mib.saturating_mul(1 << 20)).to_string(),
        ),
        ("trt_engine_cache_enable", "1".into()),
        ("trt_engine_cache_path", cache),
    ];
    if max_batch > 0 {
        params.push(("trt_profile_min_shapes", profile_shapes(inputs, 1)));
        params.push((
            "trt_profile_opt_shapes",
            profile_shapes(inputs, max_batch.min(8)),
        ));
        params.push(("trt_profile_max_shapes", profile_shapes(inputs, max_batch)));
    }
    let mut s = String::new();
    writeln!(s, "optimization {{ execution_accelerators {{").unwrap();
    writeln!(s, "  gpu_execution_accelerator : [ {{").unwrap();
    writeln!(s, "    name : \"tensorrt\"").unwrap();
    for (k, v) in params {
        writeln!(s, "    parameters {{ key: \"{k}\" value: \"{v}\" }}").unwrap();
    }
    writeln!(s, "  }} ]").unwrap();
    writeln!(s, "}} }}").unwrap();
    s
}
