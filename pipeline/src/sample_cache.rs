//! Resumable sample sets for reports. A set (one model file, step count, solver, w and seed) is
//! sampled in chunks that go to disk as each finishes, so a report killed mid-way — a session's
//! end — resumes at the next missing chunk, and a report asking for fewer images reuses the
//! first ones: image i's noise and class depend only on (seed, i) (`teacher::sample`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use teacher::checkpoint::{Checkpoint, sha256_hex, write_atomic};
use teacher::edm::solver::Sampler;
use teacher::latent::source::DecoderChoice;
use teacher::lock::FolderLock;
use teacher::npy::{NpyData, read_npy, write_npy};
use teacher::sample::{ClassChoice, SampleSpec, sample_checkpoint};

/// The file that marks a folder as a fewstep sample cache.
const MARKER: &str = "sample-cache.json";
/// What each set's folder records besides its chunks.
const SET_FILE: &str = "set.json";

/// One sample set: which model, and how it is sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct SetKey {
    /// Readable prefix of the set's folder, e.g. "teacher-050-euler-w1".
    pub label: String,
    pub steps: usize,
    /// None: the model's own sampler.
    pub sampler: Option<Sampler>,
    pub guidance: f64,
    pub seed: u64,
    /// A model of latents: the decoder other than its chain's (a distilled one, its steps).
    pub decoder: Option<DecoderChoice>,
}

/// What a set's folder records: what made it, and the sampling time of every chunk.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SetRecord {
    /// sha256 of the checkpoint file the chunks were sampled from.
    model_sha256: String,
    nfe: usize,
    sampler: String,
    /// Seconds of each chunk, by first image index.
    seconds: BTreeMap<usize, f64>,
    /// Images of each chunk, by first image index.
    len: BTreeMap<usize, usize>,
}

/// `n` images of a set, their classes, NFE, sampler in words and sampling seconds.
#[derive(Debug, Clone)]
pub struct CachedSet {
    pub images: Vec<f32>,
    pub classes: Vec<usize>,
    pub nfe: usize,
    pub sampler: String,
    /// Sum of the chunks' sampling time (chunks may come from several sessions).
    pub seconds: f64,
    /// Chunks sampled by this call (0: all came from disk).
    pub new_chunks: usize,
}

/// A locked cache folder (one writer).
pub struct SampleCache {
    dir: PathBuf,
    /// Other reports' caches, read only: a set found there (same content key) is copied in
    /// instead of sampled again.
    reuse: Vec<PathBuf>,
    _lock: FolderLock,
    /// Chunks sampled and chunks read by this process.
    counts: std::cell::Cell<(usize, usize)>,
}

