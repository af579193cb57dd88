//! The saved result file: versioned, self-describing, and readable by scripts written for vLLM's
//! `bench serve` (its flat keys are written beside ours where the metric is the same).

use crate::spec::{DatasetStats, RunSpec};
use crate::summary::{MetricName, Summary};
use crate::sysinfo::SystemInfo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Version of the result file layout; bumped on any incompatible change. Version 2: every kind
/// shares one [`Header`] (engine results gained `tool`, runs gained `kind` and `labels`).
pub const SCHEMA_VERSION: u32 = 2;

/// What a saved file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultKind {
    /// One serving benchmark (`inferbench run`, or one step of a sweep).
    #[default]
    Run,
    /// A series of runs over load (`inferbench sweep`).
    Sweep,
    /// An in-process engine benchmark (`inferbench engine`).
    Engine,
    /// Baseline against candidate (`inferbench compare`).
    Compare,
    /// Capacity and cost (`inferbench plan`).
    Plan,
}

impl ResultKind {
    /// Every kind, for schemas and messages.
    pub const ALL: [ResultKind; 5] = [ResultKind::Run, ResultKind::Sweep, ResultKind::Engine, ResultKind::Compare, ResultKind::Plan];

    /// The name used in files and file names (`run`, `sweep`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ResultKind::Run => "run",
            ResultKind::Sweep => "sweep",
            ResultKind::Engine => "engine",
            ResultKind::Compare => "compare",
            ResultKind::Plan => "plan",
        }
    }

    /// "a serving run", "a sweep", ... for messages.
    pub fn described(self) -> &'static str {
        match self {
            ResultKind::Run => "a serving run",
            ResultKind::Sweep => "a sweep",
            ResultKind::Engine => "an engine benchmark",
            ResultKind::Compare => "a comparison",
            ResultKind::Plan => "a capacity plan",
        }
    }
}

/// The fields every saved result starts with, whatever its kind: enough to know what wrote it,
/// where, when, and under which labels. Flattened into each result, so they are top-level keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Header {
    /// [`SCHEMA_VERSION`] at write time.
    pub schema_version: u32,
    /// What the file holds (absent in version-1 run files, which were always runs).
    #[serde(default)]
    pub kind: ResultKind,
    /// The tool that wrote it.
    pub tool: ToolInfo,
    /// This run's id, also on the first line of its records file, so a summary is never paired
    /// with another run's records.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    /// When the work started, in vLLM's format (`20261202-030100`, `%Y%m%d-%H%M%S`, UTC), which
    /// the tools that read vLLM results require (files written before inferbench 0.1 of
    /// 2026-12-03 hold RFC 3339 here; `started` now does).
    pub date: String,
    /// When the work started (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub started: String,
    /// When it ended (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// The host, unless the user left it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemInfo>,
    /// `--label k=v` pairs, for finding and grouping results later.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Header {
    /// A header for work of `kind` starting now, with this host's facts.
    pub fn now(kind: ResultKind, tool: ToolInfo) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            kind,
            tool,
            run_id: crate::time::new_run_id(),
            date: String::new(),
            started: String::new(),
            ended: None,
            system: Some(SystemInfo::collect()),
            labels: BTreeMap::new(),
        }
        .started_now()
    }

    /// Stamps the start as now, in both formats.
    pub fn started_now(mut self) -> Self {
        self.started = crate::time::rfc3339_now();
        self.date = crate::time::compact(&self.started);
        self
    }

    /// Marks the work as finished now.
    pub fn end(&mut self) {
        self.ended = Some(crate::time::rfc3339_now());
    }
}

/// Which tool wrote a result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BenchmarkResult {
    /// Version, kind, tool, times, host, labels.
    #[serde(flatten)]
    pub header: Header,
    /// The run's full specification.
    pub spec: RunSpec,
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
    /// What the monitors saw: server metrics, GPU, host, steady state, alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitors: Option<crate::monitor::MonitorReport>,
    /// Present when this run is one shard of a global schedule (`--shard I/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::ShardInfo>,
    /// Present when this result was merged from shards (`inferbench merge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<crate::shard::MergeInfo>,
    /// vLLM's per-request arrays, at the top level as vLLM writes them.
    #[serde(flatten, default)]
    pub per_request: crate::vllm::PerRequest,
    /// Where an imported result came from (`inferbench import`): the tool, its files, and what
    /// it did not measure (left empty, never invented). `None` for our own runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<ImportInfo>,
}

/// The provenance of an imported result.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportInfo {
    /// The tool that measured it (`vllm`, `guidellm`, `inference-perf`, `aiperf`).
    pub tool: String,
    /// Its version, when the files say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The files read.
    pub files: Vec<String>,
    /// True when the figures were recomputed from per-request data with our definitions; false
    /// when they are the tool's own summary figures.
    pub per_request: bool,
    /// Our figures the tool did not measure (or measures differently), left empty.
    pub not_measured: Vec<String>,
    /// How its figures were mapped to ours.
    pub notes: Vec<String>,
}

