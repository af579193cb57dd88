//! The saved result file: versioned, self-describing, and readable by scripts written for vLLM's
//! `bench serve` (its flat keys are written beside ours where the metric is the same).

use crate::metrics::{MetricName, Summary};
use crate::spec::{DatasetStats, RunSpec};
use crate::sysinfo::SystemInfo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Version of the result file layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Which tool wrote a result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// Tool name.
    pub name: String,
    /// Tool version.
    pub version: String,
    /// Source commit, when built from a git checkout.
    #[serde(default)]
    pub commit: Option<String>,
}

/// What the benchmarking client itself consumed, to show it was not the bottleneck.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientUsage {
    /// User + system CPU seconds spent by the client during the measured phase.
    pub cpu_s: f64,
    /// Peak resident memory of the client process, in bytes.
    pub peak_rss_bytes: u64,
    /// True when the server ran inside the same process (`inferbench demo`), so the figures
    /// above include the server's work.
    #[serde(default)]
    pub includes_server: bool,
}

/// One saved serving-benchmark result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkResult {
    /// [`SCHEMA_VERSION`] at write time.
    pub schema_version: u32,
    /// The tool that wrote it.
    pub tool: ToolInfo,
    /// When the run started (RFC 3339, UTC).
    pub date: String,
    /// The run's full specification.
    pub spec: RunSpec,
    /// The host.
    pub system: SystemInfo,
    /// The metrics.
    pub summary: Summary,
    /// The client's own resource use.
    pub client: ClientUsage,
    /// Warm-up requests sent and excluded.
    pub warmup_excluded: u64,
    /// What loading the dataset found.
    #[serde(default)]
    pub dataset: DatasetStats,
    /// True when the run was interrupted (Ctrl-C) and the summary covers what finished.
    pub interrupted: bool,
}

impl BenchmarkResult {
    /// The JSON written to disk: our nested layout plus vLLM's flat keys at the top level.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("result serialises");
        if let Value::Object(obj) = &mut v {
            obj.extend(self.vllm_keys());
        }
        v
    }

    /// The keys vLLM's `bench serve --save-result` writes, with the same meaning.
    pub fn vllm_keys(&self) -> Map<String, Value> {
        let s = &self.summary;
        let mut m = Map::new();
        let rate = self.spec.request_rate.map_or(json!("inf"), |r| json!(r));
        for (k, v) in [
            ("backend", json!(self.spec.backend)),
            ("model_id", json!(self.spec.model)),
            ("tokenizer_id", json!(self.spec.tokenizer)),
            ("num_prompts", json!(self.spec.num_prompts)),
            ("request_rate", rate),
            ("burstiness", json!(self.spec.burstiness)),
            ("max_concurrency", json!(self.spec.max_concurrency)),
            ("duration", json!(s.duration_s)),
            ("completed", json!(s.completed)),
            ("failed", json!(s.failed)),
            ("total_input_tokens", json!(s.total_input_tokens)),
            ("total_output_tokens", json!(s.total_output_tokens)),
            ("request_throughput", json!(s.request_throughput)),
            ("request_goodput", json!(s.request_goodput)),
            ("output_throughput", json!(s.output_throughput)),
            ("total_token_throughput", json!(s.total_token_throughput)),
            ("max_concurrent_requests", json!(s.max_concurrent_requests)),
        ] {
            m.insert(k.into(), v);
        }
        for metric in [MetricName::Ttft, MetricName::Tpot, MetricName::Itl, MetricName::E2el] {
            let d = s.metric(metric);
            let k = metric.key();
            m.insert(format!("mean_{k}_ms"), json!(d.mean));
            m.insert(format!("median_{k}_ms"), json!(d.median));
            m.insert(format!("std_{k}_ms"), json!(d.std));
            for &(p, v) in &d.percentiles {
                m.insert(format!("p{}_{k}_ms", fmt_pct(p)), json!(v));
            }
        }
        m
    }
}

/// Formats a percentile the way vLLM names keys: `99`, `99.9`.
pub fn fmt_pct(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_names_match_vllm() {
        assert_eq!(fmt_pct(99.0), "99");
        assert_eq!(fmt_pct(99.9), "99.9");
    }
}
