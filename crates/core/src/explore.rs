//! The configuration explorer's vocabulary and its analysis: what an exploration asks for (a
//! server template, factors, a design, an objective under constraints), what each treatment
//! measured, and what follows from the measurements — the best configuration, the Pareto
//! frontiers, the main effects and plain-sentence recommendations. Pure functions over numbers,
//! so every figure can be checked by hand; running treatments is the bench crate's job.

use crate::summary::{MetricName, Summary};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Factor name → level, as the config gave it (a number, a string or a bool).
pub type Levels = BTreeMap<String, Value>;

/// What went wrong with an exploration's config.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExploreError {
    /// A setting is wrong; the message names it.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ExploreError {
    ExploreError::Invalid(msg.into())
}

/// An exploration, as `explore.yaml` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExploreConfig {
    /// A name for the exploration (the output directory's default name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where treatments' results, server logs and `explore.json` go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<String>,
    /// The server each treatment stands up (absent with `external`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerTemplate>,
    /// The URL of a server that is already running (no server factors then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<String>,
    /// The workload: the JSON that `inferbench run --spec` reads, over its defaults (the base URL
    /// comes from the server).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub workload: Value,
    /// The factors and their levels.
    #[serde(default)]
    pub factors: Factors,
    /// How treatments are chosen.
    #[serde(default)]
    pub design: Design,
    /// What "best" means.
    pub objective: Objective,
    /// Rules every acceptable configuration meets: `ttft_p95 <= 2000`, `tpot_p99 <= 50`,
    /// `cost_per_million_tokens <= 0.8`, `success_rate >= 0.99`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// Runs per treatment; figures are their means.
    #[serde(default = "one")]
    pub repeat: u32,
    /// Seconds of rest between treatments.
    #[serde(default)]
    pub cooldown_s: f64,
    /// Replicas the served deployment has (per-replica figures divide by it).
    #[serde(default = "one")]
    pub replicas: u32,
    /// Price of one replica per hour, for `cost_per_million_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_per_hour: Option<f64>,
    /// Which load generator runs each treatment.
    #[serde(default)]
    pub harness: HarnessSpec,
}

fn one() -> u32 {
    1
}

/// A server stood up per treatment: a command template and how to know it is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerTemplate {
    /// The command, run by `sh -c` in its own process group: `{name}` is a server factor's level,
    /// `{port}` a free port picked per server.
    pub command: String,
    /// Environment added to the server's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The URL benchmarks target [default: `http://127.0.0.1:{port}`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Polled until it answers 2xx [default: the base URL's `/v1/models`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_url: Option<String>,
    /// How long the server may take to become ready, seconds.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_s: f64,
    /// Seconds between SIGTERM and SIGKILL at teardown.
    #[serde(default = "default_grace")]
    pub grace_s: f64,
}

fn default_ready_timeout() -> f64 {
    300.0
}

fn default_grace() -> f64 {
    10.0
}

/// Factors of the server (substituted into its command) and of the workload (set in the spec).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Factors {
    /// Server parameters: `max_num_seqs: [8, 16, 32]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server: BTreeMap<String, Vec<Value>>,
    /// Workload parameters: `concurrency`, `rate`, `input_len`, `output_len`, `dataset`,
    /// `temperature`, `num_prompts`, or any dotted field of the run spec.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workload: BTreeMap<String, Vec<Value>>,
}

impl Factors {
    /// Every factor, server ones first, with its levels.
    pub fn all(&self) -> Vec<(&str, &[Value], FactorSide)> {
        let s = self.server.iter().map(|(k, v)| (k.as_str(), v.as_slice(), FactorSide::Server));
        s.chain(self.workload.iter().map(|(k, v)| (k.as_str(), v.as_slice(), FactorSide::Workload))).collect()
    }
}

/// Which side of the benchmark a factor sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorSide {
    /// The server's command.
    Server,
    /// The workload's spec.
    Workload,
}

/// How treatments are chosen.
#[derive(Default, Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Design {
    /// Every combination of every level (main effects are exact).
    #[serde(alias = "factorial_design", alias = "full-factorial")]
    #[default]
    Factorial,
    /// The listed points (partial treatments, as vLLM's `bench sweep` lists of parameters),
    /// each crossed with the levels of the factors it leaves out.
    #[serde(alias = "grid_search")]
    Grid {
        /// The points; none means every combination.
        #[serde(default)]
        points: Vec<Levels>,
    },
    /// `n` combinations drawn without replacement.
    #[serde(alias = "random_search")]
    Random {
        /// How many.
        n: usize,
        /// Seed of the draw.
        #[serde(default)]
        seed: u64,
    },
    /// Coordinate hill climbing over the ordered levels: from the middle of every factor, try
    /// each neighbouring level and move to the best, until no neighbour is better.
    #[serde(alias = "hill-climb")]
    Adaptive {
        /// Most treatments to run [default: the size of the grid].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget: Option<usize>,
    },
}

impl Design {
    /// The design's name.
    pub fn name(&self) -> &'static str {
        match self {
            Design::Factorial => "factorial",
            Design::Grid { .. } => "grid",
            Design::Random { .. } => "random",
            Design::Adaptive { .. } => "adaptive",
        }
    }
}

