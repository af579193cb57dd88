//! `inferbench run`: flags become a spec (or `--spec FILE` gives one), the library runs it, and
//! this module prints the summary.

use crate::args::{ArrivalArg, DatasetArgs, RampArg, RunArgs};
use crate::progress::ProgressSink;
use crate::{labels, usage};
use anyhow::{Context, Result};
use inferbench_bench::serving::{Output, RunOptions};
use inferbench_bench::{Benchmark, Event, Observer};
use inferbench_core::spec::{ArrivalKind, DatasetSpec, RampStrategy, RampUp, Sampling};
use inferbench_core::{BenchmarkResult, MetricName, RunSpec, SavedResult, Slo};
use inferbench_report::{categories_table, render_summary, ConsoleOptions};
use std::sync::Arc;

fn flag_err(flag: &str, value: &str, why: impl std::fmt::Display) -> anyhow::Error {
    usage(format!("invalid {flag} '{value}': {why}"))
}

impl DatasetArgs {
    /// The dataset these flags describe, defaults filled in.
    pub fn spec(&self) -> Result<DatasetSpec> {
        let randoms_given = self.random_input_len.is_some()
            || self.random_output_len.is_some()
            || self.random_range_ratio.is_some()
            || self.random_prefix_len.is_some();
        let name = self.dataset_name.clone().unwrap_or_else(|| if randoms_given { "random" } else { "builtin" }.to_owned());
        let kind: inferbench_data::DatasetKind = name.parse().map_err(|e| flag_err("--dataset-name", &name, e))?;
        use inferbench_data::DatasetKind as K;
        Ok(DatasetSpec {
            name,
            path: self.dataset_path.as_ref().map(|p| p.display().to_string()),
            // Generated conversations default to short turns; their history supplies the length.
            input_len: self.random_input_len.unwrap_or(if kind == K::MultiTurn { 64 } else { 1024 }),
            output_len: self.random_output_len.unwrap_or(128),
            range_ratio: self.random_range_ratio.unwrap_or(0.0),
            prefix_len: self.random_prefix_len.unwrap_or(0),
            shuffle: !self.disable_shuffle,
            fixed_output_len: if kind == K::Random { None } else { self.fixed_output_len },
            min_input_len: self.min_input_len,
            max_input_len: self.max_input_len,
            prefix_groups: (kind == K::SharedPrefix).then_some(self.prefix_groups),
            turns: (kind == K::MultiTurn).then_some(self.turns),
            trace_format: self.trace_format.clone(),
            trace_speedup: self.trace_speedup,
            trace_window: self.trace_window.as_deref().map(parse_window).transpose()?,
        })
    }
}

/// Parses `--trace-window START:END` (seconds).
fn parse_window(s: &str) -> Result<[f64; 2]> {
    let bad = |why: &str| flag_err("--trace-window", s, why);
    let (a, b) = s.split_once(':').ok_or_else(|| bad("expected START:END in seconds, e.g. 600:1200"))?;
    let num =
        |x: &str| x.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| bad(&format!("'{x}' is not a number of seconds")));
    let (a, b) = (num(a)?, num(b)?);
    if a < 0.0 || b <= a {
        return Err(bad("END must be greater than START, and START at least 0"));
    }
    Ok([a, b])
}

/// Parses `50,90,99` into percentiles.
pub fn parse_percentiles(s: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(|p| {
            let v: f64 = p.trim().parse().map_err(|_| flag_err("--metric-percentiles", s, format!("'{p}' is not a number")))?;
            if v > 0.0 && v <= 100.0 {
                Ok(v)
            } else {
                Err(flag_err("--metric-percentiles", s, format!("{v} is not in (0, 100]")))
            }
        })
        .collect()
}

