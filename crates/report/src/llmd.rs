//! llm-d's standard Benchmark Report, version 0.2 (`--benchmark-report FILE`): the format
//! llm-d-benchmark's analysis tools and dashboards read
//! (`llmdbenchmark/analysis/benchmark_report/br_v0_2_json_schema.json`; a copy is under
//! `crates/cli/tests/fixtures/llm-d/`, and the test validates every report against it).
//!
//! What we measure goes in `results.request_performance.aggregate`, the workload in
//! `scenario.load` (with our spec as its native config). The serving stack is not described:
//! a client does not know it, and the schema makes it optional.

use inferbench_core::result::BenchmarkResult;
use inferbench_core::{Distribution, MetricName};
use serde_json::{json, Map, Value};

/// The report of one run, as JSON.
pub fn benchmark_report(r: &BenchmarkResult) -> Value {
    let s = &r.summary;
    let spec = &r.spec;
    let d = &spec.dataset;
    let spec_json = serde_json::to_value(spec).unwrap_or(Value::Null);
    let mut time = Map::new();
    if !r.header.started.is_empty() {
        time.insert("start".into(), json!(r.header.started));
    }
    if let Some(end) = &r.header.ended {
        time.insert("end".into(), json!(end));
    }
    time.insert("duration".into(), json!(format!("PT{}S", s.duration_s)));
    let keywords: Vec<String> = r.header.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let lengths = |value: u32, fixed: bool| {
        if fixed || d.range_ratio == 0.0 {
            json!({"distribution": "fixed", "value": value})
        } else {
            let lo = (f64::from(value) * (1.0 - d.range_ratio)).floor().max(0.0) as u64;
            let hi = ((f64::from(value) * (1.0 + d.range_ratio)).ceil() as u64).max(1);
            json!({"distribution": "uniform", "value": value, "min": lo, "max": hi})
        }
    };
    let random = d.name == "random" || d.name == "prefix";
    let (input_seq_len, output_seq_len) = if random {
        (lengths(d.input_len, false), lengths(d.fixed_output_len.unwrap_or(d.output_len), d.fixed_output_len.is_some()))
    } else {
        // A dataset's lengths follow its texts: say so, with the measured means.
        let mean = |tokens: u64| if s.completed == 0 { 0.0 } else { tokens as f64 / s.completed as f64 };
        (
            json!({"distribution": "other", "value": mean(s.total_input_tokens)}),
            json!({"distribution": "other", "value": mean(s.total_output_tokens)}),
        )
    };
    let mut standardized = json!({
        "tool": "inferbench",
        "tool_version": r.header.tool.version,
        "source": if random { "random" } else { "sampled" },
        "input_seq_len": input_seq_len,
        "output_seq_len": output_seq_len,
    });
    if let Some(rate) = spec.request_rate {
        standardized["rate_qps"] = json!(rate);
    }
    if let Some(c) = spec.max_concurrency {
        standardized["concurrency"] = json!(c);
    }
    let mean_of = |total: u64| if s.completed == 0 { 0.0 } else { total as f64 / s.completed as f64 };
    let rate = |units: &str, v: f64| json!({"units": units, "mean": v});
    let mut latency = Map::new();
    for (key, metric, units) in [
        ("time_to_first_token", MetricName::Ttft, "s"),
        ("time_per_output_token", MetricName::Tpot, "s/token"),
        ("inter_token_latency", MetricName::Itl, "s/token"),
        ("request_latency", MetricName::E2el, "s"),
    ] {
        let dist = s.metric(metric);
        if dist.count > 0 {
            latency.insert(key.into(), statistics(dist, units, 1e-3));
        }
    }
    json!({
        "version": "0.2",
        "run": {
            "uid": r.header.run_id,
            "time": time,
            "description": format!("inferbench run of {} at {} ({})", spec.model, spec.base_url, spec.backend),
            "keywords": keywords,
        },
        "scenario": {
            "load": {
                "metadata": {
                    "schema_version": "0.0.1",
                    "cfg_id": fnv_hex(&inferbench_core::spec::workload_json(spec).to_string()),
                    "description": format!("{} prompts, {}", d.name, load_words(r)),
                },
                "standardized": standardized,
                "native": {"config": spec_json},
            }
        },
        "results": {
            "request_performance": {
                "aggregate": {
                    "requests": {
                        "total": s.completed + s.failed,
                        "failures": s.failed,
                        "input_length": {"units": "count", "mean": mean_of(s.total_input_tokens)},
                        "output_length": {"units": "count", "mean": mean_of(s.total_output_tokens)},
                    },
                    "latency": latency,
                    "throughput": {
                        "input_token_rate": rate("tokens/s", if s.duration_s > 0.0 { s.total_input_tokens as f64 / s.duration_s } else { 0.0 }),
                        "output_token_rate": rate("tokens/s", s.output_throughput),
                        "total_token_rate": rate("tokens/s", s.total_token_throughput),
                        "request_rate": rate("queries/s", s.request_throughput),
                    },
                }
            }
        }
    })
}