/// What "best" means: one metric to maximise or minimise, or seed 002's weighted targets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// A metric to maximise: `output_throughput_per_replica`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximize: Option<String>,
    /// A metric to minimise: `tpot_p99`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimize: Option<String>,
    /// Weighted targets; the score is Σ weight × attainment (1 when met, else the ratio of
    /// target to value, or value to target, whichever is below 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weighted: Vec<WeightedTarget>,
}

/// One weighted target, as seed 002 writes it: `{name: p95_latency, target: "<2000ms", weight: 0.4}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedTarget {
    /// The metric (seed 002's `p95_latency`, `throughput` and `cost_per_token` are understood).
    #[serde(alias = "name")]
    pub metric: String,
    /// `<2000ms`, `>50 tokens/s`, `<$0.001`.
    pub target: String,
    /// Its weight.
    pub weight: f64,
}

/// The load generator a treatment's benchmark step uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HarnessSpec {
    /// `inferbench` (our own `run`), `vllm` (`vllm bench serve`), `guidellm`, `inference-perf`
    /// or `aiperf`.
    #[serde(default)]
    pub tool: Harness,
    /// The executable, when it is not on PATH under its usual name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    /// Arguments appended to the built command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
}

/// The load generators the explorer can drive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Harness {
    /// Our own serving benchmark, in process.
    #[default]
    Inferbench,
    /// `vllm bench serve`.
    Vllm,
    /// guidellm.
    Guidellm,
    /// inference-perf.
    InferencePerf,
    /// NVIDIA AIPerf.
    Aiperf,
}

impl Harness {
    /// The name as configs and `import --from` write it.
    pub fn name(self) -> &'static str {
        match self {
            Harness::Inferbench => "inferbench",
            Harness::Vllm => "vllm",
            Harness::Guidellm => "guidellm",
            Harness::InferencePerf => "inference-perf",
            Harness::Aiperf => "aiperf",
        }
    }
}

/// One point of the design: a level for every factor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Treatment {
    /// Levels of the server factors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server: Levels,
    /// Levels of the workload factors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workload: Levels,
}

/// A level as text: strings without quotes.
pub fn level_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Treatment {
    /// The level of a factor, on either side.
    pub fn level(&self, factor: &str) -> Option<&Value> {
        self.server.get(factor).or_else(|| self.workload.get(factor))
    }

    /// `max_num_seqs=8 concurrency=16`: how people read it.
    pub fn key(&self) -> String {
        let parts: Vec<String> = self.server.iter().chain(self.workload.iter()).map(|(k, v)| format!("{k}={}", level_text(v))).collect();
        if parts.is_empty() {
            "(no factors)".into()
        } else {
            parts.join(" ")
        }
    }

    /// A file stem that names the treatment and repeat (resume finds results by it).
    pub fn stem(&self, repeat: u32) -> String {
        let raw: Vec<String> = self.server.iter().chain(self.workload.iter()).map(|(k, v)| format!("{k}-{}", level_text(v))).collect();
        let mut s: String =
            raw.join("_").chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
        if s.is_empty() {
            s = "base".into();
        }
        // Long names (a dataset path as a level) are cut and told apart by a hash of the whole.
        if s.len() > 120 {
            let h = raw.join("_").bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
            s.truncate(100);
            s = format!("{s}-{h:016x}");
        }
        format!("t-{s}-r{repeat}")
    }
}

/// What became of one run of a treatment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Measured now.
    Ok,
    /// Measured by an earlier exploration (its result file was found).
    Resumed,
    /// The server did not become ready in time.
    NotReady,
    /// The server exited before or during the benchmark.
    ServerExited,
    /// The benchmark step failed.
    Failed,
    /// Stopped by Ctrl-C; what it measured is kept.
    Interrupted,
}

impl RunStatus {
    /// Whether the run has figures.
    pub fn measured(self) -> bool {
        matches!(self, RunStatus::Ok | RunStatus::Resumed)
    }
}

/// One run of one treatment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TreatmentRun {
    /// The treatment.
    pub treatment: Treatment,
    /// Repeat index, from 0.
    pub repeat: u32,
    /// What became of it.
    pub status: RunStatus,
    /// Why it has no figures, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The result file, relative to the output directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_file: Option<String>,
    /// The server's log, relative to the output directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_log: Option<String>,
    /// The server's process id (the test that no server outlives its treatment reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_pid: Option<u32>,
    /// The figures the objective and constraints read ([`metrics_of`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// Seconds the run took, server start included.
    pub seconds: f64,
}

/// Everything an exploration measured and concluded, rewritten after every treatment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExploreResult {
    /// Always `explore`.
    pub kind: String,
    /// The tool that wrote it.
    pub tool: crate::result::ToolInfo,
    /// When it started (RFC 3339, UTC).
    pub started: String,
    /// The config, with environment values that look secret removed.
    pub config: ExploreConfig,
    /// Every run, in the order they ran.
    pub runs: Vec<TreatmentRun>,
    /// What follows from them.
    pub analysis: Analysis,
    /// Stopped by Ctrl-C before the design was done.
    pub interrupted: bool,
}

/// One treatment's figures, averaged over its measured repeats, judged against the objective and
/// the constraints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Evaluated {
    /// The treatment.
    pub treatment: Treatment,
    /// Its key ([`Treatment::key`]).
    pub key: String,
    /// Measured repeats.
    pub runs: u32,
    /// Mean figures over them.
    pub metrics: BTreeMap<String, f64>,
    /// The objective's value (higher is better; a minimised metric is negated).
    pub score: Option<f64>,
    /// Meets every constraint.
    pub feasible: bool,
    /// The constraints it breaks, with the measured value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
}

