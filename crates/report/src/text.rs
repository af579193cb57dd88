//! Plain-text reports of every kind: the engine report, comparison and plan tables, sweep step
//! lines and conclusions. (The run's console block is in `console`, the tables in `table`.)

use crate::table::text_table;
use inferbench_core::capacity::{CapacityPlan, Target};
use inferbench_core::comparison::{fmt_p, CompareResult, CompareRow};
use inferbench_core::engine_bench::EngineResult;
use inferbench_core::stats::Distribution;
use inferbench_core::sweep::{Dimension, SweepResult, SweepStep};
use std::fmt::Write as _;

/// The engine benchmark's report: every section that ran.
pub fn engine(r: &EngineResult) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n==== Engine benchmark: {} ({} weights, {} threads) ====", r.model, r.weights, r.threads);
    if let Some(sys) = &r.header.system {
        let _ = writeln!(
            s,
            "system: {} ({} cores), {:.1} GiB RAM, {}; {}",
            sys.cpu_model,
            sys.cpu_cores,
            sys.memory_bytes as f64 / (1u64 << 30) as f64,
            sys.os,
            tool(&r.header.tool)
        );
    }
    if !r.llama_bench.is_empty() {
        // A llama-bench run has no sections: its table is the report.
        let _ =
            writeln!(s, "\nllama-bench's tests (t/s: mean ± sd over the repetitions)\n{}", crate::llama_bench::markdown(&r.llama_bench));
        return s;
    }
    let _ = writeln!(s, "\nLatency (mean ± std [min, median, max] over {} runs)", r.config.latency.test_runs);
    let _ = writeln!(s, "{:>6} {:>6}  {:>30}  {:>24}  {:>16}", "in", "out", "TTFT ms", "decode tok/s", "E2E ms");
    for c in &r.latency {
        let d = |x: &Distribution| format!("{:.1} ± {:.1} [{:.1}, {:.1}, {:.1}]", x.mean, x.std, x.min, x.median, x.max);
        let _ = writeln!(
            s,
            "{:>6} {:>6}  {:>30}  {:>24}  {:>16}",
            c.input_tokens,
            c.output_tokens,
            d(&c.ttft_ms),
            format!("{:.1} ± {:.1}", c.decode_tok_s.mean, c.decode_tok_s.std),
            format!("{:.1} ± {:.1}", c.e2e_ms.mean, c.e2e_ms.std)
        );
    }
    if !r.latency.is_empty() {
        let _ =
            writeln!(s, "decode tok/s = (out - 1) / (last token - first token) of one request alone, greedy; it falls as the prompt grows");
    }
    let _ = writeln!(s, "\nThroughput");
    let _ = writeln!(
        s,
        "  (single_*: one request alone, a 32-token prompt, {} greedy tokens, decode rate as above; concurrent_N and \
         batch_N: N such requests at once, output tokens over wall time)",
        r.config.throughput.tokens_per_request
    );
    for (k, v) in &r.throughput {
        let _ = writeln!(s, "  {k:<44} {v:>10.2}");
    }
    let _ = writeln!(s, "\nMemory (MB)");
    for (k, v) in &r.memory {
        let _ = writeln!(s, "  {k:<44} {v:>10.1}");
    }
    if !r.quantization.is_empty() {
        let _ = writeln!(s, "\nQuantization (greedy tokens compared with the F32 reference)");
        let _ = writeln!(
            s,
            "  {:<8} {:>10} {:>11} {:>13} {:>10} {:>10}",
            "format", "load MB", "weights MB", "decode tok/s", "agreement", "identical"
        );
        for q in &r.quantization {
            let _ = writeln!(
                s,
                "  {:<8} {:>10.1} {:>11.1} {:>13.1} {:>9.1}% {:>6}/{}",
                q.format,
                q.load_mb,
                q.weights_mb,
                q.decode_tokens_per_second,
                q.token_agreement * 100.0,
                q.identical_outputs,
                q.prompts
            );
        }
    }
    if let Some(sp) = &r.speculative {
        let _ = writeln!(s, "\nSpeculative decoding: draft {} -> target {}, temperature {}", sp.draft, sp.target, sp.temperature);
        if !sp.arms.is_empty() {
            let _ = writeln!(s, "  arrivals {}, batch size {}, placement {}", sp.arrivals, sp.batch_size, sp.placement);
            let _ = writeln!(
                s,
                "  {:<22} {:>5} {:>8} {:>9} {:>8} {:>9} {:>9} {:>9} {:>7} {:>7}  by position",
                "arm", "reqs", "prompt", "generated", "tok/s", "TTFT p50", "TTFT p99", "E2E p50", "speedup", "accept"
            );
            for a in &sp.arms {
                let p = |d: &inferbench_core::stats::Distribution, q: f64| d.percentile(q).unwrap_or(d.mean);
                let by: Vec<String> = a.acceptance_by_position.iter().map(|x| format!("{:.0}", x * 100.0)).collect();
                let _ = writeln!(
                    s,
                    "  {:<22} {:>5} {:>8} {:>9} {:>8.1} {:>9.0} {:>9.0} {:>9.0} {:>7} {:>7}  {}",
                    a.name,
                    a.requests,
                    a.prompt_tokens,
                    a.generated_tokens,
                    a.output_tokens_per_second,
                    p(&a.ttft_ms, 50.0),
                    p(&a.ttft_ms, 99.0),
                    p(&a.e2e_ms, 50.0),
                    a.speedup.map_or("-".into(), |x| format!("{x:.2}x")),
                    a.acceptance_rate.map_or("-".into(), |x| format!("{:.1}%", x * 100.0)),
                    by.join("/")
                );
            }
            let _ =
                writeln!(s, "  (tok/s: generated tokens over the arm's wall time; latencies in ms from each request's scheduled arrival)");
        }
        let _ = writeln!(
            s,
            "  best: gamma {}, {:.1} tok/s against {:.1} target only, speedup {:.2}x, acceptance {:.1}%, {:.2} tokens per target pass",
            sp.gamma,
            sp.speculative_tokens_per_second,
            sp.target_only_tokens_per_second,
            sp.speedup,
            sp.acceptance_rate * 100.0,
            sp.mean_accepted_length
        );
        if let Some(same) = sp.identical_to_target {
            let _ = writeln!(s, "  output identical to target-only greedy: {same}");
        }
    }
    if let Some(c) = &r.comparison {
        let _ = writeln!(
            s,
            "\nComparison: {} ({}) vs {} ({}), mean ± std over {} iterations",
            c.baseline.name, c.baseline.quantization, c.variant.name, c.variant.quantization, r.config.comparison.iterations
        );
        let _ = writeln!(
            s,
            "  {:>5} {:>20} {:>20} {:>16} {:>16} {:>8} {:>10}",
            "batch", "base latency ms", "var latency ms", "base tok/s", "var tok/s", "speedup", "lat. red."
        );
        for row in &c.rows {
            let _ = writeln!(
                s,
                "  {:>5} {:>20} {:>20} {:>16} {:>16} {:>7.2}x {:>9.1}%",
                row.batch_size,
                format!("{:.1} ± {:.1}", row.baseline_latency_ms.mean, row.baseline_latency_ms.std),
                format!("{:.1} ± {:.1}", row.variant_latency_ms.mean, row.variant_latency_ms.std),
                format!("{:.1} ± {:.1}", row.baseline_tokens_per_second.mean, row.baseline_tokens_per_second.std),
                format!("{:.1} ± {:.1}", row.variant_tokens_per_second.mean, row.variant_tokens_per_second.std),
                row.speedup,
                row.latency_reduction * 100.0
            );
        }
        let _ = writeln!(
            s,
            "  average speedup {:.2}x, average latency reduction {:.1}%",
            c.average_speedup,
            c.average_latency_reduction * 100.0
        );
        let _ = writeln!(s, "  verdict: {}", c.verdict);
    }
    if !r.targets.is_empty() {
        let _ = writeln!(s, "\nTargets");
        for c in &r.targets {
            let op = if c.key.starts_with("min") { ">=" } else { "<=" };
            let _ = writeln!(s, "  {:<32} {:>10.2} {op} {:<10.2} {}", c.key, c.value, c.limit, if c.pass { "pass" } else { "FAIL" });
        }
    }
    if let Some(m) = &r.monitors {
        monitors(&mut s, m);
    }
    s
}

