//! Bounded fuzzing of what fewstep reads: byte flips, truncations and insertions in checkpoints,
//! ONNX files and MNIST IDX files, and configs with random values. Every input must end in a
//! result or an `error:` message — never a panic or an abort — and no command may change a file
//! outside its own output folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::fixtures::{fewstep, ok, temp_dir};
use crate::student::TINY_TEACHER;

/// Wall-clock budget of the whole corpus (it stops after the case that crosses it).
const BUDGET: Duration = Duration::from_secs(45);

/// xorshift64*: a seeded generator, so a failing case can be replayed from its number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// One mutation: flip up to 16 bytes, truncate, insert random bytes, or blank a window.
fn mutate(r: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match r.below(4) {
        0 => {
            for _ in 0..1 + r.below(16) {
                let i = r.below(b.len());
                b[i] ^= 1 << r.below(8);
            }
        }
        1 => b.truncate(r.below(b.len())),
        2 => {
            let at = r.below(b.len());
            let junk: Vec<u8> = (0..1 + r.below(64)).map(|_| r.next() as u8).collect();
            b.splice(at..at, junk);
        }
        _ => {
            let at = r.below(b.len());
            let fill = *r.pick(&[0x00u8, 0xff]);
            let end = (at + 8).min(b.len());
            b[at..end].fill(fill);
        }
    }
    b
}

/// SHA-256 of every file under `dir` but those under `skip`.
fn snapshot(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.starts_with(skip) {
                continue;
            }
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(
                    p.clone(),
                    Sha256::digest(std::fs::read(&p).unwrap()).to_vec(),
                );
            }
        }
    }
    out
}

/// A random config: known keys with values from the edges of their types.
fn random_config(r: &mut Rng) -> String {
    let ints = ["0", "1", "3", "8", "-1", "65537", "9223372036854775807"];
    let floats = [
        "0.0", "-1.0", "1e-30", "0.5", "1.5", "1e308", "nan", "inf", "-inf",
    ];
    let keys = [
        ("model", "model_channels", &ints[..]),
        ("model", "num_blocks", &ints[..]),
        ("model", "norm_groups", &ints[..]),
        ("model", "attn_heads", &ints[..]),
        ("model", "dropout", &floats[..]),
        ("train", "batch_size", &ints[..]),
        ("train", "warmup_steps", &ints[..]),
        ("train", "lr", &floats[..]),
        ("train", "adam_beta1", &floats[..]),
        ("train", "adam_epsilon", &floats[..]),
        ("train", "grad_clip", &floats[..]),
        ("train", "ema_halflife_images", &floats[..]),
        ("train", "ema_rampup_ratio", &floats[..]),
        ("diffusion", "sigma_data", &floats[..]),
        ("diffusion", "p_uncond", &floats[..]),
        ("diffusion.grid", "sigma_min", &floats[..]),
        ("diffusion.grid", "sigma_max", &floats[..]),
        ("diffusion.grid", "rho", &floats[..]),
    ];
    let mut tables: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    tables.entry("model").or_default().extend([
        "model_channels = 8".to_string(),
        "channel_mult = [1, 2]".into(),
    ]);
    for _ in 0..1 + r.below(3) {
        let (table, key, values) = *r.pick(&keys);
        let lines = tables.entry(table).or_default();
        lines.retain(|l| !l.starts_with(&format!("{key} ")));
        lines.push(format!("{key} = {}", r.pick(values)));
    }
    tables
        .iter()
        .map(|(t, lines)| format!("[{t}]\n{}\n", lines.join("\n")))
        .collect()
}

fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

/// What the corpus found.
#[derive(Default, Debug)]
struct Tally {
    tried: usize,
    refused: usize,
    panics: Vec<String>,
    changed_outside: Vec<String>,
}

