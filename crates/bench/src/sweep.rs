//! A sweep: one full serving run per load level (and per repeat), each with its own files, then
//! the analysis of `core::sweep` — knee, SLO limit, confidence intervals. The sweep file is
//! rewritten after every step, so an interrupted sweep keeps what it measured. Every step's spec
//! is built in code from the sweep's spec.

use crate::error::BenchError;
use crate::observer::{silent, Event, Observer};
use crate::serving::{Output, RunOptions, Serving};
use inferbench_core::result::{Header, ResultKind};
use inferbench_core::sweep::{find_knee, slo_limit, Dimension, SloCheck, Stat, StepRun, StepStats, SweepResult, SweepSpec, SweepStep};
use inferbench_core::{RecordSink, RunSpec};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Makes the extra sinks of each run (a progress bar per step, say).
pub type SinkFactory = Arc<dyn Fn(&RunSpec) -> Vec<Box<dyn RecordSink>> + Send + Sync>;

/// How a sweep is carried out (nothing here shapes the workload).
#[derive(Clone)]
pub struct SweepOptions {
    /// Options every run gets; its `output.stem` is the sweep's stem, each run adds `-c8` etc.
    pub run: RunOptions,
}

/// A load value as it appears in file names: `c8`, `r2.5`.
pub fn file_label(dim: Dimension, load: f64) -> String {
    match dim {
        Dimension::Concurrency => format!("c{load}"),
        Dimension::Rate => format!("r{load}"),
    }
}

/// A default stem for a sweep's files.
pub fn default_stem(dim: Dimension) -> String {
    let kind = match dim {
        Dimension::Concurrency => "concurrency",
        Dimension::Rate => "rate",
    };
    format!("sweep-{kind}-{}", inferbench_core::time::compact_now())
}

/// A sweep, checked and ready to run.
pub struct Sweep {
    spec: SweepSpec,
    opts: SweepOptions,
    cancel: CancellationToken,
    abort: CancellationToken,
    observer: Observer,
    sinks: Option<SinkFactory>,
}