impl SampleCache {
    pub fn open(dir: &Path) -> Result<Self> {
        let lock = FolderLock::acquire(dir, &[MARKER])?;
        let marker = dir.join(MARKER);
        if !marker.exists() {
            let text = r#"{"format": "fewstep-sample-cache", "version": 1}"#;
            write_atomic(&marker, text.as_bytes())?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            reuse: Vec::new(),
            _lock: lock,
            counts: Default::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Read sets from these other caches before sampling them (each must be a fewstep sample
    /// cache; they are never written).
    pub fn reusing(mut self, caches: &[PathBuf]) -> Result<Self> {
        let mut found = Vec::new();
        for c in caches {
            if !c.exists() {
                // Reuse only saves time: a cache not made yet means sampling the sets here.
                eprintln!(
                    "note: sample cache `{}` does not exist (yet); its sets are sampled here",
                    c.display()
                );
                continue;
            }
            if !c.join(MARKER).is_file() {
                bail!(
                    "`{}` is not a fewstep sample cache (no {MARKER}): name a report's sample \
                     folder (a pipeline run's `report-samples`), or drop it from eval.reuse_samples",
                    c.display()
                );
            }
            found.push(c.clone());
        }
        self.reuse = found;
        Ok(self)
    }

    /// Copy the set folder `name` from the first reused cache that holds it sampled from the
    /// checkpoint with hash `sha`; whether one did.
    fn adopt(&self, name: &Path, sha: &str) -> Result<bool> {
        let Some(leaf) = name.file_name() else {
            return Ok(false);
        };
        for c in &self.reuse {
            let src = c.join(leaf);
            // The record as read now and exactly the chunks it lists (the other cache may be
            // sampling more meanwhile: later chunks are sampled here instead).
            let rec = match load_record(&src, sha) {
                Ok(rec) if !rec.len.is_empty() => rec,
                _ => continue,
            };
            let tmp = self.dir.join(format!(".adopt-{}", leaf.to_string_lossy()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp)?;
            for &first in rec.len.keys() {
                let chunk = chunk_path(&src, first);
                let to = chunk_path(&tmp, first);
                std::fs::copy(&chunk, &to)
                    .with_context(|| format!("copying `{}`", chunk.display()))?;
            }
            let text = serde_json::to_string_pretty(&rec).expect("plain data");
            write_atomic(&tmp.join(SET_FILE), text.as_bytes())?;
            std::fs::rename(&tmp, name)
                .with_context(|| format!("cannot move the copied set to `{}`", name.display()))?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Chunks this process sampled.
    pub fn new_chunks(&self) -> usize {
        self.counts.get().0
    }

    /// Chunks this process read from disk.
    pub fn cached_chunks(&self) -> usize {
        self.counts.get().1
    }

    /// The first `n` images of `key` from the model `ck`: chunks on disk are read, missing ones
    /// sampled (`batch` images each) and saved before the next starts.
    pub fn get(
        &self,
        ck: &Checkpoint,
        key: &SetKey,
        n: usize,
        batch: usize,
        device: &Device,
    ) -> Result<CachedSet> {
        let bytes = std::fs::read(&ck.path)
            .with_context(|| format!("cannot read `{}`", ck.path.display()))?;
        let sha = sha256_hex(&bytes);
        let folder = self.set_folder(key, &sha, chain_decoder(ck)?)?;
        if !folder.exists() {
            self.adopt(&folder, &sha)?;
        }
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create `{}`", folder.display()))?;
        let mut rec = load_record(&folder, &sha)?;
        let k = ck.header.spec.num_classes;
        let (mut images, mut seconds, mut new_chunks) = (Vec::new(), 0.0, 0);
        let mut i = 0;
        while i < n {
            let len = match rec.len.get(&i) {
                Some(&l) => l,
                None => {
                    let next = rec.len.range(i..).next().map_or(usize::MAX, |(&f, _)| f);
                    let want = batch.max(1).min(n - i).min(next - i);
                    sample_chunk(ck, key, i, want, device, &folder, &mut rec)?;
                    new_chunks += 1;
                    want
                }
            };
            let take = len.min(n - i);
            images.extend(read_chunk(&folder, i, len, take, ck)?);
            seconds += rec.seconds.get(&i).copied().unwrap_or(0.0) * take as f64 / len as f64;
            i += len;
        }
        let (a, b) = self.counts.get();
        let read = (n.div_ceil(batch.max(1))).saturating_sub(new_chunks);
        self.counts.set((a + new_chunks, b + read));
        let classes = (0..n).map(|i| ClassChoice::All.class_of(i, k)).collect();
        Ok(CachedSet {
            images,
            classes,
            nfe: rec.nfe,
            sampler: rec.sampler.clone(),
            seconds,
            new_chunks,
        })
    }

    /// The folder of `key`'s set from the checkpoint with hash `sha` (a decoder other than the
    /// chain's adds its own checkpoint's hash and steps).
    fn set_folder(
        &self,
        key: &SetKey,
        sha: &str,
        chain_decoder: Option<PathBuf>,
    ) -> Result<PathBuf> {
        let mut id = format!(
            "{sha}|{}|{:?}|{}|{}",
            key.steps, key.sampler, key.guidance, key.seed
        );
        if let Some(d) = &key.decoder {
            let decoder_sha = match &d.run {
                Some(run) => file_sha(&run.join(teacher::checkpoint::LATEST))?,
                None => String::new(),
            };
            id += &format!("|decoder {decoder_sha}|{:?}", d.steps);
        } else if let Some(chain) = chain_decoder {
            // A model of latents decoded by its chain's decoder: keyed by that decoder's weights
            // too, so a retrained autoencoder never serves the old decoder's images.
            id += &format!("|chain decoder {}", file_sha(&chain)?);
        }
        let safe: String = key
            .label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(self
            .dir
            .join(format!("{safe}-{}", &sha256_hex(id.as_bytes())[..12])))
    }
}

/// sha256 of a file's bytes.
fn file_sha(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(sha256_hex(&bytes))
}

/// The checkpoint file of the decoder a model of latents decodes with by default (its chain's
/// `[data.latents]` decoder, else the stage-1 run's); None for models of images.
fn chain_decoder(ck: &Checkpoint) -> Result<Option<PathBuf>> {
    let cfg = ck.header.teacher_config()?;
    if cfg.data.source != teacher::data::DataSource::Latents {
        return Ok(None);
    }
    let l = cfg.data.latent_source()?;
    let run = l.decoder.as_ref().unwrap_or(&l.autoencoder);
    Ok(Some(run.join(teacher::checkpoint::LATEST)))
}

fn load_record(folder: &Path, sha: &str) -> Result<SetRecord> {
    let path = folder.join(SET_FILE);
    if !path.exists() {
        return Ok(SetRecord {
            model_sha256: sha.to_string(),
            ..SetRecord::default()
        });
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let rec: SetRecord = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is damaged: delete its folder to sample the set again",
            path.display()
        )
    })?;
    if rec.model_sha256 != sha {
        bail!(
            "`{}` was sampled from another checkpoint: delete its folder to sample it again",
            folder.display()
        );
    }
    Ok(rec)
}

fn chunk_path(folder: &Path, first: usize) -> PathBuf {
    folder.join(format!("chunk-{first:07}.npy"))
}

/// Sample images `first..first+n` of `key`, save them, then record the chunk.
fn sample_chunk(
    ck: &Checkpoint,
    key: &SetKey,
    first: usize,
    n: usize,
    device: &Device,
    folder: &Path,
    rec: &mut SetRecord,
) -> Result<()> {
    let mut spec = SampleSpec::eval(n, key.steps, key.guidance, key.seed, n);
    spec.first = first;
    spec.sampler = key.sampler;
    spec.decoder = key.decoder.clone();
    let t = Instant::now();
    let (s, plan) = sample_checkpoint(ck, &spec, device)?;
    let secs = t.elapsed().as_secs_f64();
    let len = teacher::sample::output_shape(ck)?.len();
    write_npy(
        &chunk_path(folder, first),
        &[n, len],
        &NpyData::F32(s.images),
    )?;
    rec.nfe = s.nfe;
    rec.sampler = plan.describe();
    rec.seconds.insert(first, secs);
    rec.len.insert(first, n);
    let text = serde_json::to_string_pretty(rec).expect("plain data");
    write_atomic(&folder.join(SET_FILE), text.as_bytes())?;
    Ok(())
}

/// The first `take` of the `len` images of the chunk at `first`.
fn read_chunk(
    folder: &Path,
    first: usize,
    len: usize,
    take: usize,
    ck: &Checkpoint,
) -> Result<Vec<f32>> {
    let path = chunk_path(folder, first);
    let per = teacher::sample::output_shape(ck)?.len();
    let damaged = || {
        anyhow::anyhow!(
            "`{}` is damaged or missing: delete `{}` to sample the set again",
            path.display(),
            folder.display()
        )
    };
    let (shape, data) = read_npy(&path).map_err(|_| damaged())?;
    match data {
        NpyData::F32(v) if shape == [len, per] => Ok(v[..take * per].to_vec()),
        _ => Err(damaged()),
    }
}
