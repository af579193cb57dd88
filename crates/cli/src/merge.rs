//! `inferbench merge`: shards into one result, written, summarised and recorded like a run.

use crate::args::MergeArgs;
use anyhow::{Context, Result};
use inferbench_bench::merge::{merge, MergeOptions};
use inferbench_report::{render_summary, write_csv_summary, write_json, ConsoleOptions};
use std::time::Duration;

/// Runs `inferbench merge`.
pub fn run(a: &MergeArgs) -> Result<()> {
    let wait = match a.wait {
        Some(w) if !(w.is_finite() && w >= 0.0) => return Err(crate::usage(format!("invalid --wait '{w}': a number of seconds"))),
        w => w.map(Duration::from_secs_f64),
    };
    let started = std::time::Instant::now();
    let merged = merge(&a.inputs, &MergeOptions { wait, from_state: a.from_state })?;
    let took = started.elapsed().as_secs_f64();
    let r = &merged.result;
    if a.output.extension().is_none_or(|x| x != "json") {
        return Err(crate::usage(format!("invalid --output '{}': the merged result is JSON, name it *.json", a.output.display())));
    }
    if let Some(dir) = a.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_json(&a.output, r).with_context(|| format!("cannot write {}", a.output.display()))?;
    let csv = a.output.with_extension("csv");
    write_csv_summary(&csv, r).with_context(|| format!("cannot write {}", csv.display()))?;
    crate::store::record(&a.store, std::slice::from_ref(&a.output));
    if a.quiet {
        return Ok(());
    }
    for n in &merged.notes {
        eprintln!("note: {n}");
    }
    out!("{}", render_summary(r, &ConsoleOptions::default()));
    if let Some(m) = &r.merged {
        let how = if m.from_records {
            "from every shard's records (percentiles as one process computes them)".to_owned()
        } else {
            format!("from the shards' accumulator states (percentiles within {:.1} %)", m.percentile_error.unwrap_or(0.0) * 100.0)
        };
        outln!("Merged {} shards in {took:.2} s, {how}; their epochs spread over {:.1} ms", m.shards, m.epoch_spread_ms);
    }
    outln!("Result: {}\n        {}", a.output.display(), csv.display());
    if a.html {
        let html = crate::report::html_beside(&a.output)?;
        outln!("HTML:   {}", html.display());
    }
    Ok(())
}
