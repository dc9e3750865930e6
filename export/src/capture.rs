//! Recording D(x; σ, class, w) = c_skip·x + c_out·F(c_in·x; c_noise, class, w) (Karras et al.
//! 2022, Eq. 7) — `EdmModel::forward`, preconditioning included — as a burn_ir graph with burn's
//! capture backend: tensors on `Device::capture()` record operations instead of running them.

use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::backend::capture::{CaptureBackend, TensorId};
use burn::backend::ir::GraphIr;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use teacher::latent::source::Decoding;
use teacher::model::EdmModel;
use teacher::recipe::{ModelKind, SamplerPlan, run_plan};
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
    /// Unrolled samplers: the initial unit Gaussian noise, `[N, C, H, W]` float (x_0 = σ_0·noise).
    Noise,
    /// Unrolled multistep consistency: the unit noise z_k (k ≥ 1) re-noising step k.
    Renoise(u8),
    /// Unrolled samplers of latents: the channel's unit noise ε of z₀ = ẑ + σ₀·ε (latent-shaped).
    LatentNoise,
    /// Unrolled samplers of latents: the decoder sampler's unit noise k (k = 0: its initial
    /// noise), image-shaped.
    DecoderNoise(u8),
}

/// Graph-input names of the re-noising noises z_1 … z_15 (index 0 unused).
const RENOISE_NAMES: [&str; 16] = [
    "renoise_0",
    "renoise_1",
    "renoise_2",
    "renoise_3",
    "renoise_4",
    "renoise_5",
    "renoise_6",
    "renoise_7",
    "renoise_8",
    "renoise_9",
    "renoise_10",
    "renoise_11",
    "renoise_12",
    "renoise_13",
    "renoise_14",
    "renoise_15",
];

/// Graph-input names of the decoder's unit noises (index 0: its initial noise).
const DECODER_NOISE_NAMES: [&str; 16] = [
    "decoder_noise_0",
    "decoder_noise_1",
    "decoder_noise_2",
    "decoder_noise_3",
    "decoder_noise_4",
    "decoder_noise_5",
    "decoder_noise_6",
    "decoder_noise_7",
    "decoder_noise_8",
    "decoder_noise_9",
    "decoder_noise_10",
    "decoder_noise_11",
    "decoder_noise_12",
    "decoder_noise_13",
    "decoder_noise_14",
    "decoder_noise_15",
];

/// Most steps an unrolled export takes (one re-noising input per step after the first).
pub const MAX_UNROLL_STEPS: usize = RENOISE_NAMES.len();

/// Most unit noises an unrolled decoder takes (its initial noise and re-noisings).
pub const MAX_DECODER_NOISES: usize = DECODER_NOISE_NAMES.len();

/// The shapes of an exported graph's tensors: the model's examples (latents, for a model of
/// latents) and the images its sampler ends in (a nested model's full resolution, a latent
/// chain's decoded images).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shapes {
    pub example: ImageShape,
    pub image: ImageShape,
}

impl Shapes {
    /// A model's own shapes (no decoder).
    pub fn of(model: &EdmModel) -> Self {
        Self::decoded(model, None)
    }

    /// A model's shapes with, for a model of latents, the images `decoding` makes of them.
    pub fn decoded(model: &EdmModel, decoding: Option<&Decoding>) -> Self {
        Self {
            example: model.example_shape(),
            image: decoding.map_or(model.image_shape(), Decoding::image_shape),
        }
    }

    /// `[n, C, H, W]` of `n` examples.
    pub fn example_dims(&self, n: usize) -> Vec<usize> {
        dims_of(self.example, n)
    }

    /// `[n, C, H, W]` of `n` images.
    pub fn image_dims(&self, n: usize) -> Vec<usize> {
        dims_of(self.image, n)
    }
}

fn dims_of(s: ImageShape, n: usize) -> Vec<usize> {
    vec![n, s.planes(), s.height, s.width]
}

