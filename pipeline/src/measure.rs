//! The one-off measurements behind `fewstep eval fid|classify|latency`: a sample set (a folder,
//! a dataset split, or a model sampled on the spot) scored against a reference, classified by
//! a feature network, or timed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::Device;
use eval::fid::FeatureSpace;
use eval::metrics::{IntervalConfig, Metrics, Reference, score};
use teacher::checkpoint::Checkpoint;
use teacher::runs::resolve_model;
use teacher::sample::{SampleSpec, sample_checkpoint};
use teacher::unet::ImageShape;

use crate::images::image_source;

/// What to score: a set of images by name, or a model sampled now.
#[derive(Debug, Clone)]
pub enum SampleSet {
    /// A sample folder or dataset split (see `crate::images`).
    Named(String),
    /// `n` samples of a model at `steps` steps, guidance `w`, seed `seed`.
    Model {
        run: PathBuf,
        steps: usize,
        n: usize,
        guidance: f64,
        seed: u64,
    },
}

impl SampleSet {
    /// The set's images, classes and shape.
    fn load(
        &self,
        data: Option<&std::path::Path>,
        channels: usize,
        device: &Device,
    ) -> Result<(Vec<f32>, Vec<usize>, ImageShape)> {
        match self {
            SampleSet::Named(spec) => image_source(spec, data, channels),
            SampleSet::Model {
                run,
                steps,
                n,
                guidance,
                seed,
            } => {
                let ck = Checkpoint::load(&resolve_model(run, *steps)?)?;
                let spec = SampleSpec::eval(*n, *steps, *guidance, *seed, 250);
                let (s, _) = sample_checkpoint(&ck, &spec, device)?;
                Ok((s.images, s.classes, teacher::sample::output_shape(&ck)?))
            }
        }
    }

    /// In words, for the JSON output.
    pub fn describe(&self) -> String {
        match self {
            SampleSet::Named(s) => s.clone(),
            SampleSet::Model {
                run,
                steps,
                guidance,
                seed,
                ..
            } => format!(
                "{} at {steps} steps, w = {guidance}, seed {seed}",
                run.display()
            ),
        }
    }
}

/// What `fewstep eval fid` found: the metrics and what they were measured on.
#[derive(Debug, Clone)]
pub struct FidOutcome {
    pub metrics: Metrics,
    /// "FID" or "FVD".
    pub metric: &'static str,
    /// The feature space's name.
    pub features: String,
    pub k: usize,
    pub samples: String,
    pub reference: String,
}

impl FidOutcome {
    pub fn json(&self) -> serde_json::Value {
        let m = &self.metrics;
        serde_json::json!({
            "fid": m.fid, "fid_ci95": m.fid_ci95, "kid": m.kid, "metric": self.metric, "n_samples": m.n_samples,
            "n_reference": m.n_reference, "features": self.features,
            "class_accuracy": m.class_accuracy, "precision": m.precision, "recall": m.recall,
            "k": self.k, "samples": self.samples, "reference": self.reference,
        })
    }

    pub fn text(&self) -> String {
        let m = &self.metrics;
        let ci = m
            .fid_ci95
            .map_or(String::new(), |c| format!(", 95% interval {c}"));
        let mut t = format!(
            "{} ({}) = {:.4}{ci}  [{} samples vs {} reference]\n",
            self.metric, self.features, m.fid, m.n_samples, m.n_reference
        );
        if let Some(k) = &m.kid {
            t += &format!(
                "KID = {:.3e}, 95% interval [{:.3e}, {:.3e}] (jackknife); subsets: {:.3e} ± {:.3e} ({} of {})\n",
                k.kid, k.ci95.lo, k.ci95.hi, k.subset_mean, k.subset_std, k.subsets, k.subset_size
            );
        }
        if let Some(a) = m.class_accuracy {
            t += &format!("class accuracy {:.2}%\n", 100.0 * a);
        }
        t + &format!(
            "precision {:.4}, recall {:.4} (k = {})",
            m.precision, m.recall, self.k
        )
    }
}

