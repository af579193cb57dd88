//! The serving stack's own metrics over the measured window. Known families of vLLM, SGLang, TGI
//! and llama.cpp's server are mapped to common names (`running`, `waiting`, `kv_cache_usage`, ...);
//! every gauge is kept as a time series and every counter as a rate and a window delta.

use crate::gauge::GaugeAcc;
use crate::prom::{series_name, Hist, Page};
use inferbench_core::monitor::{ServerLatency, ServerReport};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// How a common gauge combines the series it is read from.
#[derive(Clone, Copy)]
enum Combine {
    Sum,
    Max,
}

/// Common gauge names and the families they are read from, first match wins.
const GAUGES: &[(&str, Combine, &[&str])] = &[
    (
        "running",
        Combine::Sum,
        &["vllm:num_requests_running", "sglang:num_running_reqs", "tgi_batch_current_size", "llamacpp:requests_processing"],
    ),
    ("waiting", Combine::Sum, &["vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size", "llamacpp:requests_deferred"]),
    (
        "kv_cache_usage",
        Combine::Max,
        &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage", "llamacpp:kv_cache_usage_ratio"],
    ),
    ("server_prefix_cache_hit_rate", Combine::Max, &["sglang:cache_hit_rate"]),
    ("spec_accept_length", Combine::Max, &["sglang:spec_accept_length"]),
];

/// Common counter names and their families (TGI counts tokens in histograms: their sums).
const COUNTERS: &[(&str, &[&str])] = &[
    (
        "prompt_tokens",
        &["vllm:prompt_tokens_total", "sglang:prompt_tokens_total", "llamacpp:prompt_tokens_total", "tgi_request_input_length_sum"],
    ),
    (
        "generation_tokens",
        &[
            "vllm:generation_tokens_total",
            "sglang:generation_tokens_total",
            "llamacpp:tokens_predicted_total",
            "tgi_request_generated_tokens_sum",
        ],
    ),
    ("requests_succeeded", &["vllm:request_success_total", "tgi_request_success", "tgi_request_success_total"]),
    ("preemptions", &["vllm:num_preemptions_total", "vllm:num_preemptions"]),
    ("prefix_cache_queries", &["vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total", "sglang:prompt_tokens_total"]),
    (
        "prefix_cache_hits",
        &[
            "vllm:prefix_cache_hits_total",
            "vllm:gpu_prefix_cache_hits_total",
            "sglang:cached_tokens_total",
            "llamacpp:prompt_tokens_cached_total",
        ],
    ),
    ("spec_decode_accepted", &["vllm:spec_decode_num_accepted_tokens_total", "llamacpp:spec_decode_num_accepted_tokens_total"]),
    ("spec_decode_drafted", &["vllm:spec_decode_num_draft_tokens_total", "llamacpp:spec_decode_num_draft_tokens_total"]),
    ("spec_decode_drafts", &["vllm:spec_decode_num_drafts_total"]),
];

/// vLLM's accepted-token counter by draft position (label `position`).
const SPEC_PER_POSITION: &str = "vllm:spec_decode_num_accepted_tokens_per_pos_total";

/// Common latency names and their histogram families (seconds).
const LATENCIES: &[(&str, &[&str])] = &[
    ("ttft", &["vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds"]),
    ("itl", &["vllm:inter_token_latency_seconds", "sglang:inter_token_latency_seconds"]),
    (
        "tpot",
        &[
            "vllm:request_time_per_output_token_seconds",
            "vllm:time_per_output_token_seconds",
            "sglang:time_per_output_token_seconds",
            "tgi_request_mean_time_per_token_duration",
        ],
    ),
    ("e2e", &["vllm:e2e_request_latency_seconds", "sglang:e2e_request_latency_seconds", "tgi_request_duration"]),
    ("queue", &["vllm:request_queue_time_seconds", "sglang:queue_time_seconds", "tgi_request_queue_duration"]),
];

/// The server whose names a page uses, by the prefixes of its families.
pub fn server_kind(page: &Page) -> Option<&'static str> {
    let names = page.gauges.keys().chain(page.counters.keys()).chain(page.histograms.keys()).map(|(n, _)| n.as_str());
    let mut kind = None;
    for n in names {
        let k = if n.starts_with("vllm:") {
            "vllm"
        } else if n.starts_with("sglang:") {
            "sglang"
        } else if n.starts_with("llamacpp:") {
            "llamacpp"
        } else if n.starts_with("tgi_") {
            "tgi"
        } else {
            continue;
        };
        kind = Some(k);
        if k != "tgi" {
            break;
        }
    }
    kind
}

/// A common gauge's value on a page.
pub fn common_gauge(page: &Page, name: &str) -> Option<f64> {
    let (_, how, families) = GAUGES.iter().find(|g| g.0 == name)?;
    families.iter().find_map(|f| match how {
        Combine::Sum => page.gauge_sum(f),
        Combine::Max => page.gauge_max(f),
    })
}

