//! The configuration explorer: for each treatment of a design, stand a server up (or use an
//! external one), run the workload with the chosen load generator, collect the result, tear the
//! server down, and finally rank, chart and recommend. `explore.json` is rewritten after every
//! run, so a crash, Ctrl-C or full disk loses at most the run in progress, and a second start
//! with the same output directory skips every treatment whose result is already there.
//!
//! A server is kept across consecutive treatments with the same server levels (the factorial
//! puts server factors outermost for this), because restarting a real server costs minutes;
//! it is torn down as soon as the next treatment needs other levels, and always at the end.

pub mod design;
pub mod harness;
pub mod server;

use crate::error::BenchError;
use crate::observer::{silent, Event, Observer};
use crate::serving::{Output, RunOptions};
use inferbench_core::explore::{
    analyse, better, evaluate, mean_metrics, metrics_of, Analysis, Constraint, Design, Evaluated, ExploreConfig, ExploreResult, Goal,
    Harness, Levels, RunStatus, Treatment, TreatmentRun,
};
use inferbench_core::json::{overlay, unknown_key};
use inferbench_core::{BenchmarkResult, RunSpec, SavedResult};
use serde_json::Value;
use server::{NotServing, ServerProcess};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Workload factor names and the run-spec field each sets (anything else is a dotted field path).
const WORKLOAD_FIELDS: [(&str, &str); 11] = [
    ("concurrency", "max_concurrency"),
    ("max_concurrency", "max_concurrency"),
    ("rate", "request_rate"),
    ("request_rate", "request_rate"),
    ("input_len", "dataset.input_len"),
    ("output_len", "dataset.output_len"),
    ("dataset", "dataset.name"),
    ("temperature", "sampling.temperature"),
    ("num_prompts", "num_prompts"),
    ("duration", "duration_s"),
    ("prefix_len", "dataset.prefix_len"),
];

/// Reads `explore.yaml` (or JSON), naming the field of the first error.
pub fn read_config(path: &Path) -> Result<ExploreConfig, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::invalid(format!("--config {}: {e}", path.display())))?;
    let v: Value = serde_yaml::from_str(&text).map_err(|e| BenchError::invalid(format!("{}: not YAML: {e}", path.display())))?;
    serde_path_to_error::deserialize(v).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." { String::new() } else { format!(" at {at}") };
        BenchError::invalid(format!("{}{at}: {}", path.display(), e.into_inner()))
    })
}

/// Sets a workload factor's level in a run spec's JSON.
fn set_factor(spec: &mut Value, factor: &str, level: &Value) -> Result<(), BenchError> {
    let path = WORKLOAD_FIELDS.iter().find(|(n, _)| *n == factor).map_or(factor, |(_, p)| p);
    let level = if design::is_infinite(level) { Value::Null } else { level.clone() };
    let mut at = &mut *spec;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        let Value::Object(o) = at else { break };
        if i + 1 == parts.len() {
            if !o.contains_key(*p) {
                break;
            }
            o.insert((*p).to_owned(), level);
            return Ok(());
        }
        match o.get_mut(*p) {
            Some(next) => at = next,
            None => break,
        }
    }
    let named: Vec<&str> = WORKLOAD_FIELDS.iter().map(|(n, _)| *n).collect();
    Err(BenchError::invalid(format!(
        "factors.workload: unknown factor '{factor}': use {} or a field of the run spec (e.g. dataset.range_ratio)",
        named.join(", ")
    )))
}

/// Environment values whose names look secret are not written into results.
fn redacted(cfg: &ExploreConfig) -> ExploreConfig {
    let mut c = cfg.clone();
    if let Some(s) = &mut c.server {
        for (k, v) in &mut s.env {
            let u = k.to_ascii_uppercase();
            if ["KEY", "TOKEN", "SECRET", "PASSWORD", "PASS", "AUTH", "CREDENTIAL"].iter().any(|w| u.contains(w)) {
                *v = "<redacted>".into();
            }
        }
    }
    if let Some(u) = &mut c.external {
        *u = inferbench_load::client::redact_url(u);
    }
    c
}

/// An exploration, checked and ready to run.
pub struct Explorer {
    cfg: ExploreConfig,
    goal: Goal,
    constraints: Vec<Constraint>,
    dir: PathBuf,
    api_key: Option<String>,
    cancel: CancellationToken,
    observer: Observer,
}

