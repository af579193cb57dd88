//! `inferbench sweep`, `plan` and `compare` on sweeps, against the simulator whose latency model
//! puts the knee and the SLO limit at known loads (docs/simulator.md), and on a hand-made
//! fixture whose plan was computed by hand.

use crate::harness::*;
use inferbench_core::result::ToolInfo;
use inferbench_core::stats::Distribution;
use inferbench_core::summary::MetricName;
use inferbench_core::sweep::{Dimension, SloRule, StepRun, StepStats, SweepResult, SweepSpec, SweepStep};
use inferbench_core::{Header, ResultKind, RunSpec, Summary};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn sweep(url: &str, dir: &Path, name: &str, extra: &[&str]) -> Output {
    let output_len: &[&str] = if extra.contains(&"--random-output-len") { &[] } else { &["--random-output-len", "16"] };
    Command::new(BIN)
        .args(["sweep", "--base-url", url, "--backend", "vllm", "--disable-tqdm", "--random-input-len", "32"])
        .args(output_len)
        .args(["--result-filename", name, "--result-dir"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "status {:?}\n{out}\n{err}", o.status);
    out.into_owned()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn sweep_finds_the_knee_and_the_slo_limit_where_the_simulator_puts_them() {
    let _m = machine_alone();
    let dir = tempfile::tempdir().unwrap();
    // 8 sequences at most: throughput doubles with concurrency up to 8, then stays flat while
    // requests queue (the knee at c=8). TPOT is 8 + 0.5 (c - 1) ms: 9.5 at c=4, 11.5 at c=8, so
    // an SLO of median TPOT <= 10.5 ms holds up to c=6 — between the steps 4 and 8, found as 4.
    // (The median, not p99: of 32 requests p99 is the slowest one, and one final token woken
    // late on a busy 2-core machine moves it by a millisecond.)
    let sim = Sim::start(&["--max-num-seqs", "8", "--itl-ms", "8", "--itl-ms-per-seq", "0.5", "--ttft-ms", "20"]);
    let out = ok(&sweep(&sim.url, dir.path(), "s", &["--concurrencies", "1..32", "--slo", "tpot:p50:10.5", "--num-prompts", "32"]));
    let s = read_json(&dir.path().join("s.sweep.json"));
    assert_eq!(s["kind"], "sweep");
    assert_eq!(s["knee"], 8.0, "{out}");
    assert_eq!(s["slo_limit"], 4.0, "{out}");
    assert_eq!(s["steps"].as_array().unwrap().len(), 6);
    assert!(out.contains("Knee: c=8") && out.contains("Highest load meeting tpot:p50:10.5"), "{out}");
    // Every step keeps its own files.
    for c in [1, 2, 4, 8, 16, 32] {
        assert!(dir.path().join(format!("s-c{c}.json")).exists());
        assert!(dir.path().join(format!("s-c{c}.records.jsonl")).exists());
    }

    // The same sweep compared with itself: no regression; a slower server: a regression.
    let same = Command::new(BIN)
        .arg("compare")
        .args([dir.path().join("s.sweep.json"), dir.path().join("s.sweep.json")])
        .args(["--fail-on-regression", "5%"])
        .output()
        .unwrap();
    let table = ok(&same);
    assert!(table.contains("[c=8]") && table.contains("knee: c=8 vs c=8"), "{table}");
    drop(sim);
    let slow = Sim::start(&["--max-num-seqs", "8", "--itl-ms", "8.8", "--itl-ms-per-seq", "0.5", "--ttft-ms", "22"]);
    ok(&sweep(&slow.url, dir.path(), "slow", &["--concurrencies", "1,2,4", "--num-prompts", "32"]));
    let worse = Command::new(BIN)
        .arg("compare")
        .args([dir.path().join("s.sweep.json"), dir.path().join("slow.sweep.json")])
        .args(["--fail-on-regression", "5%", "--regression-metric", "tpot"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&worse.stderr);
    assert_eq!(worse.status.code(), Some(3), "{err}");
    assert!(err.contains("regression: [c=1] TPOT median"), "{err}");
    // Comparing a sweep with a single run is refused.
    let mixed = Command::new(BIN).arg("compare").args([dir.path().join("s.sweep.json"), dir.path().join("s-c1.json")]).output().unwrap();
    assert_eq!(mixed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&mixed.stderr).contains("compare like with like"));

    // Plan from the real sweep: the SLO's step (c=4) sets the capacity.
    let plan = Command::new(BIN)
        .arg("plan")
        .arg(dir.path().join("s.sweep.json"))
        .args(["--target-rate", "100", "--price-per-hour", "2", "--output"])
        .arg(dir.path().join("plan.json"))
        .output()
        .unwrap();
    let text = ok(&plan);
    assert!(text.contains("sustainable at c=4"), "{text}");
    let p = read_json(&dir.path().join("plan.json"));
    let cap = p["plan"]["plan"]["capacity"]["request_rate"].as_f64().unwrap();
    let replicas = p["plan"]["plan"]["replicas"].as_u64().unwrap();
    assert_eq!(replicas, (100.0 / (cap * 0.8)).ceil() as u64, "{text}");
}

#[test]
fn refine_bisects_to_the_exact_concurrency_limit() {
    let _m = machine_alone();
    let dir = tempfile::tempdir().unwrap();
    // TPOT 8 + 0.5 (c - 1): 10.0 at c=5, 10.5 at c=6, so median TPOT <= 10.3 holds up to c=5.
    // The grid 1, 4, 8 brackets it (4 passes, 8 fails); bisection tries 6 (fails), then 5.
    let sim = Sim::start(&["--max-num-seqs", "16", "--itl-ms", "8", "--itl-ms-per-seq", "0.5", "--ttft-ms", "20"]);
    let out = ok(&sweep(
        &sim.url,
        dir.path(),
        "b",
        &["--concurrencies", "1,4,8", "--slo", "tpot:p50:10.3", "--num-prompts", "16", "--refine", "3"],
    ));
    let s = read_json(&dir.path().join("b.sweep.json"));
    let loads: Vec<f64> = s["steps"].as_array().unwrap().iter().map(|x| x["load"].as_f64().unwrap()).collect();
    assert_eq!(loads, vec![1.0, 4.0, 5.0, 6.0, 8.0], "{out}");
    assert_eq!(s["slo_limit"], 5.0, "{out}");
    assert_eq!(s["steps"][2]["refined"], true);
    assert!(out.contains("refined"), "{out}");
}

#[test]
fn rate_sweep_finds_the_capacity() {
    let _m = machine_alone();
    let dir = tempfile::tempdir().unwrap();
    // 4 sequences of 20 + 7 x 8 ms: capacity 4 / 0.0775 s = 51.6 req/s, between the steps 40 and
    // 80. Beyond it requests queue in the server, so TTFT climbs past 50 ms.
    let sim =
        Sim::start(&["--max-num-seqs", "4", "--itl-ms", "8", "--itl-ms-per-seq", "0", "--ttft-ms", "20", "--prefill-ms-per-token", "0"]);
    let out = ok(&sweep(
        &sim.url,
        dir.path(),
        "r",
        &["--rates", "20,40,80,160", "--random-output-len", "8", "--num-prompts", "80", "--arrival", "constant", "--slo", "ttft:p99:50"],
    ));
    let s = read_json(&dir.path().join("r.sweep.json"));
    assert_eq!(s["dimension"], "rate");
    assert_eq!(s["knee"], 40.0, "{out}");
    assert_eq!(s["slo_limit"], 40.0, "{out}");
    assert!(dir.path().join("r-r80.json").exists());
}

#[test]
fn repeats_give_confidence_intervals_and_stop_rules_end_the_sweep() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--max-num-seqs", "2", "--itl-ms", "2", "--ttft-ms", "5"]);
    let out = ok(&sweep(
        &sim.url,
        dir.path(),
        "r",
        &["--concurrencies", "1,2,8,16", "--repeat", "3", "--num-prompts", "12", "--stop-latency-factor", "2", "--cooldown", "0.05"],
    ));
    let s = read_json(&dir.path().join("r.sweep.json"));
    let steps = s["steps"].as_array().unwrap();
    // c=8 queues behind 2 sequences: median E2EL ~4x c=1's, so the sweep stops there.
    assert_eq!(steps.len(), 3, "{out}");
    assert!(s["stopped"].as_str().unwrap().contains("over 2x the lowest load"), "{s}");
    for st in steps {
        assert_eq!(st["runs"].as_array().unwrap().len(), 3);
        let e = &st["stats"]["output_throughput"];
        assert_eq!(e["n"], 3);
        // Three runs never take exactly the same time: the interval has a width.
        assert!(e["ci95"].as_f64().unwrap() > 0.0, "{st}");
    }
    assert!(dir.path().join("r-c2-3.json").exists());
    assert!(out.contains("mean ±95% CI over 3 repeats"), "{out}");
    // Each repeat draws its own workload: seed + repeat index, recorded in its result.
    let seeds: Vec<Value> = (1..=3).map(|k| read_json(&dir.path().join(format!("r-c2-{k}.json")))["spec"]["seed"].clone()).collect();
    assert_eq!(seeds, vec![Value::from(0), Value::from(1), Value::from(2)]);
    // ... unless --same-seed asks for identical workloads.
    ok(&sweep(
        &sim.url,
        dir.path(),
        "same",
        &["--concurrencies", "1", "--repeat", "2", "--num-prompts", "4", "--same-seed", "--seed", "7"],
    ));
    let seeds: Vec<Value> = (1..=2).map(|k| read_json(&dir.path().join(format!("same-c1-{k}.json")))["spec"]["seed"].clone()).collect();
    assert_eq!(seeds, vec![Value::from(7), Value::from(7)]);

    // A step whose every request fails stops the sweep with the success rule.
    let failing = Sim::start(&["--error-rate", "1"]);
    let o = sweep(&failing.url, dir.path(), "f", &["--concurrencies", "1,2", "--num-prompts", "4"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a sweep in which every request failed is no success: {err}");
    assert!(err.contains("every request of every step failed"), "{err}");
    let f = read_json(&dir.path().join("f.sweep.json"));
    assert!(f["stopped"].as_str().unwrap().contains("success rate 0.0% fell below 95%"), "{f}");
    assert_eq!(f["slo_limit"], Value::Null);
}

#[test]
fn sweep_and_plan_reject_bad_input_clearly() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 8] = [
        (&["--concurrencies", ""], "invalid --concurrencies '': the list of loads is empty"),
        (&["--concurrencies", "1,2", "--slo", "latency:p99:5"], "unknown SLO metric 'latency'"),
        (&["--concurrencies", "1,2", "--slo", "ttft:p99"], "invalid --slo 'ttft:p99'"),
        (&["--concurrencies", "4,2"], "loads must increase"),
        (&["--concurrencies", "1.5"], "not a whole number"),
        (&["--rates", "1..0.5"], "a ramp is START..MAX"),
        (&["--concurrencies", "1", "--max-concurrency", "3"], "--max-concurrency is set per step"),
        (&["--concurrencies", "1,2", "--stop-on-slo"], "--stop-on-slo needs at least one --slo"),
    ];
    for (flags, want) in cases {
        // Nothing listens here: the flags are refused before any request.
        let o = sweep("http://127.0.0.1:9", dir.path(), "x", flags);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(want) && !err.contains("panicked"), "{flags:?}: {err}");
    }
    let o = Command::new(BIN).args(["sweep", "--base-url", "http://127.0.0.1:9"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    let o = Command::new(BIN).arg("plan").arg(dir.path().join("missing.sweep.json")).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read"));
}

/// A summary with the figures a plan reads.
fn summary(req_s: f64, in_tok: u64, out_tok: u64, ttft_p99: f64, ttft_mean: f64, e2el_mean: f64) -> Summary {
    let mut s = Summary { completed: 100, success_rate: 1.0, duration_s: 100.0 / req_s, request_throughput: req_s, ..Default::default() };
    s.total_input_tokens = in_tok * 100;
    s.total_output_tokens = out_tok * 100;
    s.output_throughput = s.total_output_tokens as f64 / s.duration_s;
    s.metrics.insert(
        MetricName::Ttft,
        Distribution { count: 100, mean: ttft_mean, median: ttft_mean, percentiles: vec![(99.0, ttft_p99)], ..Default::default() },
    );
    s.metrics.insert(MetricName::E2el, Distribution { count: 100, mean: e2el_mean, median: e2el_mean, ..Default::default() });
    s
}

#[test]
fn plan_matches_a_hand_calculation() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    // Concurrency 1..16; TTFT p99 crosses 300 ms after c=4, where one replica does 3.6 req/s of
    // 500 prompt and 200 output tokens, TTFT mean 100 of E2E mean 1000 ms.
    let points = [(1.0, 1.0, 100.0), (2.0, 1.9, 120.0), (4.0, 3.6, 200.0), (8.0, 6.4, 400.0), (16.0, 6.5, 2000.0)];
    let steps = points
        .iter()
        .map(|&(c, rps, p99)| {
            let s = summary(rps, 500, 200, p99, 100.0, 1000.0);
            SweepStep {
                load: c,
                stats: StepStats::of(&[&s], Dimension::Concurrency),
                runs: vec![StepRun {
                    stopped_by_alert: None,
                    result: format!("x-c{c}.json"),
                    run_id: String::new(),
                    summary: s,
                    wall_s: 1.0,
                    overhead_s: 0.0,
                    interrupted: false,
                }],
                slo: Vec::new(),
                noisy: Vec::new(),
                refined: false,
            }
        })
        .collect();
    let sweep = SweepResult {
        header: Header::now(ResultKind::Sweep, ToolInfo::default()),
        sweep: SweepSpec {
            dimension: Dimension::Concurrency,
            loads: points.iter().map(|p| p.0).collect(),
            run: RunSpec::default(),
            slos: vec![SloRule::parse("ttft:p99:300").unwrap()],
            min_success_rate: 0.95,
            stop_on_slo: false,
            stop_latency_factor: None,
            repeat: 1,
            same_seed: false,
            cooldown_s: 0.0,
            refine: 0,
            cv_warn: 0.1,
        },
        steps,
        knee: Some(4.0),
        slo_limit: Some(4.0),
        stopped: None,
    };
    let path = dir.path().join("fixture.sweep.json");
    std::fs::write(&path, serde_json::to_string(&sweep).unwrap()).unwrap();
    let plan = |extra: &[&str]| {
        let o = Command::new(BIN).arg("plan").arg(&path).args(extra).arg("--output").arg(dir.path().join("p.json")).output().unwrap();
        let text = ok(&o);
        (text, read_json(&dir.path().join("p.json")))
    };
    // usable 3.6 * 0.8 = 2.88 req/s; 50 / 2.88 = 17.36 -> 18 replicas; $2/h each -> $36/h.
    // 90 M input and 36 M output tokens per hour; TTFT is 10 % of E2E:
    // input 36 * 0.1 / 90 = 0.04, output 36 * 0.9 / 36 = 0.9 per million.
    let (text, p) = plan(&["--target-rate", "50", "--headroom", "20%", "--price-per-hour", "2"]);
    assert!(text.contains("sustainable at c=4") && text.contains("18 replica(s)"), "{text}");
    let pl = &p["plan"]["plan"];
    assert_eq!(pl["replicas"], 18);
    assert!((pl["cost"]["per_hour"].as_f64().unwrap() - 36.0).abs() < 1e-9);
    assert!((pl["cost"]["per_million_input"].as_f64().unwrap() - 0.04).abs() < 1e-9, "{pl}");
    assert!((pl["cost"]["per_million_output"].as_f64().unwrap() - 0.9).abs() < 1e-9, "{pl}");
    // All-in: 36 / 36 = 1.0 per million output tokens. The cost line and the what-if row of the
    // same SLOs print the same figure under the same name (they once printed 0.9 and 1.0 both
    // as "output").
    assert!((pl["cost"]["per_million_output_all_in"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{pl}");
    assert!(text.contains("output 0.9000 (split by time share)") && text.contains("output all-in 1.0000"), "{text}");
    let same_slo_row = text.lines().find(|l| l.contains("ttft:p99:300") && l.contains("c=4")).unwrap_or_default();
    assert!(text.contains("per M output all-in") && same_slo_row.contains("1.0000"), "{text}");
    // 100 users, 4 per replica at 80 %: 100 / 3.2 = 31.25 -> 32.
    let (_, p) = plan(&["--users", "100"]);
    assert_eq!(p["plan"]["plan"]["replicas"], 32);
    // What-if: halving the SLO (150 ms) leaves c=2 (1.9 * 0.8 = 1.52 -> 50 / 1.52 = 32.9 -> 33);
    // doubling it (600 ms) allows c=8 (6.4 * 0.8 = 5.12 -> 9.8 -> 10); no SLO: c=16 (5.2 -> 10).
    let (text, p) = plan(&["--target-rate", "50"]);
    let rows: Vec<(Value, Value)> =
        p["what_if"].as_array().unwrap().iter().map(|c| (c["load"].clone(), c["plan"]["replicas"].clone())).collect();
    assert_eq!(rows, vec![(2.0.into(), 33.into()), (4.0.into(), 18.into()), (8.0.into(), 10.into()), (16.0.into(), 10.into())], "{text}");
    // An SLO no step meets, and an unknown metric.
    let o = Command::new(BIN).arg("plan").arg(&path).args(["--slo", "ttft:p99:50"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("No step meets ttft:p99:50"));
    let o = Command::new(BIN).arg("plan").arg(&path).args(["--slo", "goodput:p99:50"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown SLO metric 'goodput'"));
    // A rate target with users on a rate sweep is refused.
    let mut rate = sweep.clone();
    rate.sweep.dimension = Dimension::Rate;
    std::fs::write(&path, serde_json::to_string(&rate).unwrap()).unwrap();
    let o = Command::new(BIN).arg("plan").arg(&path).args(["--users", "10"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("--users needs a sweep over concurrency"));
    // Sweeps over different dimensions are refused in words, not enum names.
    let conc = dir.path().join("conc.sweep.json");
    std::fs::write(&conc, serde_json::to_string(&sweep).unwrap()).unwrap();
    let o = Command::new(BIN).arg("compare").arg(&conc).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("a sweep over concurrency (--concurrencies) with a sweep over request rate (--rates)"), "{err}");
}

/// Issue 20: a note about the dataset ("prompts repeat") holds at every step, so a sweep prints
/// it once, not once per step.
#[test]
fn a_sweep_prints_each_dataset_note_once() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--itl-ms", "0", "--ttft-ms", "0"]);
    let o = Command::new(BIN)
        .args(["sweep", "--base-url", &sim.url, "--disable-tqdm", "--dataset-name", "builtin", "--num-prompts", "200"])
        .args(["--concurrencies", "1,2,4", "--result-filename", "n", "--result-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("prompts repeat").count(), 1, "{err}");
    assert_eq!(read_json(&dir.path().join("n.sweep.json"))["steps"].as_array().unwrap().len(), 3);
}