/// A common counter's value on a page (a histogram's `_sum` for TGI's token counts).
fn common_counter(page: &Page, name: &str) -> Option<f64> {
    let (_, families) = COUNTERS.iter().find(|c| c.0 == name)?;
    // llama.cpp counts cached prompt tokens apart from the ones it processed: the prompt is both.
    if matches!(name, "prompt_tokens" | "prefix_cache_queries") {
        if let Some(cached) = page.counter_sum("llamacpp:prompt_tokens_cached_total") {
            return Some(page.counter_sum("llamacpp:prompt_tokens_total").unwrap_or(0.0) + cached);
        }
    }
    // SGLang's prompt tokens stand for prefix-cache queries only beside its cached-token counter.
    if name == "prefix_cache_queries" && page.has("sglang:prompt_tokens_total") && !page.has("sglang:cached_tokens_total") {
        return None;
    }
    families.iter().find_map(|f| match f.strip_suffix("_sum").filter(|b| page.histogram(b).is_some()) {
        Some(base) => page.histogram(base).map(|h| h.sum),
        None => page.counter_sum(f),
    })
}

fn common_histogram(page: &Page, name: &str) -> Option<(&'static str, Hist)> {
    let (_, families) = LATENCIES.iter().find(|l| l.0 == name)?;
    families.iter().find_map(|f| page.histogram(f).map(|h| (*f, h)))
}

/// The server monitor's state: the page at the start of the measured window, the latest page,
/// and the common gauges' running statistics.
#[derive(Debug, Default)]
pub struct ServerMonitor {
    url: String,
    baseline: Option<Page>,
    previous: Option<(f64, Page)>,
    scrapes: u64,
    failed: u64,
    skipped: u64,
    gauges: BTreeMap<String, GaugeAcc>,
}

impl ServerMonitor {
    /// A monitor of the page at `url` (already free of credentials).
    pub fn new(url: &str) -> Self {
        Self { url: url.to_owned(), ..Self::default() }
    }

    /// The page as the measured window starts: counters and histograms are taken relative to it.
    pub fn baseline(&mut self, t_s: f64, page: Page) {
        self.scrapes += 1;
        self.skipped += page.skipped_lines;
        self.previous = Some((t_s, page.clone()));
        self.baseline = Some(page);
    }

    /// A scrape that failed.
    pub fn failed(&mut self) {
        self.failed += 1;
    }

    /// A page at `t_s` seconds into the window; returns its time-series line.
    pub fn observe(&mut self, t_s: f64, page: Page) -> Value {
        self.scrapes += 1;
        self.skipped += page.skipped_lines;
        if self.baseline.is_none() {
            self.baseline = Some(page.clone());
        }
        let mut line = Map::new();
        line.insert("t".into(), json!(round(t_s, 3)));
        line.insert("source".into(), json!("server"));
        for (name, _, _) in GAUGES {
            if let Some(v) = common_gauge(&page, name) {
                self.gauges.entry((*name).to_owned()).or_default().add(v);
                line.insert((*name).to_owned(), json!(v));
            }
        }
        let gauges: Map<String, Value> = page.gauges.iter().map(|(k, v)| (series_name(k), json!(v))).collect();
        line.insert("gauges".into(), Value::Object(gauges));
        if let Some((t0, prev)) = &self.previous {
            let dt = t_s - t0;
            if dt > 0.0 {
                let rates: Map<String, Value> = page
                    .counters
                    .iter()
                    .filter_map(|(k, v)| {
                        let before = prev.counters.get(k)?;
                        Some((series_name(k), json!(round((v - before).max(0.0) / dt, 6))))
                    })
                    .collect();
                line.insert("rates".into(), Value::Object(rates));
            }
        }
        self.previous = Some((t_s, page));
        Value::Object(line)
    }

    /// The latest value of a common gauge (for alerts).
    pub fn latest(&self, name: &str) -> Option<f64> {
        self.gauges.get(name).filter(|g| g.samples > 0).map(|g| g.last)
    }

