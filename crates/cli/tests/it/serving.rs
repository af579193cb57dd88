//! Token counts, latencies and goodput against a simulator whose behaviour we set.

use crate::harness::{f, run, Sim};

#[test]
fn token_counts_are_exact_from_usage_and_from_the_tokenizer() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let r = run(&sim.url, &["--backend", "vllm", "--random-input-len", "100", "--random-output-len", "32", "--num-prompts", "20"]);
    let j = r.assert_ok().json();
    assert_eq!(j["total_input_tokens"], 2000);
    assert_eq!(j["total_output_tokens"], 640);
    assert_eq!(j["summary"]["token_sources"]["server"], 20);
    assert_eq!(j["schema_version"], 2);
    assert_eq!(j["kind"], "run");
    assert_eq!(j["spec"]["model"], "inferbench-sim");
    assert!(r.stdout().contains("Serving Benchmark Result"));
    assert_eq!(r.records().len(), 20);

    // Without usage the client counts the text itself, and must arrive at the same numbers.
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1", "--no-usage"]);
    for backend in ["openai", "openai-chat"] {
        let r = run(&sim.url, &["--backend", backend, "--random-input-len", "50", "--random-output-len", "16", "--num-prompts", "10"]);
        let j = r.assert_ok().json();
        assert_eq!(j["total_input_tokens"], 500, "{backend}");
        assert_eq!(j["total_output_tokens"], 160, "{backend}");
        assert_eq!(j["summary"]["token_sources"]["tokenizer"], 10, "{backend}");
    }
    // TGI's native protocol, streamed and not.
    for flags in [&["--backend", "tgi"][..], &["--backend", "tgi", "--no-stream"][..]] {
        let mut args = flags.to_vec();
        args.extend(["--random-input-len", "30", "--random-output-len", "12", "--num-prompts", "6"]);
        let j = run(&sim.url, &args).assert_ok().json();
        assert_eq!(j["completed"], 6, "{flags:?}");
        assert_eq!(j["total_output_tokens"], 72, "{flags:?}: TGI reports generated_tokens");
        assert_eq!(j["total_input_tokens"], 180, "{flags:?}: the dataset's count");
    }
    // Non-streaming: one chunk, TTFT equals E2E latency.
    let r = run(&sim.url, &["--no-stream", "--random-input-len", "20", "--random-output-len", "8", "--num-prompts", "5"]);
    let j = r.assert_ok().json();
    assert_eq!(j["total_output_tokens"], 40);
    assert!((f(&j["mean_ttft_ms"]) - f(&j["mean_e2el_ms"])).abs() < 1e-9);
}

/// One run against a simulator injecting `ttft` / `itl`; returns the result JSON.
fn measure(concurrency: &str, rate: &str, n: &str, ttft: f64, itl: f64) -> serde_json::Value {
    let (t, i) = (ttft.to_string(), itl.to_string());
    let sim =
        Sim::start(&["--ttft-ms", &t, "--itl-ms", &i, "--prefill-ms-per-token", "0", "--itl-ms-per-seq", "0", "--max-num-seqs", "1024"]);
    let r = run(
        &sim.url,
        &[
            "--backend",
            "vllm",
            "--random-input-len",
            "32",
            "--random-output-len",
            "20",
            "--num-prompts",
            n,
            "--max-concurrency",
            concurrency,
            // Poisson arrivals keep the in-flight count near the cap without sending 64
            // requests in one instant (which would measure the server's intake queue).
            "--request-rate",
            rate,
            // Opens the connections first, so TTFT measures the server, not TCP set-up.
            "--warmup-requests",
            concurrency,
        ],
    );
    r.assert_ok().json()
}

