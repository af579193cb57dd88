//! Indexing 10,000 results (target < 10 s) and `history` over 10,000 stored runs (target < 200
//! ms): writes 10,000 copies of a real run's JSON with distinct ids and times, imports them into a
//! fresh store, then asks for a trend. Prints medians of three.

use inferbench_store::trend::{Query, Rule};
use inferbench_store::Store;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("results");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..n {
        v["run_id"] = format!("bench-{i:06}").into();
        v["started"] = format!("2026-{:02}-{:02}T{:02}:{:02}:00Z", 1 + i / 44640 % 12, 1 + i / 1440 % 28, i / 60 % 24, i % 60).into();
        std::fs::write(files.join(format!("r{i:06}.json")), serde_json::to_vec(&v).unwrap()).unwrap();
    }
    let mut import = Vec::new();
    let mut history = Vec::new();
    for k in 0..3 {
        let db = dir.path().join(format!("s{k}.sqlite"));
        let mut s = Store::open(&db).unwrap();
        let t = Instant::now();
        let got = s.import_dir(&files).unwrap();
        import.push(t.elapsed().as_secs_f64());
        assert_eq!(got.indexed as usize, n);
        let t = Instant::now();
        let trend = s.history(&Query { metric: "ttft_p99".into(), ..Query::default() }, Rule::default()).unwrap();
        history.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(trend.points.len(), n);
    }
    println!("{:<58} {:>8.2} s    (target < 10)", format!("index {n} results (median of 3)"), median(import));
    println!("{:<58} {:>8.1} ms   (target < 200)", format!("history over {n} stored runs (median of 3)"), median(history));
}