/// One factor's main effect on the objective's metric: its mean at each level, over every
/// measured treatment with that level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MainEffect {
    /// The factor.
    pub factor: String,
    /// The metric averaged.
    pub metric: String,
    /// `(level, mean, treatments)` in the factor's order.
    pub levels: Vec<(Value, f64, u32)>,
    /// Largest mean minus smallest.
    pub range: f64,
}

/// The conclusions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Analysis {
    /// Every measured treatment, best first (feasible ones before the others).
    pub evaluated: Vec<Evaluated>,
    /// The best treatment that meets every constraint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<String>,
    /// Treatments run (repeats counted once), measured or not.
    pub treatments_run: u32,
    /// Pareto frontier of output tok/s per replica against TTFT p99 (keys, by throughput).
    pub pareto_ttft: Vec<String>,
    /// Pareto frontier of output tok/s per replica against TPOT p99.
    pub pareto_tpot: Vec<String>,
    /// Pareto frontier of tok/s per user against tok/s per replica.
    pub pareto_user: Vec<String>,
    /// Main effects, largest range first.
    pub main_effects: Vec<MainEffect>,
    /// Plain sentences backed by the numbers.
    pub recommendations: Vec<String>,
}

// ---- metrics ---------------------------------------------------------------------------------

/// Metrics with no statistic suffix.
pub const PLAIN_METRICS: [&str; 8] = [
    "output_throughput",
    "output_throughput_per_replica",
    "total_token_throughput",
    "request_throughput",
    "tokens_per_s_per_user",
    "success_rate",
    "cost_per_million_tokens",
    "cost_per_million_output_tokens",
];

/// Seed 002's names for metrics, and a few common spellings.
fn alias(name: &str) -> &str {
    match name {
        "throughput" | "throughput_tokens_per_second" | "output_tokens_per_second" => "output_throughput",
        "p95_latency" | "latency_p95" => "e2el_p95",
        "p99_latency" | "latency_p99" => "e2el_p99",
        "cost_per_token" => "cost_per_token",
        "error_rate" => "error_rate",
        other => other,
    }
}

/// A metric name checked: plain ones, `{ttft,tpot,itl,e2el,...}_{mean,median,pNN}`,
/// `cost_per_token` and `error_rate`. Returns the canonical name and, for latency ones, the
/// percentile the runs must compute.
pub fn check_metric(name: &str) -> Result<(String, Option<f64>), ExploreError> {
    let name = name.trim();
    let n = alias(name);
    if PLAIN_METRICS.contains(&n) || n == "cost_per_token" || n == "error_rate" {
        return Ok((n.to_owned(), None));
    }
    let bad = || {
        invalid(format!(
            "unknown metric '{name}': use one of {}, or a latency as ttft_p95, tpot_p99, itl_median, e2el_mean",
            PLAIN_METRICS.join(", ")
        ))
    };
    let (m, stat) = n.rsplit_once('_').ok_or_else(bad)?;
    m.parse::<MetricName>().map_err(|_| bad())?;
    match stat {
        "mean" | "median" => Ok((n.to_owned(), None)),
        s if s.starts_with('p') => {
            let p: f64 = s[1..].parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            Ok((n.to_owned(), Some(p)))
        }
        _ => Err(bad()),
    }
}

/// The figures of one run the explorer reads: throughputs (total and per replica), success
/// rate, tokens/s per user (1000 / median TPOT), cost per million tokens when a price is known,
/// and mean, median and every computed percentile of each latency, in ms.
pub fn metrics_of(s: &Summary, replicas: u32, price_per_hour: Option<f64>) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let replicas = f64::from(replicas.max(1));
    m.insert("output_throughput".into(), s.output_throughput);
    m.insert("output_throughput_per_replica".into(), s.output_throughput / replicas);
    m.insert("total_token_throughput".into(), s.total_token_throughput);
    m.insert("request_throughput".into(), s.request_throughput);
    m.insert("success_rate".into(), s.success_rate);
    m.insert("error_rate".into(), 1.0 - s.success_rate);
    let tpot = s.metric(MetricName::Tpot);
    if tpot.count > 0 && tpot.median > 0.0 {
        m.insert("tokens_per_s_per_user".into(), 1000.0 / tpot.median);
    }
    if let Some(price) = price_per_hour {
        let per_hour = price * replicas;
        if s.total_token_throughput > 0.0 {
            let per_token = per_hour / (s.total_token_throughput * 3600.0);
            m.insert("cost_per_million_tokens".into(), per_token * 1e6);
            m.insert("cost_per_token".into(), per_token);
        }
        if s.output_throughput > 0.0 {
            m.insert("cost_per_million_output_tokens".into(), per_hour / (s.output_throughput * 3600.0) * 1e6);
        }
    }
    for (name, d) in &s.metrics {
        if d.count == 0 {
            continue;
        }
        let k = name.key();
        m.insert(format!("{k}_mean"), d.mean);
        m.insert(format!("{k}_median"), d.median);
        for (p, v) in &d.percentiles {
            m.insert(format!("{k}_p{p}"), *v);
        }
    }
    m
}

