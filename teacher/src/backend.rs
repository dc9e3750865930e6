//! Run-time choice of compute device; which ones exist depends on cargo features.

use burn::tensor::{Device, FloatDType};
use serde::{Deserialize, Serialize};

/// The `--device` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceChoice {
    /// burn's pure-Rust `flex` CPU backend (always built).
    #[default]
    Cpu,
    /// libtorch on CPU (`--features tch`).
    Tch,
    /// libtorch on CUDA GPU 0 (`--features tch`).
    TchCuda,
    /// wgpu on the default adapter, e.g. Vulkan (`--features wgpu`).
    Wgpu,
    /// CubeCL CUDA on GPU 0 (`--features cuda`).
    Cuda,
}

impl DeviceChoice {
    /// The device, or an error naming the cargo feature the binary lacks.
    pub fn device(self) -> Result<Device, String> {
        let missing = |f: &str| {
            Err(format!(
                "this fewstep was built without `--features {f}`; rebuild with it to use `--device {}`",
                self.name()
            ))
        };
        match self {
            DeviceChoice::Cpu => Ok(Device::flex()),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            DeviceChoice::Tch => Ok(Device::libtorch()),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            DeviceChoice::TchCuda => {
                // libtorch without a usable GPU would fail at the first tensor, deep inside a
                // command; say it here, with what to check.
                if !tch::Cuda::is_available() {
                    return Err(
                        "`--device tch-cuda`: libtorch sees no CUDA GPU (torch.cuda.device_count() \
                         = 0). Check `nvidia-smi` (driver), CUDA_VISIBLE_DEVICES, and that the \
                         libtorch on LD_LIBRARY_PATH is a CUDA build (a `+cpu` wheel has no \
                         libtorch_cuda.so); or use `--device tch` for libtorch on the CPU"
                            .into(),
                    );
                }
                Ok(Device::libtorch_cuda(0))
            }
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda => Ok(Device::cuda(0)),
            #[allow(unreachable_patterns)]
            DeviceChoice::Tch | DeviceChoice::TchCuda => missing("tch"),
            #[allow(unreachable_patterns)]
            DeviceChoice::Wgpu => missing("wgpu"),
            #[allow(unreachable_patterns)]
            DeviceChoice::Cuda => missing("cuda"),
        }
    }

    /// The choice named `name` (`cpu`, `tch`, `tch-cuda`, `wgpu`, `cuda`).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            DeviceChoice::Cpu,
            DeviceChoice::Tch,
            DeviceChoice::TchCuda,
            DeviceChoice::Wgpu,
            DeviceChoice::Cuda,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Tch => "tch",
            DeviceChoice::TchCuda => "tch-cuda",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Cuda => "cuda",
        }
    }
}

/// Make bfloat16 the default float type of `device` (every tensor and parameter created on it
/// afterwards): burn's per-device dtype setting. Must run before the first tensor is made.
pub fn use_bf16(device: &mut Device, choice: DeviceChoice) -> Result<(), String> {
    if !device.supports_dtype(FloatDType::BF16) {
        return Err(format!(
            "`--device {}` cannot compute in bf16: use `--dtype fp32` (bf16 needs e.g. \
             `--device tch-cuda` on a GPU with bf16 units, or `--device tch`)",
            choice.name()
        ));
    }
    device.configure(FloatDType::BF16).map_err(|e| {
        format!(
            "`--dtype bf16` on `--device {}`: {e:?}; use `--dtype fp32`",
            choice.name()
        )
    })
}

/// The variable that runs the library tests on another backend, e.g. `FEWSTEP_TEST_DEVICE=tch`
/// with a `--features tch` build (scripts/tch.sh test sets it); unset: `cpu` (flex).
pub const TEST_DEVICE_ENV: &str = "FEWSTEP_TEST_DEVICE";

/// The device the tests run on ([`TEST_DEVICE_ENV`]). Tests only: a bad value panics with the fix.
pub fn test_device() -> Device {
    let name = std::env::var(TEST_DEVICE_ENV).unwrap_or_else(|_| "cpu".into());
    let choice = DeviceChoice::from_name(&name).unwrap_or_else(|| {
        panic!("{TEST_DEVICE_ENV}=`{name}`: use cpu, tch, tch-cuda, wgpu or cuda")
    });
    choice
        .device()
        .unwrap_or_else(|e| panic!("{TEST_DEVICE_ENV}={name}: {e}"))
}
