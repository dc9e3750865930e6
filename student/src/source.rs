//! What every distillation stage starts from: a source run (teacher or student), its data,
//! and batches of noised training images with per-example w.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use teacher::checkpoint::{Checkpoint, ModelKind};
use teacher::config::TeacherConfig;
use teacher::data::{Dataset, Split};
use teacher::error::{Error, Result};
use teacher::rng::{Stream, normals, rng};

use crate::config::WRange;

/// A loaded source run.
pub struct Source {
    pub path: PathBuf,
    pub ck: Checkpoint,
    /// The teacher config at the root of the chain (data, σ grid, σ_data).
    pub teacher_cfg: TeacherConfig,
}

impl Source {
    /// Load `path` and check its kind is one of `allowed`.
    pub fn load(path: &Path, allowed: &[ModelKind], what: &str) -> Result<Self> {
        let ck = Checkpoint::load(path)?;
        if !allowed.contains(&ck.header.kind) {
            return Err(Error::Invalid(format!(
                "`{}` holds a {:?} model, but {what} needs {}",
                path.display(),
                ck.header.kind,
                allowed
                    .iter()
                    .map(|k| format!("{k:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        let teacher_cfg = Self::teacher_config_of(&ck)?;
        Ok(Self {
            path: path.to_path_buf(),
            ck,
            teacher_cfg,
        })
    }

    /// The root teacher's config of any checkpoint in a chain.
    pub fn teacher_config_of(ck: &Checkpoint) -> Result<TeacherConfig> {
        match ck
            .header
            .extra
            .get("teacher_config")
            .and_then(|v| v.as_str())
        {
            Some(t) => TeacherConfig::from_toml(t),
            None => TeacherConfig::from_toml(&ck.header.config),
        }
    }

    /// The training data of the chain's teacher; `--data DIR` overrides the recorded path.
    pub fn data(&self, data: Option<&Path>) -> Result<Dataset> {
        let recorded = self
            .ck
            .header
            .extra
            .get("data_path")
            .and_then(|v| v.as_str())
            .map(PathBuf::from);
        self.teacher_cfg
            .data
            .load(data.or(recorded.as_deref()), Split::Train)
    }

    /// Facts every student checkpoint carries forward: the root teacher's config and data path.
    pub fn chain_extra(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        let root = self
            .ck
            .header
            .extra
            .get("teacher_config")
            .cloned()
            .unwrap_or_else(|| self.ck.header.config.clone().into());
        m.insert("teacher_config".into(), root);
        if let Some(p) = self.ck.header.extra.get("data_path") {
            m.insert("data_path".into(), p.clone());
        }
        m
    }
}

/// One distillation batch: clean images y, their labels, unit noise, w per example, and the
/// RNG left over for stage-specific draws (σ or grid indices).
pub struct StudentBatch {
    pub y: Tensor<4>,
    pub class: Tensor<1, Int>,
    pub noise: Tensor<4>,
    pub w: Tensor<1>,
    pub rng: rand::rngs::StdRng,
}

/// Draw step `step`'s batch (a pure function of seed and step).
pub fn draw(
    data: &Dataset,
    batch: usize,
    w: &WRange,
    seed: u64,
    step: u64,
    device: &Device,
) -> StudentBatch {
    let mut r = rng(seed, Stream::TrainStep, step);
    let s = data.shape;
    let mut px = Vec::with_capacity(batch * data.image_len());
    let mut labels = Vec::with_capacity(batch);
    for _ in 0..batch {
        let i = r.random_range(0..data.len());
        px.extend_from_slice(data.image(i));
        labels.push(data.labels[i] as i64);
    }
    let ws: Vec<f32> = (0..batch)
        .map(|_| r.random_range(w.min..=w.max) as f32)
        .collect();
    let noise = normals(&mut r, batch * data.image_len());
    let dims = [batch, s.planes(), s.height, s.width];
    StudentBatch {
        y: Tensor::from_data(TensorData::new(px, dims), device),
        class: Tensor::from_data(TensorData::new(labels, [batch]), device),
        noise: Tensor::from_data(TensorData::new(noise, dims), device),
        w: Tensor::from_data(TensorData::new(ws, [batch]), device),
        rng: r,
    }
}

/// Class labels onto `device` (the student's autodiff device).
pub fn onto_int(t: Tensor<1, Int>, device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(t.into_data(), device)
}

/// Copy a tensor computed without autodiff onto `device` (the student's autodiff device), as
/// a constant target.
pub fn onto<const D: usize>(t: Tensor<D>, device: &Device) -> Tensor<D> {
    Tensor::from_data(t.into_data(), device)
}
