//! Records in, summary out: every formula of `docs/metrics.md`, as pure functions.

use crate::record::{ns_to_ms, RequestRecord};
use crate::slo::Slo;
use crate::stats::{Distribution, Samples, SamplesState, StateError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A per-request latency metric that gets a distribution in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// Time to first token, from the actual send.
    Ttft,
    /// Time per output token after the first.
    Tpot,
    /// Inter-token latency: every gap between output chunks.
    Itl,
    /// End-to-end latency, from the actual send.
    E2el,
    /// Time to first token, from the scheduled send (includes any client-side delay).
    TtftSched,
    /// End-to-end latency, from the scheduled send.
    E2elSched,
    /// Time spent waiting for the `--max-concurrency` gate.
    Queue,
    /// Client dispatch lag: the request's start minus the instant it was free to go.
    Lag,
    /// Time to first token from the write of the request: TTFT without the connect.
    TtftNoConnect,
    /// Connect time of the requests that opened a new connection.
    Connect,
}

impl MetricName {
    /// Every metric, in display order.
    pub const ALL: [MetricName; 10] = [
        MetricName::Ttft,
        MetricName::Tpot,
        MetricName::Itl,
        MetricName::E2el,
        MetricName::TtftSched,
        MetricName::E2elSched,
        MetricName::Queue,
        MetricName::Lag,
        MetricName::TtftNoConnect,
        MetricName::Connect,
    ];

    /// The key used in flags and files (`ttft`, `e2el_sched`, ...).
    pub fn key(self) -> &'static str {
        match self {
            MetricName::Ttft => "ttft",
            MetricName::Tpot => "tpot",
            MetricName::Itl => "itl",
            MetricName::E2el => "e2el",
            MetricName::TtftSched => "ttft_sched",
            MetricName::E2elSched => "e2el_sched",
            MetricName::Queue => "queue",
            MetricName::Lag => "lag",
            MetricName::TtftNoConnect => "ttft_no_connect",
            MetricName::Connect => "connect",
        }
    }

    /// The upper-case abbreviation used in vLLM's console block (`TTFT`, `E2EL`).
    pub fn short(self) -> &'static str {
        match self {
            MetricName::Ttft => "TTFT",
            MetricName::Tpot => "TPOT",
            MetricName::Itl => "ITL",
            MetricName::E2el => "E2EL",
            MetricName::TtftSched => "TTFT(sched)",
            MetricName::E2elSched => "E2EL(sched)",
            MetricName::Queue => "queue wait",
            MetricName::Lag => "sched lag",
            MetricName::TtftNoConnect => "TTFT(no connect)",
            MetricName::Connect => "connect",
        }
    }

    /// The section heading used in the console block.
    pub fn title(self) -> &'static str {
        match self {
            MetricName::Ttft => "Time to First Token",
            MetricName::Tpot => "Time per Output Token (excl. 1st token)",
            MetricName::Itl => "Inter-token Latency",
            MetricName::E2el => "End-to-end Latency",
            MetricName::TtftSched => "TTFT from Scheduled Send",
            MetricName::E2elSched => "E2E Latency from Scheduled Send",
            MetricName::Queue => "Concurrency Gate Wait",
            MetricName::Lag => "Client Scheduling Lag",
            MetricName::TtftNoConnect => "TTFT Excluding Connect",
            MetricName::Connect => "Connect Time (new connections)",
        }
    }

    /// Whether the metric is a property of one request's latency (usable in SLOs).
    pub fn is_per_request(self) -> bool {
        matches!(self, MetricName::Ttft | MetricName::Tpot | MetricName::Itl | MetricName::E2el)
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl FromStr for MetricName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // vLLM's names for the same figures.
        match s.trim().to_ascii_lowercase().as_str() {
            "client_queue_time" => return Ok(MetricName::Queue),
            "e2el_including_client_queue" => return Ok(MetricName::E2elSched),
            _ => {}
        }
        MetricName::ALL
            .into_iter()
            .find(|m| m.key().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown metric '{s}' (expected one of: {})", MetricName::ALL.map(|m| m.key()).join(", ")))
    }
}

/// What to compute beyond the fixed metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SummaryOptions {
    /// Percentiles (0–100) reported for every distribution.
    pub percentiles: Vec<f64>,
    /// Goodput limits; empty means goodput is not computed.
    pub goodput: Slo,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        Self { percentiles: vec![50.0, 90.0, 95.0, 99.0], goodput: Slo::default() }
    }
}

/// What a run measured, computed from its records alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    /// Requests that completed successfully.
    pub completed: u64,
    /// Requests that failed, of any kind.
    pub failed: u64,
    /// Failures by kind label (`http_500`, `timeout`, ...).
    pub failures: BTreeMap<String, u64>,
    /// completed / (completed + failed); 0 when nothing ran.
    pub success_rate: f64,
    /// From the first scheduled send to the last request's end, in seconds.
    pub duration_s: f64,
    /// Prompt tokens of successful requests.
    pub total_input_tokens: u64,
    /// Generated tokens of successful requests.
    pub total_output_tokens: u64,
    /// completed / duration.
    pub request_throughput: f64,
    /// Requests meeting every SLO / duration; `None` when no SLO was given.
    pub request_goodput: Option<f64>,
    /// How many requests met every SLO; `None` when no SLO was given.
    pub good_requests: Option<u64>,
    /// total_output_tokens / duration.
    pub output_throughput: f64,
    /// (total_input_tokens + total_output_tokens) / duration.
    pub total_token_throughput: f64,
    /// The most requests in flight at once (between actual send and end).
    pub max_concurrent_requests: u64,
    /// How many successful requests had their tokens counted by each source.
    pub token_sources: BTreeMap<String, u64>,
    /// Latency distributions in milliseconds.
    pub metrics: BTreeMap<MetricName, Distribution>,
    /// Whether the client delivered the load it was asked for.
    #[serde(default)]
    pub delivery: Delivery,
    /// The most output chunks that arrived within one second of the run's clock (vLLM's
    /// `max_output_tokens_per_s`, which also counts a chunk as a token).
    #[serde(default)]
    pub max_output_tokens_per_s: f64,
    /// The server's token counts against the client's, on the requests counted both ways.
    #[serde(default, skip_serializing_if = "Reconciliation::is_empty")]
    pub reconciliation: Reconciliation,
    /// Successful requests that asked for an exact output length (`ignore_eos`) and got another.
    #[serde(default)]
    pub output_length_mismatches: u64,
    /// What the server's prefix cache served, when its `usage` said (vLLM, llama.cpp).
    #[serde(default, skip_serializing_if = "PrefixCache::is_empty")]
    pub prefix_cache: PrefixCache,
    /// How requests got their connections; empty for in-process runs.
    #[serde(default, skip_serializing_if = "Connections::is_empty")]
    pub connections: Connections,
    /// The same summary per prompt category, when the dataset has categories.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub categories: BTreeMap<String, Summary>,
}

