//! The embedded engine end to end: `inferbench serve --model` on a tiny random GGUF, driven by
//! `inferbench run` and by hand-written requests.

use crate::harness::*;
use inferbench_engine::testing::{write_tiny_model, TinySpec};
use serde_json::Value;
use std::process::Command;

fn tiny_model() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gguf");
    write_tiny_model(&p, &TinySpec::default()).unwrap();
    let s = p.to_string_lossy().into_owned();
    (dir, s)
}

#[test]
fn run_against_the_engine_gets_exact_lengths_and_metrics() {
    let _m = machine_shared();
    let (_d, model) = tiny_model();
    let srv = Sim::serve(&["--model", &model, "--threads", "1", "--max-num-seqs", "4"]);
    let r = run(
        &srv.url,
        &[
            "--backend",
            "vllm",
            "--tokenizer",
            &model,
            "--random-input-len",
            "16",
            "--random-output-len",
            "8",
            "--num-prompts",
            "12",
            "--max-concurrency",
            "6",
        ],
    );
    r.assert_ok();
    let j = r.json();
    assert_eq!(j["completed"], 12);
    assert_eq!(j["total_output_tokens"], 96);
    assert_eq!(j["total_input_tokens"], 12 * 16);
    assert_eq!(j["model_id"], "tiny");
    // The engine's own metrics over the run: its token count for this run only, and a series.
    let server = &j["monitors"]["server"];
    assert_eq!(server["generation_tokens"], 96.0, "{server}");
    assert!(server["gauges"]["kv_cache_usage"]["samples"].as_u64() >= Some(1), "{server}");
    assert_eq!(server["latency"]["ttft"]["count"], 12);
    let ts = std::fs::read_to_string(r.file("timeseries.jsonl")).unwrap();
    assert!(ts.lines().any(|l| l.contains("\"source\":\"server\"") && l.contains("kv_cache_usage")), "{ts}");
    // Chat goes through the model's chat template.
    let r = run(
        &srv.url,
        &["--backend", "openai-chat", "--tokenizer", &model, "--random-input-len", "8", "--random-output-len", "4", "--num-prompts", "3"],
    );
    r.assert_ok();
    assert_eq!(r.json()["completed"], 3);
    let m = srv.metrics();
    for name in [
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
    ] {
        assert!(m.contains(name), "{name} missing from\n{m}");
    }
    assert!(m.contains("vllm:request_success_total{model_name=\"tiny\"} 15"), "{m}");
}

