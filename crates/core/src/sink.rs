//! The one seam between what produces request records and what consumes them. A run feeds every
//! record, as it completes, to each sink: the accumulator that builds the summary, the JSONL
//! writer, a progress display, a monitor, an API's live event stream. A periodic tick on the run's
//! clock lets samplers (server metrics, GPU power) work on the same timeline.

use crate::record::RequestRecord;
use crate::summary::Accumulator;
use std::time::{Duration, Instant};

/// A sink's failure; the run goes on without that sink and reports the first error.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Receives a run's records as they complete. Called from one thread, in completion order.
pub trait RecordSink: Send {
    /// Warm-up is over: measured records follow, and the run's clock starts at `epoch` (every
    /// record's `*_ns` counts from it).
    fn measure_start(&mut self, _epoch: Instant) {}
    /// A warm-up request finished (not measured).
    fn warmup(&mut self, _record: &RequestRecord) {}
    /// A measured request finished.
    fn record(&mut self, record: &RequestRecord) -> Result<(), SinkError>;
    /// A batch of records has been delivered: buffered output should reach its destination.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Periodic tick; `elapsed` is time since the measured phase started.
    fn tick(&mut self, _elapsed: Duration) {}
    /// The run is over; no more calls follow.
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl RecordSink for Accumulator {
    fn record(&mut self, record: &RequestRecord) -> Result<(), SinkError> {
        self.add(record);
        Ok(())
    }
}

impl<S: RecordSink + ?Sized> RecordSink for Box<S> {
    fn measure_start(&mut self, epoch: Instant) {
        (**self).measure_start(epoch)
    }
    fn warmup(&mut self, record: &RequestRecord) {
        (**self).warmup(record)
    }
    fn record(&mut self, record: &RequestRecord) -> Result<(), SinkError> {
        (**self).record(record)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        (**self).flush()
    }
    fn tick(&mut self, elapsed: Duration) {
        (**self).tick(elapsed)
    }
    fn finish(&mut self) -> Result<(), SinkError> {
        (**self).finish()
    }
}
