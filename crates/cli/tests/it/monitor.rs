//! The monitors end to end: the server's Prometheus page scraped over the measured window (per
//! run, not since the server started), the time-series file, the host section, the one-line "no
//! NVIDIA GPU found" on this GPU-less machine, and alerts that fire on the simulator's faults and
//! stop the run with exit code 3 and every file on disk.

use crate::harness::{f, run, Sim};
use serde_json::Value;

fn lines(p: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Two runs against one simulator with a prefix cache: each run's hit rate is its own (the
/// second run finds the first run's prefixes cached), and equals what the client counted from
/// `cached_tokens` in the same run, because both come from the same requests.
#[test]
fn server_metrics_are_per_run_and_land_in_the_time_series() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "5", "--itl-ms", "5", "--enable-prefix-caching"]);
    let flags = [
        "--dataset-name",
        "shared-prefix",
        "--random-prefix-len",
        "256",
        "--random-input-len",
        "64",
        "--random-output-len",
        "20",
        "--num-prompts",
        "64",
        "--max-concurrency",
        "4",
        "--metrics-interval",
        "0.1",
        "--gpu-monitor-interval",
        "0.1",
    ];
    let mut rates = Vec::new();
    for _ in 0..2 {
        let r = run(&sim.url, &flags);
        let j = r.assert_ok().json();
        let server = &j["monitors"]["server"];
        assert_eq!(server["server_kind"], "vllm", "{server}");
        let rate = f(&server["prefix_cache_hit_rate"]);
        let client = f(&j["summary"]["prefix_cache"]["cached_share"]);
        assert!((rate - client).abs() < 1e-9, "server {rate} vs client {client}");
        assert_eq!(f(&server["generation_tokens"]), 64.0 * 20.0, "the server's count for this run only");
        assert_eq!(server["client_output_tokens"], 64 * 20);
        assert_eq!(server["latency"]["ttft"]["count"], 64);
        assert!(f(&server["gauges"]["running"]["max"]) >= 1.0);
        rates.push(rate);
        let ts = lines(&r.file("timeseries.jsonl"));
        let of = |s: &str| ts.iter().filter(|l| l["source"] == s).count();
        assert!(of("server") >= 2 && of("client") >= 1 && of("host") >= 2, "{ts:?}");
        let server_line = ts.iter().find(|l| l["source"] == "server").unwrap();
        assert!(server_line["gauges"].as_object().is_some_and(|g| !g.is_empty()));
        assert!(ts.windows(2).all(|w| f(&w[0]["t"]) <= f(&w[1]["t"]) + 0.2), "on one clock, roughly in order");
        let host = &j["monitors"]["host"];
        assert!(f(&host["memory_total_bytes"]) > 0.0 && f(&host["samples"]) >= 2.0, "{host}");
        assert!(j["monitors"].get("gpu").is_none(), "no GPU here");
        assert!(r.stderr().contains("no NVIDIA GPU found"), "{}", r.stderr());
        let steady = &j["monitors"]["steady_state"];
        assert_eq!(steady["target_in_flight"], 4, "{steady}");
        assert!(r.stdout().contains("Server metrics (vllm)") && r.stdout().contains("Prefix-cache hit rate (this run)"));
    }
    // 8 groups of 256-token prefixes: the first run misses each prefix once, the second none.
    assert!(rates[1] > rates[0], "{rates:?}");
    // Cumulative counters would have given the second run the first run's misses too.
    let cumulative = (rates[0] + rates[1]) / 2.0;
    assert!((rates[1] - cumulative).abs() > 0.01, "{rates:?}");
}

#[test]
fn an_unreachable_metrics_url_warns_once_and_the_run_goes_on() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let r = run(
        &sim.url,
        &[
            "--server-metrics",
            "http://127.0.0.1:9/metrics",
            "--metrics-interval",
            "0.05",
            "--num-prompts",
            "40",
            "--max-concurrency",
            "2",
            "--random-output-len",
            "16",
        ],
    );
    let j = r.assert_ok().json();
    assert_eq!(j["completed"], 40);
    let warnings = r.stderr().matches("server metrics: scraping http://127.0.0.1:9/metrics failed").count();
    assert_eq!(warnings, 1, "{}", r.stderr());
    // Nothing was ever scraped: no server section, and the run is whole.
    assert!(j["monitors"].get("server").is_none(), "{}", j["monitors"]);
    // A page that is not Prometheus text, on auto: one note, no server section.
    let off = run(&sim.url, &["--server-metrics", &format!("{}/v1/models", sim.url), "--num-prompts", "4"]);
    assert!(off.assert_ok().stderr().matches("server metrics").count() == 1, "{}", off.stderr());
}

