//! Reading format-1 checkpoints: their header named the kind with `ModelKind` plus a free-form
//! `extra` map and the network as a bare `unet`; format 2 carries a typed [`Recipe`], a
//! [`Lineage`] and the network enum. [`header_from_v1`] converts the header, and
//! [`weights_from_v1`] renames the weights (`unet.…` → `net.UNet.…`) so that a format-1 run
//! loads, samples and resumes unchanged; the next checkpoint it writes is format 2.

use std::path::PathBuf;

use burn::tensor::Bytes;
use serde::Deserialize;

use crate::checkpoint::{BlobEntry, Header, Lineage};
use crate::config::TeacherConfig;
use crate::edm::precond::Precond;
use crate::model::{ModelSpec, NetworkConfig};
use crate::recipe::{ModelKind, Recipe, WRange};
use crate::unet::{ImageShape, UNetConfig};

/// Weights path prefix of the U-Net in format 1, and in format 2 (field `net`, variant `UNet`).
const V1_PREFIX: &str = "unet.";
const V2_PREFIX: &str = "net.UNet.";

#[derive(Deserialize)]
struct SpecV1 {
    unet: UNetConfig,
    shape: ImageShape,
    num_classes: usize,
    sigma_data: f64,
    precond: Precond,
}

#[derive(Deserialize)]
struct HeaderV1 {
    kind: ModelKind,
    step: u64,
    seed: u64,
    spec: SpecV1,
    config: String,
    #[serde(default)]
    extra: serde_json::Map<String, serde_json::Value>,
    blobs: Vec<(String, u64)>,
}

/// A format-1 header as format 2; `Err` says which fact is missing or unreadable.
pub fn header_from_v1(json: &[u8]) -> Result<Header, String> {
    let h: HeaderV1 = serde_json::from_slice(json).map_err(|e| format!("format-1 header: {e}"))?;
    let get = |k: &str| h.extra.get(k).cloned().unwrap_or_default();
    let text = |k: &str| get(k).as_str().map(str::to_string);
    let teacher_config = text("teacher_config").unwrap_or_else(|| h.config.clone());
    let grid = TeacherConfig::from_toml(&teacher_config)
        .map_err(|e| format!("format-1 teacher config: {e}"))?
        .diffusion
        .grid;
    let w = || -> Result<WRange, String> {
        serde_json::from_value(get("w_range")).map_err(|_| "no `w_range` in `extra`".to_string())
    };
    let recipe = match h.kind {
        ModelKind::Teacher => Recipe::Teacher { grid },
        ModelKind::Guided => Recipe::Guided { grid, w: w()? },
        ModelKind::Consistency => Recipe::Consistency { grid, w: w()? },
        ModelKind::Progressive => Recipe::Progressive {
            steps: get("steps").as_u64().ok_or("no `steps` in `extra`")? as usize,
            sigmas: serde_json::from_value(get("sigmas"))
                .map_err(|_| "no `sigmas` in `extra`".to_string())?,
            w: w()?,
        },
    };
    Ok(Header {
        format: 1,
        recipe,
        step: h.step,
        seed: h.seed,
        spec: ModelSpec {
            net: NetworkConfig::UNet(h.spec.unet),
            shape: h.spec.shape,
            num_classes: h.spec.num_classes,
            sigma_data: h.spec.sigma_data,
            precond: h.spec.precond,
        },
        config: h.config,
        lineage: Lineage {
            teacher_config,
            data_path: text("data_path").map(PathBuf::from),
            source: text("source").map(PathBuf::from),
        },
        blobs: h
            .blobs
            .into_iter()
            .map(|(name, len)| BlobEntry {
                name,
                len,
                sha256: None,
            })
            .collect(),
    })
}

/// A format-1 weights blob (burnpack) with its tensors renamed to format 2's paths. Blobs that
/// are not weights (the optimizer state, keyed by parameter id) pass through.
pub fn weights_from_v1(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    rename(bytes, V1_PREFIX, V2_PREFIX)
}

/// Format 2's weights renamed back to format 1's paths (tests build format-1 files with it).
pub fn weights_to_v1(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    rename(bytes, V2_PREFIX, V1_PREFIX)
}

/// The burnpack `bytes` with every tensor path starting with `from` moved to `to`; bytes that
/// are not a burnpack, or hold no such path, come back as they are.
fn rename(bytes: Vec<u8>, from: &str, to: &str) -> Result<Vec<u8>, String> {
    let Ok(reader) = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.clone())) else {
        return Ok(bytes);
    };
    let mut tensors = reader.into_tensors().map_err(|e| e.to_string())?;
    if !tensors.iter().any(|t| t.name.starts_with(from)) {
        return Ok(bytes);
    }
    for t in &mut tensors {
        if let Some(rest) = t.name.strip_prefix(from) {
            t.name = format!("{to}{rest}");
        }
    }
    burn_pack::Writer::new(tensors)
        .into_bytes()
        .map(|b| b.to_vec())
        .map_err(|e| e.to_string())
}
