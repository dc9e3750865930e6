//! The op/opset report of an ONNX file: which op types it uses, how often, and whether
//! TensorRT's ONNX parser lists them as supported.

use std::fmt;

use tract_onnx::pb;

use crate::onnx::default_opset;

/// Ops TensorRT's ONNX parser marks supported ("Y"), from onnx-tensorrt `docs/operators.md` for
/// TensorRT 8.5 (opsets ≤ 17), plus the normalisation ops and Gelu that TensorRT 10 added.
/// Restrictions that matter here: Conv weights and InstanceNormalization scale/bias must be
/// initializers, Slice/Squeeze/Unsqueeze axes constants — the exporter writes them that way.
pub const TENSORRT_OPS: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "And",
    "ArgMax",
    "ArgMin",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Ceil",
    "Celu",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "Cos",
    "Cosh",
    "CumSum",
    "DepthToSpace",
    "DequantizeLinear",
    "Div",
    "Dropout",
    "Einsum",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "EyeLike",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "GridSample",
    "GroupNormalization",
    "GRU",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "If",
    "ImageScaler",
    "InstanceNormalization",
    "IsNaN",
    "LayerNormalization",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "LogSoftmax",
    "Loop",
    "LRN",
    "LSTM",
    "LpNormalization",
    "LpPool",
    "MatMul",
    "Max",
    "MaxPool",
    "Mean",
    "MeanVarianceNormalization",
    "Min",
    "Mod",
    "Mul",
    "Neg",
    "NonMaxSuppression",
    "NonZero",
    "Not",
    "OneHot",
    "Or",
    "Pad",
    "ParametricSoftplus",
    "Pow",
    "PRelu",
    "QuantizeLinear",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Range",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "ReverseSequence",
    "RNN",
    "RoiAlign",
    "Round",
    "ScaledTanh",
    "Scan",
    "Scatter",
    "ScatterElements",
    "ScatterND",
    "Selu",
    "Shape",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Size",
    "Slice",
    "Softmax",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tan",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "TopK",
    "Transpose",
    "Trilu",
    "Unsqueeze",
    "Upsample",
    "Where",
    "Xor",
];

/// Highest opset TensorRT 10's parser documents (onnx-tensorrt: "opset 9 to opset 20").
pub const TENSORRT_MAX_OPSET: i64 = 20;

/// One op type of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpUse {
    pub op_type: String,
    /// Domain, empty for the default `ai.onnx` domain.
    pub domain: String,
    pub count: usize,
    pub tensorrt: bool,
}

/// The op types of one ONNX file against TensorRT's parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpReport {
    pub opset: i64,
    pub nodes: usize,
    pub ops: Vec<OpUse>,
}

impl OpReport {
    pub fn of(model: &pb::ModelProto) -> Self {
        let mut ops: Vec<OpUse> = Vec::new();
        let nodes = model.graph.as_ref().map_or(&[][..], |g| &g.node[..]);
        for n in nodes {
            match ops
                .iter_mut()
                .find(|o| o.op_type == n.op_type && o.domain == n.domain)
            {
                Some(o) => o.count += 1,
                None => ops.push(OpUse {
                    op_type: n.op_type.clone(),
                    domain: n.domain.clone(),
                    count: 1,
                    tensorrt: (n.domain.is_empty() || n.domain == "ai.onnx")
                        && TENSORRT_OPS.contains(&n.op_type.as_str()),
                }),
            }
        }
        ops.sort_by(|a, b| a.op_type.cmp(&b.op_type));
        Self {
            opset: default_opset(model),
            nodes: nodes.len(),
            ops,
        }
    }

    /// Ops TensorRT's parser does not list.
    pub fn unsupported(&self) -> Vec<&str> {
        self.ops
            .iter()
            .filter(|o| !o.tensorrt)
            .map(|o| o.op_type.as_str())
            .collect()
    }
}

impl fmt::Display for OpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ONNX ops: {} types, {} nodes, default-domain opset {}",
            self.ops.len(),
            self.nodes,
            self.opset
        )?;
        for o in &self.ops {
            let name = if o.domain.is_empty() {
                o.op_type.clone()
            } else {
                format!("{}::{}", o.domain, o.op_type)
            };
            writeln!(
                f,
                "  {name:<24}{:>5}  {}",
                o.count,
                if o.tensorrt {
                    "TensorRT: supported"
                } else {
                    "TensorRT: NOT in the parser's list"
                }
            )?;
        }
        let missing = self.unsupported();
        if missing.is_empty() {
            write!(
                f,
                "TensorRT: every op is in the ONNX parser's supported list"
            )?;
        } else {
            write!(
                f,
                "TensorRT: {} op type(s) not in the parser's list: {}",
                missing.len(),
                missing.join(", ")
            )?;
        }
        if self.opset > TENSORRT_MAX_OPSET {
            write!(
                f,
                "\nTensorRT: opset {} is above the {TENSORRT_MAX_OPSET} TensorRT 10.0 documents; \
                 export with `--opset 17` for older parsers",
                self.opset
            )?;
        }
        Ok(())
    }
}
