//! NVIDIA AIPerf: `profile_export_aiperf.json` (the summary) with `profile_export.jsonl` beside it
//! (one record per request), from which our accumulator recomputes everything. AIPerf's
//! `time_to_first_token` and `request_latency` are our TTFT and E2EL; its `inter_token_latency`
//! ((latency − TTFT) / (output − 1), per request) is our TPOT; its `inter_chunk_latency` gaps are
//! our ITL. Input tokens are AIPerf's own count (`input_sequence_length`), as its totals are.

use super::*;
use inferbench_core::result::ImportInfo;

fn metric(m: &Value, k: &str) -> Option<f64> {
    m.get(k)?.get("value")?.as_f64()
}

fn timed(line: &Value) -> Option<Timed> {
    let meta = line.get("metadata")?;
    let m = line.get("metrics")?;
    let start = meta.get("request_start_ns")?.as_f64()? / 1e9;
    let error = line.get("error").filter(|e| !e.is_null()).map(|e| e.to_string());
    let gaps = m
        .get("inter_chunk_latency")
        .and_then(|x| x.get("value"))
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |a| a.iter().filter_map(Value::as_f64).map(|ms| ms / 1e3).collect());
    let end = meta.get("request_end_ns").and_then(Value::as_f64).map(|e| e / 1e9);
    Some(Timed {
        start_s: start,
        ttft_s: metric(m, "time_to_first_token").map(|ms| ms / 1e3),
        gaps_s: gaps,
        e2el_s: metric(m, "request_latency").map(|ms| ms / 1e3).or(end.map(|e| e - start)).unwrap_or(0.0),
        input_tokens: metric(m, "input_sequence_length").or_else(|| metric(m, "usage_prompt_tokens")).unwrap_or(0.0) as u64,
        output_tokens: metric(m, "output_sequence_length").or_else(|| metric(m, "output_token_count")).unwrap_or(0.0) as u64,
        error,
    })
}

fn stat(v: &Value, k: &str, key: &str) -> Option<f64> {
    v.get(k)?.get(key)?.as_f64()
}

pub(super) fn import(v: &Value, path: &Path) -> Result<BenchmarkResult, String> {
    let duration = stat(v, "benchmark_duration", "avg").ok_or("no `benchmark_duration`")?;
    let cfg = v.get("input_config").cloned().unwrap_or_default();
    let model = cfg.pointer("/models/items/0/name").and_then(Value::as_str).unwrap_or_default();
    let url = cfg.pointer("/endpoint/urls/0").and_then(Value::as_str).unwrap_or("unknown");
    let kind = cfg.pointer("/endpoint/type").and_then(Value::as_str).unwrap_or("completions");
    let mut s = spec(url, model, if kind == "chat" { "openai-chat" } else { "openai" });
    s.tokenizer = cfg.pointer("/tokenizer/name").and_then(Value::as_str).unwrap_or("unknown").into();
    s.stream = cfg.pointer("/endpoint/streaming").and_then(Value::as_bool).unwrap_or(true);
    if let Some(phase) = cfg.pointer("/phases/0") {
        s.num_prompts = phase.get("requests").and_then(Value::as_u64);
        s.max_concurrency = phase.get("concurrency").and_then(Value::as_u64);
        s.request_rate = phase.get("request_rate").and_then(Value::as_f64);
    }
    if let Some(p) = cfg.pointer("/datasets/0/prompts") {
        let (isl, osl) = (p.pointer("/isl/mean").and_then(Value::as_f64), p.pointer("/osl/mean").and_then(Value::as_f64));
        let fixed =
            p.pointer("/isl/stddev").and_then(Value::as_f64) == Some(0.0) && p.pointer("/osl/stddev").and_then(Value::as_f64) == Some(0.0);
        if let (Some(i), Some(o), true) = (isl, osl, fixed) {
            s.dataset = DatasetSpec::random(i as u32, o as u32);
        }
    }
    s.ignore_eos = cfg.pointer("/endpoint/extra/ignore_eos").and_then(Value::as_bool).unwrap_or(false);
    let jsonl = beside(path, "profile_export.jsonl");
    let text = std::fs::read_to_string(&jsonl).map_err(|e| format!("its per-request file {} cannot be read: {e}", jsonl.display()))?;
    let timed: Vec<Timed> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<Value>(l).ok().and_then(|x| timed(&x)).ok_or(format!(
                "{} line {}: not an AIPerf record",
                jsonl.display(),
                i + 1
            ))
        })
        .collect::<Result<_, _>>()?;
    let osl = stat(v, "total_osl", "avg");
    let isl = stat(v, "total_isl", "avg");
    let window = Window {
        duration_s: Some(duration),
        request_throughput: stat(v, "request_throughput", "avg"),
        output_throughput: stat(v, "output_token_throughput", "avg"),
        total_token_throughput: isl.zip(osl).map(|(i, o)| (i + o) / duration),
    };
    let summary = summarise(&records(&timed), &[50.0, 90.0, 95.0, 99.0], window);
    let info = ImportInfo {
        version: v.get("aiperf_version").and_then(Value::as_str).map(str::to_owned),
        files: vec![jsonl.display().to_string()],
        per_request: true,
        not_measured: not_measured(&summary),
        notes: vec![
            format!("{} requests recomputed from profile_export.jsonl with our definitions", timed.len()),
            "AIPerf's inter_token_latency is our TPOT; its inter_chunk_latency gaps are our ITL".into(),
            "input tokens are AIPerf's count (input_sequence_length), as its totals; the server's usage may differ".into(),
            "duration and throughputs are AIPerf's own".into(),
        ],
        ..ImportInfo::default()
    };
    Ok(result(s, summary, info, v.get("start_time").and_then(Value::as_str).map(str::to_owned)))
}
