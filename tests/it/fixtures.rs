//! Closed-form fixtures and tiny configs shared by the test modules.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use teacher::config::TeacherConfig;

pub use teacher::testing::IdealGaussian;

pub fn device() -> Device {
    teacher::backend::test_device()
}

/// A network small enough that a training step takes milliseconds: 8 channels, 2 levels,
/// 1 block per level, attention at 4×4, batch 8 on the embedded digits.
pub fn tiny_config() -> TeacherConfig {
    TeacherConfig::from_toml(
        r#"
        [model]
        model_channels = 8
        channel_mult = [1, 2]
        num_blocks = 1
        attn_resolutions = [4]
        norm_groups = 4
        [train]
        steps = 10
        batch_size = 8
        lr = 2e-3
        warmup_steps = 2
        checkpoint_every = 5
        log_every = 1
        ema_halflife_images = 50.0
        "#,
    )
    .expect("the tiny config is valid")
}

/// Run the `fewstep` binary (NO_COLOR set).
pub fn fewstep(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fewstep"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("binary runs")
}

/// Stdout of a run that must succeed (its stderr in the panic otherwise).
pub fn ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr of a run that must fail.
pub fn err(o: std::process::Output) -> String {
    assert!(
        !o.status.success(),
        "expected a failure: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fewstep-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir is writable");
    d
}

/// ../shared/datasets/mnist relative to the workspace, if present.
pub fn mnist_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/mnist");
    d.join("train-labels-idx1-ubyte.gz").exists().then_some(d)
}

pub fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor")
}

/// Every float parameter's values, in traversal order (ParamIds are random per run, so raw
/// record bytes differ between runs even when the weights are identical).
pub fn param_values<M: burn::module::Module>(m: &M) -> Vec<Vec<f32>> {
    use burn::module::{ModuleVisitor, Param};
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(
                p.val()
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 params"),
            );
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

/// A tiny network (digits shape, 10 classes) with seeded noise added to every parameter, so the
/// zero-initialised output and extra-slot layers carry signal.
pub fn perturbed_model(precond: teacher::edm::precond::Precond) -> teacher::model::EdmModel {
    perturbed_model_of(
        precond,
        teacher::unet::ImageShape::image(1, 8, 8),
        tiny_unet(),
    )
}

/// The U-Net of [`tiny_config`].
pub fn tiny_unet() -> teacher::unet::UNetConfig {
    tiny_config()
        .model
        .unet()
        .expect("the tiny config's network is a U-Net")
        .clone()
}

/// [`perturbed_model`] for any example shape (clips too) and network config.
pub fn perturbed_model_of(
    precond: teacher::edm::precond::Precond,
    shape: teacher::unet::ImageShape,
    unet: teacher::unet::UNetConfig,
) -> teacher::model::EdmModel {
    use burn::module::Module;
    let d = device();
    d.seed(1);
    let spec = teacher::model::ModelSpec {
        net: teacher::model::NetworkConfig::UNet(unet),
        shape,
        num_classes: 10,
        sigma_data: 0.5,
        precond,
    };
    spec.init(&d)
        .map(&mut teacher::testing::Jitter::new(0, 9, 0.1))
}
