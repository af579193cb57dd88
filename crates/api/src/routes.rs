//! The routes. Answers are JSON (`{"error": ..., "field": ...}` on refusals); a job's files are
//! streamed from its directory; the events stream is server-sent events.

use crate::live::LiveEvent;
use crate::submit::{self, Checked, Invalid};
use crate::worker::{self, Shared};
use crate::{files, ApiError, Config};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use inferbench_core::time::rfc3339_now;
use inferbench_store::queue::{Job, JobFilter, Status};
use inferbench_store::Store;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What every handler gets.
#[derive(Clone)]
pub struct App {
    shared: Arc<Shared>,
    store: Arc<Mutex<Store>>,
}

/// An answer that is not 2xx.
pub struct Refusal(pub StatusCode, pub String, pub Option<String>);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.1});
        if let Some(f) = self.2 {
            body["field"] = Value::String(f);
        }
        (self.0, Json(body)).into_response()
    }
}

impl From<Invalid> for Refusal {
    fn from(e: Invalid) -> Self {
        Refusal(StatusCode::BAD_REQUEST, e.to_string(), Some(e.field))
    }
}

impl From<inferbench_store::StoreError> for Refusal {
    fn from(e: inferbench_store::StoreError) -> Self {
        tracing::error!("{e}");
        Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None)
    }
}

type Answer = Result<Response, Refusal>;

fn not_found(id: &str) -> Refusal {
    Refusal(StatusCode::NOT_FOUND, format!("no benchmark '{id}'"), None)
}

/// Ids are letters, digits and dashes: nothing that could name another directory.
pub fn check_id(id: &str) -> Result<(), Refusal> {
    let ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Refusal(StatusCode::BAD_REQUEST, "invalid benchmark id: letters, digits and dashes only".into(), Some("id".into())))
    }
}

/// Builds the router.
pub fn router(cfg: Config, shared: Arc<Shared>) -> Result<Router, ApiError> {
    let store = Arc::new(Mutex::new(Store::open(&cfg.store)?));
    let app = App { shared, store };
    let token = Arc::new(cfg.token.clone());
    let api = Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/api/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .route("/api/benchmark", axum::routing::post(seed))
        .route("/api/v1/benchmarks", get(list).post(create))
        .route("/api/v1/benchmarks/{id}", get(one).delete(cancel))
        .route("/api/v1/benchmarks/{id}/events", get(events))
        .route("/api/v1/benchmarks/{id}/{file}", get(file))
        // Seed 002's versioned routes: the same benchmarks under /api/v1alpha1.
        .route("/api/v1alpha1/benchmarks", get(list).post(create))
        .route("/api/v1alpha1/benchmarks/{id}", get(one).delete(cancel))
        .route("/api/v1alpha1/benchmarks/{id}/events", get(events))
        .route("/api/v1alpha1/benchmarks/{id}/{file}", get(file))
        .route("/api/v1/compare", get(compare))
        .route("/api/v1/history", get(history))
        .route("/api/v1/metrics", get(metric_names))
        .route("/", get(|| async { files::asset("index.html") }))
        .route("/app.js", get(|| async { files::asset("app.js") }))
        .route("/app.css", get(|| async { files::asset("app.css") }))
        .fallback(|| async { Refusal(StatusCode::NOT_FOUND, "no such route (see /api/openapi.json)".into(), None) })
        .with_state(app)
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(token, crate::auth::require));
    Ok(api)
}

impl App {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn job(&self, id: &str) -> Result<Job, Refusal> {
        check_id(id)?;
        self.store().job(id)?.ok_or_else(|| not_found(id))
    }
}

fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, Refusal> {
    b.map_err(|e| {
        let status = e.status();
        let why =
            if status == StatusCode::PAYLOAD_TOO_LARGE { "the body is larger than --max-body-bytes".to_owned() } else { e.body_text() };
        Refusal(status, why, Some("body".into()))
    })
}

/// A fresh id: time, then random hex (sortable, and nothing a path could be made of).
fn new_id() -> String {
    let r: u32 = rand::random();
    format!("{}-{r:08x}", inferbench_core::time::compact_now())
}