/// TTFT and ITL as the client reports them, against what the simulator injects. The same load
/// is first run with no injected TTFT: what the client reports then is the fixed cost of a
/// round trip through loopback and the simulator's HTTP stack (a real cost, but not an injected
/// one), so the injected TTFT must show up on top of it to within a millisecond.
fn check_latency(concurrency: &str, rate: &str, n: &str, ttft: f64, itl: f64) {
    let base = f(&measure(concurrency, rate, n, 0.0, itl)["mean_ttft_ms"]);
    let j = measure(concurrency, rate, n, ttft, itl);
    let (m_ttft, m_itl, med_itl) = (f(&j["mean_ttft_ms"]), f(&j["mean_itl_ms"]), f(&j["median_itl_ms"]));
    assert!(base < 3.0, "c={concurrency}: a zero-TTFT server measured {base} ms");
    assert!((m_ttft - base - ttft).abs() < 2.0, "c={concurrency}: mean TTFT {m_ttft} = {base} round trip + ? vs injected {ttft}");
    assert!((m_itl - itl).abs() < 1.0, "c={concurrency}: mean ITL {m_itl} vs injected {itl}");
    assert!((med_itl - itl).abs() < 1.0, "c={concurrency}: median ITL {med_itl} vs injected {itl}");
    assert_eq!(j["completed"], n.parse::<u64>().unwrap());
    let peak = j["max_concurrent_requests"].as_u64().unwrap();
    let c: u64 = concurrency.parse().unwrap();
    assert!(peak <= c && peak * 4 >= c * 3, "peak in flight {peak} should be near {c}");
}

#[test]
fn latency_matches_injected_values_at_concurrency_1() {
    let _machine = crate::harness::machine_alone();
    check_latency("1", "inf", "10", 30.0, 10.0);
}

#[test]
fn latency_matches_injected_values_at_concurrency_64() {
    let _machine = crate::harness::machine_alone();
    // Each request lasts ~410 ms, so 160 req/s keeps ~64 in flight.
    check_latency("64", "160", "256", 30.0, 20.0);
}

#[test]
fn goodput_counts_requests_that_meet_every_slo() {
    let _machine = crate::harness::machine_alone();
    // TTFT = 2 ms per prompt token: prompts of up to 100 tokens take <= 200 ms (+ <1 ms of
    // overhead), longer ones >= 202 ms, so an SLO of 201 ms splits them cleanly.
    let sim = Sim::start(&["--ttft-ms", "0", "--prefill-ms-per-token", "2", "--itl-ms", "1", "--itl-ms-per-seq", "0"]);
    let r = run(
        &sim.url,
        &[
            "--random-input-len",
            "100",
            "--random-range-ratio",
            "0.8",
            "--random-output-len",
            "4",
            "--num-prompts",
            "40",
            "--max-concurrency",
            "8",
            "--goodput",
            "ttft:201",
        ],
    );
    let j = r.assert_ok().json();
    let recs = r.records();
    let expected = recs.iter().filter(|r| r["input_tokens"].as_u64().unwrap() <= 100).count();
    assert!(expected > 5 && expected < 35, "the split should be mixed: {expected}");
    assert_eq!(j["summary"]["good_requests"], expected as u64);
    let duration = f(&j["duration"]);
    assert!((f(&j["request_goodput"]) - expected as f64 / duration).abs() < 1e-9);
    assert!(r.stdout().contains("Request goodput (req/s):"));
}

#[test]
fn request_rate_paces_sends_without_lag() {
    let _machine = crate::harness::machine_alone();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let r = run(
        &sim.url,
        &["--request-rate", "40", "--arrival", "constant", "--num-prompts", "40", "--random-output-len", "4", "--random-input-len", "16"],
    );
    let j = r.assert_ok().json();
    // 40 sends at 25 ms spacing: the last goes out at 975 ms.
    let d = f(&j["duration"]);
    assert!((0.97..1.3).contains(&d), "duration {d}");
    let recs = r.records();
    let last = recs.iter().map(|r| r["scheduled_ns"].as_u64().unwrap()).max().unwrap();
    assert_eq!(last, 975_000_000);
    let lag_p99 = f(&j["summary"]["metrics"]["lag"]["percentiles"][3][1]);
    assert!(lag_p99 < 5.0, "lag p99 {lag_p99} ms");
}

#[test]
fn warmup_requests_are_excluded() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let r = run(&sim.url, &["--warmup-requests", "5", "--num-prompts", "10", "--random-output-len", "4", "--random-input-len", "16"]);
    let j = r.assert_ok().json();
    assert_eq!(j["completed"], 10);
    assert_eq!(j["warmup_excluded"], 5);
    assert_eq!(r.records().len(), 10);
    assert!(sim.metrics().contains("vllm:request_success_total{model_name=\"inferbench-sim\"} 15"));
}