impl Tally {
    /// Run one case in `sandbox`; its output goes under `outs`.
    fn case(&mut self, what: &str, args: &[&str], sandbox: &Path, outs: &Path) {
        let before = snapshot(sandbox, outs);
        let o = fewstep(args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        self.tried += 1;
        let aborted = o.status.code().is_none_or(|c| c == 101) || stderr.contains("panicked");
        if aborted || (!o.status.success() && !stderr.contains("error:")) {
            self.panics
                .push(format!("{what} {args:?}: {:?} {stderr}", o.status));
        }
        self.refused += usize::from(!o.status.success());
        if snapshot(sandbox, outs) != before {
            self.changed_outside.push(format!("{what} {args:?}"));
        }
    }
}

#[test]
fn fuzzed_inputs_never_panic_and_never_touch_files_outside_the_output() {
    let sandbox = temp_dir("fuzz");
    let (inputs, outs) = (sandbox.join("inputs"), sandbox.join("outs"));
    std::fs::create_dir_all(&inputs).unwrap();
    let p = |q: &Path| q.display().to_string();
    // The originals: a tiny teacher, its ONNX export, 16 8×8 IDX images with labels.
    let teacher_cfg = sandbox.join("t.toml");
    std::fs::write(&teacher_cfg, TINY_TEACHER).unwrap();
    let run = sandbox.join("run");
    ok(fewstep(&[
        "--quiet",
        "teacher",
        "train",
        "--config",
        &p(&teacher_cfg),
        "--out",
        &p(&run),
    ]));
    let onnx = sandbox.join("model.onnx");
    ok(fewstep(&[
        "--quiet",
        "export",
        "onnx",
        "--model",
        &p(&run),
        "--out",
        &p(&onnx),
    ]));
    let mnist_cfg = sandbox.join("mnist.toml");
    std::fs::write(
        &mnist_cfg,
        format!("[data]\nsource = \"mnist\"\n{TINY_TEACHER}"),
    )
    .unwrap();
    let images = idx(0x0803, &[16, 8, 8], &[128u8; 16 * 64]);
    let labels = idx(0x0801, &[16], &(0..16).map(|i| i % 10).collect::<Vec<u8>>());
    let originals = [
        std::fs::read(run.join("checkpoint.fsk")).unwrap(),
        std::fs::read(&onnx).unwrap(),
    ];
    let (mut r, mut t, started) = (Rng(0x5eed), Tally::default(), Instant::now());
    let mut k = 0;
    while started.elapsed() < BUDGET {
        k += 1;
        let out = p(&outs.join(format!("case-{k}")));
        match k % 4 {
            0 => {
                let f = inputs.join(format!("ck-{k}.fsk"));
                std::fs::write(&f, mutate(&mut r, &originals[0])).unwrap();
                let args = [
                    "--quiet",
                    "sample",
                    "--model",
                    &p(&f),
                    "--n",
                    "2",
                    "--steps",
                    "2",
                ];
                t.case(
                    "checkpoint",
                    &[&args[..], &["--out", &out]].concat(),
                    &sandbox,
                    &outs,
                );
            }
            1 => {
                let f = inputs.join(format!("m-{k}.onnx"));
                std::fs::write(&f, mutate(&mut r, &originals[1])).unwrap();
                let args = [
                    "export",
                    "check",
                    &p(&f),
                    "--model",
                    &p(&run),
                    "--batch",
                    "2",
                ];
                t.case("onnx", &args, &sandbox, &outs);
            }
            2 => {
                let d = inputs.join(format!("idx-{k}"));
                std::fs::create_dir_all(&d).unwrap();
                let (im, lb) = match r.below(2) {
                    0 => (mutate(&mut r, &images), labels.clone()),
                    _ => (images.clone(), mutate(&mut r, &labels)),
                };
                std::fs::write(d.join("train-images-idx3-ubyte"), im).unwrap();
                std::fs::write(d.join("train-labels-idx1-ubyte"), lb).unwrap();
                let args = ["--quiet", "teacher", "train", "--config", &p(&mnist_cfg)];
                let more = ["--data", &p(&d), "--steps", "1", "--out", &out];
                t.case("idx", &[&args[..], &more[..]].concat(), &sandbox, &outs);
            }
            _ => {
                let f = inputs.join(format!("c-{k}.toml"));
                std::fs::write(&f, random_config(&mut r)).unwrap();
                let args = [
                    "--quiet",
                    "teacher",
                    "train",
                    "--config",
                    &p(&f),
                    "--steps",
                    "1",
                ];
                t.case(
                    "config",
                    &[&args[..], &["--out", &out]].concat(),
                    &sandbox,
                    &outs,
                );
            }
        }
    }
    println!(
        "fuzz: {} inputs in {:.0} s, {} refused with an error, {} panics, {} changed files outside the output",
        t.tried,
        started.elapsed().as_secs_f64(),
        t.refused,
        t.panics.len(),
        t.changed_outside.len()
    );
    assert!(t.panics.is_empty(), "{:#?}", t.panics);
    assert!(t.changed_outside.is_empty(), "{:#?}", t.changed_outside);
    assert!(t.tried >= 40 && t.refused > 0, "the corpus ran: {t:?}");
    std::fs::remove_dir_all(&sandbox).ok();
}
