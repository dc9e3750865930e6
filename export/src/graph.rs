//! An ONNX graph under construction: nodes, constants and the graph's inputs and outputs, with
//! the roles of constants kept (weights vs. shape vectors) so that two captures at different
//! batch sizes can be merged into one graph with a symbolic batch axis (see `dynamic`).

use std::collections::HashMap;

/// Element types the exporter writes, with their `TensorProto.DataType` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElemType {
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl ElemType {
    /// `TensorProto.DataType` of the ONNX spec (onnx.proto).
    pub fn onnx_code(self) -> i32 {
        match self {
            ElemType::F32 => 1,
            ElemType::U8 => 2,
            ElemType::I8 => 3,
            ElemType::I16 => 5,
            ElemType::I32 => 6,
            ElemType::I64 => 7,
            ElemType::Bool => 9,
            ElemType::F16 => 10,
            ElemType::F64 => 11,
            ElemType::BF16 => 16,
        }
    }

    /// The element type of an ONNX `DataType` code, if the exporter knows it.
    pub fn from_onnx_code(code: i32) -> Option<Self> {
        [
            ElemType::F32,
            ElemType::U8,
            ElemType::I8,
            ElemType::I16,
            ElemType::I32,
            ElemType::I64,
            ElemType::Bool,
            ElemType::F16,
            ElemType::F64,
            ElemType::BF16,
        ]
        .into_iter()
        .find(|t| t.onnx_code() == code)
    }

    /// The name ONNX documentation uses (`tensor(float)` …), for messages.
    pub fn onnx_name(self) -> &'static str {
        match self {
            ElemType::F32 => "float",
            ElemType::F16 => "float16",
            ElemType::BF16 => "bfloat16",
            ElemType::F64 => "double",
            ElemType::I64 => "int64",
            ElemType::I32 => "int32",
            ElemType::I16 => "int16",
            ElemType::I8 => "int8",
            ElemType::U8 => "uint8",
            ElemType::Bool => "bool",
        }
    }
}

/// A constant tensor: element type, dims and little-endian bytes (ONNX `raw_data`).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorValue {
    pub elem: ElemType,
    pub dims: Vec<usize>,
    pub raw: Vec<u8>,
}

impl TensorValue {
    pub fn i64s(values: &[i64]) -> Self {
        Self {
            elem: ElemType::I64,
            dims: vec![values.len()],
            raw: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn f32s(dims: Vec<usize>, values: &[f32]) -> Self {
        Self {
            elem: ElemType::F32,
            dims,
            raw: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// The values of an int64 vector (shape constants).
    pub fn as_i64s(&self) -> Option<Vec<i64>> {
        (self.elem == ElemType::I64).then(|| {
            self.raw
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("chunks of 8 bytes")))
                .collect()
        })
    }
}

/// What a shape-valued constant feeds: decides how a batch-dependent entry is made symbolic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeUse {
    /// Reshape's `shape` input (one batch entry becomes −1).
    Reshape,
    /// Expand's `shape` input (a batch entry over a batch-sized input dim becomes 1).
    Expand,
    /// ConstantOfShape's `input` (built from the runtime batch size).
    Creation,
    /// Slice's `starts` input.
    SliceStarts,
    /// Slice's `ends` input (a full batch range becomes INT64_MAX).
    SliceEnds,
}

/// Why a constant exists; only `Shape` constants may differ between two captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A module parameter or a tensor created inside the forward pass.
    Weight,
    /// A scalar operand or an attribute-like input (axes, pads, repeats …).
    Fixed,
    /// A shape vector that may carry the batch size.
    Shape(ShapeUse),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    pub name: String,
    pub value: TensorValue,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(&'static str),
    Tensor(TensorValue),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op_type: &'static str,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Vec<(&'static str, Attr)>,
}

/// One axis of a graph input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    /// The symbolic batch axis, written as `dim_param: "N"`.
    Batch,
}

/// A graph input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct Io {
    pub name: String,
    pub elem: ElemType,
    pub dims: Vec<Dim>,
}

/// The ONNX graph being built. Value names are assigned in creation order, so two captures of
/// the same forward pass give the same names.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub constants: Vec<Constant>,
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
    /// Shape of every value as captured (static; the batch size of its capture).
    pub shapes: HashMap<String, Vec<usize>>,
    counter: usize,
}

impl Graph {
    /// A fresh value name.
    pub fn fresh(&mut self, stem: &str) -> String {
        self.counter += 1;
        format!("{stem}_{}", self.counter)
    }

    /// Add a constant and return its name; `name` is used as is when it is not taken.
    pub fn constant(&mut self, stem: &str, value: TensorValue, role: Role) -> String {
        let name = if self.constants.iter().any(|c| c.name == stem) || stem.is_empty() {
            self.fresh(if stem.is_empty() { "const" } else { stem })
        } else {
            stem.to_string()
        };
        self.constants.push(Constant {
            name: name.clone(),
            value,
            role,
        });
        name
    }

    /// An int64 vector constant with a fixed role (axes, pads, repeats).
    pub fn ints(&mut self, stem: &str, values: &[i64]) -> String {
        self.constant(stem, TensorValue::i64s(values), Role::Fixed)
    }

    /// Add a node with one output of static `shape`; returns the output's name.
    pub fn node(
        &mut self,
        op_type: &'static str,
        inputs: Vec<String>,
        attrs: Vec<(&'static str, Attr)>,
        shape: &[usize],
    ) -> String {
        let out = self.fresh(&op_type.to_ascii_lowercase());
        self.node_into(op_type, inputs, attrs, out.clone(), shape);
        out
    }

    /// Add a node writing to a chosen output name.
    pub fn node_into(
        &mut self,
        op_type: &'static str,
        inputs: Vec<String>,
        attrs: Vec<(&'static str, Attr)>,
        out: String,
        shape: &[usize],
    ) {
        let name = format!("{op_type}_{}", self.nodes.len());
        self.shapes.insert(out.clone(), shape.to_vec());
        self.nodes.push(Node {
            name,
            op_type,
            inputs,
            outputs: vec![out],
            attrs,
        });
    }

    pub fn constant_by_name(&self, name: &str) -> Option<&Constant> {
        self.constants.iter().find(|c| c.name == name)
    }

    /// Rename a value everywhere (node inputs and outputs, shapes).
    pub fn rename(&mut self, from: &str, to: &str) {
        for node in &mut self.nodes {
            for v in node.inputs.iter_mut().chain(node.outputs.iter_mut()) {
                if v == from {
                    *v = to.to_string();
                }
            }
        }
        if let Some(s) = self.shapes.remove(from) {
            self.shapes.insert(to.to_string(), s);
        }
    }

    /// The distinct op types in node order of first use, with their counts.
    pub fn op_counts(&self) -> Vec<(&'static str, usize)> {
        let mut out: Vec<(&'static str, usize)> = Vec::new();
        for node in &self.nodes {
            match out.iter_mut().find(|(op, _)| *op == node.op_type) {
                Some((_, n)) => *n += 1,
                None => out.push((node.op_type, 1)),
            }
        }
        out
    }
}
