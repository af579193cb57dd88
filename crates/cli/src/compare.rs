//! `inferbench compare A B`: baseline against candidate — two runs, two sweeps (step by step at
//! the loads both ran) or two engine benchmarks — metric by metric, with a Mann–Whitney test on
//! the per-request samples and an optional regression gate for CI.

use crate::args::CompareArgs;
use crate::saved::{read, records_beside, Saved};
use anyhow::{bail, Result};
use inferbench_core::metrics::{MetricName, Summary};
use inferbench_core::record::RequestRecord;
use inferbench_core::significance::mann_whitney_sorted;
use inferbench_core::spec::RunSpec;
use inferbench_core::sweep::SweepResult;
use rayon::prelude::*;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// One row of the comparison.
struct Row {
    /// The step (`c=8`) for sweeps, empty otherwise.
    group: String,
    /// What the row shows, for people.
    metric: String,
    /// What `--regression-metric` matches (`e2el_median`, `output_throughput`, engine keys).
    key: String,
    base: f64,
    cand: f64,
    /// Whether lower values are better; `None` when the direction is unknown.
    lower_better: Option<bool>,
    /// Mann–Whitney p-value on the per-request samples, when both sides have them.
    p: Option<f64>,
}

impl Row {
    fn change(&self) -> f64 {
        (self.cand - self.base) / self.base
    }
    /// How much worse the candidate is (positive = regression), as a fraction.
    fn regression(&self) -> f64 {
        match self.lower_better {
            Some(true) => self.change(),
            Some(false) => -self.change(),
            None => 0.0,
        }
    }
    fn speedup(&self) -> f64 {
        match self.lower_better {
            Some(true) => self.base / self.cand,
            _ => self.cand / self.base,
        }
    }
    /// Baseline, candidate, change, speedup, p and verdict, formatted for either table.
    fn cells(&self, alpha: f64) -> [String; 6] {
        [
            format!("{:.2}", self.base),
            format!("{:.2}", self.cand),
            format!("{:+.1}%", self.change() * 100.0),
            format!("{:.3}x", self.speedup()),
            fmt_p(self.p),
            verdict(self, alpha).to_owned(),
        ]
    }
}

