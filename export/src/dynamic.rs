//! A symbolic batch axis from two captures: burn records concrete shapes, so the forward pass is
//! captured at two batch sizes n₁ ≠ n₂ and lowered twice. The two graphs must agree node for node;
//! a shape entry that differs must equal k·n in both (k = v₁/n₁ = v₂/n₂), and becomes symbolic:
//! −1 in a Reshape, 1 in an Expand over a batch-sized axis, INT64_MAX as a full Slice end, and
//! otherwise a shape computed at run time from `Shape(x)[0]`.

use crate::error::{ExportError, Result};
use crate::graph::{Attr, Constant, Dim, Graph, Io, Node, Role, ShapeUse, TensorValue};

/// One entry of a shape constant across the two captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Static(i64),
    /// k·N.
    Batch(i64),
}

fn classify(va: i64, vb: i64, na: usize, nb: usize) -> Option<Entry> {
    let (na, nb) = (na as i64, nb as i64);
    if va == vb {
        Some(Entry::Static(va))
    } else if va % na == 0 && va / na == vb / nb && vb % nb == 0 && va / na > 0 {
        Some(Entry::Batch(va / na))
    } else {
        None
    }
}

fn io_dims(a: &Io, b: &Io, na: usize, nb: usize) -> Result<Io> {
    if a.name != b.name || a.elem != b.elem || a.dims.len() != b.dims.len() {
        return Err(ExportError::DynamicBatch(format!(
            "graph input/output `{}` differs between the captures at batch {na} and {nb}",
            a.name
        )));
    }
    let dims = a
        .dims
        .iter()
        .zip(&b.dims)
        .map(|(&x, &y)| match (x, y) {
            (Dim::Fixed(p), Dim::Fixed(q)) if p == q => Ok(Dim::Fixed(p)),
            (Dim::Fixed(p), Dim::Fixed(q)) if p == na && q == nb => Ok(Dim::Batch),
            _ => Err(ExportError::DynamicBatch(format!(
                "`{}` has dims {:?} at batch {na} but {:?} at batch {nb}",
                a.name, a.dims, b.dims
            ))),
        })
        .collect::<Result<_>>()?;
    Ok(Io {
        name: a.name.clone(),
        elem: a.elem,
        dims,
    })
}

fn same_nodes(a: &Graph, b: &Graph, na: usize, nb: usize) -> Result<()> {
    if a.nodes.len() != b.nodes.len() {
        return Err(ExportError::DynamicBatch(format!(
            "the forward pass records {} ONNX nodes at batch {na} but {} at batch {nb}, so it \
             branches on the batch size",
            a.nodes.len(),
            b.nodes.len()
        )));
    }
    for (x, y) in a.nodes.iter().zip(&b.nodes) {
        if x.op_type != y.op_type || x.inputs != y.inputs || x.outputs != y.outputs {
            return Err(ExportError::DynamicBatch(format!(
                "node `{}` ({}) is wired differently at batch {na} and {nb}",
                x.name, x.op_type
            )));
        }
        if x.attrs != y.attrs {
            return Err(ExportError::DynamicBatch(format!(
                "an attribute of node `{}` ({}) depends on the batch size",
                x.name, x.op_type
            )));
        }
    }
    Ok(())
}

/// Merge the graphs of two captures at batch sizes `na` ≠ `nb` into one with a batch axis `N`.
pub fn merge(a: Graph, b: &Graph, na: usize, nb: usize) -> Result<Graph> {
    assert_ne!(
        na, nb,
        "two different batch sizes, by construction of the caller"
    );
    same_nodes(&a, b, na, nb)?;
    let dynamic = dynamic_constants(&a, b, na, nb)?;
    let inputs = merged_ios(&a.inputs, &b.inputs, na, nb)?;
    let outputs = merged_ios(&a.outputs, &b.outputs, na, nb)?;
    let batch_source = inputs
        .iter()
        .find(|io| io.dims.first() == Some(&Dim::Batch))
        .map(|io| io.name.clone());
    let mut g = a;
    g.inputs = inputs;
    g.outputs = outputs;
    let mut rw = Rewriter {
        g,
        batch_source,
        batch_value: None,
        prefix: Vec::new(),
        na,
    };
    for (name, used_by, entries) in dynamic {
        rw.symbolic(&name, used_by, &entries)?;
    }
    Ok(rw.finish())
}

