//! `inferbench sweep`: one full run per load level (and per repeat), each with its own files, then
//! the analysis of `core::sweep` — knee, SLO limit, confidence intervals — in one table and one
//! `*.sweep.json` that `plan` and `compare` read. The sweep file is rewritten after every step, so
//! an interrupted sweep keeps what it measured.

use crate::args::SweepArgs;
use crate::run::{parse_percentiles, tool_info, RunPlan};
use anyhow::{anyhow, bail, Context, Result};
use inferbench_core::sweep::{
    find_knee, parse_loads, slo_limit, Dimension, SloCheck, SloRule, Stat, StepRun, StepStats, SweepResult, SweepStep, SWEEP_KIND,
};
use inferbench_core::SCHEMA_VERSION;
use inferbench_report::{sweep_table, write_atomic};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Requests per step when neither --num-prompts nor --duration is given: enough for every
/// concurrency slot to turn over several times, or about 20 seconds of arrivals at a rate.
pub fn default_prompts(dim: Dimension, load: f64) -> u64 {
    match dim {
        Dimension::Concurrency => ((load * 8.0) as u64).max(32),
        Dimension::Rate => ((load * 20.0).ceil() as u64).max(32),
    }
}

/// A load value as it appears in file names: `c8`, `r2.5`.
fn file_label(dim: Dimension, load: f64) -> String {
    match dim {
        Dimension::Concurrency => format!("c{load}"),
        Dimension::Rate => format!("r{load}"),
    }
}

/// The sweep's settings, checked before anything runs.
struct Settings {
    dim: Dimension,
    loads: Vec<f64>,
    rules: Vec<SloRule>,
    min_success: f64,
    stop_on_slo: bool,
    latency_factor: Option<f64>,
    repeat: usize,
    cooldown: Duration,
    cv_warn: f64,
    sweep_path: PathBuf,
    stem: String,
}

fn settings(a: &mut SweepArgs) -> Result<Settings> {
    let (dim, list, flag) = match (&a.concurrencies, &a.rates) {
        (Some(c), _) => (Dimension::Concurrency, c.clone(), "--concurrencies"),
        (None, Some(r)) => (Dimension::Rate, r.clone(), "--rates"),
        (None, None) => bail!("give the loads to sweep: --concurrencies 1,2,4,8 or --rates 1,2,4 (or a ramp like 1..64)"),
    };
    let loads = parse_loads(&list).map_err(|e| anyhow!("invalid {flag} '{list}': {e}"))?;
    if let Some(w) = loads.windows(2).find(|w| w[1] <= w[0]) {
        bail!("invalid {flag} '{list}': loads must increase ({} comes after {})", w[1], w[0]);
    }
    match dim {
        Dimension::Concurrency => {
            if let Some(c) = loads.iter().find(|c| c.fract() != 0.0) {
                bail!("invalid --concurrencies '{list}': {c} is not a whole number");
            }
            if a.run.max_concurrency.is_some() {
                bail!("--max-concurrency is set per step by --concurrencies; leave it out");
            }
        }
        Dimension::Rate => {
            if a.run.request_rate.trim() != "inf" {
                bail!("--request-rate is set per step by --rates; leave it out");
            }
            if a.run.ramp_up_strategy.is_some() {
                bail!("--ramp-up-strategy cannot be combined with --rates (each step runs at one rate)");
            }
        }
    }
    let rules = a.slo.iter().map(|s| SloRule::parse(s).map_err(|e| anyhow!("invalid --slo '{s}': {e}"))).collect::<Result<Vec<_>>>()?;
    // Every percentile an SLO names must be computed by the runs.
    let mut pcts = parse_percentiles(&a.run.metric_percentiles)?;
    for r in &rules {
        if let Stat::Percentile(p) = r.stat {
            if !pcts.iter().any(|q| (q - p).abs() < 1e-9) && (p - 50.0).abs() > 1e-9 {
                pcts.push(p);
            }
        }
    }
    a.run.metric_percentiles = pcts.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
    if !(0.0..=100.0).contains(&a.min_success_rate) {
        bail!("invalid --min-success-rate '{}': must be a percentage between 0 and 100", a.min_success_rate);
    }
    if let Some(f) = a.stop_latency_factor.filter(|f| !(f.is_finite() && *f > 1.0)) {
        bail!("invalid --stop-latency-factor '{f}': must be a number above 1");
    }
    if a.repeat == 0 {
        bail!("invalid --repeat '0': must be at least 1");
    }
    if !(a.cooldown.is_finite() && a.cooldown >= 0.0) {
        bail!("invalid --cooldown '{}': must be a non-negative number of seconds", a.cooldown);
    }
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let compact: String = date.chars().filter(char::is_ascii_digit).collect();
    let kind = match dim {
        Dimension::Concurrency => "concurrency",
        Dimension::Rate => "rate",
    };
    let stem = a.run.result_filename.clone().unwrap_or_else(|| format!("sweep-{kind}-{}-{}", &compact[..8], &compact[8..14]));
    std::fs::create_dir_all(&a.run.result_dir).with_context(|| format!("--result-dir: cannot create {}", a.run.result_dir.display()))?;
    Ok(Settings {
        dim,
        loads,
        rules,
        min_success: a.min_success_rate / 100.0,
        stop_on_slo: a.stop_on_slo,
        latency_factor: a.stop_latency_factor,
        repeat: a.repeat,
        cooldown: Duration::from_secs_f64(a.cooldown),
        cv_warn: a.cv_warn,
        sweep_path: a.run.result_dir.join(format!("{stem}.sweep.json")),
        stem,
    })
}

