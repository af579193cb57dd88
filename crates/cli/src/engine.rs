//! `inferbench engine`: YAML config and flags become a [`BenchConfig`], the library benchmarks the
//! model in process, and this module prints the report and decides the exit code (3 when a
//! target is missed).

use crate::args::EngineBenchArgs;
use anyhow::Result;
use inferbench_bench::engine::{load_config, EngineBench};
use inferbench_core::engine_bench::{BenchConfig, TargetCheck};

/// Applies flags over the file's values.
fn apply(cfg: &mut BenchConfig, a: &EngineBenchArgs) {
    if a.model.is_some() {
        cfg.model = a.model.clone();
    }
    if a.threads.is_some() {
        cfg.threads = a.threads;
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
    if let Some(g) = a.gamma {
        cfg.speculative.gamma = g;
    }
    if a.draft_model.is_some() {
        cfg.speculative.draft = a.draft_model.clone();
    }
    for (k, v) in &a.target {
        cfg.targets.entry("default".into()).or_default().insert(k.clone(), *v);
    }
}

/// Runs `inferbench engine`; section failures exit 1 and missed targets exit 3, after every file
/// is written.
pub async fn run(a: EngineBenchArgs) -> Result<()> {
    let mut cfg = match &a.config {
        Some(p) => load_config(p)?,
        None => BenchConfig::default(),
    };
    apply(&mut cfg, &a);
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
    let (report, files) =
        EngineBench::new(cfg)?.labels(crate::labels(&a.label)?).monitor(monitor).observe(crate::run::printer(false)).run().await?;
    out!("{}", inferbench_report::text::engine(&report));
    for f in &files.written {
        outln!("wrote {}", f.display());
    }
    let json: Vec<std::path::PathBuf> = files.written.iter().filter(|f| f.extension().is_some_and(|e| e == "json")).cloned().collect();
    crate::store::record(&a.store, &json);
    if a.html {
        match files.written.iter().find(|f| f.extension().is_some_and(|e| e == "json")) {
            Some(j) => outln!("wrote {}", crate::report::html_beside(j)?.display()),
            None => eprintln!("warning: --html needs the JSON report (report.format json); no HTML written"),
        }
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
    Ok(())
}
