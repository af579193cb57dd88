//! The results store from the command line: every result a command writes is recorded (a store
//! that cannot be written warns once; the files are written regardless), `store import` indexes
//! files written before, `history` follows a metric over time.

use crate::args::{HistoryArgs, StoreArgs, StoreCmd};
use crate::usage;
use anyhow::{Context, Result};
use inferbench_store::trend::{Query, Rule};
use inferbench_store::Store;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

impl StoreArgs {
    /// The database these flags name, if any.
    pub fn path(&self) -> Option<PathBuf> {
        if self.no_store {
            return None;
        }
        self.store.clone().or_else(inferbench_store::default_path)
    }
}

static WARNED: AtomicBool = AtomicBool::new(false);

/// Records the results at `paths`; a failure is one warning per process, never an error.
pub fn record(a: &StoreArgs, paths: &[PathBuf]) {
    let Some(db) = a.path() else { return };
    let entries: Vec<_> =
        paths.iter().filter_map(|p| inferbench_bench::saved::read(p).ok().map(|r| inferbench_store::entry_of(&r, p))).collect();
    if entries.is_empty() {
        return;
    }
    if let Err(e) = Store::open(&db).and_then(|mut s| s.record(&entries)) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            eprintln!("warning: {e}; the result files are written (--no-store turns the store off)");
        }
    }
}

fn open(a: &StoreArgs) -> Result<Store> {
    let db = a.path().ok_or_else(|| usage("the results store is off (--no-store or INFERBENCH_STORE=off)"))?;
    Ok(Store::open(&db)?)
}

/// `inferbench store ...`.
pub fn run(cmd: &StoreCmd) -> Result<()> {
    match cmd {
        StoreCmd::Import { dir, store } => {
            if !dir.is_dir() {
                return Err(usage(format!("store import: {} is not a directory", dir.display())));
            }
            let mut s = open(store)?;
            let t = std::time::Instant::now();
            let n = s.import_dir(dir)?;
            outln!(
                "indexed {} results from {} in {:.2} s ({} other JSON files left out); {} results in {}",
                n.indexed,
                dir.display(),
                t.elapsed().as_secs_f64(),
                n.skipped,
                s.count()?,
                s.path().display()
            );
            Ok(())
        }
    }
}

/// `inferbench history`.
pub fn history(a: &HistoryArgs) -> Result<()> {
    let s = open(&a.store)?;
    let labels = crate::labels(&a.label)?.into_iter().collect();
    let q = Query { metric: a.metric.clone(), model: a.model.clone(), labels, fingerprint: a.workload.clone() };
    if a.window < 2 {
        return Err(usage("--window must be at least 2 (the noise of one run is not measurable)"));
    }
    let rule = Rule { window: a.window, sigmas: a.sigmas, min_change: a.min_change };
    let t = s.history(&q, rule)?;
    if t.points.is_empty() {
        let names = s.metric_names()?;
        if names.is_empty() {
            return Err(usage(format!(
                "the results store {} holds no results yet: run a benchmark, or index saved ones with `inferbench store import DIR`",
                s.path().display()
            )));
        }
        if !names.contains(&a.metric) {
            return Err(usage(format!("no stored run has the metric '{}'; stored metrics: {}", a.metric, names.join(", "))));
        }
        outln!("no stored run matches (model, labels, workload)");
        return Ok(());
    }
    outln!(
        "{} of workload {} over {} runs ({}; flagged: beyond {} sd of the previous {} runs and {:.0} % of their mean)",
        t.metric,
        t.fingerprint,
        t.points.len(),
        if t.lower_better { "lower is better" } else { "higher is better" },
        rule.sigmas,
        rule.window,
        rule.min_change * 100.0
    );
    for p in &t.points {
        let flag = match p.flagged {
            Some(c) if p.worse => format!("  REGRESSION {:+.1} %", c * 100.0),
            Some(c) => format!("  improvement {:+.1} %", c * 100.0),
            None => String::new(),
        };
        outln!("{:<22} {:>14.3}  {:<24} {}{flag}", p.time, p.value, p.id, p.tool);
    }
    if let Some(out) = &a.html {
        write_html(&t, out)?;
        outln!("wrote {}", out.display());
    }
    Ok(())
}

fn write_html(t: &inferbench_store::trend::Trend, out: &Path) -> Result<()> {
    use inferbench_report::svg::{esc, Chart, Kind, Series};
    let pts: Vec<(f64, f64)> = t.points.iter().enumerate().map(|(i, p)| ((i + 1) as f64, p.value)).collect();
    let bad: Vec<(f64, f64)> =
        t.points.iter().enumerate().filter(|(_, p)| p.flagged.is_some()).map(|(i, p)| ((i + 1) as f64, p.value)).collect();
    let mut c = Chart::new("trend", &format!("{} over time", t.metric), "run (oldest first)", &t.metric)
        .with(Series::new(&t.metric, Kind::Line, pts))
        .with(Series::new("flagged", Kind::Points, bad.clone()));
    for (x, _) in &bad {
        c = c.mark(true, *x, "flagged", "flagged");
    }
    let rows: String = t
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let f =
                p.flagged.map_or(String::new(), |c| format!("{}{:+.1} %", if p.worse { "regression " } else { "improvement " }, c * 100.0));
            format!(
                "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
                i + 1,
                esc(&p.time),
                p.value,
                esc(&p.tool),
                esc(&f)
            )
        })
        .collect();
    let page = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{m} trend</title><style>body{{font:14px system-ui,sans-serif;margin:24px auto;max-width:1000px}}\
         svg text{{font-size:11px}}svg .grid{{stroke:#eee}}svg .frame{{fill:none;stroke:#999}}svg .mark line{{stroke:#d62728;stroke-dasharray:5 3}}svg .mark text{{fill:#d62728}}\
         td,th{{border:1px solid #ddd;padding:2px 8px}}table{{border-collapse:collapse}}</style></head><body><h1>{m}, workload {fp}</h1>{chart}\
         <table><tr><th>run</th><th>time</th><th>value</th><th>tool</th><th>flag</th></tr>{rows}</table></body></html>\n",
        m = esc(&t.metric),
        fp = esc(&t.fingerprint),
        chart = c.render()
    );
    inferbench_report::write_atomic(out, page.as_bytes()).with_context(|| format!("--html {}", out.display()))
}