/// Means of each metric over several runs (a metric some runs lack is averaged over the rest).
pub fn mean_metrics(runs: &[&BTreeMap<String, f64>]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    for r in runs {
        for (k, v) in *r {
            let e = sums.entry(k.clone()).or_default();
            e.0 += v;
            e.1 += 1;
        }
    }
    sums.into_iter().map(|(k, (s, n))| (k, s / f64::from(n))).collect()
}

// ---- constraints and objective ----------------------------------------------------------------

/// A comparison of a constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// At most.
    Le,
    /// At least.
    Ge,
}

/// One rule: `tpot_p99 <= 50`.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// The rule as written.
    pub rule: String,
    /// The metric (canonical name).
    pub metric: String,
    /// The comparison.
    pub op: Op,
    /// The limit.
    pub limit: f64,
}

/// Reads a number with optional units (`2000ms`, `50 tokens/s`, `$0.001`, `2s`); seconds become
/// milliseconds, since every latency is in ms.
fn number(s: &str) -> Option<f64> {
    let t = s.trim().trim_start_matches('$').trim();
    let end = t.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+')).unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let v: f64 = num.parse().ok()?;
    let unit = unit.trim();
    let scale = match unit {
        "" | "ms" | "tokens/s" | "tok/s" | "/token" | "%" => 1.0,
        "s" => 1000.0,
        "us" | "µs" => 0.001,
        _ => return None,
    };
    let v = if unit == "%" { v / 100.0 } else { v * scale };
    v.is_finite().then_some(v)
}

impl Constraint {
    /// Parses `metric <= limit` or `metric >= limit` (also `<`, `>`).
    pub fn parse(rule: &str) -> Result<Self, ExploreError> {
        let bad = || invalid(format!("invalid constraint '{rule}': expected METRIC <= LIMIT or METRIC >= LIMIT (e.g. tpot_p99 <= 50)"));
        let (metric, op, limit) = if let Some((m, l)) = rule.split_once("<=") {
            (m, Op::Le, l)
        } else if let Some((m, l)) = rule.split_once(">=") {
            (m, Op::Ge, l)
        } else if let Some((m, l)) = rule.split_once('<') {
            (m, Op::Le, l)
        } else if let Some((m, l)) = rule.split_once('>') {
            (m, Op::Ge, l)
        } else {
            return Err(bad());
        };
        let (metric, _) = check_metric(metric).map_err(|e| invalid(format!("invalid constraint '{rule}': {e}")))?;
        let limit = number(limit).ok_or_else(bad)?;
        Ok(Self { rule: rule.trim().to_owned(), metric, op, limit })
    }

    /// `None` when met; else how far off, relative to the limit (for ranking the infeasible).
    pub fn violation(&self, metrics: &BTreeMap<String, f64>) -> Option<f64> {
        let Some(&v) = metrics.get(&self.metric) else { return Some(f64::INFINITY) };
        let off = match self.op {
            Op::Le if v <= self.limit => return None,
            Op::Ge if v >= self.limit => return None,
            Op::Le => v - self.limit,
            Op::Ge => self.limit - v,
        };
        Some(off / self.limit.abs().max(1e-12))
    }
}

/// The objective, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Goal {
    /// Maximise a metric.
    Max(String),
    /// Minimise a metric.
    Min(String),
    /// Σ weight × attainment of each target.
    Weighted(Vec<(Constraint, f64)>),
}

impl Goal {
    /// Checks an [`Objective`].
    pub fn from_objective(o: &Objective) -> Result<Self, ExploreError> {
        let given = usize::from(o.maximize.is_some()) + usize::from(o.minimize.is_some()) + usize::from(!o.weighted.is_empty());
        if given != 1 {
            return Err(invalid("objective: give exactly one of maximize, minimize or weighted"));
        }
        if let Some(m) = &o.maximize {
            return Ok(Goal::Max(check_metric(m).map_err(|e| invalid(format!("objective.maximize: {e}")))?.0));
        }
        if let Some(m) = &o.minimize {
            return Ok(Goal::Min(check_metric(m).map_err(|e| invalid(format!("objective.minimize: {e}")))?.0));
        }
        let mut out = Vec::new();
        for t in &o.weighted {
            let c = Constraint::parse(&format!("{} {}", t.metric, t.target.trim()))
                .map_err(|e| invalid(format!("objective.weighted '{}': {e}", t.metric)))?;
            if !(t.weight.is_finite() && t.weight > 0.0) {
                return Err(invalid(format!("objective.weighted '{}': weight must be a positive number", t.metric)));
            }
            out.push((c, t.weight));
        }
        Ok(Goal::Weighted(out))
    }

    /// The metric main effects and recommendations speak of (the weighted form's first target).
    pub fn metric(&self) -> &str {
        match self {
            Goal::Max(m) | Goal::Min(m) => m,
            Goal::Weighted(ts) => ts.first().map_or("output_throughput", |(c, _)| c.metric.as_str()),
        }
    }

    /// Every metric the goal reads.
    pub fn metrics(&self) -> Vec<&str> {
        match self {
            Goal::Max(m) | Goal::Min(m) => vec![m.as_str()],
            Goal::Weighted(ts) => ts.iter().map(|(c, _)| c.metric.as_str()).collect(),
        }
    }