#[test]
fn duration_mode_and_rate_ramp() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let r = run(&sim.url, &["--duration", "1", "--max-concurrency", "4", "--random-output-len", "4", "--random-input-len", "16"]);
    let j = r.assert_ok().json();
    assert_eq!(j["spec"]["duration_s"], 1.0);
    assert!(j["completed"].as_u64().unwrap() > 20, "{}", j["completed"]);
    assert!(r.records().iter().all(|r| r["gate_ns"].as_u64().unwrap() < 1_000_000_000), "nothing starts after the duration");

    // Linear ramp 10 -> 50 req/s over 30 evenly spaced requests: rate(i) = 10 + 40 * i / 29.
    let r = run(
        &sim.url,
        &[
            "--ramp-up-strategy",
            "linear",
            "--ramp-up-start-rps",
            "10",
            "--ramp-up-end-rps",
            "50",
            "--arrival",
            "constant",
            "--num-prompts",
            "30",
            "--random-output-len",
            "2",
            "--random-input-len",
            "8",
        ],
    );
    r.assert_ok();
    let mut sched: Vec<u64> = r.records().iter().map(|r| r["scheduled_ns"].as_u64().unwrap()).collect();
    sched.sort_unstable();
    assert_eq!(sched[1] - sched[0], 100_000_000, "first gap at 10 req/s");
    let last_gap = (sched[29] - sched[28]) as f64 / 1e6;
    let expected = 1000.0 / (10.0 + 40.0 * 28.0 / 29.0);
    assert!((last_gap - expected).abs() < 1e-3, "last gap {last_gap} ms, expected {expected}");
}

/// A live run counts requests in flight as they happen (no per-request event list); the count
/// must equal the peak recomputed from the records' start and end timestamps.
#[test]
fn live_peak_concurrency_equals_the_peak_of_the_records() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "5", "--itl-ms", "2", "--prefill-ms-per-token", "0", "--itl-ms-per-seq", "0"]);
    let flags = ["--random-input-len", "16", "--random-output-len", "12", "--num-prompts", "48", "--max-concurrency", "6"];
    let r = run(&sim.url, &[&flags[..], &["--warmup-requests", "3"]].concat());
    let j = r.assert_ok().json();
    let mut events: Vec<(u64, i64)> = Vec::new();
    for rec in r.records() {
        // In flight from the request's start: its send less its connect.
        events.push((rec["sent_ns"].as_u64().unwrap() - rec["connect_ns"].as_u64().unwrap(), 1));
        events.push((rec["end_ns"].as_u64().unwrap(), -1));
    }
    events.sort_unstable(); // an end sorts before a send at the same instant
    let (mut cur, mut peak) = (0i64, 0i64);
    for (_, d) in events {
        cur += d;
        peak = peak.max(cur);
    }
    assert_eq!(peak, 6, "48 requests through 6 slots keep 6 in flight");
    assert_eq!(j["max_concurrent_requests"], peak, "the live gauge and the records disagree");
}

/// Each request says how it got its connection: the first wave opens them (connect time > 0),
/// later requests reuse them (a pool lookup, far under a millisecond); `--warmup-connections`
/// opens them all before the measured window.
#[test]
fn records_carry_connect_time_and_reuse() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "2", "--itl-ms", "1"]);
    let args =
        ["--backend", "vllm", "--random-input-len", "16", "--random-output-len", "4", "--num-prompts", "24", "--max-concurrency", "4"];
    let r = run(&sim.url, &args);
    let j = r.assert_ok().json();
    let recs = r.records();
    let new: Vec<_> = recs.iter().filter(|x| x["reused"] == false).collect();
    // The pre-flight check leaves one connection open; the first wave opens the rest.
    assert!((3..=4).contains(&new.len()), "{} new connections", new.len());
    for x in &recs {
        let (connect, sent) = (x["connect_ns"].as_u64().unwrap(), x["sent_ns"].as_u64().unwrap());
        assert!(sent >= connect, "the send comes after the connect");
        if x["reused"] == true {
            assert!(connect < 1_000_000, "a reused connection takes no connect: {connect} ns");
        } else {
            assert_eq!(x["reused"], false, "every request reached the wire: {x}");
            assert!(connect > 0);
        }
        let first = x["first_token_ns"].as_u64().unwrap();
        assert!(first > sent);
    }
    let c = &j["summary"]["connections"];
    assert_eq!(c["new"].as_u64().unwrap() as usize, new.len());
    assert_eq!(c["new"].as_u64().unwrap() + c["reused"].as_u64().unwrap(), 24);
    assert_eq!(c["slow"], 0);
    assert_eq!(j["summary"]["metrics"]["connect"]["count"].as_u64().unwrap() as usize, new.len());
    // vLLM's TTFT includes the connect; the other does not.
    let (with, without) = (f(&j["summary"]["metrics"]["ttft"]["mean"]), f(&j["summary"]["metrics"]["ttft_no_connect"]["mean"]));
    assert!(with >= without && without > 0.0, "{with} vs {without}");
    assert!(r.stdout().contains("New connections (share of requests):"), "{}", r.stdout());

    let mut warm = args.to_vec();
    warm.extend(["--warmup-connections", "4"]);
    let r = run(&sim.url, &warm);
    let j = r.assert_ok().json();
    assert!(r.records().iter().all(|x| x["reused"] == true), "warmed connections serve the whole first wave");
    assert_eq!(j["summary"]["connections"]["new"], 0);
    assert_eq!(j["spec"]["warmup_connections"], 4);
}

