//! Running an exported file with tract, a pure-Rust ONNX runtime, for a given batch size; and
//! checking first that the file's declared inputs are what the model takes, so a mismatch is
//! reported by name with its fix rather than as a runtime shape error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::capture::Input;
use crate::error::{ExportError, Result};
use crate::graph::ElemType;
use crate::inputs::Batch;
use crate::npy::NpyData;
use crate::onnx::{DeclaredIo, declared_inputs, declared_outputs};
use crate::source::Source;

fn type_name(code: i32) -> String {
    ElemType::from_onnx_code(code).map_or(format!("type #{code}"), |t| t.onnx_name().into())
}

fn show_dims(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("N".into(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// The file's inputs in its own order, matched to the model's; errors name the file and the fix.
pub fn match_inputs(
    path: &Path,
    model: &pb::ModelProto,
    source: &Source,
    batch: usize,
) -> Result<Vec<Input>> {
    let declared = declared_inputs(model);
    let bad = |m: String| ExportError::onnx_file(path, m);
    let reexport = format!(
        "pass the `--model` the file was exported from, or re-export it with `fewstep export onnx \
         --model {}`",
        source.path.display()
    );
    for &input in &source.inputs {
        if !declared.iter().any(|d| d.name == input.name()) {
            return Err(bad(format!(
                "has no input `{}`, which the {:?} model `{}` takes: {reexport}",
                input.name(),
                source.kind(),
                source.path.display()
            )));
        }
    }
    let shapes = source.shapes();
    let mut order = Vec::new();
    for d in &declared {
        let Some(&input) = source.inputs.iter().find(|i| i.name() == d.name) else {
            return Err(bad(format!(
                "has an input `{}` that the {:?} model `{}` does not take (it takes {}): {reexport}",
                d.name,
                source.kind(),
                source.path.display(),
                source.input_names()
            )));
        };
        if d.elem != input.elem().onnx_code() {
            return Err(bad(format!(
                "input `{}` is tensor({}) but fewstep feeds tensor({}): {reexport}",
                d.name,
                type_name(d.elem),
                input.elem().onnx_name()
            )));
        }
        check_dims(path, d, input, batch, shapes, &reexport)?;
        order.push(input);
    }
    let outputs = declared_outputs(model);
    if outputs.len() != 1 {
        return Err(bad(format!(
            "has {} outputs; an exported fewstep model has one, the denoised image: {reexport}",
            outputs.len()
        )));
    }
    Ok(order)
}

fn check_dims(
    path: &Path,
    d: &DeclaredIo,
    input: Input,
    batch: usize,
    shapes: crate::capture::Shapes,
    reexport: &str,
) -> Result<()> {
    let want = input.dims(batch, shapes);
    if d.dims.len() != want.len() {
        return Err(ExportError::onnx_file(
            path,
            format!(
                "input `{}` has rank {} ({}) but the model takes rank {}: {reexport}",
                d.name,
                d.dims.len(),
                show_dims(&d.dims),
                want.len()
            ),
        ));
    }
    if let Some(fixed) = d.dims[0].filter(|&f| f != batch) {
        return Err(ExportError::onnx_file(
            path,
            format!(
                "input `{}` has a fixed batch of {fixed} (exported with `--batch {fixed}`), so it \
                 cannot run batch {batch}: pass `--batch {fixed}`, or re-export with `--batch \
                 dynamic`",
                d.name
            ),
        ));
    }
    if d.dims[1..]
        .iter()
        .zip(&want[1..])
        .any(|(got, &w)| got.is_some_and(|g| g != w))
    {
        let model_dims: Vec<Option<usize>> = std::iter::once(None)
            .chain(want[1..].iter().map(|&w| Some(w)))
            .collect();
        return Err(ExportError::onnx_file(
            path,
            format!(
                "input `{}` is {} but the model takes {}: {reexport}",
                d.name,
                show_dims(&d.dims),
                show_dims(&model_dims)
            ),
        ));
    }
    Ok(())
}

/// A file optimised by tract for one batch size.
pub struct TractPlan {
    plan: Arc<TypedRunnableModel>,
    path: PathBuf,
    order: Vec<Input>,
}

impl TractPlan {
    /// Load `path` and optimise it for `batch` examples fed in `order`.
    pub fn load(path: &Path, order: &[Input], batch: usize, source: &Source) -> Result<Self> {
        let err = |m: String| ExportError::Runtime {
            path: path.to_path_buf(),
            message: m,
        };
        let shapes = source.shapes();
        let mut model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| err(format!("tract cannot read it ({e:#})")))?;
        for (i, &input) in order.iter().enumerate() {
            let dims = input.dims(batch, shapes);
            let fact: InferenceFact = match input.elem() {
                ElemType::I64 => i64::fact(&dims).into(),
                _ => f32::fact(&dims).into(),
            };
            model = model
                .with_input_fact(i, fact)
                .map_err(|e| err(format!("input `{}`: {e:#}", input.name())))?;
        }
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| err(format!("optimising for batch {batch} failed ({e:#})")))?;
        Ok(Self {
            plan,
            path: path.to_path_buf(),
            order: order.to_vec(),
        })
    }

    /// The tensors of `batch` in the file's input order.
    pub fn feeds(&self, batch: &Batch) -> Result<TVec<TValue>> {
        self.order
            .iter()
            .map(|&input| {
                let (dims, data) = batch.get(input);
                let t = match data {
                    NpyData::F32(v) => Tensor::from_shape(&dims, &v),
                    NpyData::I64(v) => Tensor::from_shape(&dims, &v),
                };
                t.map(TValue::from).map_err(|e| ExportError::Runtime {
                    path: self.path.clone(),
                    message: format!("input `{}`: {e:#}", input.name()),
                })
            })
            .collect()
    }

    /// One run on prepared feeds; the first output, flat.
    pub fn run(&self, feeds: TVec<TValue>) -> Result<Vec<f32>> {
        let err = |m: String| ExportError::Runtime {
            path: self.path.clone(),
            message: m,
        };
        let out = self
            .plan
            .run(feeds)
            .map_err(|e| err(format!("run failed ({e:#})")))?;
        let y = out
            .first()
            .ok_or_else(|| err("the model returned no output".into()))?
            .to_plain_array_view::<f32>()
            .map_err(|e| err(format!("output is not float ({e:#})")))?
            .iter()
            .copied()
            .collect();
        Ok(y)
    }
}
