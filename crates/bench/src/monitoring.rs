//! The monitors of a run, on the run's clock: a thread that scrapes the server's Prometheus page,
//! a thread that reads the GPUs and this machine, and a sink on the collector thread that writes
//! the client's own series, checks alerts and finds the steady-state window. Everything sampled
//! goes to `<name>.timeseries.jsonl` as it is taken; the summaries go into the result.

use crate::observer::{Event, Observer};
use inferbench_core::monitor::{MonitorReport, Quantiles, SteadyState};
use inferbench_core::{RecordSink, RequestRecord, SinkError};
use inferbench_load::{http_client, HttpTarget};
use inferbench_monitor::{Alerts, GpuMonitor, GpuSource, HostMonitor, HostProbe, Page, Rule, ServerMonitor, Watched, Window};
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Where the server's metrics come from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ServerMetrics {
    /// Not scraped.
    Off,
    /// The target's `/metrics`, if it answers with a Prometheus page (else one note, and none).
    #[default]
    Auto,
    /// This URL; failures are counted and the run goes on.
    Url(String),
}

/// Opens the GPU source: NVML normally, a fake in tests.
pub type GpuOpener = Arc<dyn Fn(Option<&[u32]>) -> Result<Box<dyn GpuSource>, String> + Send + Sync>;

/// How the monitors run. None of it shapes the workload, so none of it is in the spec.
#[derive(Clone)]
pub struct MonitorOptions {
    /// The server's Prometheus page.
    pub server_metrics: ServerMetrics,
    /// How often it is scraped.
    pub metrics_interval: Duration,
    /// Watch NVIDIA GPUs (says "no NVIDIA GPU found" once where there are none).
    pub gpu: bool,
    /// Only these GPU indices.
    pub gpus: Option<Vec<u32>>,
    /// How often the GPUs and the host are read.
    pub gpu_interval: Duration,
    /// Where GPU readings come from; `None` is NVML.
    pub gpu_source: Option<GpuOpener>,
    /// Watch this machine (CPU, memory, network, RAPL).
    pub host: bool,
    /// A local server process to watch (CPU, RSS).
    pub server_pid: Option<u32>,
    /// Alert rules.
    pub alerts: Vec<Rule>,
    /// The rolling window alerts are judged on.
    pub alert_window: Duration,
    /// Stop the run when an alert fires, keeping what was measured.
    pub abort_on_alert: bool,
    /// Also write the GPU section alone here (seed 001's `benchmark_results_gpu.json`).
    pub gpu_results_file: Option<PathBuf>,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        Self {
            server_metrics: ServerMetrics::Auto,
            metrics_interval: Duration::from_secs(1),
            gpu: true,
            gpus: None,
            gpu_interval: Duration::from_secs(1),
            gpu_source: None,
            host: true,
            server_pid: None,
            alerts: Vec::new(),
            alert_window: Duration::from_secs(10),
            abort_on_alert: false,
            gpu_results_file: None,
        }
    }
}

impl MonitorOptions {
    /// Every monitor off (tests, and runs that must not touch anything but the target).
    pub fn off() -> Self {
        Self { server_metrics: ServerMetrics::Off, gpu: false, host: false, ..Self::default() }
    }
}

/// Appends time-series lines, flushed as written so a crash keeps what was sampled.
struct TsWriter {
    file: std::io::BufWriter<std::fs::File>,
    error: Option<String>,
}

impl TsWriter {
    fn write(&mut self, v: &Value) {
        if self.error.is_some() {
            return;
        }
        let r = serde_json::to_writer(&mut self.file, v).map_err(std::io::Error::from).and_then(|()| {
            self.file.write_all(b"\n")?;
            self.file.flush()
        });
        if let Err(e) = r {
            tracing::warn!("time series: {e}; no more lines are written");
            self.error = Some(e.to_string());
        }
    }
}

