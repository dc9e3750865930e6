//! The MPI engine under [`super::World`] (rsmpi over the system's MPI library, MPI-3 immediate
//! collectives): start-up, the timed all-reduce, the digest all-gather and abort.

use std::time::{Duration, Instant};

use mpi::Threading;
use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::environment::Universe;
use mpi::request::{Request, Scope};
use mpi::topology::{Communicator, SimpleCommunicator};

use super::World;
use crate::error::{Error, Result};

/// Exit code of a run stopped because a rank did not answer in time.
const TIMEOUT_EXIT: i32 = 3;

/// Initialise MPI (funneled: only the main thread talks to MPI; the backends' worker threads
/// never do) and read this process's rank and the world's size.
pub fn init() -> Result<(Universe, World)> {
    let (universe, _) = mpi::initialize_with_threading(Threading::Funneled).ok_or_else(|| {
        Error::Distributed("MPI could not be initialised (it was already, or the launcher's environment is broken)".into())
    })?;
    let comm = universe.world();
    let world = World {
        rank: comm.rank() as usize,
        size: comm.size() as usize,
        ..World::SINGLE
    };
    Ok((universe, world))
}

/// Wait for `req` until the world's timeout, polling; past it, say which collective of which
/// rank waited and abort every rank (the request cannot be abandoned, MPI still owns its buffers).
fn finish<'a, D: ?Sized, S: Scope<'a>>(mut req: Request<'a, D, S>, world: &World, what: &str) {
    let started = Instant::now();
    let mut pause = Duration::from_micros(20);
    loop {
        match req.test() {
            Ok(_) => return,
            Err(pending) => req = pending,
        }
        if started.elapsed() > world.timeout {
            eprintln!(
                "error: rank {} of {}: the other ranks did not join the {what} within {:.0} s \
                 (`train.all_reduce_timeout_s`): a rank died or hangs. Stopping every rank; the last checkpoint is kept \
                 — resume with the same launch and `--resume`",
                world.rank,
                world.size,
                world.timeout.as_secs_f64()
            );
            abort(TIMEOUT_EXIT);
        }
        std::thread::sleep(pause);
        // Back off to 1 ms: a step's all-reduce waits for the slowest rank's backward pass.
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}

/// Sum `buf` over all ranks in place.
pub fn all_reduce_sum(world: &World, buf: &mut [f32], what: &str) {
    let comm = SimpleCommunicator::world();
    let send = buf.to_vec();
    mpi::request::scope(|scope| {
        let req =
            comm.immediate_all_reduce_into(scope, &send[..], &mut *buf, SystemOperation::sum());
        finish(req, world, what);
    });
}

/// Every rank's digest, in rank order.
pub fn all_gather_digest(world: &World, digest: [u8; 32], what: &str) -> Vec<[u8; 32]> {
    let comm = SimpleCommunicator::world();
    let mut all = vec![0u8; 32 * world.size];
    mpi::request::scope(|scope| {
        let req = comm.immediate_all_gather_into(scope, &digest[..], &mut all[..]);
        finish(req, world, what);
    });
    all.chunks(32)
        .map(|c| c.try_into().expect("32-byte chunks"))
        .collect()
}

/// MPI_Abort on the world: every rank ends with `code`.
pub fn abort(code: i32) -> ! {
    SimpleCommunicator::world().abort(code)
}