#[test]
fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let _m = machine_shared();
    let (_d, model) = tiny_model();
    let srv = Sim::serve(&["--model", &model, "--threads", "1"]);
    let url = format!("{}/v1/completions", srv.url);
    // Longer than the context (256 tokens).
    let long = "x".repeat(300);
    let (status, body) = post(&url, &format!(r#"{{"prompt": "{long}", "max_tokens": 4}}"#));
    assert_eq!(status, 413, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("maximum context length is 256"), "{body}");
    // An answer longer than the context.
    let (status, body) = post(&url, r#"{"prompt": "hi", "max_tokens": 100000}"#);
    assert_eq!(status, 413, "{body}");
    let (status, body) = post(&url, r#"{"prompt": "hi", "max_tokens": 4, "temperature": -1}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("temperature"), "{body}");
    let (status, body) = post(&url, r#"{"prompt": "hi", "max_tokens": 4, "model": "gpt-9"}"#);
    assert_eq!(status, 404, "{body}");
    let (status, body) = post(&url, r#"{"prompt": 5}"#);
    assert_eq!(status, 400, "{body}");
    // Still serving, with sensible usage.
    let (status, body) = post(&url, r#"{"prompt": "hello", "max_tokens": 5, "ignore_eos": true}"#);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    // Greedy answers repeat exactly.
    let again = post(&url, r#"{"prompt": "hello", "max_tokens": 5, "ignore_eos": true}"#).1;
    let w: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(v["choices"][0]["text"], w["choices"][0]["text"]);
}

#[test]
fn the_kv_budget_is_enforced() {
    let _m = machine_shared();
    let (_d, model) = tiny_model();
    // The tiny model keeps 2 layers x 2 (K, V) x 32 halves x 2 bytes = 256 bytes per position, so
    // 0.025 MiB holds 102 positions: less than the 256-token context.
    let srv = Sim::serve(&["--model", &model, "--threads", "1", "--kv-cache-memory-mib", "0.025"]);
    let url = format!("{}/v1/completions", srv.url);
    let (status, body) = post(&url, r#"{"prompt": "hello", "max_tokens": 150}"#);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("budget holds 102"), "{body}");
    // Requests that fit only one at a time queue and all finish.
    let r = run(
        &srv.url,
        &[
            "--backend",
            "vllm",
            "--tokenizer",
            &model,
            "--random-input-len",
            "20",
            "--random-output-len",
            "40",
            "--num-prompts",
            "4",
            "--max-concurrency",
            "4",
        ],
    );
    r.assert_ok();
    assert_eq!(r.json()["completed"], 4);
}

/// A speculative serving run: `serve --draft-model` with a Q4_1 draft of the F32 target, driven
/// by `run` at concurrency 4; the run reads the acceptance from the server's own counters, and a
/// draft with another tokenizer is refused with one line.
#[test]
fn a_speculative_serving_run_reports_acceptance_from_the_server() {
    let _m = machine_shared();
    let (d, model) = tiny_model();
    let flags = ["--model", &model, "--quantization", "q8_0", "--draft-model", &model, "--draft-quantization", "q4_1"];
    let srv = Sim::serve(&[&flags[..], &["--num-speculative-tokens", "3", "--threads", "1", "--max-num-seqs", "4"]].concat());
    let r = run(
        &srv.url,
        &["--tokenizer", &model, "--random-input-len", "12", "--random-output-len", "16", "--num-prompts", "8", "--max-concurrency", "4"],
    );
    r.assert_ok();
    let j = r.json();
    assert_eq!(j["total_output_tokens"], 8 * 16);
    let server = &j["monitors"]["server"];
    let acceptance = server["spec_decode_acceptance"].as_f64().unwrap_or_else(|| panic!("no acceptance in {server}"));
    assert!((0.0..=1.0).contains(&acceptance), "{acceptance}");
    let drafted = server["counters"]["spec_decode_drafted"].as_f64().unwrap();
    let drafts = server["counters"]["spec_decode_drafts"].as_f64().unwrap();
    assert!(drafts > 0.0 && drafted >= drafts && drafted <= 3.0 * drafts, "{server}");
    let by_pos: Vec<f64> = server["spec_decode_acceptance_by_position"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(by_pos.len(), 3, "{server}");
    let length = server["spec_decode_mean_acceptance_length"].as_f64().unwrap();
    assert!((length - (1.0 + by_pos.iter().sum::<f64>())).abs() < 1e-9, "{length} vs {by_pos:?}");
    assert!(r.stdout().contains("Speculative acceptance:"), "{}", r.stdout());
    let m = srv.metrics();
    assert!(m.contains("vllm:spec_decode_num_accepted_tokens_per_pos_total{model_name=\"tiny\",position=\"2\"}"), "{m}");
    // A draft whose vocabulary differs is refused before serving.
    let other = d.path().join("other.gguf");
    write_tiny_model(&other, &TinySpec { words: 10, ..Default::default() }).unwrap();
    let out = Command::new(BIN).args(["serve", "--port", "0", "--model", &model, "--draft-model"]).arg(&other).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--draft-model") && err.contains("tokenizer") && err.lines().count() == 1, "{err}");
    // A draft that is not there names the flag it came from.
    let out = Command::new(BIN).args(["serve", "--port", "0", "--model", &model, "--draft-model", "/nonexistent/d.gguf"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--draft-model: model /nonexistent/d.gguf: no such file"), "{err}");
}

#[test]
fn missing_or_corrupt_models_fail_with_one_clear_line() {
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).args(["serve", "--port", "0", "--model", "/nonexistent/m.gguf"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a missing model file is bad usage");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/m.gguf: no such file"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    let out = Command::new(BIN).args(["serve", "--port", "0", "--model"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.gguf") && err.contains("truncated"), "{err}");
    let out = Command::new(BIN).args(["model", "pull", "gpt-9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown model 'gpt-9'"));
}

#[test]
fn engine_bench_reports_latency_memory_throughput_and_checks_targets() {
    let _m = machine_shared();
    let (d, model) = tiny_model();
    let cfg = d.path().join("bench.yaml");
    let out = d.path().join("out");
    std::fs::write(
        &cfg,
        format!(
            "model: {model}\nthreads: 1\nlatency:\n  warmup_runs: 1\n  test_runs: 2\n  input_lengths: [8, 16]\n  output_lengths: [4]\nthroughput:\n  concurrent_requests: 3\n  batch_sizes: [1, 2]\n  tokens_per_request: 5\nreport:\n  output_dir: {}\n  file_name: engine-tiny\ntargets:\n  default:\n    max_memory_gb: 100\n    min_tokens_per_second: 1000000\n",
            out.display()
        ),
    )
    .unwrap();
    let o = Command::new(BIN).args(["engine", "--config"]).arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "a missed target exits 3: {err}");
    assert!(err.contains("1 of 2 targets failed: min_tokens_per_second"), "{err}");
    // Every format of the engine result through `report`; the HTML has the latency heat maps.
    for (fmt, has) in [("text", "Latency"), ("md", "Latency"), ("csv", "input_tokens"), ("html", "id=\"heat-ttft\"")] {
        let o = Command::new(BIN)
            .arg("report")
            .arg(out.join("engine-tiny.json"))
            .args(["--format", fmt, "-o"])
            .arg(out.join("r.out"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{fmt}: {}", String::from_utf8_lossy(&o.stderr));
        let doc = std::fs::read_to_string(out.join("r.out")).unwrap();
        assert!(doc.contains(has), "{fmt}: {doc}");
    }
    std::fs::remove_file(out.join("r.out")).unwrap();
    let j: Value = crate::harness::validated(&out.join("engine-tiny.json"));
    assert_eq!(j["latency"].as_array().unwrap().len(), 2);
    assert_eq!(j["latency"][1]["input_tokens"], 16);
    assert_eq!(j["latency"][1]["iterations"].as_array().unwrap().len(), 2);
    assert_eq!(j["latency"][1]["iterations"][0]["output_tokens"], 4);
    assert!(j["throughput"]["batch_2_tokens_per_second"].as_f64().unwrap() > 0.0);
    assert!(j["throughput"]["concurrent_3_requests_per_second"].as_f64().unwrap() > 0.0);
    assert!(j["memory"]["peak_rss_mb"].as_f64().unwrap() > 1.0);
    assert_eq!(j["targets"][0]["pass"], true);
    assert!(j["system"]["cpu_cores"].as_u64().unwrap() >= 1);
    assert!(out.join("engine-tiny.csv").exists() && out.join("engine-tiny.txt").exists());
    // The same records and summary types as a serving run.
    assert_eq!(j["latency_summary"]["completed"], 4);
    assert_eq!(j["latency_summary"]["total_output_tokens"], 16);
    let records = read_records(&out.join("engine-tiny.records.jsonl"));
    let latency: Vec<_> = records.iter().filter(|r| r["category"].as_str().unwrap().starts_with("latency/")).collect();
    assert_eq!(latency.len(), 4);
    assert_eq!(latency[3]["category"], "latency/in16_out4");
    assert_eq!(latency[3]["itl_ns"].as_array().unwrap().len(), 3);
    assert_eq!(latency[3]["token_source"], "engine");
    // Keep this run as a baseline for `compare`.
    let base = d.path().join("base");
    std::fs::create_dir(&base).unwrap();
    for f in ["engine-tiny.json", "engine-tiny.records.jsonl"] {
        std::fs::copy(out.join(f), base.join(f)).unwrap();
    }
    // Flags override the file; with only a reachable target the run passes.
    let o = Command::new(BIN)
        .args(["engine", "--config"])
        .arg(&cfg)
        .args(["--target", "min_tokens_per_second=0.001", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // compare on engine results: latency rows tested on the records, every figure compared.
    let cmp = |b: &std::path::Path, extra: &[&str]| {
        Command::new(BIN).arg("compare").arg(b.join("engine-tiny.json")).arg(out.join("engine-tiny.json")).args(extra).output().unwrap()
    };
    let o = cmp(&base, &[]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{table}{}", String::from_utf8_lossy(&o.stderr));
    assert!(table.contains("[latency runs]") && table.contains("batch_2_tokens_per_second"), "{table}");
    assert!(table.contains("TTFT median (ms)"), "{table}");
    // A baseline twice as fast: the throughput gate fails.
    let mut j2 = j.clone();
    let tps = j2["metrics"]["tokens_per_second"].as_f64().unwrap();
    let new: Value = crate::harness::validated(&out.join("engine-tiny.json"));
    j2["metrics"]["tokens_per_second"] = (new["metrics"]["tokens_per_second"].as_f64().unwrap().max(tps) * 2.0).into();
    std::fs::write(base.join("engine-tiny.json"), serde_json::to_string(&j2).unwrap()).unwrap();
    let o = cmp(&base, &["--fail-on-regression", "5%", "--regression-metric", "throughput"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("regression: [engine] tokens_per_second"), "{err}");
    // A different workload is refused.
    j2["config"]["latency"]["test_runs"] = 5.into();
    std::fs::write(base.join("engine-tiny.json"), serde_json::to_string(&j2).unwrap()).unwrap();
    let o = cmp(&base, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("config.latency"));
}

#[test]
fn engine_bench_rejects_bad_configs_clearly() {
    let _m = machine_shared();
    let (d, model) = tiny_model();
    let cfg = d.path().join("bad.yaml");
    std::fs::write(&cfg, "latency:\n  test_runs: 2\n  input_lenghts: [8]\n").unwrap();
    let o = Command::new(BIN).args(["engine", "--config"]).arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("bad.yaml") && err.contains("line 3") && err.contains("input_lenghts"), "{err}");
    // A length beyond the model's context (256).
    let o = Command::new(BIN).args(["engine", "--model", &model, "--input-lengths", "300", "--output-lengths", "8"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("exceed the model's context of 256"), "{err}");
}

#[test]
fn engine_bench_compares_formats_and_speculative_decoding() {
    let _m = machine_shared();
    let (d, model) = tiny_model();
    let out = d.path().join("out");
    let o = Command::new(BIN)
        .args(["engine", "--model", &model, "--threads", "1", "--test-runs", "1", "--input-lengths", "8", "--output-lengths", "4"])
        .args([
            "--concurrent-requests",
            "0",
            "--batch-sizes",
            "1",
            "--quantization-formats",
            "shipped,q8_0",
            "--speculative",
            "--gamma",
            "3",
        ])
        .args(["--compare-variant", "f32"])
        .arg("--output-dir")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Without a file name, the stem is engine-<model>-<YYYYMMDD-HHMMSS>: a re-run never overwrites.
    let json = only_file(&out, ".json");
    let stem = json.file_name().unwrap().to_string_lossy().trim_end_matches(".json").to_owned();
    let stamp = stem.strip_prefix("engine-tiny-").unwrap_or_else(|| panic!("{stem}"));
    assert!(stamp.len() == 15 && stamp.chars().enumerate().all(|(i, c)| if i == 8 { c == '-' } else { c.is_ascii_digit() }), "{stem}");
    assert!(out.join(format!("{stem}.records.jsonl")).exists());
    let j: Value = crate::harness::validated(&json);
    let q = j["quantization"].as_array().unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q[0]["format"], "shipped");
    assert!((0.0..=1.0).contains(&q[1]["token_agreement"].as_f64().unwrap()));
    let s = &j["speculative"];
    assert_eq!(s["identical_to_target"], true, "{s}");
    assert_eq!(s["gamma"], 3);
    assert!(s["speedup"].as_f64().unwrap() > 0.0);
    assert!(j["throughput"]["timing_overhead_percent"].as_f64().unwrap() < 1.0);
    let c = &j["comparison"];
    assert_eq!(c["rows"].as_array().unwrap().len(), 4);
    assert_eq!(c["rows"][2]["batch_size"], 4);
    assert_eq!(c["rows"][0]["baseline_iterations_ms"].as_array().unwrap().len(), 3);
    assert!(c["verdict"].as_str().unwrap().contains("f32"));
    let text = std::fs::read_to_string(out.join(format!("{stem}.txt"))).unwrap();
    assert!(text.contains("Speculative decoding") && text.contains("Quantization") && text.contains("verdict"), "{text}");
}

/// Seed 001's run: a gamma sweep against the target arm with Poisson arrivals for a duration,
/// batching, sampled decoding and a placement; one JSON per arm plus the combined file.
#[test]
fn speculative_arms_under_poisson_load_write_one_file_per_arm() {
    let _m = machine_shared();
    let (d, model) = tiny_model();
    let out = d.path().join("out");
    let two_cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    let o = Command::new(BIN)
        .args(["engine", "--model", &model, "--threads", "1", "--test-runs", "1", "--input-lengths", "8", "--output-lengths", "4"])
        .args(["--concurrent-requests", "0", "--batch-sizes", "1", "--speculative", "--gamma", "1,3"])
        .args(["--rate", "40", "--duration", "0.5", "--batch-size", "4", "--max-batch-length", "64", "--max-tokens", "12"])
        .args(["--temperature", "0.8", "--target-quantization", "q8_0", "--placement", if two_cpus { "separate" } else { "same" }])
        .arg("--output-dir")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("Poisson 40 req/s for 0.5 s") && stderr.contains("speculative_gamma3"), "{stderr}");
    let json = only_file(&out, ".json");
    let j: Value = crate::harness::validated(&json);
    let s = &j["speculative"];
    let arms = s["arms"].as_array().unwrap();
    let names: Vec<&str> = arms.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["target", "speculative_gamma1", "speculative_gamma3"]);
    let n = arms[0]["requests"].as_u64().unwrap();
    assert!(n >= 5, "0.5 s at 40 req/s: about 20 arrivals, {n}");
    for a in arms {
        assert_eq!(a["requests"].as_u64(), Some(n), "every arm runs the same arrivals");
        assert_eq!(a["generated_tokens"].as_u64(), Some(12 * n));
        assert_eq!(a["total_tokens"].as_u64().unwrap(), a["prompt_tokens"].as_u64().unwrap() + 12 * n);
        assert_eq!(a["ttft_ms"]["count"].as_u64(), Some(n), "{a}");
        assert!(a["e2e_ms"]["mean"].as_f64().unwrap() >= a["ttft_ms"]["mean"].as_f64().unwrap());
    }
    for (a, gamma) in arms[1..].iter().zip([1, 3]) {
        assert_eq!(a["identical_to_target"], true, "seeded sampling keeps the target's output: {a}");
        assert_eq!(a["acceptance_by_position"].as_array().unwrap().len(), gamma);
        let acc = a["acceptance_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc) && a["speedup"].as_f64().unwrap() > 0.0, "{a}");
    }
    let place = s["placement"].as_str().unwrap();
    assert!(place.starts_with(if two_cpus { "separate: target on CPUs" } else { "same" }), "{place}");
    let stem = json.file_name().unwrap().to_string_lossy().trim_end_matches(".json").to_owned();
    let dir = out.join(format!("{stem}.speculative"));
    for name in ["benchmark_results_target.json", "benchmark_results_speculative_gamma1.json", "benchmark_results_speculative_gamma3.json"]
    {
        let arm: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
        assert_eq!(arm["result"]["requests"].as_u64(), Some(n), "{name}");
        assert_eq!(arm["settings"]["batch_size"], 4, "{name}");
    }
    let all: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("benchmark_results.json")).unwrap()).unwrap();
    assert_eq!(all["arms"].as_array().unwrap().len(), 3);
    assert_eq!(all["summary"]["best_gamma"], s["gamma"]);
    let text = std::fs::read_to_string(out.join(format!("{stem}.txt"))).unwrap();
    assert!(text.contains("speculative_gamma3") && text.contains("by position"), "{text}");
    // A bad placement or a step too short for a draft is refused before anything runs.
    for (flags, want) in [
        (&["--placement", "diagonal"][..], "speculative.placement 'diagonal'"),
        (&["--gamma", "8", "--batch-size", "1", "--max-batch-length", "4"][..], "speculative.max_batch_length (4)"),
    ] {
        let o = Command::new(BIN).args(["engine", "--model", &model, "--speculative"]).args(flags).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want) && err.lines().count() == 1, "{err}");
    }
}

#[test]
fn a_failing_section_keeps_the_results_of_the_others() {
    let _m = machine_shared();
    let (d, model) = tiny_model();
    let other = d.path().join("other.gguf");
    write_tiny_model(&other, &TinySpec { words: 10, ..Default::default() }).unwrap();
    let out = d.path().join("out");
    let o = Command::new(BIN)
        .args(["engine", "--model", &model, "--threads", "1", "--test-runs", "1", "--input-lengths", "8", "--output-lengths", "4"])
        .args(["--concurrent-requests", "0", "--batch-sizes", "1", "--speculative", "--draft-model"])
        .arg(&other)
        .arg("--output-dir")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("speculative") && err.contains("same tokenizer") && err.contains("other results are written"), "{err}");
    let j: Value = crate::harness::validated(&only_file(&out, ".json"));
    assert_eq!(j["latency"].as_array().unwrap().len(), 1);
    assert!(j["errors"][0].as_str().unwrap().contains("same tokenizer"));
}

/// The one file in `dir` whose name ends in `suffix` (and not in `.records.jsonl`).
fn only_file(dir: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix) && !p.to_string_lossy().ends_with(".records.jsonl"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

/// Issue 20 item 4: against `inferbench serve` with no `--tokenizer`, the client counts with the
/// tokenizer the server names, so the server sees exactly the prompt lengths asked for; a
/// tokenizer that counts differently is stopped before the run with one line.
#[test]
fn run_without_a_tokenizer_counts_as_our_server_does() {
    let _m = machine_shared();
    let (_d, model) = tiny_model();
    let srv = Sim::serve(&["--model", &model, "--threads", "1", "--max-num-seqs", "4"]);
    // The server names its tokenizer, and counts and decodes as vLLM's /tokenize does.
    let models = get(&format!("{}/v1/models", srv.url));
    assert!(models.contains(&format!("\"tokenizer\":\"{model}\"")), "{models}");
    let (status, body) = post(&format!("{}/tokenize", srv.url), r#"{"prompt": "the cat the dog"}"#);
    assert_eq!(status, 200, "{body}");
    let t: Value = serde_json::from_str(&body).unwrap();
    let tokens = t["tokens"].as_array().unwrap().clone();
    assert_eq!(t["count"].as_u64().unwrap() as usize, tokens.len());
    let (status, body) = post(&format!("{}/detokenize", srv.url), &serde_json::json!({"tokens": tokens}).to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["prompt"], "the cat the dog");
    let (status, body) = post(&format!("{}/tokenize", srv.url), r#"{"text": 3}"#);
    assert_eq!(status, 400, "{body}");
    // No --tokenizer: the server's usage counts exactly the requested prompt lengths.
    let r = run(&srv.url, &["--backend", "vllm", "--random-input-len", "16", "--random-output-len", "4", "--num-prompts", "6"]);
    r.assert_ok();
    let j = r.json();
    assert_eq!(j["spec"]["tokenizer"], model.as_str(), "the spec records the tokenizer used");
    assert_eq!(j["total_input_tokens"], 6 * 16);
    assert!(r.records().iter().all(|rec| rec["token_source"] == "server" && rec["input_tokens"] == 16));
    // A tokenizer that disagrees with the server's count stops the run before any request.
    let r = run(&srv.url, &["--backend", "vllm", "--tokenizer", "cl100k_base", "--random-input-len", "16", "--num-prompts", "2"]);
    assert_eq!(r.out.status.code(), Some(2), "{}", r.stderr());
    assert!(r.stderr().contains("the server counts") && r.stderr().contains("--tokenizer"), "{}", r.stderr());
    assert!(!r.file("json").exists());
    // ... unless the user says so.
    let r = run(
        &srv.url,
        &[
            "--backend",
            "vllm",
            "--tokenizer",
            "cl100k_base",
            "--allow-tokenizer-mismatch",
            "--random-input-len",
            "16",
            "--num-prompts",
            "2",
        ],
    );
    r.assert_ok();
}

/// A server in the manner of llama.cpp's: `/v1/models` names the model by the path it loaded and
/// names no tokenizer; completions answer with usage; `/tokenize` reads llama.cpp's `content`.
fn path_naming_server(model: &str) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let models = serde_json::json!({"object": "list", "data": [{"id": model, "object": "model"}]}).to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let models = models.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let (status, answer) = if line.starts_with("GET /v1/models") {
                        ("200 OK", models.clone())
                    } else if line.starts_with("POST /v1/completions") {
                        let r = r#"{"choices":[{"text":" a b","index":0,"finish_reason":"length"}],"usage":{"prompt_tokens":8,"completion_tokens":2}}"#;
                        ("200 OK", r.to_string())
                    } else if line.starts_with("POST /tokenize") {
                        // llama.cpp's form: `content` is counted, vLLM's `prompt` is not read. The
                        // test's prompts are single-token words, so words are tokens.
                        let v: Value = serde_json::from_slice(&body).unwrap();
                        let n = v["content"].as_str().map_or(0, |c| c.split_whitespace().count());
                        ("200 OK", serde_json::json!({"tokens": vec![1; n]}).to_string())
                    } else {
                        ("404 Not Found", r#"{"detail":"Not Found"}"#.to_string())
                    };
                    let head = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", answer.len());
                    if out.write_all(head.as_bytes()).and_then(|_| out.write_all(answer.as_bytes())).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[test]
fn a_server_naming_its_model_by_a_local_path_lends_its_tokenizer() {
    let _m = machine_shared();
    let (_d, model) = tiny_model();
    let url = path_naming_server(&model);
    let flags = ["--no-stream", "--random-input-len", "8", "--random-output-len", "2", "--num-prompts", "2"];
    let r = run(&url, &flags);
    let j = r.assert_ok().json();
    assert_eq!(j["spec"]["tokenizer"], model.as_str(), "auto took the GGUF the server named");
    // Its /tokenize answered vLLM's form with no tokens: the check switched to llama.cpp's form
    // and agreed, instead of stopping the run over a -100 % difference.
    assert!(!r.stderr().contains("the server counts 0 tokens"), "{}", r.stderr());
    // A path that is not on this machine: the fallback, as before.
    let url = path_naming_server("/nonexistent/model.gguf");
    let j = run(&url, &flags).assert_ok().json();
    assert_eq!(j["spec"]["tokenizer"], "cl100k_base");
}

/// llama-bench's tests on the engine: the Markdown table reads like llama-bench's, the SQL loads
/// into the sqlite3 shell, the JSON keeps every repetition, and llama-bench's own files (real
/// output, both formats) are put beside ours.
#[test]
fn engine_runs_llama_bench_tests_in_its_formats() {
    let _m = machine_shared();
    let (d, model) = tiny_model();
    let out = d.path().join("out");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llama-bench");
    let run = |extra: &[&str]| {
        let o = Command::new(BIN)
            .args(["engine", "--model", &model, "--threads", "1", "--pp", "16", "--tg", "8", "--depth", "0,16", "--repetitions", "3"])
            .args(["--no-store", "--no-host-monitor", "--gpus", "none", "--output-dir"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&o.stderr));
        (String::from_utf8(o.stdout).unwrap(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let compare = format!("{fixtures}/smollm2-q4_1-t1.jsonl");
    let (md, _) = run(&["--result-filename", "lb", "--compare-with", &compare]);
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(
        lines[0],
        "| model                          |       size |     params | backend    | threads |            test |                  t/s |",
        "{md}"
    );
    let tests: Vec<&str> = lines[2..6].iter().map(|l| l.split('|').nth(6).unwrap().trim()).collect();
    assert_eq!(tests, ["pp16", "tg8", "pp16 @ d16", "tg8 @ d16"], "{md}");
    assert!(lines[2].starts_with("| llama ") && lines[2].contains(" CPU        |       1 |"), "{md}");
    // The comparison pairs every test with llama-bench's real file (same shapes, one thread).
    let side: Vec<&str> = md.lines().skip_while(|l| !l.starts_with("| test ")).collect();
    assert_eq!(side.len(), 6, "{md}");
    for (row, name) in side[2..].iter().zip(["pp16", "tg8", "pp16 @ d16", "tg8 @ d16"]) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[1], name, "{row}");
        assert!(cells[3].contains(" ± ") && cells[4].contains(" ± "), "{row}");
        assert!(cells[5].parse::<f64>().unwrap() > 0.0, "{row}");
    }
    assert!(md.contains("llama-bench: llama 256M Q4_1"), "{md}");
    // The JSON keeps the samples; avg_ts is the mean of the per-repetition t/s, as llama-bench's.
    let j: Value = crate::harness::validated(&out.join("lb.json"));
    let rows = j["llama_bench"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in rows {
        let ts: Vec<f64> = r["samples_ts"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let ns: Vec<u64> = r["samples_ns"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(ts.len(), 3);
        let n = (r["n_prompt"].as_u64().unwrap() + r["n_gen"].as_u64().unwrap()) as f64;
        for (t, ns) in ts.iter().zip(&ns) {
            assert!((t - 1e9 * n / *ns as f64).abs() < 1e-6 * t);
        }
        assert!((r["avg_ts"].as_f64().unwrap() - ts.iter().sum::<f64>() / 3.0).abs() < 1e-9);
    }
    // `report` renders the saved result as the llama-bench table in every format.
    for (fmt, has) in [("text", "       tg8 @ d16 |"), ("csv", "\"16\",\"0\",\"16\""), ("html", "<h2>llama-bench")] {
        let o =
            Command::new(BIN).arg("report").arg(out.join("lb.json")).args(["--format", fmt, "-o"]).arg(out.join("r.out")).output().unwrap();
        assert!(o.status.success(), "{fmt}: {}", String::from_utf8_lossy(&o.stderr));
        let doc = std::fs::read_to_string(out.join("r.out")).unwrap();
        assert!(doc.contains(has), "{fmt}: {doc}");
    }
    std::fs::remove_file(out.join("r.out")).unwrap();
    // Every repetition is a record in the records file, the depth counted as input.
    let recs = std::fs::read_to_string(out.join("lb.records.jsonl")).unwrap();
    let cats: Vec<Value> = recs.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(cats.iter().filter(|r| r["category"] == "llama-bench/tg8 @ d16").count(), 3, "{recs}");
    assert!(cats.iter().any(|r| r["category"] == "llama-bench/tg8 @ d16" && r["input_tokens"] == 16 && r["output_tokens"] == 8));
    // SQL: piped into the sqlite3 shell as llama-bench's README does.
    if std::process::Command::new("sqlite3").arg("-version").output().is_ok() {
        let (sql, err) =
            run(&["--output", "sql", "--result-filename", "lb-sql", "--compare-with", &format!("{fixtures}/smollm2-q4_1-t2.json")]);
        assert!(err.contains("| test ") && err.contains("wrote "), "the comparison and file list go to stderr: {err}");
        let db = d.path().join("bench.sqlite");
        let mut child = Command::new("sqlite3").arg(&db).stdin(std::process::Stdio::piped()).spawn().unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), sql.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
        let q = Command::new("sqlite3")
            .arg(&db)
            .arg("SELECT n_prompt, n_gen, n_depth, n_threads, avg_ts > 0 FROM llama_bench ORDER BY rowid")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&q.stdout), "16|0|0|1|1\n0|8|0|1|1\n16|0|16|1|1\n0|8|16|1|1\n");
    } else {
        eprintln!("SKIPPED: the sqlite3 shell is not installed here");
    }
    // CSV and JSONL to stdout parse as such.
    let (csv, _) = run(&["--output", "csv", "--no-warmup"]);
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("build_commit,cpu_info,backends,model_filename,model_type,"), "{csv}");
    // A flag given twice adds values, as llama-bench's do (a 0 is no test).
    let (jsonl, _) = run(&["--output", "jsonl", "--tg", "0,4"]);
    let gens: Vec<u64> = jsonl.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["n_gen"].as_u64().unwrap()).collect();
    assert_eq!(gens, [0, 8, 4, 0, 8, 4]);
}

#[test]
fn llama_bench_flags_refuse_bad_values_in_one_line() {
    let _m = machine_shared();
    let (d, model) = tiny_model();
    let bad = d.path().join("bad.json");
    std::fs::write(&bad, "[{\"n_prompt\": 1}]").unwrap();
    for (args, says) in [
        (vec!["--pg", "0,4"], "expected PP,TG"),
        (vec!["--threads", "1,2"], "several thread counts apply to the llama-bench tests only"),
        (vec!["--pp", "16", "--compare-with", "/nonexistent.json"], "--compare-with: cannot read /nonexistent.json"),
        (vec!["--pp", "16", "--compare-with", bad.to_str().unwrap()], "not llama-bench JSON output"),
        (vec!["--pp", "0", "--tg", "0"], "llama_bench: no test to run"),
        (vec!["--pp", "200", "--depth", "100"], "300 tokens (depth + pp + tg) exceed the model's context of 256"),
    ] {
        let o = Command::new(BIN).current_dir(d.path()).args(["engine", "--model", &model, "--no-store"]).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().filter(|l| l.starts_with("error")).count(), 1, "{args:?}: {err}");
    }
}

/// Ctrl-C during llama-bench's tests keeps the repetitions finished: the row and the records
/// agree, the result says it was cancelled, and the exit code is 130.
#[test]
fn ctrl_c_keeps_the_llama_bench_repetitions_measured() {
    let _m = machine_shared();
    let (d, model) = tiny_model();
    let out = d.path().join("out");
    let child = Command::new(BIN)
        .args(["engine", "--model", &model, "--threads", "1", "--pp", "200", "--tg", "8", "--repetitions", "1000000"])
        .args(["--no-store", "--no-host-monitor", "--gpus", "none", "--result-filename", "cc", "--output-dir"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let records = out.join("cc.records.jsonl");
    let t = std::time::Instant::now();
    while std::fs::read_to_string(&records).map_or(0, |s| s.lines().count()) < 4 {
        assert!(t.elapsed().as_secs() < 60, "no repetition recorded in 60 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted: stopping after"), "{err}");
    let j: Value = crate::harness::validated(&out.join("cc.json"));
    let rows = j["llama_bench"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "the tg test never started");
    let n = rows[0]["samples_ns"].as_array().unwrap().len();
    assert!((3..1_000_000).contains(&n), "{n} repetitions kept");
    assert!(j["errors"][0].as_str().unwrap().starts_with("cancelled: 1 of 2 tests kept"), "{}", j["errors"]);
    let recorded = std::fs::read_to_string(&records).unwrap().lines().count() - 1;
    assert_eq!(recorded, n, "every kept repetition is a record, and only those");
}
