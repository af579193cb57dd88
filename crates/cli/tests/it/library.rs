//! What the library shape promises at the command line: specs that re-run exactly, workloads
//! compared only with their like, labels in every file, every file matching its schema.

use crate::harness::{read_records, run, validate_dir, validated, Sim, BIN};
use serde_json::Value;
use std::process::Command;

fn by_id(recs: &[Value]) -> Vec<(u64, u64, u64)> {
    let mut v: Vec<(u64, u64, u64)> = recs
        .iter()
        .map(|r| (r["id"].as_u64().unwrap(), r["input_tokens"].as_u64().unwrap(), r["scheduled_ns"].as_u64().unwrap()))
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn a_saved_run_reruns_the_same_workload_from_its_spec() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let flags = ["--random-input-len", "40", "--random-range-ratio", "0.5", "--random-output-len", "4", "--num-prompts", "30"];
    let first = run(&sim.url, &[&flags[..], &["--request-rate", "300", "--seed", "7", "--label", "team=perf"]].concat());
    let j = first.assert_ok().json();
    assert_eq!(j["labels"]["team"], "perf", "labels reach the JSON");
    assert!(std::fs::read_to_string(first.file("csv")).unwrap().contains("team=perf"), "and the CSV");
    // Only the spec: every workload flag comes from the file.
    let again = run(&sim.url, &["--spec", first.file("json").to_str().unwrap()]);
    again.assert_ok();
    let (a, b) = (by_id(&first.records()), by_id(&again.records()));
    assert_eq!(a.len(), 30);
    let lengths = |v: &[(u64, u64, u64)]| v.iter().map(|x| x.1).collect::<Vec<_>>();
    assert_eq!(lengths(&a), lengths(&b), "same prompts, same lengths");
    assert!(lengths(&a).iter().any(|&l| l != 40), "the range ratio made lengths vary");
    let offsets = |v: &[(u64, u64, u64)]| v.iter().map(|x| x.2).collect::<Vec<_>>();
    assert_eq!(offsets(&a), offsets(&b), "same Poisson arrivals: identical scheduled offsets");
    assert_eq!(first.json()["spec"], again.json()["spec"]);
    // A different seed is a different workload.
    let other = run(&sim.url, &[&flags[..], &["--request-rate", "300", "--seed", "8"]].concat());
    assert_ne!(offsets(&a), offsets(&by_id(&other.assert_ok().records())));
}

#[test]
fn compare_refuses_runs_with_different_turns() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let conv = |turns: &str| {
        run(
            &sim.url,
            &[
                "--backend",
                "openai-chat",
                "--dataset-name",
                "multi-turn",
                "--turns",
                turns,
                "--num-prompts",
                "3",
                "--random-output-len",
                "4",
            ],
        )
    };
    let (two, three) = (conv("2"), conv("3"));
    assert_eq!(two.assert_ok().json()["spec"]["dataset"]["turns"], 2, "--turns is saved in the spec");
    assert_eq!(three.assert_ok().json()["spec"]["dataset"]["turns"], 3);
    let out = Command::new(BIN).arg("compare").arg(two.file("json")).arg(three.file("json")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("dataset.turns: 2 vs 3"), "{err}");
    let same = Command::new(BIN).arg("compare").arg(two.file("json")).arg(two.file("json")).output().unwrap();
    assert!(same.status.success(), "{}", String::from_utf8_lossy(&same.stderr));
}

#[test]
fn every_file_of_every_kind_matches_its_schema() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let sweep = Command::new(BIN)
        .args(["sweep", "--base-url", &sim.url, "--concurrencies", "1,2", "--num-prompts", "6", "--random-input-len", "16"])
        .args(["--random-output-len", "4", "--slo", "ttft:p99:1000", "--disable-tqdm", "--result-filename", "s", "--result-dir", d])
        .output()
        .unwrap();
    assert!(sweep.status.success(), "{}", String::from_utf8_lossy(&sweep.stderr));
    let sweep_file = dir.path().join("s.sweep.json");
    let cmp = dir.path().join("cmp.json");
    let o = Command::new(BIN).arg("compare").arg(&sweep_file).arg(&sweep_file).arg("--output").arg(&cmp).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan = dir.path().join("plan.json");
    let o = Command::new(BIN)
        .arg("plan")
        .arg(&sweep_file)
        .args(["--target-rate", "10", "--label", "k=v"])
        .arg("--output")
        .arg(&plan)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(validated(&cmp)["kind"], "compare");
    assert_eq!(validated(&plan)["labels"]["k"], "v");
    // Two steps (json + records each), the sweep, the comparison and the plan.
    assert_eq!(validate_dir(dir.path()), 7);
    assert_eq!(read_records(&dir.path().join("s-c2.records.jsonl")).len(), 6);
}
