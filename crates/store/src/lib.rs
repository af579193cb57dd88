//! The results store: every saved result indexed in one SQLite file (SQLite bundled, nothing to
//! install), so figures can be found again and followed over time. A result is written in one
//! transaction (a crash leaves the last committed state; a concurrent reader never sees half a
//! row); the files stay the source of truth and `import` rebuilds the index from them.

pub mod queue;
pub mod trend;

use inferbench_core::{MetricName, SavedResult};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused (locked past the timeout, not a database, disk full...).
    #[error("results store {path}: {source}")]
    Sql {
        /// The database file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The directory for the database could not be made.
    #[error("results store {path}: {source}")]
    Io {
        /// The database file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// One indexed result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    /// The run id (or, for files without one, the file's path).
    pub id: String,
    /// `run`, `sweep`, `engine`, `compare`, `plan`.
    pub kind: String,
    /// When the work started (RFC 3339).
    pub time: String,
    /// Tool version.
    pub tool_version: String,
    /// Tool commit.
    pub tool_commit: String,
    /// Model.
    pub model: String,
    /// Backend.
    pub backend: String,
    /// Target URL, credentials removed.
    pub url: String,
    /// Workload fingerprint (runs and sweeps).
    pub fingerprint: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Key metrics by name (`ttft_p99`, `output_throughput`, ...).
    pub metrics: BTreeMap<String, f64>,
    /// The result's files.
    pub files: Vec<String>,
}

/// Removes `user:password@` from a URL.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
            if path.is_empty() && !rest.contains('/') {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => url.to_owned(),
    }
}

/// The figures of a run kept as metrics: every latency's mean and percentiles, and the rates.
fn run_metrics(s: &inferbench_core::Summary, m: &mut BTreeMap<String, f64>) {
    for name in MetricName::ALL {
        let (key, d) = (name.key(), s.metric(name));
        if d.count == 0 {
            continue;
        }
        m.insert(format!("{key}_mean"), d.mean);
        m.insert(format!("{key}_p50"), d.median);
        for (p, v) in d.percentiles.iter().filter(|(_, v)| v.is_finite()) {
            m.insert(format!("{key}_p{}", fmt_p(*p)), *v);
        }
        m.insert(format!("{key}_max"), d.max);
    }
    m.insert("output_throughput".into(), s.output_throughput);
    m.insert("request_throughput".into(), s.request_throughput);
    m.insert("total_token_throughput".into(), s.total_token_throughput);
    m.insert("completed".into(), s.completed as f64);
    m.insert("failed".into(), s.failed as f64);
    m.insert("success_rate".into(), s.completed as f64 / (s.completed + s.failed).max(1) as f64);
    if let Some(g) = s.request_goodput {
        m.insert("request_goodput".into(), g);
    }
}

fn fmt_p(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        p.to_string().replace('.', "_")
    }
}

/// The entry of a saved result written at `path` (with its files beside it).
pub fn entry_of(r: &SavedResult, path: &Path) -> Entry {
    let h = r.header();
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut files = vec![abs.display().to_string()];
    for ext in ["csv", "records.jsonl", "timeseries.jsonl", "html"] {
        let p = abs.with_extension(ext);
        if p.exists() {
            files.push(p.display().to_string());
        }
    }
    let mut e = Entry {
        id: if h.run_id.is_empty() { abs.display().to_string() } else { h.run_id.clone() },
        kind: r.kind().name().to_owned(),
        time: if h.started.is_empty() { h.date.clone() } else { h.started.clone() },
        tool_version: h.tool.version.clone(),
        tool_commit: h.tool.commit.clone().unwrap_or_default(),
        labels: h.labels.clone(),
        files,
        ..Entry::default()
    };
    match r {
        SavedResult::Run(x) => {
            e.model = x.spec.model.clone();
            e.backend = x.spec.backend.clone();
            e.url = without_credentials(&x.spec.base_url);
            e.fingerprint = inferbench_core::spec::workload_fingerprint(&x.spec);
            run_metrics(&x.summary, &mut e.metrics);
        }
        SavedResult::Sweep(x) => {
            e.model = x.sweep.run.model.clone();
            e.backend = x.sweep.run.backend.clone();
            e.url = without_credentials(&x.sweep.run.base_url);
            e.fingerprint = inferbench_core::spec::workload_fingerprint(&x.sweep.run);
            if let Some(k) = x.knee {
                e.metrics.insert("knee".into(), k);
            }
            if let Some(l) = x.slo_limit {
                e.metrics.insert("slo_limit".into(), l);
            }
            let best = x.steps.iter().map(|s| s.stats.output_throughput.mean).fold(0.0, f64::max);
            e.metrics.insert("max_output_throughput".into(), best);
        }
        SavedResult::Engine(x) => {
            e.model = x.model.clone();
            e.backend = "engine".into();
            e.metrics.extend(x.metrics.iter().map(|(k, v)| (k.clone(), *v)));
        }
        SavedResult::Compare(x) => {
            e.metrics.insert("regressions".into(), x.gate.as_ref().map_or(0, |g| g.failures.len()) as f64);
            e.model = format!("{} vs {}", x.baseline, x.candidate);
        }
        SavedResult::Plan(x) => {
            if let Some(p) = &x.plan.plan {
                e.metrics.insert("replicas".into(), p.replicas as f64);
            }
            e.model = x.sweep.clone();
        }
    }
    e
}

/// The results database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// The default database: `$INFERBENCH_STORE`, else `$XDG_DATA_HOME/inferbench/results.sqlite`,
/// else `~/.local/share/inferbench/results.sqlite`. `None` when `INFERBENCH_STORE=off`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("INFERBENCH_STORE").filter(|p| !p.is_empty()) {
        return (p != "off").then(|| PathBuf::from(p));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("inferbench").join("results.sqlite"))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS results (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, time TEXT NOT NULL, tool_version TEXT, tool_commit TEXT,
  model TEXT, backend TEXT, url TEXT, fingerprint TEXT, labels TEXT, files TEXT);
