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