#[derive(Default)]
struct State {
    epoch: Option<Instant>,
    stopping: bool,
    generation: u64,
    /// A baseline page is wanted now (the run is about to start).
    want_baseline: bool,
    /// The window's baseline page has been taken.
    based: bool,
    server: Option<ServerMonitor>,
    gpu: Option<GpuMonitor>,
    host: Option<HostMonitor>,
    fired: Vec<inferbench_core::monitor::AlertFiring>,
    steady: Option<SteadyState>,
    /// Output tokens of the successful records the sink saw.
    sink_tokens: u64,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    ts: Mutex<Option<TsWriter>>,
    observer: Observer,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, v: &Value) {
        if let Some(w) = self.ts.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            w.write(v);
        }
    }

    fn note(&self, s: &str) {
        (self.observer)(&Event::Note(s));
    }

    /// Waits up to `d`, or until the generation moves on; returns the state's lock.
    fn wait(&self, d: Duration, seen: u64) -> MutexGuard<'_, State> {
        let g = self.lock();
        self.wake.wait_timeout_while(g, d, |s| s.generation == seen && !s.stopping).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0)
    }

    fn bump(&self, f: impl FnOnce(&mut State)) {
        let mut g = self.lock();
        f(&mut g);
        g.generation += 1;
        drop(g);
        self.wake.notify_all();
    }
}

/// A scrape target: the target's connection settings (auth only when it is the target's host).
pub struct Scrape {
    target: HttpTarget,
    path: String,
    shown: String,
    auto: bool,
}

impl Scrape {
    /// The page `how` names for a run against `base_url`, or `None` when off.
    pub fn new(
        how: &ServerMetrics,
        base_url: &str,
        api_key: Option<&str>,
        tls: &inferbench_load::TlsOptions,
    ) -> Result<Option<Scrape>, crate::BenchError> {
        let (url, auto) = match how {
            ServerMetrics::Off => return Ok(None),
            ServerMetrics::Auto => (format!("{}/metrics", base_url.trim_end_matches('/')), true),
            ServerMetrics::Url(u) => (u.clone(), false),
        };
        let shown = inferbench_load::client::redact_url(&url);
        let bad = |why: String| crate::BenchError::invalid(format!("--server-metrics '{shown}': {why}"));
        let rest = url.split_once("://").map(|(_, r)| r).ok_or_else(|| bad("expected http://HOST:PORT/PATH".into()))?;
        let cut = rest.find('/').map_or(url.len(), |i| url.len() - rest.len() + i);
        let (base, path) = url.split_at(cut);
        let path = if path.is_empty() { "/metrics" } else { path };
        // The API key goes only where the run's requests go.
        let same_host = authority(base) == authority(base_url);
        let key = api_key.filter(|_| same_host);
        let target = HttpTarget::with_transport(base, "/", key, Duration::from_secs(5), tls, &inferbench_load::ProxyEnv::from_env())
            .map_err(|e| bad(e.to_string()))?;
        Ok(Some(Scrape { target, path: path.to_owned(), shown, auto }))
    }
}

fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or("")
}

/// The monitors of one run.
pub struct Monitoring {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    timeseries: Option<PathBuf>,
    opts: MonitorOptions,
    cancel: CancellationToken,
}

static SAID_NO_GPU: AtomicBool = AtomicBool::new(false);

