//! Triton Inference Server model repositories: `NAME/config.pbtxt` and `NAME/1/model.onnx` (the
//! `onnxruntime_onnx` backend) or `NAME/1/model.plan` (the `tensorrt_plan` backend), with the
//! inputs and outputs of the exported graph and dynamic batching over its batch axis.
//!
//! Dims follow Triton's model-configuration rules: with `max_batch_size > 0` the batch axis is
//! implicit and left out of `dims`, and an input that is only a batch axis (σ, class and w are
//! `[N]`) is declared `dims: [ 1 ]` with `reshape: { shape: [ ] }`, so clients send `[N, 1]`
//! (or `[1]` per request) and the model receives `[N]`. A file with a fixed batch gets
//! `max_batch_size: 0` and its full shapes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::EngineSidecar;
use crate::error::{ExportError, Result};
use crate::onnx::{DeclaredIo, declared_inputs, declared_outputs, read_model};

/// `max_batch_size` when neither `--max-batch` nor an engine profile gives one.
pub const DEFAULT_MAX_BATCH: usize = 64;

#[derive(Debug, Clone)]
pub struct TritonOptions {
    /// Model name (folder name and `name:` in the config); default: the ONNX file's stem.
    pub name: Option<String>,
    /// `max_batch_size`; default: the engine profile's max batch, else [`DEFAULT_MAX_BATCH`].
    pub max_batch: Option<usize>,
    /// A serialized TensorRT engine built from the ONNX file (`fewstep export engine`).
    pub engine: Option<PathBuf>,
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
    platform: &str,
    max_batch: usize,
    inputs: &[DeclaredIo],
    outputs: &[DeclaredIo],
    path: &Path,
) -> Result<String> {
    let batched = max_batch > 0;
    let mut s = String::new();
    writeln!(s, "name: \"{name}\"").unwrap();
    writeln!(s, "platform: \"{platform}\"").unwrap();
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
    if platform == "tensorrt_plan" {
        writeln!(s, "instance_group [ {{ count: 1, kind: KIND_GPU }} ]").unwrap();
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
    let profile_max = sidecar.as_ref().map(|s| s.batch.max);
    let max_batch = resolve_max_batch(onnx, dynamic, opts.max_batch, profile_max)?;

    let name = sanitize(&opts.name.clone().unwrap_or_else(|| {
        onnx.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }));
    let (platform, file_name, src) = match &opts.engine {
        Some(plan) => ("tensorrt_plan", "model.plan", plan.as_path()),
        None => ("onnxruntime_onnx", "model.onnx", onnx),
    };
    let text = config_text(&name, platform, max_batch, &inputs, &outputs, onnx)?;

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