impl RunArgs {
    /// The spec these flags describe, or the one `--spec` names.
    pub fn spec(&self) -> Result<RunSpec> {
        if let Some(p) = &self.spec {
            return read_spec(p);
        }
        let request_rate = match self.request_rate.trim() {
            "inf" | "infinity" | "Inf" => None,
            r => Some(r.parse::<f64>().map_err(|_| flag_err("--request-rate", r, "expected a number or inf"))?),
        };
        let extra_body = match &self.extra_body {
            None => None,
            Some(s) => match serde_json::from_str::<serde_json::Value>(s) {
                Ok(v @ serde_json::Value::Object(_)) => Some(v),
                Ok(_) => return Err(flag_err("--extra-body", s, "must be a JSON object")),
                Err(e) => return Err(flag_err("--extra-body", s, e)),
            },
        };
        let percentile_metrics: Vec<MetricName> = self
            .percentile_metrics
            .split(',')
            .map(|m| m.parse::<MetricName>().map_err(|e| flag_err("--percentile-metrics", &self.percentile_metrics, e)))
            .collect::<Result<_>>()?;
        let goodput = Slo::parse(&self.goodput).map_err(|e| flag_err("--goodput", &self.goodput.join(" "), e))?;
        let ramp_up = self.ramp_up_strategy.map(|s| RampUp {
            strategy: match s {
                RampArg::Linear => RampStrategy::Linear,
                RampArg::Exponential => RampStrategy::Exponential,
            },
            start_rps: self.ramp_up_start_rps.unwrap_or(0.0),
            end_rps: self.ramp_up_end_rps.unwrap_or(0.0),
        });
        if ramp_up.is_some() && self.num_prompts.is_none() && self.duration.is_none() {
            return Err(usage("--ramp-up-strategy needs --num-prompts or --duration"));
        }
        Ok(RunSpec {
            backend: self.backend.clone(),
            base_url: self.base_url.clone(),
            endpoint: self.endpoint.clone().unwrap_or_default(),
            model: self.model.clone().unwrap_or_default(),
            tokenizer: self.data.tokenizer.clone(),
            dataset: self.data.spec()?,
            num_prompts: self.num_prompts,
            duration_s: self.duration,
            request_rate,
            burstiness: self.burstiness,
            arrival: match self.arrival {
                ArrivalArg::Poisson => ArrivalKind::Poisson,
                ArrivalArg::Constant => ArrivalKind::Constant,
            },
            max_concurrency: self.max_concurrency,
            ramp_up,
            warmup_requests: self.warmup_requests,
            warmup_connections: self.warmup_connections,
            request_id_prefix: (!self.request_id_prefix.is_empty()).then(|| self.request_id_prefix.clone()),
            seed: self.seed,
            stream: !self.no_stream,
            sampling: Sampling { temperature: self.temperature, top_p: self.top_p, top_k: self.top_k, seed: self.sampling_seed },
            ignore_eos: self.ignore_eos,
            timeout_s: self.request_timeout,
            connect_timeout_s: self.connect_timeout,
            idle_timeout_s: self.idle_timeout,
            ca_cert: self.ca_cert.as_ref().map(|p| p.display().to_string()),
            insecure: self.insecure,
            extra_body,
            percentiles: parse_percentiles(&self.metric_percentiles)?,
            percentile_metrics: percentile_metrics.iter().map(|m| m.key().to_owned()).collect(),
            goodput: (!goodput.is_empty()).then(|| goodput.to_string()),
        })
    }

    /// How to run it: secrets, files, grace period, labels.
    pub fn options(&self, stem: Option<String>) -> Result<RunOptions> {
        let grace = inferbench_bench::spec::seconds("grace_period", self.grace_period, false)?;
        Ok(RunOptions {
            api_key: self.api_key.clone(),
            output: stem.map(|stem| Output { dir: self.result_dir.clone(), stem }),
            keep_text: self.save_generated_text || self.save_detailed,
            save_detailed: self.save_detailed,
            reset_prefix_cache: self.reset_prefix_cache,
            reconcile_every: self.reconcile_every,
            grace,
            labels: labels(&self.label)?,
            max_response_bytes: self.max_response_bytes,
            allow_tokenizer_mismatch: self.allow_tokenizer_mismatch,
            ready_check_timeout: inferbench_bench::spec::seconds("ready_check_timeout_sec", self.ready_check_timeout_sec, false)?,
            monitor: self.monitor.options()?,
            live: self.monitor.live(self.quiet)?,
            shard: self.shard,
            start_at: self.start_at.as_deref().map(|t| start_time(t, self.quiet)).transpose()?,
            ..RunOptions::default()
        })
    }

