//! Compact comparison tables (one row per run), for demos and sweeps.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, Table};
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
