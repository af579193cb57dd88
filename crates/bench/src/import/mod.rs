//! Results of other benchmarking tools as ours (`inferbench import --from TOOL FILE...`), so
//! `compare`, `report`, `plan`, the store and the explorer treat a `vllm bench serve`, guidellm,
//! inference-perf or AIPerf run like one of our own.
//!
//! Where the tool kept per-request data (vLLM's `--save-detailed` arrays, AIPerf's
//! `profile_export.jsonl`, guidellm's request list), each request becomes a
//! [`RequestRecord`] and our own accumulator computes every figure with our definitions. Where it
//! kept only a summary (vLLM without `--save-detailed`, inference-perf), its figures are mapped
//! to ours one by one, and only where the definitions agree. Either way the duration and the
//! throughputs are the tool's own (its window, not ours), and what the tool did not measure is
//! listed in `imported.not_measured` and left empty, never invented.

mod aiperf;
mod guidellm;
mod inference_perf;
mod vllm;

use crate::error::BenchError;
use inferbench_core::result::{Header, ImportInfo, ResultKind};
use inferbench_core::spec::DatasetSpec;
use inferbench_core::summary::{Accumulator, MetricName, Summary, SummaryOptions};
use inferbench_core::{BenchmarkResult, Distribution, FailureKind, Outcome, RequestRecord, RunSpec, TokenSource};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A tool whose results can be imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `vllm bench serve --save-result` (with or without `--save-detailed`).
    Vllm,
    /// guidellm's `benchmarks.json`.
    Guidellm,
    /// inference-perf's `summary_lifecycle_metrics.json` (with its `config.yaml` beside it).
    InferencePerf,
    /// AIPerf's `profile_export_aiperf.json` (with `profile_export.jsonl` beside it).
    Aiperf,
}

impl std::str::FromStr for Tool {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vllm" => Ok(Tool::Vllm),
            "guidellm" => Ok(Tool::Guidellm),
            "inference-perf" => Ok(Tool::InferencePerf),
            "aiperf" => Ok(Tool::Aiperf),
            _ => Err(format!("unknown tool '{s}': vllm, guidellm, inference-perf or aiperf")),
        }
    }
}

impl Tool {
    /// Its name, as `--from` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Vllm => "vllm",
            Tool::Guidellm => "guidellm",
            Tool::InferencePerf => "inference-perf",
            Tool::Aiperf => "aiperf",
        }
    }
}

/// Imports one result file of `tool` (the files it needs beside it are found there); `benchmark`
/// picks one of a guidellm file's benchmarks (0 for the others).
pub fn import(tool: Tool, path: &Path, benchmark: usize) -> Result<BenchmarkResult, BenchError> {
    if benchmark > 0 && tool != Tool::Guidellm {
        return Err(BenchError::invalid("--benchmark picks one of a guidellm file's benchmarks; other tools write one per file"));
    }
    let v = read_json(path)?;
    let bad = |why: String| BenchError::invalid(format!("{}: not a {} result: {why}", path.display(), tool.name()));
    let mut r = match tool {
        Tool::Vllm => vllm::import(&v, path).map_err(bad)?,
        Tool::Guidellm => guidellm::import_nth(&v, benchmark).map_err(bad)?,
        Tool::InferencePerf => inference_perf::import(&v, path).map_err(bad)?,
        Tool::Aiperf => aiperf::import(&v, path).map_err(bad)?,
    };
    if let Some(i) = &mut r.imported {
        i.tool = tool.name().into();
        i.files.insert(0, path.display().to_string());
    }
    Ok(r)
}

fn read_json(path: &Path) -> Result<Value, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::invalid(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| BenchError::invalid(format!("{}: not JSON: {e}", path.display())))
}

/// A file next to `path`.
fn beside(path: &Path, name: &str) -> PathBuf {
    path.parent().unwrap_or(Path::new(".")).join(name)
}

/// One request as a tool timed it, in seconds from any common origin.
#[derive(Debug, Clone, Default)]
struct Timed {
    start_s: f64,
    ttft_s: Option<f64>,
    /// Gaps between chunks after the first, when the tool kept them.
    gaps_s: Vec<f64>,
    e2el_s: f64,
    input_tokens: u64,
    output_tokens: u64,
    error: Option<String>,
}

fn ns(s: f64) -> u64 {
    (s.max(0.0) * 1e9).round() as u64
}

/// Our records of a tool's requests: sent at its start (the schedule is not known, so scheduled =
/// sent), times from the earliest start.
fn records(timed: &[Timed]) -> Vec<RequestRecord> {
    let t0 = timed.iter().map(|t| t.start_s).fold(f64::INFINITY, f64::min);
    timed
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let sent = ns(t.start_s - t0);
            let outcome = match &t.error {
                None => Outcome::Success,
                Some(m) => Outcome::Failed { failure: FailureKind::Stream, message: m.clone() },
            };
            RequestRecord {
                id: i as u64,
                scheduled_ns: sent,
                gate_ns: sent,
                sent_ns: sent,
                connect_ns: 0,
                reused: None,
                first_token_ns: t.ttft_s.map(|f| sent + ns(f)),
                end_ns: sent + ns(t.e2el_s),
                itl_ns: t.gaps_s.iter().map(|g| ns(*g)).collect(),
                input_tokens: t.input_tokens,
                output_tokens: t.output_tokens,
                token_source: if t.error.is_none() { TokenSource::Server } else { TokenSource::None },
                client_count: None,
                requested_output_tokens: None,
                cached_tokens: None,
                outcome,
                category: None,
                turn: None,
                generated_text: None,
            }
        })
        .collect()
}

