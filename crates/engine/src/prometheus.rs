//! The engine's live counters and latency histograms, exposed in Prometheus text with vLLM's
//! metric names so dashboards built for vLLM (and our own monitoring) read them unchanged.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A cumulative histogram with fixed bucket bounds (seconds).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// An empty histogram over these bucket bounds.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(), sum_us: AtomicU64::new(0), count: AtomicU64::new(0) }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|&b| s <= b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Appends the histogram in Prometheus text (`labels` without braces).
    pub fn write(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cum += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cum}");
        }
        let n = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {n}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_us.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{{{labels}}} {n}");
    }
}

/// vLLM's TTFT buckets (seconds).
pub const TTFT_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0];
/// vLLM's inter-token latency buckets (seconds).
pub const ITL_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
/// vLLM's end-to-end latency buckets (seconds).
pub const E2E_BUCKETS: &[f64] = &[0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0];

/// Counters and histograms the scheduler updates as it works.
#[derive(Debug)]
pub struct EngineStats {
    /// Requests admitted and running.
    pub running: AtomicI64,
    /// Requests queued.
    pub waiting: AtomicI64,
    /// KV positions reserved by running requests.
    pub kv_used_tokens: AtomicU64,
    /// KV positions the budget holds.
    pub kv_budget_tokens: u64,
    /// Prompt tokens admitted.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generation_tokens: AtomicU64,
    /// Requests finished normally.
    pub success: AtomicU64,
    /// Forward steps run.
    pub steps: AtomicU64,
    /// Tokens processed by forward steps (prefill and decode).
    pub step_tokens: AtomicU64,
    /// Time spent in forward steps, microseconds.
    pub step_us: AtomicU64,
    /// Most sequences seen running at once.
    pub peak_running: AtomicI64,
    /// Most tokens one forward step carried (what a decoding sequence waited behind).
    pub peak_step_tokens: AtomicU64,
    /// Speculative decoding: drafts checked (one per sequence per step), as vLLM counts them.
    pub spec_drafts: AtomicU64,
    /// Speculative decoding: draft tokens proposed.
    pub spec_draft_tokens: AtomicU64,
    /// Speculative decoding: draft tokens the target accepted.
    pub spec_accepted_tokens: AtomicU64,
    /// Speculative decoding: accepted tokens by draft position (empty without a draft).
    pub spec_accepted_per_pos: Vec<AtomicU64>,
    ttft: Histogram,
    itl: Histogram,
    e2e: Histogram,
}

impl EngineStats {
    /// Fresh counters for a budget of `kv_budget_tokens` positions, with acceptance counted for
    /// `num_speculative_tokens` draft positions (0: no speculative decoding).
    pub fn new(kv_budget_tokens: usize, num_speculative_tokens: usize) -> Self {
        Self {
            running: AtomicI64::new(0),
            waiting: AtomicI64::new(0),
            kv_used_tokens: AtomicU64::new(0),
            kv_budget_tokens: kv_budget_tokens as u64,
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            success: AtomicU64::new(0),
            steps: AtomicU64::new(0),
            step_tokens: AtomicU64::new(0),
            step_us: AtomicU64::new(0),
            peak_running: AtomicI64::new(0),
            peak_step_tokens: AtomicU64::new(0),
            spec_drafts: AtomicU64::new(0),
            spec_draft_tokens: AtomicU64::new(0),
            spec_accepted_tokens: AtomicU64::new(0),
            spec_accepted_per_pos: (0..num_speculative_tokens).map(|_| AtomicU64::new(0)).collect(),
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(E2E_BUCKETS),
        }
    }

    pub(crate) fn waiting_add(&self, n: i64) {
        self.waiting.fetch_add(n, Relaxed);
    }

    pub(crate) fn set_running(&self, n: usize, kv: usize) {
        self.running.store(n as i64, Relaxed);
        self.peak_running.fetch_max(n as i64, Relaxed);
        self.kv_used_tokens.store(kv as u64, Relaxed);
    }

