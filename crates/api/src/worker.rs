//! The one worker: takes the oldest queued benchmark from the database, runs it on a runtime of
//! its own (so the API's answers never wait behind the load generator's tasks), feeds its live
//! view, writes its files under `<results>/<id>/`, indexes the result in the store, and takes the
//! next. One at a time, because two benchmarks on one machine corrupt each other's numbers.

use crate::live::{LiveJob, LiveSink};
use crate::submit::{self, Plan, Secrets, Server};
use inferbench_bench::serving::{Output, RunOptions};
use inferbench_bench::{Benchmark, Event, Observer, SweepOptions};
use inferbench_core::time::rfc3339_now;
use inferbench_store::queue::{Job, Status};
use inferbench_store::Store;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a cancelled run's requests in flight may finish before they are cut.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// What the API's handlers and the worker share.
pub struct Shared {
    /// The results database (queue and index).
    pub store_path: PathBuf,
    /// Where each benchmark's directory goes.
    pub results_dir: PathBuf,
    wake: tokio::sync::Notify,
    running: Mutex<Option<Arc<LiveJob>>>,
    secrets: Mutex<HashMap<String, Secrets>>,
    stop: CancellationToken,
}

impl Shared {
    /// Shared state over this database and results directory.
    pub fn new(store_path: PathBuf, results_dir: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            store_path,
            results_dir,
            wake: tokio::sync::Notify::new(),
            running: Mutex::new(None),
            secrets: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
        })
    }

    /// Keeps a queued job's secrets in memory until it runs.
    pub fn keep_secrets(&self, id: &str, s: Secrets) {
        if s.any() {
            self.secrets.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), s);
        }
    }

    /// Forgets a job's secrets (it was cancelled before it ran).
    pub fn drop_secrets(&self, id: &str) {
        self.secrets.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// A new job is queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The live view of the job running now, if it is `id`.
    pub fn live(&self, id: &str) -> Option<Arc<LiveJob>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).as_ref().filter(|l| l.id == id).cloned()
    }

    fn set_running(&self, l: Option<Arc<LiveJob>>) {
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = l;
    }

    /// Stops the worker after the job in progress (which is cancelled).
    pub fn shutdown(&self) {
        self.stop.cancel();
        if let Some(l) = self.running.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            l.cancel.cancel();
        }
        self.wake.notify_one();
    }
}

/// Cancels the running job `id`: no new requests, the ones in flight get [`CANCEL_GRACE`].
pub fn cancel(live: &Arc<LiveJob>) {
    live.cancel.cancel();
    let abort = live.abort.clone();
    std::thread::spawn(move || {
        std::thread::sleep(CANCEL_GRACE);
        abort.cancel();
    });
}

/// Starts the worker thread.
pub fn spawn(shared: Arc<Shared>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("inferbench-api-worker".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("inferbench-bench").build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("the benchmark runtime did not start: {e}");
                return;
            }
        };
        rt.block_on(work(shared));
    })
}

async fn work(shared: Arc<Shared>) {
    let mut store = match Store::open(&shared.store_path) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("worker: {e}");
            return;
        }
    };
    while !shared.stop.is_cancelled() {
        let next = match store.take_next(&rfc3339_now()) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!("worker: {e}");
                None
            }
        };
        match next {
            Some(job) => execute(&shared, &mut store, job).await,
            None => {
                let _ = tokio::time::timeout(Duration::from_secs(1), shared.wake.notified()).await;
            }
        }
    }
}

/// What a finished benchmark left.
struct Ended {
    status: Status,
    error: Option<String>,
    result: Option<PathBuf>,
}

