//! `fewstep export engine`: a serialized TensorRT engine from an exported ONNX file, with one
//! optimisation profile over the batch axis of every input, plus a sidecar JSON
//! (`model.plan.json`: flavor, TensorRT version, profile, source ONNX hash, layer count, size).
//!
//! TensorRT is opened at run time (never linked): the libraries are looked up in
//! `$FEWSTEP_TENSORRT_LIB_DIR`, `$LD_LIBRARY_PATH` and the pip cache folder
//! (`~/.cache/fewstep/tensorrt-rtx`). The build itself needs the cargo feature `tensorrt`
//! (trtx, which needs clang to compile); without it, or without the libraries, the error names
//! what is missing and prints the equivalent `trtexec`/`polygraphy` command for the serving host.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// SHA-256 as hex, the one the checkpoints use.
pub use teacher::checkpoint::sha256_hex;

use crate::error::{ExportError, Result};
use crate::onnx::{DeclaredIo, declared_inputs, read_model};

/// Environment variable naming the folder that holds the TensorRT libraries.
pub const LIB_DIR_ENV: &str = "FEWSTEP_TENSORRT_LIB_DIR";

/// Where `pip install --target` puts the TensorRT-RTX wheel, relative to `$HOME`.
pub const PIP_CACHE_DIR: &str = ".cache/fewstep/tensorrt-rtx";

/// The pip line that provides the TensorRT-RTX libraries.
pub const RTX_PIP_INSTALL: &str =
    "pip install --target ~/.cache/fewstep/tensorrt-rtx tensorrt-rtx-cu13-libs==1.7.1.116";

/// Builder workspace limit.
pub const WORKSPACE_BYTES: usize = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// TensorRT-RTX 1.x (consumer GPUs, SM 75–121; builder runs without a GPU).
    #[default]
    Rtx,
    /// Datacenter TensorRT 11 (`libnvinfer.so.11`), present on serving hosts.
    Datacenter,
}

impl Flavor {
    /// The builder library and the ONNX parser library.
    pub fn libraries(self) -> [&'static str; 2] {
        match self {
            Flavor::Rtx => ["libtensorrt_rtx.so.1", "libtensorrt_onnxparser_rtx.so.1"],
            Flavor::Datacenter => ["libnvinfer.so.11", "libnvonnxparser.so.11"],
        }
    }

    /// The package that provides the libraries.
    pub fn package(self) -> &'static str {
        match self {
            Flavor::Rtx => {
                "the PyPI wheel `tensorrt-rtx-cu13-libs` (`pip install --target \
                 ~/.cache/fewstep/tensorrt-rtx tensorrt-rtx-cu13-libs==1.7.1.116`)"
            }
            Flavor::Datacenter => {
                "TensorRT 11 (`libnvinfer11` + `libnvonnxparsers11` from NVIDIA's CUDA apt \
                 repository, the TensorRT tarball, or PyPI `tensorrt-cu13-libs` from \
                 pypi.nvidia.com) on the serving host"
            }
        }
    }

    /// Which runtime and which GPUs can load an engine of this flavor.
    pub fn loads_on(self) -> &'static str {
        match self {
            Flavor::Rtx => {
                "loads only in the TensorRT-RTX runtime (libtensorrt_rtx.so.1, the same 1.x \
                 version) on GeForce RTX / RTX PRO GPUs, Turing (SM 75) to Blackwell (SM 120); \
                 not on datacenter GPUs (A100, H100/H200, B200) and not in Triton's \
                 tensorrt_plan backend"
            }
            Flavor::Datacenter => {
                "loads in datacenter TensorRT (libnvinfer.so.11, the same version; Triton's \
                 tensorrt_plan backend) on the GPU model it was built on"
            }
        }
    }

    /// The command-line builder that ships with the flavor.
    pub fn cli_tool(self) -> &'static str {
        match self {
            Flavor::Rtx => "tensorrt_rtx",
            Flavor::Datacenter => "trtexec",
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::Rtx => "rtx",
            Flavor::Datacenter => "datacenter",
        })
    }
}

impl FromStr for Flavor {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "rtx" => Ok(Flavor::Rtx),
            "datacenter" => Ok(Flavor::Datacenter),
            _ => Err(format!(
                "unknown TensorRT flavor `{s}`: use rtx or datacenter"
            )),
        }
    }
}

/// `--batch MIN:OPT:MAX` (or one number N for N:N:N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchProfile {
    pub min: usize,
    pub opt: usize,
    pub max: usize,
}

