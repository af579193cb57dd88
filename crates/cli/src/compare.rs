//! `inferbench compare A B`: baseline against candidate, metric by metric, with a significance
//! test on the per-request samples and an optional regression gate for CI.

use crate::args::CompareArgs;
use anyhow::{bail, Context, Result};
use inferbench_core::metrics::MetricName;
use inferbench_core::record::RequestRecord;
use inferbench_core::result::{BenchmarkResult, SCHEMA_VERSION};
use inferbench_core::significance::mann_whitney;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

struct Side {
    path: PathBuf,
    result: BenchmarkResult,
    records: Option<Vec<RequestRecord>>,
}

fn load(path: &Path) -> Result<Side> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let version = v.get("schema_version").and_then(serde_json::Value::as_u64);
    match version {
        Some(x) if x == u64::from(SCHEMA_VERSION) => {}
        Some(x) => bail!("{}: result schema version {x}, this inferbench reads version {SCHEMA_VERSION}", path.display()),
        None => bail!("{}: not an inferbench serving result (no schema_version)", path.display()),
    }
    let result: BenchmarkResult = serde_json::from_value(v).with_context(|| format!("{}: not a serving result", path.display()))?;
    let rec_path = path.with_extension("records.jsonl");
    let records = match std::fs::read_to_string(&rec_path) {
        Ok(t) => Some(
            t.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}:{}: bad record", rec_path.display(), i + 1)))
                .collect::<Result<Vec<RequestRecord>>>()?,
        ),
        Err(_) => None,
    };
    Ok(Side { path: path.to_owned(), result, records })
}

/// Per-request samples of a metric, for the significance test.
fn samples(records: &[RequestRecord], m: MetricName) -> Vec<f64> {
    let ok = records.iter().filter(|r| r.is_success());
    match m {
        MetricName::Ttft => ok.filter_map(RequestRecord::ttft_ms).collect(),
        MetricName::Tpot => ok.filter_map(RequestRecord::tpot_ms).collect(),
        MetricName::E2el => ok.map(RequestRecord::e2el_ms).collect(),
        MetricName::Itl => ok.flat_map(|r| r.itl_ns.iter().map(|&n| n as f64 / 1e6)).collect(),
        _ => Vec::new(),
    }
}

/// One row of the comparison.
struct Row {
    metric: String,
    base: f64,
    cand: f64,
    /// True when lower values are better (latencies).
    lower_better: bool,
    p: Option<f64>,
}

