//! The in-process engine benchmark (seeds 000, 001 and 003): latency by input × output length,
//! memory, throughput in the engine's own scheduler, quantization against F32, speculative against
//! target-only decoding, baseline against variant, and targets — one module per section. Every
//! timed request becomes a [`inferbench_core::RequestRecord`] fed to the same sinks a serving run
//! uses.

mod config;
mod latency;
mod llama_bench;
mod memory;
mod quantization;
mod recorder;
mod speculative;
mod targets;
mod throughput;
mod variants;

pub use config::{load_config, parse_config, validate};

use crate::error::{BenchError, Context};
use crate::monitoring::{MonitorOptions, Monitoring, ServerMetrics};
use crate::observer::{silent, Event, Observer};
use inferbench_core::engine_bench::{BenchConfig, EngineResult};
use inferbench_core::result::{Header, ResultKind};
use inferbench_core::stats::{Distribution, Samples};
use inferbench_core::RecordSink;
use inferbench_engine::{Engine, EngineConfig, LoadOptions};
use recorder::Recorder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, BenchError>;

/// An engine benchmark, checked and ready to run.
pub struct EngineBench {
    cfg: BenchConfig,
    sinks: Vec<Box<dyn RecordSink>>,
    observer: Observer,
    labels: BTreeMap<String, String>,
    write_files: bool,
    monitor: MonitorOptions,
    cancel: tokio_util::sync::CancellationToken,
}

/// Where an engine benchmark's files went.
#[derive(Debug, Clone, Default)]
pub struct EngineFiles {
    /// Every file written, in order.
    pub written: Vec<PathBuf>,
}

impl EngineBench {
    /// Checks the configuration.
    pub fn new(cfg: BenchConfig) -> Result<Self> {
        validate(&cfg)?;
        let monitor =
            MonitorOptions { server_metrics: ServerMetrics::Off, server_pid: Some(std::process::id()), ..MonitorOptions::default() };
        Ok(Self {
            cfg,
            sinks: Vec::new(),
            observer: silent(),
            labels: BTreeMap::new(),
            write_files: true,
            monitor,
            cancel: Default::default(),
        })
    }

    /// Adds a sink for every timed request's record.
    pub fn with_sink(mut self, sink: impl RecordSink + 'static) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Receives each section's figures as they are measured.
    pub fn observe(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
    }

    /// Labels carried into the result header.
    pub fn labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = labels;
        self
    }

    /// GPU and host monitoring (on by default; the engine runs in this process, so the host
    /// section's server process is this one).
    pub fn monitor(mut self, opts: MonitorOptions) -> Self {
        self.monitor = MonitorOptions { server_metrics: ServerMetrics::Off, server_pid: Some(std::process::id()), ..opts };
        self
    }