impl fmt::Display for BatchProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.min, self.opt, self.max)
    }
}

impl FromStr for BatchProfile {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let nums: std::result::Result<Vec<usize>, _> =
            parts.iter().map(|p| p.trim().parse::<usize>()).collect();
        let bad = || format!("batch profile `{s}`: expected MIN:OPT:MAX (e.g. 1:8:64) or N");
        let nums = nums.map_err(|_| bad())?;
        let p = match nums.as_slice() {
            [n] => BatchProfile {
                min: *n,
                opt: *n,
                max: *n,
            },
            [a, b, c] => BatchProfile {
                min: *a,
                opt: *b,
                max: *c,
            },
            _ => return Err(bad()),
        };
        if p.min == 0 || !(p.min <= p.opt && p.opt <= p.max) {
            return Err(format!("batch profile `{s}`: need 1 ≤ MIN ≤ OPT ≤ MAX"));
        }
        Ok(p)
    }
}

/// One input's min/opt/max shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputProfile {
    pub name: String,
    pub min: Vec<i64>,
    pub opt: Vec<i64>,
    pub max: Vec<i64>,
}

/// The profile for the file's inputs: the batch axis (symbolic leading dim) takes min/opt/max,
/// every other dim its declared size. A file with a fixed batch accepts only that batch.
pub fn input_profiles(
    inputs: &[DeclaredIo],
    batch: BatchProfile,
    path: &Path,
) -> Result<Vec<InputProfile>> {
    inputs
        .iter()
        .map(|io| {
            let at = |n: usize| -> Result<Vec<i64>> {
                io.dims
                    .iter()
                    .enumerate()
                    .map(|(i, d)| match (i, d) {
                        (_, Some(v)) => Ok(*v as i64),
                        (0, None) => Ok(n as i64),
                        (_, None) => Err(ExportError::onnx_file(
                            path,
                            format!(
                                "input `{}` has a symbolic dim at axis {i}; only the batch axis \
                                 (0) may be dynamic for an engine profile",
                                io.name
                            ),
                        )),
                    })
                    .collect()
            };
            if let Some(Some(fixed)) = io.dims.first()
                && (batch.min != *fixed || batch.max != *fixed)
            {
                return Err(ExportError::onnx_file(
                    path,
                    format!(
                        "input `{}` has a fixed batch of {fixed}, so the profile must be \
                         {fixed}:{fixed}:{fixed} (got {batch}); export with `--batch dynamic` \
                         for a batch range",
                        io.name
                    ),
                ));
            }
            Ok(InputProfile {
                name: io.name.clone(),
                min: at(batch.min)?,
                opt: at(batch.opt)?,
                max: at(batch.max)?,
            })
        })
        .collect()
}

fn shape_x(s: &[i64]) -> String {
    s.iter().map(i64::to_string).collect::<Vec<_>>().join("x")
}

fn shape_list(s: &[i64]) -> String {
    format!(
        "[{}]",
        s.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
    )
}

