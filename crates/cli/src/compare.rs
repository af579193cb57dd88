//! `inferbench compare A B`: the library compares, `report` draws, this module decides the exit
//! code (3 when the regression gate fails).

use crate::args::CompareArgs;
use anyhow::Result;
use inferbench_bench::compare::{compare, CompareOptions};
use inferbench_core::SavedResult;

/// Parses `5%` or `0.05`.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => s.trim().parse::<f64>(),
    };
    v.ok().filter(|x| x.is_finite() && *x >= 0.0).ok_or_else(|| format!("'{s}': expected a percentage like 5% or a fraction like 0.05"))
}

/// Runs the comparison.
pub fn run(a: CompareArgs) -> Result<()> {
    let o = CompareOptions {
        alpha: a.alpha,
        allow_different_workloads: a.allow_different_workloads,
        fail_on_regression: a.fail_on_regression,
        regression_metric: a.regression_metric.clone(),
    };
    let mut c = compare(&a.baseline, &a.candidate, &o)?;
    c.header.labels = crate::labels(&a.label)?;
    if !c.workload_diffs.is_empty() {
        eprintln!("WARNING: the two results ran different workloads ({})", c.workload_diffs.join("; "));
    }
    let table = if a.markdown { inferbench_report::markdown::compare(&c) } else { inferbench_report::text::compare(&c) };
    out!("{table}");
    if let Some(p) = &a.output {
        inferbench_bench::saved::write(p, &SavedResult::Compare(Box::new(c.clone())))?;
        outln!("Comparison: {}", p.display());
        crate::store::record(&a.store, std::slice::from_ref(p));
        if a.html {
            outln!("HTML:       {}", crate::report::html_beside(p)?.display());
        }
    }
    match &c.gate {
        Some(g) if !g.passed() => Err(crate::gate(format!("regression: {}", g.failures.join("; ")))),
        Some(g) => {
            eprintln!("no significant regression of {} beyond {:.1}%", g.metric, g.threshold * 100.0);
            Ok(())
        }
        None => Ok(()),
    }
}