/// Recomputes the knee (on the planned grid: refinement points are too close together for the
/// efficiency rule) and the SLO limit (on every step, refined ones included).
fn analyse(s: &mut SweepResult) {
    let grid: Vec<&SweepStep> = s.steps.iter().filter(|x| !x.refined).collect();
    let loads: Vec<f64> = grid.iter().map(|x| x.load).collect();
    let thr: Vec<f64> = grid.iter().map(|x| x.stats.output_throughput.mean).collect();
    let lat: Vec<f64> = grid.iter().map(|x| x.stats.knee_latency_ms.mean).collect();
    s.knee = find_knee(&loads, &thr, &lat).map(|i| loads[i]);
    let passes: Vec<bool> = s.steps.iter().map(|x| x.passes(s.min_success_rate)).collect();
    s.slo_limit = slo_limit(&passes).map(|i| s.steps[i].load);
}

fn save(s: &SweepResult, path: &std::path::Path) -> Result<()> {
    let json = serde_json::to_vec_pretty(s)?;
    write_atomic(path, &json).map_err(|e| anyhow!("writing {}: {e}", path.display()))
}

/// The state of a sweep in progress.
struct Sweeper<'a> {
    a: &'a SweepArgs,
    st: &'a Settings,
    stop: CancellationToken,
    date: String,
    sweep: Option<SweepResult>,
    interrupted: bool,
    runs_done: usize,
}