/// How the requests that reached the wire got their connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Connections {
    /// Requests that opened a new connection.
    pub new: u64,
    /// Requests sent on a connection that was already open.
    pub reused: u64,
    /// New connections that took longer than [`SLOW_CONNECT_NS`]: most likely a connect whose
    /// SYN was dropped (the server's listen queue was full) and retried a second later.
    pub slow: u64,
}

/// Client and server token counts of the same requests (`--reconcile-every`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reconciliation {
    /// Requests counted both ways.
    pub checked: u64,
    /// Of those, requests whose prompt counts differ.
    pub input_differ: u64,
    /// Of those, requests whose output counts differ.
    pub output_differ: u64,
    /// Mean |server − client| prompt tokens over the checked requests.
    pub input_mean_abs_diff: f64,
    /// Mean |server − client| output tokens over the checked requests.
    pub output_mean_abs_diff: f64,
    /// Σ|server − client| prompt tokens (kept so summaries merge exactly).
    pub input_abs_diff: u64,
    /// Σ|server − client| output tokens.
    pub output_abs_diff: u64,
}

impl Reconciliation {
    /// True when no request was counted both ways.
    pub fn is_empty(&self) -> bool {
        self.checked == 0
    }

    /// The share of checked requests whose input or output counts differ.
    pub fn differ_share(&self) -> (f64, f64) {
        if self.checked == 0 {
            return (0.0, 0.0);
        }
        (self.input_differ as f64 / self.checked as f64, self.output_differ as f64 / self.checked as f64)
    }
}

/// Prompt tokens served from the server's prefix cache, over the successful requests whose
/// `usage` carried `prompt_tokens_details.cached_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrefixCache {
    /// Requests that reported a cached count (0 included).
    pub requests: u64,
    /// Their prompt tokens.
    pub prompt_tokens: u64,
    /// Their cached prompt tokens.
    pub cached_tokens: u64,
    /// cached_tokens / prompt_tokens (0 with no prompt tokens).
    pub cached_share: f64,
}

impl PrefixCache {
    /// True when no request reported a cached count.
    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }
}

/// The load the client actually delivered, against what its arrival process scheduled: when the
/// client falls behind, latencies describe the client and not the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Delivery {
    /// Requests per second the arrival process scheduled: (n − 1) / (last − first scheduled
    /// instant); 0 with fewer than two requests.
    pub scheduled_rate: f64,
    /// Requests per second the client started: (n − 1) / (last − first start).
    pub achieved_rate: f64,
    /// Time-weighted mean of requests in flight over the run: Σ(end − start) / duration.
    pub mean_in_flight: f64,
    /// Requests started more than [`LATE_NS`] after they were free to go (scheduling lag).
    pub late: u64,
    /// `late` over all requests.
    pub late_share: f64,
}

/// Seconds of the per-second chunk table (48 days): past it a record's times are not believed.
const MAX_RUN_SECONDS: usize = 1 << 22;

/// A request whose start lagged its due instant by more than this (1 ms) was sent late.
pub const LATE_NS: u64 = 1_000_000;

impl Delivery {
    /// achieved_rate / scheduled_rate, when both are known.
    pub fn rate_ratio(&self) -> Option<f64> {
        (self.scheduled_rate > 0.0 && self.achieved_rate > 0.0).then(|| self.achieved_rate / self.scheduled_rate)
    }
}

/// Spans and sums behind [`Delivery`], kept so accumulators merge exactly.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct DeliveryAcc {
    n: u64,
    first_sched: u64,
    last_sched: u64,
    first_start: u64,
    last_start: u64,
    busy_ns: u128,
    late: u64,
}

impl Default for DeliveryAcc {
    fn default() -> Self {
        Self { n: 0, first_sched: u64::MAX, last_sched: 0, first_start: u64::MAX, last_start: 0, busy_ns: 0, late: 0 }
    }
}

impl DeliveryAcc {
    fn add(&mut self, r: &RequestRecord) {
        let start = r.start_ns();
        self.n += 1;
        self.first_sched = self.first_sched.min(r.scheduled_ns);
        self.last_sched = self.last_sched.max(r.scheduled_ns);
        self.first_start = self.first_start.min(start);
        self.last_start = self.last_start.max(start);
        self.busy_ns += u128::from(r.end_ns.saturating_sub(start));
        self.late += u64::from(start.saturating_sub(r.gate_ns.max(r.scheduled_ns)) > LATE_NS);
    }

    fn shift(&mut self, ns: u64) {
        if self.n > 0 {
            self.first_sched += ns;
            self.last_sched += ns;
            self.first_start += ns;
            self.last_start += ns;
        }
    }

    fn merge(&mut self, o: &DeliveryAcc) {
        self.n += o.n;
        self.first_sched = self.first_sched.min(o.first_sched);
        self.last_sched = self.last_sched.max(o.last_sched);
        self.first_start = self.first_start.min(o.first_start);
        self.last_start = self.last_start.max(o.last_start);
        self.busy_ns += o.busy_ns;
        self.late += o.late;
    }

    fn finish(&self, duration_s: f64) -> Delivery {
        let rate = |a: u64, b: u64| if self.n >= 2 && b > a { (self.n - 1) as f64 / ((b - a) as f64 / 1e9) } else { 0.0 };
        Delivery {
            scheduled_rate: rate(self.first_sched, self.last_sched),
            achieved_rate: rate(self.first_start, self.last_start),
            mean_in_flight: if duration_s > 0.0 { self.busy_ns as f64 / 1e9 / duration_s } else { 0.0 },
            late: self.late,
            late_share: if self.n == 0 { 0.0 } else { self.late as f64 / self.n as f64 },
        }
    }
}

/// A connect slower than this (900 ms) is counted as likely dropped and retried: Linux retries
/// an unanswered SYN after one second, and no loopback or LAN connect takes that long otherwise.
pub const SLOW_CONNECT_NS: u64 = 900_000_000;