impl Row {
    fn change(&self) -> f64 {
        (self.cand - self.base) / self.base
    }
    /// How much worse the candidate is (positive = regression), as a fraction.
    fn regression(&self) -> f64 {
        if self.lower_better {
            self.change()
        } else {
            -self.change()
        }
    }
    fn speedup(&self) -> f64 {
        if self.lower_better {
            self.base / self.cand
        } else {
            self.cand / self.base
        }
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

/// Runs the comparison; a significant regression beyond the threshold is an error (exit 1).
pub fn run(a: CompareArgs) -> Result<bool> {
    let base = load(&a.baseline)?;
    let cand = load(&a.candidate)?;
    let (bs, cs) = (&base.result.spec, &cand.result.spec);
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
    if !diffs.is_empty() {
        let msg = format!("the two runs ran different workloads ({})", diffs.join("; "));
        if !a.allow_different_workloads {
            bail!("{msg}; pass --allow-different-workloads to compare them anyway");
        }
        eprintln!("WARNING: {msg}");
    }
    let metrics = [MetricName::Ttft, MetricName::Tpot, MetricName::Itl, MetricName::E2el];
    let mut rows = Vec::new();
    for m in metrics {
        let p = match (&base.records, &cand.records) {
            (Some(b), Some(c)) => {
                let (x, y) = (samples(b, m), samples(c, m));
                (!x.is_empty() && !y.is_empty()).then(|| mann_whitney(&x, &y).p)
            }
            _ => None,
        };
        let (bd, cd) = (base.result.summary.metric(m), cand.result.summary.metric(m));
        rows.push(Row { metric: format!("{} mean (ms)", m.short()), base: bd.mean, cand: cd.mean, lower_better: true, p });
        rows.push(Row { metric: format!("{} median (ms)", m.short()), base: bd.median, cand: cd.median, lower_better: true, p });
        if let (Some(b99), Some(c99)) = (bd.percentile(99.0), cd.percentile(99.0)) {
            rows.push(Row { metric: format!("{} p99 (ms)", m.short()), base: b99, cand: c99, lower_better: true, p });
        }
    }
    let (bsum, csum) = (&base.result.summary, &cand.result.summary);
    rows.push(Row {
        metric: "request throughput (req/s)".into(),
        base: bsum.request_throughput,
        cand: csum.request_throughput,
        lower_better: false,
        p: None,
    });
    rows.push(Row {
        metric: "output throughput (tok/s)".into(),
        base: bsum.output_throughput,
        cand: csum.output_throughput,
        lower_better: false,
        p: None,
    });
    let alpha = a.alpha;
    let mut out = String::new();
    let verdict = |r: &Row| -> &'static str {
        let sig = r.p.is_none_or(|p| p < alpha);
        match (r.regression(), sig) {
            (x, true) if x > 0.0 && r.p.is_some() => "worse",
            (x, true) if x < 0.0 && r.p.is_some() => "better",
            (_, false) => "no significant change",
            _ => "(no per-request samples)",
        }
    };
    let fmt_p = |p: Option<f64>| p.map_or("n/a".to_owned(), |p| if p < 1e-4 { "<0.0001".to_owned() } else { format!("{p:.4}") });
    if a.markdown {
        let _ = writeln!(out, "**inferbench compare**: `{}` (baseline) vs `{}` (candidate)\n", base.path.display(), cand.path.display());
        let _ =
            writeln!(out, "| metric | baseline | candidate | change | speedup | p (Mann–Whitney) | |\n|---|---:|---:|---:|---:|---:|---|");
        for r in &rows {
            let _ = writeln!(
                out,
                "| {} | {:.2} | {:.2} | {:+.1}% | {:.3}x | {} | {} |",
                r.metric,
                r.base,
                r.cand,
                r.change() * 100.0,
                r.speedup(),
                fmt_p(r.p),
                verdict(r)
            );
        }
    } else {
        let _ = writeln!(out, "baseline:  {}\ncandidate: {}", base.path.display(), cand.path.display());
        let _ =
            writeln!(out, "{:<28} {:>11} {:>11} {:>9} {:>9} {:>9}  verdict", "metric", "baseline", "candidate", "change", "speedup", "p");
        for r in &rows {
            let _ = writeln!(
                out,
                "{:<28} {:>11.2} {:>11.2} {:>+8.1}% {:>8.3}x {:>9}  {}",
                r.metric,
                r.base,
                r.cand,
                r.change() * 100.0,
                r.speedup(),
                fmt_p(r.p),
                verdict(r)
            );
        }
        if base.records.is_none() || cand.records.is_none() {
            let _ = writeln!(out, "(no .records.jsonl beside a result: significance not tested)");
        }
    }
    print!("{out}");
    if let Some(th) = a.fail_on_regression {
        let m = a.regression_metric.as_str();
        let name = format!("{m} median (ms)");
        let row = rows
            .iter()
            .find(|r| r.metric.eq_ignore_ascii_case(&name) || (m == "throughput" && r.metric.starts_with("output throughput")))
            .with_context(|| format!("--regression-metric {m}: expected ttft, tpot, itl, e2el or throughput"))?;
        let significant = row.p.is_none_or(|p| p < alpha);
        if row.regression() > th && significant {
            bail!(
                "regression: {} went from {:.2} to {:.2} ({:+.1}%, threshold {:.1}%{})",
                row.metric,
                row.base,
                row.cand,
                row.change() * 100.0,
                th * 100.0,
                row.p.map_or(String::new(), |p| format!(", p = {}", fmt_p(Some(p))))
            );
        }
        eprintln!("no significant regression of {} beyond {:.1}%", row.metric, th * 100.0);
    }
    Ok(true)
}
