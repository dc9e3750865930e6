//! Scoring a set of generated images against a reference in one feature space: FID (pytorch-fid
//! semantics), class accuracy under the feature classifier, and k-NN precision/recall.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use teacher::unet::ImageShape;

use crate::error::Result;
use crate::fid::{FeatureSpace, reference_stats};
use crate::frechet::{FeatureStats, frechet_distance};
use crate::prdc::precision_recall;

/// At most this many points of each set enter precision/recall (O(n²) distances).
pub const PR_CAP: usize = 5000;

/// Reference statistics and features, computed once per report.
pub struct Reference {
    pub stats: FeatureStats,
    pub features: Vec<f32>,
    pub dim: usize,
}

impl Reference {
    pub fn new(
        space: &FeatureSpace,
        images: &[f32],
        shape: ImageShape,
        device: &Device,
    ) -> Result<Self> {
        let (stats, features, dim) = reference_stats(space, images, shape, device)?;
        Ok(Self {
            stats,
            features,
            dim,
        })
    }
}

/// The numbers of one sample set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub fid: f64,
    /// Share of samples the classifier assigns to the class asked for (LeNet features only).
    pub class_accuracy: Option<f64>,
    pub precision: f64,
    pub recall: f64,
    pub n_samples: usize,
    pub n_reference: usize,
}

/// Score `images` (asked-for `classes`) against `reference`.
pub fn score(
    space: &FeatureSpace,
    reference: &Reference,
    images: &[f32],
    classes: &[usize],
    shape: ImageShape,
    k: usize,
    device: &Device,
) -> Result<Metrics> {
    let (feats, dim) = space.features(images, shape, device)?;
    let n = feats.len() / dim;
    let stats = FeatureStats::from_features(&feats, n, dim)?;
    let fid = frechet_distance(&stats, &reference.stats)?;
    let cap = |f: &[f32]| f[..f.len().min(PR_CAP * dim)].to_vec();
    let (precision, recall) = precision_recall(&cap(&reference.features), &cap(&feats), dim, k);
    let class_accuracy = match space {
        FeatureSpace::Trained { model, .. } => {
            let pred = crate::classifier::predict(model, images, shape, device);
            Some(pred.iter().zip(classes).filter(|(p, c)| p == c).count() as f64 / n.max(1) as f64)
        }
        FeatureSpace::Pixels | FeatureSpace::Onnx(_) => None,
    };
    Ok(Metrics {
        fid,
        class_accuracy,
        precision,
        recall,
        n_samples: n,
        n_reference: reference.stats.n,
    })
}
