//! `inferbench api` end to end, over real HTTP (curl) on 127.0.0.1: the refusals (a public bind
//! without a token, a wrong token, an oversized body, a malformed spec, ids that climb out of the
//! results directory), the queue (one at a time, kept across a killed process), cancel keeping
//! what was measured, secrets never kept, and seed 000's `curl` as written.

use crate::harness::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An `inferbench api` process, killed (SIGKILL) on drop.
pub struct Api {
    child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Api {
    /// Starts `inferbench api --port 0` with its results and database under `dir`.
    pub fn start(dir: &Path, extra: &[&str]) -> Api {
        own_store();
        let log = dir.join(format!("api-{}.log", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()));
        let mut child = Command::new(BIN)
            .args(["api", "--port", "0", "--result-dir"])
            .arg(dir.join("results"))
            .arg("--store")
            .arg(dir.join("api.sqlite"))
            .args(extra)
            .env("INFERBENCH_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no URL in {line:?}")).to_owned();
        Api { child, url, log }
    }

    /// Stops it as an operator would (SIGTERM); its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "the API did not stop within 20 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process at once, as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -X method url` with an optional bearer token and body; the status and the body.
pub fn call(method: &str, url: &str, token: Option<&str>, body: Option<&[u8]>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-S", "--path-as-is", "-X", method, "-w", "\n%{http_code}", url]);
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if body.is_some() {
        c.args(["-H", "Content-Type: application/json", "--data-binary", "@-"]);
    }
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("curl");
    if let Some(b) = body {
        child.stdin.take().unwrap().write_all(b).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

pub fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// Submits a benchmark; its id.
pub fn submit(api: &str, token: Option<&str>, body: &Value) -> String {
    let (code, text) = call("POST", &format!("{api}/api/v1/benchmarks"), token, Some(body.to_string().as_bytes()));
    assert_eq!(code, 201, "{text}");
    json_of(&text)["id"].as_str().unwrap().to_owned()
}

/// Polls the benchmark until `done` holds (or panics after `limit`).
pub fn wait(api: &str, token: Option<&str>, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let (code, text) = call("GET", &format!("{api}/api/v1/benchmarks/{id}"), token, None);
        assert_eq!(code, 200, "{text}");
        let v = json_of(&text);
        if done(&v) {
            return v;
        }
        assert!(t.elapsed() < limit, "benchmark {id} did not get there within {limit:?}: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sim_run(prompts: u64, concurrency: u64, output: u64) -> Value {
    json!({"num_prompts": prompts, "max_concurrency": concurrency, "dataset": {"input_len": 64, "output_len": output}})
}

/// Every file under `dir`, as bytes.
fn all_files(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
}

#[test]
fn a_public_bind_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for args in [vec!["--host", "0.0.0.0"], vec!["--host", "::"], vec!["--token", ""]] {
        let o = Command::new(BIN)
            .args(["api", "--port", "0", "--store"])
            .arg(dir.path().join("db.sqlite"))
            .args(&args)
            .env_remove("INFERBENCH_API_TOKEN")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains("--token"), "{err}");
    }
}

#[test]
fn queue_cancel_restart_secrets_and_refusals() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let tok = Some("s3cret-token");
    let key = "sk-never-stored-42";
    let api = Api::start(dir.path(), &["--token", "s3cret-token"]);
    let u = api.url.clone();

    // Auth: /health is open; everything under /api needs the exact token.
    assert_eq!(call("GET", &format!("{u}/health"), None, None).0, 200);
    for t in [None, Some("wrong"), Some("s3cret-toke")] {
        let (code, text) = call("GET", &format!("{u}/api/v1/benchmarks"), t, None);
        assert_eq!(code, 401, "{t:?}: {text}");
    }
    let (code, text) = call("GET", &format!("{u}/api/openapi.json"), tok, None);
    assert_eq!(code, 200);
    assert!(json_of(&text)["paths"]["/api/v1/benchmarks/{id}/events"].is_object());

    // Refusals: size, a malformed spec naming the field, ids that climb out.
    let big = vec![b'x'; 2 << 20];
    assert_eq!(call("POST", &format!("{u}/api/v1/benchmarks"), tok, Some(&big)).0, 413);
    let bad = json!({"kind": "run", "server": "simulator", "spec": {"num_prompts": "many"}});
    let (code, text) = call("POST", &format!("{u}/api/v1/benchmarks"), tok, Some(bad.to_string().as_bytes()));
    assert_eq!((code, json_of(&text)["field"].as_str()), (400, Some("spec.num_prompts")), "{text}");
    assert!(json_of(&text)["error"].as_str().unwrap().starts_with("spec.num_prompts: invalid type"), "{text}");
    for path in ["..%2F..%2Fapi.sqlite/result.json", "..%2F..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "a.b/result.json"] {
        let (code, text) = call("GET", &format!("{u}/api/v1/benchmarks/{path}"), tok, None);
        assert!(code == 400 || code == 404, "{path}: {code} {text}");
        assert!(!text.contains("root:") && !text.contains("SQLite"), "{path}: {text}");
    }

    // Six benchmarks at once: they run one at a time, in order.
    let a = submit(
        &u,
        tok,
        &json!({"kind": "run", "server": "simulator", "api_key": key, "labels": {"side": "a"}, "spec": sim_run(60, 6, 16)}),
    );
    let f = submit(&u, tok, &json!({"kind": "run", "spec": {"base_url": "http://someone:hunter2@127.0.0.1:1", "num_prompts": 4}}));
    let b = submit(&u, tok, &json!({"kind": "run", "server": "simulator", "spec": sim_run(4000, 4, 64)}));
    let c = submit(&u, tok, &json!({"kind": "run", "server": "simulator", "spec": sim_run(4000, 4, 64)}));
    let d = submit(&u, tok, &json!({"kind": "run", "server": "simulator", "labels": {"side": "d"}, "spec": sim_run(60, 6, 16)}));
    let mut e_spec = sim_run(8, 2, 4);
    e_spec["api_key"] = json!(key); // a key given in the spec is a secret too
    let e = submit(&u, tok, &json!({"kind": "run", "server": "simulator", "spec": e_spec}));
    let (_, text) = call("GET", &format!("{u}/api/v1/benchmarks/{e}"), tok, None);
    assert!(json_of(&text)["queue_position"].as_u64().unwrap() >= 4, "{text}");
    let done = wait(&u, tok, &a, Duration::from_secs(60), |v| v["status"] == "done");
    assert_eq!(done["metrics"]["completed"], 60.0, "{done}");
    assert_eq!(done["result"]["summary"]["completed"], 60, "the typed result");
    let failed = wait(&u, tok, &f, Duration::from_secs(60), |v| v["status"] == "failed");
    assert!(failed["error"].as_str().unwrap().contains("127.0.0.1:1"), "{failed}");
    // Filters.
    let (_, text) = call("GET", &format!("{u}/api/v1/benchmarks?status=done&label=side%3Da"), tok, None);
    let listed: Vec<String> =
        json_of(&text)["benchmarks"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed, std::slice::from_ref(&a));
    assert_eq!(call("GET", &format!("{u}/api/v1/benchmarks?status=finished"), tok, None).0, 400);

    // B runs; its events stream says how it goes once a second; cancelling it keeps its records.
    wait(&u, tok, &b, Duration::from_secs(60), |v| v["progress"]["completed"].as_u64().unwrap_or(0) > 0);
    let o = Command::new("curl")
        .args(["-s", "-N", "--max-time", "3", "-H", "Authorization: Bearer s3cret-token", &format!("{u}/api/v1/benchmarks/{b}/events")])
        .output()
        .unwrap();
    let stream = String::from_utf8_lossy(&o.stdout);
    let progress: Vec<Value> = stream
        .split("\n\n")
        .filter(|ev| ev.starts_with("event: progress"))
        .map(|ev| json_of(ev.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()))
        .collect();
    assert!(progress.len() >= 3, "{stream}");
    let last = progress.last().unwrap();
    assert!(last["completed"].as_u64().unwrap() > 0 && last["in_flight"].as_u64().unwrap() > 0, "{last}");
    assert!(last["ttft_ms"]["p99"].as_f64().unwrap() > 0.0 && last["itl_ms"]["p50"].as_f64().unwrap() > 0.0, "{last}");
    let (code, _) = call("DELETE", &format!("{u}/api/v1/benchmarks/{b}"), tok, None);
    assert_eq!(code, 202);
    let cancelled = wait(&u, tok, &b, Duration::from_secs(30), |v| v["status"] == "cancelled");
    let n = cancelled["result"]["summary"]["completed"].as_u64().unwrap();
    assert!(n > 0 && n < 4000, "{cancelled}");
    assert!(cancelled["result"]["interrupted"] == true, "{}", cancelled["result"]["interrupted"]);
    let (code, records) = call("GET", &format!("{u}/api/v1/benchmarks/{b}/records.jsonl"), tok, None);
    assert_eq!(code, 200);
    let measured = records.lines().filter(|l| l.contains("\"sent_ns\"")).count() as u64;
    assert!(measured >= n, "{measured} records for {n} completed");
    assert_eq!(call("DELETE", &format!("{u}/api/v1/benchmarks/{b}"), tok, None).0, 409, "it has ended");

    // C runs; the API process dies under it. At the restart C is interrupted with its records,
    // and the queue goes on: D runs; E's API key did not survive, so it fails saying so.
    wait(&u, tok, &c, Duration::from_secs(60), |v| v["progress"]["completed"].as_u64().unwrap_or(0) > 0);
    std::thread::sleep(Duration::from_millis(1500));
    let first_log = api.log.clone();
    api.kill();
    let api = Api::start(dir.path(), &["--token", "s3cret-token"]);
    let u = api.url.clone();
    let c_now = wait(&u, tok, &c, Duration::from_secs(5), |v| v["status"] != "running");
    assert_eq!(c_now["status"], "interrupted", "{c_now}");
    let c_records = dir.path().join("results").join(&c).join("result.records.jsonl");
    let kept = std::fs::read_to_string(&c_records).unwrap().lines().filter(|l| l.contains("\"sent_ns\"")).count();
    assert!(kept > 0, "the interrupted run's records are kept");
    let d_done = wait(&u, tok, &d, Duration::from_secs(60), |v| v["status"] == "done");
    assert_eq!(d_done["labels"]["side"], "d");
    let e_end = wait(&u, tok, &e, Duration::from_secs(30), |v| v["status"] == "failed");
    assert!(e_end["error"].as_str().unwrap().contains("submit it again"), "{e_end}");

    // A finished run's events are replayed, ending with `end`; its files are served.
    let (_, replay) = call("GET", &format!("{u}/api/v1/benchmarks/{a}/events"), tok, None);
    assert!(replay.contains("event: progress") && replay.trim_end().rsplit("\n\n").next().unwrap().starts_with("event: end"), "{replay}");
    let (code, page) = call("GET", &format!("{u}/api/v1/benchmarks/{a}/report.html"), tok, None);
    assert!(code == 200 && page.contains("<svg") && page.contains("TTFT"));
    let (code, csv) = call("GET", &format!("{u}/api/v1/benchmarks/{a}/result.csv"), tok, None);
    assert!(code == 200 && csv.lines().count() == 2, "{csv}");

    // A and D ran the same workload: compared; and the trend has both.
    let (code, text) = call("GET", &format!("{u}/api/v1/compare?base={a}&candidate={d}"), tok, None);
    assert_eq!(code, 200, "{text}");
    let cmp = json_of(&text);
    assert!(cmp["rows"].as_array().unwrap().iter().any(|r| r["key"] == "ttft_median" && r["verdict"].is_string()), "{text}");
    let (code, text) = call("GET", &format!("{u}/api/v1/compare?base={a}&candidate={b}"), tok, None);
    assert_eq!(code, 400, "a different load is refused: {text}");
    let (code, text) = call("GET", &format!("{u}/api/v1/history?metric=output_throughput&label=side%3Dd"), tok, None);
    assert_eq!(code, 200, "{text}");
    assert_eq!(json_of(&text)["points"].as_array().unwrap().len(), 1, "{text}");

    // The key and the URL password were used and are nowhere: not in any file, not in any answer.
    let (_, list) = call("GET", &format!("{u}/api/v1/benchmarks"), tok, None);
    let (_, one_a) = call("GET", &format!("{u}/api/v1/benchmarks/{a}"), tok, None);
    let (_, one_f) = call("GET", &format!("{u}/api/v1/benchmarks/{f}"), tok, None);
    drop(api);
    let mut files = Vec::new();
    all_files(dir.path(), &mut files);
    assert!(files.len() > 10);
    for secret in [key, "hunter2", "s3cret-token"] {
        for (p, bytes) in &files {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} found in {}", p.display());
        }
        for answer in [&list, &one_a, &one_f] {
            assert!(!answer.contains(secret), "{secret} in an answer");
        }
    }
    assert!(std::fs::read_to_string(first_log).unwrap().contains("benchmark starts"), "the log was captured");