    /// Stops measuring when `token` is cancelled (the API's `DELETE`): the section in progress
    /// ends at its next request with a `cancelled` error, the rest are skipped the same way, and
    /// the result holds what was measured.
    pub fn cancel_on(mut self, token: tokio_util::sync::CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Writes no file (the records JSONL, JSON, CSV and text report are written by default).
    pub fn without_files(mut self) -> Self {
        self.write_files = false;
        self
    }

    /// Resolves the model (pulling a known one if missing), then runs every section on a
    /// blocking thread. Section failures are in `errors`; the others are still measured.
    pub async fn run(self) -> Result<(EngineResult, EngineFiles)> {
        let spec = self.cfg.model.clone();
        let obs = self.observer.clone();
        let (path, name) = tokio::task::spawn_blocking(move || crate::models::resolve(spec.as_deref(), &mut pull_notes(&obs)))
            .await
            .ctx("model resolution")??;
        tokio::task::spawn_blocking(move || self.run_blocking(&path, &name)).await.ctx("the engine benchmark")?
    }

    /// Runs every section on this thread against the model at `path`.
    pub fn run_blocking(mut self, path: &Path, name: &str) -> Result<(EngineResult, EngineFiles)> {
        let cfg = self.cfg.clone();
        let mut files = EngineFiles::default();
        let run_id = inferbench_core::time::new_run_id();
        let stem_name = match &cfg.report.file_name {
            Some(n) => {
                crate::serving::Output { dir: cfg.report.output_dir.clone(), stem: n.clone() }.check()?;
                n.clone()
            }
            None => format!("engine-{name}-{}", inferbench_core::time::compact_now()),
        };
        let stem = cfg.report.output_dir.join(stem_name);
        if self.write_files {
            std::fs::create_dir_all(&cfg.report.output_dir).ctx(format!("cannot create {}", cfg.report.output_dir.display()))?;
            let p = with_ext(&stem, "records.jsonl");
            let w = inferbench_report::RecordWriter::create(&p, &run_id).ctx(format!("cannot create {}", p.display()))?;
            self.sinks.insert(0, Box::new(w));
            files.written.push(p);
        }
        let series = self.write_files.then(|| with_ext(&stem, "timeseries.jsonl"));
        let monitoring =
            Monitoring::start(&self.monitor, None, series.clone(), self.observer.clone(), tokio_util::sync::CancellationToken::new())?;
        self.sinks.push(Box::new(monitoring.sink(std::sync::Arc::new(|| 0), None)));
        let mut result =
            match bench(&cfg, path, name, Recorder::new(std::mem::take(&mut self.sinks)).cancel_on(self.cancel.clone()), &self.observer) {
                Ok(r) => r,
                Err(e) => {
                    // Refused before anything was measured (a length past the context, say): no
                    // records file holding only its header is left behind.
                    for p in &files.written {
                        if std::fs::read_to_string(p).is_ok_and(|t| t.lines().count() <= 1) {
                            let _ = std::fs::remove_file(p);
                        }
                    }
                    let _ = monitoring.finish(None);
                    if let Some(p) = &series {
                        let _ = std::fs::remove_file(p);
                    }
                    return Err(e);
                }
            };
        let (monitors, errors) = monitoring.finish(None);
        result.errors.extend(errors);
        if let Some(p) = series.filter(|_| monitors.timeseries_file.is_some()) {
            files.written.push(p);
        }
        // Sections run one after another: an in-flight steady state means nothing here.
        let monitors = inferbench_core::monitor::MonitorReport { steady_state: None, ..monitors };
        result.monitors = (!monitors.is_empty()).then_some(monitors);
        result.header.run_id = run_id;
        result.header.labels = self.labels;
        if !cfg.report.include_system_info {
            result.header.system = None;
        }
        if self.write_files {
            files.written.extend(write_reports(&cfg, &stem, &result)?);
        }
        Ok((result, files))
    }
}

/// Turns pull events into notes.
fn pull_notes(obs: &Observer) -> impl FnMut(crate::models::PullEvent<'_>) + '_ {
    move |ev| match ev {
        crate::models::PullEvent::Start { model, dir } => {
            (obs)(&Event::Note(&format!("{} is not in the cache; pulling it into {}", model.name, dir.display())))
        }
        crate::models::PullEvent::Done { source, url, fell_back_from } => {
            (obs)(&Event::Note(&format!("pulled from {source} ({url}){}", crate::models::fallback_text(fell_back_from))))
        }
        crate::models::PullEvent::Progress { .. } => {}
    }
}

/// `stem.ext`, keeping any dots already in the stem (a model name like `qwen2.5`).
fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// The JSON, CSV and text files the config asks for.
fn write_reports(cfg: &BenchConfig, stem: &Path, r: &EngineResult) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let write = |ext: &str, bytes: &[u8], out: &mut Vec<PathBuf>| -> Result<()> {
        let p = with_ext(stem, ext);
        inferbench_report::write_atomic(&p, bytes).ctx(format!("cannot write {}", p.display()))?;
        out.push(p);
        Ok(())
    };
    let saved = inferbench_core::SavedResult::Engine(Box::new(r.clone()));
    if cfg.report.format.iter().any(|f| f == "json") {
        let p = with_ext(stem, "json");
        crate::saved::write(&p, &saved)?;
        out.push(p);
    }
    // A llama-bench run's CSV and text are llama-bench's own CSV and Markdown table.
    let llama = |f: &str| inferbench_report::llama_bench::render(&r.llama_bench, f).filter(|_| !r.llama_bench.is_empty());
    if cfg.report.format.iter().any(|f| f == "csv") {
        let csv = match llama("csv") {
            Some(c) => c,
            None => inferbench_report::csv::engine_latency_csv(r).ctx("CSV")?,
        };
        write("csv", csv.as_bytes(), &mut out)?;
    }
    if let Some(sp) = r.speculative.as_ref().filter(|sp| !sp.arms.is_empty()) {
        out.extend(write_spec_arms(&with_ext(stem, "speculative"), r, sp)?);
    }
    if cfg.report.format.iter().any(|f| f == "text") {
        write("txt", llama("md").unwrap_or_else(|| inferbench_report::text::engine(r)).as_bytes(), &mut out)?;
    }
    Ok(out)
}

/// Seed 001's files, in a directory of their own so a re-run never overwrites one:
/// `benchmark_results_target.json` and `benchmark_results_speculative[_gammaN].json` (one arm
/// each, with the run's settings) and `benchmark_results.json` (every arm, the monitors).
fn write_spec_arms(dir: &Path, r: &EngineResult, sp: &inferbench_core::engine_bench::SpecResult) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).ctx(format!("cannot create {}", dir.display()))?;
    let settings = serde_json::json!({
        "target": sp.target, "draft": sp.draft, "temperature": sp.temperature, "arrivals": sp.arrivals,
        "batch_size": sp.batch_size, "placement": sp.placement, "config": r.config.speculative,
    });
    let mut out = Vec::new();
    let mut put = |name: &str, v: &serde_json::Value| -> Result<()> {
        let p = dir.join(name);
        let text = serde_json::to_string_pretty(v).ctx("JSON")?;
        inferbench_report::write_atomic(&p, text.as_bytes()).ctx(format!("cannot write {}", p.display()))?;
        out.push(p);
        Ok(())
    };
    for arm in &sp.arms {
        put(&format!("benchmark_results_{}.json", arm.name), &serde_json::json!({ "settings": settings, "result": arm }))?;
    }
    let combined = serde_json::json!({
        "settings": settings, "run_id": r.header.run_id, "model": r.model, "threads": r.threads,
        "summary": {
            "best_gamma": sp.gamma, "speedup": sp.speedup, "acceptance_rate": sp.acceptance_rate,
            "target_only_tokens_per_second": sp.target_only_tokens_per_second,
            "speculative_tokens_per_second": sp.speculative_tokens_per_second,
            "identical_to_target": sp.identical_to_target,
        },
        "arms": sp.arms, "monitors": r.monitors,
    });
    put("benchmark_results.json", &combined)?;
    Ok(out)
}

