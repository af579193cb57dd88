//! The full description of a serving run: enough to reproduce it and to tell whether two results
//! measured the same workload. API keys are deliberately absent.

use serde::{Deserialize, Serialize};

/// Where prompts come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DatasetSpec {
    /// Dataset kind (`random`, ...).
    pub name: String,
    /// File or directory the prompts were read from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Target prompt length in tokens (random dataset).
    pub input_len: u32,
    /// Target output length in tokens.
    pub output_len: u32,
    /// Lengths are drawn uniformly from `len * (1 ± range_ratio)`.
    pub range_ratio: f64,
    /// Tokens of shared prefix before each prompt.
    pub prefix_len: u32,
    /// Whether file datasets were shuffled before sampling.
    #[serde(default)]
    pub shuffle: bool,
    /// Output length forced on every prompt, overriding the dataset's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_output_len: Option<u32>,
    /// Prompts shorter than this were dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_input_len: Option<u32>,
    /// Prompts longer than this were dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_len: Option<u32>,
    /// Prefix groups (shared-prefix dataset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_groups: Option<u32>,
    /// User turns per generated conversation (multi-turn dataset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u32>,
    /// Trace replay: the file's format (`mooncake`, `azure`, `burstgpt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_format: Option<String>,
    /// Trace replay: time runs this many times faster than traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_speedup: Option<f64>,
    /// Trace replay: only requests in `[start, end)` seconds from the trace's first request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_window: Option<[f64; 2]>,
}

/// What loading the dataset found, so a reader knows whether prompts repeated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DatasetStats {
    /// Distinct usable prompts.
    pub available: usize,
    /// Entries dropped by filters.
    pub skipped: usize,
    /// True when fewer prompts than requests were available and prompts repeat.
    pub oversampled: bool,
}

/// How the request rate changes over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RampStrategy {
    /// Rate grows linearly from start to end.
    Linear,
    /// Rate grows geometrically from start to end.
    Exponential,
}

/// A request-rate ramp from `start_rps` to `end_rps` over the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RampUp {
    /// The ramp's shape.
    pub strategy: RampStrategy,
    /// Rate at the start of the run.
    pub start_rps: f64,
    /// Rate at the end of the run.
    pub end_rps: f64,
}

/// Inter-arrival time distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalKind {
    /// Gamma-distributed gaps (Poisson when burstiness = 1).
    #[default]
    Poisson,
    /// Evenly spaced sends.
    Constant,
}

/// Sampling parameters sent with each request (absent ones are left to the server).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sampling {
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k cut-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Everything that defines a serving benchmark run: the source every other setting of the run
/// (load profile, dataset options, request template, summary options) is derived from, and what
/// `inferbench run --spec` re-runs. Secrets (the API key) are never part of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunSpec {
    /// Backend protocol (`openai`, `openai-chat`, `vllm`, `tgi`).
    pub backend: String,
    /// Server base URL.
    pub base_url: String,
    /// Path of the generation endpoint.
    pub endpoint: String,
    /// Model name sent in requests.
    pub model: String,
    /// Tokenizer used for client-side counting and prompt generation.
    pub tokenizer: String,
    /// Prompt source.
    pub dataset: DatasetSpec,
    /// Number of measured requests (count mode).
    pub num_prompts: Option<u64>,
    /// Run length in seconds (duration mode).
    pub duration_s: Option<f64>,
    /// Requests per second; `None` sends everything at once (rate = inf).
    pub request_rate: Option<f64>,
    /// Gamma shape of inter-arrival gaps (1 = Poisson).
    pub burstiness: f64,
    /// Inter-arrival distribution.
    pub arrival: ArrivalKind,
    /// Most requests in flight at once; `None` for no limit.
    pub max_concurrency: Option<u64>,
    /// Optional request-rate ramp.
    pub ramp_up: Option<RampUp>,
    /// Requests sent before measuring, excluded from results.
    pub warmup_requests: u64,
    /// Connections opened before measuring, so the first wave connects to none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup_connections: u64,
    /// Starts each request's `X-Request-Id` header; `None` sends no request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id_prefix: Option<String>,
    /// Seed for arrivals and datasets.
    pub seed: u64,
    /// Whether responses are streamed.
    pub stream: bool,
    /// Sampling parameters.
    pub sampling: Sampling,
    /// Whether `ignore_eos` / `min_tokens` were sent to force exact output lengths.
    pub ignore_eos: bool,
    /// Per-request timeout in seconds: the whole request, connect to last byte.
    pub timeout_s: f64,
    /// Most seconds opening one connection may take.
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: f64,
    /// Most seconds without a byte once an answer has started; `None` for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_s: Option<f64>,
    /// A PEM file of CA certificates trusted for an `https://` target, beside the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// The server's certificate was not checked (`--insecure`): kept in the result so nobody
    /// mistakes the run for one against an authenticated endpoint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Extra JSON fields merged into each request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_body: Option<serde_json::Value>,
    /// Percentiles reported.
    pub percentiles: Vec<f64>,
    /// Metrics whose percentiles are printed.
    pub percentile_metrics: Vec<String>,
    /// Goodput SLOs, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<String>,
}