    // Stopped by SIGTERM while a run measures: it exits 0, and the run is interrupted with its
    // result written.
    let api = Api::start(dir.path(), &["--token", "s3cret-token"]);
    let g = submit(&api.url, tok, &json!({"kind": "run", "server": "simulator", "spec": sim_run(4000, 4, 64)}));
    wait(&api.url, tok, &g, Duration::from_secs(60), |v| v["progress"]["completed"].as_u64().unwrap_or(0) > 0);
    assert!(api.terminate().success());
    let api = Api::start(dir.path(), &["--token", "s3cret-token"]);
    let stopped = wait(&api.url, tok, &g, Duration::from_secs(5), |v| v["status"] != "running");
    assert_eq!(stopped["status"], "interrupted", "{stopped}");
    assert!(stopped["result"]["summary"]["completed"].as_u64().unwrap() > 0, "what it measured is written");
}

#[test]
fn seed_000_curl_as_written() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path(), &[]);
    let port = api.url.rsplit(':').next().unwrap().to_owned();
    // The seed's command, with the port given. `gpt2` is not a model this build can load, so the
    // answer is a 400 naming the field and the models it can.
    let seed = |model: &str| {
        let cmd = format!(
            r#"curl -s -w '\n%{{http_code}}' -X POST http://localhost:{port}/api/benchmark -d '{{"model_name": "{model}", "test_types": ["latency", "memory"]}}'"#
        );
        let o = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse::<u16>().unwrap(), json_of(body))
    };
    let (code, v) = seed("gpt2");
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["field"], "model_name");
    assert!(v["error"].as_str().unwrap().contains("SmolLM2-135M-Instruct"), "{v}");
    // The same command with a model this build can load runs latency and memory only.
    let model_dir = tempfile::tempdir().unwrap();
    let model = model_dir.path().join("tiny.gguf");
    inferbench_engine::testing::write_tiny_model(&model, &inferbench_engine::testing::TinySpec::default()).unwrap();
    let (code, v) = seed(model.to_str().unwrap());
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let done = wait(&api.url, None, &id, Duration::from_secs(240), |v| v["status"] != "queued" && v["status"] != "running");
    assert_eq!(done["status"], "done", "{done}");
    let r = &done["result"];
    assert_eq!(r["kind"], "engine");
    assert!(!r["latency"].as_array().unwrap().is_empty(), "latency measured");
    assert!(!r["memory"].as_object().unwrap().is_empty(), "memory measured: {}", r["memory"]);
    // Throughput was not asked for: no batch or concurrent figures (single-request decode is part
    // of the latency grid's report).
    let t = r["throughput"].as_object().unwrap();
    assert!(!t.keys().any(|k| k.starts_with("batch") || k.starts_with("concurrent")), "throughput was not asked for: {t:?}");
    assert_eq!(done["labels"]["submitted_as"], "seed-000");
    let (code, text) = call("GET", &format!("{}/api/v1/benchmarks?kind=engine", api.url), None, None);
    assert!(code == 200 && text.contains(&id));
}