    pub(crate) fn record_step(&self, tokens: usize, d: Duration) {
        self.steps.fetch_add(1, Relaxed);
        self.step_tokens.fetch_add(tokens as u64, Relaxed);
        self.peak_step_tokens.fetch_max(tokens as u64, Relaxed);
        self.step_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// One sequence's draft of `proposed` tokens, about to be checked.
    pub(crate) fn drafted(&self, proposed: usize) {
        self.spec_drafts.fetch_add(1, Relaxed);
        self.spec_draft_tokens.fetch_add(proposed as u64, Relaxed);
    }

    /// The draft's token at position `pos` stood (every earlier one did too).
    pub(crate) fn accepted_at(&self, pos: usize) {
        self.spec_accepted_tokens.fetch_add(1, Relaxed);
        if let Some(c) = self.spec_accepted_per_pos.get(pos) {
            c.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn ttft(&self, d: Duration) {
        self.ttft.observe(d);
    }

    pub(crate) fn itl(&self, d: Duration) {
        self.itl.observe(d);
    }

    pub(crate) fn finished(&self, e2e: Duration) {
        self.success.fetch_add(1, Relaxed);
        self.e2e.observe(e2e);
    }

    /// Fraction of the KV budget reserved now.
    pub fn kv_usage(&self) -> f64 {
        self.kv_used_tokens.load(Relaxed) as f64 / self.kv_budget_tokens.max(1) as f64
    }

    /// Prometheus exposition text, labelled with the served model name.
    pub fn prometheus(&self, model: &str) -> String {
        let labels = format!("model_name=\"{}\"", model.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = String::new();
        let gauges: [(&str, &str, &str, f64); 6] = [
            ("vllm:num_requests_running", "gauge", "Requests in the running batch.", self.running.load(Relaxed) as f64),
            ("vllm:num_requests_waiting", "gauge", "Requests waiting for admission.", self.waiting.load(Relaxed).max(0) as f64),
            ("vllm:kv_cache_usage_perc", "gauge", "Fraction of the KV-cache budget reserved (1 = full).", self.kv_usage()),
            ("vllm:prompt_tokens_total", "counter", "Prompt tokens admitted.", self.prompt_tokens.load(Relaxed) as f64),
            ("vllm:generation_tokens_total", "counter", "Tokens generated.", self.generation_tokens.load(Relaxed) as f64),
            ("vllm:request_success_total", "counter", "Requests finished normally.", self.success.load(Relaxed) as f64),
        ];
        for (name, kind, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{{labels}}} {v}");
        }
        if !self.spec_accepted_per_pos.is_empty() {
            // vLLM's speculative-decoding counters (served only with a draft, as vLLM does).
            let counters = [
                ("vllm:spec_decode_num_drafts_total", "Drafts checked (one per sequence per step).", &self.spec_drafts),
                ("vllm:spec_decode_num_draft_tokens_total", "Draft tokens proposed.", &self.spec_draft_tokens),
                ("vllm:spec_decode_num_accepted_tokens_total", "Draft tokens accepted.", &self.spec_accepted_tokens),
            ];
            for (name, help, v) in counters {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{labels}}} {}", v.load(Relaxed));
            }
            let name = "vllm:spec_decode_num_accepted_tokens_per_pos_total";
            let _ = writeln!(out, "# HELP {name} Draft tokens accepted, by position in the draft.\n# TYPE {name} counter");
            for (pos, v) in self.spec_accepted_per_pos.iter().enumerate() {
                let _ = writeln!(out, "{name}{{{labels},position=\"{pos}\"}} {}", v.load(Relaxed));
            }
        }
        self.ttft.write(&mut out, "vllm:time_to_first_token_seconds", "Time from arrival to the first token.", &labels);
        self.itl.write(&mut out, "vllm:inter_token_latency_seconds", "Time between consecutive tokens of a request.", &labels);
        self.e2e.write(&mut out, "vllm:e2e_request_latency_seconds", "Time from arrival to the last token.", &labels);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let s = EngineStats::new(100, 0);
        s.ttft(Duration::from_millis(3));
        s.ttft(Duration::from_millis(30));
        s.ttft(Duration::from_secs(1000));
        let text = s.prometheus("m");
        assert!(text.contains("vllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("vllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.04\"} 2"));
        assert!(text.contains("vllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 3"));
        assert!(text.contains("vllm:time_to_first_token_seconds_count{model_name=\"m\"} 3"));
    }

    #[test]
    fn speculative_counters_use_vllm_names_and_count_by_position() {
        let s = EngineStats::new(100, 3);
        // Drafts of 3, 3 and 2 tokens, of which the first 2, none and both stood.
        for (proposed, accepted) in [(3, 2), (3, 0), (2, 2)] {
            s.drafted(proposed);
            (0..accepted).for_each(|pos| s.accepted_at(pos));
        }
        let text = s.prometheus("m");
        for line in [
            "vllm:spec_decode_num_drafts_total{model_name=\"m\"} 3",
            "vllm:spec_decode_num_draft_tokens_total{model_name=\"m\"} 8",
            "vllm:spec_decode_num_accepted_tokens_total{model_name=\"m\"} 4",
            "vllm:spec_decode_num_accepted_tokens_per_pos_total{model_name=\"m\",position=\"0\"} 2",
            "vllm:spec_decode_num_accepted_tokens_per_pos_total{model_name=\"m\",position=\"1\"} 2",
            "vllm:spec_decode_num_accepted_tokens_per_pos_total{model_name=\"m\",position=\"2\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        assert!(!EngineStats::new(100, 0).prometheus("m").contains("spec_decode"), "no draft: no counters, as vLLM");
    }
}