impl Sweeper<'_> {
    /// Runs every repeat of one load; `None` when interrupted before a run finished.
    async fn step(&mut self, load: f64, title: &str) -> Result<Option<SweepStep>> {
        let st = self.st;
        let mut runs = Vec::with_capacity(st.repeat);
        for rep in 0..st.repeat {
            if self.runs_done > 0 && !st.cooldown.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(st.cooldown) => {}
                    () = self.stop.cancelled() => { self.interrupted = true; break; }
                }
            }
            let mut args = self.a.run.clone();
            match st.dim {
                Dimension::Concurrency => args.max_concurrency = Some(load as u64),
                Dimension::Rate => args.request_rate = load.to_string(),
            }
            if args.num_prompts.is_none() && args.duration.is_none() {
                args.num_prompts = Some(default_prompts(st.dim, load));
            }
            let suffix = if st.repeat > 1 { format!("-{}", rep + 1) } else { String::new() };
            args.result_filename = Some(format!("{}-{}{suffix}", st.stem, file_label(st.dim, load)));
            if !args.quiet {
                let reps = if st.repeat > 1 { format!(", repeat {}/{}", rep + 1, st.repeat) } else { String::new() };
                let n = args.num_prompts.map_or_else(|| format!("{}s", args.duration.unwrap_or_default()), |n| format!("{n} requests"));
                eprintln!("{title}: {} ({n}{reps})", st.dim.label(load));
            }
            let plan = RunPlan::from_args(&args)?.without_summary().reusing_prompts();
            let json = plan.paths().json.clone();
            let started = Instant::now();
            let result = plan.execute(self.stop.clone()).await?;
            let wall_s = started.elapsed().as_secs_f64();
            self.runs_done += 1;
            self.interrupted |= result.interrupted;
            self.sweep.get_or_insert_with(|| SweepResult {
                schema_version: SCHEMA_VERSION,
                kind: SWEEP_KIND.into(),
                tool: tool_info(),
                date: self.date.clone(),
                dimension: st.dim,
                spec: result.spec.clone(),
                slos: st.rules.clone(),
                min_success_rate: st.min_success,
                repeat: st.repeat,
                cooldown_s: st.cooldown.as_secs_f64(),
                steps: Vec::new(),
                knee: None,
                slo_limit: None,
                stopped: None,
            });
            runs.push(StepRun {
                result: json.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                overhead_s: (wall_s - result.summary.duration_s).max(0.0),
                summary: result.summary,
                wall_s,
            });
            if self.interrupted {
                break;
            }
        }
        if runs.is_empty() {
            return Ok(None);
        }
        let step = make_step(load, runs, st)?;
        if !self.a.run.quiet {
            eprintln!("  {}", step_line(&step, st.dim));
            if !step.noisy.is_empty() {
                eprintln!(
                    "  WARNING: repeats at {} vary more than {:.0}% (coefficient of variation) in {}; consider more requests or --repeat",
                    st.dim.label(load),
                    st.cv_warn * 100.0,
                    step.noisy.join(", ")
                );
            }
        }
        Ok(Some(step))
    }

    /// Why the sweep should stop after `last`, if it should.
    fn stop_reason(&self, s: &SweepResult, last: &SweepStep) -> Option<String> {
        let st = self.st;
        let label = st.dim.label(last.load);
        // The lowest load is the first step (or this one, when it is the first).
        let first_lat = s.steps.first().unwrap_or(last).stats.knee_latency_ms.mean;
        if self.interrupted {
            Some("interrupted".to_owned())
        } else if last.stats.success_rate.mean < st.min_success {
            Some(format!("success rate {:.1}% fell below {}% at {label}", last.stats.success_rate.mean * 100.0, st.min_success * 100.0))
        } else if st.stop_on_slo && last.slo.iter().any(|c| !c.met) {
            let broken: Vec<&str> = last.slo.iter().filter(|c| !c.met).map(|c| c.rule.as_str()).collect();
            Some(format!("SLO broken at {label}: {}", broken.join(", ")))
        } else {
            st.latency_factor.filter(|f| first_lat > 0.0 && last.stats.knee_latency_ms.mean > f * first_lat).map(|f| {
                format!(
                    "median {} {:.1} ms is over {f}x the lowest load's {:.1} ms at {label}",
                    st.dim.knee_latency().short(),
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

/// Runs the sweep; `Ok(false)` when interrupted.
pub async fn run(mut a: SweepArgs, stop: CancellationToken) -> Result<bool> {
    let st = settings(&mut a)?;
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut w = Sweeper { a: &a, st: &st, stop, date, sweep: None, interrupted: false, runs_done: 0 };
    let total = st.loads.len();
    for (i, &load) in st.loads.iter().enumerate() {
        let Some(step) = w.step(load, &format!("step {}/{total}", i + 1)).await? else { break };
        let mut s = w.sweep.take().expect("a run finished");
        let reason = w.stop_reason(&s, &step);
        s.steps.push(step);
        analyse(&mut s);
        let stopping = (reason.is_some() && i + 1 < total) || w.interrupted;
        if stopping {
            s.stopped = reason;
        }
        save(&s, &st.sweep_path)?;
        w.sweep = Some(s);
        if stopping {
            break;
        }
    }
    // Bisect between the SLO limit and the first step past it.
    for k in 0..a.refine {
        if w.interrupted {
            break;
        }
        let Some(s) = w.sweep.as_ref() else { break };
        let Some(lo) = s.slo_limit else { break };
        let Some(hi) = s.steps.iter().find(|x| x.load > lo).map(|x| x.load) else { break };
        let Some(mid) = midpoint(st.dim, lo, hi) else { break };
        let Some(mut step) = w.step(mid, &format!("refine {}/{}", k + 1, a.refine)).await? else { break };
        step.refined = true;
        let mut s = w.sweep.take().expect("a run finished");
        let at = s.steps.partition_point(|x| x.load < mid);
        s.steps.insert(at, step);
        analyse(&mut s);
        if w.interrupted {
            s.stopped = Some("interrupted".to_owned());
        }
        save(&s, &st.sweep_path)?;
        w.sweep = Some(s);
    }
    let interrupted = w.interrupted;
    let Some(s) = w.sweep else {
        bail!("the sweep was interrupted before its first run finished");
    };
    if !a.run.quiet {
        println!("\n{}", sweep_table(&s));
        println!("{}", conclusions(&s));
        println!("Sweep:   {}\nRuns:    {}/{}-*.{{json,csv,records.jsonl}}", st.sweep_path.display(), a.run.result_dir.display(), st.stem);
    }
    Ok(!interrupted)
}

fn make_step(load: f64, runs: Vec<StepRun>, st: &Settings) -> Result<SweepStep> {
    let summaries: Vec<_> = runs.iter().map(|r| &r.summary).collect();
    let stats = StepStats::of(&summaries, st.dim);
    let noisy = stats.noisy(st.cv_warn).into_iter().map(str::to_owned).collect();
    let mut step = SweepStep { load, runs, stats, slo: Vec::new(), noisy, refined: false };
    for r in &st.rules {
        let v = step.rule_value(r)?;
        step.slo.push(SloCheck { rule: r.to_string(), value_ms: v, met: v <= r.limit_ms });
    }
    Ok(step)
}

fn step_line(step: &SweepStep, dim: Dimension) -> String {
    let st = &step.stats;
    let slo = if step.slo.is_empty() {
        String::new()
    } else if step.slo.iter().all(|c| c.met) {
        ", SLOs met".to_owned()
    } else {
        let broken: Vec<String> = step.slo.iter().filter(|c| !c.met).map(|c| format!("{} ({:.1})", c.rule, c.value_ms)).collect();
        format!(", SLO broken: {}", broken.join(", "))
    };
    format!(
        "{}: {:.1}% ok, {:.2} req/s, {:.1} out tok/s, TTFT p50 {:.1} ms, {} p50 {:.1} ms{slo}",
        dim.label(step.load),
        st.success_rate.mean * 100.0,
        st.request_throughput.mean,
        st.output_throughput.mean,
        st.ttft_median_ms.mean,
        dim.knee_latency().short(),
        st.knee_latency_ms.mean
    )
}

/// The answers, in words.
pub fn conclusions(s: &SweepResult) -> String {
    let mut out = Vec::new();
    match s.knee {
        Some(k) => out.push(format!(
            "Knee: {} (beyond it throughput grew by less than half as fast as the load while latency climbed)",
            s.dimension.label(k)
        )),
        None => out.push("Knee: not reached (throughput still grew with load at the last step)".to_owned()),
    }
    let what = if s.slos.is_empty() {
        format!("success rate >= {}%", s.min_success_rate * 100.0)
    } else {
        format!(
            "{} and success rate >= {}%",
            s.slos.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            s.min_success_rate * 100.0
        )
    };
    match s.slo_limit {
        Some(l) => {
            let step = s.steps.iter().find(|x| x.load == l).expect("the limit is a step");
            out.push(format!(
                "Highest load meeting {what}: {} ({:.2} req/s, {:.1} output tok/s)",
                s.dimension.label(l),
                step.stats.request_throughput.mean,
                step.stats.output_throughput.mean
            ));
        }
        None => out.push(format!("No step met {what}")),
    }
    if let Some(r) = &s.stopped {
        out.push(format!("Stopped early: {r}"));
    }
    let overheads: Vec<f64> = s.steps.iter().flat_map(|x| x.runs.iter().map(|r| r.overhead_s * 1e3)).collect();
    if !overheads.is_empty() {
        let mut o = overheads.clone();
        o.sort_by(f64::total_cmp);
        out.push(format!(
            "Setup per run (dataset, pre-flight, files; cool-down {} s not included): median {:.0} ms, max {:.0} ms",
            s.cooldown_s,
            o[o.len() / 2],
            o[o.len() - 1]
        ));
    }
    out.join("\n")
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
        assert_eq!(default_prompts(Dimension::Concurrency, 1.0), 32);
        assert_eq!(default_prompts(Dimension::Concurrency, 64.0), 512);
        assert_eq!(default_prompts(Dimension::Rate, 0.5), 32);
        assert_eq!(default_prompts(Dimension::Rate, 10.0), 200);
    }
}