impl Connections {
    /// True when no request reached the wire (nothing to report).
    pub fn is_empty(&self) -> bool {
        self.new + self.reused == 0
    }

    /// The share of requests that opened a new connection (0 when none reached the wire).
    pub fn new_share(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.new as f64 / (self.new + self.reused) as f64
        }
    }
}

impl Summary {
    /// Summarises `records`. Warm-up requests must already be excluded by the caller.
    pub fn from_records<'a, I>(records: I, opts: &SummaryOptions) -> Summary
    where
        I: IntoIterator<Item = &'a RequestRecord>,
    {
        let mut acc = Accumulator::new(opts);
        for r in records {
            acc.add(r);
        }
        acc.finish()
    }

    /// The distribution of one metric (present for every metric).
    pub fn metric(&self, m: MetricName) -> &Distribution {
        static EMPTY: Distribution =
            Distribution { count: 0, mean: 0.0, median: 0.0, std: 0.0, min: 0.0, max: 0.0, percentiles: Vec::new(), exact: true };
        self.metrics.get(&m).unwrap_or(&EMPTY)
    }
}

/// An accumulator's mergeable state, as a shard writes it (`<stem>.state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccumulatorState {
    /// Layout version of this state.
    pub format: u32,
    /// Every counter of the summary (its distributions are in `samples`).
    pub counts: Summary,
    /// Requests that met the goodput SLO.
    pub good: u64,
    /// The first scheduled instant, ns from the shard's epoch.
    pub first_start: Option<u64>,
    /// The last end, ns from the shard's epoch.
    pub last_end: u64,
    /// Spans and sums behind the delivery check.
    pub delivery: DeliveryAcc,
    /// Output chunks per second of the shard's clock (packed: delta-coded varints, deflated,
    /// base64, so an hour of steady load takes a few KB).
    #[serde(with = "packed_counts")]
    pub chunks_per_s: Vec<u32>,
    /// Each metric's samples.
    pub samples: BTreeMap<MetricName, SamplesState>,
    /// The same per prompt category.
    pub categories: BTreeMap<String, AccumulatorState>,
    /// The most requests the shard had in flight at once.
    pub peak_in_flight: u64,
}

impl AccumulatorState {
    /// The layout version this build writes and reads.
    pub const FORMAT: u32 = 1;
}

/// A per-second count table as base64 of deflated zig-zag delta varints: steady load repeats
/// small deltas, which deflate squeezes to a byte or two a second.
mod packed_counts {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::io::{Read, Write};

    pub fn serialize<S: Serializer>(v: &[u32], s: S) -> Result<S::Ok, S::Error> {
        let mut raw = Vec::with_capacity(v.len() * 2);
        let mut prev = 0i64;
        for &x in v {
            let d = i64::from(x) - prev;
            prev = i64::from(x);
            let mut z = ((d << 1) ^ (d >> 63)) as u64;
            loop {
                let b = (z & 0x7f) as u8;
                z >>= 7;
                if z == 0 {
                    raw.push(b);
                    break;
                }
                raw.push(b | 0x80);
            }
        }
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&raw).map_err(serde::ser::Error::custom)?;
        let packed = enc.finish().map_err(serde::ser::Error::custom)?;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(packed))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        let text = String::deserialize(d)?;
        let packed = base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)?;
        let mut raw = Vec::new();
        flate2::read::DeflateDecoder::new(packed.as_slice()).read_to_end(&mut raw).map_err(serde::de::Error::custom)?;
        let (mut out, mut prev, mut z, mut shift) = (Vec::new(), 0i64, 0u64, 0u32);
        for b in raw {
            if shift > 63 {
                return Err(serde::de::Error::custom("a count table entry is too long"));
            }
            z |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                let d = (z >> 1) as i64 ^ -((z & 1) as i64);
                prev += d;
                out.push(u32::try_from(prev).map_err(|_| serde::de::Error::custom("a count out of range"))?);
                (z, shift) = (0, 0);
            }
        }
        Ok(out)
    }
}

/// Incremental summary builder, so huge runs need not keep every record in memory.
#[derive(Debug)]
pub struct Accumulator {
    opts: SummaryOptions,
    samples: BTreeMap<MetricName, Samples>,
    s: Summary,
    good: u64,
    first_start: u64,
    last_end: u64,
    /// (time, +1 / -1) events for peak concurrency, unless the caller supplies the peak.
    events: Vec<(u64, i8)>,
    /// False when the caller measures peak concurrency itself (see
    /// [`Accumulator::without_peak_events`]).
    peak_events: bool,
    /// Per-category accumulators (one level deep).
    categories: BTreeMap<String, Accumulator>,
    delivery: DeliveryAcc,
    /// Output chunks per whole second since the epoch.
    chunks_per_s: Vec<u32>,
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new(opts: &SummaryOptions) -> Self {
        Self {
            opts: opts.clone(),
            samples: MetricName::ALL.into_iter().map(|m| (m, Samples::default())).collect(),
            s: Summary::default(),
            good: 0,
            first_start: u64::MAX,
            last_end: 0,
            events: Vec::new(),
            peak_events: true,
            categories: BTreeMap::new(),
            delivery: DeliveryAcc::default(),
            chunks_per_s: Vec::new(),
        }
    }

    /// Keeps no send/end events for the top-level peak concurrency, which then reads 0 until the
    /// caller sets it: a live run counts requests in flight as they happen (the load loop's
    /// gauge), so memory does not grow by 32 bytes per request. Per-category peaks still come
    /// from events.
    pub fn without_peak_events(mut self) -> Self {
        self.peak_events = false;
        self.events = Vec::new();
        self
    }

    /// Adds one record.
    pub fn add(&mut self, r: &RequestRecord) {
        if let Some(c) = &r.category {
            let opts = &self.opts;
            self.categories.entry(c.clone()).or_insert_with(|| Accumulator::new(opts)).add_one(r);
        }
        self.add_one(r);
    }