impl Sweep {
    /// Checks the sweep's settings and its base run.
    pub fn new(mut spec: SweepSpec, opts: SweepOptions) -> Result<Self, BenchError> {
        let flag = match spec.dimension {
            Dimension::Concurrency => "--concurrencies",
            Dimension::Rate => "--rates",
        };
        let list = spec.loads.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
        if spec.loads.is_empty() {
            return Err(BenchError::invalid(format!("invalid {flag}: no loads given")));
        }
        if let Some(w) = spec.loads.windows(2).find(|w| w[1] <= w[0]) {
            return Err(BenchError::invalid(format!("invalid {flag} '{list}': loads must increase ({} comes after {})", w[1], w[0])));
        }
        if let Some(l) = spec.loads.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
            return Err(BenchError::invalid(format!("invalid {flag} '{list}': {l} is not a positive number")));
        }
        match spec.dimension {
            Dimension::Concurrency => {
                if let Some(c) = spec.loads.iter().find(|c| c.fract() != 0.0) {
                    return Err(BenchError::invalid(format!("invalid --concurrencies '{list}': {c} is not a whole number")));
                }
                if spec.run.max_concurrency.is_some() {
                    return Err(BenchError::invalid("--max-concurrency is set per step by --concurrencies; leave it out"));
                }
            }
            Dimension::Rate => {
                if spec.run.request_rate.is_some() {
                    return Err(BenchError::invalid("--request-rate is set per step by --rates; leave it out"));
                }
                if spec.run.ramp_up.is_some() {
                    return Err(BenchError::invalid("--ramp-up-strategy cannot be combined with --rates (each step runs at one rate)"));
                }
            }
        }
        // Every percentile an SLO names must be computed by the runs.
        for r in &spec.slos {
            if let Stat::Percentile(p) = r.stat {
                if !spec.run.percentiles.iter().any(|q| (q - p).abs() < 1e-9) && (p - 50.0).abs() > 1e-9 {
                    spec.run.percentiles.push(p);
                }
            }
        }
        if !(0.0..=1.0).contains(&spec.min_success_rate) {
            return Err(BenchError::invalid(format!(
                "invalid --min-success-rate '{}': must be a percentage between 0 and 100",
                spec.min_success_rate * 100.0
            )));
        }
        if let Some(f) = spec.stop_latency_factor.filter(|f| !(f.is_finite() && *f > 1.0)) {
            return Err(BenchError::invalid(format!("invalid --stop-latency-factor '{f}': must be a number above 1")));
        }
        if spec.repeat == 0 {
            return Err(BenchError::invalid("invalid --repeat '0': must be at least 1"));
        }
        if spec.stop_on_slo && spec.slos.is_empty() {
            return Err(BenchError::invalid("--stop-on-slo needs at least one --slo (e.g. --slo ttft:p99:500) to stop on"));
        }
        crate::spec::seconds("cooldown", spec.cooldown_s, false)?;
        // The base run must be valid at the first load.
        let mut first = spec.step_spec(spec.loads[0]);
        crate::spec::normalize(&mut first)?;
        spec.run.backend = first.backend;
        spec.run.endpoint = first.endpoint;
        spec.run.ignore_eos = first.ignore_eos;
        if let Some(o) = &opts.run.output {
            o.check()?;
            std::fs::create_dir_all(&o.dir)
                .map_err(|e| BenchError::invalid(format!("--result-dir: cannot create {}: {e}", o.dir.display())))?;
        }
        Ok(Self { spec, opts, cancel: CancellationToken::new(), abort: CancellationToken::new(), observer: silent(), sinks: None })
    }

    /// Stops the sweep when `token` is cancelled; the step in progress is kept, marked.
    pub fn cancel_on(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Cuts the grace period of the run in progress short when `token` is cancelled.
    pub fn abort_on(mut self, token: CancellationToken) -> Self {
        self.abort = token;
        self
    }

    /// Receives step progress and notes.
    pub fn observe(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
    }

    /// Extra sinks for each run.
    pub fn with_sinks(mut self, f: SinkFactory) -> Self {
        self.sinks = Some(f);
        self
    }

    /// The sweep file, when files are written.
    pub fn sweep_path(&self) -> Option<PathBuf> {
        self.opts.run.output.as_ref().map(|o| o.dir.join(format!("{}.sweep.json", o.stem)))
    }

    /// Runs the sweep. An interrupted sweep returns what it measured, `stopped: "interrupted"`.
    pub async fn run(self) -> Result<SweepResult, BenchError> {
        let mut header = Header::now(ResultKind::Sweep, crate::tool_info());
        header.labels = self.opts.run.labels.clone();
        let mut w = Sweeper { sw: &self, interrupted: false, runs_done: 0, notes_seen: Arc::default() };
        let mut s = SweepResult { header, sweep: self.spec.clone(), steps: Vec::new(), knee: None, slo_limit: None, stopped: None };
        let total = self.spec.loads.len();
        let mut any = false;
        for (i, &load) in self.spec.loads.iter().enumerate() {
            let Some(step) = w.step(load, &format!("step {}/{total}", i + 1)).await? else { break };
            any = true;
            let reason = w.stop_reason(&s, &step);
            s.steps.push(step);
            analyse(&mut s);
            let stopping = (reason.is_some() && i + 1 < total) || w.interrupted;
            if stopping {
                s.stopped = reason;
            }
            self.save(&mut s)?;
            if stopping {
                break;
            }
        }
        // Bisect between the SLO limit and the first step past it.
        for k in 0..self.spec.refine {
            if w.interrupted {
                break;
            }
            let Some(lo) = s.slo_limit else { break };
            let Some(hi) = s.steps.iter().find(|x| x.load > lo).map(|x| x.load) else { break };
            let Some(mid) = midpoint(self.spec.dimension, lo, hi) else { break };
            let Some(mut step) = w.step(mid, &format!("refine {}/{}", k + 1, self.spec.refine)).await? else { break };
            step.refined = true;
            let at = s.steps.partition_point(|x| x.load < mid);
            s.steps.insert(at, step);
            analyse(&mut s);
            if w.interrupted {
                s.stopped = Some("interrupted".to_owned());
            }
            self.save(&mut s)?;
        }
        if !any {
            return Err(BenchError::Interrupted("before the sweep's first run finished".into()));
        }
        Ok(s)
    }

    fn save(&self, s: &mut SweepResult) -> Result<(), BenchError> {
        s.header.end();
        match self.sweep_path() {
            Some(p) => crate::saved::write(&p, &inferbench_core::SavedResult::Sweep(Box::new(s.clone()))),
            None => Ok(()),
        }
    }
}