/// A client that keeps up delivers the rate its arrival process scheduled, and says how much
/// was in flight and how much was sent late.
#[test]
fn the_delivered_load_is_reported_against_the_schedule() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "2", "--itl-ms", "1"]);
    let r = run(
        &sim.url,
        &["--random-input-len", "8", "--random-output-len", "4", "--num-prompts", "60", "--request-rate", "100", "--arrival", "constant"],
    );
    let j = r.assert_ok().json();
    let d = &j["summary"]["delivery"];
    assert!((f(&d["scheduled_rate"]) - 100.0).abs() < 1e-6, "{d}");
    let ratio = f(&d["achieved_rate"]) / f(&d["scheduled_rate"]);
    assert!(ratio > 0.95 && ratio < 1.05, "{d}");
    // Each request runs about 5 ms at 100 req/s: about half a request in flight on average.
    assert!(f(&d["mean_in_flight"]) > 0.2 && f(&d["mean_in_flight"]) < 2.0, "{d}");
    assert!(!r.stderr().contains("warning: the client delivered"), "{}", r.stderr());
    assert!(r.stdout().contains("Achieved send rate (req/s):"), "{}", r.stdout());
}

/// What a `vllm bench serve` user types keeps working: `--result-filename r.json` names the file,
/// `--num-warmups`, `--metadata k=v k=v`, vLLM's percentile-metric names, and `date` in vLLM's
/// `%Y%m%d-%H%M%S` (the RFC 3339 time under `started`).
#[test]
fn vllm_flags_and_file_names_work_as_in_vllm() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::harness::BIN)
        .args([
            "run",
            "--base-url",
            &sim.url,
            "--disable-tqdm",
            "--num-prompts",
            "4",
            "--random-input-len",
            "8",
            "--random-output-len",
            "4",
        ])
        .args(["--result-filename", "bench.json", "--num-warmups", "2", "--metadata", "gpu=none", "site=lab"])
        .args(["--percentile-metrics", "ttft,client_queue_time,e2el_including_client_queue", "--result-dir"])
        .arg(dir.path())
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in ["bench.json", "bench.csv", "bench.records.jsonl"] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    assert!(!dir.path().join("bench.json.json").exists());
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("bench.json")).unwrap()).unwrap();
    let date = j["date"].as_str().unwrap();
    assert!(date.len() == 15 && date.as_bytes()[8] == b'-' && date.chars().filter(char::is_ascii_digit).count() == 14, "{date}");
    let started = j["started"].as_str().unwrap();
    assert!(started.ends_with('Z') && started.contains('T'), "{started}");
    assert_eq!(started.chars().filter(char::is_ascii_digit).take(14).collect::<String>(), date.replace('-', ""));
    assert_eq!(j["labels"]["gpu"], "none");
    assert_eq!(j["labels"]["site"], "lab");
    assert_eq!(j["warmup_excluded"], 2);
    assert_eq!(j["spec"]["percentile_metrics"], serde_json::json!(["ttft", "queue", "e2el_sched"]));
}