/// A shape constant that depends on the batch size: name, the op reading it, its entries.
type DynamicShape = (String, ShapeUse, Vec<Entry>);

/// The shape constants that differ between the captures; any other difference is an error.
fn dynamic_constants(a: &Graph, b: &Graph, na: usize, nb: usize) -> Result<Vec<DynamicShape>> {
    if a.constants.len() != b.constants.len() {
        return Err(ExportError::DynamicBatch(format!(
            "the captures at batch {na} and {nb} hold different constants"
        )));
    }
    let mut dynamic: Vec<DynamicShape> = Vec::new();
    for (ca, cb) in a.constants.iter().zip(&b.constants) {
        if ca.name != cb.name || ca.role != cb.role {
            return Err(ExportError::DynamicBatch(format!(
                "constant `{}` differs between the captures at batch {na} and {nb}",
                ca.name
            )));
        }
        match ca.role {
            Role::Shape(used_by) if ca.value != cb.value => {
                let entries = shape_entries(ca, cb, na, nb)?;
                dynamic.push((ca.name.clone(), used_by, entries));
            }
            Role::Shape(_) => {}
            Role::Weight | Role::Fixed if ca.value != cb.value => {
                return Err(ExportError::DynamicBatch(format!(
                    "constant `{}` has different values at batch {na} and {nb}",
                    ca.name
                )));
            }
            Role::Weight | Role::Fixed => {}
        }
    }
    Ok(dynamic)
}

/// Classify each entry of a shape constant captured as `ca` at batch `na` and `cb` at `nb`.
fn shape_entries(ca: &Constant, cb: &Constant, na: usize, nb: usize) -> Result<Vec<Entry>> {
    let (va, vb) = (
        ca.value.as_i64s().unwrap_or_default(),
        cb.value.as_i64s().unwrap_or_default(),
    );
    va.iter()
        .zip(&vb)
        .map(|(&p, &q)| classify(p, q, na, nb))
        .collect::<Option<Vec<_>>>()
        .filter(|e| e.len() == va.len() && va.len() == vb.len())
        .ok_or_else(|| {
            ExportError::DynamicBatch(format!(
                "shape constant `{}` is {va:?} at batch {na} but {vb:?} at batch \
                 {nb}, not a multiple of the batch size",
                ca.name
            ))
        })
}

/// The graph inputs (or outputs) of both captures merged pairwise, batch-sized dims symbolic.
fn merged_ios(a: &[Io], b: &[Io], na: usize, nb: usize) -> Result<Vec<Io>> {
    a.iter()
        .zip(b)
        .map(|(x, y)| io_dims(x, y, na, nb))
        .collect::<Result<Vec<_>>>()
}

struct Rewriter {
    g: Graph,
    /// The graph input whose axis 0 is N.
    batch_source: Option<String>,
    /// `Shape(x)[0:1]`, once built.
    batch_value: Option<String>,
    /// Nodes to run before everything else (the batch size and the shapes built from it).
    prefix: Vec<Node>,
    na: usize,
}

impl Rewriter {
    fn consumer(&self, constant: &str) -> Option<(usize, usize)> {
        self.g.nodes.iter().enumerate().find_map(|(i, n)| {
            n.inputs
                .iter()
                .position(|v| v == constant)
                .map(|slot| (i, slot))
        })
    }

    fn set_constant(&mut self, name: &str, values: &[i64]) {
        if let Some(c) = self.g.constants.iter_mut().find(|c| c.name == name) {
            c.value = TensorValue::i64s(values);
        }
    }

    /// `[k·N]` as a 1-element int64 tensor.
    fn batch_times(&mut self, k: i64) -> Result<String> {
        let source = self.batch_source.clone().ok_or_else(|| {
            ExportError::DynamicBatch("no graph input has the batch on axis 0".into())
        })?;
        let n = match &self.batch_value {
            Some(n) => n.clone(),
            None => {
                let out = self.g.fresh("batch_size");
                self.prefix.push(Node {
                    name: "Shape_batch".into(),
                    op_type: "Shape",
                    inputs: vec![source],
                    outputs: vec![out.clone()],
                    attrs: vec![("start", Attr::Int(0)), ("end", Attr::Int(1))],
                });
                self.batch_value = Some(out.clone());
                out
            }
        };
        if k == 1 {
            return Ok(n);
        }
        let kc = self.g.ints("batch_factor", &[k]);
        let out = self.g.fresh("batch_times");
        self.prefix.push(Node {
            name: format!("Mul_{out}"),
            op_type: "Mul",
            inputs: vec![n, kc],
            outputs: vec![out.clone()],
            attrs: vec![],
        });
        Ok(out)
    }

