//! Checkpoints: bit-exact round trip, atomic writes, and clear errors for bad files.

use burn::module::Module;
use teacher::checkpoint::{Checkpoint, FORMAT_VERSION, Header, Lineage, module_bytes};
use teacher::edm::precond::Precond;
use teacher::model::{ModelSpec, NetworkConfig};
use teacher::recipe::Recipe;
use teacher::unet::ImageShape;

use crate::fixtures::{device, fewstep, ok, temp_dir, tiny_config, tiny_unet};

fn spec() -> ModelSpec {
    ModelSpec {
        net: NetworkConfig::UNet(tiny_unet()),
        shape: ImageShape {
            channels: 1,
            height: 8,
            width: 8,
            frames: 1,
        },
        num_classes: 10,
        sigma_data: 0.5,
        precond: Precond::Edm,
    }
}

fn header() -> Header {
    Header {
        format: FORMAT_VERSION,
        recipe: Recipe::Teacher {
            grid: tiny_config().diffusion.grid,
        },
        step: 7,
        seed: 3,
        spec: spec(),
        config: tiny_config().to_toml(),
        lineage: Lineage {
            teacher_config: tiny_config().to_toml(),
            data_path: None,
            source: None,
        },
        blobs: vec![],
    }
}

#[test]
fn round_trip_is_bit_exact() {
    let d = device();
    d.seed(11);
    let model = spec().init(&d);
    let bytes = module_bytes(model.clone());
    let dir = temp_dir("ckpt");
    let path = dir.join("c.fsk");
    Checkpoint::new(header())
        .with_blob("model", bytes.clone())
        .save(&path)
        .unwrap();
    let back = Checkpoint::load(&path).unwrap();
    assert_eq!(back.header.step, 7);
    assert_eq!(back.header.spec, spec());
    let loaded = back.load_into("model", spec().init(&d)).unwrap();
    // Every parameter's bytes are identical after save → load.
    assert_eq!(module_bytes(loaded.clone()), bytes);
    let a = model.into_record();
    let b = loaded.into_record();
    assert_eq!(a.len(), b.len());
    // No temp file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn bad_checkpoint_files_give_clear_errors() {
    let dir = temp_dir("badckpt");
    let missing = Checkpoint::load(&dir.join("none.fsk"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("does not exist"), "{missing}");
    std::fs::write(dir.join("junk.fsk"), b"definitely not a checkpoint").unwrap();
    let junk = Checkpoint::load(&dir.join("junk.fsk"))
        .unwrap_err()
        .to_string();
    assert!(junk.contains("not a fewstep checkpoint"), "{junk}");
    let good = Checkpoint::new(header())
        .with_blob("model", vec![1, 2, 3, 4])
        .to_bytes();
    std::fs::write(dir.join("cut.fsk"), &good[..good.len() - 2]).unwrap();
    let cut = Checkpoint::load(&dir.join("cut.fsk"))
        .unwrap_err()
        .to_string();
    assert!(cut.contains("truncated") && cut.contains("model"), "{cut}");
    // Weights that do not fit the network.
    let d = device();
    let other = ModelSpec {
        net: NetworkConfig::UNet(teacher::unet::UNetConfig {
            model_channels: 16,
            ..tiny_unet()
        }),
        ..spec()
    };
    let ck = Checkpoint::new(header()).with_blob("model", module_bytes(other.init(&d)));
    let e = ck
        .load_into("model", spec().init(&d))
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not fit"), "{e}");
}

/// The format-1 files in tests/data/format1 were written by fewstep before typed recipes (see
/// the README there): this version converts them on load and samples them bit-identically.
#[test]
fn format_one_checkpoints_convert_sample_identically_and_resume() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format1");
    let teacher = Checkpoint::load(&data.join("teacher.fsk")).unwrap();
    assert_eq!(
        teacher.header.recipe,
        Recipe::Teacher {
            grid: teacher::edm::sigma_grid::SigmaGrid::default()
        }
    );
    let prog = Checkpoint::load(&data.join("progressive-4.fsk")).unwrap();
    let Recipe::Progressive { steps, sigmas, w } = &prog.header.recipe else {
        panic!("a progressive round: {:?}", prog.header.recipe)
    };
    assert_eq!((*steps, sigmas.len(), sigmas[4]), (4, 5, 0.0));
    assert_eq!((w.min, w.max), (0.0, 4.0));
    assert!(prog.header.lineage.source.is_some());
    // The same PNGs as the writing version's `fewstep sample --n 4 --steps 4` (w = 2, seed 0).
    let dir = temp_dir("format1");
    for (file, samples) in [
        ("teacher.fsk", "samples-teacher"),
        ("progressive-4.fsk", "samples-progressive-4"),
    ] {
        let out = dir.join(samples);
        let model = data.join(file).display().to_string();
        let o = out.display().to_string();
        let args = [
            "--quiet", "sample", "--model", &model, "--n", "4", "--steps", "4",
        ];
        ok(fewstep(&[&args[..], &["--out", &o]].concat()));
        for i in 0..4 {
            let name = format!("0000{i}_c{i}.png");
            let want = std::fs::read(data.join(samples).join(&name)).unwrap();
            assert_eq!(
                std::fs::read(out.join(&name)).unwrap(),
                want,
                "{file}: {name}"
            );
        }
    }
    // A format-1 run resumes, and its next checkpoint is format 2.
    let run = dir.join("resume");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::copy(data.join("teacher.fsk"), run.join("checkpoint.fsk")).unwrap();
    std::fs::write(run.join("config.toml"), &teacher.header.config).unwrap();
    let r = run.display().to_string();
    let args = [
        "--quiet", "teacher", "train", "--out", &r, "--resume", "--steps", "5",
    ];
    let said = ok(fewstep(&args));
    assert!(said.contains("to step 5 (from 3)"), "{said}");
    let bytes = std::fs::read(run.join("checkpoint.fsk")).unwrap();
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[16..16 + len]).unwrap();
    assert_eq!(header["format"], FORMAT_VERSION);
    assert_eq!(header["recipe"]["kind"], "teacher");
}
