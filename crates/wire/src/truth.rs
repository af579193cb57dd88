//! The client's timings against the wire's: TTFT and ITL as the client measured them, minus
//! the same spans between the packets that carried the bytes.
//!
//! Only differences of durations are taken, each on its own clock (the client's monotonic
//! clock, the kernel's capture clock), so the two clocks never need to agree on the time.

use crate::streams::WireExchange;
use inferbench_core::stats::percentile_sorted;
use inferbench_core::RequestRecord;
use serde::Serialize;
use std::collections::HashMap;

/// Client minus wire, in ms, for one group of requests or gaps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Gap {
    /// How many values.
    pub n: u64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub median_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

impl Gap {
    /// Mean, and percentiles as `docs/metrics.md` defines them (linear between closest ranks);
    /// the values may be negative, which the latency samples of a summary never are.
    fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        let mean_ms = v.iter().sum::<f64>() / v.len() as f64;
        Self { n: v.len() as u64, mean_ms, median_ms: percentile_sorted(&v, 50.0), p99_ms: percentile_sorted(&v, 99.0) }
    }
}

/// How well the client's timing matched the wire's in one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Truth {
    /// Successful records paired with a complete exchange on the wire.
    pub matched: u64,
    /// Successful records with no exchange on the wire (packets dropped, or another capture).
    pub unmatched: u64,
    /// TTFT, requests on connections already open.
    pub ttft_reused: Gap,
    /// TTFT of every request, with the client's connect time taken out.
    pub ttft_all_no_connect: Gap,
    /// TTFT of every request, connect included (vLLM's TTFT against the wire's).
    pub ttft_all_with_connect: Gap,
    /// Every inter-token gap of the client against the same gap between token packets.
    pub itl: Gap,
    /// Streams whose count of token events differed between client and wire (left out of ITL).
    pub itl_mismatched_streams: u64,
}

/// The request id the client sent for `r` (see `Requester::with_request_id_prefix`).
pub fn request_id(prefix: &str, r: &RequestRecord) -> String {
    inferbench_load::client::request_id(prefix, r.id, r.turn, false)
}

/// Pairs records with exchanges by request id and measures the client against the wire.
pub fn compare(records: &[RequestRecord], exchanges: &[WireExchange], prefix: &str) -> Truth {
    let wire: HashMap<&str, &WireExchange> =
        exchanges.iter().filter(|e| e.complete).filter_map(|e| Some((e.request_id.as_deref()?, e))).collect();
    let mut t = Truth::default();
    let (mut reused, mut no_connect, mut with_connect, mut itl) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let ms = |client: u64, wire: u64| (client as f64 - wire as f64) / 1e6;
    for r in records.iter().filter(|r| r.is_success()) {
        let (Some(first), Some(w)) = (r.first_token_ns, wire.get(request_id(prefix, r).as_str())) else {
            t.unmatched += 1;
            continue;
        };
        let Some(&wire_first) = w.tokens_ns.first() else {
            t.unmatched += 1;
            continue;
        };
        t.matched += 1;
        let wire_ttft = wire_first.saturating_sub(w.request_ns);
        let client_sent = first.saturating_sub(r.sent_ns);
        no_connect.push(ms(client_sent, wire_ttft));
        with_connect.push(ms(first.saturating_sub(r.start_ns()), wire_ttft));
        if r.reused == Some(true) {
            reused.push(ms(client_sent, wire_ttft));
        }
        if r.itl_ns.len() + 1 == w.tokens_ns.len() {
            for (c, pair) in r.itl_ns.iter().zip(w.tokens_ns.windows(2)) {
                itl.push(ms(*c, pair[1] - pair[0]));
            }
        } else {
            t.itl_mismatched_streams += 1;
        }
    }
    t.ttft_reused = Gap::of(reused);
    t.ttft_all_no_connect = Gap::of(no_connect);
    t.ttft_all_with_connect = Gap::of(with_connect);
    t.itl = Gap::of(itl);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferbench_core::{Outcome, TokenSource};

    fn record(id: u64, start: u64, connect: u64, first: u64, itl: &[u64], reused: bool) -> RequestRecord {
        RequestRecord {
            id,
            scheduled_ns: start,
            gate_ns: start,
            sent_ns: start + connect,
            connect_ns: connect,
            reused: Some(reused),
            first_token_ns: Some(first),
            end_ns: first + itl.iter().sum::<u64>(),
            itl_ns: itl.to_vec(),
            input_tokens: 1,
            output_tokens: itl.len() as u64 + 1,
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

    fn wire(id: &str, request: u64, tokens: &[u64]) -> WireExchange {
        WireExchange {
            request_id: Some(id.into()),
            client: "127.0.0.1:1".parse().unwrap(),
            nth: 0,
            request_ns: request,
            tokens_ns: tokens.to_vec(),
            complete: true,
        }
    }

    /// Client and wire clocks are unrelated (the wire's is wall time); only spans are compared.
    #[test]
    fn client_minus_wire_is_computed_per_span_by_hand() {
        const W: u64 = 1_700_000_000_000_000_000;
        let records = vec![
            // New connection: 2 ms connect, then TTFT 10.3 ms from the write; the wire saw 10.0.
            record(0, 0, 2_000_000, 12_300_000, &[1_000_000, 2_000_000], false),
            // Reused: TTFT 5.1 ms; wire 5.0. ITL 1.05 and 0.95 ms; wire 1.0 and 1.0.
            record(1, 50_000_000, 0, 55_100_000, &[1_050_000, 950_000], true),
            // Never on the wire: unmatched.
            record(2, 0, 0, 1, &[], true),
        ];
        let exchanges = vec![
            wire("p-0", W, &[W + 10_000_000, W + 11_000_000, W + 13_000_000]),
            wire("p-1", W + 50_000_000, &[W + 55_000_000, W + 56_000_000, W + 57_000_000]),
            // Another run's request: ignored.
            wire("q-0", W, &[W + 1]),
        ];
        let t = compare(&records, &exchanges, "p-");
        assert_eq!((t.matched, t.unmatched, t.itl_mismatched_streams), (2, 1, 0));
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert_eq!(t.ttft_reused.n, 1);
        assert!(near(t.ttft_reused.mean_ms, 0.1));
        assert!(near(t.ttft_all_no_connect.mean_ms, 0.2), "{:?}", t.ttft_all_no_connect);
        assert!(near(t.ttft_all_with_connect.mean_ms, (2.3 + 0.1) / 2.0));
        assert_eq!(t.itl.n, 4);
        // Gaps: 0, 0 (record 0), +0.05, -0.05 (record 1).
        assert!(near(t.itl.mean_ms, 0.0));
        assert!(near(t.itl.median_ms, 0.0));
    }

    #[test]
    fn streams_whose_token_counts_differ_are_left_out_of_itl() {
        let records = vec![record(0, 0, 0, 10, &[5, 5], true)];
        let t = compare(&records, &[wire("p0", 0, &[10, 15])], "p");
        assert_eq!((t.matched, t.itl_mismatched_streams, t.itl.n), (1, 1, 0));
    }
}