async fn execute(shared: &Shared, store: &mut Store, job: Job) {
    let dir = shared.results_dir.join(&job.id);
    let live = LiveJob::new(&job.id, Some(dir.join("events.jsonl")).filter(|_| std::fs::create_dir_all(&dir).is_ok()));
    shared.set_running(Some(live.clone()));
    let secrets = shared.secrets.lock().unwrap_or_else(|e| e.into_inner()).remove(&job.id).unwrap_or_default();
    let ticker = {
        let live = live.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.tick().await;
            loop {
                every.tick().await;
                live.tick();
            }
        })
    };
    tracing::info!(id = job.id, kind = job.kind, "benchmark starts");
    let ended = if job.secret && !secrets.any() {
        Ended {
            status: Status::Failed,
            error: Some(
                "it was submitted with an API key or URL password, which is never stored and did not survive the restart; submit it again"
                    .into(),
            ),
            result: None,
        }
    } else {
        // Stopped by a DELETE: cancelled; by the API process stopping: interrupted.
        let stopped = || if shared.stop.is_cancelled() { Status::Interrupted } else { Status::Cancelled };
        match run(&job, &dir, &live, secrets).await {
            Ok(path) if live.cancel.is_cancelled() => {
                let status = stopped();
                let error =
                    (status == Status::Interrupted).then(|| "the API was stopped while it ran; what it measured is kept".to_owned());
                Ended { status, error, result: Some(path) }
            }
            Ok(path) => Ended { status: Status::Done, error: None, result: Some(path) },
            Err(e) => {
                let status = if live.cancel.is_cancelled() { stopped() } else { Status::Failed };
                Ended { status, error: Some(e), result: None }
            }
        }
    };
    ticker.abort();
    live.tick();
    // The result goes into the index; its key figures onto the job.
    let mut metrics = BTreeMap::new();
    if let Some(p) = &ended.result {
        if let Ok(saved) = inferbench_bench::saved::read(p) {
            let entry = inferbench_store::entry_of(&saved, p);
            metrics.clone_from(&entry.metrics);
            if let Err(e) = store.record(&[entry]) {
                tracing::warn!("{e}");
            }
        }
    }
    let shown = ended.result.as_ref().map(|p| p.display().to_string());
    if let Err(e) = store.finish_job(&job.id, ended.status, &rfc3339_now(), ended.error.as_deref(), shown.as_deref(), &metrics) {
        tracing::error!("{e}");
    }
    live.publish("end", json!({"status": ended.status, "error": ended.error, "metrics": metrics}));
    tracing::info!(id = job.id, status = ended.status.as_str(), "benchmark ended");
    shared.set_running(None);
}

/// Notes, progress lines and sweep steps as events.
fn observer(live: &Arc<LiveJob>) -> Observer {
    let live = live.clone();
    Arc::new(move |e: &Event<'_>| match e {
        Event::Note(t) => live.publish("note", json!({"text": t})),
        Event::Progress(t) => live.publish("note", json!({"text": t})),
        Event::StepStarted { title, load, repeat, .. } => {
            live.publish("step", json!({"title": title, "load": load, "repeat": repeat.map(|r| r.0)}));
        }
        Event::StepDone { .. } => {}
    })
}

/// A server this process runs for one benchmark.
struct Background {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Background {
    async fn start(gen: Arc<dyn inferbench_server::Generator>) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(inferbench_server::serve(listener, gen, None, None, async move {
            let _ = rx.await;
        }));
        Ok(Self { url: format!("http://{addr}"), stop, task })
    }