/// The state of an exploration in progress.
struct State {
    runs: Vec<TreatmentRun>,
    server: Option<(Levels, ServerProcess)>,
    interrupted: bool,
    ran: u32,
    started: String,
}

impl Explorer {
    /// Checks everything that can be checked before a server starts: the factors, the design,
    /// the objective, the constraints, each treatment's run spec and the harness.
    pub fn new(cfg: ExploreConfig, dir: PathBuf, api_key: Option<String>) -> Result<Self, BenchError> {
        match (&cfg.server, &cfg.external) {
            (Some(_), Some(_)) => return Err(BenchError::invalid("give server or external, not both")),
            (None, None) => {
                return Err(BenchError::invalid(
                    "give server.command (a server to stand up per treatment) or external (the URL of a running one)",
                ))
            }
            (None, Some(_)) if !cfg.factors.server.is_empty() => {
                return Err(BenchError::invalid("factors.server needs server.command: an external server's settings cannot be changed"))
            }
            _ => {}
        }
        design::check_factors(&cfg.factors)?;
        if let Some(s) = &cfg.server {
            let used = server::placeholders(&s.command);
            if let Some(k) = cfg.factors.server.keys().find(|k| !used.contains(k)) {
                return Err(BenchError::invalid(format!("factors.server: '{k}' does not appear in server.command as {{{k}}}")));
            }
            if !used.iter().any(|p| p == "port") && s.base_url.is_none() {
                return Err(BenchError::invalid("server.command: put {port} where the server takes its port, or give server.base_url"));
            }
            crate::spec::seconds("server.ready_timeout_s", s.ready_timeout_s, true)?;
            crate::spec::seconds("server.grace_s", s.grace_s, false)?;
        }
        let goal = Goal::from_objective(&cfg.objective).map_err(|e| BenchError::invalid(e.to_string()))?;
        let constraints = cfg
            .constraints
            .iter()
            .map(|c| Constraint::parse(c).map_err(|e| BenchError::invalid(format!("constraints: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if cfg.repeat == 0 {
            return Err(BenchError::invalid("repeat: must be at least 1"));
        }
        if cfg.replicas == 0 {
            return Err(BenchError::invalid("replicas: must be at least 1"));
        }
        crate::spec::seconds("cooldown_s", cfg.cooldown_s, false)?;
        if let Design::Adaptive { budget: Some(0) } = cfg.design {
            return Err(BenchError::invalid("design.budget: must be at least 1"));
        }
        let needs_cost = constraints.iter().map(|c| c.metric.as_str()).chain(goal.metrics()).any(|m| m.starts_with("cost_"));
        if needs_cost && cfg.price_per_hour.is_none() {
            return Err(BenchError::invalid("a cost metric is used: give price_per_hour (one replica's price per hour)"));
        }
        let treatments = design::treatments(&cfg.design, &cfg.factors)?;
        let me = Self { cfg, goal, constraints, dir, api_key, cancel: CancellationToken::new(), observer: silent() };
        for t in &treatments {
            let spec = me.spec_for(t, "http://127.0.0.1:1")?;
            if me.cfg.harness.tool != Harness::Inferbench {
                harness::command(&me.cfg.harness, &spec, "model", &me.dir, "check")?;
            } else {
                let mut s = spec.clone();
                crate::spec::normalize(&mut s).map_err(|e| BenchError::invalid(format!("workload ({}): {e}", t.key())))?;
            }
        }
        if me.cfg.harness.tool != Harness::Inferbench && !harness::installed(&me.cfg.harness) {
            return Err(BenchError::invalid(format!(
                "harness {}: its executable is not on PATH; install it or set harness.executable",
                me.cfg.harness.tool.name()
            )));
        }
        std::fs::create_dir_all(me.dir.join("runs"))
            .map_err(|e| BenchError::invalid(format!("output_dir: cannot create {}: {e}", me.dir.display())))?;
        Ok(me)
    }

    /// Stops the exploration when `token` fires: the run in progress keeps what it measured and
    /// the server is torn down.
    pub fn cancel_on(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Progress lines and notes.
    pub fn observe(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
    }

    /// Where `explore.json` goes.
    pub fn result_path(&self) -> PathBuf {
        self.dir.join("explore.json")
    }

    /// The run spec of a treatment against `base_url`.
    pub fn spec_for(&self, t: &Treatment, base_url: &str) -> Result<RunSpec, BenchError> {
        let mut defaults = RunSpec::new(base_url);
        defaults.model = String::new();
        let known = serde_json::to_value(&defaults).map_err(|e| BenchError::failed(e.to_string()))?;
        let mut v = known.clone();
        if !self.cfg.workload.is_null() {
            if !self.cfg.workload.is_object() {
                return Err(BenchError::invalid("workload: expected a mapping of run-spec fields (as `inferbench run --spec` reads)"));
            }
            if let Some(k) = unknown_key(&self.cfg.workload, &known, "") {
                // Optional fields absent from the defaults are still fine if the spec takes them.
                let mut probe = known.clone();
                overlay(&mut probe, &self.cfg.workload);
                let back = serde_json::from_value::<RunSpec>(probe).ok().and_then(|s| serde_json::to_value(s).ok());
                if back.is_none_or(|b| unknown_key(&self.cfg.workload, &b, "").is_some()) {
                    return Err(BenchError::invalid(format!("workload.{k}: unknown field of the run spec")));
                }
            }
            overlay(&mut v, &self.cfg.workload);
        }
        for (k, l) in &t.workload {
            set_factor(&mut v, k, l)?;
        }
        v["base_url"] = Value::String(base_url.to_owned());
        let mut spec: RunSpec = serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            BenchError::invalid(format!("workload.{path}: {}", e.into_inner()))
        })?;
        // Every percentile the objective or a constraint names must be computed.
        let named = self.constraints.iter().map(|c| c.metric.clone()).chain(self.goal.metrics().into_iter().map(str::to_owned));
        for m in named {
            if let Ok((_, Some(p))) = inferbench_core::explore::check_metric(&m) {
                if !spec.percentiles.iter().any(|q| (q - p).abs() < 1e-9) {
                    spec.percentiles.push(p);
                }
            }
        }
        Ok(spec)
    }

    fn say(&self, line: &str) {
        (self.observer)(&Event::Progress(line));
    }

    /// Runs the design; returns what was measured and concluded, also in `explore.json`.
    pub async fn run(self) -> Result<ExploreResult, BenchError> {
        let mut st = State { runs: Vec::new(), server: None, interrupted: false, ran: 0, started: inferbench_core::time::rfc3339_now() };
        let outcome = self.run_design(&mut st).await;
        if let Some((_, s)) = st.server.take() {
            let how = s.stop().await;
            tracing::debug!("last server {how}");
        }
        outcome?;
        let r = self.save(&st)?;
        if !st.interrupted && !r.runs.iter().any(|x| x.status.measured()) {
            return Err(BenchError::failed(format!(
                "no treatment was measured ({}); see {}",
                r.runs.first().and_then(|x| x.error.clone()).unwrap_or_else(|| "nothing ran".into()),
                self.result_path().display()
            )));
        }
        if let Some(best) = &r.analysis.best {
            if let Some(p) = self.best_sweep(&r) {
                self.say(&format!("the best server configuration's runs at each concurrency: {} (for `inferbench plan`)", p.display()));
            }
            tracing::info!(%best, "exploration done");
        }
        Ok(r)
    }

    async fn run_design(&self, st: &mut State) -> Result<(), BenchError> {
        match self.cfg.design {
            Design::Adaptive { budget } => {
                let budget = budget.unwrap_or_else(|| design::grid_size(&self.cfg.factors));
                let mut tried: Vec<Treatment> = Vec::new();
                let mut cur = design::start(&self.cfg.factors);
                self.treatment(st, &cur, tried.len() + 1, budget).await?;
                tried.push(cur.clone());
                while !st.interrupted {
                    let around = design::neighbours(&self.cfg.factors, &cur);
                    for n in &around {
                        if tried.contains(n) || tried.len() >= budget || st.interrupted {
                            continue;
                        }
                        self.treatment(st, n, tried.len() + 1, budget).await?;
                        tried.push(n.clone());
                    }
                    let mut best = cur.clone();
                    for n in around.iter().filter(|n| tried.contains(n)) {
                        let (a, b) = (self.evaluated(st, n), self.evaluated(st, &best));
                        let wins = match (a, b) {
                            (Some(a), Some(b)) => better(&a, &b, &self.constraints),
                            (Some(_), None) => true,
                            _ => false,
                        };
                        if wins {
                            best = n.clone();
                        }
                    }
                    if best == cur {
                        break;
                    }
                    cur = best;
                }
            }
            _ => {
                let list = design::treatments(&self.cfg.design, &self.cfg.factors)?;
                let n = list.len();
                for (i, t) in list.iter().enumerate() {
                    if st.interrupted {
                        break;
                    }
                    self.treatment(st, t, i + 1, n).await?;
                }
            }
        }
        Ok(())
    }

    /// A treatment's mean figures over its measured runs, judged.
    fn evaluated(&self, st: &State, t: &Treatment) -> Option<Evaluated> {
        let ms: Vec<&BTreeMap<String, f64>> =
            st.runs.iter().filter(|r| &r.treatment == t && r.status.measured()).map(|r| &r.metrics).collect();
        (!ms.is_empty()).then(|| evaluate(t, ms.len() as u32, mean_metrics(&ms), &self.goal, &self.constraints))
    }

    fn analysis(&self, st: &State) -> Analysis {
        let mut seen: Vec<&Treatment> = Vec::new();
        for r in &st.runs {
            if !seen.contains(&&r.treatment) {
                seen.push(&r.treatment);
            }
        }
        let list: Vec<Evaluated> = seen.iter().filter_map(|t| self.evaluated(st, t)).collect();
        let balanced = match &self.cfg.design {
            Design::Factorial => true,
            Design::Grid { points } => points.is_empty(),
            _ => false,
        };
        analyse(list, &self.cfg.factors, &self.goal, &self.constraints, seen.len() as u32, balanced)
    }

    fn save(&self, st: &State) -> Result<ExploreResult, BenchError> {
        let r = ExploreResult {
            kind: "explore".into(),
            tool: crate::tool_info(),
            started: st.started.clone(),
            config: redacted(&self.cfg),
            runs: st.runs.clone(),
            analysis: self.analysis(st),
            interrupted: st.interrupted,
        };
        let html = self.dir.join("explore.html");
        if let Err(e) = inferbench_report::files::write_atomic(&html, inferbench_report::html::explore(&r).as_bytes()) {
            tracing::warn!("cannot write {}: {e}", html.display());
        }
        let path = self.result_path();
        let text = serde_json::to_string_pretty(&r).map_err(|e| BenchError::failed(e.to_string()))?;
        inferbench_report::files::write_atomic(&path, (text + "\n").as_bytes())
            .map_err(|e| BenchError::failed(format!("cannot write {}: {e}", path.display())))?;
        Ok(r)
    }

    /// The runs of the best configuration's server levels at every concurrency, as one sweep
    /// file that `plan` reads. `None` when concurrency is not a factor with two measured levels.
    fn best_sweep(&self, r: &ExploreResult) -> Option<PathBuf> {
        let best = r.analysis.evaluated.first().filter(|e| e.feasible)?;
        let factor = ["concurrency", "max_concurrency"].into_iter().find(|f| self.cfg.factors.workload.contains_key(*f))?;
        let files: Vec<PathBuf> = r
            .runs
            .iter()
            .filter(|x| x.status.measured())
            .filter(|x| {
                x.treatment.server == best.treatment.server
                    && x.treatment.workload.iter().all(|(k, v)| k == factor || best.treatment.workload.get(k) == Some(v))
            })
            .filter_map(|x| x.result_file.as_ref().map(|f| self.dir.join(f)))
            .collect();
        if files.len() < 2 {
            return None;
        }
        let sweep = crate::sweep::from_runs(&files).ok()?;
        let path = self.dir.join("best-sweep.json");
        crate::saved::write(&path, &SavedResult::Sweep(Box::new(sweep))).ok()?;
        Some(path)
    }

    /// Every repeat of one treatment.
    async fn treatment(&self, st: &mut State, t: &Treatment, i: usize, n: usize) -> Result<(), BenchError> {
        for rep in 0..self.cfg.repeat {
            if st.interrupted {
                return Ok(());
            }
            let stem = t.stem(rep);
            let rel = format!("runs/{stem}.json");
            let label =
                if self.cfg.repeat > 1 { format!("[{i}/{n}] {} (repeat {})", t.key(), rep + 1) } else { format!("[{i}/{n}] {}", t.key()) };
            if let Some(r) = self.resumable(&self.dir.join(&rel)) {
                self.say(&format!("{label}: already measured ({rel}), skipped"));
                st.runs.push(TreatmentRun {
                    treatment: t.clone(),
                    repeat: rep,
                    status: RunStatus::Resumed,
                    error: None,
                    result_file: Some(rel),
                    server_log: None,
                    server_pid: None,
                    metrics: metrics_of(&r.summary, self.cfg.replicas, self.cfg.price_per_hour),
                    seconds: 0.0,
                });
                self.save(st)?;
                continue;
            }
            if st.ran > 0 && self.cfg.cooldown_s > 0.0 {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs_f64(self.cfg.cooldown_s)) => {}
                    () = self.cancel.cancelled() => { st.interrupted = true; self.save(st)?; return Ok(()); }
                }
            }
            st.ran += 1;
            let run = self.one_run(st, t, rep, &stem, &label).await?;
            let stop_repeats = matches!(run.status, RunStatus::NotReady | RunStatus::ServerExited);
            let line = match run.status {
                RunStatus::Ok => {
                    let m = self.goal.metric();
                    let v = run.metrics.get(m).map_or("-".into(), |v| format!("{v:.2}"));
                    format!("{label}: {m} {v} ({:.1} s)", run.seconds)
                }
                s => format!(
                    "{label}: {} — {}",
                    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                    run.error.clone().unwrap_or_default()
                ),
            };
            self.say(&line);
            st.runs.push(run);
            self.save(st)?;
            if stop_repeats {
                break;
            }
        }
        Ok(())
    }

