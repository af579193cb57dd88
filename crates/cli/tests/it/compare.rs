//! `inferbench compare` on runs against the simulator, whose latency we set: a planted 10 %
//! slowdown is flagged as a significant regression; two runs of one configuration are not.

use crate::harness::*;
use std::process::Command;

fn bench(sim: &Sim, dir: &std::path::Path, name: &str, extra: &[&str]) {
    let out = Command::new(BIN)
        .args([
            "run",
            "--base-url",
            &sim.url,
            "--backend",
            "vllm",
            "--disable-tqdm",
            "--random-input-len",
            "16",
            "--random-output-len",
            "16",
        ])
        .args(["--num-prompts", "80", "--result-filename", name, "--result-dir"])
        .arg(dir)
        .args(extra)
        .args(if extra.contains(&"--max-concurrency") { &[][..] } else { &["--max-concurrency", "4"][..] })
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn compare_flags_a_planted_slowdown_and_not_noise() {
    let _m = machine_alone();
    let dir = tempfile::tempdir().unwrap();
    let fast = Sim::start(&["--itl-ms", "8", "--ttft-ms", "20"]);
    bench(&fast, dir.path(), "a", &[]);
    bench(&fast, dir.path(), "b", &[]);
    drop(fast);
    let slow = Sim::start(&["--itl-ms", "8.8", "--ttft-ms", "22"]);
    bench(&slow, dir.path(), "slow", &[]);
    let cmp = |a: &str, b: &str, extra: &[&str]| {
        Command::new(BIN).arg("compare").arg(dir.path().join(a)).arg(dir.path().join(b)).args(extra).output().unwrap()
    };
    let same = cmp("a.json", "b.json", &["--fail-on-regression", "5%"]);
    assert!(same.status.success(), "{}\n{}", String::from_utf8_lossy(&same.stdout), String::from_utf8_lossy(&same.stderr));
    let worse = cmp("a.json", "slow.json", &["--fail-on-regression", "5%"]);
    let err = String::from_utf8_lossy(&worse.stderr);
    assert_eq!(worse.status.code(), Some(3), "a failed gate exits 3: {}\n{err}", String::from_utf8_lossy(&worse.stdout));
    assert!(err.contains("regression: E2EL median") || err.contains("regression: e2el median"), "{err}");
    let table = String::from_utf8_lossy(&worse.stdout);
    assert!(table.contains("worse"), "{table}");
    // Markdown for a pull-request comment.
    let md = cmp("a.json", "slow.json", &["--markdown"]);
    assert!(md.status.success());
    let md = String::from_utf8_lossy(&md.stdout).into_owned();
    assert!(md.contains("| metric | baseline | candidate |"), "{md}");
    // Two single runs have no steps: no empty step column, and every column is named.
    let table: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert!(table[0].ends_with("| verdict |") && !table[0].contains("step"), "{md}");
    assert!(table.iter().all(|l| l.matches('|').count() == table[0].matches('|').count()), "{md}");
    // A different workload is refused unless allowed.
    bench(&slow, dir.path(), "other", &["--random-range-ratio", "0.5"]);
    let diff = cmp("a.json", "other.json", &[]);
    assert_eq!(diff.status.code(), Some(2), "different workloads are bad usage");
    assert!(String::from_utf8_lossy(&diff.stderr).contains("different workloads"));
    assert!(cmp("a.json", "other.json", &["--allow-different-workloads"]).status.success());
    // A different load is a different workload too: c=4 against c=8 measures queueing, not the
    // change under test.
    bench(&slow, dir.path(), "c8", &["--max-concurrency", "8"]);
    let load = cmp("a.json", "c8.json", &[]);
    let err = String::from_utf8_lossy(&load.stderr);
    assert_eq!(load.status.code(), Some(2), "{err}");
    assert!(err.contains("max_concurrency: 4 vs 8"), "{err}");
    // Not a result file.
    std::fs::write(dir.path().join("bad.json"), "{\"schema_version\": 99}").unwrap();
    let bad = cmp("a.json", "bad.json", &[]);
    assert_eq!(bad.status.code(), Some(2), "not a result this version reads");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("schema version 99"));
}

#[test]
fn summaries_grade_ttft_and_tpot() {
    let _m = machine_shared();
    let sim = Sim::start(&["--itl-ms", "8", "--ttft-ms", "20"]);
    let r = run(&sim.url, &["--backend", "vllm", "--random-input-len", "8", "--random-output-len", "8", "--num-prompts", "4"]);
    r.assert_ok();
    let out = r.stdout();
    assert!(out.contains("TTFT (mean):") && out.contains("excellent (< 100 excellent, < 200 good)"), "{out}");
    let r = run(
        &sim.url,
        &["--backend", "vllm", "--random-input-len", "8", "--random-output-len", "8", "--num-prompts", "4", "--grade-ttft", "5,10"],
    );
    assert!(r.assert_ok().stdout().contains("needs work (< 5 excellent, < 10 good)"));
    let bad = run(&sim.url, &["--num-prompts", "1", "--grade-tpot", "9,3"]);
    assert_eq!(bad.out.status.code(), Some(2));
    assert!(bad.stderr().contains("0 < excellent < good"));
}