impl Input {
    /// The graph input's name.
    pub fn name(self) -> &'static str {
        match self {
            Input::X => "x",
            Input::Sigma => "sigma",
            Input::Class => "class",
            Input::W => "w",
            Input::Noise => "noise",
            Input::Renoise(k) => RENOISE_NAMES[usize::from(k) % RENOISE_NAMES.len()],
            Input::LatentNoise => "latent_noise",
            Input::DecoderNoise(k) => {
                DECODER_NOISE_NAMES[usize::from(k) % DECODER_NOISE_NAMES.len()]
            }
        }
    }

    /// The graph input's element type.
    pub fn elem(self) -> ElemType {
        match self {
            Input::Class => ElemType::I64,
            _ => ElemType::F32,
        }
    }

    /// Dims for a batch of `n` examples of `shapes` (the decoder's noises are image-shaped).
    pub fn dims(self, n: usize, shapes: Shapes) -> Vec<usize> {
        match self {
            Input::X | Input::Noise | Input::Renoise(_) | Input::LatentNoise => {
                shapes.example_dims(n)
            }
            Input::DecoderNoise(_) => shapes.image_dims(n),
            Input::Sigma | Input::W | Input::Class => vec![n],
        }
    }
}

/// Name of the graph's only output, the denoised image `[N, C, H, W]`.
pub const OUTPUT: &str = "denoised";
/// Name of an unrolled sampler's only output, the sampled image `[N, C, H, W]`.
pub const UNROLLED_OUTPUT: &str = "image";

