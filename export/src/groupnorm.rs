//! Recognising GroupNorm's statistics (Wu & He 2018) in a captured graph, so they are written as
//! one InstanceNormalization: burn's `GroupNorm` reshapes `[n, C, h, w]` to `[n, G, C/G·h·w]` and
//! computes y = (x − mean(x)) / √(mean((x − mean(x))²) + ε) over the last axis, which is exactly
//! InstanceNormalization of the reshaped tensor with scale 1 and bias 0. The reshape back and the
//! per-channel γ, β stay ordinary Reshape, Mul and Add nodes — the opset-17 decomposition
//! Reshape → InstanceNormalization → Reshape → Mul → Add that TensorRT and every runtime parse.

use std::collections::HashMap;

use burn::backend::capture::TensorId;
use burn::backend::ir::{
    FloatOperationIr as F, NumericOperationIr as Nu, OperationIr as Op, ScalarIr, TensorIr,
};

/// One recognised block: `input` `[n, G, L]` normalised over its last axis into `out`.
#[derive(Debug, Clone)]
pub struct Match {
    pub input: TensorIr,
    pub out: TensorIr,
    pub epsilon: f64,
    /// Indices of the ops the block replaces.
    pub ops: Vec<usize>,
}

/// For each tensor, the indices of the ops that read it.
pub fn consumers(ops: &[Op]) -> HashMap<TensorId, Vec<usize>> {
    let mut map: HashMap<TensorId, Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        for t in op.inputs() {
            let users = map.entry(t.id).or_default();
            if users.last() != Some(&i) {
                users.push(i);
            }
        }
    }
    map
}

fn scalar_f64(s: ScalarIr) -> f64 {
    match s {
        ScalarIr::Float(x) => x,
        ScalarIr::Int(x) => x as f64,
        ScalarIr::UInt(x) => x as f64,
        ScalarIr::Bool(b) => f64::from(u8::from(b)),
    }
}

/// The only consumer of `id`, if it has exactly one.
fn single(users: &HashMap<TensorId, Vec<usize>>, id: TensorId) -> Option<usize> {
    match users.get(&id).map(Vec::as_slice) {
        Some([i]) => Some(*i),
        _ => None,
    }
}

/// The GroupNorm statistics block starting with the `mean_dim` at `ops[i]`, if that is one:
///
/// ```text
/// m = mean_dim(x, last)      d = x − m         s = d² (d·d or d^2)
/// v = mean_dim(s, last)      r = √(v + ε)      y = d / r
/// ```
///
/// Every intermediate must be used only inside the block, so dropping it is safe.
pub fn match_at(ops: &[Op], users: &HashMap<TensorId, Vec<usize>>, i: usize) -> Option<Match> {
    let Op::NumericFloat(_, Nu::MeanDim(mean)) = &ops[i] else {
        return None;
    };
    let x = &mean.input;
    let rank = x.shape.len();
    if rank < 3 || mean.axis != rank - 1 {
        return None;
    }
    // d = x − m
    let i_sub = single(users, mean.out.id)?;
    let Op::NumericFloat(_, Nu::Sub(sub)) = &ops[i_sub] else {
        return None;
    };
    if sub.lhs.id != x.id || sub.rhs.id != mean.out.id {
        return None;
    }
    let d = &sub.out;
    // d is read by the square and by the final division, nothing else.
    let d_users = users.get(&d.id)?;
    if d_users.len() != 2 {
        return None;
    }
    let (i_sq, i_div) = (d_users[0], d_users[1]);
    let s = match &ops[i_sq] {
        Op::NumericFloat(_, Nu::Mul(m)) if m.lhs.id == d.id && m.rhs.id == d.id => &m.out,
        Op::NumericFloat(_, Nu::PowiScalar(p)) if p.lhs.id == d.id && scalar_f64(p.rhs) == 2.0 => {
            &p.out
        }
        Op::Float(_, F::PowfScalar(p)) if p.lhs.id == d.id && scalar_f64(p.rhs) == 2.0 => &p.out,
        _ => return None,
    };
    // v = mean_dim(s, last)
    let i_var = single(users, s.id)?;
    let Op::NumericFloat(_, Nu::MeanDim(var)) = &ops[i_var] else {
        return None;
    };
    if var.axis != rank - 1 {
        return None;
    }
    // v + ε
    let i_eps = single(users, var.out.id)?;
    let Op::NumericFloat(_, Nu::AddScalar(eps)) = &ops[i_eps] else {
        return None;
    };
    // √(v + ε)
    let i_sqrt = single(users, eps.out.id)?;
    let Op::Float(_, F::Sqrt(sqrt)) = &ops[i_sqrt] else {
        return None;
    };
    // y = d / √(v + ε)
    if single(users, sqrt.out.id)? != i_div {
        return None;
    }
    let Op::NumericFloat(_, Nu::Div(div)) = &ops[i_div] else {
        return None;
    };
    if div.lhs.id != d.id || div.rhs.id != sqrt.out.id {
        return None;
    }
    Some(Match {
        input: x.clone(),
        out: div.out.clone(),
        epsilon: scalar_f64(eps.rhs),
        ops: vec![i, i_sub, i_sq, i_var, i_eps, i_sqrt, i_div],
    })
}