/// Recomputes the knee (on the planned grid: refinement points are too close together for the
/// efficiency rule) and the SLO limit (on every step, refined ones included). An interrupted
/// step never counts as meeting the SLOs.
fn analyse(s: &mut SweepResult) {
    let grid: Vec<&SweepStep> = s.steps.iter().filter(|x| !x.refined).collect();
    let loads: Vec<f64> = grid.iter().map(|x| x.load).collect();
    let thr: Vec<f64> = grid.iter().map(|x| x.stats.output_throughput.mean).collect();
    let lat: Vec<f64> = grid.iter().map(|x| x.stats.knee_latency_ms.mean).collect();
    s.knee = find_knee(&loads, &thr, &lat).map(|i| loads[i]);
    let passes: Vec<bool> = s.steps.iter().map(|x| x.passes(s.sweep.min_success_rate)).collect();
    s.slo_limit = slo_limit(&passes).map(|i| s.steps[i].load);
}

/// The state of a sweep in progress.
struct Sweeper<'a> {
    sw: &'a Sweep,
    interrupted: bool,
    runs_done: usize,
    /// Notes already passed on, numbers blanked (see [`once_per_note`]).
    notes_seen: Arc<Mutex<HashSet<String>>>,
}

/// An observer that passes each note on once per sweep: the dataset's notes ("prompts repeat")
/// hold at every step, and only their counts change.
fn once_per_note(inner: Observer, seen: Arc<Mutex<HashSet<String>>>) -> Observer {
    Arc::new(move |e| {
        if let Event::Note(n) = e {
            let key: String = n.chars().filter(|c| !c.is_ascii_digit()).collect();
            let first = seen.lock().map_or(true, |mut s| s.insert(key));
            if !first {
                return;
            }
        }
        inner(e)
    })
}

impl Sweeper<'_> {
    /// Runs every repeat of one load; `None` when interrupted before a run finished.
    async fn step(&mut self, load: f64, title: &str) -> Result<Option<SweepStep>, BenchError> {
        let sp = &self.sw.spec;
        let cooldown = Duration::from_secs_f64(sp.cooldown_s);
        let mut runs = Vec::with_capacity(sp.repeat);
        for rep in 0..sp.repeat {
            if self.runs_done > 0 && !cooldown.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(cooldown) => {}
                    () = self.sw.cancel.cancelled() => { self.interrupted = true; break; }
                }
            }
            let spec = sp.repeat_spec(load, rep);
            tracing::info!(step = title, load, repeat = rep + 1, seed = spec.seed, "sweep step");
            let size = spec.num_prompts.map_or_else(|| format!("{}s", spec.duration_s.unwrap_or_default()), |n| format!("{n} requests"));
            (self.sw.observer)(&Event::StepStarted {
                title,
                dimension: sp.dimension,
                load,
                size: &size,
                repeat: (sp.repeat > 1).then_some((rep + 1, sp.repeat)),
            });
            let mut opts = self.sw.opts.run.clone();
            opts.reuse_prompts = true;
            let suffix = if sp.repeat > 1 { format!("-{}", rep + 1) } else { String::new() };
            opts.output =
                opts.output.map(|o| Output { stem: format!("{}-{}{suffix}", o.stem, file_label(sp.dimension, load)), dir: o.dir });
            let file = opts.output.as_ref().map(|o| format!("{}.json", o.stem)).unwrap_or_default();
            let extra = self.sw.sinks.as_ref().map(|f| f(&spec)).unwrap_or_default();
            let run = Serving::new(spec, opts)?
                .with_sinks(extra)
                .cancel_on(self.sw.cancel.clone())
                .abort_on(self.sw.abort.clone())
                .observe(once_per_note(self.sw.observer.clone(), self.notes_seen.clone()));
            let started = Instant::now();
            let result = match run.run().await {
                Ok(r) => r,
                Err(BenchError::Interrupted(_)) => {
                    self.interrupted = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            let wall_s = started.elapsed().as_secs_f64();
            self.runs_done += 1;
            self.interrupted |= result.interrupted;
            let stopped_by_alert = result
                .monitors
                .as_ref()
                .and_then(|m| m.alerts.iter().find(|a| a.aborted))
                .map(|a| format!("{} at {:.1} s", a.rule, a.at_s));
            runs.push(StepRun {
                stopped_by_alert,
                result: file,
                run_id: result.header.run_id.clone(),
                overhead_s: (wall_s - result.summary.duration_s).max(0.0),
                summary: result.summary,
                wall_s,
                interrupted: result.interrupted,
            });
            if self.interrupted {
                break;
            }
        }
        if runs.is_empty() {
            return Ok(None);
        }
        let step = make_step(load, runs, sp)?;
        (self.sw.observer)(&Event::StepDone { dimension: sp.dimension, step: &step, cv_warn: sp.cv_warn });
        Ok(Some(step))
    }

    /// Why the sweep should stop after `last`, if it should.
    fn stop_reason(&self, s: &SweepResult, last: &SweepStep) -> Option<String> {
        let sp = &self.sw.spec;
        let label = sp.dimension.label(last.load);
        // The lowest load is the first step (or this one, when it is the first).
        let first_lat = s.steps.first().unwrap_or(last).stats.knee_latency_ms.mean;
        if self.interrupted {
            Some("interrupted".to_owned())
        } else if last.stats.success_rate.mean < sp.min_success_rate {
            Some(format!(
                "success rate {:.1}% fell below {}% at {label}",
                last.stats.success_rate.mean * 100.0,
                sp.min_success_rate * 100.0
            ))
        } else if sp.stop_on_slo && last.slo.iter().any(|c| !c.met) {
            let broken: Vec<&str> = last.slo.iter().filter(|c| !c.met).map(|c| c.rule.as_str()).collect();
            Some(format!("SLO broken at {label}: {}", broken.join(", ")))
        } else {
            sp.stop_latency_factor.filter(|f| first_lat > 0.0 && last.stats.knee_latency_ms.mean > f * first_lat).map(|f| {
                format!(
                    "median {} {:.1} ms is over {f}x the lowest load's {:.1} ms at {label}",
                    sp.dimension.knee_latency().short(),
                    last.stats.knee_latency_ms.mean,
                    first_lat
                )
            })
        }
    }
}

