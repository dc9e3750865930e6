//! Lowering a captured burn_ir graph to ONNX nodes, one burn op at a time. GroupNorm's
//! statistics are recognised first and written as InstanceNormalization (see `groupnorm`).

use std::collections::{HashMap, HashSet};

use burn::backend::capture::TensorId;
use burn::backend::ir::{
    ActivationOperationIr as A, AvgPool2dOpIr, BaseOperationIr as B, BoolOperationIr as Bo,
    FloatOperationIr as F, IntOperationIr as I, LayerNormOpIr, LinearOpIr, MaxPool2dOpIr,
    ModuleOperationIr as M, NumericOperationIr as Nu, OperationIr as Op, PadModeIr, PadOpIr,
    ReduceDimOpIr, ScalarIr, ShapeOpIr, SliceOpIr, TensorIr,
};
use burn::tensor::{DType, TensorData, bf16, f16};

use crate::capture::Captured;
use crate::error::{ExportError, Result};
use crate::graph::{Attr, Dim, ElemType, Graph, Io, Role, ShapeUse, TensorValue};
use crate::groupnorm;
use crate::opset::Opset;

/// The ONNX element type of a burn dtype.
pub fn elem_of(d: DType) -> Result<ElemType> {
    Ok(match d {
        DType::F32 | DType::Flex32 => ElemType::F32,
        DType::F16 => ElemType::F16,
        DType::BF16 => ElemType::BF16,
        DType::F64 => ElemType::F64,
        DType::I64 => ElemType::I64,
        DType::I32 => ElemType::I32,
        DType::I16 => ElemType::I16,
        DType::I8 => ElemType::I8,
        DType::U8 => ElemType::U8,
        DType::Bool(_) => ElemType::Bool,
        other => {
            return Err(ExportError::Unsupported {
                op: format!("tensor of dtype {other:?}"),
                hint: "ONNX export handles float, signed int, uint8 and bool tensors".into(),
            });
        }
    })
}

/// A captured value as an ONNX constant (little-endian bytes, bools as one byte each).
pub fn tensor_value(data: &TensorData) -> Result<TensorValue> {
    let elem = elem_of(data.dtype())?;
    let dims = data.shape().to_vec();
    let n: usize = dims.iter().product();
    let bytes = data.as_bytes();
    let raw = if elem == ElemType::Bool && bytes.len() != n {
        // Wider bool storage (e.g. u32): one ONNX byte per element, non-zero is true.
        let width = bytes.len() / n.max(1);
        bytes
            .chunks_exact(width.max(1))
            .map(|c| u8::from(c.iter().any(|&b| b != 0)))
            .collect()
    } else {
        bytes.to_vec()
    };
    Ok(TensorValue { elem, dims, raw })
}

/// A rank-0 constant holding `s` converted to `elem`.
fn scalar_value(s: ScalarIr, elem: ElemType) -> TensorValue {
    let f = match s {
        ScalarIr::Float(x) => x,
        ScalarIr::Int(x) => x as f64,
        ScalarIr::UInt(x) => x as f64,
        ScalarIr::Bool(b) => f64::from(u8::from(b)),
    };
    let i = match s {
        ScalarIr::Int(x) => x,
        ScalarIr::UInt(x) => x as i64,
        _ => f as i64,
    };
    let raw = match elem {
        ElemType::F32 => (f as f32).to_le_bytes().to_vec(),
        ElemType::F64 => f.to_le_bytes().to_vec(),
        ElemType::F16 => f16::from_f64(f).to_le_bytes().to_vec(),
        ElemType::BF16 => bf16::from_f64(f).to_le_bytes().to_vec(),
        ElemType::I64 => i.to_le_bytes().to_vec(),
        ElemType::I32 => (i as i32).to_le_bytes().to_vec(),
        ElemType::I16 => (i as i16).to_le_bytes().to_vec(),
        ElemType::I8 => (i as i8).to_le_bytes().to_vec(),
        ElemType::U8 => (i as u8).to_le_bytes().to_vec(),
        ElemType::Bool => vec![u8::from(f != 0.0)],
    };
    TensorValue {
        elem,
        dims: Vec::new(),
        raw,
    }
}

/// `Family(Variant)` of an op, for messages.
pub fn op_name(op: &Op) -> String {
    let debug = format!("{op:?}");
    let head = debug.split('{').next().unwrap_or(&debug);
    let head = head.rfind('(').map_or(head, |i| &head[..i]);
    let opened = head.matches('(').count();
    format!("{}{}", head.trim(), ")".repeat(opened))
}

fn unsupported(op: &Op, hint: &str) -> ExportError {
    ExportError::Unsupported {
        op: op_name(op),
        hint: hint.into(),
    }
}

fn dims_i64(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

/// The parts of a 1-D or 2-D burn convolution, for one Conv lowering.
struct ConvParts<'a> {
    x: &'a TensorIr,
    weight: &'a TensorIr,
    bias: Option<&'a TensorIr>,
    stride: &'a [usize],
    padding: &'a [(usize, usize)],
    dilation: &'a [usize],
    groups: usize,
    out: &'a TensorIr,
}

/// Lowers one capture into a [`Graph`].
struct Lowering<'a> {
    cap: &'a Captured,
    opset: Opset,
    g: Graph,
    names: HashMap<TensorId, String>,
    scalars: HashMap<(ElemType, Vec<u8>), String>,
    /// Shape and dtype of every tensor the graph produced, for the output's value info.
    produced: HashMap<TensorId, TensorIr>,
}