/// Exact-length prompts and the engine every timed section shares.
pub(crate) struct Bench<'a> {
    cfg: &'a BenchConfig,
    engine: Engine,
    rec: &'a Recorder,
    ids: Vec<u32>,
    obs: &'a Observer,
}

impl Bench<'_> {
    /// The first `n` tokens of the test prompts, repeated as needed.
    fn prompt(&self, n: usize) -> Vec<u32> {
        self.ids.iter().cycle().take(n).copied().collect()
    }

    fn progress(&self, line: &str) {
        (self.obs)(&Event::Progress(line));
    }
}

fn bench(cfg: &BenchConfig, path: &Path, name: &str, rec: Recorder, obs: &Observer) -> Result<EngineResult> {
    let threads = cfg.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let mut header = Header::now(ResultKind::Engine, crate::tool_info());
    let rss0 = vm("VmRSS:");
    let loaded = inferbench_engine::load(path, &LoadOptions::default()).ctx(format!("cannot load {}", path.display()))?;
    let rss_loaded = vm("VmRSS:");
    let m = loaded.model.clone();
    if let Some(lb) = &cfg.llama_bench {
        // llama-bench's tests replace the sections: the same model, driven as llama-bench drives
        // llama.cpp's, so its table and ours read side by side.
        let base = llama_bench::describe(path, &m, lb)?;
        (obs)(&Event::Progress(&format!("inferbench engine: {name} ({} weights), llama-bench tests", m.weight_format())));
        let rows = llama_bench::run(lb, &m, &base, threads, &rec, obs);
        rec.finish()?;
        let rows = rows?;
        let errors = if rec.cancelled() {
            vec![format!(
                "cancelled: {} of {} tests kept (the last may have fewer repetitions)",
                rows.len(),
                llama_bench::plan(lb, threads).len()
            )]
        } else {
            Vec::new()
        };
        header.end();
        // `llama_bench_tg128_d512_t2_ts`: names a target can use (`min_llama_bench_tg128_t2_ts`).
        let metrics: BTreeMap<String, f64> = rows
            .iter()
            .map(|r| (format!("llama_bench_{}_t{}_ts", r.name().replace(" @ ", "_").replace('+', "_"), r.n_threads), r.avg_ts))
            .collect();
        let targets = targets::check(cfg, name, &metrics)?;
        return Ok(EngineResult {
            latency_summary: rec.summary("llama-bench/"),
            metrics,
            targets,
            llama_bench: rows,
            errors,
            ..empty_result(header, cfg, name, path, &m, threads)
        });
    }
    let ctx = m.cfg.context_length;
    let longest =
        cfg.latency.input_lengths.iter().max().copied().unwrap_or(0) + cfg.latency.output_lengths.iter().max().copied().unwrap_or(0);
    if longest > ctx {
        return Err(BenchError::invalid(format!(
            "latency: {longest} tokens (longest input + longest output) exceed the model's context of {ctx}"
        )));
    }
    let max_batch = cfg.throughput.batch_sizes.iter().copied().chain([cfg.throughput.concurrent_requests, 1]).max().unwrap_or(1);
    let engine_cfg = EngineConfig { max_num_seqs: max_batch.max(1), threads, kv_cache_bytes: 1 << 30, ..Default::default() };
    let per_seq = cfg.latency.input_lengths.iter().max().copied().unwrap_or(32).max(32) + cfg.throughput.tokens_per_request;
    if per_seq * max_batch * m.cfg.kv_bytes_per_token() > engine_cfg.kv_cache_bytes {
        return Err(BenchError::invalid(format!(
            "throughput: {max_batch} sequences of {per_seq} tokens need {:.0} MiB of KV cache, more than the 1024 MiB budget",
            (per_seq * max_batch * m.cfg.kv_bytes_per_token()) as f64 / 1048576.0
        )));
    }
    let engine = Engine::start(m.clone(), loaded.tokenizer.clone(), loaded.eos.clone(), engine_cfg).ctx("cannot start the engine")?;
    let source = if cfg.test_prompts.is_empty() {
        "The history of computing is a story of machines that learned to count, then to remember, then to talk. ".repeat(8)
    } else {
        cfg.test_prompts.join("\n")
    };
    let ids = loaded.tokenizer.encode(&source);
    if ids.is_empty() {
        return Err(BenchError::invalid("test_prompts encode to no tokens"));
    }
    (obs)(&Event::Progress(&format!("inferbench engine: {name} ({} weights, {threads} threads)", m.weight_format())));
    let b = Bench { cfg, engine, rec: &rec, ids, obs };
    let mut metrics: BTreeMap<String, f64> = BTreeMap::new();
    // A later section that fails does not lose the earlier ones: its error is reported with them.
    // A cancelled benchmark keeps what it measured and skips the rest, saying so.
    let mut errors: Vec<String> = Vec::new();
    let cells = match latency::run(&b, &mut metrics) {
        // Cancelled in the first section: the result still says so and keeps the other figures.
        Err(_) if rec.cancelled() => Vec::new(),
        r => r?,
    };
    let throughput = match throughput::run(&b) {
        _ if rec.cancelled() => BTreeMap::new(),
        r => r?,
    };
    let memory = if rec.cancelled() { BTreeMap::new() } else { memory::run(&b, &m, rss0, rss_loaded, longest, &mut metrics)? };
    if rec.cancelled() {
        errors.push(
            "cancelled: the sections after the last finished one were not run (their requests so far are in the records file)".into(),
        );
    }
    let Bench { engine, ids, .. } = b;
    drop(engine);
    let chat_prompts = |n: usize| -> Vec<Vec<u32>> {
        let texts: Vec<String> = if cfg.test_prompts.is_empty() {
            ["Tell me about the ocean.", "What is the capital of France?", "Write a haiku about autumn.", "Explain gravity simply."]
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            cfg.test_prompts.clone()
        };
        (0..n)
            .map(|i| loaded.tokenizer.encode(&format!("<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n", texts[i % texts.len()])))
            .collect()
    };
    let cancelled = rec.cancelled();
    let quantization = if cancelled {
        Ok(Vec::new())
    } else {
        quantization::run(&cfg.quantization, path, &chat_prompts(cfg.quantization.prompts), &loaded.eos, threads, obs)
    }
    .unwrap_or_else(|e| {
        errors.push(format!("quantization: {e}"));
        Vec::new()
    });
    for q in &quantization {
        metrics.insert(format!("decode_tokens_per_second_{}", q.format), q.decode_tokens_per_second);
        metrics.insert(format!("token_agreement_{}", q.format), q.token_agreement);
    }
    let speculative = if cfg.speculative.enabled && !cancelled {
        match speculative::run(&cfg.speculative, path, &chat_prompts(cfg.speculative.prompts), threads, &rec, obs) {
            Ok(r) => {
                metrics.insert("speculative_speedup".into(), r.speedup);
                metrics.insert("speculative_acceptance_rate".into(), r.acceptance_rate);
                Some(r)
            }
            Err(e) => {
                errors.push(format!("speculative: {e}"));
                None
            }
        }
    } else {
        None
    };
    let comparison = if cfg.comparison.enabled && !cancelled {
        match variants::run(&cfg.comparison, path, &ids, threads, &rec, obs) {
            Ok(c) => {
                metrics.insert("comparison_average_speedup".into(), c.average_speedup);
                Some(c)
            }
            Err(e) => {
                errors.push(format!("comparison: {e}"));
                None
            }
        }
    } else {
        None
    };
    rec.finish()?;
    metrics.extend(throughput.iter().map(|(k, v)| (k.clone(), *v)));
    metrics.extend(memory.iter().map(|(k, v)| (k.clone(), *v)));
    let targets = targets::check(cfg, name, &metrics)?;
    header.end();
    Ok(EngineResult {
        latency: cells,
        latency_summary: rec.summary("latency/"),
        quantization,
        speculative,
        comparison,
        memory,
        throughput,
        metrics,
        targets,
        errors,
        ..empty_result(header, cfg, name, path, &m, threads)
    })
}

/// A result naming the model and configuration, with no section measured yet.
fn empty_result(header: Header, cfg: &BenchConfig, name: &str, path: &Path, m: &inferbench_engine::Model, threads: usize) -> EngineResult {
    EngineResult {
        header,
        model: name.to_owned(),
        model_path: path.display().to_string(),
        weights: m.weight_format().to_string(),
        threads,
        config: cfg.clone(),
        latency: Vec::new(),
        latency_summary: Default::default(),
        quantization: Vec::new(),
        speculative: None,
        comparison: None,
        memory: BTreeMap::new(),
        throughput: BTreeMap::new(),
        metrics: BTreeMap::new(),
        targets: Vec::new(),
        errors: Vec::new(),
        monitors: None,
        llama_bench: Vec::new(),
    }
}

fn with_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().ctx("thread pool")?;
    Ok(pool.install(f))
}

fn dist(v: impl IntoIterator<Item = f64>) -> Distribution {
    let mut s = Samples::default();
    v.into_iter().for_each(|x| s.push(x));
    s.distribution(&[50.0, 99.0])
}

/// A `/proc/self/status` figure in bytes (0 where unknown).
fn vm(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map_or(0, |kb| kb * 1024)
}
