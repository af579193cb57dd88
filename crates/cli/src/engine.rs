//! `inferbench engine`: YAML config and flags become a [`BenchConfig`], the library benchmarks the
//! model in process, and this module prints the report and decides the exit code (3 when a
//! target is missed).

use crate::args::EngineBenchArgs;
use anyhow::Result;
use inferbench_bench::engine::{load_config, EngineBench};
use inferbench_core::engine_bench::{BenchConfig, EngineResult, LlamaBenchTest, TargetCheck};

/// The llama-bench output format, when the run was llama-bench's tests.
fn cfg_output(r: &EngineResult) -> Option<String> {
    r.config.llama_bench.as_ref().filter(|_| !r.llama_bench.is_empty()).map(|l| l.output.clone())
}

/// Applies flags over the file's values.
fn apply(cfg: &mut BenchConfig, a: &EngineBenchArgs) -> Result<()> {
    if a.model.is_some() {
        cfg.model = a.model.clone();
    }
    let llama_flags = a.pp.is_some()
        || a.tg.is_some()
        || !a.pg.is_empty()
        || a.depth.is_some()
        || a.repetitions.is_some()
        || a.output.is_some()
        || a.no_warmup
        || a.compare_with.is_some();
    if llama_flags && cfg.llama_bench.is_none() {
        cfg.llama_bench = Some(Default::default());
    }
    let threads: Vec<usize> = a.threads.iter().flatten().map(|&t| t as usize).collect();
    match (&mut cfg.llama_bench, threads.as_slice()) {
        (_, []) => {}
        (None, [t]) => cfg.threads = Some(*t),
        (None, _) => {
            return Err(crate::usage(format!(
                "--threads {}: several thread counts apply to the llama-bench tests only (add --pp/--tg, or give one count)",
                threads.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",")
            )))
        }
        (Some(lb), _) => lb.threads = threads.clone(),
    }
    if let Some(lb) = &mut cfg.llama_bench {
        a.pp.as_ref().inspect(|v| lb.pp = (*v).clone());
        a.tg.as_ref().inspect(|v| lb.tg = (*v).clone());
        if !a.pg.is_empty() {
            lb.pg = a.pg.clone();
        }
        a.depth.as_ref().inspect(|v| lb.depth = (*v).clone());
        a.repetitions.inspect(|v| lb.repetitions = *v);
        a.output.as_ref().inspect(|v| lb.output = (*v).clone());
        if a.no_warmup {
            lb.warmup = false;
        }
        if a.compare_with.is_some() {
            lb.compare_with = a.compare_with.clone();
        }
    }
    let l = &mut cfg.latency;
    a.warmup_runs.inspect(|v| l.warmup_runs = *v);
    a.test_runs.inspect(|v| l.test_runs = *v);
    a.input_lengths.as_ref().inspect(|v| l.input_lengths = (*v).clone());
    a.output_lengths.as_ref().inspect(|v| l.output_lengths = (*v).clone());
    let t = &mut cfg.throughput;
    a.concurrent_requests.inspect(|v| t.concurrent_requests = *v);
    a.batch_sizes.as_ref().inspect(|v| t.batch_sizes = (*v).clone());
    a.tokens_per_request.inspect(|v| t.tokens_per_request = *v);
    a.duration_seconds.inspect(|v| t.duration_seconds = *v);
    if a.result_filename.is_some() {
        cfg.report.file_name = a.result_filename.clone();
    }
    if let Some(d) = &a.output_dir {
        cfg.report.output_dir = d.clone();
    }
    if let Some(f) = &a.format {
        cfg.report.format = f.clone();
    }
    if a.no_system_info {
        cfg.report.include_system_info = false;
    }
    if let Some(f) = &a.quantization_formats {
        cfg.quantization.formats = f.clone();
    }
    if a.speculative {
        cfg.speculative.enabled = true;
    }
    if let Some(v) = &a.compare_variant {
        cfg.comparison.enabled = true;
        cfg.comparison.variant.quantization = v.clone();
        cfg.comparison.variant.name = v.clone();
    }
    let sp = &mut cfg.speculative;
    if let Some(g) = &a.gamma {
        sp.gamma = g.iter().map(|&g| g as usize).collect();
    }
    if let Some(n) = a.num_prompts {
        sp.prompts = n;
    }
    if a.rate.is_some() {
        sp.rate = a.rate;
    }
    if let Some(d) = a.duration {
        sp.duration_seconds = d;
    }
    if let Some(b) = a.batch_size {
        sp.batch_size = b;
    }
    if let Some(m) = a.max_batch_length {
        sp.max_batch_length = m;
    }
    if let Some(p) = &a.placement {
        sp.placement = p.clone();
    }
    if let Some(m) = a.max_tokens {
        sp.max_tokens = m;
    }
    if let Some(t) = a.temperature {
        sp.temperature = t;
    }
    if let Some(q) = &a.draft_quantization {
        sp.draft_quantization = q.clone();
    }
    if let Some(q) = &a.target_quantization {
        sp.target_quantization = q.clone();
    }
    if a.draft_model.is_some() {
        cfg.speculative.draft = a.draft_model.clone();
    }
    for (k, v) in &a.target {
        cfg.targets.entry("default".into()).or_default().insert(k.clone(), *v);
    }
    Ok(())
}

