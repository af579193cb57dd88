//! What is served from disk: the dashboard (compiled in, so it works offline and nothing comes
//! from a CDN) and each benchmark's files from its own directory, by a fixed list of names.

use crate::live::LiveEvent;
use crate::routes::Refusal;
use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use inferbench_store::queue::Job;
use std::path::{Path, PathBuf};

const INDEX: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

/// A dashboard file.
pub fn asset(name: &str) -> Response {
    let (body, kind) = match name {
        "index.html" => (INDEX, "text/html; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        _ => (APP_CSS, "text/css; charset=utf-8"),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// The job's main result file: the one recorded, else where its kind writes it.
fn main_file(dir: &Path, j: &Job) -> PathBuf {
    match &j.result {
        Some(p) => PathBuf::from(p),
        None if j.kind == "sweep" => dir.join("result.sweep.json"),
        None => dir.join("result.json"),
    }
}

/// The events a finished job published, from its `events.jsonl`, ending with `end` (made from
/// the job's row when the file lacks it: a job that never started, or a process that died).
pub fn replay(dir: &Path, j: &Job) -> Vec<LiveEvent> {
    let mut out: Vec<LiveEvent> = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let event = match v.get("event")?.as_str()? {
                "progress" => "progress",
                "note" => "note",
                "step" => "step",
                "end" => "end",
                _ => return None,
            };
            Some(LiveEvent { event, data: v.get("data").cloned().unwrap_or_default() })
        })
        .collect();
    if !out.iter().any(|e| e.event == "end") {
        out.push(LiveEvent { event: "end", data: serde_json::json!({"status": j.status, "error": j.error, "metrics": j.metrics}) });
    }
    out
}

fn missing(what: &str, j: &Job) -> Refusal {
    Refusal(StatusCode::NOT_FOUND, format!("benchmark '{}' has no {what} ({})", j.id, j.status.as_str()), None)
}

async fn stream(path: &Path, kind: &'static str) -> Option<Response> {
    let f = tokio::fs::File::open(path).await.ok()?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
    Some(([(header::CONTENT_TYPE, kind)], body).into_response())
}

/// Serves `name` of the job whose directory is `dir`.
pub async fn serve(dir: &Path, j: &Job, name: &str) -> Result<Response, Refusal> {
    let main = main_file(dir, j);
    match name {
        "result.json" => stream(&main, "application/json").await.ok_or_else(|| missing("result yet", j)),
        "records.jsonl" => {
            if j.kind == "sweep" {
                return Err(Refusal(
                    StatusCode::NOT_FOUND,
                    "a sweep's records are per step (result-c<N>.records.jsonl in its directory); see result.json for the steps".into(),
                    None,
                ));
            }
            stream(&dir.join("result.records.jsonl"), "application/x-ndjson").await.ok_or_else(|| missing("records", j))
        }
        "events.jsonl" => stream(&dir.join("events.jsonl"), "application/x-ndjson").await.ok_or_else(|| missing("events", j)),
        "result.csv" | "report.html" => {
            let csv = name == "result.csv";
            let beside = if csv { main.with_extension("csv") } else { inferbench_bench::html::path_beside(&main) };
            let kind = if csv { "text/csv; charset=utf-8" } else { "text/html; charset=utf-8" };
            if let Some(r) = stream(&beside, kind).await {
                return Ok(r);
            }
            // Drawn from the result when the file is not there (a sweep's CSV, a cancelled run).
            let main2 = main.clone();
            let doc = tokio::task::spawn_blocking(move || -> Option<String> {
                let saved = inferbench_bench::saved::read(&main2).ok()?;
                if csv {
                    inferbench_report::writer(inferbench_report::Format::Csv).render(&saved).ok()
                } else {
                    inferbench_bench::html::render(&main2, &saved).ok()
                }
            })
            .await
            .ok()
            .flatten()
            .ok_or_else(|| missing("result yet", j))?;
            Ok(([(header::CONTENT_TYPE, kind)], doc).into_response())
        }
        other => Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("no file '{other}': report.html, result.json, result.csv, records.jsonl or events.jsonl"),
            None,
        )),
    }
}
