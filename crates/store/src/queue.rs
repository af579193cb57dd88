//! The API's benchmark queue, in the results database: a benchmark submitted over HTTP is a row
//! before it is anything else, so a restart loses nothing. One runs at a time (two benchmarks on
//! one machine corrupt each other's numbers); the others wait in submission order. A benchmark
//! that was running when the process died is marked `interrupted` at the next start.

use crate::{Store, StoreError};
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS benchmarks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, status TEXT NOT NULL,
  request TEXT NOT NULL, model TEXT NOT NULL, labels TEXT NOT NULL, created TEXT NOT NULL, started TEXT,
  finished TEXT, error TEXT, result TEXT, metrics TEXT NOT NULL DEFAULT '{}', secret INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS benchmarks_status ON benchmarks (status, seq);
";

/// Where a benchmark is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for the one before it.
    Queued,
    /// Measuring now.
    Running,
    /// Finished; its result is there.
    Done,
    /// Refused or broke; `error` says why.
    Failed,
    /// Stopped on request; what it measured is kept.
    Cancelled,
    /// The API process died while it ran; its records up to then are kept.
    Interrupted,
}

impl Status {
    /// The word, as stored and as the API says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Interrupted => "interrupted",
        }
    }

    /// Parses the word.
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Queued, Status::Running, Status::Done, Status::Failed, Status::Cancelled, Status::Interrupted]
            .into_iter()
            .find(|x| x.as_str() == s)
    }

    /// True once nothing more will happen to it.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Queued | Status::Running)
    }
}

/// One submitted benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id (letters, digits and dashes only).
    pub id: String,
    /// `run`, `sweep` or `engine`.
    pub kind: String,
    /// Where it is.
    pub status: Status,
    /// What was submitted, without secrets (no API key, no URL password).
    pub request: serde_json::Value,
    /// The model it measures, for filtering.
    pub model: String,
    /// Labels, for filtering and for the result header.
    pub labels: BTreeMap<String, String>,
    /// Submission time, RFC 3339.
    pub created: String,
    /// When it started running.
    pub started: Option<String>,
    /// When it ended.
    pub finished: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its main result file.
    pub result: Option<String>,
    /// Its key figures, as the results index keeps them.
    pub metrics: BTreeMap<String, f64>,
    /// It was submitted with a secret (an API key, a URL password) that lives only in memory.
    pub secret: bool,
}

/// What a listing keeps.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only this model.
    pub model: Option<String>,
    /// Only jobs with every one of these labels.
    pub labels: Vec<(String, String)>,
    /// At most this many, newest first.
    pub limit: usize,
}

const COLUMNS: &str = "id, kind, status, request, model, labels, created, started, finished, error, result, metrics, secret";

fn job(r: &Row<'_>) -> rusqlite::Result<Job> {
    let status: String = r.get(2)?;
    Ok(Job {
        id: r.get(0)?,
        kind: r.get(1)?,
        status: Status::parse(&status).unwrap_or(Status::Failed),
        request: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
        model: r.get(4)?,
        labels: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
        created: r.get(6)?,
        started: r.get(7)?,
        finished: r.get(8)?,
        error: r.get(9)?,
        result: r.get(10)?,
        metrics: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
        secret: r.get::<_, i64>(12)? != 0,
    })
}

