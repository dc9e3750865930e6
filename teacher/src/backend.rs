//! Run-time choice of compute device; which ones exist depends on cargo features.

use burn::tensor::Device;
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
            DeviceChoice::TchCuda => Ok(Device::libtorch_cuda(0)),
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
