//! A running benchmark's live view: a sink takes every record (counts, failures by kind, tokens,
//! TTFT and ITL into per-second HDR histograms), and once a second a snapshot is cut: totals,
//! throughput over the last seconds, rolling percentiles over the last ten. Snapshots and notes
//! go to the events stream's subscribers, to the job's `events.jsonl`, and to `GET` of the job.
//! Recording a record is one uncontended lock and a few counter updates, so watching a run does
//! not slow it.

use hdrhistogram::Histogram;
use inferbench_core::{RecordSink, RequestRecord, SinkError};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Seconds the rolling percentiles look back over.
pub const WINDOW_S: usize = 10;
/// Seconds the throughput figures average over.
const RATE_S: usize = 3;

/// One server-sent event: its name and JSON data.
#[derive(Debug, Clone, Serialize)]
pub struct LiveEvent {
    /// `progress`, `note`, `step` or `end`.
    pub event: &'static str,
    /// Its data.
    pub data: serde_json::Value,
}

/// Percentiles of one latency over the window, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Rolling {
    /// Samples in the window.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// The figures of one second.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    /// Seconds since the benchmark started.
    pub t: f64,
    /// The sweep step or engine section being measured, when there is one.
    pub step: Option<String>,
    /// Requests ended successfully.
    pub completed: u64,
    /// Requests failed.
    pub failed: u64,
    /// Failures by kind.
    pub failures: BTreeMap<String, u64>,
    /// Requests sent and not yet ended.
    pub in_flight: u64,
    /// Output tokens of successful requests.
    pub output_tokens: u64,
    /// Output tokens per second over the last seconds.
    pub output_throughput: f64,
    /// Requests ended per second over the last seconds.
    pub request_throughput: f64,
    /// Time to first token over the last ten seconds.
    pub ttft_ms: Option<Rolling>,
    /// Inter-token latency over the last ten seconds.
    pub itl_ms: Option<Rolling>,
    /// Requests the benchmark will send, when known.
    pub total: Option<u64>,
}

/// One second's worth of samples.
struct Second {
    ttft: Histogram<u64>,
    itl: Histogram<u64>,
    ended: u64,
    tokens: u64,
}

impl Second {
    fn new() -> Self {
        // Microseconds, 3 significant digits, up to an hour.
        let h = || Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()));
        Self { ttft: h(), itl: h(), ended: 0, tokens: 0 }
    }
}

#[derive(Default)]
struct Counts {
    completed: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    output_tokens: u64,
    step: Option<String>,
    total: Option<u64>,
    current: Option<Second>,
    seconds: VecDeque<Second>,
}

/// What is requests in flight now, read at each snapshot.
pub type Gauge = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The live state of the benchmark running now.
pub struct LiveJob {
    /// Its id.
    pub id: String,
    /// Cancelled by `DELETE`: no new requests; in-flight ones get the grace period.
    pub cancel: CancellationToken,
    /// Cancelled shortly after, so a cancel never waits long.
    pub abort: CancellationToken,
    started: Instant,
    counts: Mutex<Counts>,
    gauge: Mutex<Option<Gauge>>,
    log: Mutex<Log>,
}

struct Log {
    history: Vec<Arc<LiveEvent>>,
    tx: broadcast::Sender<Arc<LiveEvent>>,
    file: Option<std::fs::File>,
}