/// Lower a capture to an ONNX graph with static shapes (the capture's batch size).
pub fn lower(cap: &Captured, opset: Opset) -> Result<Graph> {
    let mut l = Lowering {
        cap,
        opset,
        g: Graph::default(),
        names: HashMap::new(),
        scalars: HashMap::new(),
        produced: HashMap::new(),
    };
    l.graph_inputs()?;
    let ops = &cap.graph.operations;
    let users = groupnorm::consumers(ops);
    let mut replaced = HashSet::new();
    for (i, op) in ops.iter().enumerate() {
        if replaced.contains(&i) {
            continue;
        }
        if let Some(m) = groupnorm::match_at(ops, &users, i) {
            // Emitted at the block's first op: its input exists, and its intermediates are
            // used nowhere else.
            l.instance_norm(&m)?;
            replaced.extend(m.ops.iter().copied());
            continue;
        }
        l.op(op)?;
    }
    l.graph_output()?;
    Ok(l.g)
}

impl Lowering<'_> {
    fn graph_inputs(&mut self) -> Result<()> {
        for &(input, id) in &self.cap.inputs {
            let data = self
                .cap
                .values
                .get(&id)
                .ok_or_else(|| ExportError::Capture {
                    message: format!("input `{}` has no recorded value", input.name()),
                })?;
            let dims = data.shape().to_vec();
            self.g.inputs.push(Io {
                name: input.name().into(),
                elem: input.elem(),
                dims: dims.iter().map(|&d| Dim::Fixed(d)).collect(),
            });
            self.g.shapes.insert(input.name().into(), dims.clone());
            let captured = elem_of(data.dtype())?;
            let name = if captured == input.elem() {
                input.name().to_string()
            } else {
                // e.g. int64 class labels fed to a backend that stores ints as int32.
                self.g.node(
                    "Cast",
                    vec![input.name().into()],
                    vec![("to", Attr::Int(captured.onnx_code() as i64))],
                    &dims,
                )
            };
            self.names.insert(id, name);
        }
        Ok(())
    }

    fn graph_output(&mut self) -> Result<()> {
        let id = self.cap.output;
        let t = self
            .produced
            .get(&id)
            .cloned()
            .ok_or_else(|| ExportError::Capture {
                message: "the output is not computed by the graph".into(),
            })?;
        let name = self.names[&id].clone();
        self.g.rename(&name, self.cap.output_name);
        self.g.outputs.push(Io {
            name: self.cap.output_name.into(),
            elem: elem_of(t.dtype)?,
            dims: t.shape.iter().map(|&d| Dim::Fixed(d)).collect(),
        });
        Ok(())
    }

    /// The ONNX name of a tensor the op reads; captured values become initializers on first use.
    fn input(&mut self, t: &TensorIr) -> Result<String> {
        if let Some(n) = self.names.get(&t.id) {
            return Ok(n.clone());
        }
        let data = self
            .cap
            .values
            .get(&t.id)
            .ok_or_else(|| ExportError::Capture {
                message: format!("tensor {} is read before it is computed", t.id),
            })?;
        let stem = self
            .cap
            .param_names
            .get(&t.id)
            .cloned()
            .unwrap_or_else(|| "const".into());
        let name = self.g.constant(&stem, tensor_value(data)?, Role::Weight);
        self.g.shapes.insert(name.clone(), data.shape().to_vec());
        self.names.insert(t.id, name.clone());
        Ok(name)
    }

    /// A scalar operand of `like`'s element type (shared between uses).
    fn scalar(&mut self, s: ScalarIr, like: &TensorIr) -> Result<String> {
        let v = scalar_value(s, elem_of(like.dtype)?);
        let key = (v.elem, v.raw.clone());
        if let Some(n) = self.scalars.get(&key) {
            return Ok(n.clone());
        }
        let name = self.g.constant("scalar", v, Role::Fixed);
        self.g.shapes.insert(name.clone(), Vec::new());
        self.scalars.insert(key, name.clone());
        Ok(name)
    }

    fn shape_const(&mut self, used_by: ShapeUse, values: &[i64]) -> String {
        let name = self
            .g
            .constant("shape", TensorValue::i64s(values), Role::Shape(used_by));
        self.g.shapes.insert(name.clone(), vec![values.len()]);
        name
    }

    /// Emit a node whose single output is `out`.
    fn emit(
        &mut self,
        op_type: &'static str,
        inputs: Vec<String>,
        attrs: Vec<(&'static str, Attr)>,
        out: &TensorIr,
    ) {
        let name = self.g.node(op_type, inputs, attrs, &out.shape);
        self.names.insert(out.id, name);
        self.produced.insert(out.id, out.clone());
    }

    fn unary(&mut self, op_type: &'static str, input: &TensorIr, out: &TensorIr) -> Result<()> {
        let x = self.input(input)?;
        self.emit(op_type, vec![x], vec![], out);
        Ok(())
    }

    fn binary(
        &mut self,
        op_type: &'static str,
        lhs: &TensorIr,
        rhs: &TensorIr,
        out: &TensorIr,
    ) -> Result<()> {
        let (a, b) = (self.input(lhs)?, self.input(rhs)?);
        self.emit(op_type, vec![a, b], vec![], out);
        Ok(())
    }

    fn with_scalar(
        &mut self,
        op_type: &'static str,
        lhs: &TensorIr,
        rhs: ScalarIr,
        out: &TensorIr,
    ) -> Result<()> {
        let (a, b) = (self.input(lhs)?, self.scalar(rhs, lhs)?);
        self.emit(op_type, vec![a, b], vec![], out);
        Ok(())
    }

    /// A Reduce* op over `axes` (all axes when `None`, then reshaped to burn's `[1]`).
    fn reduce(
        &mut self,
        op_type: &'static str,
        input: &TensorIr,
        axes: Option<&[usize]>,
        out: &TensorIr,
    ) -> Result<()> {
        let x = self.input(input)?;
        let axes_as_input = op_type == "ReduceSum" || self.opset.reduce_axes_as_input();
        let mut inputs = vec![x];
        let mut attrs = vec![("keepdims", Attr::Int(i64::from(axes.is_some())))];
        if let Some(axes) = axes {
            let axes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
            if axes_as_input {
                inputs.push(self.g.ints("axes", &axes));
            } else {
                attrs.push(("axes", Attr::Ints(axes)));
            }
        }
        if axes.is_some() {
            self.emit(op_type, inputs, attrs, out);
        } else {
            let all = self.g.node(op_type, inputs, attrs, &[]);
            let shape = self.shape_const(ShapeUse::Reshape, &dims_i64(&out.shape));
            self.emit("Reshape", vec![all, shape], vec![], out);
        }
        Ok(())
    }

    /// ConstantOfShape filled with `value` (burn zeros/ones/full/empty).
    fn filled(&mut self, value: ScalarIr, out: &TensorIr) -> Result<()> {
        let mut v = scalar_value(value, elem_of(out.dtype)?);
        v.dims = vec![1];
        let shape = self.shape_const(ShapeUse::Creation, &dims_i64(&out.shape));
        self.emit(
            "ConstantOfShape",
            vec![shape],
            vec![("value", Attr::Tensor(v))],
            out,
        );
        Ok(())
    }

    fn cast(&mut self, input: &TensorIr, out: &TensorIr) -> Result<()> {
        let x = self.input(input)?;
        let to = elem_of(out.dtype)?.onnx_code() as i64;
        self.emit("Cast", vec![x], vec![("to", Attr::Int(to))], out);
        Ok(())
    }

    /// Write the InstanceNormalization form of one recognised GroupNorm statistic block.
    fn instance_norm(&mut self, m: &groupnorm::Match) -> Result<()> {
        let x = self.input(&m.input)?;
        let groups = m.input.shape[1];
        let ones = self.g.constant(
            "instance_norm_scale",
            TensorValue::f32s(vec![groups], &vec![1.0; groups]),
            Role::Fixed,
        );
        let zeros = self.g.constant(
            "instance_norm_bias",
            TensorValue::f32s(vec![groups], &vec![0.0; groups]),
            Role::Fixed,
        );
        self.emit(
            "InstanceNormalization",
            vec![x, ones, zeros],
            vec![("epsilon", Attr::Float(m.epsilon as f32))],
            &m.out,
        );
        Ok(())
    }

    fn op(&mut self, op: &Op) -> Result<()> {
        match op {
            Op::BaseFloat(b) | Op::BaseInt(b) | Op::BaseBool(b) => self.base(op, b),
            Op::NumericFloat(_, n) | Op::NumericInt(_, n) => self.numeric(op, n),
            Op::Float(_, f) => self.float(op, f),
            Op::Int(i) => self.int(op, i),
            Op::Bool(b) => self.boolean(op, b),
            Op::Module(m) => self.module(op, m),
            Op::Activation(a) => self.activation(op, a),
            Op::Init(_) | Op::Drop(_) => Ok(()),
            Op::Custom(_) => Err(unsupported(op, "custom kernels have no ONNX form")),
            Op::Distributed(_) => Err(unsupported(
                op,
                "collective ops do not belong in a single-device graph",
            )),
        }
    }

    fn base(&mut self, op: &Op, b: &B) -> Result<()> {
        if self.base_layout(b)? || self.base_indexing(op, b)? || self.base_misc(b)? {
            return Ok(());
        }
        Err(unsupported(
            op,
            "no ONNX lowering for this tensor manipulation",
        ))
    }

    /// Lowers reshape, transpose, flip and expand; `Ok(false)` when `b` is another op.
    fn base_layout(&mut self, b: &B) -> Result<bool> {
        match b {
            B::Reshape(r) if !self.names.contains_key(&r.input.id) => self.fold_reshape(r)?,
            B::Reshape(r) => {
                let x = self.input(&r.input)?;
                let s = self.shape_const(ShapeUse::Reshape, &dims_i64(&r.out.shape));
                self.emit("Reshape", vec![x, s], vec![], &r.out);
            }
            B::SwapDims(s) => {
                let mut perm: Vec<i64> = (0..s.input.shape.len() as i64).collect();
                perm.swap(s.dim1, s.dim2);
                let x = self.input(&s.input)?;
                self.emit(
                    "Transpose",
                    vec![x],
                    vec![("perm", Attr::Ints(perm))],
                    &s.out,
                );
            }
            B::Permute(p) => {
                let x = self.input(&p.input)?;
                let perm = p.axes.iter().map(|&a| a as i64).collect();
                self.emit(
                    "Transpose",
                    vec![x],
                    vec![("perm", Attr::Ints(perm))],
                    &p.out,
                );
            }
            B::Flip(f) => {
                // Reverse each axis: start at the last element, step −1 past the first.
                let k = f.axes.len();
                let x = self.input(&f.input)?;
                let starts = self.g.ints("starts", &vec![-1; k]);
                let ends = self.g.ints("ends", &vec![i64::MIN; k]);
                let axes = self.g.ints(
                    "axes",
                    &f.axes.iter().map(|&a| a as i64).collect::<Vec<_>>(),
                );
                let steps = self.g.ints("steps", &vec![-1; k]);
                self.emit("Slice", vec![x, starts, ends, axes, steps], vec![], &f.out);
            }
            B::Expand(e) => {
                let x = self.input(&e.input)?;
                let s = self.shape_const(ShapeUse::Expand, &dims_i64(&e.out.shape));
                self.emit("Expand", vec![x, s], vec![], &e.out);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Folds a reshaped parameter (GroupNorm's γ, β as [1, C, 1, 1], a bias as [1, d]) into its
    /// initializer.
    fn fold_reshape(&mut self, r: &ShapeOpIr) -> Result<()> {
        let Some(data) = self.cap.values.get(&r.input.id) else {
            return Err(ExportError::Capture {
                message: format!("tensor {} is read before it is computed", r.input.id),
            });
        };
        let mut v = tensor_value(data)?;
        v.dims = r.out.shape.to_vec();
        let stem = self
            .cap
            .param_names
            .get(&r.input.id)
            .cloned()
            .unwrap_or_else(|| "const".into());
        let name = self.g.constant(&stem, v, Role::Weight);
        self.g.shapes.insert(name.clone(), r.out.shape.to_vec());
        self.names.insert(r.out.id, name);
        Ok(())
    }

    /// Lowers slice, select, gather and the masks; `Ok(false)` when `b` is another op.
    fn base_indexing(&mut self, op: &Op, b: &B) -> Result<bool> {
        match b {
            B::Slice(s) => self.slice(op, s)?,
            B::Select(s) => {
                let (x, idx) = (self.input(&s.tensor)?, self.input(&s.indices)?);
                self.emit(
                    "Gather",
                    vec![x, idx],
                    vec![("axis", Attr::Int(s.dim as i64))],
                    &s.out,
                );
            }
            B::Gather(g) => {
                let (x, idx) = (self.input(&g.tensor)?, self.input(&g.indices)?);
                self.emit(
                    "GatherElements",
                    vec![x, idx],
                    vec![("axis", Attr::Int(g.dim as i64))],
                    &g.out,
                );
            }
            B::MaskWhere(m) => {
                // burn: mask ? value : tensor; ONNX Where(cond, X, Y) = cond ? X : Y.
                let (mask, v, t) = (
                    self.input(&m.mask)?,
                    self.input(&m.value)?,
                    self.input(&m.tensor)?,
                );
                self.emit("Where", vec![mask, v, t], vec![], &m.out);
            }
            B::MaskFill(m) => {
                let (mask, t) = (self.input(&m.mask)?, self.input(&m.tensor)?);
                let v = self.scalar(m.value, &m.tensor)?;
                self.emit("Where", vec![mask, v, t], vec![], &m.out);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// ONNX Slice over the axes a burn slice narrows (Identity when it narrows none).
    fn slice(&mut self, op: &Op, s: &SliceOpIr) -> Result<()> {
        let (mut starts, mut ends, mut axes, mut steps) = (vec![], vec![], vec![], vec![]);
        for (axis, (r, &dim)) in s.ranges.iter().zip(s.tensor.shape.iter()).enumerate() {
            if r.step < 1 {
                return Err(unsupported(op, "slices with a negative step (use `flip`)"));
            }
            let dim = dim as isize;
            let norm = |v: isize| if v < 0 { v + dim } else { v }.clamp(0, dim);
            let start = norm(r.start);
            let end = r.end.map_or(dim, norm);
            if start == 0 && end == dim && r.step == 1 {
                continue;
            }
            starts.push(start as i64);
            ends.push(end as i64);
            axes.push(axis as i64);
            steps.push(r.step as i64);
        }
        let x = self.input(&s.tensor)?;
        if axes.is_empty() {
            self.emit("Identity", vec![x], vec![], &s.out);
        } else {
            let st = self.shape_const(ShapeUse::SliceStarts, &starts);
            let en = self.shape_const(ShapeUse::SliceEnds, &ends);
            let ax = self.g.ints("axes", &axes);
            let sp = self.g.ints("steps", &steps);
            self.emit("Slice", vec![x, st, en, ax, sp], vec![], &s.out);
        }
        Ok(())
    }

    /// Lowers equality, repeat, concat, cast and creation ops; `Ok(false)` when `b` is another op.
    fn base_misc(&mut self, b: &B) -> Result<bool> {
        match b {
            B::Equal(e) => self.binary("Equal", &e.lhs, &e.rhs, &e.out)?,
            B::EqualElem(e) => self.with_scalar("Equal", &e.lhs, e.rhs, &e.out)?,
            B::NotEqual(e) => {
                let (a, b2) = (self.input(&e.lhs)?, self.input(&e.rhs)?);
                let eq = self.g.node("Equal", vec![a, b2], vec![], &e.out.shape);
                self.emit("Not", vec![eq], vec![], &e.out);
            }
            B::NotEqualElem(e) => {
                let (a, s) = (self.input(&e.lhs)?, self.scalar(e.rhs, &e.lhs)?);
                let eq = self.g.node("Equal", vec![a, s], vec![], &e.out.shape);
                self.emit("Not", vec![eq], vec![], &e.out);
            }
            B::RepeatDim(r) => {
                let mut reps = vec![1i64; r.tensor.shape.len()];
                reps[r.dim] = r.times as i64;
                let x = self.input(&r.tensor)?;
                let reps = self.g.ints("repeats", &reps);
                self.emit("Tile", vec![x, reps], vec![], &r.out);
            }
            B::Cat(c) => {
                let xs = c
                    .tensors
                    .iter()
                    .map(|t| self.input(t))
                    .collect::<Result<Vec<_>>>()?;
                self.emit(
                    "Concat",
                    xs,
                    vec![("axis", Attr::Int(c.dim as i64))],
                    &c.out,
                );
            }
            B::Cast(c) => self.cast(&c.input, &c.out)?,
            B::Empty(c) | B::Zeros(c) => self.filled(ScalarIr::Int(0), &c.out)?,
            B::Ones(c) => self.filled(ScalarIr::Int(1), &c.out)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn numeric(&mut self, op: &Op, n: &Nu) -> Result<()> {
        if self.numeric_arith(n)? || self.numeric_reduce_compare(n)? || self.numeric_other(n)? {
            return Ok(());
        }
        Err(unsupported(op, "no ONNX lowering for this numeric op"))
    }

    /// Lowers arithmetic, integer remainder and sign ops; `Ok(false)` when `n` is another op.
    fn numeric_arith(&mut self, n: &Nu) -> Result<bool> {
        match n {
            Nu::Add(b) => self.binary("Add", &b.lhs, &b.rhs, &b.out)?,
            Nu::Sub(b) => self.binary("Sub", &b.lhs, &b.rhs, &b.out)?,
            Nu::Mul(b) => self.binary("Mul", &b.lhs, &b.rhs, &b.out)?,
            Nu::Div(b) => self.binary("Div", &b.lhs, &b.rhs, &b.out)?,
            Nu::AddScalar(s) => self.with_scalar("Add", &s.lhs, s.rhs, &s.out)?,
            Nu::SubScalar(s) => self.with_scalar("Sub", &s.lhs, s.rhs, &s.out)?,
            Nu::MulScalar(s) => self.with_scalar("Mul", &s.lhs, s.rhs, &s.out)?,
            Nu::DivScalar(s) => self.with_scalar("Div", &s.lhs, s.rhs, &s.out)?,
            Nu::Rem(b) if !b.lhs.dtype.is_float() => {
                // fmod = 0: the result takes the divisor's sign, as burn's `remainder`.
                let (a, c) = (self.input(&b.lhs)?, self.input(&b.rhs)?);
                self.emit("Mod", vec![a, c], vec![("fmod", Attr::Int(0))], &b.out);
            }
            Nu::Abs(u) => self.unary("Abs", &u.input, &u.out)?,
            Nu::Neg(u) => self.unary("Neg", &u.input, &u.out)?,
            Nu::Sign(u) => self.unary("Sign", &u.input, &u.out)?,
            Nu::Full(f) => self.filled(f.value, &f.out)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Lowers reductions, arg-max/min and comparisons; `Ok(false)` when `n` is another op.
    fn numeric_reduce_compare(&mut self, n: &Nu) -> Result<bool> {
        match n {
            Nu::MeanDim(r) => self.reduce("ReduceMean", &r.input, Some(&[r.axis]), &r.out)?,
            Nu::Mean(r) => self.reduce("ReduceMean", &r.input, None, &r.out)?,
            Nu::SumDim(r) => self.reduce("ReduceSum", &r.input, Some(&[r.axis]), &r.out)?,
            Nu::SumDims(r) => self.reduce("ReduceSum", &r.input, Some(&r.axes), &r.out)?,
            Nu::Sum(r) => self.reduce("ReduceSum", &r.input, None, &r.out)?,
            Nu::ProdDim(r) => self.reduce("ReduceProd", &r.input, Some(&[r.axis]), &r.out)?,
            Nu::Prod(r) => self.reduce("ReduceProd", &r.input, None, &r.out)?,
            Nu::MaxDim(r) => self.reduce("ReduceMax", &r.input, Some(&[r.axis]), &r.out)?,
            Nu::Max(r) => self.reduce("ReduceMax", &r.input, None, &r.out)?,
            Nu::MinDim(r) => self.reduce("ReduceMin", &r.input, Some(&[r.axis]), &r.out)?,
            Nu::Min(r) => self.reduce("ReduceMin", &r.input, None, &r.out)?,
            Nu::ArgMax(r) => self.arg_extreme("ArgMax", r)?,
            Nu::ArgMin(r) => self.arg_extreme("ArgMin", r)?,
            Nu::Greater(b) => self.binary("Greater", &b.lhs, &b.rhs, &b.out)?,
            Nu::GreaterEqual(b) => self.binary("GreaterOrEqual", &b.lhs, &b.rhs, &b.out)?,
            Nu::Lower(b) => self.binary("Less", &b.lhs, &b.rhs, &b.out)?,
            Nu::LowerEqual(b) => self.binary("LessOrEqual", &b.lhs, &b.rhs, &b.out)?,
            Nu::GreaterElem(s) => self.with_scalar("Greater", &s.lhs, s.rhs, &s.out)?,
            Nu::GreaterEqualElem(s) => self.with_scalar("GreaterOrEqual", &s.lhs, s.rhs, &s.out)?,
            Nu::LowerElem(s) => self.with_scalar("Less", &s.lhs, s.rhs, &s.out)?,
            Nu::LowerEqualElem(s) => self.with_scalar("LessOrEqual", &s.lhs, s.rhs, &s.out)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// ArgMax or ArgMin (`op_type`) keeping the axis, cast when burn's index type is not int64.
    fn arg_extreme(&mut self, op_type: &'static str, r: &ReduceDimOpIr) -> Result<()> {
        let x = self.input(&r.input)?;
        let attrs = vec![
            ("axis", Attr::Int(r.axis as i64)),
            ("keepdims", Attr::Int(1)),
        ];
        if elem_of(r.out.dtype)? == ElemType::I64 {
            self.emit(op_type, vec![x], attrs, &r.out);
        } else {
            let idx = self.g.node(op_type, vec![x], attrs, &r.out.shape);
            let to = elem_of(r.out.dtype)?.onnx_code() as i64;
            self.emit("Cast", vec![idx], vec![("to", Attr::Int(to))], &r.out);
        }
        Ok(())
    }

    /// Lowers clamps, powers, cumulative sum and padding; `Ok(false)` when `n` is another op.
    fn numeric_other(&mut self, n: &Nu) -> Result<bool> {
        match n {
            Nu::Clamp(c) => {
                let x = self.input(&c.tensor)?;
                let (lo, hi) = (
                    self.scalar(c.min, &c.tensor)?,
                    self.scalar(c.max, &c.tensor)?,
                );
                self.emit("Clip", vec![x, lo, hi], vec![], &c.out);
            }
            Nu::ClampMin(s) => self.with_scalar("Max", &s.lhs, s.rhs, &s.out)?,
            Nu::ClampMax(s) => self.with_scalar("Min", &s.lhs, s.rhs, &s.out)?,
            Nu::Powi(b) => self.binary("Pow", &b.lhs, &b.rhs, &b.out)?,
            Nu::PowiScalar(s) => self.with_scalar("Pow", &s.lhs, s.rhs, &s.out)?,
            Nu::CumSum(d) => {
                let x = self.input(&d.input)?;
                let axis = self.g.constant(
                    "axis",
                    scalar_value(ScalarIr::Int(d.axis as i64), ElemType::I64),
                    Role::Fixed,
                );
                self.emit("CumSum", vec![x, axis], vec![], &d.out);
            }
            Nu::Pad(p) => self.pad(p)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// ONNX Pad (all begins, then all ends) in constant, reflect or edge mode.
    fn pad(&mut self, p: &PadOpIr) -> Result<()> {
        let x = self.input(&p.input)?;
        let pads: Vec<i64> = p
            .padding
            .iter()
            .map(|&(b, _)| b as i64)
            .chain(p.padding.iter().map(|&(_, e)| e as i64))
            .collect();
        let pads = self.g.ints("pads", &pads);
        let (mode, value) = match p.mode {
            PadModeIr::Constant(v) => ("constant", Some(self.scalar(v, &p.input)?)),
            PadModeIr::Reflect => ("reflect", None),
            PadModeIr::Edge => ("edge", None),
        };
        let mut inputs = vec![x, pads];
        inputs.extend(value);
        self.emit("Pad", inputs, vec![("mode", Attr::Str(mode))], &p.out);
        Ok(())
    }

    fn float(&mut self, op: &Op, f: &F) -> Result<()> {
        fn unary(f: &F) -> Option<(&'static str, &burn::backend::ir::UnaryOpIr)> {
            Some(match f {
                F::Exp(u) => ("Exp", u),
                F::Log(u) => ("Log", u),
                F::Erf(u) => ("Erf", u),
                F::Sqrt(u) => ("Sqrt", u),
                F::Cos(u) => ("Cos", u),
                F::Sin(u) => ("Sin", u),
                F::Tan(u) => ("Tan", u),
                F::Tanh(u) => ("Tanh", u),
                F::Cosh(u) => ("Cosh", u),
                F::Sinh(u) => ("Sinh", u),
                F::ArcCos(u) => ("Acos", u),
                F::ArcSin(u) => ("Asin", u),
                F::ArcTan(u) => ("Atan", u),
                F::ArcCosh(u) => ("Acosh", u),
                F::ArcSinh(u) => ("Asinh", u),
                F::ArcTanh(u) => ("Atanh", u),
                F::Round(u) => ("Round", u),
                F::Floor(u) => ("Floor", u),
                F::Ceil(u) => ("Ceil", u),
                F::Recip(u) => ("Reciprocal", u),
                F::IsNan(u) => ("IsNaN", u),
                F::IsInf(u) => ("IsInf", u),
                _ => return None,
            })
        }
        if let Some((op_type, u)) = unary(f) {
            return self.unary(op_type, &u.input, &u.out);
        }
        match f {
            F::Log1p(u) => {
                let x = self.input(&u.input)?;
                let one = self.scalar(ScalarIr::Float(1.0), &u.input)?;
                let sum = self.g.node("Add", vec![x, one], vec![], &u.out.shape);
                self.emit("Log", vec![sum], vec![], &u.out);
            }
            F::Trunc(u) => {
                // trunc(x) = sign(x)·⌊|x|⌋
                let x = self.input(&u.input)?;
                let s = self.g.node("Sign", vec![x.clone()], vec![], &u.out.shape);
                let a = self.g.node("Abs", vec![x], vec![], &u.out.shape);
                let fl = self.g.node("Floor", vec![a], vec![], &u.out.shape);
                self.emit("Mul", vec![s, fl], vec![], &u.out);
            }
            F::PowfScalar(s) => self.with_scalar("Pow", &s.lhs, s.rhs, &s.out)?,
            F::Powf(b) => self.binary("Pow", &b.lhs, &b.rhs, &b.out)?,
            F::IntoInt(c) => self.cast(&c.input, &c.out)?,
            F::Matmul(m) => self.binary("MatMul", &m.lhs, &m.rhs, &m.out)?,
            F::Random(_) => {
                return Err(unsupported(
                    op,
                    "randomness inside the forward pass (dropout in training mode?) cannot be exported; export an inference model",
                ));
            }
            _ => return Err(unsupported(op, "no ONNX lowering for this float op")),
        }
        Ok(())
    }

    fn int(&mut self, op: &Op, i: &I) -> Result<()> {
        match i {
            I::IntoFloat(c) => self.cast(&c.input, &c.out),
            I::Matmul(m) => self.binary("MatMul", &m.lhs, &m.rhs, &m.out),
            _ => Err(unsupported(op, "bitwise ops have no lowering")),
        }
    }

    fn boolean(&mut self, _op: &Op, b: &Bo) -> Result<()> {
        match b {
            Bo::IntoFloat(c) | Bo::IntoInt(c) => self.cast(&c.input, &c.out),
            Bo::Not(u) => self.unary("Not", &u.input, &u.out),
            Bo::And(x) => self.binary("And", &x.lhs, &x.rhs, &x.out),
            Bo::Or(x) => self.binary("Or", &x.lhs, &x.rhs, &x.out),
            Bo::Xor(x) => self.binary("Xor", &x.lhs, &x.rhs, &x.out),
        }
    }

    /// ONNX Conv from burn's conv op parts: `x`, `weight` `[c_out, c_in/groups, k…]`, optional
    /// bias, and the options' stride, (begin, end) padding per spatial axis, dilation, groups.
    fn conv(&mut self, c: ConvParts<'_>) -> Result<()> {
        let mut inputs = vec![self.input(c.x)?, self.input(c.weight)?];
        if let Some(b) = c.bias {
            inputs.push(self.input(b)?);
        }
        let ints = |v: &[usize]| Attr::Ints(v.iter().map(|&d| d as i64).collect());
        // ONNX pads: all begins, then all ends.
        let pads: Vec<usize> = c
            .padding
            .iter()
            .map(|p| p.0)
            .chain(c.padding.iter().map(|p| p.1))
            .collect();
        let attrs = vec![
            ("kernel_shape", ints(&c.weight.shape[2..])),
            ("strides", ints(c.stride)),
            ("pads", ints(&pads)),
            ("dilations", ints(c.dilation)),
            ("group", Attr::Int(c.groups as i64)),
        ];
        self.emit("Conv", inputs, attrs, c.out);
        Ok(())
    }

    fn module(&mut self, op: &Op, m: &M) -> Result<()> {
        match m {
            M::Conv2d(c) => self.conv(ConvParts {
                x: &c.x,
                weight: &c.weight,
                bias: c.bias.as_ref(),
                stride: &c.options.stride,
                padding: &c.options.padding,
                dilation: &c.options.dilation,
                groups: c.options.groups,
                out: &c.out,
            })?,
            M::Conv1d(c) => self.conv(ConvParts {
                x: &c.x,
                weight: &c.weight,
                bias: c.bias.as_ref(),
                stride: &c.options.stride,
                padding: &c.options.padding,
                dilation: &c.options.dilation,
                groups: c.options.groups,
                out: &c.out,
            })?,
            M::Linear(l) => self.linear(l)?,
            M::Embedding(e) => {
                let (w, idx) = (self.input(&e.weights)?, self.input(&e.indices)?);
                self.emit("Gather", vec![w, idx], vec![("axis", Attr::Int(0))], &e.out);
            }
            M::AvgPool2d(p) => self.avg_pool2d(p)?,
            M::MaxPool2d(p) => self.max_pool2d(p)?,
            M::LayerNorm(n) => self.layer_norm(n)?,
            M::Attention(_) => {
                return Err(unsupported(
                    op,
                    "fused attention; write attention as matmul + softmax, as the U-Net's Attention does",
                ));
            }
            _ => return Err(unsupported(op, "no ONNX lowering for this module op")),
        }
        Ok(())
    }

    /// MatMul (plus Add for a bias) for burn's linear, whose weight is `[d_in, d_out]`.
    fn linear(&mut self, l: &LinearOpIr) -> Result<()> {
        // burn stores the weight as [d_in, d_out]: y = x·W + b.
        let (x, w) = (self.input(&l.x)?, self.input(&l.weight)?);
        match &l.bias {
            Some(b) => {
                let xw = self.g.node("MatMul", vec![x, w], vec![], &l.out.shape);
                let b = self.input(b)?;
                self.emit("Add", vec![xw, b], vec![], &l.out);
            }
            None => self.emit("MatMul", vec![x, w], vec![], &l.out),
        }
        Ok(())
    }

    /// ONNX AveragePool for burn's 2-D average pooling (symmetric padding).
    fn avg_pool2d(&mut self, p: &AvgPool2dOpIr) -> Result<()> {
        let x = self.input(&p.x)?;
        let pads = [p.padding[0], p.padding[1], p.padding[0], p.padding[1]];
        let ints = |v: &[usize]| Attr::Ints(v.iter().map(|&d| d as i64).collect());
        let attrs = vec![
            ("kernel_shape", ints(&p.kernel_size)),
            ("strides", ints(&p.stride)),
            ("pads", ints(&pads)),
            (
                "count_include_pad",
                Attr::Int(i64::from(p.count_include_pad)),
            ),
            ("ceil_mode", Attr::Int(i64::from(p.ceil_mode))),
        ];
        self.emit("AveragePool", vec![x], attrs, &p.out);
        Ok(())
    }

    /// ONNX MaxPool for burn's 2-D max pooling (symmetric padding).
    fn max_pool2d(&mut self, p: &MaxPool2dOpIr) -> Result<()> {
        let x = self.input(&p.x)?;
        let pads = [p.padding[0], p.padding[1], p.padding[0], p.padding[1]];
        let ints = |v: &[usize]| Attr::Ints(v.iter().map(|&d| d as i64).collect());
        let attrs = vec![
            ("kernel_shape", ints(&p.kernel_size)),
            ("strides", ints(&p.stride)),
            ("pads", ints(&pads)),
            ("dilations", ints(&p.dilation)),
            ("ceil_mode", Attr::Int(i64::from(p.ceil_mode))),
        ];
        self.emit("MaxPool", vec![x], attrs, &p.out);
        Ok(())
    }

    /// ONNX LayerNormalization over the last axis, with optional β.
    fn layer_norm(&mut self, n: &LayerNormOpIr) -> Result<()> {
        let (x, g) = (self.input(&n.input)?, self.input(&n.gamma)?);
        let mut inputs = vec![x, g];
        if let Some(b) = &n.beta {
            inputs.push(self.input(b)?);
        }
        let eps = match n.epsilon {
            ScalarIr::Float(e) => e,
            other => other.elem::<f64>(),
        };
        self.emit(
            "LayerNormalization",
            inputs,
            vec![
                ("axis", Attr::Int(-1)),
                ("epsilon", Attr::Float(eps as f32)),
            ],
            &n.out,
        );
        Ok(())
    }

    fn activation(&mut self, op: &Op, a: &A) -> Result<()> {
        match a {
            A::Relu(u) => self.unary("Relu", &u.input, &u.out)?,
            A::Sigmoid(u) => self.unary("Sigmoid", &u.input, &u.out)?,
            A::LeakyRelu(s) => {
                let x = self.input(&s.lhs)?;
                let alpha = s.rhs.elem::<f64>() as f32;
                self.emit(
                    "LeakyRelu",
                    vec![x],
                    vec![("alpha", Attr::Float(alpha))],
                    &s.out,
                );
            }
            A::PRelu(b) => self.binary("PRelu", &b.lhs, &b.rhs, &b.out)?,
            A::Gelu(u) => {
                // GELU(x) = ½·x·(1 + erf(x/√2)) (Hendrycks & Gimpel 2016); the Gelu op needs opset 20.
                let x = self.input(&u.input)?;
                let shape = &u.out.shape;
                let r2 = self.scalar(ScalarIr::Float(std::f64::consts::SQRT_2), &u.input)?;
                let one = self.scalar(ScalarIr::Float(1.0), &u.input)?;
                let half = self.scalar(ScalarIr::Float(0.5), &u.input)?;
                let d = self.g.node("Div", vec![x.clone(), r2], vec![], shape);
                let e = self.g.node("Erf", vec![d], vec![], shape);
                let p = self.g.node("Add", vec![e, one], vec![], shape);
                let m = self.g.node("Mul", vec![x, p], vec![], shape);
                self.emit("Mul", vec![m, half], vec![], &u.out);
            }
            A::HardSigmoid(h) => {
                let x = self.input(&h.tensor)?;
                let attrs = vec![
                    ("alpha", Attr::Float(h.alpha.elem::<f64>() as f32)),
                    ("beta", Attr::Float(h.beta.elem::<f64>() as f32)),
                ];
                self.emit("HardSigmoid", vec![x], attrs, &h.out);
            }
            A::LogSigmoid(u) => {
                // log σ(x) = −softplus(−x)
                let x = self.input(&u.input)?;
                let n = self.g.node("Neg", vec![x], vec![], &u.out.shape);
                let sp = self.g.node("Softplus", vec![n], vec![], &u.out.shape);
                self.emit("Neg", vec![sp], vec![], &u.out);
            }
            A::Softmax(d) | A::LogSoftmax(d) => {
                let op_type = if matches!(a, A::Softmax(_)) {
                    "Softmax"
                } else {
                    "LogSoftmax"
                };
                let x = self.input(&d.input)?;
                self.emit(
                    op_type,
                    vec![x],
                    vec![("axis", Attr::Int(d.axis as i64))],
                    &d.out,
                );
            }
            A::Softmin(d) => {
                let x = self.input(&d.input)?;
                let n = self.g.node("Neg", vec![x], vec![], &d.out.shape);
                self.emit(
                    "Softmax",
                    vec![n],
                    vec![("axis", Attr::Int(d.axis as i64))],
                    &d.out,
                );
            }
            _ => {
                return Err(unsupported(
                    op,
                    "backward ops do not belong in an inference graph",
                ));
            }
        }
        Ok(())
    }
}
