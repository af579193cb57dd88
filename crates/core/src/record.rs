//! One request's life, as measured: the single seam between load producers and consumers.

use serde::{Deserialize, Serialize};

/// Where a record's token counts came from, so a reader knows how far to trust them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The server's `usage` block (exact for the server's tokenizer).
    Server,
    /// Counted on the client with the run's tokenizer.
    Tokenizer,
    /// Counted by the engine itself (in-process runs).
    Engine,
    /// Nothing was counted (e.g. the request failed before any output).
    #[default]
    None,
}

/// A client-side token count, beside the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenCount {
    /// Prompt tokens (the dataset's count in the run's tokenizer).
    pub input: u64,
    /// Generated tokens (the whole generated text, encoded once).
    pub output: u64,
}

/// Why a request failed, by kind rather than by message text, so failures can be counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureKind {
    /// The server answered with a non-success HTTP status.
    Http {
        /// The status code.
        status: u16,
    },
    /// The request did not finish within the per-request timeout (`--request-timeout`).
    Timeout,
    /// The connection could not be opened within `--connect-timeout`.
    ConnectTimeout,
    /// The answer had started, then no byte came for `--idle-timeout`.
    IdleTimeout,
    /// The connection could not be made or broke before a response arrived.
    Connection,
    /// The server reported an error inside an otherwise well-formed stream.
    Stream,
    /// The response started, then the connection broke or the stream ended early.
    Disconnect,
    /// The response carried data that is not what the protocol says (a bad chunk).
    Malformed,
    /// A line, event or body grew past the client's bound (`--max-response-bytes`).
    Overflow,
    /// The run was interrupted (Ctrl-C) before the request finished.
    Cancelled,
}

impl FailureKind {
    /// A stable short label (`http_500`, `timeout`, ...) used as a key in summaries.
    pub fn label(&self) -> String {
        match self {
            FailureKind::Http { status } => format!("http_{status}"),
            FailureKind::Timeout => "timeout".into(),
            FailureKind::ConnectTimeout => "connect_timeout".into(),
            FailureKind::IdleTimeout => "idle_timeout".into(),
            FailureKind::Connection => "connection".into(),
            FailureKind::Stream => "stream".into(),
            FailureKind::Disconnect => "disconnect".into(),
            FailureKind::Malformed => "malformed".into(),
            FailureKind::Overflow => "overflow".into(),
            FailureKind::Cancelled => "cancelled".into(),
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The full response arrived.
    Success,
    /// The request failed; `message` is for humans, `failure` for counting.
    Failed {
        /// The kind of failure.
        failure: FailureKind,
        /// A short human-readable explanation (server error text, I/O error).
        message: String,
    },
}

/// One request, timed against the run's monotonic epoch (all `*_ns` fields are nanoseconds since
/// the moment the run started). Keeping the *scheduled* instant beside the actual send makes
/// client-side queueing visible instead of silently inflating latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RequestRecord {
    /// Position of the request in the run (0-based, in scheduling order).
    pub id: u64,
    /// When the arrival process said the request should start.
    pub scheduled_ns: u64,
    /// When the concurrency gate let it through (equals `scheduled_ns` without a gate wait).
    pub gate_ns: u64,
    /// When the request's first byte was handed to the kernel: taken just before the write,
    /// after any connect.
    pub sent_ns: u64,
    /// From the request's start to `sent_ns`: opening its connection (the TCP connect, and the
    /// retry when a kept-alive connection had gone stale) when `reused` is false; the idle-pool
    /// lookup, well under a microsecond, when it is true. 0 for in-process runs and for requests
    /// that never reached the wire. vLLM's TTFT and E2EL include it; `ttft_no_connect` does not.
    #[serde(default)]
    pub connect_ns: u64,
    /// Whether the request went out on a connection that was already open (kept alive from an
    /// earlier request, or opened by `--warmup-connections`). Absent for in-process runs and for
    /// requests that never reached the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused: Option<bool>,
    /// When the first non-empty output chunk arrived, if any did.
    pub first_token_ns: Option<u64>,
    /// When the request ended (last byte, error, or cancellation).
    pub end_ns: u64,
    /// Gaps between successive non-empty output chunks, in nanoseconds.
    #[serde(default)]
    pub itl_ns: Vec<u64>,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Where the token counts came from.
    #[serde(default)]
    pub token_source: TokenSource,
    /// The client's own count of the same tokens, when it checked the server's `usage` (a
    /// sample of requests: `--reconcile-every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_count: Option<TokenCount>,
    /// The output length asked for, when the request asked for it exactly (`ignore_eos`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_output_tokens: Option<u64>,
    /// Prompt tokens the server's prefix cache served (`usage.prompt_tokens_details.cached_tokens`),
    /// when the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The prompt's category, when the dataset has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Turn within its conversation, for multi-turn sessions (`id` is then the session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    /// The generated text, kept only when asked for (it can be large).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_text: Option<String>,
}

impl RequestRecord {
    /// True when the request completed successfully.
    pub fn is_success(&self) -> bool {
        matches!(self.outcome, Outcome::Success)
    }

    /// The failure kind, if the request failed.
    pub fn failure(&self) -> Option<&FailureKind> {
        match &self.outcome {
            Outcome::Success => None,
            Outcome::Failed { failure, .. } => Some(failure),
        }
    }

    /// When the request started: its send, less the time spent getting a connection.
    pub fn start_ns(&self) -> u64 {
        self.sent_ns.saturating_sub(self.connect_ns)
    }