impl LiveJob {
    /// A live view whose events also go to `file` (JSON lines).
    pub fn new(id: &str, file: Option<PathBuf>) -> Arc<Self> {
        let (tx, _) = broadcast::channel(1024);
        let file = file.and_then(|p| std::fs::File::create(p).ok());
        Arc::new(Self {
            id: id.to_owned(),
            cancel: CancellationToken::new(),
            abort: CancellationToken::new(),
            started: Instant::now(),
            counts: Mutex::new(Counts::default()),
            gauge: Mutex::new(None),
            log: Mutex::new(Log { history: Vec::new(), tx, file }),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets what is in flight is read from.
    pub fn set_gauge(&self, g: Gauge) {
        *self.gauge.lock().unwrap_or_else(|e| e.into_inner()) = Some(g);
    }

    /// Names the step (a sweep's load, an engine section) and how many requests it will send.
    pub fn set_step(&self, step: Option<String>, total: Option<u64>) {
        let mut c = self.counts();
        c.step = step;
        c.total = total;
    }

    /// Every event so far and a receiver for the next ones, with nothing lost between them.
    pub fn subscribe(&self) -> (Vec<Arc<LiveEvent>>, broadcast::Receiver<Arc<LiveEvent>>) {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        (log.history.clone(), log.tx.subscribe())
    }

    /// Sends an event to every subscriber and the file.
    pub fn publish(&self, event: &'static str, data: serde_json::Value) {
        let ev = Arc::new(LiveEvent { event, data });
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = &mut log.file {
            if let Ok(line) = serde_json::to_string(&*ev) {
                let _ = writeln!(f, "{line}");
            }
        }
        log.history.push(ev.clone());
        let _ = log.tx.send(ev);
    }

    /// The newest progress snapshot, if one was cut.
    pub fn latest(&self) -> Option<serde_json::Value> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.history.iter().rev().find(|e| e.event == "progress").map(|e| e.data.clone())
    }

    /// Cuts this second's snapshot (and starts the next second).
    pub fn snapshot(&self) -> Snapshot {
        let in_flight = self.gauge.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |g| g());
        let mut c = self.counts();
        let done = c.current.take().unwrap_or_else(Second::new);
        c.seconds.push_back(done);
        while c.seconds.len() > WINDOW_S {
            c.seconds.pop_front();
        }
        let rolling = |pick: fn(&Second) -> &Histogram<u64>, seconds: &VecDeque<Second>| {
            let mut h = Second::new().ttft;
            for s in seconds {
                let _ = h.add(pick(s));
            }
            (!h.is_empty()).then(|| Rolling {
                count: h.len(),
                p50: h.value_at_quantile(0.5) as f64 / 1000.0,
                p90: h.value_at_quantile(0.9) as f64 / 1000.0,
                p99: h.value_at_quantile(0.99) as f64 / 1000.0,
            })
        };
        let recent: Vec<&Second> = c.seconds.iter().rev().take(RATE_S).collect();
        let span = recent.len().max(1) as f64;
        Snapshot {
            t: self.started.elapsed().as_secs_f64(),
            step: c.step.clone(),
            completed: c.completed,
            failed: c.failed,
            failures: c.failures.clone(),
            in_flight,
            output_tokens: c.output_tokens,
            output_throughput: recent.iter().map(|s| s.tokens).sum::<u64>() as f64 / span,
            request_throughput: recent.iter().map(|s| s.ended).sum::<u64>() as f64 / span,
            ttft_ms: rolling(|s| &s.ttft, &c.seconds),
            itl_ms: rolling(|s| &s.itl, &c.seconds),
            total: c.total,
        }
    }

    /// Cuts a snapshot and publishes it.
    pub fn tick(&self) {
        let s = self.snapshot();
        self.publish("progress", serde_json::to_value(s).unwrap_or_default());
    }

    /// Takes one record.
    pub fn add(&self, r: &RequestRecord) {
        let mut c = self.counts();
        let c = &mut *c;
        let cur = c.current.get_or_insert_with(Second::new);
        cur.ended += 1;
        match r.failure() {
            None => {
                c.completed += 1;
                c.output_tokens += r.output_tokens;
                cur.tokens += r.output_tokens;
                if let Some(t) = r.first_token_ns {
                    let _ = cur.ttft.record((t.saturating_sub(r.sent_ns) / 1000).max(1));
                }
                for &g in &r.itl_ns {
                    let _ = cur.itl.record((g / 1000).max(1));
                }
            }
            Some(kind) => {
                c.failed += 1;
                *c.failures.entry(kind.label()).or_default() += 1;
            }
        }
    }

    /// Seconds since it started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The sink a benchmark feeds its live view through.
pub struct LiveSink(pub Arc<LiveJob>);

impl RecordSink for LiveSink {
    fn record(&mut self, r: &RequestRecord) -> Result<(), SinkError> {
        self.0.add(r);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, ttft_ms: u64, itl_ms: &[u64], ok: bool) -> RequestRecord {
        let mut r: RequestRecord = serde_json::from_value(serde_json::json!({
            "id": id, "scheduled_ns": 0, "gate_ns": 0, "sent_ns": 1_000_000, "first_token_ns": 1_000_000 + ttft_ms * 1_000_000,
            "end_ns": 500_000_000, "itl_ns": itl_ms.iter().map(|x| x * 1_000_000).collect::<Vec<_>>(),
            "input_tokens": 10, "output_tokens": itl_ms.len() as u64 + 1, "status": "success"
        }))
        .unwrap();
        if !ok {
            r.outcome = inferbench_core::Outcome::Failed { failure: inferbench_core::FailureKind::Timeout, message: String::new() };
        }
        r
    }

    /// Hand-computed: TTFTs 10..=100 ms in the first second and 1000 ms in the second; the
    /// rolling median over both is the 6th of 11 values (60 ms), p99 the largest (1000 ms).
    #[test]
    fn snapshots_count_and_roll() {
        let live = LiveJob::new("x", None);
        live.set_gauge(Arc::new(|| 7));
        for i in 1..=10 {
            live.add(&rec(i, i * 10, &[5, 5, 20], true));
        }
        live.add(&rec(11, 0, &[], false));
        let s = live.snapshot();
        assert_eq!((s.completed, s.failed, s.in_flight, s.output_tokens), (10, 1, 7, 40));
        assert_eq!(s.failures["timeout"], 1);
        let t = s.ttft_ms.unwrap();
        assert_eq!(t.count, 10);
        assert!((t.p50 - 50.0).abs() < 0.1, "{t:?}");
        let itl = s.itl_ms.unwrap();
        assert!((itl.p50 - 5.0).abs() < 0.01 && (itl.p99 - 20.0).abs() < 0.05, "{itl:?}");
        // 40 tokens and 11 ends in the one second so far.
        assert_eq!((s.output_throughput, s.request_throughput), (40.0, 11.0));
        live.add(&rec(12, 1000, &[], true));
        let s = live.snapshot();
        let t = s.ttft_ms.unwrap();
        assert_eq!(t.count, 11);
        assert!((t.p50 - 60.0).abs() < 0.1 && (t.p99 - 1000.0).abs() < 1.0, "{t:?}");
        // Two seconds: 41 tokens, 12 ends.
        assert_eq!((s.output_throughput, s.request_throughput), (20.5, 6.0));
    }

    #[test]
    fn a_subscriber_gets_the_history_then_what_follows() {
        let live = LiveJob::new("x", None);
        live.publish("note", serde_json::json!({"text": "one"}));
        let (past, mut rx) = live.subscribe();
        live.tick();
        assert_eq!(past.len(), 1);
        assert_eq!(rx.try_recv().unwrap().event, "progress");
        assert!(live.latest().is_some());
    }
}