CREATE TABLE IF NOT EXISTS metrics (
  id TEXT NOT NULL REFERENCES results(id) ON DELETE CASCADE, name TEXT NOT NULL, value REAL NOT NULL,
  PRIMARY KEY (id, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_trend ON results (kind, fingerprint, time);
CREATE INDEX IF NOT EXISTS results_model ON results (model, time);
";

impl Store {
    /// Opens (creating) the database at `path`: WAL journal, so readers never wait for a writer
    /// and never see half a write; a writer waits up to 5 s for another.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: shown.clone(), source })?;
        }
        let sql = |source| StoreError::Sql { path: shown.clone(), source };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        conn.execute_batch(queue::SCHEMA).map_err(sql)?;
        Ok(Store { conn, path: path.to_path_buf() })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sql { path: self.path.display().to_string(), source }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records entries in one transaction (a result re-recorded replaces its row).
    pub fn record(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(|e| StoreError::Sql { path: self.path.display().to_string(), source: e })?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO results (id, kind, time, tool_version, tool_commit, model, backend, url, fingerprint, labels, files)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(|e| StoreError::Sql { path: self.path.display().to_string(), source: e })?;
            let mut del = tx
                .prepare_cached("DELETE FROM metrics WHERE id = ?1")
                .map_err(|e| StoreError::Sql { path: self.path.display().to_string(), source: e })?;
            let mut metric = tx
                .prepare_cached("INSERT INTO metrics (id, name, value) VALUES (?1, ?2, ?3)")
                .map_err(|e| StoreError::Sql { path: self.path.display().to_string(), source: e })?;
            for e in entries {
                let labels = serde_json::to_string(&e.labels).unwrap_or_default();
                let files = serde_json::to_string(&e.files).unwrap_or_default();
                let map = |source| StoreError::Sql { path: self.path.display().to_string(), source };
                put.execute(params![
                    e.id,
                    e.kind,
                    e.time,
                    e.tool_version,
                    e.tool_commit,
                    e.model,
                    e.backend,
                    e.url,
                    e.fingerprint,
                    labels,
                    files
                ])
                .map_err(map)?;
                del.execute(params![e.id]).map_err(map)?;
                for (k, v) in e.metrics.iter().filter(|(_, v)| v.is_finite()) {
                    metric.execute(params![e.id, k, v]).map_err(map)?;
                }
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// How many results are indexed.
    pub fn count(&self) -> Result<u64, StoreError> {
        self.conn.query_row("SELECT COUNT(*) FROM results", [], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(|e| self.err(e))
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, kind, time, tool_version, tool_commit, model, backend, url, fingerprint, labels, files FROM results WHERE id = ?1",
                params![id],
                |r| {
                    Ok(Entry {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        time: r.get(2)?,
                        tool_version: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                        tool_commit: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                        model: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                        backend: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                        url: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                        fingerprint: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                        labels: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
                        files: serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or_default(),
                        metrics: BTreeMap::new(),
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(mut e) = row else { return Ok(None) };
        let mut q = self.conn.prepare_cached("SELECT name, value FROM metrics WHERE id = ?1").map_err(|x| self.err(x))?;
        let rows = q.query_map(params![id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))).map_err(|x| self.err(x))?;
        for row in rows {
            let (k, v) = row.map_err(|x| self.err(x))?;
            e.metrics.insert(k, v);
        }
        Ok(Some(e))
    }

    /// The connection, for the trend queries.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_the_store() {
        assert_eq!(without_credentials("https://user:secret@host:8000/v1"), "https://host:8000/v1");
        assert_eq!(without_credentials("http://h:1"), "http://h:1");
        assert_eq!(without_credentials("http://tok@h"), "http://h");
    }

    #[test]
    fn entries_round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a/b/results.sqlite")).unwrap();
        let mut e = Entry { id: "r1".into(), kind: "run".into(), time: "2026-12-03T10:00:00Z".into(), ..Entry::default() };
        e.metrics.insert("ttft_p99".into(), 12.5);
        e.labels.insert("team".into(), "perf".into());
        s.record(std::slice::from_ref(&e)).unwrap();
        assert_eq!(s.get("r1").unwrap().unwrap(), e);
        e.metrics.insert("ttft_p99".into(), 13.0);
        s.record(std::slice::from_ref(&e)).unwrap();
        assert_eq!((s.count().unwrap(), s.get("r1").unwrap().unwrap().metrics["ttft_p99"]), (1, 13.0));
    }
}

/// What an import found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    /// Results indexed.
    pub indexed: u64,
    /// JSON files that are not results (or not readable ones), left out.
    pub skipped: u64,
}

impl Store {
    /// Indexes every result file under `dir` (recursively), 1,000 to a transaction.
    pub fn import_dir(&mut self, dir: &Path) -> Result<Imported, StoreError> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "json") {
                    files.push(p);
                }
            }
        }
        files.sort();
        let mut out = Imported::default();
        let mut batch = Vec::with_capacity(1000);
        for p in files {
            let parsed = std::fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .filter(|v| v.get("schema_version").is_some())
                .and_then(|v| SavedResult::from_json(v).ok());
            match parsed {
                Some(r) => batch.push(entry_of(&r, &p)),
                None => out.skipped += 1,
            }
            if batch.len() == 1000 {
                self.record(&batch)?;
                out.indexed += batch.len() as u64;
                batch.clear();
            }
        }
        self.record(&batch)?;
        out.indexed += batch.len() as u64;
        Ok(out)
    }
}