    fn add_one(&mut self, r: &RequestRecord) {
        self.first_start = self.first_start.min(r.scheduled_ns);
        self.last_end = self.last_end.max(r.end_ns);
        if self.peak_events {
            self.events.push((r.start_ns(), 1));
            self.events.push((r.end_ns, -1));
        }
        let sample = |s: &mut BTreeMap<MetricName, Samples>, m: MetricName, v: f64| {
            if let Some(x) = s.get_mut(&m) {
                x.push(v)
            }
        };
        sample(&mut self.samples, MetricName::Queue, r.queue_ms());
        sample(&mut self.samples, MetricName::Lag, r.sched_lag_ms());
        self.delivery.add(r);
        match r.reused {
            Some(true) => self.s.connections.reused += 1,
            Some(false) => {
                self.s.connections.new += 1;
                self.s.connections.slow += u64::from(r.connect_ns > SLOW_CONNECT_NS);
                sample(&mut self.samples, MetricName::Connect, ns_to_ms(r.connect_ns));
            }
            None => {}
        }
        let Some(failure) = r.failure() else {
            self.s.completed += 1;
            self.s.total_input_tokens += r.input_tokens;
            self.s.total_output_tokens += r.output_tokens;
            *self.s.token_sources.entry(format!("{:?}", r.token_source).to_lowercase()).or_default() += 1;
            if let Some(c) = r.client_count {
                let rc = &mut self.s.reconciliation;
                rc.checked += 1;
                let (di, d_o) = (r.input_tokens.abs_diff(c.input), r.output_tokens.abs_diff(c.output));
                rc.input_differ += u64::from(di > 0);
                rc.output_differ += u64::from(d_o > 0);
                rc.input_abs_diff += di;
                rc.output_abs_diff += d_o;
            }
            if r.requested_output_tokens.is_some_and(|n| n != r.output_tokens) {
                self.s.output_length_mismatches += 1;
            }
            if let Some(c) = r.cached_tokens {
                let pc = &mut self.s.prefix_cache;
                pc.requests += 1;
                pc.prompt_tokens += r.input_tokens;
                pc.cached_tokens += c.min(r.input_tokens);
            }
            if let Some(v) = r.ttft_ms() {
                sample(&mut self.samples, MetricName::Ttft, v);
            }
            if let Some(v) = r.ttft_sched_ms() {
                sample(&mut self.samples, MetricName::TtftSched, v);
            }
            if let Some(v) = r.ttft_no_connect_ms() {
                sample(&mut self.samples, MetricName::TtftNoConnect, v);
            }
            if let Some(v) = r.tpot_ms() {
                sample(&mut self.samples, MetricName::Tpot, v);
            }
            sample(&mut self.samples, MetricName::E2el, r.e2el_ms());
            sample(&mut self.samples, MetricName::E2elSched, r.e2el_sched_ms());
            if let Some(itl) = self.samples.get_mut(&MetricName::Itl) {
                r.itl_ns.iter().for_each(|&g| itl.push(g as f64 / 1e6));
            }
            if let (Some(first), true) = (r.first_token_ns, r.output_tokens > 0) {
                let mut t = first;
                for gap in std::iter::once(0).chain(r.itl_ns.iter().copied()) {
                    t += gap;
                    let s = (t / 1_000_000_000) as usize;
                    if s >= MAX_RUN_SECONDS {
                        break; // a corrupt record, not a 48-day run: no 16 MB table for it
                    }
                    if s >= self.chunks_per_s.len() {
                        self.chunks_per_s.resize(s + 1, 0);
                    }
                    self.chunks_per_s[s] += 1;
                }
            }
            if !self.opts.goodput.is_empty() && self.opts.goodput.is_met_by(r) {
                self.good += 1;
            }
            return;
        };
        self.s.failed += 1;
        *self.s.failures.entry(failure.label()).or_default() += 1;
    }

    /// Folds another accumulator of the same options into this one. The result is the summary
    /// one accumulator would give had it seen both sets of records, to the last bit while the
    /// samples are exact (see `Samples::merge`): what sharded runs combine with. Records must be
    /// on one clock (the same epoch) for the duration and peak concurrency to mean anything.
    pub fn merge(&mut self, other: Accumulator) {
        let o = other.s;
        self.s.completed += o.completed;
        self.s.failed += o.failed;
        for (k, v) in o.failures {
            *self.s.failures.entry(k).or_default() += v;
        }
        self.s.total_input_tokens += o.total_input_tokens;
        self.s.total_output_tokens += o.total_output_tokens;
        for (k, v) in o.token_sources {
            *self.s.token_sources.entry(k).or_default() += v;
        }
        self.s.connections.new += o.connections.new;
        self.s.connections.reused += o.connections.reused;
        self.s.connections.slow += o.connections.slow;
        self.s.output_length_mismatches += o.output_length_mismatches;
        let (rc, orc) = (&mut self.s.reconciliation, o.reconciliation);
        rc.checked += orc.checked;
        rc.input_differ += orc.input_differ;
        rc.output_differ += orc.output_differ;
        rc.input_abs_diff += orc.input_abs_diff;
        rc.output_abs_diff += orc.output_abs_diff;
        self.s.prefix_cache.requests += o.prefix_cache.requests;
        self.s.prefix_cache.prompt_tokens += o.prefix_cache.prompt_tokens;
        self.s.prefix_cache.cached_tokens += o.prefix_cache.cached_tokens;
        self.good += other.good;
        self.delivery.merge(&other.delivery);
        if other.chunks_per_s.len() > self.chunks_per_s.len() {
            self.chunks_per_s.resize(other.chunks_per_s.len(), 0);
        }
        self.chunks_per_s.iter_mut().zip(&other.chunks_per_s).for_each(|(a, b)| *a += b);
        self.first_start = self.first_start.min(other.first_start);
        self.last_end = self.last_end.max(other.last_end);
        self.peak_events &= other.peak_events;
        self.events.extend(other.events);
        for (m, x) in other.samples {
            match self.samples.get_mut(&m) {
                Some(mine) => mine.merge(x),
                None => {
                    self.samples.insert(m, x);
                }
            }
        }
        for (c, a) in other.categories {
            match self.categories.get_mut(&c) {
                Some(mine) => mine.merge(a),
                None => {
                    self.categories.insert(c, a);
                }
            }
        }
    }

