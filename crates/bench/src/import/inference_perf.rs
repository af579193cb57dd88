//! inference-perf's `summary_lifecycle_metrics.json`, with the run's `config.yaml` beside it for
//! the workload. Only summaries are written (per-request output is off by default), so its
//! figures are mapped one by one: TTFT, E2EL (`request_latency`) and ITL (`inter_token_latency`,
//! the gaps between chunks) are defined as ours. Its `time_per_output_token` runs from the first
//! to the last token, not to the response's end, so it is not our TPOT and is left out.

use super::*;
use inferbench_core::result::ImportInfo;

/// A distribution in seconds, as inference-perf writes it, in milliseconds.
fn seconds_dist(d: &Value, count: u64) -> Option<Distribution> {
    let ms = |k: &str| f(d, k).map(|x| x * 1e3);
    let mut pct: Vec<(f64, f64)> = d.as_object()?.iter().filter_map(|(k, x)| Some((percentile_key(k)?, x.as_f64()? * 1e3))).collect();
    pct.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(dist(count, ms("mean")?, ms("median")?, None, ms("min"), ms("max"), pct))
}

pub(super) fn import(v: &Value, path: &Path) -> Result<BenchmarkResult, String> {
    let ok = v.get("successes").ok_or("no `successes`")?;
    let completed = ok.get("count").and_then(Value::as_u64).ok_or("no `successes.count`")?;
    let failed = v.pointer("/failures/count").and_then(Value::as_u64).unwrap_or(0);
    let cfg_path = beside(path, "config.yaml");
    let cfg: Value = std::fs::read_to_string(&cfg_path).ok().and_then(|t| serde_yaml::from_str(&t).ok()).unwrap_or_default();
    let server = cfg.get("server").cloned().unwrap_or_default();
    let api = cfg.pointer("/api/type").and_then(Value::as_str).unwrap_or("completion");
    let mut s = spec(
        server.get("base_url").and_then(Value::as_str).unwrap_or("unknown"),
        server.get("model_name").and_then(Value::as_str).unwrap_or_default(),
        if api == "chat" { "openai-chat" } else { "openai" },
    );
    s.stream = cfg.pointer("/api/streaming").and_then(Value::as_bool).unwrap_or(true);
    s.ignore_eos = server.get("ignore_eos").and_then(Value::as_bool).unwrap_or(false);
    s.tokenizer = cfg.pointer("/tokenizer/pretrained_model_name_or_path").and_then(Value::as_str).unwrap_or("unknown").into();
    if let Some(stage) = cfg.pointer("/load/stages/0").filter(|_| cfg.pointer("/load/stages/1").is_none()) {
        s.num_prompts = stage.get("num_requests").and_then(Value::as_u64);
        match cfg.pointer("/load/type").and_then(Value::as_str) {
            Some("concurrent") => s.max_concurrency = stage.get("concurrency_level").and_then(Value::as_u64),
            _ => s.request_rate = stage.get("rate").and_then(Value::as_f64),
        }
    }
    let fixed = |d: &str| cfg.pointer(&format!("/data/{d}/type")).and_then(Value::as_str) == Some("fixed");
    if cfg.pointer("/data/type").and_then(Value::as_str) == Some("random") && fixed("input_distribution") && fixed("output_distribution") {
        let mean = |d: &str| cfg.pointer(&format!("/data/{d}/mean")).and_then(Value::as_f64).unwrap_or(0.0) as u32;
        s.dataset = DatasetSpec::random(mean("input_distribution"), mean("output_distribution"));
    }
    let mut sum = Summary {
        completed,
        failed,
        total_input_tokens: ok.pointer("/prompt_tokens/total").and_then(Value::as_f64).unwrap_or(0.0) as u64,
        total_output_tokens: ok.pointer("/output_tokens/total").and_then(Value::as_f64).unwrap_or(0.0) as u64,
        ..Summary::default()
    };
    sum.success_rate = if completed + failed == 0 { 0.0 } else { completed as f64 / (completed + failed) as f64 };
    for (m, k) in
        [(MetricName::Ttft, "time_to_first_token"), (MetricName::E2el, "request_latency"), (MetricName::Itl, "inter_token_latency")]
    {
        if let Some(d) = ok.pointer(&format!("/latency/{k}")).and_then(|d| seconds_dist(d, completed)) {
            sum.metrics.insert(m, d);
        }
    }
    let tp = |k: &str| ok.pointer(&format!("/throughput/{k}")).and_then(Value::as_f64);
    apply_window(
        &mut sum,
        Window {
            duration_s: f(v, "benchmark_time_seconds"),
            request_throughput: tp("requests_per_sec"),
            output_throughput: tp("output_tokens_per_sec"),
            total_token_throughput: tp("total_tokens_per_sec"),
        },
    );
    let info = ImportInfo {
        files: if cfg.is_null() { Vec::new() } else { vec![cfg_path.display().to_string()] },
        per_request: false,
        not_measured: not_measured(&sum),
        notes: vec![
            "inference-perf's summary figures: distributions have no standard deviation or samples; ITL counts are requests, not gaps"
                .into(),
            "its time_per_output_token ends at the last token, not the response's end: not our TPOT, left out".into(),
            "duration and throughputs are inference-perf's own".into(),
        ],
        ..ImportInfo::default()
    };
    Ok(result(s, sum, info, None))
}