    /// A saved result that counts for resume: readable, a run, and not interrupted.
    fn resumable(&self, path: &Path) -> Option<BenchmarkResult> {
        if !path.is_file() {
            return None;
        }
        match crate::saved::read(path) {
            Ok(SavedResult::Run(r)) if !r.interrupted => Some(*r),
            _ => None,
        }
    }

    /// Makes sure the right server is up; returns its base URL, or the run that records why not.
    async fn ensure_server(&self, st: &mut State, t: &Treatment, rep: u32) -> Result<Result<String, TreatmentRun>, BenchError> {
        let Some(tpl) = &self.cfg.server else {
            return Ok(Ok(self.cfg.external.clone().unwrap_or_default().trim_end_matches('/').to_owned()));
        };
        let t0 = Instant::now();
        let failed = |status, error: String, log: Option<String>, pid| TreatmentRun {
            treatment: t.clone(),
            repeat: rep,
            status,
            error: Some(error),
            result_file: None,
            server_log: log,
            server_pid: pid,
            metrics: BTreeMap::new(),
            seconds: t0.elapsed().as_secs_f64(),
        };
        if let Some((levels, s)) = &mut st.server {
            if *levels == t.server {
                if let Some(how) = s.exited() {
                    let log = s.log.clone();
                    st.server = None;
                    return Ok(Err(failed(
                        RunStatus::ServerExited,
                        format!("the server exited ({how}); see {}", log.display()),
                        None,
                        None,
                    )));
                }
                return Ok(Ok(s.base_url.clone()));
            }
        }
        if let Some((_, old)) = st.server.take() {
            let how = old.stop().await;
            tracing::debug!("server {how}");
        }
        let name = Treatment { server: t.server.clone(), workload: Levels::new() }.stem(0);
        let log_rel = format!("servers/{}.log", name.trim_end_matches("-r0"));
        let mut s = ServerProcess::start(tpl, &t.server, &self.dir.join(&log_rel))?;
        let pid = s.pid();
        self.say(&format!("server up: {} (pid {pid})", s.command));
        match s.wait_ready(Duration::from_secs_f64(tpl.ready_timeout_s), &self.cancel).await {
            Ok(took) => {
                tracing::info!(pid, seconds = took.as_secs_f64(), "server ready");
                let url = s.base_url.clone();
                st.server = Some((t.server.clone(), s));
                Ok(Ok(url))
            }
            Err(why) => {
                let _ = s.stop().await;
                let (status, msg) = match why {
                    NotServing::NotReady(m) => (RunStatus::NotReady, m),
                    NotServing::Exited(m) => (RunStatus::ServerExited, m),
                    // Every treatment would fail the same way: stop with the shell's own words.
                    NotServing::NoProgram(m) => return Err(BenchError::invalid(m)),
                    NotServing::Interrupted => {
                        st.interrupted = true;
                        (RunStatus::Interrupted, "interrupted while the server was starting".to_owned())
                    }
                };
                Ok(Err(failed(status, msg, Some(log_rel), Some(pid))))
            }
        }
    }