    /// Moves everything this accumulator saw `ns` later on the clock (a shard's epoch against
    /// the merged run's). The per-second chunk table moves by whole seconds, so the peak
    /// chunks-per-second of a merge from states is approximate; from records it is exact.
    pub fn shift(&mut self, ns: u64) {
        if self.first_start != u64::MAX {
            self.first_start += ns;
            self.last_end += ns;
        }
        self.delivery.shift(ns);
        self.events.iter_mut().for_each(|(t, _)| *t += ns);
        let secs = (ns / 1_000_000_000) as usize;
        if secs > 0 && !self.chunks_per_s.is_empty() && secs < MAX_RUN_SECONDS {
            self.chunks_per_s.splice(0..0, std::iter::repeat_n(0, secs));
        }
        self.categories.values_mut().for_each(|c| c.shift(ns));
    }

    /// What a shard writes so that a merge without its records still gives every count exactly
    /// and every percentile within [`crate::stats::HIST_RELATIVE_ERROR`]: under 100 KB for a
    /// run of any length (the histograms are deflated; the chunk table is 4 bytes a second).
    pub fn state(&self, peak_in_flight: u64) -> Result<AccumulatorState, StateError> {
        Ok(AccumulatorState {
            format: AccumulatorState::FORMAT,
            counts: self.s.clone(),
            good: self.good,
            first_start: (self.first_start != u64::MAX).then_some(self.first_start),
            last_end: self.last_end,
            delivery: self.delivery,
            chunks_per_s: self.chunks_per_s.clone(),
            samples: self.samples.iter().map(|(m, x)| Ok((*m, x.state()?))).collect::<Result<_, StateError>>()?,
            categories: self.categories.iter().map(|(c, a)| Ok((c.clone(), a.state(0)?))).collect::<Result<_, StateError>>()?,
            peak_in_flight,
        })
    }

    /// An accumulator rebuilt from a shard's state, ready to merge. Its top-level peak
    /// concurrency is the shard's; a merge of states can only sum the peaks (an upper bound).
    pub fn from_state(state: &AccumulatorState, opts: &SummaryOptions) -> Result<Self, StateError> {
        if state.format != AccumulatorState::FORMAT {
            return Err(StateError(format!("format {} (this build reads {})", state.format, AccumulatorState::FORMAT)));
        }
        let mut a = Self::new(opts).without_peak_events();
        a.s = state.counts.clone();
        a.s.metrics.clear();
        a.s.categories.clear();
        a.good = state.good;
        a.first_start = state.first_start.unwrap_or(u64::MAX);
        a.last_end = state.last_end;
        a.delivery = state.delivery;
        a.chunks_per_s = state.chunks_per_s.clone();
        for (m, x) in &state.samples {
            a.samples.insert(*m, Samples::from_state(x)?);
        }
        for (c, st) in &state.categories {
            let mut cat = Self::from_state(st, opts)?;
            cat.peak_events = false;
            a.categories.insert(c.clone(), cat);
        }
        Ok(a)
    }

    /// Computes the summary.
    pub fn finish(mut self) -> Summary {
        let mut s = self.s;
        let total = s.completed + s.failed;
        s.success_rate = if total == 0 { 0.0 } else { s.completed as f64 / total as f64 };
        s.duration_s = if total == 0 { 0.0 } else { self.last_end.saturating_sub(self.first_start) as f64 / 1e9 };
        let per_s = |x: f64| if s.duration_s > 0.0 { x / s.duration_s } else { 0.0 };
        s.request_throughput = per_s(s.completed as f64);
        s.output_throughput = per_s(s.total_output_tokens as f64);
        s.total_token_throughput = per_s((s.total_input_tokens + s.total_output_tokens) as f64);
        if !self.opts.goodput.is_empty() {
            s.good_requests = Some(self.good);
            s.request_goodput = Some(per_s(self.good as f64));
        }
        // Ends sort before starts at the same instant: back-to-back requests do not overlap.
        self.events.sort_unstable();
        let (mut cur, mut peak) = (0i64, 0i64);
        for (_, d) in &self.events {
            cur += *d as i64;
            peak = peak.max(cur);
        }
        s.max_concurrent_requests = peak as u64;
        s.delivery = self.delivery.finish(s.duration_s);
        let rc = &mut s.reconciliation;
        if rc.checked > 0 {
            rc.input_mean_abs_diff = rc.input_abs_diff as f64 / rc.checked as f64;
            rc.output_mean_abs_diff = rc.output_abs_diff as f64 / rc.checked as f64;
        }
        let pc = &mut s.prefix_cache;
        pc.cached_share = if pc.prompt_tokens == 0 { 0.0 } else { pc.cached_tokens as f64 / pc.prompt_tokens as f64 };
        s.max_output_tokens_per_s = self.chunks_per_s.iter().copied().max().unwrap_or(0).into();
        s.metrics = self.samples.iter_mut().map(|(m, x)| (*m, x.distribution(&self.opts.percentiles))).collect();
        s.categories = self.categories.into_iter().map(|(c, a)| (c, a.finish())).collect();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FailureKind, Outcome, TokenSource};

    const MS: u64 = 1_000_000;

    pub(super) fn ok(id: u64, sched: u64, sent: u64, first: u64, itl: &[u64], out: u64) -> RequestRecord {
        let end = first + itl.iter().sum::<u64>();
        RequestRecord {
            id,
            scheduled_ns: sched * MS,
            gate_ns: sched * MS,
            sent_ns: sent * MS,
            connect_ns: 0,
            reused: None,
            first_token_ns: Some(first * MS),
            end_ns: end * MS,
            itl_ns: itl.iter().map(|x| x * MS).collect(),
            input_tokens: 100,
            output_tokens: out,
            token_source: TokenSource::Server,
            cached_tokens: None,
            client_count: None,
            requested_output_tokens: None,
            outcome: Outcome::Success,
            category: None,
            turn: None,
            generated_text: None,
        }
    }

    /// Three successes and one failure over a 1-second window, computed by hand.
    fn trace() -> Vec<RequestRecord> {
        let mut fail = ok(3, 500, 500, 600, &[], 0);
        fail.outcome = Outcome::Failed { failure: FailureKind::Http { status: 500 }, message: "boom".into() };
        fail.first_token_ns = None;
        vec![
            // sched 0, sent 0: TTFT 100, ITLs 10,10,10 -> E2EL 130, TPOT 30/3 = 10
            ok(0, 0, 0, 100, &[10, 10, 10], 4),
            // sched 0, sent 2 (lag 2): TTFT 200-2 = 198, ITLs 20,40 -> end 260, E2EL 258, TPOT 60/2 = 30
            ok(1, 0, 2, 200, &[20, 40], 3),
            // sched 900, sent 900: TTFT 50, one gap of 50 -> end 1000 (defines the duration), TPOT 50
            ok(2, 900, 900, 950, &[50], 2),
            fail,
        ]
    }

