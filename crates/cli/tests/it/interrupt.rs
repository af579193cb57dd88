//! Ctrl-C stops scheduling, cancels what outlives the grace period, and still writes everything.

use crate::harness::{read_records, run_cmd, Sim};
use std::process::Command;
use std::time::Duration;

#[test]
fn ctrl_c_keeps_json_and_jsonl() {
    let _machine = crate::harness::machine_shared();
    // Each request takes ~5 s, so an interrupt at ~1.5 s finds all of them in flight.
    let sim = Sim::start(&["--ttft-ms", "5", "--itl-ms", "50"]);
    let (mut cmd, dir) = run_cmd(
        &sim.url,
        &[
            "--num-prompts",
            "40",
            "--max-concurrency",
            "10",
            "--random-output-len",
            "100",
            "--random-input-len",
            "16",
            "--grace-period",
            "0.5",
        ],
    );
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted runs exit 130");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(json["interrupted"], true);
    let records = read_records(&dir.path().join("r.records.jsonl"));
    assert_eq!(records.len(), 10, "every in-flight request is recorded");
    assert_eq!(json["summary"]["failures"]["cancelled"], 10);
    assert!(dir.path().join("r.csv").exists());
}

#[test]
fn ctrl_c_during_a_sweep_keeps_the_steps_measured() {
    let _machine = crate::harness::machine_shared();
    // Requests of 16 tokens 50 ms apart (~0.8 s): c=1 runs two in turn (~1.6 s), c=2 both at
    // once (~0.8 s). The interrupt lands 0.2 s after c=1 is saved, inside c=2.
    let sim = Sim::start(&["--ttft-ms", "5", "--itl-ms", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(crate::harness::BIN)
        .args(["sweep", "--base-url", &sim.url, "--backend", "vllm", "--disable-tqdm", "--random-input-len", "16"])
        .args(["--random-output-len", "16", "--concurrencies", "1,2,4", "--grace-period", "0.1", "--result-filename", "s"])
        .args(["--num-prompts", "2", "--result-dir"])
        .arg(dir.path())
        .spawn()
        .unwrap();
    let sweep_file = dir.path().join("s.sweep.json");
    let start = std::time::Instant::now();
    while !sweep_file.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted sweeps exit 130");
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&sweep_file).unwrap()).unwrap();
    assert_eq!(s["stopped"], "interrupted", "{s}");
    let steps = s["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "c=1 complete, c=2 as far as it got: {s}");
    assert_eq!(steps[1]["runs"][0]["summary"]["failures"]["cancelled"], 2, "{s}");
    assert!(dir.path().join("s-c2.records.jsonl").exists() && !dir.path().join("s-c4.json").exists());
}
