//! Data parallelism, one process per rank (launched by `mpirun`, `mpiexec` or Slurm's `srun`):
//! which shard of every global batch a rank takes, the one bucketed all-reduce of the gradients
//! per step, and the checks that keep the ranks in step. The engine is MPI (`--features mpi`,
//! Debian's OpenMPI); without it a process is always a world of one. See docs/distributed.md.

pub mod grads;
#[cfg(feature = "mpi")]
mod mpi;

use std::ops::Range;
use std::time::Duration;

use burn::tensor::Tensor;
use burn::tensor::kind::Basic;

use crate::error::{Error, Result};

/// The examples of one global batch that a rank computes: `start .. start + len` of `global`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub start: usize,
    pub len: usize,
    pub global: usize,
}

impl Shard {
    /// Rank `rank`'s contiguous part of `global` examples over `size` ranks: ⌊global/size⌋
    /// examples, one more for the first `global mod size` ranks (so the parts tile the batch).
    pub fn of(global: usize, rank: usize, size: usize) -> Self {
        let (base, extra) = (global / size, global % size);
        Self {
            start: rank * base + rank.min(extra),
            len: base + usize::from(rank < extra),
            global,
        }
    }

    pub fn range(&self) -> Range<usize> {
        self.start..self.start + self.len
    }

    /// True when the shard is the whole batch.
    pub fn is_whole(&self) -> bool {
        self.len == self.global
    }

    /// This shard's rows (dim 0) of a tensor over the global batch.
    pub fn rows<const D: usize, K: Basic>(&self, t: Tensor<D, K>) -> Tensor<D, K> {
        match self.is_whole() {
            true => t,
            false => t.narrow(0, self.start, self.len),
        }
    }

    /// This shard's part of a per-example list over the global batch.
    pub fn pick<T: Clone>(&self, v: &[T]) -> Vec<T> {
        v[self.range()].to_vec()
    }
}

/// Launchers' variables that give a process's rank count: Open MPI's `mpirun`, MPICH/Hydra's
/// `mpiexec` and PMI-2 (also `srun --mpi=pmi2`), and a Slurm job step started by `srun`.
const LAUNCHER_SIZE_VARS: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"];

/// The rank count a launcher gave this process (variable, value), when it says more than one.
fn launcher_size() -> Option<(&'static str, usize)> {
    LAUNCHER_SIZE_VARS.iter().find_map(|&var| {
        let n = std::env::var(var).ok()?.trim().parse::<usize>().ok()?;
        (n > 1).then_some((var, n))
    })
}

/// The processes a run is spread over: this one's rank, how many there are, and how long a
/// collective may wait for the others before the run is stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct World {
    rank: usize,
    size: usize,
    timeout: Duration,
}

/// Default wait of a collective for the other ranks (`train.all_reduce_timeout_s`).
pub const DEFAULT_TIMEOUT_S: f64 = 300.0;

impl World {
    /// A world of one process: no communication at all.
    pub const SINGLE: World = World {
        rank: 0,
        size: 1,
        timeout: Duration::from_secs(DEFAULT_TIMEOUT_S as u64),
    };

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Rank 0: the one that writes checkpoints, metrics and progress.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// The same world with a collective timeout of `seconds` (validated by the configs).
    pub fn with_timeout(self, seconds: f64) -> Self {
        Self {
            timeout: Duration::from_secs_f64(seconds.clamp(0.001, 1e9)),
            ..self
        }
    }

    /// The backend seed (dropout masks) of a step whose one-process seed is `base`: rank 0
    /// keeps it, so a world of one trains exactly as before; each further rank gets its own.
    pub fn step_seed(&self, base: u64) -> u64 {
        match self.rank {
            0 => base,
            r => crate::rng::derive_seed(base, crate::rng::Stream::Backend, r as u64),
        }
    }

    /// This rank's shard of a global batch of `global` examples; every rank needs one.
    pub fn shard(&self, global: usize, key: &str) -> Result<Shard> {
        if global < self.size {
            return Err(Error::ConfigValue {
                key: key.into(),
                value: global.to_string(),
                why: format!(
                    "a global batch of {global} cannot be split over {} ranks: raise it to at least {0} or launch fewer ranks",
                    self.size
                ),
            });
        }
        Ok(Shard::of(global, self.rank, self.size))
    }

    /// Sum `buf` over all ranks in place (every rank ends with the same sums). A rank that
    /// does not join within the timeout stops the whole run (the error names `what`).
    pub fn all_reduce_sum(&self, buf: &mut [f32], what: &str) {
        #[cfg(feature = "mpi")]
        if self.size > 1 {
            mpi::all_reduce_sum(self, buf, what);
        }
        #[cfg(not(feature = "mpi"))]
        let _ = (buf, what);
    }

    /// Check that every rank holds the same `digest` of `what` (weights, a resumed step);
    /// an error names the ranks that differ.
    pub fn agree(&self, digest: [u8; 32], what: &str) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        #[cfg(not(feature = "mpi"))]
        let _ = (digest, what); // without MPI a world is always of one
        #[cfg(feature = "mpi")]
        {
            let all = mpi::all_gather_digest(self, digest, what);
            let differ: Vec<String> = (0..self.size)
                .filter(|&r| all[r] != all[0])
                .map(|r| r.to_string())
                .collect();
            if !differ.is_empty() {
                return Err(Error::Distributed(format!(
                    "ranks {} hold another {what} than rank 0: every rank must start from the same checkpoint \
                     (put `--out` on a file system all hosts share) and run the same fewstep and config",
                    differ.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// End every rank of the run now (after this rank printed why), with exit code `code`.
    pub fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        if self.size > 1 {
            mpi::abort(code);
        }
        std::process::exit(code)
    }
}

/// This process's place in a launch. Hold it for the whole run: dropping it ends MPI.
pub struct Launch {
    pub world: World,
    #[cfg(feature = "mpi")]
    _universe: Option<::mpi::environment::Universe>,
}

impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch")
            .field("world", &self.world)
            .finish()
    }
}

/// Join the launch this process is part of: a world of one unless a launcher started it as one
/// of several ranks, which needs a fewstep built with `--features mpi`.
pub fn launch() -> Result<Launch> {
    let Some((var, n)) = launcher_size() else {
        return Ok(Launch {
            world: World::SINGLE,
            #[cfg(feature = "mpi")]
            _universe: None,
        });
    };
    #[cfg(feature = "mpi")]
    {
        let _ = (var, n);
        let (universe, world) = mpi::init()?;
        Ok(Launch {
            world,
            _universe: Some(universe),
        })
    }
    #[cfg(not(feature = "mpi"))]
    Err(Error::Distributed(format!(
        "this process is one of {n} ranks ({var}={n}), but this fewstep was built without MPI: rebuild it with \
         `cargo build --release --features mpi` (needs Debian's libopenmpi-dev), or run it without a launcher"
    )))
}
