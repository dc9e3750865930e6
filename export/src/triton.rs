//! Triton Inference Server model repositories: `NAME/config.pbtxt` and `NAME/1/model.onnx` (the
//! `onnxruntime_onnx` backend, by default with ONNX Runtime's TensorRT accelerator:
//! [`crate::triton_accel`]) or `NAME/1/model.plan` (the `tensorrt_plan` backend), with the
//! inputs and outputs of the exported graph and dynamic batching over its batch axis.
//!
//! A repository only ever holds what Triton's backends can load. `tensorrt_plan` links
//! datacenter TensorRT (`libnvinfer`), so it takes only a datacenter engine: a TensorRT-RTX
//! engine (what `fewstep export engine` builds) is refused, and an engine without fewstep's
//! sidecar must be declared datacenter (`--engine-flavor datacenter`) by whoever built it.
//!
//! Dims follow Triton's model-configuration rules: with `max_batch_size > 0` the batch axis is
//! implicit and left out of `dims`, and an input that is only a batch axis (σ, class and w are
//! `[N]`) is declared `dims: [ 1 ]` with `reshape: { shape: [ ] }`, so clients send `[N, 1]`
//! (or `[1]` per request) and the model receives `[N]`. A file with a fixed batch gets
//! `max_batch_size: 0` and its full shapes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::{EngineSidecar, Flavor};
use crate::error::{ExportError, Result};
use crate::onnx::{DeclaredIo, declared_inputs, declared_outputs, read_model};
use crate::triton_accel::{Accelerator, optimization_block};

/// `max_batch_size` when neither `--max-batch` nor an engine profile gives one.
pub const DEFAULT_MAX_BATCH: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct TritonOptions {
    /// Model name (folder name and `name:` in the config); default: the ONNX file's stem.
    pub name: Option<String>,
    /// `max_batch_size`; default: the engine profile's max batch, else [`DEFAULT_MAX_BATCH`].
    pub max_batch: Option<usize>,
    /// A serialized datacenter TensorRT engine built from the ONNX file: served under
    /// `tensorrt_plan` instead of the ONNX.
    pub engine: Option<PathBuf>,
    /// The flavor of an `engine` that has no fewstep sidecar (built by `trtexec`), as declared by
    /// the user; a sidecar's flavor must agree with it.
    pub engine_flavor: Option<Flavor>,
    /// How `onnxruntime_onnx` runs the ONNX (ignored with an engine).
    pub accelerator: Accelerator,
}

/// What Triton serves the model with.
#[derive(Debug, Clone, Copy)]
pub enum Served<'a> {
    /// `onnxruntime_onnx` with this execution provider.
    Onnx(&'a Accelerator),
    /// `tensorrt_plan` (a datacenter engine).
    Plan,
}

impl Served<'_> {
    pub fn platform(self) -> &'static str {
        match self {
            Served::Onnx(_) => "onnxruntime_onnx",
            Served::Plan => "tensorrt_plan",
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct TritonRepo {
    pub model_dir: PathBuf,
    pub config: PathBuf,
    pub model_file: PathBuf,
    pub config_text: String,
}

/// Triton's data type for an ONNX element type code.
pub fn triton_type(onnx_elem: i32) -> Option<&'static str> {
    Some(match onnx_elem {
        1 => "TYPE_FP32",
        2 => "TYPE_UINT8",
        3 => "TYPE_INT8",
        5 => "TYPE_INT16",
        6 => "TYPE_INT32",
        7 => "TYPE_INT64",
        9 => "TYPE_BOOL",
        10 => "TYPE_FP16",
        11 => "TYPE_FP64",
        16 => "TYPE_BF16",
        _ => return None,
    })
}

/// A name Triton accepts as a model folder: letters, digits, `_` and `-`.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "fewstep".into() } else { s }
}

fn dims_text(d: &[Option<usize>]) -> String {
    let v: Vec<String> = d
        .iter()
        .map(|x| x.map_or("-1".to_string(), |n| n.to_string()))
        .collect();
    format!("[ {} ]", v.join(", "))
}