    /// The report over the window: `client_output_tokens` is set beside the server's count.
    pub fn report(&self, client_output_tokens: u64) -> ServerReport {
        let mut r = ServerReport {
            url: self.url.clone(),
            scrapes: self.scrapes,
            failed_scrapes: self.failed,
            skipped_lines: self.skipped,
            client_output_tokens,
            gauges: self.gauges.iter().map(|(k, g)| (k.clone(), g.stats())).collect(),
            ..ServerReport::default()
        };
        let (Some(first), Some((_, last))) = (&self.baseline, &self.previous) else { return r };
        r.server_kind = server_kind(last).map(str::to_owned);
        let delta = |name: &str| Some((common_counter(last, name)? - common_counter(first, name).unwrap_or(0.0)).max(0.0));
        for (name, _) in COUNTERS {
            if let Some(d) = delta(name) {
                r.counters.insert((*name).to_owned(), d);
            }
        }
        r.raw_counters =
            last.counters.iter().map(|(k, v)| (series_name(k), (v - first.counters.get(k).copied().unwrap_or(0.0)).max(0.0))).collect();
        let ratio = |hits: &str, of: &str| {
            let (h, q) = (r.counters.get(hits)?, r.counters.get(of)?);
            (*q > 0.0).then(|| h / q)
        };
        r.prefix_cache_hit_rate = ratio("prefix_cache_hits", "prefix_cache_queries");
        r.spec_decode_acceptance = ratio("spec_decode_accepted", "spec_decode_drafted");
        // vLLM's mean acceptance length: tokens per draft checked, the target's own included.
        r.spec_decode_mean_acceptance_length = ratio("spec_decode_accepted", "spec_decode_drafts").map(|a| 1.0 + a);
        if let Some(&drafts) = r.counters.get("spec_decode_drafts").filter(|d| **d > 0.0) {
            let mut by_pos: Vec<(usize, f64)> = last
                .counters
                .iter()
                .filter(|((name, _), _)| name == SPEC_PER_POSITION)
                .filter_map(|(k, v)| {
                    let pos = k.1.split(',').find_map(|l| l.strip_prefix("position=\""))?.trim_end_matches('"').parse().ok()?;
                    Some((pos, (v - first.counters.get(k).copied().unwrap_or(0.0)).max(0.0) / drafts))
                })
                .collect();
            by_pos.sort_by_key(|p| p.0);
            r.spec_decode_acceptance_by_position = by_pos.into_iter().map(|p| p.1).collect();
        }
        r.generation_tokens = r.counters.get("generation_tokens").copied();
        for (name, _) in LATENCIES {
            let Some((family, h)) = common_histogram(last, name) else { continue };
            let before = common_histogram(first, name).map(|(_, h)| h);
            let d = h.since(before.as_ref());
            if d.count <= 0.0 {
                continue;
            }
            let ms = |q: f64| d.quantile(q).map_or(0.0, |s| round(s * 1e3, 3));
            r.latency.insert(
                (*name).to_owned(),
                ServerLatency {
                    family: family.to_owned(),
                    count: d.count as u64,
                    mean_ms: round(d.sum / d.count * 1e3, 3),
                    p50_ms: ms(0.5),
                    p90_ms: ms(0.9),
                    p99_ms: ms(0.99),
                },
            );
        }
        r
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(running: f64, prompt: f64, queries: f64, hits: f64, ttft: [f64; 3]) -> Page {
        Page::parse(&format!(
            "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{model_name=\"m\"}} {running}\n\
             # TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{{model_name=\"m\"}} {prompt}\n\
             # TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total{{model_name=\"m\"}} {queries}\n\
             # TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total{{model_name=\"m\"}} {hits}\n\
             # TYPE vllm:time_to_first_token_seconds histogram\n\
             vllm:time_to_first_token_seconds_bucket{{le=\"0.1\",model_name=\"m\"}} {}\n\
             vllm:time_to_first_token_seconds_bucket{{le=\"1.0\",model_name=\"m\"}} {}\n\
             vllm:time_to_first_token_seconds_bucket{{le=\"+Inf\",model_name=\"m\"}} {}\n\
             vllm:time_to_first_token_seconds_sum{{model_name=\"m\"}} 1\n\
             vllm:time_to_first_token_seconds_count{{model_name=\"m\"}} {}\n",
            ttft[0], ttft[1], ttft[2], ttft[2]
        ))
    }

    /// Hand-computed: the window saw 400 prompt tokens, 300 queried, 150 hit (0.5), and 4 TTFTs
    /// of which 2 were ≤ 0.1 s: the median is the 0.1 s bound.
    #[test]
    fn window_deltas_not_lifetime_totals() {
        let mut m = ServerMonitor::new("http://x/metrics");
        m.baseline(0.0, page(0.0, 1000.0, 1000.0, 900.0, [10.0, 20.0, 20.0]));
        let line = m.observe(1.0, page(4.0, 1200.0, 1100.0, 950.0, [11.0, 21.0, 21.0]));
        assert_eq!(line["running"], 4.0);
        assert_eq!(line["rates"]["vllm:prompt_tokens_total{model_name=\"m\"}"], 200.0);
        m.observe(2.0, page(2.0, 1400.0, 1300.0, 1050.0, [12.0, 22.0, 24.0]));
        let r = m.report(333);
        assert_eq!(r.server_kind.as_deref(), Some("vllm"));
        assert_eq!(r.counters["prompt_tokens"], 400.0);
        assert_eq!(r.prefix_cache_hit_rate, Some(0.5));
        assert_eq!(r.gauges["running"], inferbench_core::monitor::GaugeStats { samples: 2, mean: 3.0, max: 4.0, last: 2.0 });
        let ttft = &r.latency["ttft"];
        assert_eq!(ttft.count, 4);
        assert_eq!(ttft.p50_ms, 100.0);
        assert_eq!(r.client_output_tokens, 333);
        assert_eq!(m.latest("running"), Some(2.0));
    }
}
