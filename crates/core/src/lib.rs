//! The shared vocabulary of inferbench: what a request record is, how records become a summary,
//! and what a saved result looks like. Every benchmark (HTTP or in-process) produces
//! [`RequestRecord`]s and every consumer (console, JSON, sweeps, comparisons) reads [`Summary`]s, so
//! this crate has no I/O beyond reading `/proc` for system info and no async runtime.

pub mod grade;
pub mod metrics;
pub mod plan;
pub mod record;
pub mod result;
pub mod significance;
pub mod slo;
pub mod spec;
pub mod stats;
pub mod sweep;
pub mod sysinfo;

pub use metrics::{MetricName, Summary, SummaryOptions};
pub use record::{FailureKind, Outcome, RequestRecord, TokenSource};
pub use result::{BenchmarkResult, SCHEMA_VERSION};
pub use slo::{Slo, SloError};
pub use spec::RunSpec;
pub use stats::{Distribution, Samples};