    async fn one_run(&self, st: &mut State, t: &Treatment, rep: u32, stem: &str, label: &str) -> Result<TreatmentRun, BenchError> {
        let t0 = Instant::now();
        let base_url = match self.ensure_server(st, t, rep).await? {
            Ok(u) => u,
            Err(run) => return Ok(run),
        };
        let (pid, log) = match &st.server {
            Some((_, s)) => (Some(s.pid()), s.log.strip_prefix(&self.dir).ok().map(|p| p.display().to_string())),
            None => (None, None),
        };
        let mut run = TreatmentRun {
            treatment: t.clone(),
            repeat: rep,
            status: RunStatus::Ok,
            error: None,
            result_file: None,
            server_log: log,
            server_pid: pid,
            metrics: BTreeMap::new(),
            seconds: 0.0,
        };
        let spec = self.spec_for(t, &base_url)?;
        let runs_dir = self.dir.join("runs");
        let outcome = if self.cfg.harness.tool == Harness::Inferbench {
            self.run_ours(spec, t, rep, &runs_dir, stem).await
        } else {
            self.run_harness(spec, &runs_dir, stem, label).await
        };
        match outcome {
            Ok(r) => {
                run.metrics = metrics_of(&r.summary, self.cfg.replicas, self.cfg.price_per_hour);
                run.result_file = Some(format!("runs/{stem}.json"));
                if r.interrupted || self.cancel.is_cancelled() {
                    run.status = RunStatus::Interrupted;
                    st.interrupted = true;
                }
            }
            Err(BenchError::Interrupted(m)) => {
                run.status = RunStatus::Interrupted;
                run.error = Some(format!("interrupted {m}"));
                st.interrupted = true;
            }
            Err(BenchError::Unsaved(r, msg)) => {
                run.metrics = metrics_of(&r.summary, self.cfg.replicas, self.cfg.price_per_hour);
                run.error = Some(msg);
            }
            Err(e) => {
                let exited = st.server.as_mut().and_then(|(_, s)| s.exited());
                run.status = if exited.is_some() { RunStatus::ServerExited } else { RunStatus::Failed };
                run.error = Some(match exited {
                    Some(ref how) => format!("the server exited ({how}) during the run: {e}"),
                    None => e.to_string(),
                });
                if exited.is_some() {
                    st.server = None;
                }
            }
        }
        run.seconds = t0.elapsed().as_secs_f64();
        Ok(run)
    }