/// The GPU and host sections of an engine benchmark.
fn monitors(s: &mut String, m: &inferbench_core::monitor::MonitorReport) {
    if let Some(g) = &m.gpu {
        let _ = writeln!(s, "\nGPU ({:.1} s sampled)", g.duration_s);
        for d in &g.devices {
            let _ = writeln!(
                s,
                "  GPU {} {}: {:.0} W avg, {:.0} W peak, {:.1} J ({}), {:.0} % util, {:.2} GiB peak ({:.0} %), {:.0} C peak",
                d.index,
                d.name,
                d.avg_power_w,
                d.peak_power_w,
                d.energy_j,
                d.energy_source,
                d.avg_utilization_pct,
                d.peak_memory_gib,
                d.peak_memory_pct,
                d.peak_temperature_c
            );
        }
        if let Some(j) = g.joules_per_output_token {
            let _ =
                writeln!(s, "  {:.1} J for {} output tokens: {j:.4} J/token, {:.1} tokens/J", g.total_energy_j, g.output_tokens, 1.0 / j);
        }
    }
    if let Some(h) = &m.host {
        let _ = writeln!(s, "\nHost: CPU busy {:.0} % mean, {:.0} % peak", h.cpu_pct.mean, h.cpu_pct.max);
        if let Some(p) = &h.server_process {
            let _ = writeln!(s, "  this process: {:.0} % of a core mean, {:.0} MiB RSS peak", p.cpu_pct.mean, p.rss_bytes.max / 1048576.0);
        }
        if let Some(e) = &h.cpu_energy {
            let per = e.joules_per_output_token.map_or_else(String::new, |j| format!(", {j:.4} J/token"));
            let _ = writeln!(s, "  CPU package (RAPL): {:.1} J, {:.1} W{per}", e.energy_j, e.avg_power_w);
        }
    }
}