/// Scripts written for `vllm bench serve` results read ours: every key of two real vLLM 0.32
/// result files (summary only, and `--save-detailed`) is in our result with the same JSON type,
/// and the per-request arrays have one entry per request.
#[test]
fn every_key_of_a_vllm_result_is_in_ours() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "2", "--itl-ms", "1"]);
    let r = run(
        &sim.url,
        &[
            "--random-input-len",
            "16",
            "--random-output-len",
            "4",
            "--num-prompts",
            "12",
            "--max-concurrency",
            "3",
            "--save-detailed",
            "--metric-percentiles",
            "50,90,99",
        ],
    );
    let ours = r.assert_ok().json();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vllm");
    let kind = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    };
    for file in ["vllm.json", "vllm-chat-detailed.json"] {
        let theirs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        for (k, v) in theirs.as_object().unwrap() {
            let Some(mine) = ours.get(k) else { panic!("{file}: our result has no '{k}'") };
            if k == "request_rate" {
                continue; // "inf" or a number, as in vLLM: this run's rate is inf, that file's 20
            }
            // vLLM writes null for what it did not measure (no goodput SLO, no label): so do we.
            assert_eq!(kind(mine), kind(v), "{file}: '{k}' is {mine} here, {v} in vLLM's");
            if let (serde_json::Value::Array(a), serde_json::Value::Array(b)) = (mine, v) {
                assert_eq!(a.len(), 12, "'{k}': one entry per request");
                if let (Some(x), Some(y)) = (a.first(), b.first()) {
                    assert_eq!(kind(x), kind(y), "{file}: '{k}' entries");
                }
            }
        }
        let date = theirs["date"].as_str().unwrap();
        let mine = ours["date"].as_str().unwrap();
        assert_eq!((mine.len(), mine.find('-')), (date.len(), date.find('-')), "date in vLLM's format: {mine} vs {date}");
    }
    assert_eq!(ours["request_rate"], "inf");
    assert_eq!(ours["endpoint_type"], ours["backend"]);
    let outs: Vec<u64> = ours["output_lens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(outs, vec![4; 12]);
    assert!(ours["generated_texts"].as_array().unwrap().iter().all(|t| !t.as_str().unwrap().is_empty()));
    assert!(f(&ours["max_output_tokens_per_s"]) >= 1.0);
}

/// `--benchmark-report` writes llm-d's Benchmark Report v0.2, valid under the schema
/// llm-d-benchmark publishes (a copy in tests/fixtures/llm-d, its source named there).
#[test]
fn the_benchmark_report_validates_against_llm_d_schema() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "2", "--itl-ms", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("br.json");
    let r = run(
        &sim.url,
        &[
            "--random-input-len",
            "16",
            "--random-output-len",
            "4",
            "--num-prompts",
            "8",
            "--request-rate",
            "50",
            "--max-concurrency",
            "2",
            "--label",
            "team=perf",
            "--benchmark-report",
            report.to_str().unwrap(),
        ],
    );
    let j = r.assert_ok().json();
    let br: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let schema_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm-d/br_v0_2_json_schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&br).map(|e| format!("{e} at {}", e.instance_path())).take(5).collect();
    assert!(errors.is_empty(), "{errors:?}\n{br:#}");
    // The schema has teeth: a stray key or a wrong unit is refused.
    let mut bad = br.clone();
    bad["results"]["request_performance"]["aggregate"]["latency"]["time_to_first_token"]["units"] = "minutes".into();
    assert!(!v.is_valid(&bad));
    bad = br.clone();
    bad["run"]["surprise"] = 1.into();
    assert!(!v.is_valid(&bad));
    assert_eq!(br["version"], "0.2");
    assert_eq!(br["run"]["uid"], j["run_id"]);
    let agg = &br["results"]["request_performance"]["aggregate"];
    assert_eq!(agg["requests"]["total"], 8);
    assert!((f(&agg["latency"]["time_to_first_token"]["mean"]) * 1e3 - f(&j["mean_ttft_ms"])).abs() < 1e-9, "seconds, not ms");
    assert_eq!(br["scenario"]["load"]["standardized"]["rate_qps"], 50.0);
    assert_eq!(br["scenario"]["load"]["standardized"]["input_seq_len"]["value"], 16);
    assert_eq!(br["run"]["keywords"], serde_json::json!(["team=perf"]));
    // The workload id ignores the target: the same workload elsewhere has the same cfg_id.
    assert_eq!(br["scenario"]["load"]["metadata"]["cfg_id"].as_str().unwrap().len(), 16);
}

