//! `inferbench import` end to end: a peer tool's files become a result of ours that `compare`
//! takes against our own run of the same workload, and `report` renders.

use crate::harness::*;
use std::path::Path;
use std::process::Command;

fn peer(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/tests/fixtures/peer-results").join(p)
}

#[test]
fn an_imported_aiperf_run_compares_with_ours() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("aiperf.json");
    let o = Command::new(BIN)
        .args(["import", "--from", "aiperf", "--no-store", "--label", "tool=aiperf", "-o"])
        .arg(&out)
        .arg(peer("aiperf/profile_export_aiperf.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("aiperf 0.13.0, recomputed from its per-request data") && stdout.contains("not measured (left empty)"),
        "{stdout}"
    );
    let v = validated(&out);
    assert_eq!(v["imported"]["tool"], "aiperf");
    assert_eq!(v["labels"]["tool"], "aiperf");

    // Our own run of AIPerf's workload (32 in, 16 out, ignore_eos, 4 at a time, 24 requests).
    let sim = Sim::start(&["--ttft-ms", "5", "--itl-ms", "2"]);
    let ours = run(
        &sim.url,
        &[
            "--backend",
            "openai",
            "--random-input-len",
            "32",
            "--random-output-len",
            "16",
            "--ignore-eos",
            "--num-prompts",
            "24",
            "--max-concurrency",
            "4",
        ],
    );
    ours.assert_ok();
    // The one difference is real: AIPerf counted with the mock's tokenizer, we with cl100k_base.
    let o = Command::new(BIN).arg("compare").arg(&out).arg(ours.file("json")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("(tokenizer: \"tokenizer\" vs \"cl100k_base\")"), "only the tokenizer differs: {err}");
    let o = Command::new(BIN).arg("compare").arg(&out).arg(ours.file("json")).arg("--allow-different-workloads").output().unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(table.contains("TTFT") && table.contains("TPOT"), "{table}");
    let o = Command::new(BIN).arg("report").arg(&out).args(["--format", "html", "-o"]).arg(dir.path().join("a.html")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn import_refuses_bad_input_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("x.json");
    std::fs::write(&bad, "[1, 2]").unwrap();
    for (args, says) in [
        (vec!["--from", "locust", "x.json"], "--from: unknown tool 'locust'"),
        (vec!["--from", "vllm", "x.json"], "not a vllm result"),
        (vec!["--from", "vllm", "missing.json"], "cannot read"),
        (vec!["--from", "vllm", "--benchmark", "0", "x.json"], "--benchmark counts from 1"),
    ] {
        let o = Command::new(BIN).arg("import").args(&args).arg("--no-store").current_dir(dir.path()).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says) && err.trim().lines().count() == 1, "{args:?}: {err}");
    }
}
