//! Starting the simulator on a free port and running the client against it.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_inferbench");

/// Tests that compare latencies with injected values take this lock exclusively,
/// so no other simulator or client of this test binary loads the two cores meanwhile; every
/// other simulator holds it shared.
static MACHINE: RwLock<()> = RwLock::new(());

/// Every test starts by taking this: shared for most, exclusive for timing-sensitive ones.
pub fn machine_shared() -> RwLockReadGuard<'static, ()> {
    own_store();
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

/// The machine to this test alone (no other simulator or client of this binary runs).
pub fn machine_alone() -> RwLockWriteGuard<'static, ()> {
    own_store();
    MACHINE.write().unwrap_or_else(|e| e.into_inner())
}

/// The tests' results go to a store of their own under target/, never the user's.
pub fn own_store() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-store/results.sqlite");
        std::env::set_var("INFERBENCH_STORE", p);
    });
}

/// A simulator process, killed on drop.
pub struct Sim {
    child: Child,
    pub url: String,
}

impl Sim {
    /// Starts `inferbench serve --sim --port 0` with extra flags and waits for its URL.
    pub fn start(flags: &[&str]) -> Sim {
        let mut all = vec!["--sim"];
        all.extend_from_slice(flags);
        Sim::serve(&all)
    }

    /// Starts `inferbench serve --port 0` with these flags (a simulator or a model) and waits
    /// for its URL.
    pub fn serve(flags: &[&str]) -> Sim {
        own_store();
        let mut child = Command::new(BIN)
            .args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn simulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("read simulator banner");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        Sim { child, url }
    }

    /// Fetches the simulator's Prometheus text.
    pub fn metrics(&self) -> String {
        let out = Command::new("curl").args(["-s", &format!("{}/metrics", self.url)]).output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            _ => get(&format!("{}/metrics", self.url)),
        }
    }
}

/// Minimal HTTP GET over a TcpStream (no extra dependencies).
pub fn get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Minimal HTTP POST of a JSON body; returns the status and the body.
pub fn post(url: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_owned());
    (status, body)
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished client run with its files.
pub struct Run {
    pub out: Output,
    pub dir: tempfile::TempDir,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn file(&self, ext: &str) -> PathBuf {
        self.dir.path().join(format!("r.{ext}"))
    }
    pub fn json(&self) -> Value {
        let p = self.file("json");
        if !p.exists() {
            panic!("{} missing\nstderr: {}", p.display(), self.stderr());
        }
        validated(&p)
    }
    pub fn records(&self) -> Vec<Value> {
        let recs = read_records(&self.file("records.jsonl"));
        let v = validator("record.schema.json");
        for r in &recs {
            check(&v, r, "a record");
        }
        recs
    }
    pub fn assert_ok(&self) -> &Self {
        assert!(self.out.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", self.out.status, self.stdout(), self.stderr());
        self
    }
}

/// The records of a JSONL file, without its run-id first line.
pub fn read_records(p: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(p).unwrap();
    let mut lines = text.lines().peekable();
    let first: Option<Value> = lines.peek().map(|l| serde_json::from_str(l).unwrap());
    if first.is_some_and(|f| f.get("run_id").is_some() && f.get("id").is_none()) {
        lines.next();
    }
    lines.map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The run id on a records file's first line.
pub fn records_run_id(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    first["run_id"].as_str().unwrap().to_owned()
}

/// The standard client flags for tests: result files named r.* in a fresh directory.
pub fn run_cmd(url: &str, flags: &[&str]) -> (Command, tempfile::TempDir) {
    own_store();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(BIN);
    c.args(["run", "--base-url", url, "--disable-tqdm", "--result-filename", "r", "--result-dir"]).arg(dir.path()).args(flags);
    c.env_remove("OPENAI_API_KEY");
    // The tests' traffic stays on loopback whatever proxy the machine names.
    for v in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"] {
        c.env_remove(v);
    }
    (c, dir)
}

/// Runs the client to completion.
pub fn run(url: &str, flags: &[&str]) -> Run {
    let (mut c, dir) = run_cmd(url, flags);
    let start = Instant::now();
    let out = c.output().expect("run client");
    assert!(start.elapsed() < Duration::from_secs(120));
    Run { out, dir }
}

/// Mean of a JSON array of numbers.
pub fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn validator(name: &str) -> jsonschema::Validator {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema").join(name);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name} is not a valid schema: {e}"))
}

fn check(v: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).take(5).collect();
    assert!(errors.is_empty(), "{what} does not match its schema: {errors:#?}");
}

/// Reads a result file and checks it against the schema of its kind in `docs/schema/`.
pub fn validated(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let kind = doc["kind"].as_str().unwrap_or("run").to_owned();
    check(&validator(&format!("{kind}.schema.json")), &doc, &p.display().to_string());
    doc
}

/// Checks every result and record file in `dir` against its schema; returns how many.
pub fn validate_dir(dir: &Path) -> usize {
    let mut n = 0;
    let rv = validator("record.schema.json");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".records.jsonl") {
            read_records(&p).iter().for_each(|r| check(&rv, r, &name));
            n += 1;
        } else if name.ends_with(".json") && !name.ends_with(".state.json") {
            validated(&p);
            n += 1;
        }
    }
    n
}