/// `inferbench 0.1.0 (abc123)`.
fn tool(t: &inferbench_core::result::ToolInfo) -> String {
    format!("{} {} ({})", t.name, t.version, t.commit.as_deref().unwrap_or("unknown commit"))
}

/// Baseline, candidate, change, speedup, p and verdict, formatted for either table.
pub fn compare_cells(r: &CompareRow, alpha: f64) -> [String; 6] {
    [
        format!("{:.2}", r.baseline),
        format!("{:.2}", r.candidate),
        format!("{:+.1}%", r.change() * 100.0),
        format!("{:.3}x", r.speedup()),
        fmt_p(r.p),
        r.verdict(alpha).to_owned(),
    ]
}

/// The comparison as a plain-text table, grouped by step.
pub fn compare(c: &CompareResult) -> String {
    let mut out = String::new();
    let mut group = None;
    let _ = writeln!(out, "baseline:  {}\ncandidate: {}", c.baseline, c.candidate);
    for r in &c.rows {
        if group != Some(&r.group) {
            group = Some(&r.group);
            if !r.group.is_empty() {
                let _ = writeln!(out, "\n[{}]", r.group);
            }
            let _ = writeln!(
                out,
                "{:<40} {:>11} {:>11} {:>9} {:>9} {:>9}  verdict",
                "metric", "baseline", "candidate", "change", "speedup", "p"
            );
        }
        let [base, cand, change, speedup, p, verdict] = compare_cells(r, c.alpha);
        let _ = writeln!(out, "{:<40} {base:>11} {cand:>11} {change:>9} {speedup:>9} {p:>9}  {verdict}", r.metric);
    }
    for n in &c.notes {
        let _ = writeln!(out, "{n}");
    }
    out
}

