//! Numeric precision of an exported graph. `fp16` runs the image path — every value computed
//! from x — in float16 with float16 weights, while the per-example conditioning path (σ, class, w
//! → c_skip, c_out, c_in, c_noise, embeddings) stays float32: its inputs are tiny, and
//! sin/cos of c_noise·250 (arguments up to ≈ 300) lose whole radians of phase in float16.
//! Inputs and the output stay float32, so callers feed and read the same tensors either way;
//! the casts sit inside the graph, where a strongly typed TensorRT 11 engine takes its
//! precision from.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use burn::tensor::f16;

use crate::capture::{Input, OUTPUT};
use crate::error::{ExportError, Result};
use crate::graph::{Attr, Constant, ElemType, Graph, Node, TensorValue};

/// `metadata_props` key recording a file's precision (read back by the parity check).
pub const PRECISION_KEY: &str = "fewstep.precision";

/// The `--precision` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// float32 everywhere.
    #[default]
    Fp32,
    /// float16 image path, float32 conditioning path and I/O.
    Fp16,
}

impl Precision {
    /// Parity tolerance (max abs error) for a file of this precision, issue #5's bars: float32
    /// round-off stays near 1e-6 on outputs of order 1 (1e-4 catches any wrong op); float16
    /// rounds each stored value by up to 2⁻¹¹ ≈ 5e-4 relative, which a million-parameter U-Net
    /// compounds to 1e-3–1e-2 (docs/export.md has the measured numbers).
    pub fn tolerance(self) -> f64 {
        match self {
            Precision::Fp32 => 1e-4,
            Precision::Fp16 => 1e-2,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        })
    }
}

impl FromStr for Precision {
    type Err = ExportError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "fp32" => Ok(Precision::Fp32),
            "fp16" => Ok(Precision::Fp16),
            other => Err(ExportError::Invalid(format!(
                "`--precision {other}` is not supported: choose fp32 or fp16"
            ))),
        }
    }
}

/// The precision recorded in a file's metadata (float32 when absent).
pub fn of_model(model: &tract_onnx::pb::ModelProto) -> Precision {
    model
        .metadata_props
        .iter()
        .find(|p| p.key == PRECISION_KEY)
        .and_then(|p| p.value.parse().ok())
        .unwrap_or_default()
}

/// Ops of the image path that still run in float32 (input cast up, output cast back down), the
/// usual mixed-precision block list: a group's sum of squares can pass float16's maximum 65504
/// and softmax exponentials saturate. (On the digits models this does not change the error,
/// which comes from the float16 convolutions.)
pub const FP32_OPS: &[&str] = &[
    "InstanceNormalization",
    "LayerNormalization",
    "Softmax",
    "LogSoftmax",
    "ReduceMean",
    "ReduceSum",
];

/// The element type of `n`'s outputs given its inputs' types: input 0's unless the op says
/// otherwise.
fn out_elem(n: &Node, t: &HashMap<String, ElemType>) -> Option<ElemType> {
    let first = n.inputs.first().and_then(|i| t.get(i)).copied();
    match n.op_type {
        "Cast" => n.attrs.iter().find_map(|(k, a)| match (k, a) {
            (&"to", Attr::Int(code)) => ElemType::from_onnx_code(*code as i32),
            _ => None,
        }),
        "Shape" | "ArgMax" | "ArgMin" => Some(ElemType::I64),
        "Equal" | "Greater" | "GreaterOrEqual" | "Less" | "LessOrEqual" | "Not" | "And" | "Or"
        | "Xor" | "IsNaN" | "IsInf" => Some(ElemType::Bool),
        "ConstantOfShape" => n.attrs.iter().find_map(|(_, a)| match a {
            Attr::Tensor(v) => Some(v.elem),
            _ => None,
        }),
        // Where(cond, X, Y): the type of X.
        "Where" => n.inputs.get(1).and_then(|i| t.get(i)).copied(),
        _ => first,
    }
}

fn f16_value(v: &TensorValue) -> TensorValue {
    let raw = v
        .raw
        .chunks_exact(4)
        .flat_map(|b| {
            f16::from_f32(f32::from_le_bytes(b.try_into().expect("4 bytes"))).to_le_bytes()
        })
        .collect();
    TensorValue {
        elem: ElemType::F16,
        dims: v.dims.clone(),
        raw,
    }
}

fn cast_node(input: &str, output: &str, to: ElemType) -> Node {
    Node {
        name: format!("Cast_{output}"),
        op_type: "Cast",
        inputs: vec![input.into()],
        outputs: vec![output.into()],
        attrs: vec![("to", Attr::Int(to.onnx_code() as i64))],
    }
}

fn is_float(e: Option<ElemType>) -> bool {
    matches!(e, Some(ElemType::F32 | ElemType::F16))
}