/// A server's prefix-cache hits reach the records and the summary: the simulator, caching
/// 16-token blocks, serves the 64-token shared prefix of every prompt after the first from its
/// cache; `--reset-prefix-cache` starts the next run cold, and a server without the route says so.
#[test]
fn prefix_cache_hits_are_reported_and_the_cache_can_be_reset() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1", "--enable-prefix-caching"]);
    let args = [
        "--random-prefix-len",
        "64",
        "--random-input-len",
        "16",
        "--random-output-len",
        "2",
        "--num-prompts",
        "10",
        "--max-concurrency",
        "1",
    ];
    let cached = |j: &serde_json::Value| j["summary"]["prefix_cache"]["cached_tokens"].as_u64().unwrap();
    let r = run(&sim.url, &args);
    let j = r.assert_ok().json();
    assert_eq!(j["summary"]["prefix_cache"]["requests"], 10);
    assert_eq!(j["summary"]["prefix_cache"]["prompt_tokens"], 800);
    assert_eq!(cached(&j), 9 * 64, "every prompt after the first reuses the 4 prefix blocks");
    let recs = r.records();
    assert_eq!(recs.iter().filter(|x| x["cached_tokens"] == 0).count(), 1);
    assert!(r.stdout().contains("Prefix-cached prompt tokens:             576 of 800 (72.0 %)"), "{}", r.stdout());
    // The same prompts again: all of them whole blocks the cache holds (5 blocks of 16).
    assert_eq!(cached(&run(&sim.url, &args).assert_ok().json()), 800);
    // Reset first: cold again.
    let reset = run(&sim.url, &[&args[..], &["--reset-prefix-cache"]].concat());
    assert_eq!(cached(&reset.assert_ok().json()), 576);
    assert!(reset.stderr().contains("prefix cache was reset") || reset.stdout().contains("prefix cache was reset"));
    // A server without a prefix cache: the run goes on, and says the cache was not reset.
    let plain = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let r = run(&plain.url, &[&args[..], &["--reset-prefix-cache"]].concat());
    let text = format!("{}{}", r.stdout(), r.stderr());
    assert!(text.contains("NOT reset: POST /reset_prefix_cache answered HTTP 404"), "{text}");
    assert!(r.assert_ok().json()["summary"].get("prefix_cache").is_none(), "no cached_tokens reported");
}

/// Client and server count the same tokens on the sampled requests: they agree with the
/// simulator, and a server that miscounts by 2 shows as every request differing by 2 (and, with
/// ignore_eos, as answers of another length than asked).
#[test]
fn token_counts_are_reconciled_with_the_server() {
    let _machine = crate::harness::machine_shared();
    let args =
        ["--backend", "vllm", "--random-input-len", "24", "--random-output-len", "4", "--num-prompts", "8", "--reconcile-every", "1"];
    let honest = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let j = run(&honest.url, &args).assert_ok().json();
    let rc = &j["summary"]["reconciliation"];
    assert_eq!((rc["checked"].as_u64(), rc["input_differ"].as_u64(), rc["output_differ"].as_u64()), (Some(8), Some(0), Some(0)), "{rc}");
    assert_eq!(j["summary"]["output_length_mismatches"], 0);

    let liar = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1", "--miscount-usage", "2"]);
    let r = run(&liar.url, &args);
    let j = r.assert_ok().json();
    let rc = &j["summary"]["reconciliation"];
    assert_eq!((rc["input_differ"].as_u64(), rc["output_differ"].as_u64()), (Some(8), Some(8)), "{rc}");
    assert_eq!((f(&rc["input_mean_abs_diff"]), f(&rc["output_mean_abs_diff"])), (2.0, 2.0));
    assert_eq!(j["summary"]["output_length_mismatches"], 8);
    assert!(r.stdout().contains("differ: input 100.0 % (mean |d| 2.00), output 100.0 % (mean |d| 2.00)"), "{}", r.stdout());
    assert!(r.stdout().contains("WARNING: output length not as asked:"), "{}", r.stdout());
    // Off: nothing counted twice.
    let j = run(&liar.url, &[&args[..8], &["--reconcile-every", "0"]].concat()).assert_ok().json();
    assert!(j["summary"].get("reconciliation").is_none());
}