/// The equivalent `trtexec` (datacenter) / `tensorrt_rtx` (RTX) command line.
pub fn trtexec_command(
    flavor: Flavor,
    onnx: &Path,
    out: &Path,
    profiles: &[InputProfile],
    timing_cache: Option<&Path>,
) -> String {
    let shapes = |f: fn(&InputProfile) -> &Vec<i64>| {
        profiles
            .iter()
            .map(|p| format!("{}:{}", p.name, shape_x(f(p))))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut s = format!(
        "{} --onnx={} --saveEngine={} --minShapes={} --optShapes={} --maxShapes={}",
        flavor.cli_tool(),
        onnx.display(),
        out.display(),
        shapes(|p| &p.min),
        shapes(|p| &p.opt),
        shapes(|p| &p.max)
    );
    if let (Flavor::Datacenter, Some(tc)) = (flavor, timing_cache) {
        s.push_str(&format!(" --timingCacheFile={}", tc.display()));
    }
    s
}

/// The equivalent `polygraphy convert` command line (datacenter TensorRT's Python API).
pub fn polygraphy_command(
    onnx: &Path,
    out: &Path,
    profiles: &[InputProfile],
    timing_cache: Option<&Path>,
) -> String {
    let shapes = |f: fn(&InputProfile) -> &Vec<i64>| {
        profiles
            .iter()
            .map(|p| format!("{}:{}", p.name, shape_list(f(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = format!(
        "polygraphy convert {} --convert-to trt -o {} --trt-min-shapes {} --trt-opt-shapes {} \
         --trt-max-shapes {}",
        onnx.display(),
        out.display(),
        shapes(|p| &p.min),
        shapes(|p| &p.opt),
        shapes(|p| &p.max)
    );
    if let Some(tc) = timing_cache {
        s.push_str(&format!(
            " --load-timing-cache {0} --save-timing-cache {0}",
            tc.display()
        ));
    }
    s
}

/// The folders searched for the libraries, in order.
pub fn search_dirs(flavor: Flavor) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os(LIB_DIR_ENV).filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        dirs.push(d.join("tensorrt_rtx_libs"));
        dirs.push(d.join("tensorrt_libs"));
        dirs.push(d);
    }
    if let Some(ld) = std::env::var_os("LD_LIBRARY_PATH") {
        dirs.extend(std::env::split_paths(&ld).filter(|p| !p.as_os_str().is_empty()));
    }
    if flavor == Flavor::Rtx
        && let Some(home) = std::env::var_os("HOME")
    {
        dirs.push(
            PathBuf::from(home)
                .join(PIP_CACHE_DIR)
                .join("tensorrt_rtx_libs"),
        );
    }
    if flavor == Flavor::Datacenter {
        dirs.push("/usr/lib/x86_64-linux-gnu".into());
        dirs.push("/usr/local/tensorrt/lib".into());
    }
    dirs
}

/// The builder and parser libraries of `flavor`, both from the first folder that has both.
#[derive(Debug, Clone)]
pub struct Libraries {
    pub builder: PathBuf,
    pub parser: PathBuf,
}

pub fn find_libraries(flavor: Flavor) -> std::result::Result<Libraries, Vec<PathBuf>> {
    let dirs = search_dirs(flavor);
    let [b, p] = flavor.libraries();
    for d in &dirs {
        let (builder, parser) = (d.join(b), d.join(p));
        if builder.is_file() && parser.is_file() {
            return Ok(Libraries { builder, parser });
        }
    }
    Err(dirs)
}

/// The error for "no TensorRT here": library, variable, package, and the serving-host commands.
pub fn missing_library_message(
    flavor: Flavor,
    searched: &[PathBuf],
    onnx: &Path,
    out: &Path,
    profiles: &[InputProfile],
    timing_cache: Option<&Path>,
) -> String {
    let [b, p] = flavor.libraries();
    let searched = if searched.is_empty() {
        "(no folders)".to_string()
    } else {
        searched
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "no TensorRT {flavor} library found: `{b}` and `{p}` are not in {searched}. Point \
         {LIB_DIR_ENV} (or LD_LIBRARY_PATH) at the folder that holds them; they come from {}.\n\
         Or build the engine on the serving host:\n  {}\n  {}",
        flavor.package(),
        trtexec_command(flavor, onnx, out, profiles, timing_cache),
        polygraphy_command(onnx, out, profiles, timing_cache),
    )
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(ExportError::io("read", path))?;
    Ok(sha256_hex(&bytes))
}

/// Write `bytes` to `path` atomically (temp file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(ExportError::io("create folder", dir))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(ExportError::io("create", &tmp))?;
    f.write_all(bytes).map_err(ExportError::io("write", &tmp))?;
    f.sync_all().map_err(ExportError::io("sync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(ExportError::io("rename into place", path))?;
    Ok(())
}

/// `model.plan` → `model.plan.json`.
pub fn sidecar_path(plan: &Path) -> PathBuf {
    let mut s = plan.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// The sidecar JSON written next to an engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSidecar {
    pub flavor: Flavor,
    /// e.g. "1.7.1" (headers trtx was generated from) plus the library file that built it.
    pub tensorrt_version: String,
    pub library: String,
    pub onnx: String,
    pub onnx_sha256: String,
    pub batch: BatchProfile,
    /// The profile as the builder reported it back.
    pub profile: Vec<InputProfile>,
    /// Layers of the parsed network (INetworkDefinition::getNbLayers).
    pub network_layers: i64,
    /// Engine layers after deserializing (ICudaEngine::getNbLayers), when that worked.
    pub engine_layers: Option<i64>,
    /// "ok", or why deserializing on the build machine failed (no GPU/driver).
    pub deserialize: String,
    pub engine_bytes: u64,
    pub timing_cache: Option<String>,
}

impl EngineSidecar {
    /// What `fewstep export engine` says of an engine it built from `onnx` into `out`.
    pub fn summary(&self, onnx: &Path, out: &Path) -> String {
        let mut t = format!(
            "built TensorRT {} {} engine `{}` from `{}`: {:.1} KiB, {} network layers, batch {}\n",
            self.flavor,
            self.tensorrt_version,
            out.display(),
            onnx.display(),
            self.engine_bytes as f64 / 1024.0,
            self.network_layers,
            self.batch
        );
        for p in &self.profile {
            t += &format!(
                "  {}: min {:?} opt {:?} max {:?}\n",
                p.name, p.min, p.opt, p.max
            );
        }
        t += &match self.engine_layers {
            Some(n) => format!("deserialized on this machine: {n} engine layers\n"),
            None => format!("not deserialized on this machine: {}\n", self.deserialize),
        };
        t += &format!("this engine {}\n", self.flavor.loads_on());
        t + &format!("wrote {}", sidecar_path(out).display())
    }

    pub fn to_json(&self) -> serde_json::Value {
        // An array, not a map: keeps the graph's input order (serde_json maps sort keys).
        let prof: Vec<serde_json::Value> = self
            .profile
            .iter()
            .map(|p| serde_json::json!({"name": p.name, "min": p.min, "opt": p.opt, "max": p.max}))
            .collect();
        serde_json::json!({
            "flavor": self.flavor.to_string(),
            "tensorrt_version": self.tensorrt_version,
            "library": self.library,
            "onnx": self.onnx,
            "onnx_sha256": self.onnx_sha256,
            "batch": {"min": self.batch.min, "opt": self.batch.opt, "max": self.batch.max},
            "profile": prof,
            "network_layers": self.network_layers,
            "engine_layers": self.engine_layers,
            "deserialize": self.deserialize,
            "engine_bytes": self.engine_bytes,
            "timing_cache": self.timing_cache,
        })
    }

    pub fn from_json(v: &serde_json::Value) -> std::result::Result<Self, String> {
        let s = |k: &str| -> std::result::Result<String, String> {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("sidecar lacks string `{k}`"))
        };
        let n = |x: &serde_json::Value, k: &str| -> std::result::Result<u64, String> {
            x.get(k)
                .and_then(|x| x.as_u64())
                .ok_or_else(|| format!("sidecar lacks number `{k}`"))
        };
        let shape = |x: &serde_json::Value, k: &str| -> std::result::Result<Vec<i64>, String> {
            x.get(k)
                .and_then(|a| a.as_array())
                .ok_or_else(|| format!("sidecar profile lacks `{k}`"))?
                .iter()
                .map(|d| d.as_i64().ok_or_else(|| "non-integer dim".to_string()))
                .collect()
        };
        let b = v.get("batch").ok_or("sidecar lacks `batch`")?;
        let profile = v
            .get("profile")
            .and_then(|p| p.as_array())
            .ok_or("sidecar lacks `profile`")?
            .iter()
            .map(|p| {
                Ok(InputProfile {
                    name: p
                        .get("name")
                        .and_then(|n| n.as_str())
                        .ok_or("sidecar profile entry lacks `name`")?
                        .to_string(),
                    min: shape(p, "min")?,
                    opt: shape(p, "opt")?,
                    max: shape(p, "max")?,
                })
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        Ok(EngineSidecar {
            flavor: s("flavor")?.parse()?,
            tensorrt_version: s("tensorrt_version")?,
            library: s("library")?,
            onnx: s("onnx")?,
            onnx_sha256: s("onnx_sha256")?,
            batch: BatchProfile {
                min: n(b, "min")? as usize,
                opt: n(b, "opt")? as usize,
                max: n(b, "max")? as usize,
            },
            profile,
            network_layers: n(v, "network_layers")? as i64,
            engine_layers: v.get("engine_layers").and_then(|x| x.as_i64()),
            deserialize: s("deserialize")?,
            engine_bytes: n(v, "engine_bytes")?,
            timing_cache: v
                .get("timing_cache")
                .and_then(|x| x.as_str())
                .map(str::to_string),
        })
    }

    /// The sidecar of engine `plan` (`plan.json`).
    pub fn read_for(plan: &Path) -> Result<Self> {
        let p = sidecar_path(plan);
        let text =
            std::fs::read_to_string(&p).map_err(ExportError::io("read engine sidecar", &p))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ExportError::Invalid(format!("`{}` is not JSON: {e}", p.display())))?;
        Self::from_json(&v).map_err(|e| ExportError::Invalid(format!("`{}`: {e}", p.display())))
    }
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub batch: BatchProfile,
    pub flavor: Flavor,
    pub timing_cache: Option<PathBuf>,
}

/// Whether this binary can build engines (cargo feature `tensorrt`).
pub const BUILDER_COMPILED_IN: bool = cfg!(feature = "tensorrt");

/// Build `out` (and `out.json`) from `onnx`. Errors say what is missing and how to build the
/// same engine elsewhere.
pub fn build_engine(onnx: &Path, out: &Path, opts: &EngineOptions) -> Result<EngineSidecar> {
    let model = read_model(onnx)?;
    let inputs = declared_inputs(&model);
    let profiles = input_profiles(&inputs, opts.batch, onnx)?;
    let tc = opts.timing_cache.as_deref();
    let libs = find_libraries(opts.flavor).map_err(|searched| {
        ExportError::TensorRt(missing_library_message(
            opts.flavor,
            &searched,
            onnx,
            out,
            &profiles,
            tc,
        ))
    })?;
    build_with(onnx, out, opts, &libs, &profiles)
}

#[cfg(not(feature = "tensorrt"))]
fn build_with(
    onnx: &Path,
    out: &Path,
    opts: &EngineOptions,
    libs: &Libraries,
    profiles: &[InputProfile],
) -> Result<EngineSidecar> {
    Err(ExportError::TensorRt(format!(
        "found `{}`, but this fewstep binary was built without TensorRT support: rebuild with \
         `cargo build --release --workspace --features tensorrt` (needs `apt-get install \
         libclang-dev clang`).\nOr build the engine with TensorRT's own tools:\n  {}\n  {}",
        libs.builder.display(),
        trtexec_command(
            opts.flavor,
            onnx,
            out,
            profiles,
            opts.timing_cache.as_deref()
        ),
        polygraphy_command(onnx, out, profiles, opts.timing_cache.as_deref()),
    )))
}

#[cfg(feature = "tensorrt")]
fn build_with(
    onnx: &Path,
    out: &Path,
    opts: &EngineOptions,
    libs: &Libraries,
    profiles: &[InputProfile],
) -> Result<EngineSidecar> {
    if opts.flavor == Flavor::Datacenter {
        return Err(ExportError::TensorRt(format!(
            "this binary's TensorRT builder is TensorRT-RTX (trtx without `enterprise`); the \
             datacenter API differs, so build datacenter engines on the serving host:\n  {}\n  {}",
            trtexec_command(
                opts.flavor,
                onnx,
                out,
                profiles,
                opts.timing_cache.as_deref()
            ),
            polygraphy_command(onnx, out, profiles, opts.timing_cache.as_deref()),
        )));
    }
    let bytes = std::fs::read(onnx).map_err(ExportError::io("read ONNX file", onnx))?;
    let shapes: Vec<crate::engine_trt::ShapeProfile> = profiles
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                [p.min.clone(), p.opt.clone(), p.max.clone()],
            )
        })
        .collect();
    let built = crate::engine_trt::build(
        &libs.builder,
        &libs.parser,
        &bytes,
        &shapes,
        WORKSPACE_BYTES,
    )
    .map_err(|e| ExportError::TensorRt(format!("building `{}`: {e}", onnx.display())))?;
    if built.plan.is_empty() {
        return Err(ExportError::TensorRt(format!(
            "TensorRT built an empty engine from `{}`",
            onnx.display()
        )));
    }
    write_atomic(out, &built.plan)?;
    let v = built.header_version;
    let (deserialize, engine_layers) = match &built.deserialized {
        Ok(n) => ("ok".to_string(), Some(*n as i64)),
        Err(e) => (e.clone(), None),
    };
    let sidecar = EngineSidecar {
        flavor: opts.flavor,
        tensorrt_version: format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100),
        library: libs.builder.display().to_string(),
        onnx: onnx.display().to_string(),
        onnx_sha256: sha256_hex(&bytes),
        batch: opts.batch,
        profile: built
            .profile
            .into_iter()
            .map(|(name, [min, opt, max])| InputProfile {
                name,
                min,
                opt,
                max,
            })
            .collect(),
        network_layers: built.network_layers as i64,
        engine_layers,
        deserialize,
        engine_bytes: built.plan.len() as u64,
        timing_cache: opts.timing_cache.as_ref().map(|p| p.display().to_string()),
    };
    let json = serde_json::to_string_pretty(&sidecar.to_json()).expect("JSON values serialise");
    write_atomic(&sidecar_path(out), json.as_bytes())?;
    Ok(sidecar)
}