/// Rewrites node by node, tracking the element type each value has in the new graph.
struct Rewrite {
    types: HashMap<String, ElemType>,
    constants: HashMap<String, TensorValue>,
    /// Converted copies: (value, type) → name.
    copies: HashMap<(String, ElemType), String>,
    new_constants: Vec<Constant>,
    nodes: Vec<Node>,
}

impl Rewrite {
    /// `v` as type `to` (a float16 twin of a constant, or a Cast node before first use).
    fn as_type(&mut self, v: &str, to: ElemType) -> String {
        if self.types.get(v) == Some(&to) || !is_float(self.types.get(v).copied()) {
            return v.to_string();
        }
        if let Some(c) = self.copies.get(&(v.to_string(), to)) {
            return c.clone();
        }
        let name = format!("{v}_{}", if to == ElemType::F16 { "f16" } else { "f32" });
        match self.constants.get(v).filter(|_| to == ElemType::F16) {
            Some(value) => self.new_constants.push(Constant {
                name: name.clone(),
                value: f16_value(value),
                role: crate::graph::Role::Fixed,
            }),
            None => self.nodes.push(cast_node(v, &name, to)),
        }
        self.types.insert(name.clone(), to);
        self.copies.insert((v.to_string(), to), name.clone());
        name
    }
}

impl Rewrite {
    /// A rewrite of `g` that knows its inputs' and constants' element types.
    fn new(g: &Graph) -> Rewrite {
        Rewrite {
            types: g
                .inputs
                .iter()
                .map(|io| (io.name.clone(), io.elem))
                .chain(g.constants.iter().map(|c| (c.name.clone(), c.value.elem)))
                .collect(),
            constants: g
                .constants
                .iter()
                .map(|c| (c.name.clone(), c.value.clone()))
                .collect(),
            copies: HashMap::new(),
            new_constants: Vec::new(),
            nodes: Vec::with_capacity(g.nodes.len() * 2),
        }
    }

    /// Point an image-path node at float16 operands (float32 for [`FP32_OPS`]) and retype its
    /// float32 Cast target and tensor attributes to match.
    fn retype_image_node(&mut self, n: &mut Node) {
        let compute = if FP32_OPS.contains(&n.op_type) {
            ElemType::F32
        } else {
            ElemType::F16
        };
        for i in 0..n.inputs.len() {
            let v = n.inputs[i].clone();
            if !v.is_empty() {
                n.inputs[i] = self.as_type(&v, compute);
            }
        }
        for (_, a) in n.attrs.iter_mut() {
            match a {
                Attr::Int(code)
                    if n.op_type == "Cast"
                        && compute == ElemType::F16
                        && *code == ElemType::F32.onnx_code() as i64 =>
                {
                    *code = ElemType::F16.onnx_code() as i64;
                }
                Attr::Tensor(v) if compute == ElemType::F16 && v.elem == ElemType::F32 => {
                    *v = f16_value(v)
                }
                _ => {}
            }
        }
    }

    /// A float16 output is renamed `{OUTPUT}_f16` and cast back to float32 as [`OUTPUT`].
    fn output_as_f32(&mut self) {
        if self.types.get(OUTPUT) == Some(&ElemType::F16) {
            let inner = format!("{OUTPUT}_f16");
            for n in &mut self.nodes {
                for v in n.inputs.iter_mut().chain(n.outputs.iter_mut()) {
                    if v == OUTPUT {
                        *v = inner.clone();
                    }
                }
            }
            self.nodes.push(cast_node(&inner, OUTPUT, ElemType::F32));
        }
    }
}

/// Rewrite a float32 graph so that the values computed from `x` are float16, except inside
/// [`FP32_OPS`].
pub fn to_fp16(g: Graph) -> Graph {
    let mut g = g;
    let mut rw = Rewrite::new(&g);
    // The image path: every node with an input computed from x.
    let mut from_x: HashSet<String> = HashSet::from([Input::X.name().to_string()]);
    for mut n in std::mem::take(&mut g.nodes) {
        let on_image_path = n.inputs.iter().any(|i| from_x.contains(i));
        if on_image_path {
            from_x.extend(n.outputs.iter().cloned());
            rw.retype_image_node(&mut n);
        }
        if let Some(e) = out_elem(&n, &rw.types) {
            for o in &n.outputs {
                rw.types.insert(o.clone(), e);
            }
        }
        rw.nodes.push(n);
    }
    // The output leaves as float32.
    rw.output_as_f32();
    g.nodes = rw.nodes;
    g.constants.extend(rw.new_constants);
    drop_unused_constants(&mut g);
    g
}

/// Remove the constants that no node reads.
fn drop_unused_constants(g: &mut Graph) {
    let used: HashSet<&String> = g.nodes.iter().flat_map(|n| n.inputs.iter()).collect();
    let keep: HashSet<String> = g
        .constants
        .iter()
        .filter(|c| used.contains(&c.name))
        .map(|c| c.name.clone())
        .collect();
    g.constants.retain(|c| keep.contains(&c.name));
}