    /// Higher is better; `None` when a metric it needs is missing.
    pub fn score(&self, m: &BTreeMap<String, f64>) -> Option<f64> {
        match self {
            Goal::Max(k) => m.get(k).copied(),
            Goal::Min(k) => m.get(k).map(|v| -v),
            Goal::Weighted(ts) => {
                let mut s = 0.0;
                for (c, w) in ts {
                    let v = *m.get(&c.metric)?;
                    let attain = match c.op {
                        Op::Le if v <= c.limit => 1.0,
                        Op::Ge if v >= c.limit => 1.0,
                        Op::Le => c.limit / v,
                        Op::Ge => v / c.limit,
                    };
                    s += w * attain.clamp(0.0, 1.0);
                }
                Some(s)
            }
        }
    }
}

/// Judges one treatment's mean figures.
pub fn evaluate(treatment: &Treatment, runs: u32, metrics: BTreeMap<String, f64>, goal: &Goal, constraints: &[Constraint]) -> Evaluated {
    let mut violations = Vec::new();
    for c in constraints {
        if c.violation(&metrics).is_some() {
            let v = metrics.get(&c.metric).map_or("not measured".to_owned(), |v| fig(*v));
            violations.push(format!("{} (measured {v})", c.rule));
        }
    }
    Evaluated {
        key: treatment.key(),
        treatment: treatment.clone(),
        runs,
        score: goal.score(&metrics),
        feasible: violations.is_empty(),
        violations,
        metrics,
    }
}

/// Total relative violation (0 when feasible).
fn total_violation(e: &Evaluated, constraints: &[Constraint]) -> f64 {
    constraints.iter().filter_map(|c| c.violation(&e.metrics)).sum()
}

/// How two treatments compare, better first: feasible ones by score, then the rest by how far
/// they miss, then by key (so the order is total and stable).
fn order(a: &Evaluated, b: &Evaluated, constraints: &[Constraint]) -> std::cmp::Ordering {
    let key =
        |e: &Evaluated| (e.feasible, if e.feasible { e.score.unwrap_or(f64::NEG_INFINITY) } else { -total_violation(e, constraints) });
    let (ka, kb) = (key(a), key(b));
    kb.0.cmp(&ka.0).then(kb.1.total_cmp(&ka.1)).then_with(|| a.key.cmp(&b.key))
}

/// Orders treatments best first ([`order`]).
pub fn rank(list: &mut [Evaluated], constraints: &[Constraint]) {
    list.sort_by(|a, b| order(a, b, constraints));
}

/// Whether `a` is a better place to be than `b` (adaptive search): feasibility first, then
/// score, then smaller violation.
pub fn better(a: &Evaluated, b: &Evaluated, constraints: &[Constraint]) -> bool {
    order(a, b, constraints) == std::cmp::Ordering::Less
}

// ---- Pareto ----------------------------------------------------------------------------------

/// The keys on the Pareto frontier of `x` (maximised) against `y` (maximised when `y_max`,
/// else minimised), ordered by `x`. Treatments missing either figure are left out.
pub fn pareto(list: &[Evaluated], x: &str, y: &str, y_max: bool) -> Vec<String> {
    let pts: Vec<(f64, f64, &str)> = list
        .iter()
        .filter_map(|e| {
            let (a, b) = (*e.metrics.get(x)?, *e.metrics.get(y)?);
            Some((a, if y_max { b } else { -b }, e.key.as_str()))
        })
        .collect();
    let mut front: Vec<(f64, &str)> =
        pts.iter().filter(|p| !pts.iter().any(|q| q.0 >= p.0 && q.1 >= p.1 && (q.0 > p.0 || q.1 > p.1))).map(|p| (p.0, p.2)).collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    front.dedup_by(|a, b| a.1 == b.1);
    front.into_iter().map(|(_, k)| k.to_owned()).collect()
}

// ---- main effects ----------------------------------------------------------------------------

/// Each factor's mean `metric` per level over the measured treatments, largest range first.
pub fn main_effects(list: &[Evaluated], factors: &Factors, metric: &str) -> Vec<MainEffect> {
    let mut out = Vec::new();
    for (name, levels, _) in factors.all() {
        if levels.len() < 2 {
            continue;
        }
        let mut rows = Vec::new();
        for l in levels {
            let vals: Vec<f64> =
                list.iter().filter(|e| e.treatment.level(name) == Some(l)).filter_map(|e| e.metrics.get(metric).copied()).collect();
            if !vals.is_empty() {
                rows.push((l.clone(), vals.iter().sum::<f64>() / vals.len() as f64, vals.len() as u32));
            }
        }
        if rows.len() < 2 {
            continue;
        }
        let max = rows.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max);
        let min = rows.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
        out.push(MainEffect { factor: name.to_owned(), metric: metric.to_owned(), levels: rows, range: max - min });
    }
    out.sort_by(|a, b| b.range.total_cmp(&a.range).then_with(|| a.factor.cmp(&b.factor)));
    out
}

// ---- recommendations -------------------------------------------------------------------------

