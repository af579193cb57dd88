//! The pipelines of inferbench, as a library: a benchmark is a value you build from a spec, start
//! from code, watch through sinks and an observer, cancel with a token, and read back as a typed
//! result. The command-line tool, the HTTP API, the configuration explorer and a shard in a
//! Kubernetes pod all start benchmarks through this crate. It depends on no command-line type and
//! prints nothing.
//!
//! ```no_run
//! # async fn f(spec: inferbench_core::RunSpec) -> Result<(), inferbench_bench::BenchError> {
//! use inferbench_bench::{Benchmark, RunOptions};
//! let result = Benchmark::serving(spec, RunOptions::default())?.run().await?;
//! println!("{} requests, {:.1} output tok/s", result.summary.completed, result.summary.output_throughput);
//! # Ok(()) }
//! ```
// No unwrap or expect outside tests: input must never panic us (clippy.toml allows them in tests).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod capacity;
mod collector;
pub mod compare;
pub mod dataset;
pub mod engine;
mod error;
pub mod explore;
pub mod html;
pub mod import;
pub mod live;
pub mod merge;
pub mod models;
pub mod monitoring;
pub mod observer;
pub mod proc;
pub mod saved;
pub mod serving;
pub mod spec;
pub mod sweep;

pub use error::BenchError;
pub use observer::{Event, Observer};
pub use serving::{ResultPaths, RunOptions, Serving};
pub use sweep::{Sweep, SweepOptions};

use inferbench_core::result::ToolInfo;

/// Where every kind of benchmark starts.
pub struct Benchmark;

impl Benchmark {
    /// A serving benchmark against an OpenAI-compatible (or TGI) server. The spec is checked
    /// here: nothing after this can fail because of a bad setting.
    pub fn serving(spec: inferbench_core::RunSpec, opts: RunOptions) -> Result<Serving, BenchError> {
        Serving::new(spec, opts)
    }

    /// A series of serving runs over rising load.
    pub fn sweep(spec: inferbench_core::sweep::SweepSpec, opts: SweepOptions) -> Result<Sweep, BenchError> {
        Sweep::new(spec, opts)
    }

    /// An in-process engine benchmark of a GGUF model file.
    pub fn engine(config: inferbench_core::engine_bench::BenchConfig) -> Result<engine::EngineBench, BenchError> {
        engine::EngineBench::new(config)
    }
}

/// This build's name, version and commit, as every result header records it.
pub fn tool_info() -> ToolInfo {
    let commit = env!("INFERBENCH_GIT_COMMIT");
    ToolInfo {
        name: "inferbench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        commit: (!commit.is_empty()).then(|| commit.to_owned()),
    }
}