impl Store {
    /// Adds a benchmark at the end of the queue.
    pub fn enqueue(&self, j: &Job) -> Result<(), StoreError> {
        self.conn
            .execute(
                &format!("INSERT INTO benchmarks ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
                params![
                    j.id,
                    j.kind,
                    j.status.as_str(),
                    j.request.to_string(),
                    j.model,
                    serde_json::to_string(&j.labels).unwrap_or_default(),
                    j.created,
                    j.started,
                    j.finished,
                    j.error,
                    j.result,
                    serde_json::to_string(&j.metrics).unwrap_or_default(),
                    i64::from(j.secret)
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The benchmark with this id.
    pub fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        self.conn
            .query_row(&format!("SELECT {COLUMNS} FROM benchmarks WHERE id = ?1"), params![id], job)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Benchmarks, newest first.
    pub fn jobs(&self, f: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let mut st = self.conn.prepare(&format!("SELECT {COLUMNS} FROM benchmarks ORDER BY seq DESC")).map_err(|e| self.err(e))?;
        let rows = st.query_map([], job).map_err(|e| self.err(e))?;
        let limit = if f.limit == 0 { usize::MAX } else { f.limit };
        let mut out = Vec::new();
        for j in rows {
            let j = j.map_err(|e| self.err(e))?;
            let keep = f.kind.as_ref().is_none_or(|k| *k == j.kind)
                && f.status.is_none_or(|s| s == j.status)
                && f.model.as_ref().is_none_or(|m| *m == j.model)
                && f.labels.iter().all(|(k, v)| j.labels.get(k) == Some(v));
            if keep {
                out.push(j);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The oldest queued benchmark, marked running as of `now` (in one transaction, so two
    /// workers never take the same one).
    pub fn take_next(&mut self, now: &str) -> Result<Option<Job>, StoreError> {
        let tx = self.conn.transaction().map_err(|e| StoreError::Sql { path: self.path.display().to_string(), source: e })?;
        let next = tx
            .query_row(&format!("SELECT {COLUMNS} FROM benchmarks WHERE status = 'queued' ORDER BY seq LIMIT 1"), [], job)
            .optional()
            .map_err(|e| StoreError::Sql { path: self.path.display().to_string(), source: e })?;
        let Some(mut j) = next else { return Ok(None) };
        tx.execute("UPDATE benchmarks SET status = 'running', started = ?2 WHERE id = ?1", params![j.id, now])
            .map_err(|e| StoreError::Sql { path: self.path.display().to_string(), source: e })?;
        tx.commit().map_err(|e| self.err(e))?;
        j.status = Status::Running;
        j.started = Some(now.to_owned());
        Ok(Some(j))
    }

    /// Ends a benchmark: its status, why (for failures), its result file and figures.
    pub fn finish_job(
        &self,
        id: &str,
        status: Status,
        now: &str,
        error: Option<&str>,
        result: Option<&str>,
        metrics: &BTreeMap<String, f64>,
    ) -> Result<(), StoreError> {
        let metrics: BTreeMap<_, _> = metrics.iter().filter(|(_, v)| v.is_finite()).collect();
        self.conn
            .execute(
                "UPDATE benchmarks SET status = ?2, finished = ?3, error = ?4, result = ?5, metrics = ?6 WHERE id = ?1",
                params![id, status.as_str(), now, error, result, serde_json::to_string(&metrics).unwrap_or_default()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Cancels a benchmark that has not started; false when it is not queued.
    pub fn cancel_queued(&self, id: &str, now: &str) -> Result<bool, StoreError> {
        self.conn
            .execute("UPDATE benchmarks SET status = 'cancelled', finished = ?2 WHERE id = ?1 AND status = 'queued'", params![id, now])
            .map(|n| n == 1)
            .map_err(|e| self.err(e))
    }

    /// At start-up: every benchmark left running by a process that died is `interrupted`.
    /// Returns their ids.
    pub fn interrupt_running(&self, now: &str) -> Result<Vec<String>, StoreError> {
        let ids = self.jobs(&JobFilter { status: Some(Status::Running), ..JobFilter::default() })?;
        for j in &ids {
            self.conn
                .execute(
                    "UPDATE benchmarks SET status = 'interrupted', finished = ?2, error = ?3 WHERE id = ?1",
                    params![j.id, now, "the API process stopped while it ran; the records it wrote are kept"],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(ids.into_iter().map(|j| j.id).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, model: &str) -> Job {
        Job {
            id: id.into(),
            kind: "run".into(),
            status: Status::Queued,
            request: serde_json::json!({"kind": "run"}),
            model: model.into(),
            labels: BTreeMap::from([("team".into(), "a".into())]),
            created: "2026-12-03T10:00:00Z".into(),
            started: None,
            finished: None,
            error: None,
            result: None,
            metrics: BTreeMap::new(),
            secret: false,
        }
    }

    #[test]
    fn the_queue_is_first_in_first_out_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.sqlite");
        {
            let s = Store::open(&db).unwrap();
            for (id, m) in [("a", "m1"), ("b", "m2"), ("c", "m1")] {
                s.enqueue(&job(id, m)).unwrap();
            }
        }
        let mut s = Store::open(&db).unwrap();
        let first = s.take_next("t1").unwrap().unwrap();
        assert_eq!((first.id.as_str(), first.status), ("a", Status::Running));
        assert!(s.cancel_queued("b", "t2").unwrap());
        assert!(!s.cancel_queued("a", "t2").unwrap(), "a running benchmark is not cancelled here");
        assert_eq!(s.take_next("t3").unwrap().unwrap().id, "c");
        assert!(s.take_next("t4").unwrap().is_none());
        // A restart: both running ones are interrupted.
        drop(s);
        let s = Store::open(&db).unwrap();
        assert_eq!(s.interrupt_running("t5").unwrap(), vec!["c".to_owned(), "a".to_owned()]);
        let a = s.job("a").unwrap().unwrap();
        assert_eq!(a.status, Status::Interrupted);
        assert!(a.error.unwrap().contains("records"));
        s.finish_job("c", Status::Done, "t6", None, Some("/x/result.json"), &BTreeMap::from([("ttft_p50".into(), 12.5)])).unwrap();
        let c = s.job("c").unwrap().unwrap();
        assert_eq!((c.status, c.metrics["ttft_p50"], c.result.as_deref()), (Status::Done, 12.5, Some("/x/result.json")));
        let f = |model: Option<&str>, status: Option<Status>| {
            s.jobs(&JobFilter { model: model.map(Into::into), status, ..JobFilter::default() })
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(f(None, None), ["c", "b", "a"]);
        assert_eq!(f(Some("m1"), None), ["c", "a"]);
        assert_eq!(f(None, Some(Status::Cancelled)), ["b"]);
        let none = s.jobs(&JobFilter { labels: vec![("team".into(), "b".into())], ..JobFilter::default() }).unwrap();
        assert!(none.is_empty());
    }
}
