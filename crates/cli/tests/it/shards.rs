//! Sharded runs: four shards of one global schedule against the simulator, merged, against one
//! process running the same spec; the rendered Kubernetes Job run here; bad shard input.

use crate::harness::*;
use inferbench_core::{RequestRecord, Summary, SummaryOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

const SPEC: &[&str] = &[
    "--request-rate",
    "80",
    "--num-prompts",
    "240",
    "--random-input-len",
    "64",
    "--random-output-len",
    "16",
    "--seed",
    "7",
    "--server-metrics",
    "off",
    "--no-store",
];

fn unix_in(secs: u64) -> String {
    (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + secs).to_string()
}

/// Starts `n` shards together and waits for them; their files go to `dir` as shard-<i>.*.
fn run_shards(url: &str, dir: &Path, n: u64, flags: &[&str]) {
    let at = unix_in(3);
    let children: Vec<_> = (0..n)
        .map(|i| {
            let mut c = Command::new(BIN);
            c.args(["run", "--base-url", url, "--disable-tqdm", "-q", "--result-dir"])
                .arg(dir)
                .args(["--result-filename", &format!("shard-{i}"), "--shard", &format!("{i}/{n}"), "--start-at", &at])
                .args(flags)
                .env_remove("OPENAI_API_KEY")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "shard failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn merge(args: &[&str]) -> std::process::Output {
    Command::new(BIN).arg("merge").args(args).args(["--no-store"]).output().unwrap()
}

/// (id, prompt tokens, output tokens) of every record: the set of prompts a run sent.
fn prompt_set(records: &[RequestRecord]) -> Vec<(u64, u64, u64)> {
    let mut v: Vec<_> = records.iter().map(|r| (r.id, r.input_tokens, r.output_tokens)).collect();
    v.sort_unstable();
    v
}

fn typed_records(p: &Path) -> Vec<RequestRecord> {
    read_records(p).into_iter().map(|v| serde_json::from_value(v).unwrap()).collect()
}

#[test]
fn four_shards_merge_exactly_to_the_union_and_match_one_process() {
    let _m = machine_alone();
    let sim = Sim::start(&[]);
    let one = run(&sim.url, SPEC);
    one.assert_ok();
    let again = run(&sim.url, SPEC);
    again.assert_ok();
    let dir = tempfile::tempdir().unwrap();
    run_shards(&sim.url, dir.path(), 4, SPEC);
    let merged_path = dir.path().join("merged.json");
    let out = merge(&[dir.path().to_str().unwrap(), "-o", merged_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let merged = validated(&merged_path);
    let single = one.json();

    // Request count, token totals and the set of prompts are those of one process.
    let (ms, ss) = (&merged["summary"], &single["summary"]);
    assert_eq!(ms["completed"], 240);
    for k in ["completed", "failed", "total_input_tokens", "total_output_tokens"] {
        assert_eq!(ms[k], ss[k], "{k}");
    }
    let mut union = Vec::new();
    let mut shifted = Vec::new();
    let epochs: Vec<u64> = (0..4)
        .map(|i| {
            let shard = validated(&dir.path().join(format!("shard-{i}.json")));
            assert_eq!(shard["shard"]["shard"]["index"], i);
            shard["shard"]["epoch_unix_ns"].as_u64().unwrap()
        })
        .collect();
    let epoch0 = *epochs.iter().min().unwrap();
    for (i, e) in epochs.iter().enumerate() {
        for mut r in typed_records(&dir.path().join(format!("shard-{i}.records.jsonl"))) {
            union.push(r.clone());
            r.shift(e - epoch0);
            shifted.push(r);
        }
    }
    assert_eq!(prompt_set(&union), prompt_set(&typed_records(&one.file("records.jsonl"))));
    assert_eq!(union.iter().map(|r| r.id).collect::<std::collections::BTreeSet<_>>().len(), 240, "every ordinal once");

    // The merged percentiles are those of the union of the four record files, exactly.
    let want: Summary = Summary::from_records(&shifted, &SummaryOptions::default());
    let want = serde_json::to_value(&want).unwrap();
    for m in ["ttft", "tpot", "itl", "e2el", "ttft_sched", "e2el_sched"] {
        assert_eq!(ms["metrics"][m], want["metrics"][m], "{m}");
        assert_eq!(ms["metrics"][m]["exact"], true);
    }
    assert_eq!(ms["duration_s"], want["duration_s"]);
    assert_eq!(ms["max_concurrent_requests"], want["max_concurrent_requests"]);

    // Throughput matches one process within the noise between two single runs.
    let tput = |v: &Value| f(&v["summary"]["output_throughput"]);
    let (a, b, m) = (tput(&single), tput(&again.json()), tput(&merged));
    let noise = (a - b).abs() / a;
    let off = (m - a).abs() / a;
    eprintln!("output tok/s: single {a:.1}, again {b:.1} (noise {:.2} %), merged {m:.1} ({:+.2} %)", noise * 100.0, off * 100.0);
    assert!(off <= (3.0 * noise).max(0.03), "merged {m:.1} tok/s against {a:.1} (noise {:.2} %)", noise * 100.0);
    let late = merged["merged"]["max_late_ms"].as_f64().unwrap();
    assert!(late < 1000.0, "a shard started {late} ms late");

    // Without the records, the states give the same counts and percentiles within 0.1 %.
    for i in 0..4 {
        std::fs::remove_file(dir.path().join(format!("shard-{i}.records.jsonl"))).unwrap();
    }
    let from_state = dir.path().join("from-state.json");
    let out = merge(&[dir.path().to_str().unwrap(), "-o", from_state.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let st = validated(&from_state);
    assert_eq!(st["merged"]["from_records"], false);
    assert_eq!(st["summary"]["total_output_tokens"], ms["total_output_tokens"]);
    assert_eq!(st["summary"]["duration_s"], ms["duration_s"]);
    let (p_exact, p_hist) = (&ms["metrics"]["e2el"]["percentiles"], &st["summary"]["metrics"]["e2el"]["percentiles"]);
    for (x, y) in p_exact.as_array().unwrap().iter().zip(p_hist.as_array().unwrap()) {
        let (x, y) = (f(&x[1]), f(&y[1]));
        // Interpolated against nearest-rank: within the bound plus one gap between neighbouring samples.
        assert!((x - y).abs() / x < 0.02, "e2el percentile {x} exact, {y} from the states");
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("records are missing"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn concurrency_caps_split_so_the_sum_never_exceeds_the_global_cap() {
    let _m = machine_shared();
    let sim = Sim::start(&["--itl-ms", "5"]);
    let dir = tempfile::tempdir().unwrap();
    // Cap 3 over 4 shards: shards 0-2 hold one slot each, shard 3 none (and sends nothing).
    let flags = ["--max-concurrency", "3", "--num-prompts", "30", "--random-input-len", "16", "--random-output-len", "8", "--no-store"];
    run_shards(&sim.url, dir.path(), 4, &flags);
    let mut total = 0;
    for i in 0..4u64 {
        let s = validated(&dir.path().join(format!("shard-{i}.json")));
        let cap = s["shard"]["max_concurrency"].as_u64().unwrap();
        assert_eq!(cap, u64::from(i < 3), "shard {i}");
        assert!(s["summary"]["max_concurrent_requests"].as_u64().unwrap() <= cap);
        total += s["summary"]["completed"].as_u64().unwrap();
    }
    assert_eq!(total, 30);
    let out = merge(&[dir.path().to_str().unwrap(), "-o", dir.path().join("m.json").to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(validated(&dir.path().join("m.json"))["summary"]["max_concurrent_requests"].as_u64().unwrap() <= 3);

    // Multi-turn sessions stay whole: 6 sessions of 3 turns over 2 shards, each session's turns in one shard.
    let sessions = tempfile::tempdir().unwrap();
    let flags = [
        "--backend",
        "openai-chat",
        "--dataset-name",
        "multi-turn",
        "--turns",
        "3",
        "--random-input-len",
        "10",
        "--fixed-output-len",
        "4",
        "--num-prompts",
        "6",
        "--max-concurrency",
        "2",
        "--no-store",
    ];
    run_shards(&sim.url, sessions.path(), 2, &flags);
    let mut owner: BTreeMap<u64, (u64, Vec<u64>)> = BTreeMap::new();
    for i in 0..2u64 {
        for r in read_records(&sessions.path().join(format!("shard-{i}.records.jsonl"))) {
            let e = owner.entry(r["id"].as_u64().unwrap()).or_insert((i, Vec::new()));
            assert_eq!(e.0, i, "session {} split across shards", r["id"]);
            e.1.push(r["turn"].as_u64().unwrap());
        }
    }
    assert_eq!(owner.len(), 6);
    for (id, (_, mut turns)) in owner {
        turns.sort_unstable();
        assert_eq!(turns, [0, 1, 2], "session {id}");
    }
}

#[test]
fn bad_shards_get_one_clear_line() {
    let _m = machine_shared();
    for (flag, want) in
        [("4/4", "shard indices count from 0, so 4 shards are numbered 0 to 3"), ("0/0", "the shard count must be at least 1")]
    {
        let out = Command::new(BIN).args(["run", "--shard", flag]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(want), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let sim = Sim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let small = ["--num-prompts", "4", "--random-input-len", "16", "--random-output-len", "4", "--no-store"];
    run_shards(&sim.url, dir.path(), 2, &small);
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_owned();
    let line = |out: std::process::Output| {
        assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
        let e = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert_eq!(e.lines().count(), 1, "{e}");
        e
    };
    let e = line(merge(&[&p("shard-0.json"), &p("shard-0.json"), "-o", &p("m.json")]));
    assert!(e.contains("shard 0/2 is given twice"), "{e}");
    let e = line(merge(&[&p("shard-1.json"), "-o", &p("m.json")]));
    assert!(e.contains("shard 0 of 2 missing"), "{e}");
    // A shard of another spec: output length 8 instead of 4.
    let other = tempfile::tempdir().unwrap();
    let mut c = Command::new(BIN);
    c.args(["run", "--base-url", &sim.url, "--disable-tqdm", "-q", "--result-dir"]).arg(other.path());
    c.args(["--result-filename", "s1", "--shard", "1/2", "--num-prompts", "4", "--random-input-len", "16", "--random-output-len", "8"]);
    assert!(c.arg("--no-store").output().unwrap().status.success());
    let e = line(merge(&[&p("shard-0.json"), other.path().join("s1.json").to_str().unwrap(), "-o", &p("m.json")]));
    assert!(e.contains("different spec") && e.contains("dataset.output_len is 4 there and 8 here"), "{e}");
    let e = line(Command::new(BIN).args(["run", "--shard", "1/2", "--start-at", "tomorrow"]).output().unwrap());
    assert!(e.contains("--start-at"), "{e}");
}

/// The deploy/k8s base is what `k8s render` writes for these flags (a golden test of the
/// manifests; UPDATE_GOLDEN=1 rewrites it).
#[test]
fn rendered_manifests_match_the_shipped_base_and_never_hold_the_key() {
    let _m = machine_shared();
    let out_dir = tempfile::tempdir().unwrap();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s");
    let out = Command::new(BIN)
        .args(["k8s", "render", "--shards", "4", "--image", "inferbench:latest", "--namespace", "inferbench"])
        .args(["--start-at", "2026-12-03T18:00:00Z", "--api-key-secret", "inference-api-key", "-o"])
        .arg(out_dir.path())
        .args(["--", "--base-url", "http://vllm:8000", "--request-rate", "400", "--duration", "300", "--random-input-len", "512"])
        .args(["--random-output-len", "128", "--label", "team=serving"])
        .env("OPENAI_API_KEY", "sk-should-never-appear")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut files: Vec<String> =
        std::fs::read_dir(out_dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files, ["00-spec-configmap.yaml", "01-results-pvc.yaml", "02-shards-job.yaml", "03-merge-job.yaml", "kustomization.yaml"]);
    for f in &files {
        let got = std::fs::read_to_string(out_dir.path().join(f)).unwrap();
        assert!(!got.contains("sk-should-never-appear"), "{f} holds the key");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&base).unwrap();
            std::fs::write(base.join(f), &got).unwrap();
        }
        let want = std::fs::read_to_string(base.join(f)).unwrap_or_default();
        assert_eq!(got, want, "{f} differs from deploy/k8s/{f} (UPDATE_GOLDEN=1 rewrites it)");
    }
    let job = std::fs::read_to_string(out_dir.path().join("02-shards-job.yaml")).unwrap();
    assert!(job.contains("secretKeyRef") && job.contains("name: inference-api-key"), "{job}");
    assert!(job.contains("--label") && job.contains("team=serving"), "{job}");
    // A key on the command line is refused.
    let out = Command::new(BIN)
        .args(["k8s", "render", "--shards", "2", "--image", "x", "-o"])
        .arg(out_dir.path().join("k"))
        .args(["--", "--api-key", "sk-secret"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--api-key-secret"));
}

#[test]
fn run_local_runs_the_rendered_pods_and_their_merge() {
    let _m = machine_shared();
    let sim = Sim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("k8s");
    let work = dir.path().join("work");
    let out = Command::new(BIN)
        .args(["k8s", "render", "--shards", "4", "--image", "inferbench:test", "--name", "itest", "-o"])
        .arg(&rendered)
        .args(["--", "--base-url", &sim.url, "--request-rate", "60", "--num-prompts", "120", "--random-input-len", "32"])
        .args(["--random-output-len", "8", "--server-metrics", "off"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        Command::new(BIN).args(["k8s", "run-local"]).arg(&rendered).arg("--work").arg(&work).args(["--start-at", "+4"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
    for i in 0..4 {
        assert!(said.contains(&format!("itest-shards-{i} ")), "{said}");
    }
    let merged = validated(&work.join("itest-results/merged.json"));
    assert_eq!(merged["summary"]["completed"], 120);
    assert_eq!(merged["merged"]["shards"], 4);
    assert_eq!(merged["merged"]["from_records"], true);
    assert!(work.join("itest-results/merged.html").exists());
    let ids: BTreeMap<u64, u64> = (0..4)
        .map(|i| {
            let s = validated(&work.join(format!("itest-results/shard-{i}.json")));
            (i, s["summary"]["completed"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(ids.values().sum::<u64>(), 120, "{ids:?}");
}

/// A merged result is an ordinary result: `report`, `compare` and `plan` (from merged runs at two
/// concurrencies) take it, and the store records it.
#[test]
fn merged_results_feed_report_compare_and_plan() {
    let _m = machine_shared();
    let sim = Sim::start(&["--itl-ms", "4"]);
    let dir = tempfile::tempdir().unwrap();
    let mut merged = Vec::new();
    for c in ["2", "4"] {
        let d = dir.path().join(format!("c{c}"));
        run_shards(
            &sim.url,
            &d,
            2,
            &["--max-concurrency", c, "--num-prompts", "24", "--random-input-len", "16", "--random-output-len", "8", "--no-store"],
        );
        let m = dir.path().join(format!("merged-c{c}.json"));
        let out = Command::new(BIN).args(["merge"]).arg(&d).arg("-o").arg(&m).arg("-q").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        merged.push(m);
    }
    let ok = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (a, b) = (merged[0].to_str().unwrap(), merged[1].to_str().unwrap());
    assert!(ok(&["report", a]).contains("Successful requests"));
    assert!(ok(&["compare", a, b, "--allow-different-workloads"]).to_lowercase().contains("ttft"));
    let plan = ok(&["plan", a, b, "--slo", "ttft:p99:5000", "--users", "40"]);
    assert!(plan.contains("replica"), "{plan}");
    // Runs of two workloads are not a sweep.
    let other = run(
        &sim.url,
        &["--max-concurrency", "2", "--num-prompts", "4", "--random-input-len", "16", "--random-output-len", "4", "--no-store"],
    );
    other.assert_ok();
    let out = Command::new(BIN).args(["plan", a]).arg(other.file("json")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("not one workload") && e.contains("dataset.output_len"), "{e}");
}
