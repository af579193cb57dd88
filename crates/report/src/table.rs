//! Compact comparison tables (one row per run), for demos and sweeps.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, Table};
use inferbench_core::sweep::{Estimate, SweepResult};
use inferbench_core::{BenchmarkResult, MetricName, Summary};

/// One row per result: load, throughput and headline latencies.
pub fn runs_table(rows: &[(String, &BenchmarkResult)]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(["run", "ok/fail", "req/s", "out tok/s", "TTFT mean", "TTFT p99", "TPOT mean", "ITL mean", "ITL p99", "lag p99"]);
    for (label, r) in rows {
        let s = &r.summary;
        let ms = |m: MetricName| format!("{:.1}", s.metric(m).mean);
        let p99 = |m: MetricName| s.metric(m).percentile(99.0).map_or_else(|| "-".into(), |v| format!("{v:.1}"));
        t.add_row(vec![
            label.clone(),
            format!("{}/{}", s.completed, s.failed),
            format!("{:.2}", s.request_throughput),
            format!("{:.1}", s.output_throughput),
            ms(MetricName::Ttft),
            p99(MetricName::Ttft),
            ms(MetricName::Tpot),
            ms(MetricName::Itl),
            p99(MetricName::Itl),
            p99(MetricName::Lag),
        ]);
    }
    for i in 1..10 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    format!("{t}\n(latencies in ms; lag = client scheduling lag)")
}

/// One row per prompt category: counts, tokens and mean latencies.
pub fn categories_table(s: &Summary) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(["category", "ok/fail", "in tok", "out tok", "TTFT mean", "TPOT mean", "E2EL mean", "E2EL p99"]);
    for (name, c) in &s.categories {
        let mean = |m: MetricName| format!("{:.1}", c.metric(m).mean);
        t.add_row(vec![
            name.clone(),
            format!("{}/{}", c.completed, c.failed),
            c.total_input_tokens.to_string(),
            c.total_output_tokens.to_string(),
            mean(MetricName::Ttft),
            mean(MetricName::Tpot),
            mean(MetricName::E2el),
            c.metric(MetricName::E2el).percentile(99.0).map_or_else(|| "-".into(), |v| format!("{v:.1}")),
        ]);
    }
    for i in 1..8 {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    format!("Per category (latencies in ms)\n{t}")
}

/// `12.3 ±0.4` when there were repeats, `12.3` otherwise.
fn est(e: &Estimate, decimals: usize) -> String {
    if e.n > 1 {
        format!("{:.*} ±{:.*}", decimals, e.mean, decimals, e.ci95)
    } else {
        format!("{:.*}", decimals, e.mean)
    }
}

/// One row per sweep step: load, throughput and latency (means with 95 % intervals over
/// repeats), each SLO's value, and where the knee and the SLO limit fall.
pub fn sweep_table(s: &SweepResult) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    let mut header: Vec<String> =
        ["load", "runs", "success", "req/s", "out tok/s", "TTFT p50", "TPOT p50", &format!("{} p50", s.dimension().knee_latency().short())]
            .map(str::to_owned)
            .into();
    header.extend(s.sweep.slos.iter().map(|r| r.to_string()));
    header.push(String::new());
    t.set_header(header);
    for step in &s.steps {
        let st = &step.stats;
        let mut row = vec![
            s.dimension().label(step.load),
            step.runs.len().to_string(),
            format!("{:.1}%", st.success_rate.mean * 100.0),
            est(&st.request_throughput, 2),
            est(&st.output_throughput, 1),
            est(&st.ttft_median_ms, 1),
            est(&st.tpot_median_ms, 2),
            est(&st.knee_latency_ms, 1),
        ];
        row.extend(step.slo.iter().map(|c| format!("{:.1} {}", c.value_ms, if c.met { "ok" } else { "FAIL" })));
        let mut marks = Vec::new();
        if s.knee == Some(step.load) {
            marks.push("knee");
        }
        if s.slo_limit == Some(step.load) {
            marks.push("SLO limit");
        }
        if !step.noisy.is_empty() {
            marks.push("noisy");
        }
        if step.refined {
            marks.push("refined");
        }
        row.push(marks.join(", "));
        t.add_row(row);
    }
    for i in 1..8 + s.sweep.slos.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = format!("{t}\n(latencies in ms");
    if s.sweep.repeat > 1 {
        out.push_str(&format!("; mean ±95% CI over {} repeats", s.sweep.repeat));
    }
    out.push(')');
    out
}

/// A plain table with the first column left-aligned and the rest right-aligned (numbers), for
/// the smaller listings (`plan`'s what-if rows).
pub fn text_table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    for i in 1..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.to_string()
}