/// `samples` scored against `reference` in the feature space `features`: FID (FVD on clips),
/// class accuracy, precision/recall at `k`.
pub fn fid(
    samples: &SampleSet,
    reference: &str,
    features: &std::path::Path,
    data: Option<&std::path::Path>,
    k: usize,
    intervals: &IntervalConfig,
    device: &Device,
) -> Result<FidOutcome> {
    let mut space = FeatureSpace::load(features, device)?;
    let channels = space.shape().map(|s| s.channels).unwrap_or(1);
    let (ref_imgs, _, ref_shape) = image_source(reference, data, channels)?;
    if ref_shape.is_clip() && matches!(space, FeatureSpace::Onnx(_)) {
        // A user's ONNX network on clips takes the I3D contract.
        space = FeatureSpace::load_for(features, Some(ref_shape), device)?;
    }
    let (imgs, classes, shape) = samples.load(data, channels, device)?;
    if shape != ref_shape || space.shape().is_some_and(|s| s != shape) {
        bail!(
            "samples ({}×{}, {} frame(s)), reference ({}×{}, {} frame(s)) and features must share one example shape",
            shape.width,
            shape.height,
            shape.frames,
            ref_shape.width,
            ref_shape.height,
            ref_shape.frames
        );
    }
    let r = Reference::new(&space, &ref_imgs, ref_shape, intervals, device)?;
    let set = (imgs.as_slice(), classes.as_slice(), shape);
    let metrics = score(&space, &r, set, k, &samples.describe(), device)?.metrics;
    Ok(FidOutcome {
        metrics,
        metric: space.metric(),
        features: space.name(),
        k,
        samples: samples.describe(),
        reference: reference.to_string(),
    })
}

/// Median, min and max seconds of `reps` sampling runs of one batch (after a warm-up run), and
/// the NFE per image.
pub struct Latency {
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub reps: usize,
    pub nfe: usize,
    pub kind: teacher::recipe::ModelKind,
    pub steps: usize,
    pub batch: usize,
}

impl Latency {
    pub fn images_per_s(&self) -> f64 {
        self.batch as f64 / self.median_s
    }

    /// As JSON, naming the model file `model`.
    pub fn json(&self, model: &std::path::Path) -> serde_json::Value {
        serde_json::json!({
            "model": model.display().to_string(), "kind": self.kind, "steps": self.steps,
            "nfe": self.nfe, "batch": self.batch, "median_s": self.median_s, "min_s": self.min_s,
            "max_s": self.max_s, "images_per_s": self.images_per_s(), "reps": self.reps,
        })
    }

    pub fn text(&self) -> String {
        format!(
            "{} {} steps (NFE {}), batch {}: median {:.1} ms (min {:.1}, max {:.1} over {} runs) → {:.1} img/s",
            self.kind.name(),
            self.steps,
            self.nfe,
            self.batch,
            self.median_s * 1e3,
            self.min_s * 1e3,
            self.max_s * 1e3,
            self.reps,
            self.images_per_s()
        )
    }
}

/// Time sampling one batch of `spec.n` images from `ck` as `spec` says (its `first` and `seed`
/// do not matter for the time).
pub fn latency(
    ck: &Checkpoint,
    spec: &SampleSpec,
    reps: usize,
    device: &Device,
) -> Result<Latency> {
    let batch = spec.n;
    if batch == 0 {
        bail!("`--batch 0`: time at least one image per batch");
    }
    let spec = SampleSpec {
        batch_size: batch,
        ..spec.clone()
    };
    let (mut times, mut nfe) = (Vec::new(), 0);
    for rep in 0..=reps.max(1) {
        let t = Instant::now();
        let (out, _) = sample_checkpoint(ck, &spec, device)?;
        nfe = out.nfe;
        if rep > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(Latency {
        median_s: times[times.len() / 2],
        min_s: times[0],
        max_s: times[times.len() - 1],
        reps: times.len(),
        nfe,
        kind: ck.header.kind(),
        steps: spec.steps,
        batch,
    })
}

/// What `fewstep eval classify` found.
pub struct Classified {
    pub correct: usize,
    pub n: usize,
    pub meta: eval::classifier::FeatureMeta,
}

impl Classified {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.n as f64
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "class_accuracy": self.accuracy(), "n_samples": self.n,
            "features": format!("LeNet ({})", self.meta.dataset),
            "classifier_test_accuracy": self.meta.test_accuracy,
        })
    }

    pub fn text(&self) -> String {
        format!(
            "class accuracy {:.2}% ({}/{}) under the LeNet classifier trained on {} (its own test accuracy {:.2}%)",
            100.0 * self.accuracy(),
            self.correct,
            self.n,
            self.meta.dataset,
            100.0 * self.meta.test_accuracy
        )
    }
}

/// Class accuracy of the sample folder `samples` under the feature network in `features`.
pub fn classify(
    samples: &std::path::Path,
    features: &std::path::Path,
    device: &Device,
) -> Result<Classified> {
    let (model, meta) = eval::classifier::load_classifier(features, device)?;
    let set = eval::samples::load_samples(samples, meta.shape.channels)?;
    if set.shape != meta.shape {
        bail!(
            "samples in `{}` are {}×{} but the feature network `{}` expects {}×{}: use features trained on the same dataset",
            samples.display(),
            set.shape.width,
            set.shape.height,
            features.display(),
            meta.shape.width,
            meta.shape.height
        );
    }
    let pred = eval::classifier::predict(&model, &set.images, set.shape, device);
    let correct = pred
        .iter()
        .zip(&set.classes)
        .filter(|(p, c)| p == c)
        .count();
    Ok(Classified {
        correct,
        n: set.classes.len(),
        meta,
    })
}
