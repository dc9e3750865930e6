//! `fewstep`: train a guided diffusion teacher, distil few-step students, export and evaluate them.

mod cli;
mod commands;
mod export_cmd;
mod latent_cmd;
mod settings;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // Under mpirun/srun this process is one rank of a data-parallel run (docs/distributed.md).
    let launch = match teacher::dist::launch() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let world = launch.world;
    match commands::run(args, world) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if world.size() > 1 => {
            // One rank's error ends every rank (the others would wait in the next all-reduce).
            eprintln!("error (rank {} of {}): {e:#}", world.rank(), world.size());
            world.abort(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
