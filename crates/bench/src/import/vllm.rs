//! `vllm bench serve --save-result`: the summary keys always; with `--save-detailed` the
//! per-request arrays too (`start_times`, `ttfts`, `itls`, `latencies`, `input_lens`,
//! `output_lens`, `errors`), from which our accumulator recomputes everything. vLLM's TTFT, TPOT
//! ((E2EL − TTFT) / (output − 1)), ITL (gaps between chunks) and E2EL are defined as ours.

use super::*;
use inferbench_core::result::ImportInfo;

fn arr<'a>(v: &'a Value, k: &str) -> Option<&'a Vec<Value>> {
    v.get(k).and_then(Value::as_array)
}

/// vLLM's `p99_ttft_ms` etc. as a distribution of ours.
fn summary_dist(v: &Value, name: &str, count: u64) -> Option<Distribution> {
    let mean = f(v, &format!("mean_{name}_ms"))?;
    let median = f(v, &format!("median_{name}_ms"))?;
    let mut pct: Vec<(f64, f64)> = v
        .as_object()?
        .iter()
        .filter_map(|(k, x)| {
            let p = k.strip_prefix('p')?.strip_suffix(&format!("_{name}_ms"))?.parse::<f64>().ok()?;
            Some((p, x.as_f64()?))
        })
        .collect();
    pct.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(dist(count, mean, median, f(v, &format!("std_{name}_ms")), None, None, pct))
}

pub(super) fn import(v: &Value, _path: &Path) -> Result<BenchmarkResult, String> {
    let completed = v.get("completed").and_then(Value::as_u64).ok_or("no `completed`")?;
    let duration = f(v, "duration").ok_or("no `duration`")?;
    let mut s = spec(
        "unknown",
        v.get("model_id").and_then(Value::as_str).unwrap_or_default(),
        v.get("backend").and_then(Value::as_str).unwrap_or("openai"),
    );
    s.tokenizer = v.get("tokenizer_id").and_then(Value::as_str).unwrap_or("unknown").into();
    s.num_prompts = v.get("num_prompts").and_then(Value::as_u64);
    s.request_rate = f(v, "request_rate"); // "inf" is a string: None, as ours
    s.burstiness = f(v, "burstiness").unwrap_or(1.0);
    s.max_concurrency = v.get("max_concurrency").and_then(Value::as_u64);
    let window = Window {
        duration_s: Some(duration),
        request_throughput: f(v, "request_throughput"),
        output_throughput: f(v, "output_throughput"),
        total_token_throughput: f(v, "total_token_throughput"),
    };
    let mut info = ImportInfo { version: None, ..ImportInfo::default() };
    info.notes.push("duration and throughputs are vLLM's own (its benchmark window)".into());
    let detailed = ["start_times", "ttfts", "itls", "latencies", "input_lens", "output_lens"].iter().all(|k| arr(v, k).is_some());
    let summary = if detailed {
        let n = arr(v, "ttfts").map_or(0, Vec::len);
        let num = |k: &str, i: usize| arr(v, k).and_then(|a| a.get(i)).and_then(Value::as_f64).unwrap_or(0.0);
        let timed: Vec<Timed> = (0..n)
            .map(|i| {
                let error = arr(v, "errors").and_then(|a| a.get(i)).and_then(Value::as_str).filter(|e| !e.is_empty()).map(str::to_owned);
                let gaps: Vec<f64> = arr(v, "itls")
                    .and_then(|a| a.get(i))
                    .and_then(Value::as_array)
                    .map_or_else(Vec::new, |g| g.iter().filter_map(Value::as_f64).collect());
                Timed {
                    start_s: num("start_times", i),
                    ttft_s: error.is_none().then(|| num("ttfts", i)),
                    gaps_s: gaps,
                    e2el_s: num("latencies", i),
                    input_tokens: num("input_lens", i) as u64,
                    output_tokens: num("output_lens", i) as u64,
                    error,
                }
            })
            .collect();
        info.per_request = true;
        info.notes.push(format!("{n} requests recomputed from vLLM's per-request arrays with our definitions"));
        let pct = percentiles_of(v);
        summarise(&records(&timed), &pct, window)
    } else {
        info.notes.push("vLLM's summary figures (no --save-detailed arrays): distributions have no min, max or samples".into());
        let mut sum = Summary {
            completed,
            failed: v.get("failed").and_then(Value::as_u64).unwrap_or(0),
            total_input_tokens: v.get("total_input_tokens").and_then(Value::as_u64).unwrap_or(0),
            total_output_tokens: v.get("total_output_tokens").and_then(Value::as_u64).unwrap_or(0),
            max_output_tokens_per_s: f(v, "max_output_tokens_per_s").unwrap_or(0.0),
            max_concurrent_requests: v.get("max_concurrent_requests").and_then(Value::as_u64).unwrap_or(0),
            request_goodput: f(v, "request_goodput"),
            ..Summary::default()
        };
        let total = sum.completed + sum.failed;
        sum.success_rate = if total == 0 { 0.0 } else { sum.completed as f64 / total as f64 };
        for (m, name) in [(MetricName::Ttft, "ttft"), (MetricName::Tpot, "tpot"), (MetricName::Itl, "itl"), (MetricName::E2el, "e2el")] {
            if let Some(d) = summary_dist(v, name, completed) {
                sum.metrics.insert(m, d);
            }
        }
        apply_window(&mut sum, window);
        sum
    };
    info.not_measured = not_measured(&summary);
    let started = v.get("date").and_then(Value::as_str).map(str::to_owned);
    Ok(result(s, summary, info, started))
}

/// The percentiles vLLM reported (`--metric-percentiles`), else ours.
fn percentiles_of(v: &Value) -> Vec<f64> {
    let mut p: Vec<f64> = v
        .as_object()
        .map(|o| o.keys().filter_map(|k| k.strip_prefix('p')?.strip_suffix("_ttft_ms")?.parse::<f64>().ok()).collect())
        .unwrap_or_default();
    if p.is_empty() {
        p = vec![50.0, 90.0, 95.0, 99.0];
    }
    p.sort_by(f64::total_cmp);
    p
}
