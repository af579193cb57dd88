//! The single consumer of a run's records: appends each to the JSONL as it arrives, feeds the
//! summary, and advances the progress bar. Runs on its own thread so file I/O never stalls the
//! async workers that timestamp tokens.

use crate::proc;
use indicatif::ProgressBar;
use inferbench_core::metrics::Accumulator;
use inferbench_core::{Summary, SummaryOptions};
use inferbench_load::RunEvent;
use inferbench_report::{RecordWriter, ReportError};
use tokio::sync::mpsc;

/// What the collector gathered.
pub struct Collected {
    /// The measured requests' summary.
    pub summary: Summary,
    /// Warm-up requests seen (excluded).
    pub warmups: u64,
    /// Process CPU seconds when measuring started.
    pub cpu_at_start: f64,
    /// The first write error, if any (the run goes on; the summary is still written).
    pub write_error: Option<ReportError>,
}

/// Consumes events until every sender is gone.
pub fn collect(mut rx: mpsc::UnboundedReceiver<RunEvent>, mut writer: RecordWriter, opts: &SummaryOptions, pb: ProgressBar) -> Collected {
    let mut acc = Accumulator::new(opts);
    let mut warmups = 0;
    let mut cpu_at_start = proc::cpu_seconds();
    let mut write_error = None;
    let mut failed = 0u64;
    let mut batch = Vec::with_capacity(4096);
    // Drain in batches with a short nap between them: under load one wake-up serves thousands of
    // records instead of one each; when idle a record reaches the file within ~2 ms.
    while rx.blocking_recv_many(&mut batch, 4096) > 0 {
        for ev in batch.drain(..) {
            match ev {
                RunEvent::Warmup(_) => warmups += 1,
                RunEvent::MeasureStart => {
                    cpu_at_start = proc::cpu_seconds();
                    pb.reset_elapsed();
                }
                RunEvent::Record(r) => {
                    if write_error.is_none() {
                        write_error = writer.write(&r).err();
                    }
                    if !r.is_success() {
                        failed += 1;
                        pb.set_message(format!("{failed} failed"));
                    }
                    acc.add(&r);
                    pb.inc(1);
                }
            }
        }
        if write_error.is_none() {
            write_error = writer.flush().err();
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    if write_error.is_none() {
        write_error = writer.flush().err();
    }
    pb.finish_and_clear();
    Collected { summary: acc.finish(), warmups, cpu_at_start, write_error }
}
