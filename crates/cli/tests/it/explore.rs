//! `inferbench explore` end to end: real servers (the simulator, stood up by the explorer from a
//! command template) whose latency model makes the best configuration known in advance.

use crate::harness::{machine_alone, machine_shared, BIN};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Processes (not zombies) whose command line contains `marker`.
fn alive_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        if String::from_utf8_lossy(&cmd).contains(marker) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Processes of a process group (not zombies).
fn group(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 3 && f[2] == pgid.to_string() && f[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.split_whitespace().next() != Some("Z")))
        .unwrap_or(false)
}

/// The simulator as a server template: one more running sequence adds 1 ms to every gap
/// (2 ms alone), so TPOT ≈ 1 + max_num_seqs ms at 32 in flight; the 12 ms limit allows 8 of
/// the levels, and 32 output tokens amortise the 50 ms TTFT better than 16.
fn sim_config(dir: &Path, marker: &str, seqs: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.join("explore.yaml");
    std::fs::write(
        &p,
        format!(
            "server:\n  command: '{{inferbench}} serve --sim --port {{port}} --max-num-seqs {{max_num_seqs}} --ttft-ms 50 --itl-ms 2 --itl-ms-per-seq 1 --served-model-name {marker}'\n  ready_timeout_s: 30\n  grace_s: 5\nfactors:\n  server:\n    max_num_seqs: [{seqs}]\n  workload:\n    output_len: [16, 32]\nworkload:\n  num_prompts: 32\n  max_concurrency: 32\n  dataset: {{name: random, input_len: 64}}\nobjective:\n  maximize: output_throughput_per_replica\nconstraints: ['tpot_p99 <= 12']\n{extra}"
        ),
    )
    .unwrap();
    p
}

fn explore_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("explore.json")).unwrap()).unwrap()
}

fn pids(r: &Value) -> Vec<u32> {
    r["runs"].as_array().unwrap().iter().filter_map(|x| x["server_pid"].as_u64()).map(|p| p as u32).collect()
}

