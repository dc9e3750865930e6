//! The TensorRT builder behind `fewstep export engine` (cargo feature `tensorrt`): TensorRT-RTX
//! through `trtx` 0.9.1, its libraries opened at run time from the paths found by
//! `engine::find_libraries` (nothing is linked at build time).

use std::path::Path;
use std::sync::{Arc, Mutex};

use trtx::builder::{MemoryPoolType, network_flags};
use trtx::optimization_profile::OptimizationProfile;
use trtx::{Builder, LogHandler, Logger, OnnxParser, Runtime, Severity};
use trtx_sys::{Dims64, OptProfileSelector};

/// One input's profile: name and min/opt/max shapes.
pub type ShapeProfile = (String, [Vec<i64>; 3]);

/// What the builder made and reported.
pub struct Built {
    pub plan: Vec<u8>,
    /// `(MAJOR * 100 + MINOR) * 100 + PATCH` of the headers trtx was generated from.
    pub header_version: u32,
    /// Layers of the network the ONNX parser built (`INetworkDefinition::getNbLayers`).
    pub network_layers: i32,
    /// The profile as the builder's `IOptimizationProfile` reports it back after setting it.
    pub profile: Vec<ShapeProfile>,
    /// Deserializing the plan on this machine: engine layer count, or why it failed.
    pub deserialized: std::result::Result<i32, String>,
    /// Warnings and errors TensorRT logged.
    pub log: Vec<String>,
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl LogHandler for Collect {
    fn log(&self, severity: Severity, message: &str) {
        let keep = matches!(
            severity,
            Severity::InternalError | Severity::Error | Severity::Warning
        );
        if keep {
            self.0
                .lock()
                .unwrap()
                .push(format!("{severity:?}: {message}"));
        }
    }
}

fn dims(d: &Dims64) -> Vec<i64> {
    d.d[..d.nbDims.clamp(0, 8) as usize].to_vec()
}

fn err(what: &str, e: impl std::fmt::Display, log: &Collect) -> String {
    let log = log.0.lock().unwrap();
    if log.is_empty() {
        format!("{what}: {e}")
    } else {
        format!("{what}: {e}; TensorRT said: {}", log.join(" | "))
    }
}

/// Parse `onnx` with TensorRT-RTX's ONNX parser, add one optimisation profile and build a
/// serialized engine; then try to deserialize it (which needs a CUDA driver and GPU).
pub fn build(
    builder_lib: &Path,
    parser_lib: &Path,
    onnx: &[u8],
    profile: &[ShapeProfile],
    workspace_bytes: usize,
) -> std::result::Result<Built, String> {
    let collect = Collect::default();
    trtx::dynamically_load_tensorrt(Some(builder_lib))
        .map_err(|e| err(&format!("loading `{}`", builder_lib.display()), e, &collect))?;
    trtx::dynamically_load_tensorrt_onnxparser(Some(parser_lib))
        .map_err(|e| err(&format!("loading `{}`", parser_lib.display()), e, &collect))?;
    let logger = Logger::new(collect.clone()).map_err(|e| err("TensorRT logger", e, &collect))?;
    let mut builder = Builder::new(&logger).map_err(|e| err("createInferBuilder", e, &collect))?;
    let network = builder
        .create_network(network_flags::EXPLICIT_BATCH)
        .map_err(|e| err("createNetworkV2", e, &collect))?;
    let mut parser =
        OnnxParser::new(network, &logger).map_err(|e| err("createNvOnnxParser", e, &collect))?;
    parser
        .parse(onnx)
        .map_err(|e| err("TensorRT's ONNX parser rejected the file", e, &collect))?;

    let mut config = builder
        .create_config()
        .map_err(|e| err("createBuilderConfig", e, &collect))?;
    config.set_memory_pool_limit(MemoryPoolType::kWORKSPACE, workspace_bytes);
    let mut prof = builder
        .creata_optimization_profile()
        .map_err(|e| err("createOptimizationProfile", e, &collect))?;
    let reported = set_profile(&mut prof, profile, &collect)?;
    config
        .add_optimization_profile(&mut prof)
        .map_err(|e| err("addOptimizationProfile", e, &collect))?;

    let network = parser.network_mut();
    let network_layers = network.nb_layers();
    let plan = builder
        .build_serialized_network(network, &mut config)
        .map_err(|e| err("buildSerializedNetwork", e, &collect))?
        .as_ref()
        .to_vec();
    // SAFETY: a plain C function of the trtx-sys logger bridge, no arguments.
    #[allow(unsafe_code)]
    let header_version = unsafe { trtx_sys::get_tensorrt_version() };

    // Only what TensorRT logs from here on explains a failed deserialization.
    let mut log = std::mem::take(&mut *collect.0.lock().unwrap());
    let deserialized = deserialize(&logger, &plan, &collect);
    log.extend(collect.0.lock().unwrap().drain(..));
    Ok(Built {
        plan,
        header_version,
        network_layers,
        profile: reported,
        deserialized,
        log,
    })
}

const SELECTORS: [OptProfileSelector; 3] = [
    OptProfileSelector::kMIN,
    OptProfileSelector::kOPT,
    OptProfileSelector::kMAX,
];

/// Set every input's min/opt/max shape on `prof`; returns the profile as TensorRT reports it.
fn set_profile(
    prof: &mut OptimizationProfile<'_>,
    profile: &[ShapeProfile],
    collect: &Collect,
) -> std::result::Result<Vec<ShapeProfile>, String> {
    for (name, shapes) in profile {
        for (sel, shape) in SELECTORS.iter().zip(shapes) {
            prof.set_dimensions(name, *sel, &Dims64::from_slice(shape))
                .map_err(|e| err(&format!("profile shape {shape:?} for `{name}`"), e, collect))?;
        }
    }
    if !prof.is_valid() {
        let why = "IOptimizationProfile::isValid() is false";
        return Err(err("optimisation profile", why, collect));
    }
    Ok(profile
        .iter()
        .map(|(name, _)| {
            (
                name.clone(),
                SELECTORS.map(|sel| dims(&prof.dimensions(name, sel))),
            )
        })
        .collect())
}

/// Deserialize `plan` on this machine (needs a CUDA driver and GPU): engine layers, or why not.
fn deserialize(
    logger: &Logger,
    plan: &[u8],
    collect: &Collect,
) -> std::result::Result<i32, String> {
    match Runtime::new(logger) {
        Ok(mut runtime) => match runtime.deserialize_cuda_engine(plan) {
            Ok(engine) => engine.nb_layers().map_err(|e| e.to_string()),
            Err(e) => Err(err("deserializeCudaEngine", e, collect)),
        },
        Err(e) => Err(err("createInferRuntime", e, collect)),
    }
}