impl DatasetSpec {
    /// Random prompts of exactly `input_len` tokens asking for `output_len` tokens.
    pub fn random(input_len: u32, output_len: u32) -> Self {
        Self { name: "random".into(), input_len, output_len, shuffle: true, ..Default::default() }
    }
}

impl RunSpec {
    /// A run against `base_url` with the command line's defaults: OpenAI completions, streamed,
    /// 1,000 random 1,024-token prompts asking for 128 tokens, all at once, counted with the
    /// tokenizer the server names (`auto`, else cl100k_base), request ids `inferbench-<id>`,
    /// percentiles 50/90/95/99. Set the fields that differ.
    pub fn new(base_url: &str) -> Self {
        Self {
            backend: "openai".into(),
            base_url: base_url.into(),
            tokenizer: "auto".into(),
            dataset: DatasetSpec::random(1024, 128),
            num_prompts: Some(1000),
            burstiness: 1.0,
            stream: true,
            timeout_s: DEFAULT_REQUEST_TIMEOUT_S,
            connect_timeout_s: default_connect_timeout_s(),
            percentiles: vec![50.0, 90.0, 95.0, 99.0],
            percentile_metrics: ["ttft", "tpot", "itl", "e2el"].map(String::from).to_vec(),
            request_id_prefix: Some("inferbench-".into()),
            ..Default::default()
        }
    }
}

/// The spec fields that do not shape the workload: two results that differ only in these
/// measured the same thing (the target, timeouts, request ids, what the summary reports).
pub const NOT_WORKLOAD: [&str; 12] = [
    "base_url",
    "endpoint",
    "model",
    "timeout_s",
    "connect_timeout_s",
    "idle_timeout_s",
    "ca_cert",
    "insecure",
    "request_id_prefix",
    "percentiles",
    "percentile_metrics",
    "goodput",
];

/// The spec as JSON without the fields of [`NOT_WORKLOAD`]: what identifies a workload.
pub fn workload_json(spec: &RunSpec) -> serde_json::Value {
    let mut v = serde_json::to_value(spec).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(m) = &mut v {
        m.retain(|k, _| !NOT_WORKLOAD.contains(&k.as_str()));
    }
    v
}

/// A short, stable name for a workload: FNV-1a (64 bits, hex) of [`workload_json`]. Runs with
/// the same fingerprint sent the same prompts on the same schedule, so their figures form a trend.
pub fn workload_fingerprint(spec: &RunSpec) -> String {
    let text = workload_json(spec).to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The default per-request timeout: 6 hours, as vLLM's benchmark (a long generation on a slow
/// server is a measurement, not a failure).
pub const DEFAULT_REQUEST_TIMEOUT_S: f64 = 6.0 * 3600.0;

fn default_connect_timeout_s() -> f64 {
    10.0
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