    /// A request that opened a connection taking `connect` ms, written at `sent`.
    fn connected(id: u64, sent: u64, connect: u64, first: u64) -> RequestRecord {
        let mut r = ok(id, sent - connect, sent, first, &[10], 2);
        r.connect_ns = connect * MS;
        r.reused = Some(false);
        r
    }

    #[test]
    fn connections_are_counted_and_connect_time_is_kept_apart() {
        let mut reused = ok(1, 20, 20, 30, &[10], 2);
        reused.reused = Some(true);
        let mut never_sent = ok(3, 0, 0, 0, &[], 0);
        never_sent.first_token_ns = None;
        never_sent.outcome = Outcome::Failed { failure: FailureKind::Connection, message: "refused".into() };
        let trace = vec![
            // start 0, connect 2, written at 2, first token 12: TTFT 12, without connect 10
            connected(0, 2, 2, 12),
            // reused: TTFT 10 both ways
            reused,
            // start 100, a 950 ms connect (a dropped SYN): TTFT 960, without connect 10
            connected(2, 1050, 950, 1060),
            never_sent,
        ];
        let opts = SummaryOptions { percentiles: vec![50.0], goodput: Slo::default() };
        let s = Summary::from_records(&trace, &opts);
        assert_eq!(s.connections, Connections { new: 2, reused: 1, slow: 1 });
        assert!((s.connections.new_share() - 2.0 / 3.0).abs() < 1e-12);
        let c = s.metric(MetricName::Connect);
        assert_eq!((c.count, c.min, c.max, c.mean), (2, 2.0, 950.0, 476.0));
        let t = s.metric(MetricName::Ttft);
        assert_eq!((t.min, t.max), (10.0, 960.0));
        assert!((t.mean - 982.0 / 3.0).abs() < 1e-9);
        let n = s.metric(MetricName::TtftNoConnect);
        assert_eq!((n.count, n.min, n.max), (3, 10.0, 10.0));
        // The peak counts a request in flight from its start, connect included: 0 runs 0..22,
        // 1 runs 20..40, 2 runs 100..1070.
        assert_eq!(s.max_concurrent_requests, 2);
        // Merging halves gives the same counts.
        let mut a = Accumulator::new(&opts);
        trace[..2].iter().for_each(|r| a.add(r));
        let mut b = Accumulator::new(&opts);
        trace[2..].iter().for_each(|r| b.add(r));
        a.merge(b);
        assert_eq!(a.finish().connections, s.connections);
        // In-process runs have none, and write none.
        let engine = Summary::from_records(&trace[3..], &opts);
        assert!(engine.connections.is_empty());
        assert!(!serde_json::to_string(&engine).unwrap().contains("connections"));
    }

    #[test]
    fn delivered_load_is_measured_against_the_schedule() {
        // Scheduled every 10 ms (0, 10, 20, 30); the client started them at 0, 10.5, 22 and 36
        // ms (lags 0, 0.5, 2, 6: two late by more than 1 ms); each ran 5 ms except the last,
        // which ran 14 ms (end 50 ms, the run's duration).
        let trace: Vec<RequestRecord> = [(0, 0, 5), (10, 10_500, 5), (20, 22_000, 5), (30, 36_000, 14)]
            .iter()
            .enumerate()
            .map(|(i, &(sched, start_us, run_ms))| {
                let mut r = ok(i as u64, sched, 0, 0, &[], 1);
                r.sent_ns = start_us * 1000;
                r.first_token_ns = Some(r.sent_ns + run_ms * MS);
                r.end_ns = r.sent_ns + run_ms * MS;
                r
            })
            .collect();
        let s = Summary::from_records(&trace, &SummaryOptions::default());
        // One chunk each, at 5, 15.5, 27 and 50 ms: all in second 0.
        assert_eq!(s.max_output_tokens_per_s, 4.0);
        let d = s.delivery;
        assert!((d.scheduled_rate - 100.0).abs() < 1e-9, "3 gaps over 30 ms: {}", d.scheduled_rate);
        assert!((d.achieved_rate - 3.0 / 0.036).abs() < 1e-9, "3 gaps over 36 ms: {}", d.achieved_rate);
        assert!((d.rate_ratio().unwrap() - 30.0 / 36.0).abs() < 1e-12);
        // Busy 5 + 5 + 5 + 14 = 29 ms over 50 ms.
        assert!((d.mean_in_flight - 0.58).abs() < 1e-12);
        assert_eq!((d.late, d.late_share), (2, 0.5));
        // Merged halves agree.
        let mut a = Accumulator::new(&SummaryOptions::default());
        trace[..1].iter().for_each(|r| a.add(r));
        let mut b = Accumulator::new(&SummaryOptions::default());
        trace[1..].iter().for_each(|r| b.add(r));
        a.merge(b);
        assert_eq!(a.finish().delivery, d);
    }

    #[test]
    fn client_and_server_counts_are_reconciled_and_short_answers_counted() {
        use crate::record::TokenCount;
        // Server: 100 in / 4 out each. Client: same; 98 / 4; 100 / 7. One unchecked request.
        let mk = |id: u64, client: Option<(u64, u64)>| {
            let mut r = ok(id, 0, 0, 10, &[1, 1, 1], 4);
            r.client_count = client.map(|(input, output)| TokenCount { input, output });
            r.requested_output_tokens = Some(4);
            r
        };
        let mut short = mk(3, None);
        short.output_tokens = 3; // asked 4 with ignore_eos, got 3
        let s =
            Summary::from_records(&[mk(0, Some((100, 4))), mk(1, Some((98, 4))), mk(2, Some((100, 7))), short], &SummaryOptions::default());
        let rc = s.reconciliation;
        assert_eq!((rc.checked, rc.input_differ, rc.output_differ), (3, 1, 1));
        assert!((rc.input_mean_abs_diff - 2.0 / 3.0).abs() < 1e-12);
        assert!((rc.output_mean_abs_diff - 1.0).abs() < 1e-12);
        assert_eq!(rc.differ_share(), (1.0 / 3.0, 1.0 / 3.0));
        assert_eq!(s.output_length_mismatches, 1);
    }

