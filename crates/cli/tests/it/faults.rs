//! Every fault mode of the simulator becomes a counted failure of the right kind, and the run
//! still completes.

use crate::harness::{run, Sim};

fn sim_fault_count(metrics: &str, kind: &str) -> u64 {
    let key = format!("inferbench_sim_faults_total{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {kind} in {metrics}"))
}

#[test]
fn each_fault_mode_is_counted_by_kind() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&[
        "--ttft-ms",
        "1",
        "--itl-ms",
        "1",
        "--error-rate",
        "0.2",
        "--disconnect-rate",
        "0.2",
        "--malformed-rate",
        "0.2",
        "--stall-rate",
        "0.1",
        "--sim-seed",
        "3",
    ]);
    let r = run(
        &sim.url,
        &[
            "--num-prompts",
            "60",
            "--max-concurrency",
            "16",
            "--random-output-len",
            "8",
            "--random-input-len",
            "16",
            "--request-timeout",
            "1.5",
        ],
    );
    let j = r.assert_ok().json();
    let m = sim.metrics();
    let failures = &j["summary"]["failures"];
    let count = |k: &str| failures[k].as_u64().unwrap_or(0);
    assert_eq!(count("http_500"), sim_fault_count(&m, "error"));
    // A cut stream and a bad chunk are told apart.
    assert_eq!(count("disconnect"), sim_fault_count(&m, "disconnect"));
    assert_eq!(count("malformed"), sim_fault_count(&m, "malformed"));
    assert_eq!(count("timeout"), sim_fault_count(&m, "stall"));
    for k in ["http_500", "disconnect", "malformed", "timeout"] {
        assert!(count(k) > 0, "no {k} failures in {failures}");
    }
    let total = j["completed"].as_u64().unwrap() + j["failed"].as_u64().unwrap();
    assert_eq!(total, 60);
    assert!(j["completed"].as_u64().unwrap() > 0);
    assert_eq!(r.records().len(), 60);
    assert!(r.stdout().contains("Failed requests:"));
}