fn io_block(
    out: &mut String,
    kind: &str,
    ios: &[DeclaredIo],
    batched: bool,
    path: &Path,
) -> Result<()> {
    writeln!(out, "{kind} [").unwrap();
    for (i, io) in ios.iter().enumerate() {
        let ty = triton_type(io.elem).ok_or_else(|| {
            ExportError::onnx_file(
                path,
                format!(
                    "{kind} `{}` has ONNX element type {} that Triton has no TYPE_* for",
                    io.name, io.elem
                ),
            )
        })?;
        let (dims, reshape) = if batched {
            let rest = &io.dims[1..];
            if rest.is_empty() {
                // Triton's rule for batch-only tensors: dims [1], reshaped to [] for the model.
                ("[ 1 ]".to_string(), true)
            } else {
                (dims_text(rest), false)
            }
        } else {
            (dims_text(&io.dims), false)
        };
        writeln!(out, "  {{").unwrap();
        writeln!(out, "    name: \"{}\"", io.name).unwrap();
        writeln!(out, "    data_type: {ty}").unwrap();
        writeln!(out, "    dims: {dims}").unwrap();
        if reshape {
            writeln!(out, "    reshape: {{ shape: [ ] }}").unwrap();
        }
        let sep = if i + 1 < ios.len() { "," } else { "" };
        writeln!(out, "  }}{sep}").unwrap();
    }
    writeln!(out, "]").unwrap();
    Ok(())
}

/// The `config.pbtxt` text for a model with these inputs/outputs. `max_batch == 0` means no
/// batching (full shapes); otherwise every input and output must have a symbolic leading axis.
pub fn config_text(
    name: &str,
    served: Served<'_>,
    max_batch: usize,
    inputs: &[DeclaredIo],
    outputs: &[DeclaredIo],
    path: &Path,
) -> Result<String> {
    let batched = max_batch > 0;
    let mut s = String::new();
    writeln!(s, "name: \"{name}\"").unwrap();
    writeln!(s, "platform: \"{}\"", served.platform()).unwrap();
    writeln!(s, "max_batch_size: {max_batch}").unwrap();
    io_block(&mut s, "input", inputs, batched, path)?;
    io_block(&mut s, "output", outputs, batched, path)?;
    if batched {
        writeln!(
            s,
            "dynamic_batching {{ max_queue_delay_microseconds: 100 }}"
        )
        .unwrap();
    }
    let kind = match served {
        Served::Plan => "KIND_GPU",
        Served::Onnx(a) => a.instance_kind(),
    };
    writeln!(s, "instance_group [ {{ count: 1, kind: {kind} }} ]").unwrap();
    if let Served::Onnx(a) = served {
        s += &optimization_block(a, name, inputs, max_batch);
    }
    Ok(s)
}

fn has_batch_axis(io: &DeclaredIo) -> bool {
    io.dims.first().is_some_and(|d| d.is_none())
}

/// Write `out/NAME/config.pbtxt` and `out/NAME/1/model.{onnx,plan}` for the exported `onnx` file.
pub fn write_repository(onnx: &Path, out: &Path, opts: &TritonOptions) -> Result<TritonRepo> {
    let model = read_model(onnx)?;
    let inputs = declared_inputs(&model);
    let outputs = declared_outputs(&model);
    let dynamic = inputs.iter().chain(&outputs).all(has_batch_axis);
    check_static_dims(onnx, &inputs, &outputs, dynamic)?;

    let sidecar = engine_sidecar(onnx, opts)?;
    match &opts.engine {
        Some(plan) => check_datacenter(plan, sidecar.as_ref(), opts.engine_flavor, onnx)?,
        None => check_accelerator(&opts.accelerator)?,
    }
    let profile_max = sidecar.as_ref().map(|s| s.batch.max);
    let max_batch = resolve_max_batch(onnx, dynamic, opts.max_batch, profile_max)?;

    let name = sanitize(&opts.name.clone().unwrap_or_else(|| {
        onnx.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }));
    let (served, file_name, src) = match &opts.engine {
        Some(plan) => (Served::Plan, "model.plan", plan.as_path()),
        None => (Served::Onnx(&opts.accelerator), "model.onnx", onnx),
    };
    let text = config_text(&name, served, max_batch, &inputs, &outputs, onnx)?;

    let model_dir = out.join(&name);
    let version_dir = model_dir.join("1");
    std::fs::create_dir_all(&version_dir)
        .map_err(ExportError::io("create Triton model folder", &version_dir))?;
    let model_file = version_dir.join(file_name);
    let bytes = std::fs::read(src).map_err(ExportError::io("read", src))?;
    crate::engine::write_atomic(&model_file, &bytes)?;
    let config = model_dir.join("config.pbtxt");
    crate::engine::write_atomic(&config, text.as_bytes())?;
    Ok(TritonRepo {
        model_dir,
        config,
        model_file,
        config_text: text,
    })
}