impl Monitoring {
    /// Starts the sampler threads. `timeseries`: the file for the series (created now);
    /// `cancel`: the run's stop token, for `--abort-on-alert`.
    pub fn start(
        opts: &MonitorOptions,
        scrape: Option<Scrape>,
        timeseries: Option<PathBuf>,
        observer: Observer,
        cancel: CancellationToken,
    ) -> Result<Monitoring, crate::BenchError> {
        let ts = match &timeseries {
            Some(p) => Some(TsWriter {
                file: std::io::BufWriter::new(
                    std::fs::File::create(p).map_err(|e| crate::BenchError::invalid(format!("--result-dir: {}: {e}", p.display())))?,
                ),
                error: None,
            }),
            None => None,
        };
        let shared = Arc::new(Shared { state: Mutex::default(), wake: Condvar::new(), ts: Mutex::new(ts), observer });
        let mut threads = Vec::new();
        if let Some(s) = scrape {
            shared.lock().server = Some(ServerMonitor::new(&s.shown));
            let (sh, every) = (shared.clone(), opts.metrics_interval);
            threads.push(spawn("inferbench-scrape", move || scrape_loop(&sh, &s, every))?);
        }
        let gpu = if opts.gpu {
            let opened = match &opts.gpu_source {
                Some(open) => open(opts.gpus.as_deref()),
                None => inferbench_monitor::Nvml::open(opts.gpus.as_deref()).map(|n| Box::new(n) as Box<dyn GpuSource>),
            };
            match opened {
                Ok(src) => Some(src),
                Err(e) if e.starts_with(inferbench_monitor::NO_GPU) => {
                    if !SAID_NO_GPU.swap(true, Ordering::Relaxed) {
                        shared.note(inferbench_monitor::NO_GPU);
                    }
                    tracing::debug!("{e}");
                    None
                }
                Err(e) => return Err(crate::BenchError::invalid(e)),
            }
        } else {
            None
        };
        if gpu.is_some() || opts.host {
            let probe = opts.host.then(|| HostProbe::new(opts.server_pid));
            {
                let mut g = shared.lock();
                if let Some(src) = &gpu {
                    g.gpu = Some(GpuMonitor::new(&src.devices()));
                }
                if let Some(p) = &probe {
                    g.host = Some(HostMonitor::new(opts.server_pid, p.rapl_zone_names(), p.rapl_ranges()));
                }
            }
            let (sh, every) = (shared.clone(), opts.gpu_interval);
            threads.push(spawn("inferbench-sample", move || machine_loop(&sh, gpu, probe, every))?);
        }
        Ok(Monitoring { shared, threads, timeseries, opts: opts.clone(), cancel })
    }

    /// Takes the server's baseline page now, waiting up to 5 s for it: called as the measured
    /// requests are about to start (with no warm-up requests in between), so the window's counter
    /// deltas count exactly the run's work. Without it (warm-up runs) the first page after the
    /// window opens is the baseline.
    pub fn baseline_taker(&self) -> impl FnOnce() + Send + 'static {
        let sh = self.shared.clone();
        move || {
            let mut g = sh.lock();
            if g.server.is_none() {
                return;
            }
            g.want_baseline = true;
            g.generation += 1;
            sh.wake.notify_all();
            let _ = sh.wake.wait_timeout_while(g, Duration::from_secs(5), |s| s.want_baseline && s.server.is_some() && !s.stopping);
        }
    }

    /// The sink that feeds the client's series, the alerts and the steady-state window from the
    /// records; `in_flight` reads the requests in flight now; `target` is the concurrency the run
    /// holds, if it has one.
    pub fn sink(&self, in_flight: Arc<dyn Fn() -> u64 + Send + Sync>, target: Option<u64>) -> ClientSink {
        let alerts = Alerts::new(self.opts.alerts.clone());
        let keep_itl = alerts.wants_itl();
        ClientSink {
            shared: self.shared.clone(),
            in_flight,
            target,
            epoch: None,
            last_tick: 0.0,
            bin: Bin::default(),
            compact: Vec::new(),
            window: Window::new(self.opts.alert_window.as_secs_f64()),
            keep_itl,
            alerts,
            abort: self.opts.abort_on_alert.then(|| self.cancel.clone()),
        }
    }

    /// Stops the samplers (each takes a last reading) and returns what they saw; `output_tokens`
    /// is the run's, for energy per token (`None`: the output tokens of the records the sink saw).
    pub fn finish(mut self, output_tokens: Option<u64>) -> (MonitorReport, Vec<String>) {
        self.shared.bump(|s| s.stopping = true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let mut errors = Vec::new();
        if let Some(w) = self.shared.ts.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if let Some(e) = &w.error {
                errors.push(format!("time series not fully written: {e}"));
            }
        }
        let mut g = self.shared.lock();
        let output_tokens = output_tokens.unwrap_or(g.sink_tokens);
        let report = MonitorReport {
            server: g.server.as_ref().filter(|s| s_has_data(s)).map(|s| s.report(output_tokens)),
            gpu: g.gpu.as_ref().and_then(|m| m.report(output_tokens)),
            host: g.host.as_ref().and_then(|m| m.report(output_tokens)),
            steady_state: g.steady.take(),
            alerts: std::mem::take(&mut g.fired),
            timeseries_file: self.timeseries.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
        };
        if let (Some(path), Some(gpu)) = (&self.opts.gpu_results_file, &report.gpu) {
            let bytes = serde_json::to_vec_pretty(gpu).unwrap_or_default();
            if let Err(e) = inferbench_report::files::write_atomic(path, &bytes) {
                errors.push(format!("--gpu-results-file {}: {e}", path.display()));
            }
        }
        (report, errors)
    }
}