    /// What the console shows: the spec's percentile metrics (already checked), these grades.
    pub fn console(&self, spec: &RunSpec) -> ConsoleOptions {
        ConsoleOptions {
            percentile_metrics: spec.percentile_metrics.iter().filter_map(|m| m.parse::<MetricName>().ok()).collect(),
            grades: inferbench_core::grade::GradeScale { ttft: self.grade_ttft, tpot: self.grade_tpot },
            ..ConsoleOptions::default()
        }
    }
}

/// A wall-clock time: RFC 3339 (`2026-12-03T18:00:00Z`), Unix seconds, or `+SECONDS` from now.
pub fn parse_time(flag: &str, s: &str) -> Result<std::time::SystemTime> {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let t = s.trim();
    let secs = |x: &str| x.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
    if let Some(rel) = t.strip_prefix('+') {
        return secs(rel)
            .map(|v| SystemTime::now() + Duration::from_secs_f64(v))
            .ok_or_else(|| flag_err(flag, s, "after '+', a number of seconds from now"));
    }
    if let Some(v) = secs(t) {
        return Ok(UNIX_EPOCH + Duration::from_secs_f64(v));
    }
    humantime::parse_rfc3339_weak(t)
        .map_err(|e| flag_err(flag, s, format!("{e}; expected RFC 3339 (2026-12-03T18:00:00Z), Unix seconds, or +SECONDS")))
}

/// `--start-at`: at most a day ahead (a later time is a typo, not a plan), said when it is ahead.
fn start_time(t: &str, quiet: bool) -> Result<std::time::SystemTime> {
    let at = parse_time("--start-at", t)?;
    if let Ok(ahead) = at.duration_since(std::time::SystemTime::now()) {
        if ahead > std::time::Duration::from_secs(86_400) {
            return Err(flag_err("--start-at", t, format!("{:.1} days from now; at most a day ahead", ahead.as_secs_f64() / 86_400.0)));
        }
        if !quiet {
            eprintln!("note: measuring starts at {} ({:.1} s from now)", humantime::format_rfc3339_millis(at), ahead.as_secs_f64());
        }
    }
    Ok(at)
}

/// A spec from a file: a bare spec, or any saved run (its `spec`).
pub fn read_spec(path: &std::path::Path) -> Result<RunSpec> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("--spec: cannot read {}: {e}", path.display())))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| usage(format!("--spec {}: not JSON: {e}", path.display())))?;
    if v.get("schema_version").is_some() {
        return match SavedResult::from_json(v).map_err(|e| usage(format!("--spec {}: {e}", path.display())))? {
            SavedResult::Run(r) => Ok(r.spec),
            SavedResult::Sweep(s) => Ok(s.sweep.run),
            other => Err(usage(format!("--spec {}: {} has no serving spec", path.display(), other.kind().described()))),
        };
    }
    serde_json::from_value(v).map_err(|e| usage(format!("--spec {}: not a run spec: {e}", path.display())))
}

/// Notes to stderr unless quiet.
pub fn printer(quiet: bool) -> Observer {
    Arc::new(move |ev: &Event<'_>| {
        if quiet {
            return;
        }
        match ev {
            Event::Note(n) => eprintln!("note: {n}"),
            Event::Progress(p) => eprintln!("{p}"),
            Event::StepStarted { title, dimension, load, size, repeat } => {
                let reps = repeat.map_or(String::new(), |(i, n)| format!(", repeat {i}/{n}"));
                eprintln!("{title}: {} ({size}{reps})", dimension.label(*load));
            }
            Event::StepDone { dimension, step, cv_warn } => {
                eprintln!("  {}", inferbench_report::text::step_line(step, *dimension));
                if !step.noisy.is_empty() {
                    eprintln!(
                        "  WARNING: repeats at {} vary more than {:.0}% (coefficient of variation) in {}; consider more requests or --repeat",
                        dimension.label(step.load),
                        cv_warn * 100.0,
                        step.noisy.join(", ")
                    );
                }
            }
        }
    })
}