/// Parses `5%` or `0.05`.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => s.trim().parse::<f64>(),
    };
    v.ok().filter(|x| x.is_finite() && *x >= 0.0).ok_or_else(|| format!("'{s}': expected a percentage like 5% or a fraction like 0.05"))
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
fn summary_rows(group: &str, b: &[&Summary], c: &[&Summary], brec: Option<&[RequestRecord]>, crec: Option<&[RequestRecord]>) -> Vec<Row> {
    let mut rows = Vec::new();
    let row = |metric: String, key: String, base: f64, cand: f64, lower: bool, p: Option<f64>| Row {
        group: group.to_owned(),
        metric,
        key,
        base,
        cand,
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

/// Differences between two runs' workloads, as `field: a vs b`.
fn workload_diffs(bs: &RunSpec, cs: &RunSpec) -> Result<Vec<String>> {
    let mut diffs = Vec::new();
    let (bd, cd) = (serde_json::to_value(&bs.dataset)?, serde_json::to_value(&cs.dataset)?);
    if let (Some(bo), Some(co)) = (bd.as_object(), cd.as_object()) {
        for (k, v) in bo {
            if co.get(k) != Some(v) {
                diffs.push(format!("dataset.{k}: {v} vs {}", co.get(k).cloned().unwrap_or_default()));
            }
        }
    }
    if bs.backend != cs.backend {
        diffs.push(format!("backend: {} vs {}", bs.backend, cs.backend));
    }
    Ok(diffs)
}

/// The records of every repeat of a sweep step, concatenated; `None` if any is missing.
fn step_records(sweep_path: &Path, runs: &[inferbench_core::sweep::StepRun]) -> Result<Option<Vec<RequestRecord>>> {
    let dir = sweep_path.parent().unwrap_or(Path::new("."));
    let mut all = Vec::new();
    for r in runs {
        match records_beside(&dir.join(&r.result))? {
            Some(v) => all.extend(v),
            None => return Ok(None),
        }
    }
    Ok(Some(all))
}

fn sweep_rows(bp: &Path, b: &SweepResult, cp: &Path, c: &SweepResult, notes: &mut Vec<String>) -> Result<Vec<Row>> {
    if b.dimension != c.dimension {
        bail!("cannot compare a sweep over {:?} with a sweep over {:?}", b.dimension, c.dimension);
    }
    let dim = b.dimension;
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
        bail!("the two sweeps share no load level, so there is nothing to compare step by step");
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

fn engine_rows(bp: &Path, b: &Value, cp: &Path, c: &Value, diffs: &mut Vec<String>) -> Result<Vec<Row>> {
    for section in ["latency", "throughput", "test_prompts"] {
        let (x, y) = (&b["config"][section], &c["config"][section]);
        if x != y {
            diffs.push(format!("config.{section}: {x} vs {y}"));
        }
    }
    let summary = |v: &Value, p: &Path| -> Result<Option<Summary>> {
        match v.get("latency_summary") {
            None => Ok(None),
            Some(s) => Ok(Some(serde_json::from_value(s.clone()).map_err(|e| anyhow::anyhow!("{}: latency_summary: {e}", p.display()))?)),
        }
    };
    let mut rows = Vec::new();
    if let (Some(bs), Some(cs)) = (summary(b, bp)?, summary(c, cp)?) {
        let (brec, crec) = (records_beside(bp)?, records_beside(cp)?);
        rows.extend(
            summary_rows("latency runs", &[&bs], &[&cs], brec.as_deref(), crec.as_deref())
                .into_iter()
                .filter(|r| r.lower_better == Some(true)),
        );
    }
    let (Some(bm), Some(cm)) = (b["metrics"].as_object(), c["metrics"].as_object()) else {
        bail!("{}: an engine result without a metrics map", bp.display());
    };
    for (k, v) in bm {
        if let (Some(x), Some(y)) = (v.as_f64(), cm.get(k).and_then(Value::as_f64)) {
            rows.push(Row {
                group: "engine".into(),
                metric: k.clone(),
                key: k.clone(),
                base: x,
                cand: y,
                lower_better: engine_direction(k),
                p: None,
            });
        }
    }
    Ok(rows)
}

/// Runs the comparison; a significant regression beyond the threshold is an error (exit 1).
pub fn run(a: CompareArgs) -> Result<bool> {
    let (base, cand) = (read(&a.baseline)?, read(&a.candidate)?);
    let mut diffs = Vec::new();
    let mut notes = Vec::new();
    let rows = match (&base, &cand) {
        (Saved::Run(b), Saved::Run(c)) => {
            diffs = workload_diffs(&b.spec, &c.spec)?;
            let (brec, crec) = (records_beside(&a.baseline)?, records_beside(&a.candidate)?);
            if brec.is_none() || crec.is_none() {
                notes.push("no .records.jsonl beside a result: significance not tested".to_owned());
            }
            summary_rows("", &[&b.summary], &[&c.summary], brec.as_deref(), crec.as_deref())
        }
        (Saved::Sweep(b), Saved::Sweep(c)) => {
            diffs = workload_diffs(&b.spec, &c.spec)?;
            sweep_rows(&a.baseline, b, &a.candidate, c, &mut notes)?
        }
        (Saved::Engine(b), Saved::Engine(c)) => engine_rows(&a.baseline, b, &a.candidate, c, &mut diffs)?,
        _ => bail!("{} is {} but {} is {}: compare like with like", a.baseline.display(), kind(&base), a.candidate.display(), kind(&cand)),
    };
    if !diffs.is_empty() {
        let msg = format!("the two results ran different workloads ({})", diffs.join("; "));
        if !a.allow_different_workloads {
            bail!("{msg}; pass --allow-different-workloads to compare them anyway");
        }
        eprintln!("WARNING: {msg}");
    }
    print!("{}", render(&a, &rows, &notes));
    gate(&a, &rows, matches!(base, Saved::Engine(_)))
}

fn kind(s: &Saved) -> &'static str {
    match s {
        Saved::Run(_) => "a serving run",
        Saved::Sweep(_) => "a sweep",
        Saved::Engine(_) => "an engine benchmark",
    }
}

fn fmt_p(p: Option<f64>) -> String {
    p.map_or("n/a".to_owned(), |p| if p < 1e-4 { "<0.0001".to_owned() } else { format!("{p:.4}") })
}

/// Rows without per-request samples (throughputs, engine figures) within this fraction of each
/// other are called the same.
const UNTESTED_SAME: f64 = 0.01;

fn verdict(r: &Row, alpha: f64) -> &'static str {
    if r.lower_better.is_none() {
        return "-";
    }
    match (r.p, r.regression()) {
        (None, x) if x > UNTESTED_SAME => "worse (not tested)",
        (None, x) if x < -UNTESTED_SAME => "better (not tested)",
        (None, _) => "same (within 1%, not tested)",
        (Some(p), _) if p >= alpha => "no significant change",
        (Some(_), x) if x > 0.0 => "worse",
        (Some(_), x) if x < 0.0 => "better",
        _ => "no significant change",
    }
}

fn render(a: &CompareArgs, rows: &[Row], notes: &[String]) -> String {
    let mut out = String::new();
    let mut group = None;
    if a.markdown {
        let _ = writeln!(out, "**inferbench compare**: `{}` (baseline) vs `{}` (candidate)\n", a.baseline.display(), a.candidate.display());
        let _ = writeln!(
            out,
            "| step | metric | baseline | candidate | change | speedup | p (Mann–Whitney) | |\n|---|---|---:|---:|---:|---:|---:|---|"
        );
        for r in rows {
            let _ = writeln!(out, "| {} | {} | {} |", r.group, r.metric, r.cells(a.alpha).join(" | "));
        }
        for n in notes {
            let _ = writeln!(out, "\n_{n}_");
        }
        return out;
    }
    let _ = writeln!(out, "baseline:  {}\ncandidate: {}", a.baseline.display(), a.candidate.display());
    for r in rows {
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
        let [base, cand, change, speedup, p, verdict] = r.cells(a.alpha);
        let _ = writeln!(out, "{:<40} {base:>11} {cand:>11} {change:>9} {speedup:>9} {p:>9}  {verdict}", r.metric);
    }
    for n in notes {
        let _ = writeln!(out, "{n}");
    }
    out
}

/// `--fail-on-regression`: every row the metric names (one per sweep step) must pass.
fn gate(a: &CompareArgs, rows: &[Row], engine: bool) -> Result<bool> {
    let Some(th) = a.fail_on_regression else { return Ok(true) };
    let m = a.regression_metric.trim().to_ascii_lowercase();
    let key = match m.as_str() {
        "ttft" | "tpot" | "itl" | "e2el" => format!("{m}_median"),
        "throughput" if engine => "tokens_per_second".to_owned(),
        "throughput" => "output_throughput".to_owned(),
        other => other.to_owned(),
    };
    let watched: Vec<&Row> = rows.iter().filter(|r| r.key == key).collect();
    if watched.is_empty() {
        bail!(
            "--regression-metric {m}: not in these results (expected ttft, tpot, itl, e2el, throughput{})",
            if engine { " or an engine metric name" } else { "" }
        );
    }
    let mut failures = Vec::new();
    for r in &watched {
        let significant = r.p.is_none_or(|p| p < a.alpha);
        if r.regression() > th && significant {
            failures.push(format!(
                "{}{} went from {:.2} to {:.2} ({:+.1}%, threshold {:.1}%{})",
                if r.group.is_empty() { String::new() } else { format!("[{}] ", r.group) },
                r.metric,
                r.base,
                r.cand,
                r.change() * 100.0,
                th * 100.0,
                r.p.map_or(String::new(), |p| format!(", p = {}", fmt_p(Some(p))))
            ));
        }
    }
    if !failures.is_empty() {
        bail!("regression: {}", failures.join("; "));
    }
    eprintln!("no significant regression of {} beyond {:.1}%", watched[0].metric, th * 100.0);
    Ok(true)
}
