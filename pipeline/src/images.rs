//! Image sets by name: a folder of samples, or a dataset split (`mnist-test`, `digits-train:500`,
//! `run:DIR:test` — the split of the data a run was trained on).

use std::path::Path;

use anyhow::{Result, bail};
use teacher::checkpoint::Checkpoint;
use teacher::data::{DataConfig, DataSource, Split};
use teacher::runs::resolve_model;
use teacher::unet::ImageShape;

/// Images from a sample folder or a dataset split (`mnist-test`, `digits-train:500`, …), with
/// the classes they belong to (asked-for classes for samples, labels for data).
pub fn image_source(
    spec: &str,
    data: Option<&Path>,
    channels: usize,
) -> Result<(Vec<f32>, Vec<usize>, ImageShape)> {
    let (name, limit) = match spec.rsplit_once(':') {
        Some((n, l)) if l.chars().all(|c| c.is_ascii_digit()) => (n, Some(l.parse::<usize>()?)),
        _ => (spec, None),
    };
    let split = |source, split| -> Result<_> {
        let d = DataConfig {
            source,
            ..Default::default()
        }
        .load(data, split)?;
        let d = limit.map(|n| d.take(n)).unwrap_or(d);
        Ok((
            d.images.clone(),
            d.labels.iter().map(|&l| l as usize).collect(),
            d.shape,
        ))
    };
    if let Some(rest) = name.strip_prefix("run:") {
        // `run:DIR:test` — the split of the data the model in DIR was trained on (its config's
        // `[data]`, clips included).
        let (dir, which) = rest.rsplit_once(':').unwrap_or((rest, "test"));
        let which = match which {
            "train" => Split::Train,
            "test" => Split::Test,
            other => bail!("`{spec}`: the split after the run is `train` or `test`, not `{other}`"),
        };
        let ck = Checkpoint::load(&resolve_model(Path::new(dir), 4)?)?;
        let cfg = ck.header.teacher_config()?;
        let recorded = ck.header.lineage.data_path.as_deref();
        let d = cfg.data.load(data.or(recorded), which)?;
        let d = limit.map(|n| d.take(n)).unwrap_or(d);
        let classes = d.labels.iter().map(|&l| l as usize).collect();
        return Ok((d.images, classes, d.shape));
    }
    match name {
        "digits-train" => split(DataSource::Digits, Split::Train),
        "digits-test" => split(DataSource::Digits, Split::Test),
        "mnist-train" => split(DataSource::Mnist, Split::Train),
        "mnist-test" => split(DataSource::Mnist, Split::Test),
        dir => {
            let path = Path::new(dir);
            if !path.is_dir() {
                bail!(
                    "`{spec}`: not a folder of samples nor one of digits-train, digits-test, mnist-train, mnist-test, run:DIR:train, run:DIR:test (optionally `:N`)"
                );
            }
            let mut set = eval::samples::load_samples(path, channels)?;
            if let Some(n) = limit {
                let len = set.shape.len();
                set.images.truncate(n * len);
                set.classes.truncate(n);
            }
            Ok((set.images, set.classes, set.shape))
        }
    }
}
