//! CSV: one header line and one row per run (easy to concatenate across runs), and the engine's
//! latency grid one row per cell.

use inferbench_core::engine_bench::EngineResult;
use inferbench_core::result::fmt_pct;
use inferbench_core::{BenchmarkResult, MetricName};

fn finish(w: csv::Writer<Vec<u8>>) -> Result<String, String> {
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

/// A run's headline metrics and every distribution, one row.
pub fn run(r: &BenchmarkResult) -> Result<String, String> {
    let s = &r.summary;
    let mut header: Vec<String> = [
        "date",
        "backend",
        "model",
        "request_rate",
        "max_concurrency",
        "completed",
        "failed",
        "duration_s",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "request_goodput",
        "output_throughput",
        "total_token_throughput",
        "interrupted",
        "labels",
    ]
    .map(String::from)
    .to_vec();
    let opt = |v: Option<f64>| v.map_or_else(String::new, |x| x.to_string());
    let labels: Vec<String> = r.header.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut row: Vec<String> = vec![
        r.header.date.clone(),
        r.spec.backend.clone(),
        r.spec.model.clone(),
        r.spec.request_rate.map_or("inf".into(), |x| x.to_string()),
        r.spec.max_concurrency.map_or_else(String::new, |x| x.to_string()),
        s.completed.to_string(),
        s.failed.to_string(),
        s.duration_s.to_string(),
        s.total_input_tokens.to_string(),
        s.total_output_tokens.to_string(),
        s.request_throughput.to_string(),
        opt(s.request_goodput),
        s.output_throughput.to_string(),
        s.total_token_throughput.to_string(),
        r.interrupted.to_string(),
        labels.join(";"),
    ];
    for m in MetricName::ALL {
        let d = s.metric(m);
        for (stat, v) in [("mean", d.mean), ("median", d.median), ("std", d.std)] {
            header.push(format!("{stat}_{m}_ms"));
            row.push(v.to_string());
        }
        for &(p, v) in &d.percentiles {
            header.push(format!("p{}_{m}_ms", fmt_pct(p)));
            row.push(v.to_string());
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header).map_err(|e| e.to_string())?;
    w.write_record(&row).map_err(|e| e.to_string())?;
    finish(w)
}

/// The engine's latency grid, one row per cell.
pub fn engine_latency_csv(rep: &EngineResult) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let e = |e: csv::Error| e.to_string();
    w.write_record([
        "input_tokens",
        "output_tokens",
        "runs",
        "ttft_ms_mean",
        "ttft_ms_std",
        "decode_tok_s_mean",
        "decode_tok_s_std",
        "e2e_ms_mean",
        "e2e_ms_std",
        "e2e_ms_min",
        "e2e_ms_max",
        "e2e_ms_median",
    ])
    .map_err(e)?;
    for c in &rep.latency {
        let f = |v: f64| format!("{v:.3}");
        w.write_record([
            c.input_tokens.to_string(),
            c.output_tokens.to_string(),
            c.iterations.len().to_string(),
            f(c.ttft_ms.mean),
            f(c.ttft_ms.std),
            f(c.decode_tok_s.mean),
            f(c.decode_tok_s.std),
            f(c.e2e_ms.mean),
            f(c.e2e_ms.std),
            f(c.e2e_ms.min),
            f(c.e2e_ms.max),
            f(c.e2e_ms.median),
        ])
        .map_err(e)?;
    }
    finish(w)
}

fn rows(header: &[&str], rows: Vec<Vec<String>>) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(|e| e.to_string())?;
    for r in rows {
        w.write_record(&r).map_err(|e| e.to_string())?;
    }
    finish(w)
}

/// A sweep: one row per step, with each estimate's mean and 95 % half-width.
pub fn sweep(r: &inferbench_core::sweep::SweepResult) -> Result<String, String> {
    let e = |x: &inferbench_core::sweep::Estimate| [x.mean.to_string(), x.ci95.to_string()];
    let body = r
        .steps
        .iter()
        .map(|s| {
            let st = &s.stats;
            let mut row = vec![s.load.to_string(), s.runs.len().to_string()];
            for x in [&st.request_throughput, &st.output_throughput, &st.ttft_median_ms, &st.tpot_median_ms, &st.success_rate] {
                row.extend(e(x));
            }
            row.push(s.slo.iter().all(|c| c.met).to_string());
            row.push((r.knee == Some(s.load)).to_string());
            row.push((r.slo_limit == Some(s.load)).to_string());
            row
        })
        .collect();
    rows(
        &[
            "load",
            "runs",
            "request_throughput",
            "request_throughput_ci95",
            "output_throughput",
            "output_throughput_ci95",
            "ttft_median_ms",
            "ttft_median_ms_ci95",
            "tpot_median_ms",
            "tpot_median_ms_ci95",
            "success_rate",
            "success_rate_ci95",
            "slos_met",
            "knee",
            "slo_limit",
        ],
        body,
    )
}

/// A comparison: one row per metric.
pub fn compare(r: &inferbench_core::comparison::CompareResult) -> Result<String, String> {
    let body = r
        .rows
        .iter()
        .map(|x| {
            vec![
                x.group.clone(),
                x.key.clone(),
                x.metric.clone(),
                x.baseline.to_string(),
                x.candidate.to_string(),
                x.change().to_string(),
                x.speedup().to_string(),
                x.p.map_or_else(String::new, |p| p.to_string()),
                x.verdict(r.alpha).to_owned(),
            ]
        })
        .collect();
    rows(&["group", "key", "metric", "baseline", "candidate", "change", "speedup", "p", "verdict"], body)
}

/// A plan: one row per SLO choice (the plan's own first).
pub fn plan(r: &inferbench_core::capacity::CapacityPlan) -> Result<String, String> {
    let body = std::iter::once(&r.plan)
        .chain(&r.what_if)
        .map(|c| {
            let p = c.plan.as_ref();
            vec![
                c.slos.clone(),
                c.load.map_or_else(String::new, |l| l.to_string()),
                p.map_or_else(String::new, |p| p.replicas.to_string()),
                p.map_or_else(String::new, |p| p.utilisation.to_string()),
                p.and_then(|p| p.cost.as_ref()).map_or_else(String::new, |c| c.per_hour.to_string()),
                p.and_then(|p| p.cost.as_ref()).map_or_else(String::new, |c| c.per_million_tokens.to_string()),
            ]
        })
        .collect();
    rows(&["slos", "load_per_replica", "replicas", "utilisation", "cost_per_hour", "cost_per_million_tokens"], body)
}
