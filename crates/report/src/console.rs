//! The console summary, in the layout users know from vLLM's `benchmark_serving`, followed by
//! what vLLM does not show (failures by kind, goodput, scheduling lag, client cost).

use inferbench_core::result::{fmt_pct, BenchmarkResult};
use inferbench_core::MetricName;
use std::fmt::Write as _;

/// What to show.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// Metrics whose percentiles are printed (`--percentile-metrics`).
    pub percentile_metrics: Vec<MetricName>,
    /// Title of the block.
    pub title: String,
    /// Thresholds for the TTFT / TPOT grades.
    pub grades: inferbench_core::grade::GradeScale,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        Self {
            percentile_metrics: vec![MetricName::Ttft, MetricName::Tpot, MetricName::Itl, MetricName::E2el],
            title: "Serving Benchmark Result".into(),
            grades: inferbench_core::grade::GradeScale::default(),
        }
    }
}

fn row(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{label:<40} {value:<10}");
}

/// Centres `t` in 50 columns of `fill`, like Python's `'{s:{c}^{n}}'.format(...)`.
fn heading(out: &mut String, t: &str, fill: char) {
    let pad = 50usize.saturating_sub(t.chars().count());
    let f = fill.to_string();
    let _ = writeln!(out, "{}{t}{}", f.repeat(pad / 2), f.repeat(pad - pad / 2));
}