#[test]
fn the_factorial_finds_the_known_best_and_the_adaptive_search_finds_it_in_fewer_runs() {
    let _m = machine_alone();
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("explore-e2e-{}", std::process::id());
    let cfg = sim_config(dir.path(), &marker, "2, 4, 8, 16, 32, 64", "");
    // Never more than one server at a time, sampled every 20 ms while the exploration runs.
    let (stop, most) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let sampler = {
        let (stop, most, marker) = (stop.clone(), most.clone(), marker.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                most.fetch_max(alive_with(&marker).len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let fact = dir.path().join("factorial");
    let out = Command::new(BIN).args(["explore", "--config"]).arg(&cfg).arg("--output-dir").arg(&fact).output().unwrap();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(most.load(Ordering::Relaxed), 1, "servers alive at once");
    let r = explore_json(&fact);
    assert_eq!(r["analysis"]["best"], "max_num_seqs=8 output_len=32", "{text}");
    assert_eq!(r["analysis"]["treatments_run"], 12);
    // One server per max_num_seqs level, each gone (and its group empty) once its treatments ended.
    let mut servers = pids(&r);
    servers.dedup();
    assert_eq!(servers.len(), 6, "{servers:?}");
    for p in &servers {
        assert!(!alive(*p) && group(*p).is_empty(), "server {p} outlived the exploration");
    }
    assert!(alive_with(&marker).is_empty());
    // The analysis a person reads.
    assert!(text.contains("Best: max_num_seqs=8 output_len=32"), "{text}");
    assert!(text.contains("max-num-seqs 8 over 4: +"), "{text}");
    assert!(text.contains("max-num-seqs 16 breaks tpot_p99 <= 12"), "{text}");
    let effects = r["analysis"]["main_effects"].as_array().unwrap();
    assert_eq!(effects[0]["factor"], "max_num_seqs", "the factor that matters most comes first");
    assert!(!r["analysis"]["pareto_tpot"].as_array().unwrap().is_empty());
    let html = std::fs::read_to_string(fact.join("explore.html")).unwrap();
    for part in ["id=\"explore-tpot\"", "Pareto frontier", "id=\"effect-max_num_seqs\"", "max-num-seqs 16 breaks tpot_p99 &lt;= 12"] {
        assert!(html.contains(part), "explore.html lacks {part}");
    }
    // Every treatment's result is a run file that `report` reads.
    let f = r["runs"][0]["result_file"].as_str().unwrap();
    assert!(Command::new(BIN).arg("report").arg(fact.join(f)).output().unwrap().status.success());

    // The adaptive search on the same space: the same best in fewer runs.
    let climb = dir.path().join("adaptive");
    let out =
        Command::new(BIN).args(["explore", "--design", "adaptive", "--config"]).arg(&cfg).arg("--output-dir").arg(&climb).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a = explore_json(&climb);
    assert_eq!(a["analysis"]["best"], "max_num_seqs=8 output_len=32", "{}", String::from_utf8_lossy(&out.stdout));
    let n = a["analysis"]["treatments_run"].as_u64().unwrap();
    assert!(n < 12, "the adaptive search ran {n} treatments, the grid 12");
    for p in pids(&a) {
        assert!(!alive(p), "server {p} outlived the exploration");
    }

    // Resume: a second start in the same directory measures nothing again.
    let t0 = Instant::now();
    let out = Command::new(BIN).args(["explore", "--config"]).arg(&cfg).arg("--output-dir").arg(&fact).output().unwrap();
    assert!(out.status.success());
    let again = explore_json(&fact);
    assert!(again["runs"].as_array().unwrap().iter().all(|x| x["status"] == "resumed"), "{again}");
    assert_eq!(again["analysis"]["best"], "max_num_seqs=8 output_len=32");
    assert!(t0.elapsed() < Duration::from_secs(20));
}

#[test]
fn ctrl_c_tears_the_server_down_and_keeps_what_was_measured() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("explore-int-{}", std::process::id());
    // max_num_seqs 1 and 256 output tokens: the first run takes about 20 s.
    let cfg = sim_config(dir.path(), &marker, "1, 2", "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("output_len: [16, 32]", "output_len: [256]");
    std::fs::write(&cfg, text).unwrap();
    let out_dir = dir.path().join("out");
    let child = Command::new(BIN)
        .args(["explore", "--config"])
        .arg(&cfg)
        .arg("--output-dir")
        .arg(&out_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the server is up and some requests have finished.
    let t0 = Instant::now();
    while alive_with(&marker).is_empty() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let server = alive_with(&marker);
    assert_eq!(server.len(), 1);
    std::thread::sleep(Duration::from_secs(3));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(alive_with(&marker).is_empty(), "a server outlived Ctrl-C");
    assert!(!alive(server[0]));
    let r = explore_json(&out_dir);
    assert_eq!(r["interrupted"], true);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{r}");
    assert_eq!(runs[0]["status"], "interrupted");
    assert!(runs[0]["metrics"]["output_throughput"].as_f64().unwrap() > 0.0, "what was measured is kept: {r}");
    assert!(out_dir.join(runs[0]["result_file"].as_str().unwrap()).is_file());
}

#[test]
fn a_server_that_never_becomes_ready_is_reported_and_the_exploration_goes_on() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("explore.yaml");
    std::fs::write(
        &cfg,
        "server:\n  command: 'sleep {delay} && exec {inferbench} serve --sim --port {port}'\n  ready_timeout_s: 2\n  grace_s: 1\nfactors:\n  server:\n    delay: [60, 0]\nworkload: {num_prompts: 8, max_concurrency: 4, dataset: {name: random, input_len: 16, output_len: 8}}\nobjective: {maximize: output_throughput}\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new(BIN).args(["explore", "--config"]).arg(&cfg).arg("--output-dir").arg(&out_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = explore_json(&out_dir);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs[0]["status"], "not_ready", "{r}");
    assert!(runs[0]["error"].as_str().unwrap().contains("did not answer"), "{r}");
    assert_eq!(runs[1]["status"], "ok", "{r}");
    assert_eq!(r["analysis"]["best"], "delay=0");
    // The never-ready server's whole group (the shell and its sleep) is gone.
    for p in pids(&r) {
        assert!(!alive(p) && group(p).is_empty(), "process group {p} outlived its treatment");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("delay=60: NotReady"), "{stdout}");
}

#[test]
fn bad_explorations_get_one_line_naming_the_problem() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("server: {command: 'x --port {port} --mns {max_num_seq}'}\nfactors: {server: {max_num_seqs: [1]}}\nobjective: {maximize: output_throughput}\n", "'max_num_seqs' does not appear in server.command"),
        ("external: http://127.0.0.1:9\nobjective: {maximize: throughput_x}\n", "unknown metric 'throughput_x'"),
        ("external: http://127.0.0.1:9\nobjective: {maximize: output_throughput}\nconstraints: ['ttft_p95 = 3']\n", "invalid constraint 'ttft_p95 = 3'"),
        ("external: http://127.0.0.1:9\nobjective: {maximize: output_throughput}\ndesgin: {kind: grid}\n", "unknown field `desgin`"),
        ("external: http://127.0.0.1:9\nobjective: {maximize: output_throughput}\nfactors: {workload: {concurency: [1, 2]}}\n", "unknown factor 'concurency'"),
        ("external: http://127.0.0.1:9\nobjective: {minimize: cost_per_million_tokens}\n", "give price_per_hour"),
    ];
    for (i, (yaml, want)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&p, yaml).unwrap();
        let out = Command::new(BIN).args(["explore", "--config"]).arg(&p).arg("--output-dir").arg(dir.path().join("o")).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {err}");
        assert!(err.contains(want) && err.trim().lines().count() == 1, "{yaml}: wanted '{want}' in one line, got {err}");
    }
}

/// A peer tool's executable, when installed: `INFERBENCH_<TOOL>` (e.g. `INFERBENCH_AIPERF`), else
/// on PATH. `.ci/run` installs AIPerf from PyPI; guidellm pulls in torch (5.9 GB) and is left out.
fn installed(tool: &str) -> Option<String> {
    if let Some(p) = std::env::var_os(format!("INFERBENCH_{}", tool.to_uppercase())) {
        return Some(p.to_string_lossy().into_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file()).map(|p| p.display().to_string())
}

/// The adapter's command line run for real against the simulator at two server levels, and the
/// tool's output imported as each treatment's result.
fn peer_tool_runs_for_real(tool: &str) {
    let Some(exe) = installed(tool) else {
        eprintln!("skipped: {tool} is not installed (pip install {tool}, or set INFERBENCH_{})", tool.to_uppercase());
        return;
    };
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    // The offline tokenizer the peer fixtures were made with (no hub access needed).
    let tok = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/tests/fixtures/peer-results/tokenizer");
    let cfg = dir.path().join("explore.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server:\n  command: '{{inferbench}} serve --sim --port {{port}} --max-num-seqs {{max_num_seqs}} --served-model-name mock-model'\nharness: {{tool: {tool}, executable: '{exe}'}}\nfactors:\n  server:\n    max_num_seqs: [2, 8]\nworkload: {{num_prompts: 24, max_concurrency: 4, ignore_eos: true, tokenizer: '{}', dataset: {{name: random, input_len: 32, output_len: 16}}}}\nobjective: {{maximize: output_throughput}}\n",
            tok.display()
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new(BIN).args(["explore", "--config"]).arg(&cfg).arg("--output-dir").arg(&out_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = explore_json(&out_dir);
    for run in r["runs"].as_array().unwrap() {
        assert_eq!(run["status"], "ok", "{r}");
        let f = out_dir.join(run["result_file"].as_str().unwrap());
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        assert_eq!(saved["imported"]["tool"], tool, "the result is {tool}'s, imported");
        assert_eq!(saved["summary"]["completed"], 24);
    }
    // With 4 streams, 8 sequences at once beat 2.
    assert_eq!(r["analysis"]["best"], "max_num_seqs=8");
}

#[test]
fn the_aiperf_adapter_runs_the_real_tool_when_it_is_installed() {
    peer_tool_runs_for_real("aiperf");
}

#[test]
fn the_guidellm_adapter_runs_the_real_tool_when_it_is_installed() {
    peer_tool_runs_for_real("guidellm");
}

#[test]
fn a_server_command_that_cannot_run_stops_the_exploration_with_the_shells_words() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("explore.yaml");
    std::fs::write(
        &cfg,
        "server: {command: 'no-such-server-binary --port {port} --max-num-seqs {max_num_seqs}'}\nfactors: {server: {max_num_seqs: [1, 2, 4]}}\nobjective: {maximize: output_throughput}\n",
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let out = Command::new(BIN).args(["explore", "--config"]).arg(&cfg).arg("--output-dir").arg(dir.path().join("o")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let last = err.trim().lines().last().unwrap();
    assert!(last.contains("server.command could not be run (exit status: 127)") && last.contains("not found"), "{err}");
    // Once, not once per level.
    assert_eq!(err.matches("server up:").count(), 1, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(10));
}
