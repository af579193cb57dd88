//! The `inferbench` binary: parses flags, runs one subcommand, and decides the exit code.
//!
//! Exit codes: 0 success; 1 error (one line on stderr); 2 bad usage; 130 interrupted by Ctrl-C
//! (results measured so far are written).

mod args;
mod collector;
mod compare;
mod dataset;
mod demo;
mod engine_bench;
mod model;
mod plan;
mod proc;
mod run;
mod saved;
mod serve;
mod sweep;

use anyhow::Result;
use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    let workers = match &cli.command {
        Command::Run(a) => a.workers,
        Command::Sweep(a) => a.run.workers,
        _ => None,
    };
    // One worker: a current-thread runtime (no work-stealing, no cross-thread wake-ups).
    let mut rt = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    rt.enable_all();
    if let Some(w) = workers.filter(|&w| w > 1) {
        rt.worker_threads(w);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(130),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the subcommand; `Ok(false)` means it was interrupted.
async fn dispatch(cmd: Command) -> Result<bool> {
    match cmd {
        Command::Run(a) => {
            let plan = run::RunPlan::from_args(&a)?;
            proc::raise_nofile_limit();
            let stop = interrupt_token();
            let result = plan.execute(stop).await?;
            Ok(!result.interrupted)
        }
        Command::Serve(a) => serve::run(a).await.map(|()| true),
        Command::Demo(a) => demo::run(a, interrupt_token()).await,
        Command::Dataset(a) => dataset::run(a).map(|()| true),
        Command::Engine(a) => engine_bench::run(*a).await,
        Command::Sweep(a) => {
            proc::raise_nofile_limit();
            sweep::run(*a, interrupt_token()).await
        }
        Command::Compare(a) => compare::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Model(cmd) => tokio::task::spawn_blocking(move || model::run(cmd)).await?,
    }
}

/// A token cancelled on the first Ctrl-C (or SIGTERM).
fn interrupt_token() -> CancellationToken {
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        serve::shutdown_signal().await;
        eprintln!("\ninterrupted: no new requests; waiting for in-flight ones (see --grace-period), then writing results");
        s.cancel();
    });
    stop
}