/// Renders the summary block.
pub fn render_summary(r: &BenchmarkResult, opts: &ConsoleOptions) -> String {
    let s = &r.summary;
    let mut out = String::new();
    heading(&mut out, &format!(" {} ", opts.title), '=');
    row(&mut out, "Successful requests:", s.completed);
    if s.failed > 0 {
        row(&mut out, "Failed requests:", s.failed);
        for (kind, n) in &s.failures {
            row(&mut out, &format!("  {kind}:"), n);
        }
    }
    if let Some(c) = r.spec.max_concurrency {
        row(&mut out, "Maximum request concurrency:", c);
    }
    row(&mut out, "Benchmark duration (s):", format!("{:.2}", s.duration_s));
    row(&mut out, "Total input tokens:", s.total_input_tokens);
    row(&mut out, "Total generated tokens:", s.total_output_tokens);
    row(&mut out, "Request throughput (req/s):", format!("{:.2}", s.request_throughput));
    if let Some(g) = s.request_goodput {
        row(&mut out, "Request goodput (req/s):", format!("{g:.2}"));
    }
    row(&mut out, "Output token throughput (tok/s):", format!("{:.2}", s.output_throughput));
    row(&mut out, "Peak concurrent requests:", s.max_concurrent_requests);
    row(&mut out, "Total Token throughput (tok/s):", format!("{:.2}", s.total_token_throughput));
    for m in [MetricName::Ttft, MetricName::Tpot, MetricName::Itl, MetricName::E2el] {
        if !opts.percentile_metrics.contains(&m) {
            continue;
        }
        metric_block(&mut out, r, m, '-');
    }
    // Grades for the shown metrics among TTFT and TPOT.
    let graded: Vec<(MetricName, inferbench_core::grade::Thresholds)> =
        [(MetricName::Ttft, opts.grades.ttft), (MetricName::Tpot, opts.grades.tpot)]
            .into_iter()
            .filter(|(m, _)| opts.percentile_metrics.contains(m))
            .collect();
    if s.completed > 0 && !graded.is_empty() {
        heading(&mut out, "Grades", '-');
        for (m, t) in graded {
            let v = s.metric(m).mean;
            let line = format!("{} (< {} excellent, < {} good)", inferbench_core::grade::grade(v, t), t.excellent_ms, t.good_ms);
            row(&mut out, &format!("{} (mean):", m.short()), line);
        }
    }
    heading(&mut out, "Client", '-');
    let lag = s.metric(MetricName::Lag);
    row(&mut out, "Mean scheduling lag (ms):", ms(lag, lag.mean, 3));
    row(&mut out, "P99 scheduling lag (ms):", ms(lag, lag.percentile(99.0).unwrap_or(lag.max), 3));
    let queue = s.metric(MetricName::Queue);
    if queue.max > 0.0 {
        row(&mut out, "Mean concurrency-gate wait (ms):", format!("{:.2}", queue.mean));
    }
    let ts = s.metric(MetricName::TtftSched);
    row(&mut out, "Mean TTFT from scheduled send (ms):", ms(ts, ts.mean, 2));
    let d = &s.delivery;
    if let (Some(rate), Some(ratio)) = (r.spec.request_rate, d.rate_ratio()) {
        let whose = r.shard.as_ref().map_or(String::new(), |i| format!(" across {} shards", i.shard.count));
        let line = format!("{:.2} of {:.2} scheduled ({:.1} %; asked {rate}{whose})", d.achieved_rate, d.scheduled_rate, ratio * 100.0);
        row(&mut out, "Achieved send rate (req/s):", line);
    }
    if s.completed + s.failed > 0 {
        let cap = r.spec.max_concurrency.map_or_else(String::new, |c| format!(", cap {c}"));
        row(&mut out, "Mean in flight (time-weighted):", format!("{:.2} (peak {}{cap})", d.mean_in_flight, s.max_concurrent_requests));
        row(&mut out, "Sent > 1 ms after due:", format!("{} ({:.1} %)", d.late, d.late_share * 100.0));
    }
    if let Some(w) = delivery_warning(r) {
        row(&mut out, "WARNING:", w);
    }
    let c = &s.connections;
    if !c.is_empty() {
        row(&mut out, "New connections (share of requests):", format!("{} ({:.1} %)", c.new, 100.0 * c.new_share()));
        let ct = s.metric(MetricName::Connect);
        if ct.count > 0 {
            let p99 = ct.percentile(99.0).unwrap_or(ct.max);
            row(&mut out, "Connect time median / P99 (ms):", format!("{:.3} / {p99:.3}", ct.median));
        }
        let nc = s.metric(MetricName::TtftNoConnect);
        row(&mut out, "Mean TTFT excluding connect (ms):", ms(nc, nc.mean, 2));
        if c.slow > 0 {
            row(&mut out, "Connects > 900 ms (likely retried):", c.slow);
        }
    }
    if r.client.includes_server {
        row(&mut out, "CPU, client + embedded server (s):", format!("{:.3}", r.client.cpu_s));
    } else if r.client.cpu_s > 0.0 {
        row(&mut out, "Client CPU (s):", format!("{:.3}", r.client.cpu_s));
        if s.total_output_tokens > 0 {
            row(&mut out, "Client CPU per output token (us):", format!("{:.2}", r.client.cpu_s * 1e6 / s.total_output_tokens as f64));
        }
    }
    let rc = &s.reconciliation;
    if !rc.is_empty() {
        let (i, o) = rc.differ_share();
        let line = format!(
            "{} checked; differ: input {:.1} % (mean |d| {:.2}), output {:.1} % (mean |d| {:.2})",
            rc.checked,
            i * 100.0,
            rc.input_mean_abs_diff,
            o * 100.0,
            rc.output_mean_abs_diff
        );
        row(&mut out, "Token counts, server vs client:", line);
    }
    if s.output_length_mismatches > 0 {
        row(&mut out, "WARNING: output length not as asked:", format!("{} requests (ignore_eos set)", s.output_length_mismatches));
    }
    let pc = &s.prefix_cache;
    if !pc.is_empty() {
        let line = format!("{} of {} ({:.1} %)", pc.cached_tokens, pc.prompt_tokens, pc.cached_share * 100.0);
        row(&mut out, "Prefix-cached prompt tokens:", line);
    }
    let sources: Vec<String> = s.token_sources.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !sources.is_empty() {
        row(&mut out, "Token counts from:", sources.join(" "));
    }
    if r.interrupted {
        row(&mut out, "Interrupted:", "yes (partial results)");
    }
    if let Some(m) = &r.monitors {
        monitor_rows(&mut out, m, s);
    }
    let _ = writeln!(out, "{}", "=".repeat(50));
    out
}