    #[test]
    fn the_cached_share_counts_only_requests_that_reported_it() {
        let mut a = ok(0, 0, 0, 10, &[], 1); // 100 prompt tokens, 64 cached
        a.cached_tokens = Some(64);
        let mut b = ok(1, 0, 0, 10, &[], 1); // 100 prompt tokens, none cached
        b.cached_tokens = Some(0);
        let c = ok(2, 0, 0, 10, &[], 1); // no report: left out
        let mut d = ok(3, 0, 0, 10, &[], 1); // failed: left out
        d.cached_tokens = Some(100);
        d.outcome = Outcome::Failed { failure: FailureKind::Timeout, message: "t".into() };
        let s = Summary::from_records(&[a, b, c, d], &SummaryOptions::default());
        assert_eq!(s.prefix_cache, PrefixCache { requests: 2, prompt_tokens: 200, cached_tokens: 64, cached_share: 0.32 });
        let none = Summary::from_records(&[ok(0, 0, 0, 10, &[], 1)], &SummaryOptions::default());
        assert!(!serde_json::to_string(&none).unwrap().contains("prefix_cache"));
    }

    #[test]
    fn hand_computed_summary() {
        let opts = SummaryOptions { percentiles: vec![50.0, 99.0], goodput: Slo::parse(&["ttft:150", "tpot:20"]).unwrap() };
        let s = Summary::from_records(&trace(), &opts);
        // Chunks at 100, 110, 120, 130; 200, 220, 260; 950 ms in second 0, and 1000 ms in second 1.
        assert_eq!(s.max_output_tokens_per_s, 8.0);
        assert_eq!((s.completed, s.failed), (3, 1));
        assert_eq!(s.failures.get("http_500"), Some(&1));
        assert_eq!(s.success_rate, 0.75);
        // first scheduled 0, last end 1000 ms
        assert!((s.duration_s - 1.0).abs() < 1e-12);
        assert_eq!(s.total_input_tokens, 300);
        assert_eq!(s.total_output_tokens, 9);
        assert!((s.request_throughput - 3.0).abs() < 1e-12);
        assert!((s.output_throughput - 9.0).abs() < 1e-12);
        assert!((s.total_token_throughput - 309.0).abs() < 1e-12);
        // good: req0 (ttft 100, tpot 10) yes; req1 (ttft 198) no; req2 (ttft 50, tpot 50) no.
        assert_eq!(s.good_requests, Some(1));
        assert_eq!(s.request_goodput, Some(1.0));

        let ttft = s.metric(MetricName::Ttft);
        // 100, 198, 50: mean 116, median 100; p99 rank 1.98 -> 100 + 0.98*98 = 196.04
        assert!((ttft.mean - 116.0).abs() < 1e-9);
        assert!((ttft.median - 100.0).abs() < 1e-9);
        assert!((ttft.percentile(99.0).unwrap() - 196.04).abs() < 1e-9);
        // population std of 100,198,50: deviations -16, 82, -66 -> (256+6724+4356)/3 = 3778.67
        assert!((ttft.std - (11336.0f64 / 3.0).sqrt()).abs() < 1e-9);

        let tpot = s.metric(MetricName::Tpot);
        // 10, 30, 50 -> mean 30
        assert!((tpot.mean - 30.0).abs() < 1e-9);
        let itl = s.metric(MetricName::Itl);
        // 10,10,10,20,40,50 -> mean 23.33, median 15
        assert_eq!(itl.count, 6);
        assert!((itl.mean - 140.0 / 6.0).abs() < 1e-9);
        assert!((itl.median - 15.0).abs() < 1e-9);
        let e2el = s.metric(MetricName::E2el);
        // 130, 258, 100 -> mean 162.67
        assert!((e2el.mean - 488.0 / 3.0).abs() < 1e-9);
        // Lag: 0, 2, 0, 0 over all four requests.
        assert!((s.metric(MetricName::Lag).mean - 0.5).abs() < 1e-9);
        assert!((s.metric(MetricName::TtftSched).max - 200.0).abs() < 1e-9);
        // In flight: [0,130], [2,260] overlap; [500,600] and [900,950] alone.
        assert_eq!(s.max_concurrent_requests, 2);
    }

    #[test]
    fn without_peak_events_leaves_the_peak_to_the_caller_but_keeps_category_peaks() {
        let mut recs = trace();
        recs[0].category = Some("code".into());
        recs[1].category = Some("code".into());
        let mut acc = Accumulator::new(&SummaryOptions::default()).without_peak_events();
        recs.iter().for_each(|r| acc.add(r));
        assert!(acc.events.is_empty(), "no events kept at the top level");
        let s = acc.finish();
        assert_eq!(s.max_concurrent_requests, 0, "set by the caller from its gauge");
        assert_eq!(s.categories["code"].max_concurrent_requests, 2, "[0,130] and [2,260] overlap");
        assert_eq!(s.completed, 3);
    }

    #[test]
    fn categories_get_their_own_summaries() {
        let mut recs = trace();
        recs[0].category = Some("code".into());
        recs[1].category = Some("code".into());
        recs[2].category = Some("chat".into());
        let s = Summary::from_records(&recs, &SummaryOptions::default());
        assert_eq!(s.categories.len(), 2);
        let code = &s.categories["code"];
        assert_eq!((code.completed, code.total_output_tokens), (2, 7));
        // TTFTs 100 and 198.
        assert!((code.metric(MetricName::Ttft).mean - 149.0).abs() < 1e-9);
        assert_eq!(s.categories["chat"].completed, 1);
        assert!(s.categories["chat"].categories.is_empty());
        assert_eq!(s.completed, 3, "the overall summary still counts everything");
    }

    #[test]
    fn empty_run_is_all_zero() {
        let s = Summary::from_records(&[], &SummaryOptions::default());
        assert_eq!((s.completed, s.duration_s, s.request_throughput), (0, 0.0, 0.0));
        assert_eq!(s.request_goodput, None);
    }

    #[test]
    fn merged_accumulators_equal_one() {
        let mut recs = trace();
        recs[0].category = Some("code".into());
        recs[2].category = Some("chat".into());
        let opts = SummaryOptions { percentiles: vec![50.0, 90.0, 99.0], goodput: Slo::parse(&["ttft:150"]).unwrap() };
        let whole = Summary::from_records(&recs, &opts);
        // Split unevenly, merge in the other order: the same summary, bit for bit.
        let (mut a, mut b) = (Accumulator::new(&opts), Accumulator::new(&opts));
        recs[..1].iter().for_each(|r| a.add(r));
        recs[1..].iter().for_each(|r| b.add(r));
        b.merge(a);
        assert_eq!(b.finish(), whole);
        // Merging an empty accumulator changes nothing.
        let mut c = Accumulator::new(&opts);
        recs.iter().for_each(|r| c.add(r));
        c.merge(Accumulator::new(&opts));
        assert_eq!(c.finish(), whole);
    }

