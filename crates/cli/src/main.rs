//! The `inferbench` binary: flags → spec → a call into `inferbench-bench` → print → exit code.
//!
//! Exit codes: 0 success; 1 error (one line on stderr); 2 bad usage; 3 a gate failed (a regression
//! found by `compare`, an engine target missed, `--max-error-rate` exceeded); 130 interrupted by Ctrl-C (results measured so
//! far are written).
// No unwrap or expect outside tests: input must never panic us (clippy.toml allows them in tests).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

/// Writes to stdout; a closed pipe (`inferbench run ... | head -1`) ends the output, not the work.
macro_rules! out {
    ($($t:tt)*) => { $crate::stdout_write(format_args!($($t)*)) };
}

/// [`out!`] with a newline.
macro_rules! outln {
    () => { $crate::stdout_write(format_args!("\n")) };
    ($($t:tt)*) => { $crate::stdout_write(format_args!("{}\n", format_args!($($t)*))) };
}

mod api;
mod args;
mod compare;
mod dataset;
mod demo;
mod engine;
mod examples;
mod explore;
mod import;
mod k8s;
mod merge;
mod model;
mod plan;
mod progress;
mod report;
mod run;
mod serve;
mod store;
mod sweep;

use anyhow::Result;
use args::{Cli, Command};
use clap::Parser;
use inferbench_bench::BenchError;
use std::collections::BTreeMap;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// How a subcommand ended, for the exit code.
pub enum Done {
    /// Everything ran.
    Ok,
    /// Ctrl-C: what was measured is written.
    Interrupted,
}

/// Writes to stdout, ignoring a reader that has gone away (EPIPE) as other Unix tools do: the
/// benchmark goes on and its files are written.
pub fn stdout_write(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_fmt(args);
}

/// A bad-usage error (exit 2).
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    BenchError::Invalid(msg.into()).into()
}

/// A failed gate (exit 3).
pub fn gate(msg: impl Into<String>) -> anyhow::Error {
    BenchError::Gate(msg.into()).into()
}

/// `--label k=v` pairs.
pub fn labels(items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(usage(format!("invalid --label '{s}': expected KEY=VALUE"))),
        })
        .collect()
}

fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<BenchError>() {
        Some(BenchError::Invalid(_)) => 2,
        Some(BenchError::Gate(_)) => 3,
        Some(BenchError::Interrupted(_)) => 130,
        _ => 1,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal: logs piped to a file or a test stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi).init();
    let workers = match &cli.command {
        Command::Run(a) => a.workers.map(usize::from),
        Command::Sweep(a) => a.run.workers.map(usize::from),
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
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::Interrupted) => ExitCode::from(130),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn done(interrupted: bool) -> Done {
    if interrupted {
        Done::Interrupted
    } else {
        Done::Ok
    }
}

/// Runs the subcommand.
async fn dispatch(cmd: Command) -> Result<Done> {
    match cmd {
        Command::Run(a) => {
            inferbench_bench::proc::raise_nofile_limit();
            let result = run::run(&a, interrupt_token()).await?;
            Ok(done(result.interrupted))
        }
        Command::Serve(a) => serve::run(a).await.map(|()| Done::Ok),
        Command::Demo(a) => demo::run(a, interrupt_token()).await.map(done),
        Command::Dataset(a) => dataset::run(a).map(|()| Done::Ok),
        Command::Engine(a) => engine::run(*a).await.map(done),
        Command::Sweep(a) => {
            inferbench_bench::proc::raise_nofile_limit();
            sweep::run(*a, interrupt_token()).await.map(done)
        }
        Command::Compare(a) => compare::run(a).map(|()| Done::Ok),
        Command::Plan(a) => plan::run(a).map(|()| Done::Ok),
        Command::Report(a) => report::run(&a).map(|()| Done::Ok),
        Command::Store(c) => store::run(&c).map(|()| Done::Ok),
        Command::History(a) => store::history(&a).map(|()| Done::Ok),
        Command::Merge(a) => tokio::task::spawn_blocking(move || merge::run(&a)).await?.map(|()| Done::Ok),
        Command::K8s(c) => k8s::run(c).await.map(|()| Done::Ok),
        Command::Api(a) => api::run(a).await.map(|()| Done::Ok),
        Command::Import(a) => import::run(&a).map(|()| Done::Ok),
        Command::Explore(a) => explore::run(a, interrupt_token()).await.map(done),
        Command::Model(cmd) => tokio::task::spawn_blocking(move || model::run(cmd)).await?.map(|()| Done::Ok),
    }
}

/// Tokens for Ctrl-C (or SIGTERM): the first signal cancels `stop` (no new requests, the grace
/// period for in-flight ones), the second `abort` (cancel them now).
#[derive(Clone)]
pub struct Interrupt {
    /// Cancelled on the first signal.
    pub stop: CancellationToken,
    /// Cancelled on the second.
    pub abort: CancellationToken,
}

fn interrupt_token() -> Interrupt {
    let i = Interrupt { stop: CancellationToken::new(), abort: CancellationToken::new() };
    let t = i.clone();
    tokio::spawn(async move {
        serve::shutdown_signal().await;
        eprintln!("\ninterrupted: no new requests; waiting for in-flight ones (see --grace-period; Ctrl-C again to cancel them now), then writing results");
        t.stop.cancel();
        serve::shutdown_signal().await;
        eprintln!("interrupted again: cancelling the requests in flight");
        t.abort.cancel();
    });
    i
}