/// The monitors' figures: steady state, the server's own view, GPU and CPU energy, alerts.
fn monitor_rows(out: &mut String, m: &inferbench_core::monitor::MonitorReport, s: &inferbench_core::Summary) {
    if let Some(st) = &m.steady_state {
        heading(out, "Steady state", '-');
        row(out, "Window (s):", format!("{:.1} to {:.1} at {} in flight", st.start_s, st.end_s, st.target_in_flight));
        row(out, "Output token throughput (tok/s):", format!("{:.2} (whole run {:.2})", st.output_throughput, s.output_throughput));
        if let Some(t) = st.ttft_ms {
            row(out, "TTFT median / P99 (ms):", format!("{:.2} / {:.2}", t.p50, t.p99));
        }
    }
    if let Some(sv) = &m.server {
        let kind = sv.server_kind.as_deref().unwrap_or("unknown names");
        heading(out, &format!(" Server metrics ({kind}) "), '-');
        if let Some(g) = sv.generation_tokens {
            row(out, "Generated tokens, server / client:", format!("{g:.0} / {}", sv.client_output_tokens));
        }
        for (name, label) in [("running", "Running, mean / max:"), ("waiting", "Waiting, mean / max:")] {
            if let Some(g) = sv.gauges.get(name) {
                row(out, label, format!("{:.1} / {:.0}", g.mean, g.max));
            }
        }
        if let Some(g) = sv.gauges.get("kv_cache_usage") {
            row(out, "KV-cache usage, peak:", format!("{:.1} %", g.max * 100.0));
        }
        if let Some(h) = sv.prefix_cache_hit_rate {
            row(out, "Prefix-cache hit rate (this run):", format!("{:.1} %", h * 100.0));
        }
        if let Some(a) = sv.spec_decode_acceptance {
            row(out, "Speculative acceptance:", format!("{:.1} %", a * 100.0));
        }
        if let Some(l) = sv.spec_decode_mean_acceptance_length {
            row(out, "Speculative mean acceptance length:", format!("{l:.2}"));
        }
        if !sv.spec_decode_acceptance_by_position.is_empty() {
            let by: Vec<String> = sv.spec_decode_acceptance_by_position.iter().map(|a| format!("{:.1}", a * 100.0)).collect();
            row(out, "Acceptance by draft position (%):", by.join(" / "));
        }
        if let Some(p) = sv.counters.get("preemptions").filter(|p| **p > 0.0) {
            row(out, "Preemptions:", p);
        }
        for (name, label) in
            [("ttft", "Server TTFT median / P99 (ms):"), ("itl", "Server ITL median / P99 (ms):"), ("e2e", "Server E2E median / P99 (ms):")]
        {
            if let Some(l) = sv.latency.get(name) {
                row(out, label, format!("{:.2} / {:.2}", l.p50_ms, l.p99_ms));
            }
        }
        if sv.failed_scrapes > 0 || sv.skipped_lines > 0 {
            row(out, "Scrapes failed / lines skipped:", format!("{} / {}", sv.failed_scrapes, sv.skipped_lines));
        }
    }
    if let Some(g) = &m.gpu {
        heading(out, " GPU ", '-');
        for d in &g.devices {
            let line = format!(
                "{:.0} W avg, {:.0} W peak, {:.0} J, {:.0} % util, {:.1} GiB peak, {:.0} C",
                d.avg_power_w, d.peak_power_w, d.energy_j, d.avg_utilization_pct, d.peak_memory_gib, d.peak_temperature_c
            );
            row(out, &format!("GPU {} ({}):", d.index, d.name), line);
        }
        if let Some(j) = g.joules_per_output_token {
            row(out, "GPU energy per output token (J):", format!("{j:.4} ({:.1} tok/J)", 1.0 / j));
        }
    }
    if let Some(h) = &m.host {
        heading(out, " Host ", '-');
        row(out, "CPU busy, mean / peak (%):", format!("{:.1} / {:.1}", h.cpu_pct.mean, h.cpu_pct.max));
        if let Some(p) = &h.server_process {
            let rss = p.rss_bytes.max / f64::from(1 << 20);
            row(out, &format!("Server pid {}: CPU mean, RSS peak:", p.pid), format!("{:.0} % of a core, {rss:.0} MiB", p.cpu_pct.mean));
        }
        if let Some(e) = &h.cpu_energy {
            let per = e.joules_per_output_token.map_or_else(String::new, |j| format!(", {j:.4} J/token"));
            row(out, "CPU package energy (RAPL):", format!("{:.1} J, {:.1} W{per}", e.energy_j, e.avg_power_w));
        }
    }
    for a in &m.alerts {
        let stop = if a.aborted { " (run stopped)" } else { "" };
        row(out, "ALERT:", format!("{} at {:.1} s, value {:.3}{stop}", a.rule, a.at_s, a.value));
    }
}

