//! Baseline against candidate — two runs, two sweeps (step by step at the loads both ran) or two
//! engine benchmarks — metric by metric, with a Mann–Whitney test on the per-request samples and
//! an optional regression gate. Returns a typed [`CompareResult`]; `report` draws it.

use crate::error::BenchError;
use crate::saved::{read, records_beside};
use inferbench_core::comparison::{fmt_p, CompareResult, CompareRow, GateOutcome};
use inferbench_core::engine_bench::EngineResult;
use inferbench_core::record::RequestRecord;
use inferbench_core::result::{Header, ResultKind};
use inferbench_core::significance::mann_whitney_sorted;
use inferbench_core::sweep::{StepRun, SweepResult};
use inferbench_core::{MetricName, SavedResult, Summary};
use rayon::prelude::*;
use std::path::Path;

/// How to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Significance level.
    pub alpha: f64,
    /// Compare results whose workloads differ (the differences are kept in the result).
    pub allow_different_workloads: bool,
    /// Fail when the watched metric is significantly worse by more than this fraction.
    pub fail_on_regression: Option<f64>,
    /// The metric the gate watches: ttft, tpot, itl, e2el, throughput or an engine metric.
    pub regression_metric: String,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self { alpha: 0.05, allow_different_workloads: false, fail_on_regression: None, regression_metric: "e2el".into() }
    }
}

/// Per-request samples of a metric, sorted (in parallel) for the significance test.
fn samples(records: &[RequestRecord], m: MetricName) -> Vec<f64> {
    let ok = records.par_iter().filter(|r| r.is_success());
    let mut v: Vec<f64> = match m {
        MetricName::Ttft => ok.filter_map(RequestRecord::ttft_ms).collect(),
        MetricName::Tpot => ok.filter_map(RequestRecord::tpot_ms).collect(),
        MetricName::E2el => ok.map(RequestRecord::e2el_ms).collect(),
        // One sample per request (its mean gap): the gaps within a request are not independent,
        // and testing them one by one would overstate significance.
        MetricName::Itl => {
            ok.filter(|r| !r.itl_ns.is_empty()).map(|r| r.itl_ns.iter().sum::<u64>() as f64 / r.itl_ns.len() as f64 / 1e6).collect()
        }
        _ => Vec::new(),
    };
    v.par_sort_unstable_by(f64::total_cmp);
    v
}

fn significance(base: Option<&[RequestRecord]>, cand: Option<&[RequestRecord]>, m: MetricName) -> Option<f64> {
    let (b, c) = (base?, cand?);
    let (x, y) = rayon::join(|| samples(b, m), || samples(c, m));
    (!x.is_empty() && !y.is_empty()).then(|| mann_whitney_sorted(&x, &y).p)
}

