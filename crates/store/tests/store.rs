//! The store as a real SQLite file: a writer killed mid-write loses nothing it committed, and a
//! trend over 20 stored runs flags exactly the one planted 15 % regression.

use inferbench_store::trend::{Query, Rule};
use inferbench_store::{entry_of, Entry, Store};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn entry(i: usize, value: f64) -> Entry {
    let mut e = Entry {
        id: format!("run-{i:05}"),
        kind: "run".into(),
        time: format!("2026-12-{:02}T{:02}:{:02}:00Z", 1 + i / 1440, (i / 60) % 24, i % 60),
        fingerprint: "fp1".into(),
        model: "m".into(),
        ..Entry::default()
    };
    e.metrics.insert("ttft_p99".into(), value);
    e.metrics.insert("output_throughput".into(), 1000.0);
    e
}

/// The child half of the crash test: commits batches of 100 forever, saying after each.
#[test]
fn writer_child() {
    let Some(db) = std::env::var_os("STORE_CRASH_CHILD") else { return };
    let mut s = Store::open(std::path::Path::new(&db)).unwrap();
    for batch in 0.. {
        let entries: Vec<Entry> = (0..100).map(|k| entry(batch * 100 + k, 10.0)).collect();
        s.record(&entries).unwrap();
        println!("committed {}", (batch + 1) * 100);
    }
}

#[test]
fn a_writer_killed_mid_write_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("results.sqlite");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "writer_child", "--nocapture", "--test-threads", "1"])
        .env("STORE_CRASH_CHILD", &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut committed = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(n) = line.unwrap().strip_prefix("committed ") {
            committed = n.parse().unwrap();
            if committed >= 2000 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-way through a later transaction
    child.wait().unwrap();
    let s = Store::open(&db).unwrap();
    let n = s.count().unwrap();
    assert!(n >= committed && n % 100 == 0, "{n} rows after {committed} committed: whole transactions only");
    let last = s.get(&format!("run-{:05}", n - 1)).unwrap().unwrap();
    assert_eq!(last.metrics["ttft_p99"], 10.0, "the last committed row has its metrics");
}

/// 20 runs of one workload with ±2 % noise, the 13th planted 15 % slower: only it is flagged. A
/// run of another workload or model does not join the trend.
#[test]
fn a_planted_regression_is_flagged_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("results.sqlite")).unwrap();
    let noise = [0.0, 1.5, -1.0, 2.0, -2.0, 0.5, -0.5, 1.0, -1.5, 0.0, 1.8, -1.2, 0.0, 0.7, -0.8, 1.1, -1.9, 0.3, 1.4, -0.6];
    let mut entries: Vec<Entry> = noise.iter().enumerate().map(|(i, n)| entry(i, 100.0 * (1.0 + n / 100.0))).collect();
    entries[12].metrics.insert("ttft_p99".into(), 115.0);
    let mut other = entry(99, 500.0);
    other.fingerprint = "fp2".into();
    entries.push(other);
    s.record(&entries).unwrap();
    let t = s.history(&Query { metric: "ttft_p99".into(), fingerprint: Some("fp1".into()), ..Query::default() }, Rule::default()).unwrap();
    assert_eq!(t.points.len(), 20);
    let flagged: Vec<&str> = t.points.iter().filter(|p| p.flagged.is_some()).map(|p| p.id.as_str()).collect();
    assert_eq!(flagged, vec!["run-00012"]);
    assert!(t.points[12].worse);
    // Without a workload given, the newest matching run's is followed.
    let by_model = s.history(&Query { metric: "ttft_p99".into(), model: Some("m".into()), ..Query::default() }, Rule::default()).unwrap();
    assert_eq!(by_model.fingerprint, "fp2");
}

#[test]
fn a_saved_run_becomes_an_entry() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run.json");
    let r = inferbench_core::SavedResult::from_json(serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()).unwrap();
    let e = entry_of(&r, &p);
    assert_eq!((e.kind.as_str(), e.fingerprint.len()), ("run", 16));
    for k in ["ttft_p99", "tpot_p50", "e2el_mean", "output_throughput", "success_rate"] {
        assert!(e.metrics.contains_key(k), "{k}: {:?}", e.metrics.keys().collect::<Vec<_>>());
    }
    assert!(!e.url.contains('@'));
}