fn s_has_data(s: &ServerMonitor) -> bool {
    s.report(0).scrapes > 0
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, crate::BenchError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| crate::BenchError::failed(format!("cannot start the {name} thread: {e}")))
}

/// Scrapes until stopped: before the measured window each page replaces the baseline; the first
/// page after the window opens is the baseline the run's deltas are taken from; then every page
/// is a sample; and one last page when the run ends.
fn scrape_loop(sh: &Shared, s: &Scrape, every: Duration) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            sh.note(&format!("server metrics off: cannot start the scraper: {e}"));
            return;
        }
    };
    let client = http_client(&s.target);
    let (mut ok_once, mut warned) = (false, false);
    loop {
        let fetched = rt.block_on(async {
            let (status, body) = inferbench_load::client::get(&client, &s.target, &s.path).await.map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!("HTTP {status}"));
            }
            let text = String::from_utf8(body).map_err(|_| "the page is not UTF-8 text".to_owned())?;
            let page = Page::parse(&text);
            if page.gauges.is_empty() && page.counters.is_empty() && page.histograms.is_empty() {
                return Err(format!("no Prometheus metrics in the page ({} lines skipped)", page.skipped_lines));
            }
            Ok(page)
        });
        let mut g = sh.lock();
        match fetched {
            Ok(page) => {
                ok_once = true;
                let (epoch, want, based) = (g.epoch, g.want_baseline, g.based);
                if g.server.is_none() {
                    return;
                }
                if want || (epoch.is_some() && !based) {
                    g.based = true;
                    g.want_baseline = false;
                }
                let Some(mon) = g.server.as_mut() else { return };
                match epoch {
                    None if want => {
                        mon.baseline(0.0, page);
                        sh.wake.notify_all();
                    }
                    None if based => {}
                    None => mon.baseline(0.0, page),
                    Some(epoch) if !based => mon.baseline(epoch.elapsed().as_secs_f64(), page),
                    Some(epoch) => {
                        let line = mon.observe(epoch.elapsed().as_secs_f64(), page);
                        drop(g);
                        sh.write(&line);
                        g = sh.lock();
                    }
                }
            }
            Err(e) if s.auto && !ok_once => {
                g.server = None;
                g.want_baseline = false;
                drop(g);
                sh.wake.notify_all();
                sh.note(&format!("no server metrics: {} did not answer with a Prometheus page ({e}); pass --server-metrics URL", s.shown));
                return;
            }
            Err(e) => {
                if let Some(m) = g.server.as_mut() {
                    m.failed();
                }
                if g.want_baseline {
                    g.want_baseline = false;
                    sh.wake.notify_all();
                }
                if !warned {
                    warned = true;
                    drop(g);
                    sh.note(&format!("server metrics: scraping {} failed ({e}); the run goes on and failures are counted", s.shown));
                    g = sh.lock();
                }
            }
        }
        if g.stopping {
            return;
        }
        let seen = g.generation;
        drop(g);
        drop(sh.wait(every, seen));
    }
}

