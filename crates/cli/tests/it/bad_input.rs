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

/// Issue 20 item 7: `engine --help` says of every YAML key whether it has a flag or is
/// YAML-only; every key of the config's schema is named, and every flag named exists.
#[test]
fn engine_help_names_every_yaml_key() {
    let _machine = crate::harness::machine_shared();
    let out = Command::new(BIN).args(["engine", "--help"]).env("COLUMNS", "200").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let section = help.split("YAML keys and flags:").nth(1).unwrap_or_else(|| panic!("no key list in\n{help}"));
    let (flagged, yaml_only) = section.split_once("YAML-only:").unwrap();
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
            .map(|w| w.trim_end_matches('.').to_owned())
            .filter(|w| !w.is_empty())
            .collect()
    };
    let flagged = words(flagged);
    let yaml_only = words(yaml_only);
    // Every flag the list names exists.
    for f in flagged.iter().filter(|w| w.starts_with("--")) {
        assert!(help.contains(&format!("  {f}")), "{f} is named but is not a flag of engine");
    }
    // Every leaf key of the config's schema is named on one side, and only one.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema/engine.schema.json")).unwrap(),
    )
    .unwrap();
    let defs = &schema["$defs"];
    let mut keys = Vec::new();
    fn leaves(defs: &serde_json::Value, def: &str, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in defs[def]["properties"].as_object().unwrap() {
            let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
                Some(inner) if defs[inner]["properties"].is_object() => leaves(defs, inner, &path, out),
                _ => out.push(path),
            }
        }
    }
    leaves(defs, "BenchConfig", "", &mut keys);
    assert!(keys.len() > 30, "{keys:?}");
    let named = |key: &str, list: &[String]| {
        let section = key.split('.').next().unwrap_or(key);
        list.iter().any(|w| w == key || *w == format!("{section}.*") || (key == "targets" && w.starts_with("targets.")))
    };
    // Targets are a map: the default model's have a flag, other models' are YAML-only.
    assert!(flagged.contains(&"targets.default".to_owned()) && yaml_only.contains(&"targets.<model>".to_owned()));
    for k in keys.iter().filter(|k| *k != "targets") {
        let (f, y) = (named(k, &flagged), named(k, &yaml_only));
        assert!(f != y, "the YAML key {k} must be named exactly once in engine --help (flag: {f}, YAML-only: {y})");
    }
}
