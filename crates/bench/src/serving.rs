//! A serving benchmark: spec in, typed result out. Prompts, pre-flight, load, collection through
//! the sinks, summary, and (when asked) the result files, which are written even when the run is
//! cancelled, so nothing measured is lost.

use crate::collector::{collect, Collected};
use crate::error::{BenchError, Context};
use crate::monitoring::{MonitorOptions, Monitoring, Scrape};
use crate::observer::{silent, Event, Observer};
use crate::spec::FALLBACK_TOKENIZER;
use crate::{proc, spec};
use inferbench_core::result::{ClientUsage, Header, ResultKind};
use inferbench_core::shard::{Shard, ShardInfo};
use inferbench_core::spec::DatasetStats;
use inferbench_core::summary::Accumulator;
use inferbench_core::vllm::PerRequestCollector;
use inferbench_core::{BenchmarkResult, RecordSink, RunSpec};
use inferbench_data::{load_dataset, Dataset, DatasetOptions, Tokenizer};
use inferbench_load::{
    http_client, preflight, run_load, ClientError, HttpTarget, Prompts, ProxyEnv, RequestTemplate, Requester, ServerInfo, ShardPlan,
    Timeouts, TlsOptions,
};
use inferbench_report::{write_csv_summary, write_json, RecordWriter};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How a run is carried out, beyond what it measures: none of this shapes the workload, so none
/// of it is in the spec (and the API key must never be).
#[derive(Clone)]
pub struct RunOptions {
    /// Bearer token for the server. Never written anywhere.
    pub api_key: Option<String>,
    /// Where the result files go; `None` writes no file.
    pub output: Option<Output>,
    /// Keep each request's generated text in the records.
    pub keep_text: bool,
    /// After cancellation, how long in-flight requests may take before they are cancelled.
    pub grace: Duration,
    /// The server runs in this process (CPU figures then include its work).
    pub server_in_process: bool,
    /// Reuse the previous run's generated prompts when this run asks for the same set (sweep
    /// steps differ only in load).
    pub reuse_prompts: bool,
    /// Labels carried into the result header.
    pub labels: BTreeMap<String, String>,
    /// How often sinks are ticked.
    pub tick: Duration,
    /// Most bytes one SSE line or event, or a whole non-streamed body, may take (`overflow`
    /// failures past it).
    pub max_response_bytes: usize,
    /// Run even when the server counts the first prompts' tokens more than 5 % differently from
    /// the client's tokenizer (prompt lengths are then not what the spec says).
    pub allow_tokenizer_mismatch: bool,
    /// How long to wait for the server to answer `/v1/models` before giving up (0: ask once).
    pub ready_check_timeout: Duration,
    /// Write all of vLLM's per-request arrays into the result (`--save-detailed`), not only
    /// latencies and queue times.
    pub save_detailed: bool,
    /// Empty the server's prefix cache before the run (vLLM's `POST /reset_prefix_cache`).
    pub reset_prefix_cache: bool,
    /// Count every n-th request's tokens on the client as well as the server (0: never).
    pub reconcile_every: u64,
    /// Server metrics, GPU, host, alerts.
    pub monitor: MonitorOptions,
    /// Our own live metrics (`--metrics-port`), fed by every run that has them.
    pub live: Option<crate::live::LiveMetrics>,
    /// Run one shard of the spec's global schedule (`--shard I/N`); see `inferbench_core::shard`.
    pub shard: Option<Shard>,
    /// Start measuring at this wall-clock instant (`--start-at`), for shards started together.
    pub start_at: Option<std::time::SystemTime>,
}

/// How far the server's prompt-token counts may stray from the client's before a run stops.
pub const TOKENIZER_TOLERANCE: f64 = 0.05;

/// Prompts whose lengths are cross-checked with the server's `/tokenize`.
const TOKENIZE_CHECKED: usize = 4;

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            api_key: None,
            output: None,
            keep_text: false,
            grace: Duration::from_secs(5),
            server_in_process: false,
            reuse_prompts: false,
            labels: BTreeMap::new(),
            tick: Duration::from_secs(1),
            max_response_bytes: inferbench_load::client::DEFAULT_MAX_RESPONSE_BYTES,
            allow_tokenizer_mismatch: false,
            ready_check_timeout: Duration::ZERO,
            save_detailed: false,
            reset_prefix_cache: false,
            reconcile_every: inferbench_load::client::DEFAULT_RECONCILE_EVERY,
            monitor: MonitorOptions::default(),
            live: None,
            shard: None,
            start_at: None,
        }
    }
}