fn mean_of(s: &[&Summary], f: impl Fn(&Summary) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = s.iter().map(|x| f(x)).collect::<Option<_>>()?;
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Reads one statistic of a summary (absent when the percentile was not computed).
type StatFn = fn(&Summary, MetricName) -> Option<f64>;
/// Reads one throughput of a summary.
type ThroughputFn = fn(&Summary) -> f64;

/// The latency and throughput rows of two sets of summaries (one run each, or a sweep step's
/// repeats, averaged), with significance from the records.
fn summary_rows(
    group: &str,
    b: &[&Summary],
    c: &[&Summary],
    brec: Option<&[RequestRecord]>,
    crec: Option<&[RequestRecord]>,
) -> Vec<CompareRow> {
    let mut rows = Vec::new();
    let row = |metric: String, key: String, baseline: f64, candidate: f64, lower: bool, p: Option<f64>| CompareRow {
        group: group.to_owned(),
        metric,
        key,
        baseline,
        candidate,
        lower_better: Some(lower),
        p,
    };
    for m in [MetricName::Ttft, MetricName::Tpot, MetricName::Itl, MetricName::E2el] {
        let p = significance(brec, crec, m);
        let stats: [(&str, StatFn); 3] = [
            ("mean", |s, m| Some(s.metric(m).mean)),
            ("median", |s, m| Some(s.metric(m).median)),
            ("p99", |s, m| s.metric(m).percentile(99.0)),
        ];
        for (name, f) in stats {
            if let (Some(x), Some(y)) = (mean_of(b, |s| f(s, m)), mean_of(c, |s| f(s, m))) {
                rows.push(row(format!("{} {name} (ms)", m.short()), format!("{}_{name}", m.key()), x, y, true, p));
            }
        }
    }
    let thr: [(&str, &str, ThroughputFn); 2] = [
        ("request throughput (req/s)", "request_throughput", |s| s.request_throughput),
        ("output throughput (tok/s)", "output_throughput", |s| s.output_throughput),
    ];
    for (name, key, f) in thr {
        if let (Some(x), Some(y)) = (mean_of(b, |s| Some(f(s))), mean_of(c, |s| Some(f(s)))) {
            rows.push(row(name.into(), key.into(), x, y, false, None));
        }
    }
    rows
}

/// The records of every repeat of a sweep step, concatenated; `None` if any is missing.
fn step_records(sweep_path: &Path, runs: &[StepRun]) -> Result<Option<Vec<RequestRecord>>, BenchError> {
    let dir = sweep_path.parent().unwrap_or(Path::new("."));
    let mut all = Vec::new();
    for r in runs {
        match records_beside(&dir.join(&r.result), &r.run_id)? {
            Some(v) => all.extend(v),
            None => return Ok(None),
        }
    }
    Ok(Some(all))
}

fn sweep_rows(bp: &Path, b: &SweepResult, cp: &Path, c: &SweepResult, notes: &mut Vec<String>) -> Result<Vec<CompareRow>, BenchError> {
    if b.dimension() != c.dimension() {
        return Err(BenchError::invalid(format!(
            "cannot compare a sweep over {} with a sweep over {}: their steps are not the same loads",
            b.dimension().describe(),
            c.dimension().describe()
        )));
    }
    let dim = b.dimension();
    let mut rows = Vec::new();
    let mut common = 0;
    for bs in &b.steps {
        let Some(cs) = c.steps.iter().find(|x| (x.load - bs.load).abs() < 1e-9) else { continue };
        common += 1;
        let (brec, crec) = (step_records(bp, &bs.runs)?, step_records(cp, &cs.runs)?);
        // The headline rows only: a sweep has many steps.
        let keep = ["ttft_median", "ttft_p99", "tpot_median", "e2el_median", "e2el_p99", "request_throughput", "output_throughput"];
        rows.extend(
            summary_rows(&dim.label(bs.load), &bs.summaries(), &cs.summaries(), brec.as_deref(), crec.as_deref())
                .into_iter()
                .filter(|r| keep.contains(&r.key.as_str())),
        );
    }
    if common == 0 {
        return Err(BenchError::invalid("the two sweeps share no load level, so there is nothing to compare step by step"));
    }
    let fmt = |v: Option<f64>| v.map_or_else(|| "none".to_owned(), |x| dim.label(x));
    notes.push(format!("knee: {} vs {}", fmt(b.knee), fmt(c.knee)));
    notes.push(format!("highest load meeting the SLOs: {} vs {}", fmt(b.slo_limit), fmt(c.slo_limit)));
    Ok(rows)
}

/// Which way is better for an engine metric, judged by its name.
fn engine_direction(key: &str) -> Option<bool> {
    let higher = ["per_second", "speedup", "acceptance", "agreement", "throughput"];
    if higher.iter().any(|h| key.contains(h)) {
        Some(false)
    } else if key.ends_with("_ms") || key.contains("_ms_") || key.ends_with("_mb") || key.ends_with("_gb") {
        Some(true)
    } else {
        None
    }
}

fn engine_rows(bp: &Path, b: &EngineResult, cp: &Path, c: &EngineResult, diffs: &mut Vec<String>) -> Result<Vec<CompareRow>, BenchError> {
    for (section, x, y) in [
        ("latency", json(&b.config.latency), json(&c.config.latency)),
        ("throughput", json(&b.config.throughput), json(&c.config.throughput)),
        ("test_prompts", json(&b.config.test_prompts), json(&c.config.test_prompts)),
    ] {
        if x != y {
            diffs.push(format!("config.{section}: {x} vs {y}"));
        }
    }
    let mut rows = Vec::new();
    let (brec, crec) = (records_beside(bp, &b.header.run_id)?, records_beside(cp, &c.header.run_id)?);
    rows.extend(
        summary_rows("latency runs", &[&b.latency_summary], &[&c.latency_summary], brec.as_deref(), crec.as_deref())
            .into_iter()
            .filter(|r| r.lower_better == Some(true)),
    );
    for (k, &x) in &b.metrics {
        if let Some(&y) = c.metrics.get(k) {
            rows.push(CompareRow {
                group: "engine".into(),
                metric: k.clone(),
                key: k.clone(),
                baseline: x,
                candidate: y,
                lower_better: engine_direction(k),
                p: None,
            });
        }
    }
    Ok(rows)
}

/// A config section as JSON, for the same-workload check.
fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// Compares two saved results. A failed gate is in the result (`gate`), not an error: the caller
/// decides what it means (the CLI exits 3).
pub fn compare(baseline: &Path, candidate: &Path, o: &CompareOptions) -> Result<CompareResult, BenchError> {
    let (base, cand) = (read(baseline)?, read(candidate)?);
    let mut diffs = Vec::new();
    let mut notes = Vec::new();
    let rows = match (&base, &cand) {
        (SavedResult::Run(b), SavedResult::Run(c)) => {
            diffs = crate::spec::workload_diffs(&b.spec, &c.spec);
            let (brec, crec) = (records_beside(baseline, &b.header.run_id)?, records_beside(candidate, &c.header.run_id)?);
            if brec.is_none() || crec.is_none() {
                notes.push("no .records.jsonl beside a result: significance not tested".to_owned());
            }
            summary_rows("", &[&b.summary], &[&c.summary], brec.as_deref(), crec.as_deref())
        }
        (SavedResult::Sweep(b), SavedResult::Sweep(c)) => {
            diffs = crate::spec::workload_diffs(&b.sweep.run, &c.sweep.run);
            sweep_rows(baseline, b, candidate, c, &mut notes)?
        }
        (SavedResult::Engine(b), SavedResult::Engine(c)) => engine_rows(baseline, b, candidate, c, &mut diffs)?,
        _ => {
            return Err(BenchError::invalid(format!(
                "{} is {} but {} is {}: compare like with like",
                baseline.display(),
                base.kind().described(),
                candidate.display(),
                cand.kind().described()
            )))
        }
    };
    if !diffs.is_empty() && !o.allow_different_workloads {
        return Err(BenchError::invalid(format!(
            "the two results ran different workloads ({}); pass --allow-different-workloads to compare them anyway",
            diffs.join("; ")
        )));
    }
    let engine = base.kind() == ResultKind::Engine;
    let gate = o.fail_on_regression.map(|th| gate(o, th, &rows, engine)).transpose()?;
    let mut header = Header::now(ResultKind::Compare, crate::tool_info());
    header.end();
    Ok(CompareResult {
        header,
        baseline: baseline.display().to_string(),
        candidate: candidate.display().to_string(),
        compared: base.kind(),
        alpha: o.alpha,
        rows,
        workload_diffs: diffs,
        notes,
        gate,
    })
}

/// `--fail-on-regression`: every row the metric names (one per sweep step) must pass.
fn gate(o: &CompareOptions, th: f64, rows: &[CompareRow], engine: bool) -> Result<GateOutcome, BenchError> {
    let m = o.regression_metric.trim().to_ascii_lowercase();
    let key = match m.as_str() {
        "ttft" | "tpot" | "itl" | "e2el" => format!("{m}_median"),
        "throughput" if engine => "tokens_per_second".to_owned(),
        "throughput" => "output_throughput".to_owned(),
        other => other.to_owned(),
    };
    let watched: Vec<&CompareRow> = rows.iter().filter(|r| r.key == key).collect();
    if watched.is_empty() {
        return Err(BenchError::invalid(format!(
            "--regression-metric {m}: not in these results (expected ttft, tpot, itl, e2el, throughput{})",
            if engine { " or an engine metric name" } else { "" }
        )));
    }
    let mut failures = Vec::new();
    for r in &watched {
        let significant = r.p.is_none_or(|p| p < o.alpha);
        if r.regression() > th && significant {
            failures.push(format!(
                "{}{} went from {:.2} to {:.2} ({:+.1}%, threshold {:.1}%{})",
                if r.group.is_empty() { String::new() } else { format!("[{}] ", r.group) },
                r.metric,
                r.baseline,
                r.candidate,
                r.change() * 100.0,
                th * 100.0,
                r.p.map_or(String::new(), |p| format!(", p = {}", fmt_p(Some(p))))
            ));
        }
    }
    Ok(GateOutcome { metric: watched[0].metric.clone(), threshold: th, failures })
}