/// The capacity plan: the answer under the chosen SLOs, then the what-if table.
pub fn plan(p: &CapacityPlan) -> String {
    let dim = p.dimension;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Sweep {} ({} steps over {}), SLOs: {}, success >= {}%",
        p.sweep,
        p.sweep_steps,
        match dim {
            Dimension::Concurrency => "concurrency",
            Dimension::Rate => "request rate",
        },
        p.plan.slos,
        p.min_success_rate * 100.0
    );
    match (&p.plan.plan, p.plan.load) {
        (Some(rp), Some(load)) => {
            let c = &rp.capacity;
            let _ = writeln!(
                out,
                "Per replica: sustainable at {}{}: {:.2} req/s, {:.0} input tok/s, {:.1} output tok/s",
                dim.label(load),
                if p.plan.at_sweep_top { " (the sweep's highest load: the replica may hold more; sweep further)" } else { "" },
                c.request_rate,
                c.input_tok_s,
                c.output_tok_s
            );
            let _ = writeln!(out, "Planned at {:.0}% headroom: {:.2} req/s per replica", p.headroom * 100.0, rp.usable_rate);
            let target_txt = match p.target {
                Some(Target::Rate(r)) => format!("{r} req/s"),
                Some(Target::Users(u)) => format!("{u} concurrent users ({:.2} req/s)", rp.target_rate),
                None => format!("one replica's planned load ({:.2} req/s)", rp.target_rate),
            };
            let _ = writeln!(out, "Target {target_txt}: {} replica(s), {:.0}% utilised", rp.replicas, rp.utilisation * 100.0);
            if let Some(cost) = &rp.cost {
                let _ = writeln!(
                    out,
                    "Cost: {:.2}/hour; per million tokens: input {:.4}, output {:.4} (split by time share), blended {:.4}, output all-in {:.4} (output carrying the whole cost)",
                    cost.per_hour, cost.per_million_input, cost.per_million_output, cost.per_million_tokens, cost.per_million_output_all_in
                );
                let _ = writeln!(
                    out,
                    "  (input/output split by time share: TTFT is {:.1}% of mean E2E latency at that step)",
                    c.prefill_share * 100.0
                );
            }
        }
        _ => {
            let _ = writeln!(
                out,
                "No step meets {} with success >= {}%: even {} fails. Sweep lower loads or relax the SLOs.",
                p.plan.slos,
                p.min_success_rate * 100.0,
                dim.label(p.first_load)
            );
        }
    }
    let rows = p
        .what_if
        .iter()
        .map(|c| match (&c.plan, c.load) {
            (Some(rp), Some(load)) => vec![
                c.slos.clone(),
                format!("{}{}", if c.at_sweep_top { ">=" } else { "" }, dim.label(load)),
                format!("{:.2}", rp.capacity.request_rate),
                format!("{:.1}", rp.capacity.output_tok_s),
                rp.replicas.to_string(),
                rp.cost.map_or_else(|| "-".to_owned(), |c| format!("{:.2}", c.per_hour)),
                rp.cost.map_or_else(|| "-".to_owned(), |c| format!("{:.4}", c.per_million_output_all_in)),
            ],
            _ => vec![c.slos.clone(), "none".into(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into()],
        })
        .collect();
    out.push_str("\nWhat if the SLOs were different:\n");
    out.push_str(&text_table(
        &["SLOs", "sustainable", "req/s/replica", "out tok/s/replica", "replicas", "cost/hour", "per M output all-in"],
        rows,
    ));
    out.push('\n');
    if p.what_if.iter().any(|c| c.at_sweep_top) {
        out.push_str("(>= : the sweep's highest load passed; the true limit may be higher)\n");
    }
    out
}

/// One line per finished sweep step.
pub fn step_line(step: &SweepStep, dim: Dimension) -> String {
    let st = &step.stats;
    let slo = if step.slo.is_empty() {
        String::new()
    } else if step.slo.iter().all(|c| c.met) {
        ", SLOs met".to_owned()
    } else {
        let broken: Vec<String> = step.slo.iter().filter(|c| !c.met).map(|c| format!("{} ({:.1})", c.rule, c.value_ms)).collect();
        format!(", SLO broken: {}", broken.join(", "))
    };
    format!(
        "{}: {:.1}% ok, {:.2} req/s, {:.1} out tok/s, TTFT p50 {:.1} ms, {} p50 {:.1} ms{slo}",
        dim.label(step.load),
        st.success_rate.mean * 100.0,
        st.request_throughput.mean,
        st.output_throughput.mean,
        st.ttft_median_ms.mean,
        dim.knee_latency().short(),
        st.knee_latency_ms.mean
    )
}

/// A sweep's answers, in words.
pub fn sweep_conclusions(s: &SweepResult) -> String {
    let dim = s.dimension();
    let mut out = Vec::new();
    match s.knee {
        Some(k) => out.push(format!(
            "Knee: {} (beyond it throughput grew by less than half as fast as the load while latency climbed)",
            dim.label(k)
        )),
        None => out.push("Knee: not reached (throughput still grew with load at the last step)".to_owned()),
    }
    let min = s.sweep.min_success_rate * 100.0;
    let what = if s.sweep.slos.is_empty() {
        format!("success rate >= {min}%")
    } else {
        format!("{} and success rate >= {min}%", s.sweep.slos.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
    };
    match s.slo_limit.and_then(|l| s.steps.iter().find(|x| x.load == l)) {
        Some(step) => out.push(format!(
            "Highest load meeting {what}: {} ({:.2} req/s, {:.1} output tok/s)",
            dim.label(step.load),
            step.stats.request_throughput.mean,
            step.stats.output_throughput.mean
        )),
        None => out.push(format!("No step met {what}")),
    }
    if let Some(r) = &s.stopped {
        out.push(format!("Stopped early: {r}"));
    }
    let mut o: Vec<f64> = s.steps.iter().flat_map(|x| x.runs.iter().map(|r| r.overhead_s * 1e3)).collect();
    if !o.is_empty() {
        o.sort_by(f64::total_cmp);
        out.push(format!(
            "Setup per run (dataset, pre-flight, files; cool-down {} s not included): median {:.0} ms, max {:.0} ms",
            s.sweep.cooldown_s,
            o[o.len() / 2],
            o[o.len() - 1]
        ));
    }
    out.join("\n")
}