/// A result directory and file stem.
#[derive(Debug, Clone)]
pub struct Output {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// The stem: `<stem>.json`, `<stem>.csv`, `<stem>.records.jsonl`.
    pub stem: String,
}

/// Where a run's files go.
#[derive(Debug, Clone)]
pub struct ResultPaths {
    /// Summary JSON.
    pub json: PathBuf,
    /// One-row CSV.
    pub csv: PathBuf,
    /// Per-request JSONL.
    pub records: PathBuf,
    /// The monitors' samples, JSONL, on the run's clock.
    pub timeseries: PathBuf,
    /// A shard's accumulator state, for merges without records.
    pub state: PathBuf,
}

impl Output {
    /// Refuses a stem that would put files outside the directory.
    pub fn check(&self) -> Result<(), BenchError> {
        let s = &self.stem;
        if s.is_empty() || s.contains(['/', '\\']) || s == "." || s == ".." || s.contains('\0') {
            return Err(BenchError::invalid(format!(
                "invalid --result-filename '{s}': a file name stem, without directories (use --result-dir for where)"
            )));
        }
        Ok(())
    }

    /// The three files of a run.
    pub fn paths(&self) -> ResultPaths {
        ResultPaths {
            json: self.dir.join(format!("{}.json", self.stem)),
            csv: self.dir.join(format!("{}.csv", self.stem)),
            records: self.dir.join(format!("{}.records.jsonl", self.stem)),
            timeseries: self.dir.join(format!("{}.timeseries.jsonl", self.stem)),
            state: self.dir.join(format!("{}.state.json", self.stem)),
        }
    }
}

/// A serving benchmark, checked and ready to run.
pub struct Serving {
    spec: RunSpec,
    opts: RunOptions,
    target: HttpTarget,
    dataset: DatasetOptions,
    sinks: Vec<Box<dyn RecordSink>>,
    cancel: CancellationToken,
    abort: CancellationToken,
    observer: Observer,
}

impl Serving {
    /// Checks the spec and prepares the output directory.
    pub fn new(mut spec: RunSpec, opts: RunOptions) -> Result<Self, BenchError> {
        spec::normalize(&mut spec)?;
        let tls = TlsOptions { ca_cert: spec.ca_cert.as_ref().map(PathBuf::from), insecure: spec.insecure };
        let timeout = Duration::from_secs_f64(spec.timeout_s);
        let target =
            HttpTarget::with_transport(&spec.base_url, &spec.endpoint, opts.api_key.as_deref(), timeout, &tls, &ProxyEnv::from_env())
                .map_err(|e| match e {
                    ClientError::Transport(e) => BenchError::invalid(e),
                    e => BenchError::invalid(format!("--base-url: {e}")),
                })?
                .with_timeouts(Timeouts {
                    connect: Duration::from_secs_f64(spec.connect_timeout_s),
                    idle: spec.idle_timeout_s.map(Duration::from_secs_f64),
                });
        spec.base_url = target.base_url.clone();
        if spec.insecure {
            let what = if target.base_url.starts_with("https://") {
                "the server's TLS certificate is not checked"
            } else {
                "it has no effect on an http:// target"
            };
            tracing::warn!("--insecure: {what}; the result says so");
        }
        let dataset = spec::dataset_options(&spec)?;
        if let Some(o) = &opts.output {
            o.check()?;
            std::fs::create_dir_all(&o.dir)
                .map_err(|e| BenchError::invalid(format!("--result-dir: cannot create {}: {e}", o.dir.display())))?;
        }
        Ok(Self {
            spec,
            opts,
            target,
            dataset,
            sinks: Vec::new(),
            cancel: CancellationToken::new(),
            abort: CancellationToken::new(),
            observer: silent(),
        })
    }