/// `tensorrt_plan` only for a datacenter engine: from its sidecar, else as the user declared it.
fn check_datacenter(
    plan: &Path,
    sidecar: Option<&EngineSidecar>,
    declared: Option<Flavor>,
    onnx: &Path,
) -> Result<()> {
    let flavor = match (sidecar.map(|s| s.flavor), declared) {
        (Some(s), Some(d)) if s != d => {
            return Err(ExportError::Invalid(format!(
                "engine `{}`: --engine-flavor {d} contradicts its sidecar `{}`, which says \
                 {s}: drop --engine-flavor or rebuild the engine",
                plan.display(),
                crate::engine::sidecar_path(plan).display()
            )));
        }
        (Some(f), _) | (None, Some(f)) => f,
        (None, None) => {
            return Err(ExportError::Invalid(format!(
                "engine `{}` has no fewstep sidecar, so its TensorRT flavor is unknown: if \
                 datacenter TensorRT (`trtexec`) built it for the serving GPU, say so with \
                 `--engine-flavor datacenter`; a TensorRT-RTX engine cannot be served by Triton \
                 (serve the ONNX instead: `fewstep export triton --onnx {}`)",
                plan.display(),
                onnx.display()
            )));
        }
    };
    match flavor {
        Flavor::Datacenter => Ok(()),
        Flavor::Rtx => Err(ExportError::Invalid(format!(
            "engine `{}` is a TensorRT-RTX engine ({}), which Triton cannot serve: its \
             `tensorrt_plan` backend links datacenter TensorRT (libnvinfer). Serve the ONNX \
             instead, `fewstep export triton --onnx {}` (onnxruntime_onnx with the TensorRT \
             accelerator: the serving host's ONNX Runtime builds a datacenter engine for its own \
             GPU), or build a datacenter engine on the serving host (`{}`) and pass it with \
             `--engine-flavor datacenter`",
            plan.display(),
            Flavor::Rtx.loads_on(),
            onnx.display(),
            Flavor::Datacenter.cli_tool()
        ))),
    }
}

/// The accelerator's strings go into `config.pbtxt` quoted: refuse what would break the quotes.
fn check_accelerator(a: &Accelerator) -> Result<()> {
    if let Accelerator::TensorRt(t) = a {
        if let Some(d) = &t.cache_dir
            && (d.is_empty() || d.contains(['"', '\\', '\n', '\r']))
        {
            return Err(ExportError::Invalid(format!(
                "--trt-cache `{d}` must be a non-empty path without quotes, backslashes or line \
                 breaks (it is written into config.pbtxt)"
            )));
        }
        if t.workspace_mib == 0 {
            return Err(ExportError::Invalid(
                "--trt-workspace-mib must be ≥ 1 (TensorRT needs builder workspace)".into(),
            ));
        }
    }
    Ok(())
}

