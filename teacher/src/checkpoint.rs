//! One self-describing checkpoint file per run state, written atomically (temp file + fsync +
//! rename), so a crash or a kill never leaves a half-written checkpoint in place.
//!
//! Layout (format 2): `FEWSTEP\x01` · u64 LE header length · JSON header · SHA-256 of the JSON
//! header (32 bytes) · named blobs (burnpack bytes), each with its length and SHA-256 in the
//! header, so a flipped byte anywhere is caught on load and named. The header names what the run
//! is with a typed [`Recipe`]; format-1 files (kind + free-form `extra`, no checksums) are
//! converted on load (`crate::upgrade`). Saving over a run's checkpoint keeps the one it
//! replaces as [`PREVIOUS`], the fallback a checksum error points to.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::TeacherConfig;
use crate::error::{Error, Result};
use crate::model::{EdmModel, ModelSpec};
use crate::recipe::{ModelKind, Recipe};

const MAGIC: &[u8; 8] = b"FEWSTEP\x01";
/// Bumped when the header changes incompatibly (2: typed recipe, lineage, network enum,
/// checksums).
pub const FORMAT_VERSION: u32 = 2;
/// File name of the latest checkpoint inside a run directory.
pub const LATEST: &str = "checkpoint.fsk";
/// The checkpoint a save replaced, kept beside it.
pub const PREVIOUS: &str = "checkpoint.prev.fsk";

/// One blob's entry in the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobEntry {
    pub name: String,
    pub len: u64,
    /// SHA-256 of the blob's bytes, hex (None: a converted format-1 file, which had none).
    pub sha256: Option<String>,
}

/// SHA-256 of `bytes`, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where a run comes from, for the stages and evaluations that read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    /// The resolved config (TOML) of the teacher at the root of the chain: its data and EDM
    /// constants (a teacher's own config).
    pub teacher_config: String,
    /// `--data DIR` or `data.path` the chain's teacher trained on (None: the config's source).
    pub data_path: Option<PathBuf>,
    /// The run this one was distilled from (None for a teacher).
    pub source: Option<PathBuf>,
}

/// The JSON header: everything but the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: u32,
    /// What the run is, with the facts its sampling needs.
    pub recipe: Recipe,
    /// Optimizer steps taken.
    pub step: u64,
    /// The run's seed; with `step` it fixes every later random draw (see `rng`).
    pub seed: u64,
    pub spec: ModelSpec,
    /// The resolved config of the run, as TOML.
    pub config: String,
    pub lineage: Lineage,
    /// Names, byte lengths and checksums of the blobs, in file order.
    pub blobs: Vec<BlobEntry>,
}

impl Header {
    pub fn kind(&self) -> ModelKind {
        self.recipe.kind()
    }

    /// The root teacher's config: data, σ_data, σ grid of the whole chain.
    pub fn teacher_config(&self) -> Result<TeacherConfig> {
        TeacherConfig::from_toml(&self.lineage.teacher_config)
    }
}

/// A checkpoint in memory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub header: Header,
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// The file it was loaded from (errors name it); empty for one made in memory.
    pub path: PathBuf,
}

/// Write `bytes` to `path` atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Persist the rename itself.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Serialise a module's weights (burnpack).
pub fn module_bytes<M: Module>(m: M) -> Vec<u8> {
    m.into_record()
        .into_bytes()
        .expect("encoding an in-memory record cannot fail")
        .to_vec()
}

impl Checkpoint {
    pub fn new(header: Header) -> Self {
        Self {
            header,
            blobs: BTreeMap::new(),
            path: PathBuf::from("<checkpoint in memory>"),
        }
    }

    pub fn with_blob(mut self, name: &str, bytes: Vec<u8>) -> Self {
        self.blobs.insert(name.to_string(), bytes);
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut header = self.header.clone();
        header.format = FORMAT_VERSION;
        header.blobs = self
            .blobs
            .iter()
            .map(|(k, v)| BlobEntry {
                name: k.clone(),
                len: v.len() as u64,
                sha256: Some(sha256_hex(v)),
            })
            .collect();
        let json = serde_json::to_vec(&header).expect("the header is plain data");
        let blobs_len = self.blobs.values().map(Vec::len).sum::<usize>();
        let mut out = Vec::with_capacity(48 + json.len() + blobs_len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&Sha256::digest(&json));
        for blob in self.blobs.values() {
            out.extend_from_slice(blob);
        }
        out
    }

    /// Write to `path` atomically; an existing checkpoint there is kept as [`PREVIOUS`] in the
    /// same folder (a hard link, or a copy where links are not possible), so a checkpoint that
    /// later proves corrupt has a fallback.
    pub fn save(&self, path: &Path) -> Result<()> {
        if path.is_file() {
            let prev = path.with_file_name(PREVIOUS);
            let _ = std::fs::remove_file(&prev);
            if std::fs::hard_link(path, &prev).is_err() {
                std::fs::copy(path, &prev)
                    .map_err(Error::io("keep the previous checkpoint as", &prev))?;
            }
        }
        write_atomic(path, &self.to_bytes())
    }

    /// Read and validate a checkpoint file. A directory is taken as a run folder holding one.
    pub fn load(path: &Path) -> Result<Self> {
        let file: PathBuf = if path.is_dir() {
            path.join(LATEST)
        } else {
            path.to_path_buf()
        };
        let bad = |m: String| Error::Checkpoint {
            path: file.clone(),
            message: m,
        };
        if !file.exists() {
            return Err(bad(
                "does not exist: pass a run directory written by `fewstep teacher train` (or a student command) or its checkpoint file".into(),
            ));
        }
        if file.is_dir() {
            return Err(bad(
                "is a folder: pass a run folder holding `checkpoint.fsk`, or the file itself"
                    .into(),
            ));
        }
        let bytes = std::fs::read(&file).map_err(Error::io("read checkpoint", &file))?;
        let (header, at) = read_header(&bytes).map_err(bad)?;
        let blobs = read_blobs(&bytes, &header, at).map_err(bad)?;
        Ok(Self {
            header,
            blobs,
            path: file,
        })
    }

