//! Gradient averaging of the data-parallel step (as PyTorch DDP does it, without the overlap):
//! every float parameter's gradient is flattened into one buffer in module order (the same on
//! every rank), summed over the ranks in buckets of at most [`BUCKET_BYTES`], and put back.
//! Each rank's loss is its shard's per-example sum over the *global* batch size, so the sum over
//! ranks is the gradient of the global batch mean — the one a single process computes.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use super::World;

/// Largest all-reduce message: PyTorch DDP's default `bucket_cap_mb` (25 MiB). A 1 M-parameter
/// U-Net is one message per step; only models above 6.5 M parameters take several.
pub const BUCKET_BYTES: usize = 25 << 20;

/// Where one parameter's gradient sits in the flat buffer.
struct Part {
    id: ParamId,
    shape: Vec<usize>,
    device: Device,
    len: usize,
}

/// Moves each gradient out of `grads` into `flat`.
struct Gather<'a> {
    grads: &'a mut GradientsParams,
    flat: Vec<f32>,
    parts: Vec<Part>,
}

impl ModuleVisitor for Gather<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(g) = self.grads.remove::<D>(param.id) else {
            return; // no gradient on any rank: the graph is the same everywhere
        };
        let (shape, device) = (g.dims().to_vec(), g.device());
        let values = g
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("a gradient converted to f32 reads as f32");
        self.parts.push(Part {
            id: param.id,
            shape,
            device,
            len: values.len(),
        });
        self.flat.extend(values);
    }
}

/// Puts the summed values back, in the order [`Gather`] took them.
struct Scatter<'a> {
    grads: &'a mut GradientsParams,
    flat: &'a [f32],
    parts: std::slice::Iter<'a, Part>,
    offset: usize,
    next: Option<&'a Part>,
}

impl ModuleVisitor for Scatter<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(part) = self.next.filter(|p| p.id == param.id) else {
            return;
        };
        let values = self.flat[self.offset..self.offset + part.len].to_vec();
        let shape: [usize; D] = part.shape.clone().try_into().expect("rank D gradient");
        let t = Tensor::<D>::from_data(TensorData::new(values, shape), &part.device);
        self.grads.register::<D>(part.id, t);
        self.offset += part.len;
        self.next = self.parts.next();
    }
}

/// Sum `grads` of `model` (and the scalars in `extra`, e.g. the loss) over every rank of
/// `world`; a world of one returns them untouched.
pub fn all_reduce(
    world: &World,
    mut grads: GradientsParams,
    model: &impl Module,
    extra: &mut [f32],
) -> GradientsParams {
    if world.size() == 1 {
        return grads;
    }
    let mut gather = Gather {
        grads: &mut grads,
        flat: Vec::new(),
        parts: Vec::new(),
    };
    model.visit(&mut gather);
    let (mut flat, parts) = (gather.flat, gather.parts);
    flat.extend_from_slice(extra);
    for bucket in flat.chunks_mut(BUCKET_BYTES / 4) {
        world.all_reduce_sum(bucket, "gradient all-reduce");
    }
    let n = flat.len() - extra.len();
    extra.copy_from_slice(&flat[n..]);
    let mut it = parts.iter();
    let next = it.next();
    let mut scatter = Scatter {
        grads: &mut grads,
        flat: &flat[..n],
        parts: it,
        offset: 0,
        next,
    };
    model.visit(&mut scatter);
    grads
}

/// Feeds every float parameter's values (module order, f32 little-endian) to a hasher.
struct Hash<'a>(&'a mut sha2::Sha256);

impl ModuleVisitor for Hash<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        use sha2::Digest;
        let values = param.val().into_data().convert::<f32>();
        self.0.update(values.as_bytes());
    }
}

/// Add the weights of `model` to `hasher`: the values alone, not the record (whose parameter
/// ids are random per process), so equal weights on two ranks hash the same.
pub fn hash_weights(hasher: &mut sha2::Sha256, model: &impl Module) {
    model.visit(&mut Hash(hasher));
}