    /// Moves the record's instants `ns` later: a shard's records onto the merged run's clock,
    /// whose epoch is the earliest shard's. Durations (connect, ITL) are unchanged.
    pub fn shift(&mut self, ns: u64) {
        self.scheduled_ns += ns;
        self.gate_ns += ns;
        self.sent_ns += ns;
        self.end_ns += ns;
        if let Some(f) = &mut self.first_token_ns {
            *f += ns;
        }
    }

    /// Time to first token from the request's start, connect included, in ms (vLLM's TTFT).
    pub fn ttft_ms(&self) -> Option<f64> {
        self.first_token_ns.map(|t| ns_to_ms(t.saturating_sub(self.start_ns())))
    }

    /// Time to first token from the write of the request, connect excluded, in ms: the
    /// server's part of TTFT, as a packet capture would see it.
    pub fn ttft_no_connect_ms(&self) -> Option<f64> {
        self.first_token_ns.map(|t| ns_to_ms(t.saturating_sub(self.sent_ns)))
    }

    /// Connect time in ms when the request opened a new connection.
    pub fn new_connect_ms(&self) -> Option<f64> {
        (self.reused == Some(false)).then(|| ns_to_ms(self.connect_ns))
    }

    /// Time to first token from the scheduled send, in ms (what a user arriving then would see).
    pub fn ttft_sched_ms(&self) -> Option<f64> {
        self.first_token_ns.map(|t| ns_to_ms(t.saturating_sub(self.scheduled_ns)))
    }

    /// End-to-end latency from the request's start, connect included, in ms (vLLM's E2EL).
    pub fn e2el_ms(&self) -> f64 {
        ns_to_ms(self.end_ns.saturating_sub(self.start_ns()))
    }

    /// End-to-end latency from the scheduled send, in ms.
    pub fn e2el_sched_ms(&self) -> f64 {
        ns_to_ms(self.end_ns.saturating_sub(self.scheduled_ns))
    }

    /// Mean time per output token after the first, in ms; `None` with fewer than 2 tokens.
    pub fn tpot_ms(&self) -> Option<f64> {
        let ttft = self.ttft_ms()?;
        (self.output_tokens > 1).then(|| (self.e2el_ms() - ttft) / (self.output_tokens - 1) as f64)
    }

    /// Time spent waiting for the concurrency gate, in ms.
    pub fn queue_ms(&self) -> f64 {
        ns_to_ms(self.gate_ns.saturating_sub(self.scheduled_ns))
    }

    /// Client-side dispatch lag: how late the send was after the request was free to go, in ms.
    pub fn sched_lag_ms(&self) -> f64 {
        ns_to_ms(self.start_ns().saturating_sub(self.gate_ns.max(self.scheduled_ns)))
    }
}

/// Converts nanoseconds to milliseconds.
pub fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> RequestRecord {
        RequestRecord {
            id: 0,
            scheduled_ns: 1_000_000,
            gate_ns: 3_000_000,
            sent_ns: 3_500_000,
            connect_ns: 0,
            reused: Some(true),
            first_token_ns: Some(13_500_000),
            end_ns: 43_500_000,
            itl_ns: vec![10_000_000, 10_000_000, 10_000_000],
            input_tokens: 10,
            output_tokens: 4,
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

    #[test]
    fn derived_latencies_follow_their_definitions() {
        let r = rec();
        assert_eq!(r.ttft_ms(), Some(10.0));
        assert_eq!(r.ttft_sched_ms(), Some(12.5));
        assert_eq!(r.e2el_ms(), 40.0);
        assert_eq!(r.tpot_ms(), Some(10.0));
        assert_eq!(r.queue_ms(), 2.0);
        assert_eq!(r.sched_lag_ms(), 0.5);
        assert_eq!(r.ttft_no_connect_ms(), Some(10.0));
        assert_eq!(r.new_connect_ms(), None);
    }

    #[test]
    fn a_new_connection_counts_in_vllm_latencies_but_not_in_ttft_without_connect() {
        // Free to go at 3.0 ms, connect from 3.5 to 4.7 ms, written at 4.7, first token at 14.7,
        // end at 44.7: vLLM's TTFT is 11.2 ms, the server's part 10 ms.
        let mut r = rec();
        r.sent_ns = 4_700_000;
        r.connect_ns = 1_200_000;
        r.reused = Some(false);
        r.first_token_ns = Some(14_700_000);
        r.end_ns = 44_700_000;
        assert_eq!(r.start_ns(), 3_500_000);
        assert_eq!(r.ttft_ms(), Some(11.2));
        assert_eq!(r.ttft_no_connect_ms(), Some(10.0));
        assert_eq!(r.e2el_ms(), 41.2);
        assert_eq!(r.sched_lag_ms(), 0.5);
        assert_eq!(r.new_connect_ms(), Some(1.2));
        // TPOT is unchanged by the connect: (41.2 - 11.2) / 3.
        assert!((r.tpot_ms().unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn records_written_before_connect_time_read_as_before() {
        let old = r#"{"id":1,"scheduled_ns":0,"gate_ns":0,"sent_ns":5,"first_token_ns":10,"end_ns":20,"input_tokens":1,"output_tokens":1,"status":"success"}"#;
        let r: RequestRecord = serde_json::from_str(old).unwrap();
        assert_eq!((r.connect_ns, r.reused, r.start_ns()), (0, None, 5));
        assert!(!serde_json::to_string(&r).unwrap().contains("reused"));
    }

    #[test]
    fn record_round_trips_through_json() {
        let mut r = rec();
        r.outcome = Outcome::Failed { failure: FailureKind::Http { status: 503 }, message: "busy".into() };
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.contains(r#""status":"failed""#), "{s}");
        let back: RequestRecord = serde_json::from_str(&s).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.failure().unwrap().label(), "http_503");
    }
}