/// Reads the llama-bench output to compare with before anything is measured, so a bad file
/// costs nothing.
fn their_tests(cfg: &BenchConfig) -> Result<Option<Vec<LlamaBenchTest>>> {
    let Some(p) = cfg.llama_bench.as_ref().and_then(|l| l.compare_with.as_ref()) else { return Ok(None) };
    let text = std::fs::read_to_string(p).map_err(|e| crate::usage(format!("--compare-with: cannot read {}: {e}", p.display())))?;
    let tests = inferbench_report::llama_bench::parse(&text).map_err(|e| crate::usage(format!("--compare-with {}: {e}", p.display())))?;
    Ok(Some(tests))
}

/// Runs `inferbench engine`; section failures exit 1 and missed targets exit 3, after every file
/// is written. `Ok(true)` when Ctrl-C stopped it: what was measured is written, and it exits 130.
pub async fn run(a: EngineBenchArgs) -> Result<bool> {
    let mut cfg = match &a.config {
        Some(p) => load_config(p)?,
        None => BenchConfig::default(),
    };
    apply(&mut cfg, &a)?;
    let theirs = their_tests(&cfg)?;
    let monitor = crate::args::MonitorArgs {
        server_metrics: "off".into(),
        metrics_interval: 1.0,
        gpu_monitor_interval: a.gpu_monitor_interval,
        gpus: a.gpus.clone(),
        gpu_results_file: a.gpu_results_file.clone(),
        server_pid: None,
        no_host_monitor: a.no_host_monitor,
        alert: Vec::new(),
        alert_window: 10.0,
        abort_on_alert: false,
        metrics_port: None,
    }
    .options()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        crate::serve::shutdown_signal().await;
        eprintln!("\ninterrupted: stopping after the request or repetition in progress, then writing what was measured");
        on_signal.cancel();
    });
    let (report, files) = EngineBench::new(cfg)?
        .labels(crate::labels(&a.label)?)
        .monitor(monitor)
        .observe(crate::run::printer(false))
        .cancel_on(stop.clone())
        .run()
        .await?;
    match &cfg_output(&report) {
        // llama-bench's formats are for pipes (`--output sql | sqlite3 db`): only the table goes
        // to stdout, the file list to stderr.
        Some(fmt) => {
            let table = inferbench_report::llama_bench::render(&report.llama_bench, fmt).unwrap_or_default();
            out!("{table}");
            if let Some(theirs) = &theirs {
                let side = inferbench_report::llama_bench::compare(&report.llama_bench, theirs, "llama-bench");
                // Beside a Markdown table it is more of the same for people; beside a machine
                // format it must not corrupt the pipe.
                if fmt == "md" {
                    out!("\n{side}");
                } else {
                    eprintln!("\n{side}");
                }
            }
            for f in &files.written {
                eprintln!("wrote {}", f.display());
            }
        }
        None => {
            out!("{}", inferbench_report::text::engine(&report));
            for f in &files.written {
                outln!("wrote {}", f.display());
            }
        }
    }
    let json: Vec<std::path::PathBuf> = files.written.iter().filter(|f| f.extension().is_some_and(|e| e == "json")).cloned().collect();
    crate::store::record(&a.store, &json);
    if a.html {
        match files.written.iter().find(|f| f.extension().is_some_and(|e| e == "json")) {
            Some(j) => outln!("wrote {}", crate::report::html_beside(j)?.display()),
            None => eprintln!("warning: --html needs the JSON report (report.format json); no HTML written"),
        }
    }
    if stop.is_cancelled() {
        return Ok(true);
    }
    if !report.errors.is_empty() {
        anyhow::bail!("{} (the other results are written)", report.errors.join("; "));
    }
    let failed: Vec<&TargetCheck> = report.targets.iter().filter(|c| !c.pass).collect();
    if !failed.is_empty() {
        return Err(crate::gate(format!(
            "{} of {} targets failed: {}",
            failed.len(),
            report.targets.len(),
            failed.iter().map(|c| c.key.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(false)
}
