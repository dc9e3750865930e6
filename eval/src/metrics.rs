//! Scoring a set of generated images against a reference in one feature space: FID (pytorch-fid
//! semantics) with a bootstrap 95% interval, KID (Bińkowski et al. 2018) with its jackknife
//! interval, class accuracy under the feature classifier, and k-NN precision/recall.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use teacher::unet::ImageShape;

use crate::error::Result;
use crate::fid::{FeatureSpace, reference_stats};
use crate::frechet::{FeatureStats, frechet_distance};
use crate::interval::{Bootstrap, Interval, basic_interval_nonneg, sd_interval};
use crate::kid::{Kid, KidConfig, kid};
use crate::prdc::precision_recall;

/// At most this many points of each set enter precision/recall (O(n²) distances).
pub const PR_CAP: usize = 5000;

/// How the intervals of one report are drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntervalConfig {
    /// Bootstrap resamples behind every FID interval (the reference is resampled with each;
    /// 200 puts the 2.5% quantile between the 5th and 6th replicate).
    pub bootstrap: usize,
    /// Seed of the resampling (each sample set derives its own from it and its label).
    pub seed: u64,
    /// KID's subsets and jackknife blocks.
    pub kid: KidConfig,
}

impl Default for IntervalConfig {
    fn default() -> Self {
        Self {
            bootstrap: 200,
            seed: 0,
            kid: KidConfig::default(),
        }
    }
}

/// Reference statistics, features and bootstrap resamples, computed once per report.
pub struct Reference {
    pub stats: FeatureStats,
    pub features: Vec<f32>,
    pub dim: usize,
    pub bootstrap: Bootstrap,
    pub intervals: IntervalConfig,
}

impl Reference {
    pub fn new(
        space: &FeatureSpace,
        images: &[f32],
        shape: ImageShape,
        intervals: &IntervalConfig,
        device: &Device,
    ) -> Result<Self> {
        let (stats, features, dim) = reference_stats(space, images, shape, device)?;
        let bootstrap = Bootstrap::new(&features, dim, intervals.bootstrap, intervals.seed)?;
        Ok(Self {
            stats,
            features,
            dim,
            bootstrap,
            intervals: intervals.clone(),
        })
    }
}

/// The numbers of one sample set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub fid: f64,
    /// 95% interval of the FID at this n: ± 1.96 bootstrap standard deviations (samples and
    /// reference resampled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid_ci95: Option<Interval>,
    /// 95% basic-bootstrap interval of the population FID (n → ∞: the O(d/n) bias removed to
    /// first order; far from `fid` when that bias dominates, as the floor shows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid_population_ci95: Option<Interval>,
    /// KID on the same features (unbiased MMD², cubic polynomial kernel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<Kid>,
    /// Share of samples the classifier assigns to the class asked for (LeNet features only).
    pub class_accuracy: Option<f64>,
    pub precision: f64,
    pub recall: f64,
    pub n_samples: usize,
    pub n_reference: usize,
}

/// A scored set: its metrics, its features (for paired and nearest-neighbour distances) and its
/// bootstrap FID replicates (for ratios against other sets scored on the same reference).
pub struct Scored {
    pub metrics: Metrics,
    pub features: Vec<f32>,
    pub dim: usize,
    pub fid_replicates: Vec<f64>,
}

/// A seed per sample set: the report's resampling seed mixed with the set's label, so sets are
/// resampled independently of each other yet reproducibly.
pub fn set_seed(base: u64, label: &str) -> u64 {
    let digest = teacher::checkpoint::sha256_hex(format!("{base}:{label}").as_bytes());
    u64::from_str_radix(&digest[..16], 16).unwrap_or(base)
}

/// Score `images` (asked-for `classes`) against `reference`; `label` names the set (its
/// resampling seed derives from it).
pub fn score(
    space: &FeatureSpace,
    reference: &Reference,
    set: (&[f32], &[usize], ImageShape),
    k: usize,
    label: &str,
    device: &Device,
) -> Result<Scored> {
    let (images, classes, shape) = set;
    let (feats, dim) = space.features(images, shape, device)?;
    let n = feats.len() / dim;
    let stats = FeatureStats::from_features(&feats, n, dim)?;
    let fid = frechet_distance(&stats, &reference.stats)?;
    let seed = set_seed(reference.intervals.seed, label);
    let fid_replicates = reference.bootstrap.fid_replicates(&feats, dim, seed)?;
    let kid = kid(
        &feats,
        &reference.features,
        dim,
        &reference.intervals.kid,
        seed,
    )?;
    let cap = |f: &[f32]| f[..f.len().min(PR_CAP * dim)].to_vec();
    let (precision, recall) = precision_recall(&cap(&reference.features), &cap(&feats), dim, k);
    let class_accuracy = match space {
        FeatureSpace::Trained { model, .. } => {
            let pred = crate::classifier::predict(model, images, shape, device);
            Some(pred.iter().zip(classes).filter(|(p, c)| p == c).count() as f64 / n.max(1) as f64)
        }
        FeatureSpace::Pixels | FeatureSpace::Onnx(_) => None,
    };
    let metrics = Metrics {
        fid,
        fid_ci95: Some(sd_interval(fid, &fid_replicates)),
        fid_population_ci95: Some(basic_interval_nonneg(fid, &fid_replicates)),
        kid: Some(kid),
        class_accuracy,
        precision,
        recall,
        n_samples: n,
        n_reference: reference.stats.n,
    };
    Ok(Scored {
        metrics,
        features: feats,
        dim,
        fid_replicates,
    })
}