    #[test]
    fn merge_past_the_exact_cap_keeps_moments_exact() {
        let mut a = Samples::with_exact_cap(4);
        let mut b = Samples::with_exact_cap(4);
        for i in 0..3 {
            a.push(i as f64);
        }
        for i in 3..6 {
            b.push(i as f64);
        }
        a.merge(b);
        assert!(!a.is_exact(), "6 samples do not fit a cap of 4");
        let m = a.distribution(&[50.0]);
        assert_eq!((m.count, m.min, m.max), (6, 0.0, 5.0));
        // 0..=5: mean 2.5, population variance 17.5 / 6.
        assert!((m.mean - 2.5).abs() < 1e-12 && (m.std - (17.5f64 / 6.0).sqrt()).abs() < 1e-12);
        // The histogram's median is a rank statistic (a sample at the middle), not interpolated.
        assert!((2.0..=3.0).contains(&m.median), "median {}", m.median);
        assert!(!m.exact);
    }

    #[test]
    fn vllm_metric_names_are_accepted() {
        assert_eq!("client_queue_time".parse::<MetricName>(), Ok(MetricName::Queue));
        assert_eq!("e2el_including_client_queue".parse::<MetricName>(), Ok(MetricName::E2elSched));
    }

    #[test]
    fn metric_names_parse() {
        assert_eq!("TTFT".parse::<MetricName>(), Ok(MetricName::Ttft));
        assert!("foo".parse::<MetricName>().unwrap_err().contains("unknown metric 'foo'"));
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;

    fn rec(id: u64, sched_ms: u64, ttft_ms: u64, itl_ms: &[u64]) -> RequestRecord {
        let mut r = super::tests::ok(id, sched_ms, sched_ms, sched_ms + ttft_ms, itl_ms, itl_ms.len() as u64 + 1);
        r.input_tokens = 10;
        r
    }

    #[test]
    fn a_merge_of_shifted_states_keeps_counts_exact_and_percentiles_within_the_bound() {
        // Two shards whose epochs are 1.5 s apart, and the same records on one clock.
        let a = [rec(0, 0, 100, &[10, 10]), rec(2, 200, 120, &[12])];
        let b = [rec(1, 0, 300, &[20, 20, 20]), rec(3, 400, 90, &[9])];
        let opts = SummaryOptions::default();
        let shift = 1_500_000_000;
        let mut union = Accumulator::new(&opts);
        a.iter().for_each(|r| union.add(r));
        b.iter().for_each(|r| {
            let mut r = r.clone();
            r.shift(shift);
            union.add(&r);
        });
        let want = union.finish();

        let (mut sa, mut sb) = (Accumulator::new(&opts), Accumulator::new(&opts));
        a.iter().for_each(|r| sa.add(r));
        b.iter().for_each(|r| sb.add(r));
        let json_a = serde_json::to_string(&sa.state(1).unwrap()).unwrap();
        let json_b = serde_json::to_string(&sb.state(1).unwrap()).unwrap();
        let mut merged = Accumulator::from_state(&serde_json::from_str(&json_a).unwrap(), &opts).unwrap();
        let mut other = Accumulator::from_state(&serde_json::from_str(&json_b).unwrap(), &opts).unwrap();
        other.shift(shift);
        merged.merge(other);
        let got = merged.finish();
        assert_eq!((got.completed, got.total_output_tokens, got.total_input_tokens), (4, 11, 40));
        // Duration: from 0 to shard b's last end (1.5 s + 400 + 90 + 9 ms) = 1.999 s, exactly.
        assert_eq!(got.duration_s, want.duration_s);
        assert!((got.duration_s - 1.999).abs() < 1e-12, "{}", got.duration_s);
        for m in [MetricName::Ttft, MetricName::Itl, MetricName::E2el] {
            let (g, w) = (got.metric(m), want.metric(m));
            assert_eq!(g.count, w.count);
            assert!(!g.exact && w.exact);
            assert!((g.mean - w.mean).abs() < 1e-9, "{m:?} mean");
            for ((_, x), (_, y)) in g.percentiles.iter().zip(&w.percentiles) {
                // Interpolated exact percentiles lie between two samples; the histogram returns a
                // sample, so compare against the bracketing samples' range with the bound.
                assert!(*x >= g.min * (1.0 - 1e-3) && *x <= g.max * (1.0 + 1e-3), "{m:?} {x} {y}");
            }
            assert!((g.max - w.max).abs() < 1e-9 && (g.min - w.min).abs() < 1e-9);
        }
        // TTFT p50 of {100, 120, 300, 90}: the histogram answers the 2nd smallest, 100 ms, within 0.1 %.
        let p50 = got.metric(MetricName::Ttft).median;
        assert!((p50 - 100.0).abs() <= 0.1, "{p50}");
        assert_eq!(got.delivery.scheduled_rate, want.delivery.scheduled_rate);
    }

    #[test]
    fn the_per_second_table_round_trips_packed() {
        let opts = SummaryOptions::default();
        let mut acc = Accumulator::new(&opts);
        acc.add(&rec(0, 0, 10, &[1, 1]));
        let mut st = acc.state(1).unwrap();
        st.chunks_per_s = vec![0, 5, 4_000_000_000, 3, 3, 3, 0, 17];
        let back: AccumulatorState = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        assert_eq!(back.chunks_per_s, st.chunks_per_s);
    }

    #[test]
    fn a_state_is_small_whatever_the_run_length() {
        let opts = SummaryOptions::default();
        let mut acc = Accumulator::new(&opts).without_peak_events();
        // 300,000 requests over 24 hours: the per-second table has 86,400 entries.
        for i in 0..300_000u64 {
            acc.add(&rec(i, i * 288, 40 + i % 97, &[8 + i % 5, 9, 7 + i % 11]));
        }
        let bytes = serde_json::to_vec(&acc.state(64).unwrap()).unwrap();
        assert!(bytes.len() < 100_000, "{} bytes", bytes.len());
    }
}
