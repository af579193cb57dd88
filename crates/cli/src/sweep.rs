//! `inferbench sweep`: flags become a sweep spec, the library runs it step by step, and this
//! module prints the step lines, the table and the conclusions.

use crate::args::SweepArgs;
use crate::progress::ProgressSink;
use crate::run::printer;
use crate::usage;
use anyhow::Result;
use inferbench_bench::{Benchmark, SweepOptions};
use inferbench_core::sweep::{parse_loads, Dimension, SloRule, SweepSpec};
use inferbench_core::RecordSink;
use inferbench_report::sweep_table;
use std::sync::Arc;

fn spec(a: &SweepArgs) -> Result<SweepSpec> {
    let (dimension, list, flag) = match (&a.concurrencies, &a.rates) {
        (Some(c), _) => (Dimension::Concurrency, c.clone(), "--concurrencies"),
        (None, Some(r)) => (Dimension::Rate, r.clone(), "--rates"),
        (None, None) => return Err(usage("give the loads to sweep: --concurrencies 1,2,4,8 or --rates 1,2,4 (or a ramp like 1..64)")),
    };
    let loads = parse_loads(&list).map_err(|e| usage(format!("invalid {flag} '{list}': {e}")))?;
    let slos =
        a.slo.iter().map(|s| SloRule::parse(s).map_err(|e| usage(format!("invalid --slo '{s}': {e}")))).collect::<Result<Vec<_>>>()?;
    if !(0.0..=100.0).contains(&a.min_success_rate) {
        return Err(usage(format!("invalid --min-success-rate '{}': must be a percentage between 0 and 100", a.min_success_rate)));
    }
    Ok(SweepSpec {
        dimension,
        loads,
        run: a.run.spec()?,
        slos,
        min_success_rate: a.min_success_rate / 100.0,
        stop_on_slo: a.stop_on_slo,
        stop_latency_factor: a.stop_latency_factor,
        repeat: a.repeat,
        same_seed: a.same_seed,
        cooldown_s: a.cooldown,
        refine: a.refine,
        cv_warn: a.cv_warn,
    })
}

/// Runs the sweep; `Ok(true)` when interrupted.
pub async fn run(a: SweepArgs, stop: crate::Interrupt) -> Result<bool> {
    if a.run.shard.is_some() || a.run.start_at.is_some() {
        return Err(crate::usage(
            "--shard and --start-at split one run across processes; a sweep is not sharded (shard each of its steps with `run`)",
        ));
    }
    let sp = spec(&a)?;
    let stem = a.run.result_filename.clone().unwrap_or_else(|| inferbench_bench::sweep::default_stem(sp.dimension));
    let opts = SweepOptions { run: a.run.options(Some(stem.clone()))? };
    let show = !(a.run.disable_tqdm || a.run.quiet);
    let sweep = Benchmark::sweep(sp, opts)?
        .cancel_on(stop.stop)
        .abort_on(stop.abort)
        .observe(printer(a.run.quiet))
        .with_sinks(Arc::new(move |s| vec![Box::new(ProgressSink::new(show, s.num_prompts, s.duration_s)) as Box<dyn RecordSink>]));
    let path = sweep.sweep_path();
    let s = sweep.run().await?;
    if let Some(p) = &path {
        let dir = p.parent().unwrap_or(std::path::Path::new("."));
        let mut files: Vec<std::path::PathBuf> =
            s.steps.iter().flat_map(|x| &x.runs).filter(|r| !r.result.is_empty()).map(|r| dir.join(&r.result)).collect();
        files.push(p.clone());
        crate::store::record(&a.run.store, &files);
    }
    if let Some(p) = path.as_ref().filter(|_| a.run.html) {
        let html = crate::report::html_beside(p)?;
        if !a.run.quiet {
            outln!("HTML:    {}", html.display());
        }
    }
    if !a.run.quiet {
        outln!("\n{}", sweep_table(&s));
        outln!("{}", inferbench_report::text::sweep_conclusions(&s));
        if let Some(p) = path {
            outln!(
                "Sweep:   {}\nRuns:    {}/{stem}-*.{{json,csv,records.jsonl,timeseries.jsonl}}",
                p.display(),
                a.run.result_dir.display()
            );
        }
    }
    if let Some(a) = s.steps.iter().flat_map(|x| &x.runs).find_map(|r| r.stopped_by_alert.as_ref()) {
        return Err(crate::gate(format!("stopped by --abort-on-alert: {a}; what was measured is written")));
    }
    let interrupted = s.stopped.as_deref() == Some("interrupted");
    if !interrupted && s.steps.iter().all(|x| x.runs.iter().all(|r| r.summary.completed == 0 && r.summary.failed > 0)) {
        anyhow::bail!("every request of every step failed; the results are written");
    }
    Ok(s.stopped.as_deref() == Some("interrupted"))
}