    async fn run_ours(&self, spec: RunSpec, t: &Treatment, rep: u32, dir: &Path, stem: &str) -> Result<BenchmarkResult, BenchError> {
        let mut labels: BTreeMap<String, String> =
            t.server.iter().chain(t.workload.iter()).map(|(k, v)| (k.clone(), inferbench_core::explore::level_text(v))).collect();
        labels.insert("explore_repeat".into(), rep.to_string());
        if let Some(n) = &self.cfg.name {
            labels.insert("explore".into(), n.clone());
        }
        let opts = RunOptions {
            api_key: self.api_key.clone(),
            output: Some(Output { dir: dir.to_owned(), stem: stem.to_owned() }),
            labels,
            ready_check_timeout: Duration::from_secs(5),
            ..RunOptions::default()
        };
        crate::Benchmark::serving(spec, opts)?.cancel_on(self.cancel.clone()).observe(self.observer.clone()).run().await
    }

    /// Runs an external harness as a child process (its own process group, stopped like a
    /// server on Ctrl-C) and imports what it wrote.
    async fn run_harness(&self, spec: RunSpec, dir: &Path, stem: &str, label: &str) -> Result<BenchmarkResult, BenchError> {
        let model = if spec.model.is_empty() { self.served_model(&spec.base_url).await? } else { spec.model.clone() };
        let c = harness::command(&self.cfg.harness, &spec, &model, dir, stem)?;
        for (p, text) in &c.files {
            std::fs::write(p, text).map_err(|e| BenchError::failed(format!("cannot write {}: {e}", p.display())))?;
        }
        let tpl = inferbench_core::explore::ServerTemplate {
            command: c.argv.iter().map(|a| server::shell_quote(a)).collect::<Vec<_>>().join(" "),
            env: self.api_key.iter().map(|k| ("OPENAI_API_KEY".to_owned(), k.clone())).collect(),
            cwd: Some(dir.display().to_string()),
            base_url: Some("http://127.0.0.1:1".into()),
            ready_url: None,
            ready_timeout_s: 1.0,
            grace_s: 10.0,
        };
        self.say(&format!("{label}: {}", c.argv.join(" ")));
        let mut child = ServerProcess::start(&tpl, &Levels::new(), &dir.join(format!("{stem}.{}.log", self.cfg.harness.tool.name())))?;
        let status = loop {
            if let Some(how) = child.exited() {
                break how;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = self.cancel.cancelled() => {
                    child.stop().await;
                    return Err(BenchError::Interrupted(format!("while {} ran", self.cfg.harness.tool.name())));
                }
            }
        };
        let log = child.log.clone();
        drop(child);
        if !c.result.is_file() {
            return Err(BenchError::failed(format!(
                "{} ended ({status}) without writing {}; see {}",
                self.cfg.harness.tool.name(),
                c.result.display(),
                log.display()
            )));
        }
        // inference-perf's importer reads the config beside its summary.
        if let (Some((cfg, _)), Some(parent)) = (c.files.first(), c.result.parent()) {
            let beside = parent.join("config.yaml");
            if !beside.exists() {
                let _ = std::fs::copy(cfg, beside);
            }
        }
        let r = crate::import::import(c.tool, &c.result, 0)?;
        crate::saved::write(&dir.join(format!("{stem}.json")), &SavedResult::Run(Box::new(r.clone())))?;
        Ok(r)
    }

