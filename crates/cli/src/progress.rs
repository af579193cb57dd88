//! Progress bars: one as a record sink for runs, one for model pulls.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use inferbench_core::{RecordSink, RequestRecord, SinkError};

/// A progress bar fed by a run's records.
pub struct ProgressSink {
    pb: ProgressBar,
    failed: u64,
}

impl ProgressSink {
    /// A bar for `total` requests (a counter when unknown or timed); hidden when `show` is false.
    pub fn new(show: bool, total: Option<u64>, duration: Option<f64>) -> Self {
        let pb = if !show {
            ProgressBar::hidden()
        } else {
            let pb = match (total, duration) {
                (Some(n), None) => ProgressBar::new(n),
                _ => ProgressBar::no_length(),
            };
            let tmpl = if pb.length().is_some() {
                "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} requests ({per_sec}) {msg}"
            } else {
                "{spinner} {elapsed_precise} {pos} requests ({per_sec}) {msg}"
            };
            pb.set_style(ProgressStyle::with_template(tmpl).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "));
            pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            pb
        };
        Self { pb, failed: 0 }
    }
}

impl RecordSink for ProgressSink {
    fn measure_start(&mut self, _epoch: std::time::Instant) {
        self.pb.reset_elapsed();
    }
    fn record(&mut self, r: &RequestRecord) -> Result<(), SinkError> {
        if !r.is_success() {
            self.failed += 1;
            self.pb.set_message(format!("{} failed", self.failed));
        }
        self.pb.inc(1);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), SinkError> {
        self.pb.finish_and_clear();
        Ok(())
    }
}

/// A byte bar for pulling `model` (stderr; hidden when it is not a terminal).
pub fn byte_bar(model: &inferbench_engine::cache::KnownModel) -> ProgressBar {
    let b = ProgressBar::new(model.size).with_message(format!("pulling {}", model.name));
    b.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Moves a byte bar: `done` bytes of `total` (when the server said).
pub fn advance(b: &ProgressBar, done: u64, total: Option<u64>) {
    if let Some(t) = total {
        b.set_length(t);
    }
    b.set_position(done);
}

/// A pull progress callback drawing a byte bar on stderr.
pub fn pull_bar() -> impl FnMut(inferbench_bench::models::PullEvent<'_>) {
    use inferbench_bench::models::PullEvent;
    let mut bar: Option<ProgressBar> = None;
    move |ev| match ev {
        PullEvent::Start { model, dir } => {
            eprintln!("{} is not in the cache; pulling it into {}", model.name, dir.display());
            bar = Some(byte_bar(model));
        }
        PullEvent::Progress { done, total } => {
            if let Some(b) = &bar {
                advance(b, done, total);
            }
        }
        PullEvent::Done { source, url, fell_back_from } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            eprintln!("pulled from {source} ({url}){}", inferbench_bench::models::fallback_text(fell_back_from));
        }
    }
}