/// The tool's own window and rates, which replace the ones our accumulator derives.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    duration_s: Option<f64>,
    request_throughput: Option<f64>,
    output_throughput: Option<f64>,
    total_token_throughput: Option<f64>,
}

/// Our summary of the records, with the tool's window and rates.
fn summarise(recs: &[RequestRecord], percentiles: &[f64], w: Window) -> Summary {
    let mut acc = Accumulator::new(&SummaryOptions { percentiles: percentiles.to_vec(), ..SummaryOptions::default() });
    for r in recs {
        acc.add(r);
    }
    let mut s = acc.finish();
    apply_window(&mut s, w);
    s
}

fn apply_window(s: &mut Summary, w: Window) {
    if let Some(d) = w.duration_s {
        s.duration_s = d;
    }
    let per_s = |n: u64| if s.duration_s > 0.0 { n as f64 / s.duration_s } else { 0.0 };
    s.request_throughput = w.request_throughput.unwrap_or_else(|| per_s(s.completed));
    s.output_throughput = w.output_throughput.unwrap_or_else(|| per_s(s.total_output_tokens));
    s.total_token_throughput = w.total_token_throughput.unwrap_or_else(|| per_s(s.total_input_tokens + s.total_output_tokens));
}

/// A distribution from a tool's summary figures (no samples).
fn dist(count: u64, mean: f64, median: f64, std: Option<f64>, min: Option<f64>, max: Option<f64>, pct: Vec<(f64, f64)>) -> Distribution {
    Distribution {
        count,
        mean,
        median,
        std: std.unwrap_or(f64::NAN),
        min: min.unwrap_or(f64::NAN),
        max: max.unwrap_or(f64::NAN),
        percentiles: pct,
        exact: true,
    }
}

/// The result around an imported summary.
fn result(spec: RunSpec, summary: Summary, info: ImportInfo, started: Option<String>) -> BenchmarkResult {
    let mut header = Header::now(ResultKind::Run, crate::tool_info());
    header.system = None;
    if let Some(s) = started {
        header.started = s;
    }
    header.labels.insert("imported_from".into(), info.tool.clone());
    BenchmarkResult {
        header,
        spec,
        summary,
        client: Default::default(),
        warmup_excluded: 0,
        dataset: Default::default(),
        interrupted: false,
        monitors: None,
        shard: None,
        merged: None,
        per_request: Default::default(),
        imported: Some(info),
    }
}

/// A spec for an imported run: what the tool's files say of the workload; the rest at our
/// defaults' neutral values (no invented lengths: a dataset the files do not describe is
/// `unknown`).
fn spec(base_url: &str, model: &str, backend: &str) -> RunSpec {
    let mut s = RunSpec::new(base_url);
    s.model = model.into();
    s.backend = backend.into();
    s.tokenizer = "unknown".into();
    s.dataset = DatasetSpec { name: "unknown".into(), ..DatasetSpec::default() };
    s.num_prompts = None;
    s.percentiles = vec![50.0, 90.0, 95.0, 99.0];
    s
}

/// Percentile keys of the tools: `p99`, `p99.9`, `p0.1`, `p001` (guidellm's 0.1).
fn percentile_key(k: &str) -> Option<f64> {
    let p = k.strip_prefix('p')?;
    if p.len() == 3 && p.starts_with('0') && !p.contains('.') {
        // guidellm: p001 = 0.1, p01 = 1 is two digits; p999 = 99.9.
        return p.parse::<f64>().ok().map(|x| x / 10.0);
    }
    if p == "999" {
        return Some(99.9);
    }
    p.parse().ok()
}

fn f(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// The metrics every importer fills, for `not_measured`.
const OURS: [MetricName; 4] = [MetricName::Ttft, MetricName::Tpot, MetricName::Itl, MetricName::E2el];

fn not_measured(s: &Summary) -> Vec<String> {
    let mut out: Vec<String> = OURS.iter().filter(|m| s.metric(**m).count == 0).map(|m| m.key().to_owned()).collect();
    out.extend(["ttft_sched", "e2el_sched", "queue", "lag", "connect"].map(String::from));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_keys_of_every_tool() {
        for (k, p) in
            [("p99", 99.0), ("p50", 50.0), ("p0.1", 0.1), ("p99.9", 99.9), ("p001", 0.1), ("p999", 99.9), ("p01", 1.0), ("p05", 5.0)]
        {
            assert_eq!(percentile_key(k), Some(p), "{k}");
        }
        assert_eq!(percentile_key("mean"), None);
    }
}
