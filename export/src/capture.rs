//! Recording D(x; σ, class, w) = c_skip·x + c_out·F(c_in·x; c_noise, class, w) (Karras et al.
//! 2022, Eq. 7) — `EdmModel::forward`, preconditioning included — as a burn_ir graph with burn's
//! capture backend: tensors on `Device::capture()` record operations instead of running them.

use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::backend::capture::{CaptureBackend, TensorId};
use burn::backend::ir::GraphIr;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use teacher::checkpoint::ModelKind;
use teacher::model::EdmModel;
use teacher::unet::ImageShape;

use crate::error::{ExportError, Result};
use crate::graph::ElemType;

/// One runtime input of an exported model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The noisy image x, `[N, C, H, W]` float.
    X,
    /// The noise level σ per example, `[N]` float.
    Sigma,
    /// The class label per example, `[N]` int64; `num_classes` is the learned null class.
    Class,
    /// The guidance weight w per example, `[N]` float (students only: it is their extra input).
    W,
}

impl Input {
    /// The graph input's name.
    pub fn name(self) -> &'static str {
        match self {
            Input::X => "x",
            Input::Sigma => "sigma",
            Input::Class => "class",
            Input::W => "w",
        }
    }

    /// The graph input's element type.
    pub fn elem(self) -> ElemType {
        match self {
            Input::Class => ElemType::I64,
            _ => ElemType::F32,
        }
    }

    /// Dims for a batch of `n` images of `shape`.
    pub fn dims(self, n: usize, shape: ImageShape) -> Vec<usize> {
        match self {
            Input::X => vec![n, shape.channels, shape.height, shape.width],
            _ => vec![n],
        }
    }
}

/// Name of the graph's only output, the denoised image `[N, C, H, W]`.
pub const OUTPUT: &str = "denoised";

/// The inputs of a model of `kind`: teachers take (x, σ, class); every student also takes w.
pub fn inputs_of(kind: ModelKind) -> Vec<Input> {
    match kind {
        ModelKind::Teacher => vec![Input::X, Input::Sigma, Input::Class],
        ModelKind::Guided | ModelKind::Progressive | ModelKind::Consistency => {
            vec![Input::X, Input::Sigma, Input::Class, Input::W]
        }
    }
}

/// One recorded forward pass at a fixed batch size.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Operations in execution order; inputs and outputs declared.
    pub graph: GraphIr,
    /// Concrete values: module parameters and tensors created inside the forward pass.
    pub values: BTreeMap<TensorId, TensorData>,
    /// The graph inputs, in order, with their tensor ids.
    pub inputs: Vec<(Input, TensorId)>,
    /// The denoised image.
    pub output: TensorId,
    /// Parameter paths (`unet.enc.0.blocks.1.conv1.weight`) of the recorded parameters.
    pub param_names: HashMap<TensorId, String>,
    pub batch: usize,
}

/// Collects the module path of every parameter on the capture device.
#[derive(Default)]
struct ParamNames {
    path: Vec<String>,
    names: HashMap<TensorId, String>,
}

impl ParamNames {
    fn record(&mut self, id: Option<TensorId>) {
        if let Some(id) = id {
            self.names.entry(id).or_insert_with(|| self.path.join("."));
        }
    }
}

/// The capture-graph id of a tensor on the capture device (None elsewhere).
macro_rules! capture_id {
    ($name:ident, $kind:ty) => {
        fn $name<const D: usize>(t: &Tensor<D, $kind>) -> Option<TensorId> {
            t.clone()
                .try_into_primitive::<CaptureBackend>()
                .ok()
                .map(|p| p.id())
        }
    };
}
capture_id!(id_of, burn::tensor::Float);
capture_id!(int_id_of, Int);
capture_id!(bool_id_of, Bool);

impl ModuleVisitor for ParamNames {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.record(id_of(&param.val()));
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        self.record(int_id_of(&param.val()));
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
        self.record(bool_id_of(&param.val()));
    }
}

/// What the capture closure reports besides the graph: inputs, output, parameter names.
type Boundary = (Vec<(Input, TensorId)>, TensorId, HashMap<TensorId, String>);

/// Placeholder input values: only shapes and dtypes reach the graph (σ = 1 keeps ln σ finite).
fn sample_input(input: Input, n: usize, shape: ImageShape) -> TensorData {
    let dims = input.dims(n, shape);
    let len = dims.iter().product();
    match input {
        Input::X => TensorData::new(vec![0.0f32; len], dims),
        Input::Sigma | Input::W => TensorData::new(vec![1.0f32; len], dims),
        Input::Class => TensorData::new(vec![0i64; len], dims),
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the forward pass panicked".into())
}

/// Record `model.forward` on a batch of `batch` examples with the given `inputs`.
pub fn capture_forward(model: &EdmModel, inputs: &[Input], batch: usize) -> Result<Captured> {
    let shape = model.unet_shape();
    let device = Device::capture();
    let mut meta: Option<Result<Boundary>> = None;
    let fail = |m: &str| ExportError::Capture { message: m.into() };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        device.capture_scope(|scope| {
            let m = model.clone().to_device(&device);
            let mut names = ParamNames::default();
            m.visit(&mut names);
            let mut x = None;
            let mut sigma = None;
            let mut class = None;
            let mut w = None;
            let mut ids = Vec::new();
            for &input in inputs {
                let data = sample_input(input, batch, shape);
                let id = match input {
                    Input::X => {
                        let t = Tensor::<4>::from_data(data, &device);
                        let id = id_of(&t);
                        x = Some(t);
                        id
                    }
                    Input::Sigma | Input::W => {
                        let t = Tensor::<1>::from_data(data, &device);
                        let id = id_of(&t);
                        if input == Input::Sigma {
                            sigma = Some(t);
                        } else {
                            w = Some(t);
                        }
                        id
                    }
                    Input::Class => {
                        let t = Tensor::<1, Int>::from_data(data, &device);
                        let id = int_id_of(&t);
                        class = Some(t);
                        id
                    }
                };
                match id {
                    Some(id) => ids.push((input, id)),
                    None => {
                        meta = Some(Err(fail("an input did not land on the capture device")));
                        return scope.complete([], []);
                    }
                }
            }
            let (Some(x), Some(sigma), Some(class)) = (x, sigma, class) else {
                meta = Some(Err(fail("x, sigma and class are required inputs")));
                return scope.complete([], []);
            };
            let out = m.forward(x, sigma, class, w);
            let Some(out_id) = id_of(&out) else {
                meta = Some(Err(fail("the output did not land on the capture device")));
                return scope.complete([], []);
            };
            let input_ids: Vec<TensorId> = ids.iter().map(|(_, id)| *id).collect();
            meta = Some(Ok((ids, out_id, names.names)));
            scope.complete(input_ids, [out_id])
        })
    }));
    let captured = match outcome {
        Ok(r) => r.map_err(|e| fail(&e.to_string()))?,
        Err(p) => return Err(fail(&panic_message(p))),
    };
    let (inputs, output, param_names) =
        meta.ok_or_else(|| fail("the capture scope did not run"))??;
    let mut graph = captured.graph;
    // Initialisations are where values enter the graph; they become ONNX initializers (or
    // graph inputs), not nodes.
    graph
        .operations
        .retain(|op| !matches!(op, burn::backend::ir::OperationIr::Init(_)));
    Ok(Captured {
        graph,
        values: captured.values,
        inputs,
        output,
        param_names,
        batch,
    })
}