    /// The first model a server lists.
    async fn served_model(&self, base_url: &str) -> Result<String, BenchError> {
        let target = inferbench_load::HttpTarget::new(base_url, "/v1/models", self.api_key.as_deref(), Duration::from_secs(10))
            .map_err(|e| BenchError::invalid(format!("{base_url}: {e}")))?;
        let client = inferbench_load::client::http_client(&target);
        let (code, body) = inferbench_load::client::get(&client, &target, "/v1/models")
            .await
            .map_err(|e| BenchError::failed(format!("cannot list the server's models: {e}")))?;
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        v["data"][0]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BenchError::failed(format!("{base_url}/v1/models answered HTTP {code} without a model; set workload.model")))
    }
}

/// The exploration as text: every measured treatment ranked, the best, the frontiers, the main
/// effects and the recommendations.
pub fn render_text(r: &ExploreResult) -> String {
    use std::fmt::Write;
    let a = &r.analysis;
    let goal = Goal::from_objective(&r.config.objective).ok();
    let metric = goal.as_ref().map_or("output_throughput", |g| g.metric()).to_owned();
    let mut lat: Vec<String> = r.config.constraints.iter().filter_map(|c| Constraint::parse(c).ok()).map(|c| c.metric).collect();
    lat.retain(|m| m != &metric);
    lat.dedup();
    let mut s = String::new();
    let measured = r.runs.iter().filter(|x| x.status.measured()).count();
    let _ = writeln!(
        s,
        "Exploration: {} design, {} treatments run ({} runs measured){}",
        r.config.design.name(),
        a.treatments_run,
        measured,
        if r.interrupted { ", INTERRUPTED" } else { "" }
    );
    let width = a.evaluated.iter().map(|e| e.key.len()).max().unwrap_or(10).max(13);
    let mw = metric.len().max(8);
    let mut head = format!("  {:<width$}  {:>mw$}", "configuration", metric);
    for m in &lat {
        let _ = write!(head, "  {:>12}", m.chars().take(12).collect::<String>());
    }
    let _ = writeln!(s, "{head}  ok");
    for e in &a.evaluated {
        let mut row = format!("  {:<width$}  {:>mw$}", e.key, e.metrics.get(&metric).map_or("-".into(), |v| format!("{v:.2}")));
        for m in &lat {
            let _ = write!(row, "  {:>12}", e.metrics.get(m).map_or("-".into(), |v| format!("{v:.2}")));
        }
        let _ = writeln!(s, "{row}  {}", if e.feasible { "yes" } else { "no" });
    }
    for x in r.runs.iter().filter(|x| !x.status.measured()) {
        let _ = writeln!(s, "  {}: {:?}: {}", x.treatment.key(), x.status, x.error.clone().unwrap_or_default());
    }
    let _ = writeln!(s, "\nBest: {}", a.best.as_deref().unwrap_or("none meets every constraint"));
    if !a.pareto_tpot.is_empty() {
        let _ = writeln!(s, "Pareto (throughput per replica vs TPOT p99): {}", a.pareto_tpot.join(" | "));
    }
    if !a.pareto_user.is_empty() {
        let _ = writeln!(s, "Pareto (tokens/s per user vs per replica): {}", a.pareto_user.join(" | "));
    }
    if !a.main_effects.is_empty() {
        let _ = writeln!(s, "\nMain effects on {metric} (mean at each level):");
        for e in &a.main_effects {
            let lv: Vec<String> = e.levels.iter().map(|(l, m, _)| format!("{}: {m:.2}", inferbench_core::explore::level_text(l))).collect();
            let _ = writeln!(s, "  {:<16} {}  (range {:.2})", e.factor, lv.join(", "), e.range);
        }
    }
    if a.main_effects.is_empty() && a.evaluated.len() > 1 && !matches!(r.config.design, Design::Factorial) {
        let _ = writeln!(s, "\nMain effects: only from a full factorial (this was a {} design).", r.config.design.name());
    }
    let _ = writeln!(s, "\nRecommendations:");
    for line in &a.recommendations {
        let _ = writeln!(s, "  - {line}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workload_factors_set_their_spec_fields() {
        let mut v = serde_json::to_value(RunSpec::new("http://x")).unwrap();
        set_factor(&mut v, "concurrency", &json!(8)).unwrap();
        set_factor(&mut v, "output_len", &json!(32)).unwrap();
        set_factor(&mut v, "rate", &json!("inf")).unwrap();
        set_factor(&mut v, "dataset.range_ratio", &json!(0.5)).unwrap();
        let s: RunSpec = serde_json::from_value(v.clone()).unwrap();
        assert_eq!((s.max_concurrency, s.dataset.output_len, s.request_rate, s.dataset.range_ratio), (Some(8), 32, None, 0.5));
        let e = set_factor(&mut v, "concurency", &json!(1)).unwrap_err().to_string();
        assert!(e.contains("unknown factor 'concurency'"), "{e}");
    }

    #[test]
    fn shipped_explorations_are_valid() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if !p.file_name().unwrap().to_string_lossy().starts_with("explore-") {
                continue;
            }
            let cfg = read_config(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let out = tempfile::tempdir().unwrap();
            match Explorer::new(cfg, out.path().to_owned(), None) {
                Ok(_) => {}
                // Everything else was checked before this (the harness's command line included).
                Err(e) if e.to_string().contains("its executable is not on PATH") => {}
                Err(e) => panic!("{}: {e}", p.display()),
            }
            n += 1;
        }
        assert_eq!(n, 4);
    }

    #[test]
    fn secret_looking_env_is_redacted() {
        let cfg: ExploreConfig = serde_json::from_value(json!({
            "server": {"command": "x --port {port}", "env": {"HF_TOKEN": "hf_abc", "CUDA_VISIBLE_DEVICES": "0"}},
            "objective": {"maximize": "output_throughput"},
        }))
        .unwrap();
        let r = redacted(&cfg);
        let env = &r.server.unwrap().env;
        assert_eq!(env["HF_TOKEN"], "<redacted>");
        assert_eq!(env["CUDA_VISIBLE_DEVICES"], "0");
    }
}