/// Runs `inferbench run`.
pub async fn run(a: &RunArgs, stop: crate::Interrupt) -> Result<BenchmarkResult> {
    let spec = a.spec()?;
    // vLLM's `--result-filename r.json` names the file itself: the stem is then `r`.
    let stem = match &a.result_filename {
        Some(f) => f.strip_suffix(".json").unwrap_or(f).to_owned(),
        None => inferbench_bench::spec::default_stem(&spec),
    };
    let opts = a.options(Some(stem))?;
    let bench = Benchmark::serving(spec, opts)?;
    let console = a.console(bench.spec());
    let paths = bench.paths();
    let s = bench.spec();
    let sessions = s.dataset.name == "multi-turn";
    // A shard's bar counts its own share of the requests.
    let total = s.num_prompts.filter(|_| !sessions).map(|n| a.shard.map_or(n, |sh| sh.owned_below(n, s.max_concurrency)));
    let pb = ProgressSink::new(!(a.disable_tqdm || a.quiet), total, s.duration_s);
    let (result, unsaved) = match bench.with_sink(pb).cancel_on(stop.stop).abort_on(stop.abort).observe(printer(a.quiet)).run().await {
        Ok(r) => (r, None),
        // Measured but not all saved (a full disk): the summary still reaches the console.
        Err(inferbench_bench::BenchError::Unsaved(r, msg)) => (*r, Some(msg)),
        Err(e) => return Err(e.into()),
    };
    if let Some(msg) = unsaved {
        if !a.quiet {
            out!("{}", render_summary(&result, &console));
        }
        anyhow::bail!("{msg}");
    }
    if let Some(path) = &a.benchmark_report {
        let report = inferbench_report::llmd::benchmark_report(&result);
        let bytes = serde_json::to_vec_pretty(&report).context("serialising the benchmark report")?;
        inferbench_report::files::write_atomic(path, &bytes).with_context(|| format!("--benchmark-report {}", path.display()))?;
    }
    if let Some(w) = inferbench_report::console::delivery_warning(&result) {
        if !a.quiet {
            eprintln!("warning: {w}");
        }
    }
    if !a.quiet {
        out!("{}", render_summary(&result, &console));
        if !result.summary.categories.is_empty() {
            outln!("{}", categories_table(&result.summary));
        }
        if let Some(p) = &paths {
            outln!("Results: {}\n         {}\n         {}", p.json.display(), p.csv.display(), p.records.display());
            if p.timeseries.exists() {
                outln!("         {}", p.timeseries.display());
            }
        }
    }
    if let Some(info) = &result.shard {
        if !a.quiet {
            let late = info.late_ms.map_or(String::new(), |l| format!(", started {l:.1} ms after --start-at"));
            outln!(
                "Shard {} of the global schedule ({} units of work{late}): merge every shard with `inferbench merge`",
                info.shard,
                info.scheduled
            );
        }
    } else if let Some(p) = paths.as_ref().filter(|p| p.json.exists()) {
        // Shards are recorded once merged, not one by one.
        crate::store::record(&a.store, std::slice::from_ref(&p.json));
    }
    if let Some(p) = paths.as_ref().filter(|_| a.html) {
        let html = crate::report::html_beside(&p.json)?;
        if !a.quiet {
            outln!("HTML:    {}", html.display());
        }
    }
    if let Some(a) = result.monitors.as_ref().and_then(|m| m.alerts.iter().find(|a| a.aborted)) {
        return Err(crate::gate(format!(
            "stopped by --abort-on-alert: {} held at {:.1} s (value {:.3}); what was measured is written",
            a.rule, a.at_s, a.value
        )));
    }
    // An interrupted run exits 130 whatever it measured.
    if !result.interrupted {
        check_failures(&result.summary, a.max_error_rate)?;
    }
    Ok(result)
}

/// A run where every request failed is an error; one above `--max-error-rate` a failed gate.
pub fn check_failures(s: &inferbench_core::Summary, max: Option<f64>) -> Result<()> {
    let total = s.completed + s.failed;
    if total == 0 {
        return Ok(());
    }
    let kinds = || s.failures.iter().map(|(k, n)| format!("{k} x{n}")).collect::<Vec<_>>().join(", ");
    if s.completed == 0 {
        // Seen against llama-cpp-python's server, which refuses any X-Request-Id that is not a UUID.
        let hint = if s.failures.keys().all(|k| k == "http_400") {
            "; when a server refuses every request, try --request-id-prefix uuid (or \"\" to send no X-Request-Id)"
        } else {
            ""
        };
        anyhow::bail!("every request failed ({}: {}); the results are written{hint}", s.failed, kinds());
    }
    let rate = s.failed as f64 / total as f64;
    match max {
        Some(m) if rate > m => {
            Err(crate::gate(format!("{:.1}% of requests failed ({}), above --max-error-rate {:.1}%", rate * 100.0, kinds(), m * 100.0)))
        }
        _ => Ok(()),
    }
}