/// The load halfway between a passing and a failing one, if there is one to try: whole numbers
/// for concurrency, three significant digits for rates.
pub fn midpoint(dim: Dimension, lo: f64, hi: f64) -> Option<f64> {
    let mid = match dim {
        Dimension::Concurrency => ((lo + hi) / 2.0).floor(),
        Dimension::Rate => {
            let m = (lo + hi) / 2.0;
            let scale = 10f64.powi(2 - m.log10().floor() as i32);
            (m * scale).round() / scale
        }
    };
    (mid > lo && mid < hi).then_some(mid)
}

/// A sweep assembled from separate run results of one workload at several loads (merged shards,
/// say, or runs made one by one): what `plan` and `report` read when no `sweep` made them. Runs at
/// the same load become repeats of one step. The runs must share everything but the load: a
/// concurrency (`max_concurrency` set, infinite rate) or a request rate in every run.
pub fn from_runs(paths: &[PathBuf]) -> Result<SweepResult, BenchError> {
    let mut runs = Vec::new();
    for p in paths {
        match crate::saved::read(p)? {
            inferbench_core::SavedResult::Run(r) => runs.push((p, *r)),
            other => {
                return Err(BenchError::invalid(format!(
                    "{}: {}; give one sweep, or several runs of one workload at different loads",
                    p.display(),
                    other.kind().described()
                )))
            }
        }
    }
    let Some((first_path, first)) = runs.first() else { return Err(BenchError::invalid("no results given")) };
    let dimension = if runs.iter().all(|(_, r)| r.spec.max_concurrency.is_some() && r.spec.request_rate.is_none()) {
        Dimension::Concurrency
    } else if runs.iter().all(|(_, r)| r.spec.request_rate.is_some()) {
        Dimension::Rate
    } else {
        return Err(BenchError::invalid(
            "the runs do not vary one load: each needs --max-concurrency with an infinite rate, or each a --request-rate",
        ));
    };
    let load_of = |r: &inferbench_core::BenchmarkResult| match dimension {
        Dimension::Concurrency => r.spec.max_concurrency.unwrap_or(0) as f64,
        Dimension::Rate => r.spec.request_rate.unwrap_or(0.0),
    };
    let workload = |r: &inferbench_core::BenchmarkResult| {
        let mut s = r.spec.clone();
        (s.max_concurrency, s.request_rate, s.num_prompts, s.duration_s, s.seed) = (None, None, None, None, 0);
        serde_json::to_value(s).unwrap_or_default()
    };
    let base = workload(first);
    let mut by_load: std::collections::BTreeMap<u64, (f64, Vec<StepRun>)> = std::collections::BTreeMap::new();
    for (p, r) in &runs {
        if let Some(d) = crate::merge::first_difference("", &base, &workload(r)) {
            return Err(BenchError::invalid(format!(
                "{} and {} are not one workload at two loads: {d}",
                first_path.display(),
                p.display()
            )));
        }
        let load = load_of(r);
        by_load.entry(load.to_bits()).or_insert((load, Vec::new())).1.push(StepRun {
            result: p.display().to_string(),
            run_id: r.header.run_id.clone(),
            summary: r.summary.clone(),
            wall_s: r.summary.duration_s,
            overhead_s: 0.0,
            interrupted: r.interrupted,
            stopped_by_alert: None,
        });
    }
    let mut loads: Vec<(f64, Vec<StepRun>)> = by_load.into_values().collect();
    loads.sort_by(|a, b| a.0.total_cmp(&b.0));
    let spec = SweepSpec {
        dimension,
        loads: loads.iter().map(|(l, _)| *l).collect(),
        run: first.spec.clone(),
        slos: Vec::new(),
        min_success_rate: 0.99,
        stop_on_slo: false,
        stop_latency_factor: None,
        repeat: loads.iter().map(|(_, r)| r.len()).max().unwrap_or(1),
        same_seed: false,
        cooldown_s: 0.0,
        refine: 0,
        cv_warn: 0.1,
    };
    let mut header = Header::now(ResultKind::Sweep, crate::tool_info());
    header.labels = first.header.labels.clone();
    let steps = loads.into_iter().map(|(load, rs)| make_step(load, rs, &spec)).collect::<Result<Vec<_>, _>>()?;
    let mut s = SweepResult { header, sweep: spec, steps, knee: None, slo_limit: None, stopped: None };
    analyse(&mut s);
    Ok(s)
}