/// The inputs of a model of `kind`: teachers take (x, σ, class); every student also takes w.
pub fn inputs_of(kind: ModelKind) -> Vec<Input> {
    match kind {
        ModelKind::Teacher => vec![Input::X, Input::Sigma, Input::Class],
        // Every student kind (a new distillation method too) is w-conditioned.
        _ => vec![Input::X, Input::Sigma, Input::Class, Input::W],
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
    /// The denoised image (or, unrolled, the sampled one).
    pub output: TensorId,
    /// The output's graph name ([`OUTPUT`] or [`UNROLLED_OUTPUT`]).
    pub output_name: &'static str,
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
fn sample_input(input: Input, n: usize, shapes: Shapes) -> TensorData {
    let dims = input.dims(n, shapes);
    let len = dims.iter().product();
    match input {
        Input::X
        | Input::Noise
        | Input::Renoise(_)
        | Input::LatentNoise
        | Input::DecoderNoise(_) => TensorData::new(vec![0.0f32; len], dims),
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
    let shapes = Shapes::of(model);
    capture_with((model, None), inputs, shapes, batch, OUTPUT, |m, _, t| {
        Some(m.forward(
            t.x.clone()?,
            t.sigma.clone()?,
            t.class.clone()?,
            t.w.clone(),
        ))
    })
}

/// Record a whole sampler, `plan` unrolled: noise (and re-noising noises), class and w in, the
/// sampled image out — the very `teacher::recipe::run_plan` that `fewstep sample` runs; for a
/// model of latents, followed by `decoding`'s own `decode_with` (ε and the decoder's noises in).
pub fn capture_sampler(
    model: &EdmModel,
    plan: &SamplerPlan,
    decoding: Option<&Decoding>,
    inputs: &[Input],
    batch: usize,
) -> Result<Captured> {
    let shapes = Shapes::decoded(model, decoding);
    capture_with(
        (model, decoding),
        inputs,
        shapes,
        batch,
        UNROLLED_OUTPUT,
        |m, d, t| {
            let noises = t.noises.clone();
            if noises.len() != plan.noises() {
                return None;
            }
            let cond = teacher::edm::Cond {
                class: t.class.clone()?,
                extra: t.w.clone(),
                latent: None,
            };
            // The images the sampler generates (a multi-resolution model's full-resolution copy).
            let x = m.to_images(run_plan(m, plan, &noises, &cond).x);
            match d {
                None => Some(x),
                Some(d) if t.decoder_noises.len() == d.plan().noises() => {
                    Some(d.decode_with(x, t.latent_noise.clone()?, &t.decoder_noises))
                }
                Some(_) => None,
            }
        },
    )
}

/// The input tensors of one capture, by role.
struct Tensors {
    x: Option<Tensor<4>>,
    sigma: Option<Tensor<1>>,
    class: Option<Tensor<1, Int>>,
    w: Option<Tensor<1>>,
    /// Noise, then z_1, z_2, … in step order.
    noises: Vec<Tensor<4>>,
    /// A latent chain's ε of z₀ = ẑ + σ₀·ε.
    latent_noise: Option<Tensor<4>>,
    /// A latent chain's decoder noises, in step order.
    decoder_noises: Vec<Tensor<4>>,
}

/// The models one capture records: the sampled model and, for a chain of latents, its decoder.
type Models<'a> = (&'a EdmModel, Option<&'a Decoding>);

/// Record `f(model, decoder, inputs)` on the capture device (the decoder's parameters named
/// `decoder.…`).
fn capture_with(
    (model, decoding): Models,
    inputs: &[Input],
    shapes: Shapes,
    batch: usize,
    output_name: &'static str,
    f: impl FnOnce(&EdmModel, Option<&Decoding>, &Tensors) -> Option<Tensor<4>>,
) -> Result<Captured> {
    let device = Device::capture();
    let mut meta: Option<Result<Boundary>> = None;
    let fail = |m: &str| ExportError::Capture { message: m.into() };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        device.capture_scope(|scope| {
            let m = model.clone().to_device(&device);
            let mut names = ParamNames::default();
            m.visit(&mut names);
            let d = decoding.map(|d| d.to_device(&device));
            if let Some(d) = &d {
                names.path = vec!["decoder".into()];
                d.model().visit(&mut names);
            }
            let Some((t, ids)) = feed_inputs(inputs, batch, shapes, &device) else {
                meta = Some(Err(fail("an input did not land on the capture device")));
                return scope.complete([], []);
            };
            let Some(out) = f(&m, d.as_ref(), &t) else {
                meta = Some(Err(fail(
                    "the inputs do not match what the recorded function takes",
                )));
                return scope.complete([], []);
            };
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
        output_name,
        param_names,
        batch,
    })
}

/// The placeholder input tensors on `device`, by role, with their capture ids in `inputs`
/// order; `None` when one did not land on the capture device.
fn feed_inputs(
    inputs: &[Input],
    batch: usize,
    shapes: Shapes,
    device: &Device,
) -> Option<(Tensors, Vec<(Input, TensorId)>)> {
    let mut t = Tensors {
        x: None,
        sigma: None,
        class: None,
        w: None,
        noises: Vec::new(),
        latent_noise: None,
        decoder_noises: Vec::new(),
    };
    let mut ids = Vec::new();
    // Numbered noises are fed in step order whatever their position.
    let mut numbered = Numbered::default();
    for &input in inputs {
        let data = sample_input(input, batch, shapes);
        let id = feed_input(input, data, device, &mut t, &mut numbered)?;
        ids.push((input, id));
    }
    let in_order = |mut v: Vec<(u8, Tensor<4>)>| {
        v.sort_by_key(|(k, _)| *k);
        v.into_iter().map(|(_, t)| t)
    };
    t.noises.extend(in_order(numbered.renoise));
    t.decoder_noises.extend(in_order(numbered.decoder));
    Some((t, ids))
}

/// The numbered noise inputs as they arrive: re-noisings and the decoder's.
#[derive(Default)]
struct Numbered {
    renoise: Vec<(u8, Tensor<4>)>,
    decoder: Vec<(u8, Tensor<4>)>,
}

/// Puts `data` on `device` as `input`'s tensor, filed in `t` (numbered noises in `numbered`);
/// its capture id.
fn feed_input(
    input: Input,
    data: TensorData,
    device: &Device,
    t: &mut Tensors,
    numbered: &mut Numbered,
) -> Option<TensorId> {
    match input {
        Input::X
        | Input::Noise
        | Input::Renoise(_)
        | Input::LatentNoise
        | Input::DecoderNoise(_) => {
            let v = Tensor::<4>::from_data(data, device);
            let id = id_of(&v);
            match input {
                Input::X => t.x = Some(v),
                Input::Noise => t.noises.insert(0, v),
                Input::Renoise(k) => numbered.renoise.push((k, v)),
                Input::LatentNoise => t.latent_noise = Some(v),
                Input::DecoderNoise(k) => numbered.decoder.push((k, v)),
                _ => unreachable!("matched above"),
            }
            id
        }
        Input::Sigma | Input::W => {
            let v = Tensor::<1>::from_data(data, device);
            let id = id_of(&v);
            if input == Input::Sigma {
                t.sigma = Some(v);
            } else {
                t.w = Some(v);
            }
            id
        }
        Input::Class => {
            let v = Tensor::<1, Int>::from_data(data, device);
            let id = int_id_of(&v);
            t.class = Some(v);
            id
        }
    }
}
