//! The feature network behind FID/FVD, trained on a teacher's data (LeNet for images, the 3D-conv
//! clip network for clips): the pipeline's features stage and `fewstep eval train-features`.

use std::path::Path;

use anyhow::Result;
use burn::tensor::Device;
use eval::classifier::{ClassifierConfig, FeatureMeta, load_classifier, train_classifier};
use teacher::data::{DataConfig, Split};
use teacher::dist::World;

/// Train the feature network for `data` (`steps` optimizer steps; None: its default) into `out`,
/// unless `out` already holds one trained to this very config (`keep`: a run cut after the stage
/// finished); `data_dir` is `--data DIR`. Returns its config, its metadata, and whether it was kept.
/// Over the ranks of `world` the training is data parallel and rank 0 alone writes `out`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    data: &DataConfig,
    steps: Option<u64>,
    data_dir: Option<&Path>,
    out: &Path,
    keep: bool,
    quiet: bool,
    world: &World,
    device: &Device,
) -> Result<(ClassifierConfig, FeatureMeta, bool)> {
    let train = data.load(data_dir, Split::Train)?;
    let mut cfg = ClassifierConfig::for_shape(train.shape);
    if let Some(s) = steps {
        cfg.steps = s;
    }
    if keep
        && let Ok((_, m)) = load_classifier(out, device)
        && m.config == cfg
        && m.dataset == data.name()
    {
        return Ok((cfg, m, true));
    }
    let test = data.load(data_dir, Split::Test)?;
    let markers = [eval::classifier::WEIGHTS_FILE, eval::classifier::META_FILE];
    let _lock = match world.is_root() {
        true => Some(teacher::lock::FolderLock::acquire(out, &markers)?),
        false => None,
    };
    let meta = train_classifier(&cfg, &data.name(), &train, &test, out, quiet, world, device)?;
    Ok((cfg, meta, false))
}

/// The pipeline's features stage; returns its summary line.
pub fn train_for(
    data: &DataConfig,
    steps: u64,
    data_dir: Option<&Path>,
    out: &Path,
    quiet: bool,
    device: &Device,
) -> Result<String> {
    let world = World::SINGLE;
    let (_, m, kept) = train(
        data,
        Some(steps),
        data_dir,
        out,
        true,
        quiet,
        &world,
        device,
    )?;
    let order = m
        .order_accuracy
        .map(|o| format!(", frame-order accuracy {:.2}%", 100.0 * o))
        .unwrap_or_default();
    Ok(match kept {
        true => format!(
            "kept, feature network test accuracy {:.2}%",
            100.0 * m.test_accuracy
        ),
        false => format!(
            "feature network test accuracy {:.2}%{order}",
            100.0 * m.test_accuracy
        ),
    })
}

/// What `fewstep eval train-features` says of a network it trained on `data` into `out`.
pub fn describe(
    cfg: &ClassifierConfig,
    meta: &FeatureMeta,
    data: &DataConfig,
    out: &Path,
) -> String {
    let net = if meta.shape.is_clip() {
        "3D-conv clip net"
    } else {
        "LeNet"
    };
    let order = meta
        .order_accuracy
        .map(|o| {
            format!(
                "frame order (true vs shuffled) test accuracy {:.2}%\n",
                100.0 * o
            )
        })
        .unwrap_or_default();
    format!(
        "{order}feature network ({net}, {}-d features) trained on {} in {:.0} s: test accuracy {:.2}% on {} examples; saved in {}",
        cfg.feature_dim,
        data.name(),
        meta.train_seconds,
        100.0 * meta.test_accuracy,
        meta.test_examples,
        out.display()
    )
}
