//! Markdown, for pull-request comments and notebooks.

use crate::text::compare_cells;
use inferbench_core::comparison::CompareResult;
use inferbench_core::{BenchmarkResult, MetricName};
use std::fmt::Write as _;

/// The comparison as a Markdown table.
pub fn compare(c: &CompareResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "**inferbench compare**: `{}` (baseline) vs `{}` (candidate)\n", c.baseline, c.candidate);
    // Single runs have no steps: the step column appears only for sweeps.
    let stepped = c.rows.iter().any(|r| !r.group.is_empty());
    let (step_head, step_rule) = if stepped { ("| step ", "|---") } else { ("", "") };
    let _ = writeln!(
        out,
        "{step_head}| metric | baseline | candidate | change | speedup | p (Mann–Whitney) | verdict |\n{step_rule}|---|---:|---:|---:|---:|---:|---|"
    );
    for r in &c.rows {
        let step = if stepped { format!("| {} ", r.group) } else { String::new() };
        let _ = writeln!(out, "{step}| {} | {} |", r.metric, compare_cells(r, c.alpha).join(" | "));
    }
    for n in &c.notes {
        let _ = writeln!(out, "\n_{n}_");
    }
    out
}

/// A run's headline figures and latency distributions as Markdown tables.
pub fn run(r: &BenchmarkResult) -> String {
    let s = &r.summary;
    let mut out = String::new();
    let _ = writeln!(out, "**inferbench run**: {} `{}` at {} ({})\n", r.spec.backend, r.spec.model, r.spec.base_url, r.header.date);
    let _ = writeln!(out, "| completed | failed | duration (s) | req/s | output tok/s |\n|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {} | {} | {:.2} | {:.2} | {:.1} |\n",
        s.completed, s.failed, s.duration_s, s.request_throughput, s.output_throughput
    );
    let _ = writeln!(out, "| metric (ms) | mean | median | p99 |\n|---|---:|---:|---:|");
    for m in [MetricName::Ttft, MetricName::Tpot, MetricName::Itl, MetricName::E2el] {
        let d = s.metric(m);
        let p99 = d.percentile(99.0).map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        let _ = writeln!(out, "| {} | {:.2} | {:.2} | {p99} |", m.short(), d.mean, d.median);
    }
    out
}
