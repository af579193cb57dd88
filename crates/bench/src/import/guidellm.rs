//! guidellm's `benchmarks.json`: every benchmark's request list (successful, errored,
//! incomplete) with each request's timings, from which our accumulator recomputes the figures.
//! TTFT (first token − request start) and E2EL (request end − start) are defined as ours.
//! guidellm keeps only the first and last token times, so per-chunk ITL is not measured. Its
//! `time_per_output_token_ms` includes the TTFT, and its `inter_token_latency_ms` runs to the last
//! token rather than the response's end: neither is our TPOT, which is recomputed as
//! (E2EL − TTFT) / (output − 1). One benchmark is imported (`--benchmark N` picks another).

use super::*;
use inferbench_core::result::ImportInfo;

fn timed(r: &Value, error: Option<String>) -> Option<Timed> {
    let t = r.pointer("/info/timings")?;
    let start = t.get("request_start")?.as_f64()?;
    let end = t.get("request_end").and_then(Value::as_f64).unwrap_or(start);
    let first = t.get("first_token_iteration").and_then(Value::as_f64);
    Some(Timed {
        start_s: start,
        ttft_s: first.filter(|_| error.is_none()).map(|f| f - start),
        gaps_s: Vec::new(),
        e2el_s: end - start,
        input_tokens: r.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        output_tokens: r.get("output_tokens").and_then(Value::as_u64).unwrap_or(0),
        error,
    })
}

/// Imports benchmark `n` of the file.
pub(super) fn import_nth(v: &Value, n: usize) -> Result<BenchmarkResult, String> {
    let benches = v.get("benchmarks").and_then(Value::as_array).ok_or("no `benchmarks`")?;
    let b = benches.get(n).ok_or(format!("it has {} benchmarks, not {}", benches.len(), n + 1))?;
    let reqs = b.get("requests").ok_or("no `requests` in the benchmark")?;
    let mut timed_all = Vec::new();
    for (kind, failed) in [("successful", false), ("errored", true), ("incomplete", true)] {
        for r in reqs.get(kind).and_then(Value::as_array).into_iter().flatten() {
            let error = failed.then(|| r.pointer("/info/error").and_then(Value::as_str).unwrap_or(kind).to_owned());
            timed_all.push(timed(r, error).ok_or(format!("a {kind} request without timings"))?);
        }
    }
    let be = v.pointer("/config/spec/backend").cloned().unwrap_or_default();
    let format = be.get("request_format").and_then(Value::as_str).unwrap_or("/v1/completions");
    let mut s = spec(
        be.get("target").and_then(Value::as_str).unwrap_or("unknown"),
        be.get("model").and_then(Value::as_str).unwrap_or_default(),
        if format.contains("chat") { "openai-chat" } else { "openai" },
    );
    s.stream = be.get("stream").and_then(Value::as_bool).unwrap_or(true);
    s.tokenizer = v.pointer("/config/spec/tokenizer/model").and_then(Value::as_str).unwrap_or("unknown").into();
    let strategy = b.pointer("/config/strategy").cloned().unwrap_or_default();
    if strategy.get("type_").and_then(Value::as_str) == Some("concurrent") {
        s.max_concurrency = strategy.get("streams").and_then(Value::as_u64);
    }
    s.request_rate = strategy.get("rate").and_then(Value::as_f64);
    s.num_prompts = b.pointer("/config/constraints/max_requests/args/count").and_then(Value::as_u64);
    if let Some(d) = v.pointer("/config/spec/data/0").filter(|d| d.get("kind").and_then(Value::as_str) == Some("synthetic_text")) {
        let fixed = d.get("prompt_tokens_stdev").is_none_or(Value::is_null) && d.get("output_tokens_stdev").is_none_or(Value::is_null);
        if let (Some(i), Some(o), true) =
            (d.get("prompt_tokens").and_then(Value::as_u64), d.get("output_tokens").and_then(Value::as_u64), fixed)
        {
            s.dataset = DatasetSpec::random(i as u32, o as u32);
        }
    }
    let duration = b.get("duration").and_then(Value::as_f64);
    let summary = summarise(&records(&timed_all), &[50.0, 90.0, 95.0, 99.0], Window { duration_s: duration, ..Window::default() });
    let info = ImportInfo {
        version: v.pointer("/metadata/guidellm_version").and_then(Value::as_str).map(str::to_owned),
        per_request: true,
        not_measured: not_measured(&summary),
        notes: vec![
            format!("benchmark {} of {}: {} requests recomputed from its request list with our definitions", n + 1, benches.len(), timed_all.len()),
            "guidellm keeps the first and last token times only: no per-chunk ITL".into(),
            "percentiles are ours (interpolated); guidellm's own are sample values, so its medians can differ".into(),
            "TPOT is ours, (E2EL - TTFT) / (output - 1); guidellm's time_per_output_token includes the TTFT and its inter_token_latency ends at the last token".into(),
            "the duration is guidellm's; throughputs are counts over it".into(),
        ],
        ..ImportInfo::default()
    };
    let started = b
        .get("start_time")
        .and_then(Value::as_f64)
        .map(|t| humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t.max(0.0))).to_string());
    Ok(result(s, summary, info, started))
}