/// Rejects symbolic dims other than the batch axis (the leading one when `dynamic`).
fn check_static_dims(
    onnx: &Path,
    inputs: &[DeclaredIo],
    outputs: &[DeclaredIo],
    dynamic: bool,
) -> Result<()> {
    for io in inputs.iter().chain(outputs) {
        if io
            .dims
            .iter()
            .skip(usize::from(dynamic))
            .any(Option::is_none)
        {
            return Err(ExportError::onnx_file(
                onnx,
                format!(
                    "`{}` has a symbolic dim other than the batch axis ({}); Triton needs static \
                     per-example dims: re-export with `fewstep export onnx`",
                    io.name,
                    dims_text(&io.dims)
                ),
            ));
        }
    }
    Ok(())
}

/// The sidecar of `opts.engine`, if there is one, checked to be built from `onnx`.
fn engine_sidecar(onnx: &Path, opts: &TritonOptions) -> Result<Option<EngineSidecar>> {
    let sidecar = match &opts.engine {
        Some(plan) => {
            if !plan.is_file() {
                return Err(ExportError::Invalid(format!(
                    "engine `{}` does not exist: build it with `fewstep export engine {} --out {}`",
                    plan.display(),
                    onnx.display(),
                    plan.display()
                )));
            }
            check_engine_bytes(plan)?;
            // No sidecar (an engine built by trtexec): no profile to check against. A sidecar that
            // does not parse is an error, not a silent default.
            if crate::engine::sidecar_path(plan).is_file() {
                Some(EngineSidecar::read_for(plan)?)
            } else {
                None
            }
        }
        None => None,
    };
    if let Some(sc) = &sidecar {
        let hash = crate::engine::sha256_file(onnx)?;
        if sc.onnx_sha256 != hash {
            return Err(ExportError::Invalid(format!(
                "engine `{}` was built from another ONNX file (sidecar sha256 {} ≠ `{}` {}): \
                 rebuild it with `fewstep export engine`",
                opts.engine.as_ref().unwrap().display(),
                sc.onnx_sha256,
                onnx.display(),
                hash
            )));
        }
    }
    Ok(sidecar)
}

/// `max_batch_size`: 0 for a fixed batch, else `--max-batch`, the engine profile's max batch or
/// [`DEFAULT_MAX_BATCH`], never above the profile's max.
fn resolve_max_batch(
    onnx: &Path,
    dynamic: bool,
    requested: Option<usize>,
    profile_max: Option<usize>,
) -> Result<usize> {
    Ok(if !dynamic {
        if requested.is_some_and(|m| m > 0) {
            return Err(ExportError::onnx_file(
                onnx,
                "has a fixed batch size, so Triton cannot batch it (max_batch_size 0): export \
                 with `--batch dynamic` to use --max-batch",
            ));
        }
        0
    } else {
        let m = requested.or(profile_max).unwrap_or(DEFAULT_MAX_BATCH);
        if m == 0 {
            return Err(ExportError::Invalid(
                "--max-batch must be ≥ 1 for a dynamic-batch file".into(),
            ));
        }
        if let Some(pm) = profile_max
            && m > pm
        {
            return Err(ExportError::Invalid(format!(
                "--max-batch {m} exceeds the engine profile's max batch {pm}: rebuild the engine \
                 with `--batch MIN:OPT:{m}` or lower --max-batch"
            )));
        }
        m
    })
}

/// A serialized engine is binary and larger than any header: a text file or a stub given as
/// `--engine` by mistake is refused before it is copied into the repository.
fn check_engine_bytes(plan: &Path) -> Result<()> {
    let bytes = std::fs::read(plan).map_err(ExportError::io("read", plan))?;
    let why = if bytes.len() < 1024 {
        Some(format!(
            "is {} bytes, too small for a TensorRT engine",
            bytes.len()
        ))
    } else if std::str::from_utf8(&bytes).is_ok() {
        Some("is text, not a serialized TensorRT engine".to_string())
    } else {
        None
    };
    match why {
        Some(why) => Err(ExportError::Invalid(format!(
            "engine `{}` {why}: build one with `fewstep export engine MODEL.onnx --out {}`",
            plan.display(),
            plan.display()
        ))),
        None => Ok(()),
    }
}