    /// Adds a sink: it receives every record as it completes, and a tick every `opts.tick`.
    pub fn with_sink(mut self, sink: impl RecordSink + 'static) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Adds boxed sinks.
    pub fn with_sinks(mut self, sinks: Vec<Box<dyn RecordSink>>) -> Self {
        self.sinks.extend(sinks);
        self
    }

    /// Stops the run when `token` is cancelled: no new requests; in-flight ones get the grace
    /// period; everything measured is still summarised and written.
    pub fn cancel_on(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Cancels in-flight requests at once when `token` is cancelled, cutting the grace period
    /// short (the CLI's second Ctrl-C). They are recorded as cancelled.
    pub fn abort_on(mut self, token: CancellationToken) -> Self {
        self.abort = token;
        self
    }

    /// Receives notes about the workload.
    pub fn observe(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
    }

    /// The checked spec.
    pub fn spec(&self) -> &RunSpec {
        &self.spec
    }

    /// The run's tokenizer, loaded once. `auto` stands for the one the server names, when this
    /// client can load it, else cl100k_base (the server's `/tokenize`, where it has one, then
    /// checks the counts); the spec is set to the one used.
    fn tokenizer(&mut self, named: Option<&str>, model: &str) -> Result<Tokenizer, BenchError> {
        if self.spec.tokenizer == spec::AUTO_TOKENIZER {
            // llama.cpp's servers name the model by the path they loaded it from: when that path is
            // a model on this machine, its tokenizer is the server's.
            let local = std::path::Path::new(model);
            let by_path = named.is_none()
                && local.is_absolute()
                && ((local.is_file() && model.ends_with(".gguf")) || local.join("tokenizer.json").is_file());
            let named = if by_path { Some(model) } else { named };
            if let Some(t) = named {
                match Tokenizer::by_name(t) {
                    Ok(tok) => {
                        tracing::info!(tokenizer = t, "counting with the tokenizer the server names");
                        t.clone_into(&mut self.spec.tokenizer);
                        return Ok(tok);
                    }
                    Err(_) => (self.observer)(&Event::Note(&format!(
                        "the server counts with the tokenizer '{t}', which this client cannot load; counting with {FALLBACK_TOKENIZER} (pass --tokenizer to match)"
                    ))),
                }
            }
            FALLBACK_TOKENIZER.clone_into(&mut self.spec.tokenizer);
        }
        Tokenizer::by_name(&self.spec.tokenizer).map_err(|e| BenchError::invalid(format!("--tokenizer: {e}")))
    }

    /// The pre-flight check, retried every second while the server is unreachable, for up to
    /// `--ready-check-timeout-sec` (vLLM's wait for a server that is still starting).
    async fn ready(&self, client: &inferbench_load::HttpClient, model: Option<&str>) -> Result<ServerInfo, ClientError> {
        let deadline = std::time::Instant::now() + self.opts.ready_check_timeout;
        let mut said = false;
        loop {
            match preflight(client, &self.target, model).await {
                Err(ClientError::Unreachable { .. }) if std::time::Instant::now() + Duration::from_secs(1) < deadline => {
                    if !said {
                        let wait = self.opts.ready_check_timeout.as_secs_f64();
                        (self.observer)(&Event::Note(&format!("waiting up to {wait:.0} s for {} to come up", self.target.base_url)));
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                r => return r,
            }
        }
    }

    /// Asks the server (vLLM's `/tokenize`) to count the first prompts and stops the run when its
    /// counts differ from ours by more than [`TOKENIZER_TOLERANCE`]: every length in the spec
    /// would otherwise be wrong by that much. Servers without `/tokenize` are not checked.
    async fn check_token_counts(
        &self,
        client: &inferbench_load::HttpClient,
        prompts: &[inferbench_data::Prompt],
    ) -> Result<(), BenchError> {
        if self.opts.allow_tokenizer_mismatch || !matches!(self.spec.backend.as_str(), "openai" | "vllm") {
            return Ok(());
        }
        let sample: Vec<&inferbench_data::Prompt> =
            prompts.iter().filter(|p| p.messages.is_none() && p.turn.is_none()).take(TOKENIZE_CHECKED).collect();
        if sample.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = sample.iter().map(|p| p.text.as_str()).collect();
        let asked = inferbench_load::server_token_count(client, &self.target, &self.spec.model, &texts);
        let Ok(Some(theirs)) = tokio::time::timeout(Duration::from_secs(10), asked).await else { return Ok(()) };
        let ours: u64 = sample.iter().map(|p| u64::from(p.input_tokens)).sum();
        tracing::info!(ours, theirs, "prompt tokens of the first prompts, by the client's and the server's count");
        let off = (theirs as f64 - ours as f64) / (theirs.max(1) as f64);
        if off.abs() > TOKENIZER_TOLERANCE {
            return Err(BenchError::invalid(format!(
                "the server counts {theirs} tokens in the first {} prompts where the tokenizer '{}' counts {ours} ({:+.0}%), so every \
                 prompt length would be off; pass --tokenizer with the model's tokenizer (a tokenizer.json, a model directory or the \
                 .gguf), or --allow-tokenizer-mismatch to run anyway",
                sample.len(),
                self.spec.tokenizer,
                off * 100.0
            )));
        }
        Ok(())
    }

    /// Where the files go, when files are written.
    pub fn paths(&self) -> Option<ResultPaths> {
        self.opts.output.as_ref().map(Output::paths)
    }

    /// Runs the benchmark.
    pub async fn run(mut self) -> Result<BenchmarkResult, BenchError> {
        // One socket per request in flight, plus files and the runtime's own descriptors.
        let in_flight = match (self.spec.max_concurrency, self.spec.request_rate, self.spec.ramp_up) {
            (Some(c), _, _) => Some((c, "--max-concurrency")),
            (None, None, None) => self.spec.num_prompts.map(|n| (n, "--num-prompts with --request-rate inf")),
            _ => None,
        };
        if let Some((n, what)) = in_flight {
            proc::ensure_open_files(n + 32, &format!("{what} {n}"))?;
        }
        let mut header = Header::now(ResultKind::Run, crate::tool_info());
        header.labels = self.opts.labels.clone();
        let client = http_client(&self.target);
        tracing::info!(url = %self.target.base_url, "pre-flight: asking the server for its models");
        let model_flag = (!self.spec.model.is_empty()).then(|| self.spec.model.clone());
        let server = tokio::select! {
            m = self.ready(&client, model_flag.as_deref()) => m.map_err(|e| BenchError::failed(e.to_string()))?,
            () = self.cancel.cancelled() => return Err(BenchError::Interrupted("during the pre-flight check".into())),
        };
        let model = server.model.clone();
        tracing::info!(%model, tokenizer = ?server.tokenizer, "pre-flight passed");
        if self.opts.reset_prefix_cache {
            let said = match inferbench_load::client::post_json(&client, &self.target, "/reset_prefix_cache", &serde_json::json!({})).await {
                Ok((200..=299, _)) => "the server's prefix cache was reset".to_owned(),
                Ok((status, _)) => format!(
                    "the prefix cache was NOT reset: POST /reset_prefix_cache answered HTTP {status} (vLLM serves it only with VLLM_SERVER_DEV_MODE=1)"
                ),
                Err(e) => format!("the prefix cache was NOT reset: {e}"),
            };
            (self.observer)(&Event::Note(&said));
        }
        self.spec.model = model.clone();
        let tokenizer = self.tokenizer(server.tokenizer.as_deref(), &model)?;
        let loaded = if self.opts.reuse_prompts {
            cached_dataset(&tokenizer, &self.spec.tokenizer, &self.dataset)?
        } else {
            load(&tokenizer, &self.dataset)?
        };
        if loaded.oversampled {
            let n = self.spec.num_prompts.map_or_else(|| "a timed run's".to_owned(), |n| n.to_string());
            (self.observer)(&Event::Note(&format!("the dataset has {} usable prompts for {n} requests; prompts repeat", loaded.available)));
        }
        if loaded.skipped > 0 {
            (self.observer)(&Event::Note(&format!("{} dataset entries skipped by the length filters", loaded.skipped)));
        }
        let dataset_stats = DatasetStats { available: loaded.available, skipped: loaded.skipped, oversampled: loaded.oversampled };
        if let Some(t) = &loaded.trace {
            let span = t.span_s();
            (self.observer)(&Event::Note(&format!(
                "replaying {} of the trace's {} requests over {span:.1} s (read in {:.2} s)",
                t.len(),
                t.lines,
                loaded.read_s
            )));
            self.spec.num_prompts = Some(t.len() as u64);
        }
        let trace = loaded.trace;
        let prompts = loaded.prompts;
        tracing::info!(prompts = prompts.len(), available = dataset_stats.available, "dataset loaded");
        tokio::select! {
            r = self.check_token_counts(&client, &prompts) => r?,
            () = self.cancel.cancelled() => return Err(BenchError::Interrupted("during the pre-flight check".into())),
        }
        let template = RequestTemplate::new(spec::backend(&self.spec)?, &spec::template_options(&self.spec, &model));
        let requester = Arc::new(
            Requester::new(client, &self.target, template, tokenizer, self.opts.keep_text)
                .with_max_response_bytes(self.opts.max_response_bytes)
                .with_request_id_prefix(self.spec.request_id_prefix.clone())
                .with_reconcile_every(self.opts.reconcile_every),
        );

        let paths = self.paths();
        let mut sinks: Vec<Box<dyn RecordSink>> = Vec::new();
        if let Some(p) = &paths {
            // A rerun under the same name must never leave the old summary beside new records.
            for old in [&p.json, &p.csv, &p.state] {
                let _ = std::fs::remove_file(old);
            }
            sinks.push(Box::new(
                RecordWriter::create(&p.records, &header.run_id).map_err(|e| BenchError::invalid(format!("--result-dir: {e}")))?,
            ));
        }
        let tls = TlsOptions { ca_cert: self.spec.ca_cert.as_ref().map(PathBuf::from), insecure: self.spec.insecure };
        let scrape = Scrape::new(&self.opts.monitor.server_metrics, &self.target.base_url, self.opts.api_key.as_deref(), &tls)?;
        let mut monitor = self.opts.monitor.clone();
        if self.opts.server_in_process && monitor.server_pid.is_none() {
            monitor.server_pid = Some(std::process::id()); // the demo: the server is this process
        }
        let monitoring =
            Monitoring::start(&monitor, scrape, paths.as_ref().map(|p| p.timeseries.clone()), self.observer.clone(), self.cancel.clone())?;
        let gauge = requester.clone();
        sinks.push(Box::new(monitoring.sink(Arc::new(move || gauge.in_flight()), self.spec.max_concurrency)));
        if let Some(live) = &self.opts.live {
            let gauge = requester.clone();
            sinks.push(Box::new(live.sink(Arc::new(move || gauge.in_flight()))));
        }
        let per_request = Arc::new(std::sync::Mutex::new(PerRequestCollector::new(self.opts.save_detailed)));
        sinks.push(Box::new(PerRequestSink(per_request.clone())));
        sinks.append(&mut self.sinks);
        let acc = Accumulator::new(&spec::summary_options(&self.spec)?).without_peak_events();
        let want_state = self.opts.shard.is_some();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let collector = std::thread::Builder::new()
            .name("inferbench-collector".into())
            .spawn(move || collect(rx, acc, sinks, want_state))
            .ctx("cannot start the collector")?;
        let ticking = CancellationToken::new();
        let ticker = {
            let (tx, stop, every) = (tx.clone(), ticking.clone(), self.opts.tick);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(every) => { if tx.send(inferbench_load::RunEvent::Tick).is_err() { break; } }
                        () = stop.cancelled() => break,
                    }
                }
            })
        };
        let mut profile = spec::load_profile(&self.spec, self.opts.grace, self.abort.clone());
        profile.start_at = self.opts.start_at;
        if let Some(shard) = self.opts.shard {
            profile.shard = Some(ShardPlan { shard, global_cap: self.spec.max_concurrency });
            profile.max_concurrency = self.spec.max_concurrency.map(|c| shard.slots(c) as usize);
        }
        let work = match trace {
            Some(t) => {
                profile.arrivals.offsets = Some(t.offsets().into());
                Prompts::Trace(t)
            }
            None => prompts.into(),
        };
        if self.spec.warmup_requests == 0 {
            let _ = tokio::task::spawn_blocking(monitoring.baseline_taker()).await;
        }
        let outcome = run_load(requester, work, profile, tx, self.cancel.clone()).await;
        ticking.cancel();
        let _ = ticker.await;
        let cpu_end = proc::cpu_seconds();
        let collected = tokio::task::spawn_blocking(move || collector.join()).await;
        let Ok(Ok(Collected { mut summary, warmups, cpu_at_start, sink_errors, state })) = collected else {
            return Err(BenchError::failed("the collector thread panicked"));
        };
        summary.max_concurrent_requests = outcome.peak_in_flight;
        let (monitors, monitor_errors) = monitoring.finish(Some(summary.total_output_tokens));
        header.end();
        tracing::info!(completed = summary.completed, failed = summary.failed, interrupted = outcome.interrupted, "run finished");
        let global_cap = self.spec.max_concurrency;
        let result = BenchmarkResult {
            header,
            spec: self.spec,
            summary,
            client: ClientUsage {
                cpu_s: (cpu_end - cpu_at_start).max(0.0),
                peak_rss_bytes: proc::peak_rss_bytes(),
                includes_server: self.opts.server_in_process,
            },
            warmup_excluded: warmups,
            dataset: dataset_stats,
            interrupted: outcome.interrupted,
            monitors: (!monitors.is_empty() || monitors.timeseries_file.is_some()).then_some(monitors),
            shard: self.opts.shard.map(|shard| ShardInfo {
                shard,
                max_concurrency: global_cap.map(|c| shard.slots(c)),
                scheduled: outcome.scheduled,
                epoch_unix_ns: outcome.epoch_unix_ns,
                start_at_unix_ns: self
                    .opts
                    .start_at
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos() as u64),
                late_ms: outcome.late_ns.map(|ns| ns as f64 / 1e6),
                clock: proc::clock_sync(),
                state_file: paths.as_ref().map(|p| p.state.file_name().unwrap_or_default().to_string_lossy().into_owned()),
            }),
            merged: None,
            per_request: std::mem::take(&mut *per_request.lock().unwrap_or_else(|e| e.into_inner())).finish(),
            imported: None,
        };
        // Every file is attempted; what failed is reported once, with the result kept.
        let measured = result.summary.completed + result.summary.failed;
        let mut unsaved: Vec<String> =
            sink_errors.into_iter().map(|e| format!("{e}; {measured} requests were measured (the summary counts them all)")).collect();
        unsaved.extend(monitor_errors);
        if let Some(p) = &paths {
            match state {
                None => {}
                Some(Err(e)) => unsaved.push(format!("{}: {e}", p.state.display())),
                Some(Ok(mut st)) => {
                    st.peak_in_flight = outcome.peak_in_flight;
                    let bytes = serde_json::to_vec(&st).unwrap_or_default();
                    if let Err(e) = inferbench_report::files::write_atomic(&p.state, &bytes) {
                        unsaved.push(format!("{}: {e}", p.state.display()));
                    }
                }
            }
            if let Err(e) = write_json(&p.json, &result) {
                unsaved.push(e.to_string());
            }
            if let Err(e) = write_csv_summary(&p.csv, &result) {
                unsaved.push(e.to_string());
            }
        }
        if !unsaved.is_empty() {
            return Err(BenchError::Unsaved(Box::new(result), unsaved.join("; ")));
        }
        Ok(result)
    }
}