fn enqueue(app: &App, c: Checked) -> Answer {
    let id = new_id();
    let job = Job {
        id: id.clone(),
        kind: c.kind.as_str().into(),
        status: Status::Queued,
        request: c.stored,
        model: c.model,
        labels: c.labels,
        created: rfc3339_now(),
        started: None,
        finished: None,
        error: None,
        result: None,
        metrics: Default::default(),
        secret: c.secrets.any(),
    };
    app.shared.keep_secrets(&id, c.secrets);
    app.store().enqueue(&job)?;
    app.shared.wake();
    let location = format!("/api/v1/benchmarks/{id}");
    let body = json!({"id": id, "status": "queued", "url": location, "events": format!("{location}/events")});
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(body)).into_response())
}

async fn create(State(app): State<App>, b: Result<Bytes, BytesRejection>) -> Answer {
    let b = body(b)?;
    let c = submit::submission(&b)?;
    enqueue(&app, c)
}

/// Seed 000's route: `{model_name, test_types}`, whatever the content type says (curl's `-d`
/// sends a form type).
async fn seed(State(app): State<App>, b: Result<Bytes, BytesRejection>) -> Answer {
    let b = body(b)?;
    let c = submit::seed_request(&b)?;
    enqueue(&app, c)
}

#[derive(serde::Deserialize)]
struct ListQuery {
    kind: Option<String>,
    status: Option<String>,
    model: Option<String>,
    #[serde(default)]
    label: Vec<String>,
    limit: Option<usize>,
}

fn labels(given: &[String]) -> Result<Vec<(String, String)>, Refusal> {
    given
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| Refusal(StatusCode::BAD_REQUEST, format!("label '{l}': expected key=value"), Some("label".into())))
        })
        .collect()
}

/// The query string's pairs, percent-decoded, repeated keys kept.
fn pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| form_urlencoded::parse(q.as_bytes()).filter(|(k, _)| !k.is_empty()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

fn list_query(raw: Option<&str>) -> ListQuery {
    let mut q = ListQuery { kind: None, status: None, model: None, label: Vec::new(), limit: None };
    for (k, v) in pairs(raw) {
        match k.as_str() {
            "kind" => q.kind = Some(v),
            "status" => q.status = Some(v),
            "model" => q.model = Some(v),
            "label" => q.label.push(v),
            "limit" => q.limit = v.parse().ok(),
            _ => {}
        }
    }
    q
}

/// The job as listed: no request, no result.
fn summary(j: &Job, shared: &Shared) -> Value {
    let mut v = json!({
        "id": j.id, "kind": j.kind, "status": j.status, "model": j.model, "labels": j.labels,
        "created": j.created, "started": j.started, "finished": j.finished, "error": j.error, "metrics": j.metrics,
    });
    if let Some(l) = shared.live(&j.id) {
        v["progress"] = l.latest().unwrap_or(Value::Null);
    }
    v
}

async fn list(State(app): State<App>, axum::extract::RawQuery(raw): axum::extract::RawQuery) -> Answer {
    let q = list_query(raw.as_deref());
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            Refusal(
                StatusCode::BAD_REQUEST,
                format!("status '{s}': one of queued, running, done, failed, cancelled, interrupted"),
                Some("status".into()),
            )
        })?),
    };
    let kind = q.kind.filter(|k| !k.is_empty());
    if let Some(k) = &kind {
        if !["run", "sweep", "engine"].contains(&k.as_str()) {
            return Err(Refusal(StatusCode::BAD_REQUEST, format!("kind '{k}': one of run, sweep, engine"), Some("kind".into())));
        }
    }
    let f = JobFilter { kind, status, model: q.model.filter(|m| !m.is_empty()), labels: labels(&q.label)?, limit: q.limit.unwrap_or(200) };
    let jobs = app.store().jobs(&f)?;
    let list: Vec<Value> = jobs.iter().map(|j| summary(j, &app.shared)).collect();
    Ok(Json(json!({"benchmarks": list})).into_response())
}

async fn one(State(app): State<App>, Path(id): Path<String>) -> Answer {
    let j = app.job(&id)?;
    let mut v = summary(&j, &app.shared);
    v["request"] = j.request.clone();
    if j.status == Status::Queued {
        let ahead = app.store().jobs(&JobFilter { status: Some(Status::Queued), ..JobFilter::default() })?;
        let pos = ahead.iter().rev().position(|x| x.id == j.id).unwrap_or(0);
        v["queue_position"] = json!(pos + 1);
    }
    if let Some(p) = &j.result {
        v["result"] = std::fs::read(p).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
        let base = format!("/api/v1/benchmarks/{}", j.id);
        v["files"] = json!({
            "report.html": format!("{base}/report.html"), "result.json": format!("{base}/result.json"),
            "result.csv": format!("{base}/result.csv"), "records.jsonl": format!("{base}/records.jsonl"),
            "events.jsonl": format!("{base}/events.jsonl"),
        });
    }
    Ok(Json(v).into_response())
}