    async fn stop(mut self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(Duration::from_secs(2), &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

async fn start_server(which: Server, model: Option<String>, live: &Arc<LiveJob>) -> Result<Background, String> {
    match which {
        Server::Simulator => {
            let sim = inferbench_server::Simulator::new(inferbench_server::SimConfig::default())?;
            Background::start(Arc::new(sim)).await
        }
        Server::Embedded => {
            live.publish("note", json!({"text": "loading the embedded model"}));
            let gen = tokio::task::spawn_blocking(move || -> Result<Arc<dyn inferbench_server::Generator>, String> {
                let (path, name) = inferbench_bench::models::resolve(model.as_deref(), &mut |_| {}).map_err(|e| e.to_string())?;
                let loaded = inferbench_engine::load(&path, &inferbench_engine::LoadOptions::default())
                    .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
                let cfg = inferbench_engine::EngineConfig {
                    threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
                    ..inferbench_engine::EngineConfig::default()
                };
                let engine = inferbench_engine::Engine::start(loaded.model.clone(), loaded.tokenizer.clone(), loaded.eos.clone(), cfg)
                    .map_err(|e| format!("cannot start the engine: {e}"))?;
                Ok(Arc::new(inferbench_server::EngineGenerator::new(engine, name)))
            })
            .await
            .map_err(|e| e.to_string())??;
            Background::start(gen).await
        }
    }
}

/// Runs the job; its main result file, or why it failed.
async fn run(job: &Job, dir: &Path, live: &Arc<LiveJob>, secrets: Secrets) -> Result<PathBuf, String> {
    let checked = submit::submission(job.request.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let server = match checked.server {
        Some(s) => Some(start_server(s, checked.server_model.clone(), live).await?),
        None => None,
    };
    let metrics = inferbench_bench::live::LiveMetrics::default();
    let gauge = metrics.clone();
    live.set_gauge(Arc::new(move || gauge.in_flight()));
    let opts = RunOptions {
        api_key: secrets.api_key.clone(),
        output: Some(Output { dir: dir.to_path_buf(), stem: "result".into() }),
        labels: job.labels.clone(),
        server_in_process: server.is_some(),
        live: Some(metrics),
        ..RunOptions::default()
    };
    let url = |spec_url: &str| -> String {
        match (&server, &secrets.base_url) {
            (Some(s), _) => s.url.clone(),
            (None, Some(real)) => real.clone(),
            (None, None) => spec_url.to_owned(),
        }
    };
    let outcome = match checked.plan {
        Plan::Run(mut spec) => {
            spec.base_url = url(&spec.base_url);
            live.set_step(None, spec.num_prompts);
            async {
                let bench = Benchmark::serving(*spec, opts).map_err(|e| e.to_string())?;
                let paths = bench.paths().ok_or("no result files")?;
                bench
                    .with_sink(LiveSink(live.clone()))
                    .cancel_on(live.cancel.clone())
                    .abort_on(live.abort.clone())
                    .observe(observer(live))
                    .run()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(paths.json)
            }
            .await
        }
        Plan::Sweep(mut spec) => {
            spec.run.base_url = url(&spec.run.base_url);
            async {
                let bench = Benchmark::sweep(*spec, SweepOptions { run: opts }).map_err(|e| e.to_string())?;
                let path = bench.sweep_path().ok_or("no result files")?;
                let for_steps = live.clone();
                bench
                    .with_sinks(Arc::new(move |s: &inferbench_core::RunSpec| {
                        let load = s.max_concurrency.map(|c| format!("c={c}")).or_else(|| s.request_rate.map(|r| format!("rate={r}")));
                        for_steps.set_step(load, s.num_prompts);
                        vec![Box::new(LiveSink(for_steps.clone())) as Box<dyn inferbench_core::RecordSink>]
                    }))
                    .cancel_on(live.cancel.clone())
                    .abort_on(live.abort.clone())
                    .observe(observer(live))
                    .run()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(path)
            }
            .await
        }
        Plan::Engine(mut cfg) => {
            cfg.report.output_dir = dir.to_path_buf();
            cfg.report.file_name = Some("result".into());
            async {
                Benchmark::engine(*cfg)
                    .map_err(|e| e.to_string())?
                    .with_sink(LiveSink(live.clone()))
                    .observe(observer(live))
                    .labels(job.labels.clone())
                    .cancel_on(live.cancel.clone())
                    .run()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(dir.join("result.json"))
            }
            .await
        }
    };
    if let Some(s) = server {
        s.stop().await;
    }
    let path = outcome?;
    // The report is drawn once, beside the result.
    if let Ok(saved) = inferbench_bench::saved::read(&path) {
        match inferbench_bench::html::render(&path, &saved) {
            Ok(page) => {
                if let Err(e) = inferbench_report::write_atomic(&inferbench_bench::html::path_beside(&path), page.as_bytes()) {
                    tracing::warn!("the HTML report was not written: {e}");
                }
            }
            Err(e) => tracing::warn!("the HTML report was not drawn: {e}"),
        }
    }
    Ok(path)
}