/// The client sent below 95 % of the rate its arrival process scheduled: the run's latencies then
/// describe the client as much as the server. `None` when it kept up, or had no rate to keep.
pub fn delivery_warning(r: &BenchmarkResult) -> Option<String> {
    if r.spec.request_rate.is_none() && r.spec.dataset.trace_format.is_none() {
        return None;
    }
    let ratio = r.summary.delivery.rate_ratio()?;
    (ratio < 0.95).then(|| {
        format!(
            "the client delivered {:.1} % of the scheduled request rate ({:.2} of {:.2} req/s); latencies describe the client, not \
             only the server (give the client more CPU, or lower --request-rate or --trace-speedup)",
            ratio * 100.0,
            r.summary.delivery.achieved_rate,
            r.summary.delivery.scheduled_rate
        )
    })
}

/// A figure of a distribution, or `n/a` when it has no samples (not a misleading 0.00).
fn ms(d: &inferbench_core::Distribution, v: f64, digits: usize) -> String {
    if d.count == 0 {
        "n/a".to_owned()
    } else {
        format!("{v:.digits$}")
    }
}

fn metric_block(out: &mut String, r: &BenchmarkResult, m: MetricName, fill: char) {
    let d = r.summary.metric(m);
    let short = m.short();
    heading(out, m.title(), fill);
    row(out, &format!("Mean {short} (ms):"), ms(d, d.mean, 2));
    row(out, &format!("Median {short} (ms):"), ms(d, d.median, 2));
    row(out, &format!("Std {short} (ms):"), ms(d, d.std, 2));
    for &(p, v) in &d.percentiles {
        if (p - 50.0).abs() < 1e-9 {
            continue;
        }
        row(out, &format!("P{} {short} (ms):", fmt_pct(p)), ms(d, v, 2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferbench_core::result::{ClientUsage, ToolInfo};
    use inferbench_core::spec::{ArrivalKind, DatasetSpec, Sampling};
    use inferbench_core::{RunSpec, Summary};

    fn result() -> BenchmarkResult {
        let spec = RunSpec {
            backend: "vllm".into(),
            base_url: "http://x".into(),
            endpoint: "/v1/completions".into(),
            model: "m".into(),
            tokenizer: "cl100k_base".into(),
            dataset: DatasetSpec { name: "random".into(), input_len: 8, output_len: 4, ..DatasetSpec::default() },
            num_prompts: Some(2),
            duration_s: None,
            request_rate: None,
            burstiness: 1.0,
            arrival: ArrivalKind::Poisson,
            max_concurrency: Some(2),
            ramp_up: None,
            warmup_requests: 0,
            warmup_connections: 0,
            request_id_prefix: None,
            seed: 0,
            stream: true,
            sampling: Sampling::default(),
            ignore_eos: true,
            timeout_s: 60.0,
            connect_timeout_s: 10.0,
            idle_timeout_s: None,
            ca_cert: None,
            insecure: false,
            extra_body: None,
            percentiles: vec![50.0, 99.0],
            percentile_metrics: vec!["ttft".into()],
            goodput: None,
        };
        let mut summary = Summary { completed: 2, duration_s: 1.5, total_input_tokens: 16, total_output_tokens: 8, ..Summary::default() };
        summary.request_throughput = 2.0 / 1.5;
        summary.metrics.insert(
            MetricName::Ttft,
            inferbench_core::Distribution {
                count: 2,
                mean: 10.0,
                median: 10.0,
                std: 1.0,
                min: 9.0,
                max: 11.0,
                percentiles: vec![(50.0, 10.0), (99.0, 10.98)],
                exact: true,
            },
        );
        BenchmarkResult {
            header: inferbench_core::Header { date: "2026-01-01T00:00:00Z".into(), tool: ToolInfo::default(), ..Default::default() },
            spec,
            summary,
            client: ClientUsage::default(),
            warmup_excluded: 0,
            dataset: Default::default(),
            interrupted: false,
            monitors: None,
            shard: None,
            merged: None,
            per_request: Default::default(),
            imported: None,
        }
    }

    #[test]
    fn block_matches_vllm_layout() {
        let opts = ConsoleOptions { percentile_metrics: vec![MetricName::Ttft], ..ConsoleOptions::default() };
        let text = render_summary(&result(), &opts);
        let head: Vec<&str> = text.lines().take(6).collect();
        assert_eq!(
            head,
            [
                "============ Serving Benchmark Result ============",
                "Successful requests:                     2         ",
                "Maximum request concurrency:             2         ",
                "Benchmark duration (s):                  1.50      ",
                "Total input tokens:                      16        ",
                "Total generated tokens:                  8         ",
            ]
        );
        assert!(text.contains("\n---------------Time to First Token----------------\n"), "{text}");
        assert!(text.contains("P99 TTFT (ms):                           10.98"));
        assert!(!text.contains("TPOT"), "only the chosen percentile metrics are shown");
    }

    #[test]
    fn connections_are_shown_when_requests_went_over_the_wire() {
        let opts = ConsoleOptions::default();
        assert!(!render_summary(&result(), &opts).contains("connections"), "in-process runs have none");
        let mut r = result();
        r.summary.connections = inferbench_core::Connections { new: 1, reused: 3, slow: 1 };
        let d = |v: f64| inferbench_core::Distribution {
            count: 1,
            mean: v,
            median: v,
            min: v,
            max: v,
            percentiles: vec![(99.0, v)],
            ..Default::default()
        };
        r.summary.metrics.insert(MetricName::Connect, d(950.25));
        r.summary.metrics.insert(MetricName::TtftNoConnect, d(8.5));
        let text = render_summary(&r, &opts);
        assert!(text.contains("New connections (share of requests):     1 (25.0 %)"), "{text}");
        assert!(text.contains("Connect time median / P99 (ms):          950.250 / 950.250"), "{text}");
        assert!(text.contains("Mean TTFT excluding connect (ms):        8.50"), "{text}");
        assert!(text.contains("Connects > 900 ms (likely retried):      1"), "{text}");
    }

    #[test]
    fn a_client_that_fell_behind_says_so() {
        let mut r = result();
        r.summary.failed = 0;
        r.summary.delivery = inferbench_core::summary::Delivery {
            scheduled_rate: 100.0,
            achieved_rate: 80.0,
            mean_in_flight: 1.5,
            late: 1,
            late_share: 0.5,
        };
        // A closed loop has no rate to keep: no warning.
        assert!(delivery_warning(&r).is_none());
        r.spec.request_rate = Some(100.0);
        let w = delivery_warning(&r).unwrap();
        assert!(w.contains("80.0 % of the scheduled request rate (80.00 of 100.00 req/s)"), "{w}");
        let text = render_summary(&r, &ConsoleOptions::default());
        assert!(text.contains("Achieved send rate (req/s):              80.00 of 100.00 scheduled (80.0 %; asked 100)"), "{text}");
        assert!(text.contains("Mean in flight (time-weighted):          1.50 (peak 0, cap 2)"), "{text}");
        assert!(text.contains("Sent > 1 ms after due:                   1 (50.0 %)"), "{text}");
        assert!(text.contains("WARNING:"), "{text}");
        r.summary.delivery.achieved_rate = 96.0;
        assert!(delivery_warning(&r).is_none(), "96 % is delivered");
    }
}