async fn cancel(State(app): State<App>, Path(id): Path<String>) -> Answer {
    let j = app.job(&id)?;
    match j.status {
        Status::Queued => {
            if app.store().cancel_queued(&id, &rfc3339_now())? {
                app.shared.drop_secrets(&id);
                return Ok(Json(json!({"id": id, "status": "cancelled"})).into_response());
            }
            // It started in between: cancel it running.
            cancel_running(&app, &id)
        }
        Status::Running => cancel_running(&app, &id),
        s => Err(Refusal(StatusCode::CONFLICT, format!("benchmark '{id}' has already ended ({})", s.as_str()), None)),
    }
}

fn cancel_running(app: &App, id: &str) -> Answer {
    match app.shared.live(id) {
        Some(l) => {
            worker::cancel(&l);
            Ok((StatusCode::ACCEPTED, Json(json!({"id": id, "status": "cancelling"}))).into_response())
        }
        None => Err(Refusal(StatusCode::CONFLICT, format!("benchmark '{id}' is ending"), None)),
    }
}

fn sse(e: &LiveEvent) -> Sse {
    Sse::default().event(e.event).data(e.data.to_string())
}

enum Phase {
    Waiting,
    Live(tokio::sync::broadcast::Receiver<Arc<LiveEvent>>),
    Done,
}

struct Feed {
    app: App,
    id: String,
    phase: Phase,
    queue: VecDeque<Sse>,
}

/// The events: a queued job's position until it starts; then everything it said so far and
/// what follows, once a second; a finished job's events replayed. Ends after `end`.
async fn events(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<axum::response::Sse<impl Stream<Item = Result<Sse, Infallible>>>, Refusal> {
    let j = app.job(&id)?;
    let mut feed = Feed { app: app.clone(), id: id.clone(), phase: Phase::Waiting, queue: VecDeque::new() };
    if j.status.is_final() {
        feed.phase = Phase::Done;
        feed.queue.extend(files::replay(&app.shared.results_dir.join(&id), &j).iter().map(sse));
    }
    let s = stream::unfold(feed, |mut f| async move {
        loop {
            if let Some(e) = f.queue.pop_front() {
                return Some((Ok(e), f));
            }
            match &mut f.phase {
                Phase::Done => return None,
                Phase::Waiting => {
                    if let Some(l) = f.app.shared.live(&f.id) {
                        let (past, rx) = l.subscribe();
                        let ended = past.iter().any(|e| e.event == "end");
                        f.queue.extend(past.iter().map(|e| sse(e)));
                        f.phase = if ended { Phase::Done } else { Phase::Live(rx) };
                        continue;
                    }
                    let j = f.app.store().job(&f.id).ok().flatten();
                    match j {
                        Some(j) if j.status.is_final() => {
                            f.queue.extend(files::replay(&f.app.shared.results_dir.join(&f.id), &j).iter().map(sse));
                            f.phase = Phase::Done;
                        }
                        Some(j) if j.status == Status::Queued => {
                            f.queue.push_back(Sse::default().event("queued").data(json!({"id": j.id}).to_string()));
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        None => return None,
                    }
                }
                Phase::Live(rx) => match rx.recv().await {
                    Ok(e) => {
                        if e.event == "end" {
                            f.phase = Phase::Done;
                        }
                        f.queue.push_back(sse(&e));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => f.phase = Phase::Done,
                },
            }
        }
    });
    Ok(axum::response::Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}

async fn file(State(app): State<App>, Path((id, name)): Path<(String, String)>) -> Answer {
    let j = app.job(&id)?;
    files::serve(&app.shared.results_dir.join(&id), &j, &name).await
}

#[derive(serde::Deserialize)]
struct CompareQuery {
    base: String,
    candidate: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    allow_different_workloads: bool,
}

fn result_path(app: &App, id: &str, field: &str) -> Result<std::path::PathBuf, Refusal> {
    let j = app.job(id).map_err(|Refusal(s, m, _)| Refusal(s, m, Some(field.into())))?;
    j.result
        .map(std::path::PathBuf::from)
        .ok_or_else(|| Refusal(StatusCode::CONFLICT, format!("{field} '{id}' has no result ({})", j.status.as_str()), Some(field.into())))
}

async fn compare(State(app): State<App>, q: Result<Query<CompareQuery>, axum::extract::rejection::QueryRejection>) -> Answer {
    let Query(q) = q.map_err(|e| Refusal(StatusCode::BAD_REQUEST, e.body_text(), Some("query".into())))?;
    let (a, b) = (result_path(&app, &q.base, "base")?, result_path(&app, &q.candidate, "candidate")?);
    let o = inferbench_bench::compare::CompareOptions {
        allow_different_workloads: q.allow_different_workloads,
        ..inferbench_bench::compare::CompareOptions::default()
    };
    let dir = app.shared.results_dir.join("compare");
    let out = dir.join(format!("{}-vs-{}.json", q.base, q.candidate));
    let html = q.format.as_deref() == Some("html");
    let (c, page) = tokio::task::spawn_blocking(move || -> Result<_, Refusal> {
        let c = inferbench_bench::compare::compare(&a, &b, &o).map_err(|e| Refusal(StatusCode::BAD_REQUEST, e.to_string(), None))?;
        let saved = inferbench_core::SavedResult::Compare(Box::new(c.clone()));
        let page = if html {
            let _ = std::fs::create_dir_all(&dir);
            inferbench_bench::saved::write(&out, &saved).map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))?;
            Some(
                inferbench_bench::html::render(&out, &saved)
                    .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))?,
            )
        } else {
            None
        };
        Ok((c, page))
    })
    .await
    .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))??;
    if let Some(p) = page {
        return Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], p).into_response());
    }
    let rows: Vec<Value> = c
        .rows
        .iter()
        .map(|r| {
            json!({"group": r.group, "key": r.key, "baseline": r.baseline, "candidate": r.candidate, "change": r.change(),
                   "p": r.p, "lower_better": r.lower_better, "verdict": r.verdict(c.alpha)})
        })
        .collect();
    let mut v = serde_json::to_value(&c).unwrap_or_default();
    v["rows"] = Value::Array(rows);
    Ok(Json(v).into_response())
}