fn load(tokenizer: &Tokenizer, opts: &DatasetOptions) -> Result<Dataset, BenchError> {
    load_dataset(tokenizer, opts).ctx("loading the dataset")
}

/// Loads the dataset, reusing the previous run's prompts when a sweep asks for the same generated
/// set again (same options, same tokenizer), so no time goes to regenerating them between steps.
/// File datasets are always read afresh.
fn cached_dataset(tokenizer: &Tokenizer, tokenizer_name: &str, opts: &DatasetOptions) -> Result<Dataset, BenchError> {
    static LAST: std::sync::Mutex<Option<(String, Dataset)>> = std::sync::Mutex::new(None);
    let key = opts.path.is_none().then(|| format!("{tokenizer_name}|{opts:?}"));
    if let Some(k) = &key {
        if let Some((_, d)) = LAST.lock().unwrap_or_else(|e| e.into_inner()).as_ref().filter(|(c, _)| c == k) {
            return Ok(d.clone());
        }
    }
    let loaded = load(tokenizer, opts)?;
    if let Some(k) = key {
        *LAST.lock().unwrap_or_else(|e| e.into_inner()) = Some((k, loaded.clone()));
    }
    Ok(loaded)
}

/// Feeds vLLM's per-request arrays from the collector thread; the run takes them at the end.
struct PerRequestSink(Arc<std::sync::Mutex<PerRequestCollector>>);

impl RecordSink for PerRequestSink {
    fn record(&mut self, record: &inferbench_core::RequestRecord) -> Result<(), inferbench_core::SinkError> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).add(record);
        Ok(())
    }
}
