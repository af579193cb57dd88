//! The shared vocabulary of inferbench: what a request record is, how records become a summary,
//! what each kind of saved result looks like, and the sink seam that carries records from the
//! producers to the consumers. Every benchmark (HTTP or in-process) produces [`RequestRecord`]s
//! and every consumer (console, JSON, sweeps, comparisons) reads [`Summary`]s, so this crate has
//! no I/O beyond reading `/proc` for system info and no async runtime.
// No unwrap or expect outside tests: input must never panic us (clippy.toml allows them in tests).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod capacity;
pub mod comparison;
pub mod engine_bench;
pub mod explore;
pub mod grade;
pub mod json;
pub mod monitor;
pub mod record;
pub mod result;
pub mod schema;
pub mod shard;
pub mod significance;
pub mod sink;
pub mod slo;
pub mod spec;
pub mod stats;
pub mod summary;
pub mod sweep;
pub mod sysinfo;
pub mod time;
pub mod vllm;

pub use record::{FailureKind, Outcome, RequestRecord, TokenSource};
pub use result::{BenchmarkResult, Header, ResultKind, SavedResult, SCHEMA_VERSION};
pub use sink::{RecordSink, SinkError};
pub use slo::{Slo, SloError};
pub use spec::RunSpec;
pub use stats::{Distribution, Samples};
pub use summary::{Connections, MetricName, Summary, SummaryOptions};