/// The percentiles the report's `Statistics` has keys for.
const REPORT_PERCENTILES: [(f64, &str); 11] = [
    (0.1, "p0p1"),
    (1.0, "p1"),
    (5.0, "p5"),
    (10.0, "p10"),
    (25.0, "p25"),
    (50.0, "p50"),
    (75.0, "p75"),
    (90.0, "p90"),
    (95.0, "p95"),
    (99.0, "p99"),
    (99.9, "p99p9"),
];

/// A distribution in the report's `Statistics` shape, scaled (ms to s by 1e-3); percentiles
/// the report has no key for are left out.
fn statistics(d: &Distribution, units: &str, scale: f64) -> Value {
    let mut m = Map::new();
    m.insert("units".into(), json!(units));
    m.insert("mean".into(), json!(d.mean * scale));
    m.insert("stddev".into(), json!(d.std * scale));
    m.insert("min".into(), json!(d.min * scale));
    m.insert("max".into(), json!(d.max * scale));
    for &(p, v) in &d.percentiles {
        let Some(&(_, key)) = REPORT_PERCENTILES.iter().find(|(q, _)| *q == p) else { continue };
        m.insert(key.into(), json!(v * scale));
    }
    m.entry("p50").or_insert_with(|| json!(d.median * scale));
    Value::Object(m)
}

fn load_words(r: &BenchmarkResult) -> String {
    match (r.spec.request_rate, r.spec.max_concurrency) {
        (Some(q), Some(c)) => format!("{q} req/s, at most {c} in flight"),
        (Some(q), None) => format!("{q} req/s"),
        (None, Some(c)) => format!("{c} in flight"),
        (None, None) => "all at once".into(),
    }
}

/// FNV-1a, 64 bits, in hex: a stable id for a workload (the report's `cfg_id`).
fn fnv_hex(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_the_published_function() {
        // FNV-1a 64 test vectors.
        assert_eq!(fnv_hex(""), "cbf29ce484222325");
        assert_eq!(fnv_hex("a"), "af63dc4c8601ec8c");
    }

    #[test]
    fn percentiles_map_to_the_report_keys() {
        let d = Distribution {
            count: 3,
            mean: 10.0,
            median: 9.0,
            std: 1.0,
            min: 8.0,
            max: 13.0,
            percentiles: vec![(50.0, 9.0), (99.9, 12.9), (42.0, 1.0)],
            exact: true,
        };
        let v = statistics(&d, "s", 1e-3);
        assert_eq!(v["units"], "s");
        assert_eq!(v["p99p9"], json!(12.9 * 1e-3));
        assert_eq!(v["p50"], json!(9.0 * 1e-3));
        assert!(v.get("p42").is_none());
    }
}
