//! Reading and writing ONNX protobuf files through tract's prost-generated `onnx.proto` structs
//! (`tract_onnx::pb`), so the writer and the parity runtime share one schema and no second
//! protobuf stack is needed (docs/export.md: writer choice).

use std::path::Path;

use prost::Message;
use tract_onnx::pb;

use crate::error::{ExportError, Result};
use crate::graph::{Attr, Dim, Graph, Io, TensorValue};
use crate::opset::Opset;

/// Name of the symbolic batch axis (`dim_param`).
pub const BATCH_PARAM: &str = "N";

fn tensor_proto(name: &str, v: &TensorValue) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: v.dims.iter().map(|&d| d as i64).collect(),
        data_type: v.elem.onnx_code(),
        raw_data: v.raw.clone(),
        ..Default::default()
    }
}

fn attribute(name: &str, a: &Attr) -> pb::AttributeProto {
    use pb::attribute_proto::AttributeType as T;
    let mut p = pb::AttributeProto {
        name: name.to_string(),
        ..Default::default()
    };
    match a {
        Attr::Int(i) => {
            p.r#type = T::Int as i32;
            p.i = *i;
        }
        Attr::Ints(v) => {
            p.r#type = T::Ints as i32;
            p.ints = v.clone();
        }
        Attr::Float(f) => {
            p.r#type = T::Float as i32;
            p.f = *f;
        }
        Attr::Str(v) => {
            p.r#type = T::String as i32;
            p.s = v.as_bytes().to_vec();
        }
        Attr::Tensor(t) => {
            p.r#type = T::Tensor as i32;
            p.t = Some(tensor_proto("", t));
        }
    }
    p
}

fn value_info(io: &Io) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = io
        .dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => Value::DimValue(*n as i64),
                Dim::Batch => Value::DimParam(BATCH_PARAM.into()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: io.name.clone(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: io.elem.onnx_code(),
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ModelProto of `graph` for `opset`, with `metadata` as `metadata_props`.
pub fn model_proto(
    graph: &Graph,
    name: &str,
    opset: Opset,
    metadata: &[(String, String)],
) -> pb::ModelProto {
    let g = pb::GraphProto {
        name: name.to_string(),
        node: graph
            .nodes
            .iter()
            .map(|n| pb::NodeProto {
                name: n.name.clone(),
                op_type: n.op_type.to_string(),
                input: n.inputs.clone(),
                output: n.outputs.clone(),
                attribute: n.attrs.iter().map(|(k, a)| attribute(k, a)).collect(),
                ..Default::default()
            })
            .collect(),
        initializer: graph
            .constants
            .iter()
            .map(|c| tensor_proto(&c.name, &c.value))
            .collect(),
        input: graph.inputs.iter().map(value_info).collect(),
        output: graph.outputs.iter().map(value_info).collect(),
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: opset.ir_version(),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: opset.version(),
        }],
        producer_name: "fewstep".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(g),
        metadata_props: metadata
            .iter()
            .map(|(k, v)| pb::StringStringEntryProto {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        ..Default::default()
    }
}

pub fn encode(model: &pb::ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Read and decode an ONNX file, with errors that name it and say what to do.
pub fn read_model(path: &Path) -> Result<pb::ModelProto> {
    if path.is_dir() {
        return Err(ExportError::onnx_file(
            path,
            "is a folder: pass the `.onnx` file inside it (e.g. `DIR/student-4.onnx`)",
        ));
    }
    if !path.is_file() {
        return Err(ExportError::onnx_file(
            path,
            "does not exist: write one with `fewstep export onnx --model RUN --out FILE`",
        ));
    }
    let bytes = std::fs::read(path).map_err(ExportError::io("read ONNX file", path))?;
    let model = pb::ModelProto::decode(bytes.as_slice()).map_err(|e| {
        ExportError::onnx_file(
            path,
            format!(
                "is not an ONNX model (protobuf decode failed: {e}); the file is truncated or \
                 not ONNX: re-export it with `fewstep export onnx`"
            ),
        )
    })?;
    if model.graph.as_ref().is_none_or(|g| g.node.is_empty()) {
        return Err(ExportError::onnx_file(
            path,
            "holds no graph (no nodes): the file is not an exported model; re-export it with \
             `fewstep export onnx`",
        ));
    }
    Ok(model)
}

/// The default-domain opset a model imports (0 when it declares none).
pub fn default_opset(model: &pb::ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version)
}

/// One graph input or output as declared in a file: element type code and dims (`None` for a
/// symbolic dim).
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredIo {
    pub name: String,
    pub elem: i32,
    pub dims: Vec<Option<usize>>,
}

fn declared(v: &pb::ValueInfoProto) -> DeclaredIo {
    use pb::tensor_shape_proto::dimension::Value;
    let (elem, dims) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => (
            t.elem_type,
            t.shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(Value::DimValue(n)) if n >= 0 => Some(n as usize),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        None => (0, Vec::new()),
    };
    DeclaredIo {
        name: v.name.clone(),
        elem,
        dims,
    }
}

/// The graph's runtime inputs (initializers listed as inputs, as old exporters do, left out).
pub fn declared_inputs(model: &pb::ModelProto) -> Vec<DeclaredIo> {
    let Some(g) = model.graph.as_ref() else {
        return Vec::new();
    };
    g.input
        .iter()
        .filter(|i| !g.initializer.iter().any(|t| t.name == i.name))
        .map(declared)
        .collect()
}

pub fn declared_outputs(model: &pb::ModelProto) -> Vec<DeclaredIo> {
    model
        .graph
        .as_ref()
        .map(|g| g.output.iter().map(declared).collect())
        .unwrap_or_default()
}
