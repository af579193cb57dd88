//! Our own live metrics in Prometheus text (`--metrics-port`), for people who watch long runs in
//! Grafana: requests by outcome, in flight, tokens, and TTFT / ITL / E2EL histograms, updated
//! as each record completes. Served on 127.0.0.1 only, by one plain thread, so a scraper never
//! touches the runtime that times tokens.

use inferbench_core::{RecordSink, RequestRecord, SinkError};
use inferbench_engine::prometheus::{Histogram, E2E_BUCKETS, ITL_BUCKETS, TTFT_BUCKETS};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What requests are in flight now, read at each scrape.
pub type InFlight = Arc<dyn Fn() -> u64 + Send + Sync>;

struct State {
    succeeded: AtomicU64,
    failed: Mutex<BTreeMap<String, u64>>,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    runs: AtomicU64,
    in_flight: Mutex<Option<InFlight>>,
    ttft: Histogram,
    itl: Histogram,
    e2el: Histogram,
}

/// The live counters, shared by the sink of every run (a sweep's steps add up) and the server.
#[derive(Clone)]
pub struct LiveMetrics(Arc<State>);

impl Default for LiveMetrics {
    fn default() -> Self {
        Self(Arc::new(State {
            succeeded: AtomicU64::new(0),
            failed: Mutex::default(),
            input_tokens: AtomicU64::new(0),
            output_tokens: AtomicU64::new(0),
            runs: AtomicU64::new(0),
            in_flight: Mutex::new(None),
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2el: Histogram::new(E2E_BUCKETS),
        }))
    }
}

impl LiveMetrics {
    /// Serves `GET /metrics` on 127.0.0.1:`port` (0: any free port) from a thread of its own;
    /// returns the address.
    pub fn serve(&self, port: u16) -> std::io::Result<std::net::SocketAddr> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let me = self.clone();
        std::thread::Builder::new().name("inferbench-live-metrics".into()).spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = me.answer(conn);
            }
        })?;
        Ok(addr)
    }

    fn answer(&self, mut conn: std::net::TcpStream) -> std::io::Result<()> {
        let mut head = Vec::with_capacity(512);
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
        let (status, body) = if line.starts_with(b"GET /metrics ") || line.starts_with(b"GET /metrics?") {
            ("200 OK", self.text())
        } else {
            ("404 Not Found", "not found: GET /metrics\n".to_owned())
        };
        write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// The sink a run feeds; `in_flight` reads the run's requests in flight.
    pub fn sink(&self, in_flight: InFlight) -> LiveSink {
        *self.0.in_flight.lock().unwrap_or_else(|e| e.into_inner()) = Some(in_flight);
        self.0.runs.fetch_add(1, Relaxed);
        LiveSink(self.clone())
    }

    /// Requests in flight now, as the run in progress counts them (0 between runs).
    pub fn in_flight(&self) -> u64 {
        self.0.in_flight.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |f| f())
    }

    /// The page.
    pub fn text(&self) -> String {
        let s = &self.0;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP inferbench_requests_total Measured requests ended, by outcome.\n# TYPE inferbench_requests_total counter"
        );
        let _ = writeln!(out, "inferbench_requests_total{{outcome=\"success\"}} {}", s.succeeded.load(Relaxed));
        for (kind, n) in s.failed.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "inferbench_requests_total{{outcome=\"{kind}\"}} {n}");
        }
        let in_flight = s.in_flight.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |f| f());
        for (name, kind, help, v) in [
            ("inferbench_requests_in_flight", "gauge", "Requests sent and not yet ended.", in_flight),
            ("inferbench_input_tokens_total", "counter", "Prompt tokens of successful requests.", s.input_tokens.load(Relaxed)),
            ("inferbench_output_tokens_total", "counter", "Output tokens of successful requests.", s.output_tokens.load(Relaxed)),
            ("inferbench_runs_total", "counter", "Runs started (a sweep's steps each count).", s.runs.load(Relaxed)),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        s.ttft.write(&mut out, "inferbench_ttft_seconds", "Time to first token, from the actual send.", "client=\"inferbench\"");
        s.itl.write(&mut out, "inferbench_itl_seconds", "Gaps between streamed chunks.", "client=\"inferbench\"");
        s.e2el.write(&mut out, "inferbench_e2el_seconds", "End-to-end request latency.", "client=\"inferbench\"");
        out
    }
}

/// Feeds [`LiveMetrics`] from a run's records.
pub struct LiveSink(LiveMetrics);

impl RecordSink for LiveSink {
    fn record(&mut self, r: &RequestRecord) -> Result<(), SinkError> {
        let s = &(self.0).0;
        match r.failure() {
            None => {
                s.succeeded.fetch_add(1, Relaxed);
                s.input_tokens.fetch_add(r.input_tokens, Relaxed);
                s.output_tokens.fetch_add(r.output_tokens, Relaxed);
                if let Some(t) = r.first_token_ns {
                    s.ttft.observe(Duration::from_nanos(t.saturating_sub(r.sent_ns)));
                }
                r.itl_ns.iter().for_each(|&g| s.itl.observe(Duration::from_nanos(g)));
                s.e2el.observe(Duration::from_nanos(r.end_ns.saturating_sub(r.sent_ns)));
            }
            Some(kind) => *s.failed.lock().unwrap_or_else(|e| e.into_inner()).entry(kind.label()).or_default() += 1,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_what_the_records_said() {
        let live = LiveMetrics::default();
        let mut sink = live.sink(Arc::new(|| 3));
        let mut ok: RequestRecord = serde_json::from_value(serde_json::json!({
            "id": 0, "scheduled_ns": 0, "gate_ns": 0, "sent_ns": 0, "first_token_ns": 30_000_000, "end_ns": 100_000_000,
            "itl_ns": [20_000_000, 50_000_000], "input_tokens": 10, "output_tokens": 3, "status": "success"
        }))
        .unwrap();
        sink.record(&ok).unwrap();
        ok.outcome = inferbench_core::Outcome::Failed { failure: inferbench_core::FailureKind::Timeout, message: String::new() };
        sink.record(&ok).unwrap();
        let addr = live.serve(0).unwrap();
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut page = String::new();
        c.read_to_string(&mut page).unwrap();
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
        for line in [
            "inferbench_requests_total{outcome=\"success\"} 1",
            "inferbench_requests_total{outcome=\"timeout\"} 1",
            "inferbench_requests_in_flight 3",
            "inferbench_output_tokens_total 3",
            "inferbench_ttft_seconds_bucket{client=\"inferbench\",le=\"0.04\"} 1",
            "inferbench_itl_seconds_count{client=\"inferbench\"} 2",
        ] {
            assert!(page.contains(line), "{line} missing from\n{page}");
        }
        // Our own page reads back with our own parser.
        let body = &page[page.find("\r\n\r\n").unwrap() + 4..];
        let parsed = inferbench_monitor::Page::parse(body);
        assert_eq!(parsed.skipped_lines, 0);
        assert_eq!(parsed.counter_sum("inferbench_requests_total"), Some(2.0));
    }
}
