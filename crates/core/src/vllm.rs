//! vLLM's per-request arrays in a result file, so scripts written for `vllm bench serve`
//! results read ours: `latencies` and `queue_times` always (vLLM 0.32 writes them always), and
//! with `--save-detailed` also `input_lens`, `output_lens`, `ttfts`, `itls`, `start_times`,
//! `generated_texts` and `errors`. In request order, in seconds, as vLLM writes them; a failed
//! request has 0 for its times and lengths, and its message in `errors`.

use crate::record::RequestRecord;
use serde::{Deserialize, Serialize};

/// The arrays (each empty when not written).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PerRequest {
    /// End-to-end latency of each request, s (0 for a failed one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latencies: Vec<f64>,
    /// Time each request waited for the `--max-concurrency` gate, s (our `queue`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue_times: Vec<f64>,
    /// Prompt tokens of each request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_lens: Vec<u64>,
    /// Generated tokens of each request (0 for a failed one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_lens: Vec<u64>,
    /// TTFT of each request, s (0 for a failed one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ttfts: Vec<f64>,
    /// The inter-chunk gaps of each request, s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub itls: Vec<Vec<f64>>,
    /// When each request started, s on the run's clock.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_times: Vec<f64>,
    /// The text each request generated ("" when none was kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generated_texts: Vec<String>,
    /// Each request's error message ("" for a success).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Gathers [`PerRequest`] as records arrive (in completion order) and orders them at the end.
#[derive(Debug, Default)]
pub struct PerRequestCollector {
    detailed: bool,
    rows: Vec<((u64, u32), f64, f64)>,
    details: Vec<RequestRecord>,
}

impl PerRequestCollector {
    /// `detailed` keeps every array (`--save-detailed`), else only latencies and queue times.
    pub fn new(detailed: bool) -> Self {
        Self { detailed, ..Self::default() }
    }

    /// Takes one measured record.
    pub fn add(&mut self, r: &RequestRecord) {
        let key = (r.id, r.turn.unwrap_or(0));
        let latency = if r.is_success() { r.e2el_ms() / 1e3 } else { 0.0 };
        self.rows.push((key, latency, r.queue_ms() / 1e3));
        if self.detailed {
            self.details.push(r.clone());
        }
    }

    /// The arrays, in request order (id, then turn).
    pub fn finish(mut self) -> PerRequest {
        self.rows.sort_by_key(|row| row.0);
        let mut out = PerRequest {
            latencies: self.rows.iter().map(|r| r.1).collect(),
            queue_times: self.rows.iter().map(|r| r.2).collect(),
            ..PerRequest::default()
        };
        if !self.detailed {
            return out;
        }
        self.details.sort_by_key(|r| (r.id, r.turn.unwrap_or(0)));
        for r in &self.details {
            let ok = r.is_success();
            out.input_lens.push(r.input_tokens);
            out.output_lens.push(if ok { r.output_tokens } else { 0 });
            out.ttfts.push(if ok { r.ttft_ms().unwrap_or(0.0) / 1e3 } else { 0.0 });
            out.itls.push(r.itl_ns.iter().map(|&g| g as f64 / 1e9).collect());
            out.start_times.push(r.start_ns() as f64 / 1e9);
            out.generated_texts.push(r.generated_text.clone().unwrap_or_default());
            out.errors.push(match &r.outcome {
                crate::Outcome::Success => String::new(),
                crate::Outcome::Failed { message, .. } => message.clone(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FailureKind, Outcome, TokenSource};

    fn rec(id: u64, ok: bool) -> RequestRecord {
        RequestRecord {
            id,
            scheduled_ns: 0,
            gate_ns: 2_000_000,
            sent_ns: 3_000_000,
            connect_ns: 1_000_000,
            reused: Some(false),
            first_token_ns: Some(12_000_000),
            end_ns: 22_000_000,
            itl_ns: vec![10_000_000],
            input_tokens: 7,
            output_tokens: 2,
            token_source: TokenSource::Server,
            cached_tokens: None,
            client_count: None,
            requested_output_tokens: None,
            outcome: if ok { Outcome::Success } else { Outcome::Failed { failure: FailureKind::Timeout, message: "late".into() } },
            category: None,
            turn: None,
            generated_text: Some("hi".into()),
        }
    }

    #[test]
    fn arrays_are_in_request_order_in_seconds() {
        let mut c = PerRequestCollector::new(true);
        c.add(&rec(1, false));
        c.add(&rec(0, true));
        let p = c.finish();
        // Start 2 ms (sent 3, connect 1), end 22 ms: 20 ms; queue 2 ms; TTFT 10 ms.
        assert_eq!(p.latencies, vec![0.02, 0.0]);
        assert_eq!(p.queue_times, vec![0.002, 0.002]);
        assert_eq!(p.ttfts, vec![0.01, 0.0]);
        assert_eq!(p.itls, vec![vec![0.01], vec![0.01]]);
        assert_eq!((p.input_lens, p.output_lens), (vec![7, 7], vec![2, 0]));
        assert_eq!(p.start_times, vec![0.002, 0.002]);
        assert_eq!(p.errors, vec!["".to_owned(), "late".to_owned()]);
        assert_eq!(p.generated_texts, vec!["hi".to_owned(), "hi".to_owned()]);
        let plain = {
            let mut c = PerRequestCollector::new(false);
            c.add(&rec(0, true));
            c.finish()
        };
        assert!(plain.ttfts.is_empty() && plain.latencies == vec![0.02]);
        let j = serde_json::to_value(&plain).unwrap();
        assert_eq!(j.as_object().unwrap().len(), 2, "only latencies and queue_times: {j}");
    }
}