impl BenchmarkResult {
    /// The JSON written to disk: our nested layout plus vLLM's flat keys at the top level.
    pub fn to_json(&self) -> Value {
        // Every field is a plain number, string, map or list: serialising cannot fail.
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
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
            ("max_output_tokens_per_s", json!(s.max_output_tokens_per_s)),
            ("endpoint_type", json!(self.spec.backend)),
            ("label", json!(self.header.labels.get("label"))),
            // Real-time factor of audio transcription: 0 for text, as vLLM writes it.
            ("rtfx", json!(0.0)),
        ] {
            m.insert(k.into(), v);
        }
        for metric in [MetricName::Ttft, MetricName::Tpot, MetricName::Itl, MetricName::E2el] {
            let d = s.metric(metric);
            let k = metric.key();
            // No samples, no value: null, not a 0 that reads as a measurement.
            let v = |x: f64| if d.count == 0 { Value::Null } else { json!(x) };
            m.insert(format!("mean_{k}_ms"), v(d.mean));
            m.insert(format!("median_{k}_ms"), v(d.median));
            m.insert(format!("std_{k}_ms"), v(d.std));
            for &(p, x) in &d.percentiles {
                m.insert(format!("p{}_{k}_ms", fmt_pct(p)), v(x));
            }
        }
        m
    }
}

/// Any saved result, typed: what one reader returns for any file inferbench writes.
#[derive(Debug, Clone, PartialEq)]
pub enum SavedResult {
    /// `inferbench run` (or one step of a sweep).
    Run(Box<BenchmarkResult>),
    /// `inferbench sweep`.
    Sweep(Box<crate::sweep::SweepResult>),
    /// `inferbench engine`.
    Engine(Box<crate::engine_bench::EngineResult>),
    /// `inferbench compare --output`.
    Compare(Box<crate::comparison::CompareResult>),
    /// `inferbench plan --output`.
    Plan(Box<crate::capacity::CapacityPlan>),
}

/// Why a JSON value is not a result this version reads.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    /// No `schema_version` key.
    #[error("not an inferbench result (no schema_version)")]
    NotAResult,
    /// Another layout version.
    #[error("result schema version {0}, this inferbench reads version {SCHEMA_VERSION}")]
    Version(u64),
    /// A `kind` this version does not know.
    #[error("unknown result kind '{0}'")]
    UnknownKind(String),
    /// The layout does not match the kind.
    #[error("not a valid {kind} result: {source}")]
    Invalid {
        /// The kind the file claims.
        kind: &'static str,
        /// What did not match.
        source: serde_json::Error,
    },
}

impl SavedResult {
    /// Classifies and parses a result's JSON.
    pub fn from_json(v: Value) -> Result<Self, ResultError> {
        match v.get("schema_version").and_then(Value::as_u64) {
            Some(x) if x == u64::from(SCHEMA_VERSION) => {}
            Some(x) => return Err(ResultError::Version(x)),
            None => return Err(ResultError::NotAResult),
        }
        let kind = match v.get("kind").and_then(Value::as_str) {
            None => ResultKind::Run,
            Some(k) => ResultKind::ALL.into_iter().find(|x| x.name() == k).ok_or_else(|| ResultError::UnknownKind(k.to_owned()))?,
        };
        let bad = |source| ResultError::Invalid { kind: kind.name(), source };
        Ok(match kind {
            ResultKind::Run => SavedResult::Run(Box::new(serde_json::from_value(v).map_err(bad)?)),
            ResultKind::Sweep => SavedResult::Sweep(Box::new(serde_json::from_value(v).map_err(bad)?)),
            ResultKind::Engine => SavedResult::Engine(Box::new(serde_json::from_value(v).map_err(bad)?)),
            ResultKind::Compare => SavedResult::Compare(Box::new(serde_json::from_value(v).map_err(bad)?)),
            ResultKind::Plan => SavedResult::Plan(Box::new(serde_json::from_value(v).map_err(bad)?)),
        })
    }

    /// What the file holds.
    pub fn kind(&self) -> ResultKind {
        self.header().kind
    }

    /// The shared header.
    pub fn header(&self) -> &Header {
        match self {
            SavedResult::Run(r) => &r.header,
            SavedResult::Sweep(r) => &r.header,
            SavedResult::Engine(r) => &r.header,
            SavedResult::Compare(r) => &r.header,
            SavedResult::Plan(r) => &r.header,
        }
    }

    /// The JSON written to disk for this result.
    pub fn to_json(&self) -> Value {
        let v = match self {
            SavedResult::Run(r) => return r.to_json(),
            SavedResult::Sweep(r) => serde_json::to_value(r),
            SavedResult::Engine(r) => serde_json::to_value(r),
            SavedResult::Compare(r) => serde_json::to_value(r),
            SavedResult::Plan(r) => serde_json::to_value(r),
        };
        v.unwrap_or(Value::Null)
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