    pub fn blob(&self, name: &str) -> Result<&[u8]> {
        self.blobs
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::Checkpoint {
                path: self.path.clone(),
                message: format!(
                    "has no `{name}` blob: it was written by another stage or is damaged"
                ),
            })
    }

    /// Load a named weights blob into a module of the checkpoint's structure.
    pub fn load_into<M: Module>(&self, name: &str, module: M) -> Result<M> {
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.blob(name)?.to_vec()))
            .map_err(|e| Error::Checkpoint {
                path: self.path.clone(),
                message: format!("weights blob `{name}` is unreadable: {e}"),
            })?;
        let loaded = module
            .try_load_record(record)
            .map_err(|e| Error::Checkpoint {
                path: self.path.clone(),
                message: format!("weights `{name}` do not fit the network in the header: {e}"),
            })?;
        // Weights saved under `--dtype bf16` load into an fp32 run and the other way round:
        // every float parameter takes the dtype its device makes by default.
        Ok(to_device_dtype(loaded))
    }

    /// The model for inference: EMA weights when present, else the raw weights.
    pub fn inference_model(&self, device: &Device) -> Result<EdmModel> {
        let model = self.header.spec.init(device);
        let name = if self.blobs.contains_key("ema") {
            "ema"
        } else {
            "model"
        };
        self.load_into(name, model)
    }
}

/// `module` with every float parameter in its device's default float dtype (`--dtype`): weights
/// saved in fp32 run under bf16 and the other way round. A no-op where they agree.
pub fn to_device_dtype<M: Module>(module: M) -> M {
    module.map(&mut ToDeviceDtype)
}

/// Casts each float parameter to its device's default float dtype.
struct ToDeviceDtype;

impl ModuleMapper for ToDeviceDtype {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let want = t.device().settings().float_dtype;
            if t.dtype() == DType::from(want) {
                return t;
            }
            let grad = t.is_require_grad();
            let cast = t.cast(want).detach();
            if grad { cast.require_grad() } else { cast }
        })
    }
}

/// What a checksum error tells the user to do.
const RECOVER: &str = "the file is corrupt: copy `checkpoint.prev.fsk` from the same folder over \
                       it (the checkpoint one save earlier) and `--resume`, or retrain";

/// The header of a file of any readable format, as format 2 (format 1 converted, its `format`
/// kept at 1 so the blobs are converted too), and where the blobs start. Format 2's header is
/// checked against its SHA-256 before it is read.
fn read_header(bytes: &[u8]) -> std::result::Result<(Header, usize), String> {
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err("is not a fewstep checkpoint (bad magic bytes)".into());
    }
    let hlen = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let hend = usize::try_from(hlen)
        .ok()
        .and_then(|l| l.checked_add(16))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            format!(
                "is truncated: header of {hlen} bytes but the file has {}",
                bytes.len()
            )
        })?;
    let json = &bytes[16..hend];
    #[derive(Deserialize)]
    struct Version {
        format: u32,
    }
    let version = serde_json::from_slice::<Version>(json)
        .ok()
        .map(|v| v.format);
    match version {
        Some(1) => crate::upgrade::header_from_v1(json).map(|h| (h, hend)).map_err(|e| {
            format!("is a format-1 checkpoint that could not be converted ({e}): retrain it with this fewstep")
        }),
        Some(f) if f != FORMAT_VERSION => Err(format!(
            "has format {f}, this fewstep reads {FORMAT_VERSION} (and converts 1): use the fewstep that wrote it"
        )),
        _ => {
            let sum = bytes.get(hend..hend.saturating_add(32));
            if sum != Some(&Sha256::digest(json)[..]) {
                return Err(format!("has a header that fails its checksum: {RECOVER}"));
            }
            let header = serde_json::from_slice(json).map_err(|e| {
                format!("has an unreadable header ({e}); it was written by another fewstep version")
            })?;
            Ok((header, hend + 32))
        }
    }
}

/// The blobs the header lists, from `at` on, each checked against its SHA-256 (format-1 blobs,
/// which have none, are converted instead).
fn read_blobs(
    bytes: &[u8],
    header: &Header,
    mut at: usize,
) -> std::result::Result<BTreeMap<String, Vec<u8>>, String> {
    let mut blobs = BTreeMap::new();
    for b in &header.blobs {
        let name = &b.name;
        let end = usize::try_from(b.len)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                format!("is truncated inside blob `{name}`: the file is incomplete; {RECOVER}")
            })?;
        let blob = &bytes[at..end];
        if b.sha256
            .as_ref()
            .is_some_and(|want| sha256_hex(blob) != *want)
        {
            return Err(format!(
                "has a blob `{name}` that fails its checksum: {RECOVER}"
            ));
        }
        let blob = match header.format {
            1 => crate::upgrade::weights_from_v1(blob.to_vec()).map_err(|e| {
                format!(
                    "format-1 blob `{name}` could not be converted ({e}): retrain with this fewstep"
                )
            })?,
            _ => blob.to_vec(),
        };
        blobs.insert(name.clone(), blob);
        at = end;
    }
    if at != bytes.len() {
        return Err(format!(
            "has {} trailing bytes: {RECOVER}",
            bytes.len() - at
        ));
    }
    Ok(blobs)
}