    /// A run-time shape vector: static runs as constants, batch entries from `Shape(x)`.
    fn runtime_shape(&mut self, entries: &[Entry]) -> Result<String> {
        let mut parts = Vec::new();
        let mut run: Vec<i64> = Vec::new();
        for e in entries {
            match *e {
                Entry::Static(v) => run.push(v),
                Entry::Batch(k) => {
                    if !run.is_empty() {
                        parts.push(self.g.ints("shape_part", &std::mem::take(&mut run)));
                    }
                    parts.push(self.batch_times(k)?);
                }
            }
        }
        if !run.is_empty() {
            parts.push(self.g.ints("shape_part", &run));
        }
        let out = self.g.fresh("runtime_shape");
        self.prefix.push(Node {
            name: format!("Concat_{out}"),
            op_type: "Concat",
            inputs: parts,
            outputs: vec![out.clone()],
            attrs: vec![("axis", Attr::Int(0))],
        });
        Ok(out)
    }

    fn symbolic(&mut self, name: &str, used_by: ShapeUse, entries: &[Entry]) -> Result<()> {
        let (node, slot) = self.consumer(name).ok_or_else(|| {
            ExportError::DynamicBatch(format!("shape constant `{name}` has no consumer"))
        })?;
        let data_shape = self
            .g
            .shapes
            .get(&self.g.nodes[node].inputs[0])
            .cloned()
            .unwrap_or_default();
        let batch_at: Vec<usize> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Entry::Batch(_)))
            .map(|(i, _)| i)
            .collect();
        let statics = |fill: &dyn Fn(usize, i64) -> i64| -> Vec<i64> {
            entries
                .iter()
                .enumerate()
                .map(|(i, e)| match *e {
                    Entry::Static(v) => v,
                    Entry::Batch(k) => fill(i, k),
                })
                .collect()
        };
        match used_by {
            ShapeUse::Reshape if batch_at.len() == 1 && !entries.contains(&Entry::Static(-1)) => {
                self.set_constant(name, &statics(&|_, _| -1));
                return Ok(());
            }
            ShapeUse::Expand
                if batch_at.iter().all(|&i| {
                    entries[i] == Entry::Batch(1)
                        && data_shape.len() == entries.len()
                        && data_shape[i] == self.na
                }) =>
            {
                // Expand broadcasts: 1 keeps the input's own (batch-sized) axis.
                self.set_constant(name, &statics(&|_, _| 1));
                return Ok(());
            }
            ShapeUse::SliceEnds => {
                let axes = self
                    .g
                    .constant_by_name(&self.g.nodes[node].inputs[3])
                    .and_then(|c| c.value.as_i64s())
                    .unwrap_or_default();
                let full = batch_at.iter().all(|&i| {
                    axes.get(i)
                        .and_then(|&ax| data_shape.get(ax as usize))
                        .is_some_and(|&d| d == self.na && entries[i] == Entry::Batch(1))
                });
                if full {
                    self.set_constant(name, &statics(&|_, _| i64::MAX));
                    return Ok(());
                }
            }
            _ => {}
        }
        let shape = self.runtime_shape(entries)?;
        self.g.nodes[node].inputs[slot] = shape;
        Ok(())
    }

    fn finish(mut self) -> Graph {
        // Constants replaced by run-time shapes are no longer read.
        let used: std::collections::HashSet<String> = self
            .g
            .nodes
            .iter()
            .chain(&self.prefix)
            .flat_map(|n| n.inputs.iter().cloned())
            .collect();
        self.g.constants.retain(|c| used.contains(&c.name));
        let mut nodes = std::mem::take(&mut self.prefix);
        nodes.append(&mut self.g.nodes);
        self.g.nodes = nodes;
        self.g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_multiples_of_the_batch() {
        // At batches 2 and 3: 4 → 6 is 2·N, 5 → 5 static, 2 → 3 is N, 3 → 4 is neither.
        assert_eq!(classify(4, 6, 2, 3), Some(Entry::Batch(2)));
        assert_eq!(classify(5, 5, 2, 3), Some(Entry::Static(5)));
        assert_eq!(classify(2, 3, 2, 3), Some(Entry::Batch(1)));
        assert_eq!(classify(3, 4, 2, 3), None);
    }
}