/// The simulator fails 5 % of requests: `error_rate>1%` fires, and with `--abort-on-alert` the run
/// stops early with exit code 3 and its files written.
#[test]
fn an_alert_on_the_error_rate_stops_the_run_with_exit_3() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "5", "--itl-ms", "5", "--error-rate", "0.05", "--sim-seed", "11"]);
    let r = run(
        &sim.url,
        &[
            "--num-prompts",
            "4000",
            "--max-concurrency",
            "8",
            "--random-output-len",
            "4",
            "--alert",
            "error_rate>1%",
            "--alert",
            "p99_ttft_ms>60000",
            "--abort-on-alert",
        ],
    );
    assert_eq!(r.out.status.code(), Some(3), "stdout {}\nstderr {}", r.stdout(), r.stderr());
    assert!(r.stderr().contains("alert: error_rate>1% at"), "{}", r.stderr());
    assert!(r.stderr().contains("stopped by --abort-on-alert"), "{}", r.stderr());
    let j = r.json();
    let alerts = j["monitors"]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "the TTFT rule did not hold: {alerts:?}");
    assert_eq!(alerts[0]["rule"], "error_rate>1%");
    assert_eq!(alerts[0]["aborted"], true);
    assert!(f(&alerts[0]["value"]) > 0.01);
    let done = j["completed"].as_u64().unwrap() + j["failed"].as_u64().unwrap();
    assert!(done < 4000, "stopped early: {done}");
    assert_eq!(r.records().len() as u64, done, "every measured request is on disk");
    assert!(r.file("timeseries.jsonl").exists());
    // Without --abort-on-alert the same alert is listed and the run completes (exit 0).
    let full = run(&sim.url, &["--num-prompts", "300", "--max-concurrency", "8", "--random-output-len", "4", "--alert", "error_rate>1%"]);
    let j = full.assert_ok().json();
    assert_eq!(j["completed"].as_u64().unwrap() + j["failed"].as_u64().unwrap(), 300);
    assert_eq!(j["monitors"]["alerts"][0]["aborted"], false);
}

#[test]
fn bad_monitor_flags_are_one_line_errors() {
    let sim_url = "http://127.0.0.1:9";
    for (flags, says) in [
        (&["--alert", "p95_foo>5"][..], "invalid --alert 'p95_foo>5'"),
        (&["--abort-on-alert"][..], "--abort-on-alert needs at least one --alert"),
        (&["--gpus", "0,x"][..], "invalid --gpus '0,x'"),
        (&["--server-metrics", "ftp://x"][..], "invalid --server-metrics 'ftp://x'"),
        (&["--metrics-interval", "0"][..], "invalid --metrics-interval"),
    ] {
        let r = run(sim_url, flags);
        assert_eq!(r.out.status.code(), Some(2), "{flags:?}: {}", r.stderr());
        let err = r.stderr();
        assert!(err.lines().count() == 1 && err.contains(says), "{flags:?}: {err}");
    }
}

/// `--metrics-port 0`: the run serves its own counters while it runs, in Prometheus text.
#[test]
fn live_metrics_are_served_during_the_run() {
    use std::io::BufRead;
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "5", "--itl-ms", "25"]);
    let (mut c, _dir) = crate::harness::run_cmd(
        &sim.url,
        &["--num-prompts", "24", "--max-concurrency", "2", "--random-output-len", "8", "--metrics-port", "0"],
    );
    let mut child = c.stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::null()).spawn().unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut url = None;
    for _ in 0..50 {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(u) = line.strip_prefix("note: live metrics at ") {
            url = Some(u.trim().to_owned());
            break;
        }
    }
    let url = url.expect("the live metrics address is printed");
    assert!(url.starts_with("http://127.0.0.1:"), "loopback only: {url}");
    std::thread::sleep(std::time::Duration::from_millis(800));
    let page = crate::harness::get(&url);
    assert!(page.contains("# TYPE inferbench_requests_total counter"), "{page}");
    assert!(page.contains("inferbench_requests_in_flight 2"), "two in flight mid-run:\n{page}");
    let done: u64 =
        page.lines().find_map(|l| l.strip_prefix("inferbench_requests_total{outcome=\"success\"} ")).and_then(|v| v.parse().ok()).unwrap();
    assert!((1..24).contains(&done), "mid-run: {done}");
    assert!(child.wait().unwrap().success());
}