/// A figure with a sensible number of digits.
fn fig(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn pct(new: f64, old: f64) -> String {
    if old.abs() < 1e-12 {
        return "n/a".into();
    }
    let p = (new / old - 1.0) * 100.0;
    // No "-0 %": a change that rounds to nothing is +0.
    format!("{:+.0} %", if p.abs() < 0.5 { 0.0 } else { p })
}

/// A factor name as a flag reads it: `max_num_seqs` → `max-num-seqs`.
fn flag(name: &str) -> String {
    name.replace('_', "-")
}

/// The latency metric recommendations quote beside the objective: the first latency
/// constraint's, else TPOT p99.
fn latency_metric(constraints: &[Constraint]) -> String {
    constraints
        .iter()
        .find(|c| c.op == Op::Le && check_metric(&c.metric).ok().and_then(|x| x.1).is_some())
        .map_or("tpot_p99".into(), |c| c.metric.clone())
}

/// Plain sentences backed by the numbers: the best configuration and what it measured, how
/// each factor moves the objective around it (with the step where gains stop), and which factor
/// matters most.
pub fn recommendations(
    ranked: &[Evaluated],
    factors: &Factors,
    goal: &Goal,
    constraints: &[Constraint],
    effects: &[MainEffect],
) -> Vec<String> {
    let mut out = Vec::new();
    let metric = goal.metric().to_owned();
    let lat = latency_metric(constraints);
    let Some(top) = ranked.first() else {
        out.push("Nothing was measured, so there is nothing to recommend.".into());
        return out;
    };
    let describe = |e: &Evaluated| {
        let mut s = format!("{}: {} {}", e.key, fig(e.metrics.get(&metric).copied().unwrap_or(f64::NAN)), metric);
        if lat != metric {
            if let Some(v) = e.metrics.get(&lat) {
                s.push_str(&format!(", {lat} {} ms", fig(*v)));
            }
        }
        s
    };
    if top.feasible {
        let n = ranked.iter().filter(|e| e.feasible).count();
        out.push(format!("Use {} ({n} of {} measured configurations meet every constraint).", describe(top), ranked.len()));
    } else {
        out.push(format!(
            "No configuration meets every constraint; the closest is {}, which misses {}.",
            describe(top),
            top.violations.join(", ")
        ));
    }
    // A near-best with much lower latency: what someone who cares about users would take.
    if let (true, Some(ts), Some(&tl)) = (top.feasible && lat != metric, top.score, top.metrics.get(&lat)) {
        let near = ranked
            .iter()
            .filter(|e| e.feasible && e.key != top.key && e.score.is_some_and(|s| (ts - s).abs() <= 0.05 * ts.abs()))
            .filter_map(|e| Some((e, *e.metrics.get(&lat)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((e, l)) = near.filter(|(_, l)| *l < 0.8 * tl) {
            let (m, tm) = (e.metrics.get(&metric).copied().unwrap_or(f64::NAN), top.metrics.get(&metric).copied().unwrap_or(f64::NAN));
            out.push(format!(
                "Within 5 % of the best, {} has {lat} {} ms against {} ms, for {} {metric}.",
                e.key,
                fig(l),
                fig(tl),
                pct(m, tm)
            ));
        }
    }
    // Around the best: one factor at a time, the others held at the best's levels.
    for (name, levels, _) in factors.all() {
        if levels.len() < 2 {
            continue;
        }
        let mut line: Vec<(&Value, &Evaluated)> = Vec::new();
        for l in levels {
            let mut want = top.treatment.clone();
            match (want.server.contains_key(name), want.workload.contains_key(name)) {
                (true, _) => want.server.insert(name.to_owned(), l.clone()),
                (_, true) => want.workload.insert(name.to_owned(), l.clone()),
                _ => continue,
            };
            if let Some(e) = ranked.iter().find(|e| e.treatment == want) {
                line.push((l, e));
            }
        }
        let at = line.iter().position(|(_, e)| e.key == top.key);
        let Some(at) = at else { continue };
        if line.len() < 2 {
            continue;
        }
        let m = |e: &Evaluated| e.metrics.get(&metric).copied();
        let l = |e: &Evaluated| e.metrics.get(&lat).copied();
        let mut parts = Vec::new();
        if at > 0 {
            let (lv, le) = line[at - 1];
            if let (Some(a), Some(b)) = (m(top), m(le)) {
                let mut s = format!("{} {} over {}: {} {metric}", flag(name), level_text(line[at].0), level_text(lv), pct(a, b));
                if let (Some(x), Some(y)) = (l(top), l(le)) {
                    if lat != metric {
                        let d = if (x - y).abs() < 0.05 { 0.0 } else { x - y };
                        s.push_str(&format!(" at {d:+.1} ms {lat}"));
                    }
                }
                parts.push(s);
            }
        }
        if at + 1 < line.len() {
            let (hv, he) = line[at + 1];
            if let (Some(a), Some(b)) = (m(top), m(he)) {
                let verdict = if !he.feasible && top.feasible {
                    format!("{} {} breaks {}", flag(name), level_text(hv), he.violations.join(", "))
                } else if (b / a - 1.0).abs() < 0.05 {
                    format!("above {} {metric} stops growing ({} at {})", level_text(line[at].0), pct(b, a), level_text(hv))
                } else {
                    format!("{} {} gives {} {metric}", flag(name), level_text(hv), pct(b, a))
                };
                parts.push(verdict);
            }
        }
        if !parts.is_empty() {
            out.push(format!("{}.", parts.join("; ")));
        }
    }
    // Where a numeric factor's main effect stops growing: every later level within 5 %.
    for e in effects {
        let nums: Option<Vec<f64>> = e.levels.iter().map(|(l, _, _)| l.as_f64()).collect();
        if nums.is_none() || e.levels.len() < 3 {
            continue;
        }
        let means: Vec<f64> = e.levels.iter().map(|l| l.1).collect();
        let flat_from = (0..means.len() - 1).find(|&i| means[i] > 0.0 && means[i + 1..].iter().all(|m| (m / means[i] - 1.0).abs() < 0.05));
        if let Some(i) = flat_from {
            let last = means.len() - 1;
            out.push(format!(
                "Above {} {}, {metric} stops growing: {} at {} against {} at {} ({}, means over the other factors).",
                flag(&e.factor),
                level_text(&e.levels[i].0),
                fig(means[last]),
                level_text(&e.levels[last].0),
                fig(means[i]),
                level_text(&e.levels[i].0),
                pct(means[last], means[i])
            ));
        }
    }
    if let (Some(big), Some(small)) = (effects.first(), effects.last()) {
        if effects.len() > 1 {
            out.push(format!(
                "{} moves {metric} most (means range over {} across its levels); {} least ({}).",
                flag(&big.factor),
                fig(big.range),
                flag(&small.factor),
                fig(small.range)
            ));
        }
    }
    out
}

/// The whole analysis of a set of measured treatments. Main effects are computed only when
/// `balanced` (a full factorial): over a partial design a level's mean mixes in whichever other
/// levels happened to be run with it, and would mislead.
pub fn analyse(
    evaluated: Vec<Evaluated>,
    factors: &Factors,
    goal: &Goal,
    constraints: &[Constraint],
    treatments_run: u32,
    balanced: bool,
) -> Analysis {
    let mut evaluated = evaluated;
    rank(&mut evaluated, constraints);
    let effects = if balanced { main_effects(&evaluated, factors, goal.metric()) } else { Vec::new() };
    let recommendations = recommendations(&evaluated, factors, goal, constraints, &effects);
    Analysis {
        best: evaluated.first().filter(|e| e.feasible).map(|e| e.key.clone()),
        treatments_run,
        pareto_ttft: pareto(&evaluated, "output_throughput_per_replica", "ttft_p99", false),
        pareto_tpot: pareto(&evaluated, "output_throughput_per_replica", "tpot_p99", false),
        pareto_user: pareto(&evaluated, "output_throughput_per_replica", "tokens_per_s_per_user", true),
        main_effects: effects,
        recommendations,
        evaluated,
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Le => "<=",
            Op::Ge => ">=",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(mns: i64, c: i64) -> Treatment {
        Treatment { server: [("max_num_seqs".to_owned(), json!(mns))].into(), workload: [("concurrency".to_owned(), json!(c))].into() }
    }

    fn ev(tr: Treatment, thr: f64, tpot: f64, goal: &Goal, cs: &[Constraint]) -> Evaluated {
        let m: BTreeMap<String, f64> = [
            ("output_throughput".to_owned(), thr),
            ("output_throughput_per_replica".to_owned(), thr),
            ("tpot_p99".to_owned(), tpot),
            ("tokens_per_s_per_user".to_owned(), 1000.0 / tpot),
        ]
        .into();
        evaluate(&tr, 1, m, goal, cs)
    }

    #[test]
    fn constraints_parse_units_and_judge() {
        let c = Constraint::parse("ttft_p95 <= 2s").unwrap();
        assert_eq!((c.metric.as_str(), c.op, c.limit), ("ttft_p95", Op::Le, 2000.0));
        let c = Constraint::parse("throughput > 50 tokens/s").unwrap();
        assert_eq!((c.metric.as_str(), c.op, c.limit), ("output_throughput", Op::Ge, 50.0));
        let c = Constraint::parse("cost_per_token < $0.001").unwrap();
        assert_eq!(c.limit, 0.001);
        assert!(Constraint::parse("ttft_p95 ~ 3").unwrap_err().to_string().contains("expected METRIC"));
        assert!(Constraint::parse("ttfx_p95 <= 3").unwrap_err().to_string().contains("unknown metric 'ttfx_p95'"));
        let c = Constraint::parse("tpot_p99 <= 50").unwrap();
        let m: BTreeMap<String, f64> = [("tpot_p99".to_owned(), 60.0)].into();
        assert_eq!(c.violation(&m), Some(0.2));
        let m: BTreeMap<String, f64> = [("tpot_p99".to_owned(), 50.0)].into();
        assert_eq!(c.violation(&m), None);
    }

    #[test]
    fn weighted_score_is_the_sum_of_attainments() {
        let o = Objective {
            weighted: vec![
                WeightedTarget { metric: "p95_latency".into(), target: "<2000ms".into(), weight: 0.4 },
                WeightedTarget { metric: "throughput".into(), target: ">50 tokens/s".into(), weight: 0.3 },
                WeightedTarget { metric: "cost_per_token".into(), target: "<$0.001".into(), weight: 0.3 },
            ],
            ..Default::default()
        };
        let g = Goal::from_objective(&o).unwrap();
        // Latency 4000 ms: half attained; throughput 60 > 50: met; cost 0.002: half.
        let m: BTreeMap<String, f64> =
            [("e2el_p95".to_owned(), 4000.0), ("output_throughput".to_owned(), 60.0), ("cost_per_token".to_owned(), 0.002)].into();
        assert!((g.score(&m).unwrap() - (0.4 * 0.5 + 0.3 + 0.3 * 0.5)).abs() < 1e-12);
        assert!(Goal::from_objective(&Objective::default()).is_err());
    }

    #[test]
    fn pareto_keeps_the_undominated() {
        let g = Goal::Max("output_throughput".into());
        // (throughput, tpot p99): B dominates D; A, B, C are a frontier.
        let list = vec![
            ev(t(1, 1), 100.0, 5.0, &g, &[]),
            ev(t(2, 1), 200.0, 8.0, &g, &[]),
            ev(t(4, 1), 300.0, 20.0, &g, &[]),
            ev(t(8, 1), 150.0, 9.0, &g, &[]),
        ];
        assert_eq!(pareto(&list, "output_throughput_per_replica", "tpot_p99", false), vec![t(1, 1).key(), t(2, 1).key(), t(4, 1).key()]);
        // Per user against per replica: the same three (per user is 1000 / tpot).
        assert_eq!(pareto(&list, "output_throughput_per_replica", "tokens_per_s_per_user", true).len(), 3);
    }

    #[test]
    fn ranking_main_effects_and_recommendations() {
        let g = Goal::Max("output_throughput".into());
        let cs = vec![Constraint::parse("tpot_p99 <= 10").unwrap()];
        let factors = Factors {
            server: [("max_num_seqs".to_owned(), vec![json!(4), json!(8), json!(16)])].into(),
            workload: [("concurrency".to_owned(), vec![json!(8), json!(16)])].into(),
        };
        // A hand-made 3×2 factorial.
        let data =
            [(4, 8, 400.0, 6.0), (8, 8, 500.0, 9.0), (16, 8, 510.0, 9.5), (4, 16, 420.0, 6.0), (8, 16, 520.0, 9.0), (16, 16, 700.0, 17.0)];
        let list: Vec<Evaluated> = data.iter().map(|&(m, c, thr, tp)| ev(t(m, c), thr, tp, &g, &cs)).collect();
        let a = analyse(list, &factors, &g, &cs, 6, true);
        assert_eq!(a.best.as_deref(), Some("max_num_seqs=8 concurrency=16"));
        assert!(!a.evaluated.last().unwrap().feasible, "the infeasible come last");
        // Main effects: max_num_seqs means 410, 510, 605 (range 195); concurrency 470, 546.67.
        let mns = a.main_effects.iter().find(|e| e.factor == "max_num_seqs").unwrap();
        assert_eq!(mns.levels.iter().map(|l| l.1).collect::<Vec<_>>(), vec![410.0, 510.0, 605.0]);
        assert!((mns.range - 195.0).abs() < 1e-9);
        assert_eq!(a.main_effects[0].factor, "max_num_seqs");
        let r = a.recommendations.join("\n");
        assert!(r.contains("Use max_num_seqs=8 concurrency=16: 520 output_throughput, tpot_p99 9.00 ms (5 of 6"), "{r}");
        // 520 over 420 is +24 %, at +3.0 ms; 16 breaks the TPOT rule.
        assert!(r.contains("max-num-seqs 8 over 4: +24 % output_throughput at +3.0 ms tpot_p99"), "{r}");
        assert!(r.contains("max-num-seqs 16 breaks tpot_p99 <= 10 (measured 17.0)"), "{r}");
        assert!(r.contains("concurrency 16 over 8: +4 % output_throughput"), "{r}");
        assert!(r.contains("max-num-seqs moves output_throughput most (means range over 195"), "{r}");
        // 500 is within 5 % of 520 and its TPOT p99 (9.0) is not under 0.8 × 9.0: no such line.
        assert!(!r.contains("Within 5 %"), "{r}");
        // Make (8, 8) as fast with half the latency: 510 at 4.5 ms is within 5 % of 520.
        let mut data = data;
        data[1] = (8, 8, 510.0, 4.5);
        let list: Vec<Evaluated> = data.iter().map(|&(m, c, thr, tp)| ev(t(m, c), thr, tp, &g, &cs)).collect();
        let r = analyse(list, &factors, &g, &cs, 6, true).recommendations.join("\n");
        assert!(
            r.contains(
                "Within 5 % of the best, max_num_seqs=8 concurrency=8 has tpot_p99 4.50 ms against 9.00 ms, for -2 % output_throughput."
            ),
            "{r}"
        );
    }

    #[test]
    fn stems_are_file_names_and_stable() {
        let tr = t(8, 16);
        assert_eq!(tr.stem(0), "t-max_num_seqs-8_concurrency-16-r0");
        let mut long = Treatment::default();
        long.workload.insert("dataset_path".into(), json!("/a/".repeat(80)));
        let s = long.stem(1);
        assert!(s.len() < 140 && s.ends_with("-r1") && !s.contains('/'), "{s}");
    }

    #[test]
    fn configs_read_as_yaml_writes_them() {
        let cfg: ExploreConfig = serde_json::from_value(json!({
            "server": {"command": "inferbench serve --sim --port {port} --max-num-seqs {max_num_seqs}"},
            "factors": {"server": {"max_num_seqs": [8, 16]}, "workload": {"concurrency": [4]}},
            "design": {"kind": "random", "n": 2, "seed": 3},
            "objective": {"maximize": "output_throughput"},
        }))
        .unwrap();
        assert_eq!(cfg.design, Design::Random { n: 2, seed: 3 });
        assert_eq!(cfg.repeat, 1);
        let seed: Design = serde_json::from_value(json!({"kind": "factorial_design"})).unwrap();
        assert_eq!(seed, Design::Factorial);
        assert!(serde_json::from_value::<ExploreConfig>(json!({"objective": {}, "desgin": {}})).is_err());
    }
}
