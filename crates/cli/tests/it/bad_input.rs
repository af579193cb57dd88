//! Bad flags, bad servers and bad paths: one readable line, non-zero exit, no panic.

use crate::harness::{run, Sim, BIN};
use std::process::Command;

fn assert_one_line_error(r: &crate::harness::Run, needle: &str) {
    let err = r.stderr();
    assert!(!r.out.status.success(), "should fail: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
}

#[test]
fn bad_flags_name_the_flag_and_value() {
    let _machine = crate::harness::machine_shared();
    let url = "http://127.0.0.1:9";
    assert_one_line_error(&run(url, &["--backend", "foo"]), "invalid --backend 'foo'");
    assert_one_line_error(&run(url, &["--metric-percentiles", "50,abc"]), "--metric-percentiles");
    assert_one_line_error(&run(url, &["--goodput", "latency:5"]), "unknown metric 'latency'");
    assert_one_line_error(&run(url, &["--request-rate", "fast"]), "invalid --request-rate 'fast'");
    assert_one_line_error(&run("localhost:8000", &[]), "invalid URL 'localhost:8000'");
    assert_one_line_error(&run(url, &["--extra-body", "[1]"]), "must be a JSON object");
}

#[test]
fn unreachable_server_fails_fast() {
    let _machine = crate::harness::machine_shared();
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let r = run(&url, &["--num-prompts", "5"]);
    assert_one_line_error(&r, &format!("cannot reach {url}/v1/models"));
}

#[test]
fn wrong_api_key_and_unknown_model() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--api-key", "sekrit"]);
    let r = run(&sim.url, &["--api-key", "wrong", "--num-prompts", "2"]);
    assert_one_line_error(&r, "HTTP 401");
    assert!(r.stderr().contains("API key was rejected"));
    assert!(!r.stderr().contains("wrong"), "the key must not be echoed");
    let r = run(&sim.url, &["--api-key", "sekrit", "--model", "gpt-9", "--num-prompts", "2"]);
    assert_one_line_error(&r, "model 'gpt-9' is not served");
    let r = run(&sim.url, &["--api-key", "sekrit", "--num-prompts", "2", "--random-input-len", "8", "--random-output-len", "2"]);
    r.assert_ok();
    let saved = std::fs::read_to_string(r.file("json")).unwrap() + &std::fs::read_to_string(r.file("records.jsonl")).unwrap();
    assert!(!saved.contains("sekrit"), "API keys never reach result files");
}

#[test]
fn unwritable_result_dir_is_named() {
    let _machine = crate::harness::machine_shared();
    let file = tempfile::NamedTempFile::new().unwrap();
    let bad = file.path().join("sub");
    let out = Command::new(BIN).args(["run", "--base-url", "http://127.0.0.1:9", "--result-dir"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--result-dir") && err.contains(&*bad.to_string_lossy()), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn serve_refuses_both_a_model_and_the_simulator() {
    let _machine = crate::harness::machine_shared();
    let out = Command::new(BIN).args(["serve", "--port", "0", "--sim", "--model", "m.gguf"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--sim") && err.contains("--model"), "{err}");
}

#[test]
fn cli_docs_are_current() {
    let _machine = crate::harness::machine_shared();
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md")).unwrap();
    for cmd in ["run", "sweep", "compare", "plan", "serve", "demo", "engine", "model pull", "dataset"] {
        let out = Command::new(BIN).args(cmd.split(' ')).arg("--help").env("COLUMNS", "100").output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(docs.contains(&help), "docs/cli.md is stale for `{cmd}`: run scripts/gen-cli-docs");
    }
}
