//! Tiny models saved as real checkpoints, with every parameter perturbed so that the
//! zero-initialised layers (output conv, attention projection, w embedding) carry signal.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use teacher::checkpoint::{Checkpoint, FORMAT_VERSION, Header, Lineage, module_bytes};
use teacher::edm::precond::Precond;
use teacher::edm::sigma_grid::SigmaGrid;
use teacher::model::{ModelSpec, NetworkConfig};
use teacher::recipe::{ModelKind, Recipe, WRange};
use teacher::unet::{ImageShape, UNetConfig};

pub fn device() -> Device {
    teacher::backend::test_device()
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fewstep-export-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir is writable");
    d
}

/// A U-Net with every block type in a few thousand parameters: two levels (down- and
/// upsampling, a channel-changing skip conv), attention at 4×4 and in the middle, the class
/// embedding with its null class.
fn tiny_spec(attn_heads: usize, shape: ImageShape, precond: Precond) -> ModelSpec {
    ModelSpec {
        net: NetworkConfig::UNet(UNetConfig {
            model_channels: 8,
            channel_mult: vec![1, 2],
            num_blocks: 1,
            attn_resolutions: vec![4],
            attn_heads,
            norm_groups: 4,
            ..UNetConfig::default()
        }),
        shape,
        num_classes: 10,
        sigma_data: 0.5,
        precond,
    }
}

/// A teacher on 3-channel 7×7 images (padded to 8×8 and cropped back) with two-head attention.
pub fn teacher_spec() -> ModelSpec {
    let shape = ImageShape {
        channels: 3,
        height: 7,
        width: 7,
        frames: 1,
    };
    tiny_spec(2, shape, Precond::Edm)
}

/// A w-conditioned student on 1-channel 8×8 digits.
pub fn student_spec(precond: Precond) -> ModelSpec {
    let shape = ImageShape {
        channels: 1,
        height: 8,
        width: 8,
        frames: 1,
    };
    tiny_spec(1, shape, precond)
}

/// The recipe of a test model of `kind` on the default Karras grid, students trained on
/// w ∈ [0, 4]; a progressive student takes 2 steps on σ = (80, 1.2, 0).
pub fn recipe(kind: ModelKind) -> Recipe {
    let grid = SigmaGrid::default();
    let w = WRange { min: 0.0, max: 4.0 };
    match kind {
        ModelKind::Teacher => Recipe::Teacher { grid },
        ModelKind::Guided => Recipe::Guided { grid, w },
        ModelKind::Consistency => Recipe::Consistency { grid, w },
        ModelKind::Progressive => Recipe::Progressive {
            steps: 2,
            sigmas: vec![80.0, 1.2, 0.0],
            w,
        },
    }
}

/// Write a checkpoint of a perturbed `spec` network to `dir/checkpoint.fsk`; returns `dir`.
pub fn save_model(dir: &Path, kind: ModelKind, spec: ModelSpec, seed: u64) -> PathBuf {
    let d = device();
    d.seed(seed);
    let model = spec
        .init(&d)
        .map(&mut teacher::testing::Jitter::new(seed * 1000, 7, 0.2));
    let header = Header {
        format: FORMAT_VERSION,
        recipe: recipe(kind),
        step: 1,
        seed,
        spec,
        config: String::new(),
        lineage: Lineage {
            teacher_config: String::new(),
            data_path: None,
            source: None,
        },
        blobs: Vec::new(),
    };
    Checkpoint::new(header)
        .with_blob("model", module_bytes(model))
        .save(&dir.join(teacher::checkpoint::LATEST))
        .expect("temp dir is writable");
    dir.to_path_buf()
}