/// Reads the GPUs and the host every `every` while the window is open, once as it opens and once
/// as the run ends.
fn machine_loop(sh: &Shared, mut gpu: Option<Box<dyn GpuSource>>, probe: Option<HostProbe>, every: Duration) {
    let devices: Vec<u32> = gpu.as_ref().map(|g| g.devices().iter().map(|d| d.index).collect()).unwrap_or_default();
    let mut seen = sh.lock().generation;
    loop {
        let g = sh.wait(every, seen);
        seen = g.generation;
        let (epoch, stopping) = (g.epoch, g.stopping);
        drop(g);
        if let Some(epoch) = epoch {
            let readings: Vec<_> = match gpu.as_mut() {
                Some(src) => devices.iter().map(|&i| src.read(i).ok()).collect(),
                None => Vec::new(),
            };
            let host = probe.as_ref().map(HostProbe::read);
            let t = epoch.elapsed().as_secs_f64();
            let mut lines = Vec::new();
            let mut g = sh.lock();
            if let Some(m) = g.gpu.as_mut() {
                lines.extend(m.observe(t, &readings));
            }
            if let (Some(m), Some(r)) = (g.host.as_mut(), host) {
                lines.push(m.observe(t, r));
            }
            drop(g);
            lines.iter().for_each(|l| sh.write(l));
        }
        if stopping {
            return;
        }
    }
}

#[derive(Default)]
struct Bin {
    completed: u64,
    failed: u64,
    output_tokens: u64,
    ttft: Vec<f64>,
    itl: Vec<f64>,
}

/// What the steady-state window needs of each request.
#[derive(Clone, Copy)]
struct Compact {
    start_ns: u64,
    first_ns: Option<u64>,
    end_ns: u64,
    ok: bool,
    output_tokens: u64,
    ttft_ms: Option<f64>,
    tpot_ms: Option<f64>,
    e2el_ms: f64,
}

/// The monitors' sink on the collector thread.
pub struct ClientSink {
    shared: Arc<Shared>,
    in_flight: Arc<dyn Fn() -> u64 + Send + Sync>,
    target: Option<u64>,
    epoch: Option<Instant>,
    last_tick: f64,
    bin: Bin,
    compact: Vec<Compact>,
    window: Window,
    keep_itl: bool,
    alerts: Alerts,
    abort: Option<CancellationToken>,
}

impl ClientSink {
    fn client_line(&mut self, t: f64) {
        let dt = t - self.last_tick;
        if dt <= 0.0 {
            return;
        }
        let b = std::mem::take(&mut self.bin);
        let q = |mut v: Vec<f64>, p: f64| {
            v.sort_by(f64::total_cmp);
            (!v.is_empty()).then(|| (inferbench_core::stats::percentile_sorted(&v, p) * 1e3).round() / 1e3)
        };
        self.shared.write(&json!({
            "t": (t * 1e3).round() / 1e3, "source": "client", "in_flight": (self.in_flight)(),
            "completed": b.completed, "failed": b.failed, "output_tokens": b.output_tokens,
            "output_throughput": b.output_tokens as f64 / dt, "request_throughput": b.completed as f64 / dt,
            "ttft_ms_p50": q(b.ttft.clone(), 50.0), "ttft_ms_p99": q(b.ttft, 99.0),
            "itl_ms_p50": q(b.itl.clone(), 50.0), "itl_ms_p99": q(b.itl, 99.0),
        }));
        self.last_tick = t;
    }

    fn check_alerts(&mut self, t: f64) {
        if self.alerts.all_fired() {
            return;
        }
        self.window.advance((t * 1e9) as u64);
        let latest = {
            let g = self.shared.lock();
            let server = |n: &str| g.server.as_ref().and_then(|s| s.latest(n));
            (
                server("kv_cache_usage"),
                server("waiting"),
                g.host.as_ref().and_then(HostMonitor::latest_memory_pct),
                g.gpu.as_ref().and_then(GpuMonitor::latest_memory_pct),
            )
        };
        let window = &self.window;
        let fired = self.alerts.check(t, |w| match w {
            Watched::KvCacheUsage => latest.0,
            Watched::Waiting => latest.1,
            Watched::MemoryUsage => latest.2.map(|p| p / 100.0),
            Watched::GpuMemoryUsage => latest.3.map(|p| p / 100.0),
            w => window.value(w),
        });
        for f in &fired {
            let stop = if self.abort.is_some() { "; stopping the run (--abort-on-alert)" } else { "" };
            self.shared.note(&format!("alert: {} at {:.1} s (value {}){stop}", f.rule, f.at_s, shown(f.value)));
        }
        if !fired.is_empty() {
            if let Some(abort) = &self.abort {
                if !abort.is_cancelled() {
                    self.alerts.mark_aborted();
                    abort.cancel();
                }
            }
            self.shared.lock().fired = self.alerts.fired().to_vec();
        }
    }
}

