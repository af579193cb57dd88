//! What a running benchmark tells its caller besides records: notes about the workload, and
//! progress through sweep steps and engine sections. The CLI prints them; the API streams them.

use inferbench_core::sweep::{Dimension, SweepStep};
use std::sync::Arc;

/// Something worth telling the person (or program) that started the benchmark.
#[derive(Debug)]
pub enum Event<'a> {
    /// A remark about the workload (prompts repeat, entries skipped, a model being pulled).
    Note(&'a str),
    /// A line of progress (an engine section's figures).
    Progress(&'a str),
    /// A sweep run is starting.
    StepStarted {
        /// `step 2/5` or `refine 1/3`.
        title: &'a str,
        /// What was varied.
        dimension: Dimension,
        /// The load.
        load: f64,
        /// Requests (or seconds) of the run.
        size: &'a str,
        /// Repeat number and count, when repeating.
        repeat: Option<(usize, usize)>,
    },
    /// A sweep step finished, every repeat included.
    StepDone {
        /// What was varied.
        dimension: Dimension,
        /// The step.
        step: &'a SweepStep,
        /// The noise threshold the step was checked against.
        cv_warn: f64,
    },
}

/// Receives events; called from the benchmark's tasks, so it must be cheap and thread-safe.
pub type Observer = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// An observer that ignores everything.
pub fn silent() -> Observer {
    Arc::new(|_| {})
}
