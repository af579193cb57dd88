//! The single consumer of a run's records: feeds each, as it arrives, to the accumulator and to
//! every other sink, and ticks the sinks on the run's clock. Runs on its own thread so file I/O
//! and sampling never stall the async workers that timestamp tokens.

use crate::proc;
use inferbench_core::summary::{Accumulator, AccumulatorState};
use inferbench_core::{RecordSink, Summary};
use inferbench_load::RunEvent;
use std::time::Instant;
use tokio::sync::mpsc;

/// What the collector gathered.
pub struct Collected {
    /// The measured requests' summary.
    pub summary: Summary,
    /// Warm-up requests seen (excluded).
    pub warmups: u64,
    /// Process CPU seconds when measuring started.
    pub cpu_at_start: f64,
    /// The first error of each sink that failed; that sink was fed no more records, the others
    /// went on.
    pub sink_errors: Vec<String>,
    /// The accumulator's mergeable state, when asked for (a shard), or why it could not be made.
    pub state: Option<Result<AccumulatorState, String>>,
}

/// Consumes events until every sender is gone.
pub fn collect(
    mut rx: mpsc::UnboundedReceiver<RunEvent>,
    mut acc: Accumulator,
    mut sinks: Vec<Box<dyn RecordSink>>,
    want_state: bool,
) -> Collected {
    let mut warmups = 0;
    let mut cpu_at_start = proc::cpu_seconds();
    let mut measure_start: Option<Instant> = None;
    let mut failed: Vec<Option<String>> = vec![None; sinks.len()];
    let mut batch = Vec::with_capacity(4096);
    let fail = |failed: &mut Vec<Option<String>>, i: usize, e: inferbench_core::SinkError| {
        if failed[i].is_none() {
            failed[i] = Some(e.to_string());
        }
    };
    // Drain in batches with a short nap between them: under load one wake-up serves thousands of
    // records instead of one each; when idle a record reaches the sinks within ~2 ms.
    while rx.blocking_recv_many(&mut batch, 4096) > 0 {
        for ev in batch.drain(..) {
            match ev {
                RunEvent::Warmup(r) => {
                    warmups += 1;
                    sinks.iter_mut().for_each(|s| s.warmup(&r));
                }
                RunEvent::MeasureStart(epoch) => {
                    cpu_at_start = proc::cpu_seconds();
                    measure_start = Some(epoch);
                    acc.measure_start(epoch);
                    sinks.iter_mut().for_each(|s| s.measure_start(epoch));
                }
                RunEvent::Record(r) => {
                    let _ = acc.record(&r);
                    for (i, s) in sinks.iter_mut().enumerate() {
                        if failed[i].is_none() {
                            if let Err(e) = s.record(&r) {
                                fail(&mut failed, i, e);
                            }
                        }
                    }
                }
                RunEvent::Tick => {
                    if let Some(t0) = measure_start {
                        sinks.iter_mut().for_each(|s| s.tick(t0.elapsed()));
                    }
                }
            }
        }
        for (i, s) in sinks.iter_mut().enumerate() {
            if failed[i].is_none() {
                if let Err(e) = s.flush() {
                    fail(&mut failed, i, e);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    for (i, s) in sinks.iter_mut().enumerate() {
        if let Err(e) = s.finish() {
            fail(&mut failed, i, e);
        }
    }
    let sink_errors = failed.into_iter().flatten().collect();
    let state = want_state.then(|| acc.state(0).map_err(|e| e.to_string()));
    Collected { summary: acc.finish(), warmups, cpu_at_start, sink_errors, state }
}