fn shown(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

impl RecordSink for ClientSink {
    fn measure_start(&mut self, epoch: Instant) {
        self.epoch = Some(epoch);
        self.shared.bump(|s| s.epoch = Some(epoch));
    }

    fn record(&mut self, r: &RequestRecord) -> Result<(), SinkError> {
        let ok = r.is_success();
        if ok {
            self.bin.completed += 1;
            self.bin.output_tokens += r.output_tokens;
            if let Some(t) = r.ttft_ms() {
                self.bin.ttft.push(t);
            }
            self.bin.itl.extend(r.itl_ns.iter().map(|&n| n as f64 / 1e6));
        } else {
            self.bin.failed += 1;
        }
        self.compact.push(Compact {
            start_ns: r.start_ns(),
            first_ns: r.first_token_ns,
            end_ns: r.end_ns,
            ok,
            output_tokens: r.output_tokens,
            ttft_ms: r.ttft_ms(),
            tpot_ms: r.tpot_ms(),
            e2el_ms: r.e2el_ms(),
        });
        if !self.alerts.is_empty() {
            self.window.add(r, self.keep_itl);
        }
        Ok(())
    }

    fn tick(&mut self, elapsed: Duration) {
        let t = elapsed.as_secs_f64();
        self.client_line(t);
        if !self.alerts.is_empty() {
            self.check_alerts(t);
        }
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if let Some(epoch) = self.epoch {
            let t = epoch.elapsed().as_secs_f64();
            self.client_line(t);
            if !self.alerts.is_empty() {
                self.check_alerts(t);
            }
        }
        let steady = steady_state(&self.compact, self.target);
        let tokens = self.compact.iter().filter(|c| c.ok).map(|c| c.output_tokens).sum();
        let mut g = self.shared.lock();
        g.steady = steady;
        g.sink_tokens = tokens;
        Ok(())
    }
}

/// The steady-state window: from the first instant the in-flight level reached the target to the
/// last instant it was still there (ramp-up and drain left out). The target is the run's
/// concurrency, or else the time-weighted median level. Requests that started and ended inside
/// count for the latencies; output tokens count where they fall inside (spread evenly over each
/// request's decode, first token to end). `None` when the window is under a second long or holds
/// no whole request.
fn steady_state(recs: &[Compact], target: Option<u64>) -> Option<SteadyState> {
    if recs.is_empty() {
        return None;
    }
    let mut events: Vec<(u64, i64)> = recs.iter().flat_map(|r| [(r.start_ns, 1), (r.end_ns.max(r.start_ns), -1)]).collect();
    events.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    // The level after each event, and how long it held.
    let mut level = 0i64;
    let mut steps: Vec<(u64, u64, i64)> = Vec::with_capacity(events.len());
    for w in events.windows(2) {
        level += w[0].1;
        steps.push((w[0].0, w[1].0, level));
    }
    let target = match target {
        Some(t) => t as i64,
        None => {
            let mut by_level: Vec<(i64, u64)> = steps.iter().map(|&(a, b, l)| (l, b - a)).collect();
            by_level.sort_unstable();
            let total: u64 = by_level.iter().map(|x| x.1).sum();
            let mut acc = 0;
            by_level
                .iter()
                .find(|x| {
                    acc += x.1;
                    acc * 2 >= total
                })?
                .0
        }
    };
    let target = target.min(steps.iter().map(|s| s.2).max()?);
    if target <= 0 {
        return None;
    }
    let start = steps.iter().find(|s| s.2 >= target)?.0;
    let end = steps.iter().rev().find(|s| s.2 >= target)?.1;
    if end <= start || end - start < 1_000_000_000 {
        return None;
    }
    let span_s = (end - start) as f64 / 1e9;
    let inside: Vec<&Compact> = recs.iter().filter(|r| r.start_ns >= start && r.end_ns <= end).collect();
    if inside.is_empty() {
        return None;
    }
    let mut tokens = 0.0;
    for r in recs.iter().filter(|r| r.ok) {
        let a = r.first_ns.unwrap_or(r.end_ns);
        let (lo, hi) = (a.max(start), r.end_ns.min(end));
        if r.end_ns <= a {
            if (start..=end).contains(&r.end_ns) {
                tokens += r.output_tokens as f64;
            }
        } else if hi > lo {
            tokens += r.output_tokens as f64 * (hi - lo) as f64 / (r.end_ns - a) as f64;
        }
    }
    let ended = recs.iter().filter(|r| r.ok && (start..=end).contains(&r.end_ns)).count();
    let ok: Vec<&&Compact> = inside.iter().filter(|r| r.ok).collect();
    let q = |v: Vec<f64>| quantiles(v);
    Some(SteadyState {
        target_in_flight: target as u64,
        start_s: start as f64 / 1e9,
        end_s: end as f64 / 1e9,
        requests: inside.len() as u64,
        output_throughput: tokens / span_s,
        request_throughput: ended as f64 / span_s,
        ttft_ms: q(ok.iter().filter_map(|r| r.ttft_ms).collect()),
        tpot_ms: q(ok.iter().filter_map(|r| r.tpot_ms).collect()),
        e2el_ms: q(ok.iter().map(|r| r.e2el_ms).collect()),
    })
}

fn quantiles(mut v: Vec<f64>) -> Option<Quantiles> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let p = |x| inferbench_core::stats::percentile_sorted(&v, x);
    Some(Quantiles { mean: v.iter().sum::<f64>() / v.len() as f64, p50: p(50.0), p99: p(99.0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(start_ms: u64, first_ms: u64, end_ms: u64, out: u64) -> Compact {
        Compact {
            start_ns: start_ms * 1_000_000,
            first_ns: Some(first_ms * 1_000_000),
            end_ns: end_ms * 1_000_000,
            ok: true,
            output_tokens: out,
            ttft_ms: Some((first_ms - start_ms) as f64),
            tpot_ms: Some(10.0),
            e2el_ms: (end_ms - start_ms) as f64,
        }
    }

    /// Hand-made: concurrency 2. A runs 0–2000 ms, B 500–1500, C 1500–3000, D 2000–2500. Level:
    /// 1 from 0, 2 from 500, 2 through 1500 (B ends as C starts), 2 from 2000 (A ends, D starts)
    /// to 2500, then 1. Window [500, 2500] ms = 2 s; B and D lie inside. Tokens: A decodes
    /// 100..2000 with 190 tokens, 150 fall in the window (500..2000); B 100 (all); C decodes
    /// 1600..3000 with 140 tokens, 90 fall inside (1600..2500); D 50 (all): 390 tokens over 2 s
    /// = 195 tok/s. Ended inside: A, B, D = 1.5 req/s.
    #[test]
    fn window_excludes_ramp_and_drain() {
        let recs = [c(0, 100, 2000, 190), c(500, 600, 1500, 100), c(1500, 1600, 3000, 140), c(2000, 2100, 2500, 50)];
        let s = steady_state(&recs, Some(2)).unwrap();
        assert_eq!((s.start_s, s.end_s, s.requests), (0.5, 2.5, 2));
        assert!((s.output_throughput - 195.0).abs() < 1e-9, "{}", s.output_throughput);
        assert_eq!(s.request_throughput, 1.5);
        assert_eq!(s.e2el_ms.unwrap().mean, 750.0);
        // Without a concurrency, the median level: 1 holds 1000 ms, 2 holds 2000 ms: 2.
        assert_eq!(steady_state(&recs, None).unwrap().target_in_flight, 2);
        assert!(steady_state(&recs[..1], Some(1)).is_some());
        assert!(steady_state(&[c(0, 1, 500, 5)], Some(1)).is_none(), "under a second");
    }
}