#[test]
fn a_sweep_and_a_cancelled_engine_benchmark() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path(), &[]);
    let u = api.url.clone();
    let sweep = json!({"kind": "sweep", "server": "simulator",
        "spec": {"dimension": "concurrency", "loads": [1, 2], "spec": {"num_prompts": 12, "dataset": {"input_len": 32, "output_len": 8}}}});
    let s = submit(&u, None, &sweep);
    let model_dir = tempfile::tempdir().unwrap();
    let model = model_dir.path().join("tiny.gguf");
    inferbench_engine::testing::write_tiny_model(&model, &inferbench_engine::testing::TinySpec::default()).unwrap();
    // Many runs per cell, so it is still measuring when cancelled.
    let engine = json!({"kind": "engine", "spec": {"model": model, "latency": {"test_runs": 100000, "input_lengths": [16, 32], "output_lengths": [16]}}});
    let e = submit(&u, None, &engine);
    // Seed 002's versioned route reads the same benchmarks.
    let (code, text) = call("GET", &format!("{u}/api/v1alpha1/benchmarks/{e}"), None, None);
    assert!(code == 200 && json_of(&text)["kind"] == "engine", "{text}");

    let done = wait(&u, None, &s, Duration::from_secs(60), |v| v["status"] == "done");
    assert_eq!(done["result"]["steps"].as_array().unwrap().len(), 2, "{}", done["result"]);
    let (_, events) = call("GET", &format!("{u}/api/v1/benchmarks/{s}/events"), None, None);
    assert_eq!(events.matches("event: step").count(), 2, "{events}");
    let (code, text) = call("GET", &format!("{u}/api/v1/benchmarks/{s}/records.jsonl"), None, None);
    assert!(code == 404 && text.contains("per step"), "{text}");
    assert_eq!(call("GET", &format!("{u}/api/v1/benchmarks/{s}/result.csv"), None, None).0, 200);
    assert_eq!(call("GET", &format!("{u}/api/v1/benchmarks/{s}/report.html"), None, None).0, 200);

    wait(&u, None, &e, Duration::from_secs(60), |v| v["progress"]["completed"].as_u64().unwrap_or(0) >= 5);
    assert_eq!(call("DELETE", &format!("{u}/api/v1/benchmarks/{e}"), None, None).0, 202);
    let ended = wait(&u, None, &e, Duration::from_secs(60), |v| v["status"] != "running");
    assert_eq!(ended["status"], "cancelled", "{ended}");
    let r = &ended["result"];
    assert!(r["errors"].as_array().unwrap().iter().any(|x| x.as_str().unwrap().starts_with("cancelled")), "{}", r["errors"]);
    assert!(r["latency"].as_array().unwrap().len() < 2, "the grid stopped: {}", r["latency"]);
    let (code, records) = call("GET", &format!("{u}/api/v1/benchmarks/{e}/records.jsonl"), None, None);
    assert!(code == 200 && records.lines().count() > 5, "what was measured is kept");
}