async fn history(State(app): State<App>, axum::extract::RawQuery(raw): axum::extract::RawQuery) -> Answer {
    let mut q = inferbench_store::trend::Query { metric: String::new(), model: None, labels: Vec::new(), fingerprint: None };
    let mut rule = inferbench_store::trend::Rule::default();
    for (k, v) in pairs(raw.as_deref()) {
        match k.as_str() {
            "metric" => q.metric = v,
            "model" if !v.is_empty() => q.model = Some(v),
            "workload" if !v.is_empty() => q.fingerprint = Some(v),
            "label" => q.labels.extend(labels(&[v])?),
            "window" => {
                rule.window =
                    v.parse().ok().filter(|w| *w >= 2).ok_or_else(|| {
                        Refusal(StatusCode::BAD_REQUEST, "window: a whole number, at least 2".into(), Some("window".into()))
                    })?
            }
            _ => {}
        }
    }
    if q.metric.is_empty() {
        return Err(Refusal(StatusCode::BAD_REQUEST, "metric: missing (see /api/v1/metrics)".into(), Some("metric".into())));
    }
    let t = app.store().history(&q, rule)?;
    let points: Vec<Value> = t
        .points
        .iter()
        .map(|p| json!({"id": p.id, "time": p.time, "value": p.value, "tool": p.tool, "flagged": p.flagged, "worse": p.worse}))
        .collect();
    Ok(Json(json!({"metric": t.metric, "workload": t.fingerprint, "lower_better": t.lower_better, "points": points})).into_response())
}

async fn metric_names(State(app): State<App>) -> Answer {
    Ok(Json(json!({"metrics": app.store().metric_names()?})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_name_another_directory() {
        assert!(check_id("20261203-101010-00ab12cd").is_ok());
        for bad in ["", "..", "../x", "a/b", "a%2Fb", "a.b", "a b", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_pairs_decode_and_repeat() {
        let p = pairs(Some("label=a%3Db&label=c=d&model=x+y&empty"));
        assert_eq!(p, [("label", "a=b"), ("label", "c=d"), ("model", "x y"), ("empty", "")].map(|(a, b)| (a.to_owned(), b.to_owned())));
    }
}