impl crate::args::MonitorArgs {
    /// Starts serving our own live metrics when `--metrics-port` asks for them.
    pub fn live(&self, quiet: bool) -> Result<Option<inferbench_bench::live::LiveMetrics>> {
        let Some(port) = self.metrics_port else { return Ok(None) };
        let live = inferbench_bench::live::LiveMetrics::default();
        let addr = live.serve(port).map_err(|e| usage(format!("--metrics-port {port}: cannot listen on 127.0.0.1:{port}: {e}")))?;
        if !quiet {
            eprintln!("note: live metrics at http://{addr}/metrics");
        }
        Ok(Some(live))
    }

    /// The monitors these flags ask for.
    pub fn options(&self) -> Result<inferbench_bench::monitoring::MonitorOptions> {
        use inferbench_bench::monitoring::{MonitorOptions, ServerMetrics};
        let secs = |flag: &str, v: f64| {
            if v.is_finite() && v >= 0.01 {
                Ok(std::time::Duration::from_secs_f64(v))
            } else {
                Err(flag_err(flag, &v.to_string(), "expected seconds, at least 0.01"))
            }
        };
        let server_metrics = match self.server_metrics.trim() {
            "auto" | "" => ServerMetrics::Auto,
            "off" | "none" => ServerMetrics::Off,
            u if u.starts_with("http://") || u.starts_with("https://") => ServerMetrics::Url(u.to_owned()),
            u => return Err(flag_err("--server-metrics", u, "expected auto, off, or an http:// or https:// URL")),
        };
        let (gpu, gpus) = match self.gpus.as_deref().map(str::trim) {
            None => (true, None),
            Some("none" | "off") => (false, None),
            Some(list) => {
                let ids = list
                    .split(',')
                    .map(|x| x.trim().parse::<u32>().map_err(|_| flag_err("--gpus", list, format!("'{x}' is not a GPU index"))))
                    .collect::<Result<Vec<_>>>()?;
                (true, Some(ids))
            }
        };
        let alerts =
            self.alert.iter().map(|r| inferbench_monitor::Rule::parse(r).map_err(|e| usage(e.to_string()))).collect::<Result<Vec<_>>>()?;
        if self.abort_on_alert && alerts.is_empty() {
            return Err(usage("--abort-on-alert needs at least one --alert"));
        }
        Ok(MonitorOptions {
            server_metrics,
            metrics_interval: secs("--metrics-interval", self.metrics_interval)?,
            gpu,
            gpus,
            gpu_interval: secs("--gpu-monitor-interval", self.gpu_monitor_interval)?,
            gpu_source: None,
            host: !self.no_host_monitor,
            server_pid: self.server_pid,
            alerts,
            alert_window: secs("--alert-window", self.alert_window)?,
            abort_on_alert: self.abort_on_alert,
            gpu_results_file: self.gpu_results_file.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_failed_is_an_error_with_the_kinds_and_a_hint_for_blanket_400s() {
        let mut s = inferbench_core::Summary { failed: 3, ..Default::default() };
        s.failures.insert("http_400".into(), 3);
        let e = check_failures(&s, None).unwrap_err().to_string();
        assert!(e.contains("every request failed (3: http_400 x3)") && e.contains("--request-id-prefix uuid"), "{e}");
        s.failures.insert("timeout".into(), 1);
        s.failed = 4;
        let e = check_failures(&s, None).unwrap_err().to_string();
        assert!(!e.contains("--request-id-prefix"), "{e}");
        s.completed = 96;
        assert!(check_failures(&s, Some(0.05)).is_ok());
        assert!(check_failures(&s, Some(0.01)).is_err());
    }
}