fn make_step(load: f64, runs: Vec<StepRun>, sp: &SweepSpec) -> Result<SweepStep, BenchError> {
    let summaries: Vec<_> = runs.iter().map(|r| &r.summary).collect();
    let stats = StepStats::of(&summaries, sp.dimension);
    let noisy = stats.noisy(sp.cv_warn).into_iter().map(str::to_owned).collect();
    let mut step = SweepStep { load, runs, stats, slo: Vec::new(), noisy, refined: false };
    for r in &sp.slos {
        let v = step.rule_value(r).map_err(|e| BenchError::invalid(e.to_string()))?;
        step.slo.push(SloCheck { rule: r.to_string(), value_ms: v, met: v <= r.limit_ms });
    }
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midpoints_between_a_pass_and_a_fail() {
        assert_eq!(midpoint(Dimension::Concurrency, 4.0, 8.0), Some(6.0));
        assert_eq!(midpoint(Dimension::Concurrency, 4.0, 7.0), Some(5.0));
        assert_eq!(midpoint(Dimension::Concurrency, 5.0, 6.0), None);
        assert_eq!(midpoint(Dimension::Rate, 10.0, 20.0), Some(15.0));
        assert_eq!(midpoint(Dimension::Rate, 1.0, 1.001), None);
        assert_eq!(midpoint(Dimension::Rate, 0.1, 0.2), Some(0.15));
        assert_eq!(midpoint(Dimension::Rate, 100.0, 133.0), Some(117.0));
    }

    #[test]
    fn default_request_counts_scale_with_load() {
        use inferbench_core::sweep::default_prompts;
        assert_eq!(default_prompts(Dimension::Concurrency, 1.0), 32);
        assert_eq!(default_prompts(Dimension::Concurrency, 64.0), 512);
        assert_eq!(default_prompts(Dimension::Rate, 0.5), 32);
        assert_eq!(default_prompts(Dimension::Rate, 10.0), 200);
    }
}
