//! One self-describing checkpoint file per run state, written atomically (temp file + fsync +
//! rename), so a crash or a kill never leaves a half-written checkpoint in place.
//!
//! Layout: `FEWSTEP\x01` · u64 LE header length · JSON header · named blobs (burnpack bytes).
//! The header names what the run is with a typed [`Recipe`]; format-1 files (kind + free-form
//! `extra`) are converted on load (`crate::upgrade`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use crate::config::TeacherConfig;
use crate::error::{Error, Result};
use crate::model::{EdmModel, ModelSpec};
use crate::recipe::{ModelKind, Recipe};

const MAGIC: &[u8; 8] = b"FEWSTEP\x01";
/// Bumped when the header changes incompatibly (2: typed recipe, lineage, network enum).
pub const FORMAT_VERSION: u32 = 2;
/// File name of the latest checkpoint inside a run directory.
pub const LATEST: &str = "checkpoint.fsk";

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
    /// Names and byte lengths of the blobs, in file order.
    pub blobs: Vec<(String, u64)>,
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
            .map(|(k, v)| (k.clone(), v.len() as u64))
            .collect();
        let json = serde_json::to_vec(&header).expect("the header is plain data");
        let mut out =
            Vec::with_capacity(16 + json.len() + self.blobs.values().map(Vec::len).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        for blob in self.blobs.values() {
            out.extend_from_slice(blob);
        }
        out
    }

    pub fn save(&self, path: &Path) -> Result<()> {
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
        let bytes = std::fs::read(&file).map_err(Error::io("read checkpoint", &file))?;
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(bad("is not a fewstep checkpoint (bad magic bytes)".into()));
        }
        let hlen = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let hend = 16usize
            .checked_add(hlen)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                bad(format!(
                    "is truncated: header of {hlen} bytes but the file has {}",
                    bytes.len()
                ))
            })?;
        let header = parse_header(&bytes[16..hend]).map_err(bad)?;
        let mut blobs = BTreeMap::new();
        let mut at = hend;
        for (name, len) in &header.blobs {
            let end = at.checked_add(*len as usize).filter(|&e| e <= bytes.len()).ok_or_else(|| {
                bad(format!("is truncated inside blob `{name}`: the file is incomplete, restore it or retrain"))
            })?;
            let mut blob = bytes[at..end].to_vec();
            if header.format == 1 {
                blob = crate::upgrade::weights_from_v1(blob).map_err(|e| {
                    bad(format!("format-1 blob `{name}` could not be converted ({e}): retrain with this fewstep"))
                })?;
            }
            blobs.insert(name.clone(), blob);
            at = end;
        }
        if at != bytes.len() {
            return Err(bad(format!(
                "has {} trailing bytes: the file is corrupt",
                bytes.len() - at
            )));
        }
        Ok(Self { header, blobs })
    }

    pub fn blob(&self, name: &str) -> Result<&[u8]> {
        self.blobs
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::Checkpoint {
                path: PathBuf::from(format!("<{} checkpoint>", self.header.kind().name())),
                message: format!("has no `{name}` blob"),
            })
    }

    /// Load a named weights blob into a module of the checkpoint's structure.
    pub fn load_into<M: Module>(&self, name: &str, module: M) -> Result<M> {
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.blob(name)?.to_vec()))
            .map_err(|e| Error::Checkpoint {
                path: PathBuf::from(name),
                message: format!("weights blob is unreadable: {e}"),
            })?;
        module
            .try_load_record(record)
            .map_err(|e| Error::Checkpoint {
                path: PathBuf::from(name),
                message: format!("weights do not fit the network in the header: {e}"),
            })
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

/// The header of a file of any readable format, as format 2 (format 1 converted, its `format`
/// kept at 1 so the blobs are converted too).
fn parse_header(json: &[u8]) -> std::result::Result<Header, String> {
    #[derive(Deserialize)]
    struct Version {
        format: u32,
    }
    let v: Version = serde_json::from_slice(json).map_err(|e| {
        format!("has an unreadable header ({e}); it was written by another program or is corrupt")
    })?;
    match v.format {
        FORMAT_VERSION => serde_json::from_slice(json).map_err(|e| {
            format!("has an unreadable header ({e}); it was written by another fewstep version or is corrupt")
        }),
        1 => crate::upgrade::header_from_v1(json).map_err(|e| {
            format!("is a format-1 checkpoint that could not be converted ({e}): retrain it with this fewstep")
        }),
        f => Err(format!(
            "has format {f}, this fewstep reads {FORMAT_VERSION} (and converts 1): use the fewstep that wrote it"
        )),
    }
}
