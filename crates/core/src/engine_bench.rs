//! The engine benchmark's configuration (seed 000's YAML sections) and its typed result: what
//! `inferbench engine` reads and writes, and what `compare` and `report` read back.

use crate::result::Header;
use crate::stats::Distribution;
use crate::summary::Summary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The YAML configuration (seed 000's sections). Unknown keys are errors.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BenchConfig {
    /// Model: a GGUF path or a known name.
    pub model: Option<String>,
    /// Compute threads.
    pub threads: Option<usize>,
    /// Latency grid.
    pub latency: LatencyConfig,
    /// Memory measurements.
    pub memory: MemoryConfig,
    /// Throughput measurements.
    pub throughput: ThroughputConfig,
    /// Where and how to report.
    pub report: ReportConfig,
    /// Targets per model name (or `default`): `min_<metric>` / `max_<metric>` and the seed's
    /// `min_tokens_per_second`, `max_ttft_ms`, `max_memory_gb`.
    pub targets: BTreeMap<String, BTreeMap<String, f64>>,
    /// Prompt texts the length-controlled prompts are cut from.
    pub test_prompts: Vec<String>,
    /// The same model held in other formats.
    pub quantization: QuantConfig,
    /// A draft model proposing tokens for the target.
    pub speculative: SpecConfig,
    /// Baseline against variant, per batch size (seed 003).
    pub comparison: CompareConfig,
    /// llama-bench's tests (`pp512`, `tg128`, `@ d512`) instead of the sections above; present
    /// when the YAML has the section or a llama-bench flag is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llama_bench: Option<LlamaBenchConfig>,
}

/// `llama_bench:` section: the tests llama.cpp's `llama-bench` runs, named as it names them, so
/// one table reads across both tools. Every combination of threads × depth × test runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LlamaBenchConfig {
    /// Prompt-processing tests: tokens processed in one timed prefill (`pp512`); 0 entries skip.
    pub pp: Vec<usize>,
    /// Text-generation tests: tokens generated one step at a time (`tg128`).
    pub tg: Vec<usize>,
    /// Prompt then generation, timed together (`pp512+tg128`), as `[pp, tg]` pairs.
    pub pg: Vec<[usize; 2]>,
    /// Context depths: tokens already in the KV cache before the timed part (`@ d512`).
    pub depth: Vec<usize>,
    /// Timed repetitions of each test (t/s is their mean ± sample standard deviation).
    pub repetitions: usize,
    /// Thread counts [default: the run's `threads`].
    pub threads: Vec<usize>,
    /// Prompt tokens per forward step within a prefill (llama-bench's `n_batch`).
    pub batch_size: usize,
    /// One untimed run of each test first (llama-bench's default).
    pub warmup: bool,
    /// What is printed: `md`, `csv`, `json`, `jsonl` or `sql` (llama-bench's `-o`).
    pub output: String,
    /// A llama-bench JSON or JSONL file to put beside ours, test by test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare_with: Option<PathBuf>,
}

impl Default for LlamaBenchConfig {
    fn default() -> Self {
        Self {
            pp: vec![512],
            tg: vec![128],
            pg: Vec::new(),
            depth: vec![0],
            repetitions: 5,
            threads: Vec::new(),
            batch_size: 512,
            warmup: true,
            output: "md".into(),
            compare_with: None,
        }
    }
}

/// One llama-bench test and its repetitions, with llama-bench's field names (its JSON output
/// reads into the same type, so `--compare-with` needs no second schema).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LlamaBenchTest {
    /// Source commit of the tool that ran the test.
    #[serde(default)]
    pub build_commit: String,
    /// The CPU (from `/proc/cpuinfo`).
    #[serde(default)]
    pub cpu_info: String,
    /// Compute backends (`CPU`).
    #[serde(default)]
    pub backends: String,
    /// The GGUF file.
    #[serde(default)]
    pub model_filename: String,
    /// Architecture, size class and quantization, as llama.cpp describes a model.
    #[serde(default)]
    pub model_type: String,
    /// Bytes of weights in the file.
    #[serde(default)]
    pub model_size: u64,
    /// Parameters.
    #[serde(default)]
    pub model_n_params: u64,
    /// Prompt tokens per forward step.
    #[serde(default)]
    pub n_batch: usize,
    /// Compute threads.
    pub n_threads: usize,
    /// Prompt tokens timed.
    pub n_prompt: usize,
    /// Generated tokens timed.
    pub n_gen: usize,
    /// Tokens in the cache before the timed part.
    #[serde(default)]
    pub n_depth: usize,
    /// When the test ran (RFC 3339, UTC).
    #[serde(default)]
    pub test_time: String,
    /// Mean time of a repetition, ns.
    #[serde(default)]
    pub avg_ns: u64,
    /// Sample standard deviation of the repetitions' times, ns.
    #[serde(default)]
    pub stddev_ns: u64,
    /// Mean of the repetitions' tokens/s ((n_prompt + n_gen) / time each).
    pub avg_ts: f64,
    /// Sample standard deviation of the repetitions' tokens/s.
    pub stddev_ts: f64,
    /// Each repetition's time, ns.
    #[serde(default)]
    pub samples_ns: Vec<u64>,
    /// Each repetition's tokens/s.
    #[serde(default)]
    pub samples_ts: Vec<f64>,
}

impl LlamaBenchTest {
    /// llama-bench's name for the test: `pp512`, `tg128`, `pp512+tg128`, with ` @ d512` when the
    /// cache was filled first.
    pub fn name(&self) -> String {
        let base = match (self.n_prompt, self.n_gen) {
            (p, 0) => format!("pp{p}"),
            (0, g) => format!("tg{g}"),
            (p, g) => format!("pp{p}+tg{g}"),
        };
        if self.n_depth > 0 {
            format!("{base} @ d{}", self.n_depth)
        } else {
            base
        }
    }

    /// Fills the aggregate fields from `samples_ns` exactly as llama-bench computes them: t/s per
    /// repetition, then their mean and sample (n − 1) standard deviation; times likewise.
    pub fn set_samples(&mut self, samples_ns: Vec<u64>) {
        let n = (self.n_prompt + self.n_gen) as f64;
        self.samples_ts = samples_ns.iter().map(|&t| 1e9 * n / t.max(1) as f64).collect();
        let ns: Vec<f64> = samples_ns.iter().map(|&t| t as f64).collect();
        self.avg_ns = mean(&ns) as u64;
        self.stddev_ns = sample_std(&ns) as u64;
        self.avg_ts = mean(&self.samples_ts);
        self.stddev_ts = sample_std(&self.samples_ts);
        self.samples_ns = samples_ns;
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn sample_std(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// One side of a comparison.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Variant {
    /// A label for reports.
    pub name: String,
    /// Weight format (`shipped`, `q4_1`, `q8_0`, `f32`).
    pub quantization: String,
    /// Compute threads (0: the run's setting).
    pub threads: usize,
}

impl Default for Variant {
    fn default() -> Self {
        Self { name: String::new(), quantization: "shipped".into(), threads: 0 }
    }
}

/// `comparison:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CompareConfig {
    /// Run the comparison.
    pub enabled: bool,
    /// The reference.
    pub baseline: Variant,
    /// The candidate.
    pub variant: Variant,
    /// Batch sizes (requests submitted together).
    pub batch_sizes: Vec<usize>,
    /// Measured iterations per batch size (after one warm-up).
    pub iterations: usize,
    /// Prompt tokens per request.
    pub input_tokens: usize,
    /// Output tokens per request.
    pub tokens_per_request: usize,
}

impl Default for CompareConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            baseline: Variant { name: "baseline".into(), ..Variant::default() },
            variant: Variant { name: "variant".into(), quantization: "q8_0".into(), threads: 0 },
            batch_sizes: vec![1, 2, 4, 8],
            iterations: 3,
            input_tokens: 32,
            tokens_per_request: 32,
        }
    }
}

/// `quantization:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct QuantConfig {
    /// Formats to load the model in: `shipped`, `q4_1`, `q8_0`, `f32` (empty skips the section;
    /// F32 is always loaded as the reference).
    pub formats: Vec<String>,
    /// Prompts whose greedy tokens are compared.
    pub prompts: usize,
    /// Tokens generated per prompt.
    pub max_tokens: usize,
}

/// `speculative:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SpecConfig {
    /// Run the comparison.
    pub enabled: bool,
    /// Draft model (path or name) [default: the target model's file].
    pub draft: Option<String>,
    /// Format the draft is held in (`shipped`, `q4_1`, `q8_0`, `f32`).
    pub draft_quantization: String,
    /// Format the target is held in.
    pub target_quantization: String,
    /// Tokens the draft proposes per target pass: a number, or a list that runs one speculative
    /// arm per value (`[2, 4, 8]`).
    #[serde(deserialize_with = "one_or_many")]
    #[schemars(with = "OneOrMany")]
    pub gamma: Vec<usize>,
    /// Requests per arm in fixed-count mode (seed 001's `NUM_PROMPTS`); with `rate` and no
    /// duration, this many arrive at that rate.
    pub prompts: usize,
    /// Tokens generated per request.
    pub max_tokens: usize,
    /// 0 is greedy (output must equal the target's own); above 0, seeded sampling.
    pub temperature: f32,
    /// Requests per second with Poisson arrivals (seed 001's `AUTO_RATE`) [default: every
    /// request at once].
    pub rate: Option<f64>,
    /// With `rate`: requests arrive for this long (`AUTO_DURATION`) and the arm ends when they
    /// are done. Without: rounds of `prompts` repeat until this long has passed (0: one round).
    pub duration_seconds: f64,
    /// Sequences decoded together (`BATCH_SIZE`; 1 runs them one at a time).
    pub batch_size: usize,
    /// Tokens one forward step may carry (`MAX_BATCH_LENGTH`): prefill chunks, decode tokens
    /// and the proposals being checked.
    pub max_batch_length: usize,
    /// Where the two models run on this machine's cores: `same` (one shared pool), `separate`
    /// (disjoint halves), `ratio T:D` (disjoint sets split T to D) or `auto`.
    pub placement: String,
    /// Seed of the arrival times and of sampling.
    pub seed: u64,
}

/// A number or a list of numbers (YAML `gamma: 4` or `gamma: [2, 4, 8]`).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only its schema and its deserializer are used
enum OneOrMany {
    One(usize),
    Many(Vec<usize>),
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(v) => vec![v],
        OneOrMany::Many(v) => v,
    })
}

impl Default for QuantConfig {
    fn default() -> Self {
        Self { formats: Vec::new(), prompts: 3, max_tokens: 32 }
    }
}

impl Default for SpecConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            draft: None,
            draft_quantization: "shipped".into(),
            target_quantization: "f32".into(),
            gamma: vec![4],
            prompts: 4,
            max_tokens: 64,
            temperature: 0.0,
            rate: None,
            duration_seconds: 0.0,
            batch_size: 1,
            max_batch_length: 512,
            placement: "same".into(),
            seed: 0,
        }
    }
}

/// `latency:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    /// Runs per cell not counted.
    pub warmup_runs: usize,
    /// Runs per cell measured.
    pub test_runs: usize,
    /// Prompt lengths, tokens.
    pub input_lengths: Vec<usize>,
    /// Output lengths, tokens.
    pub output_lengths: Vec<usize>,
}

/// `memory:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Report peak resident memory.
    pub measure_peak: bool,
    /// Compute and measure the KV cache of the longest latency cell.
    pub measure_kv_cache: bool,
}

/// `throughput:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ThroughputConfig {
    /// Requests in flight for the concurrent test (0 skips it).
    pub concurrent_requests: usize,
    /// Batch sizes: that many requests submitted together.
    pub batch_sizes: Vec<usize>,
    /// Output tokens per request.
    pub tokens_per_request: usize,
    /// Keep the concurrent test going this long (0: one round of requests).
    pub duration_seconds: f64,
}

/// `report:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// Directory for the files.
    pub output_dir: PathBuf,
    /// Any of json, csv, text.
    pub format: Vec<String>,
    /// Record CPU, RAM, OS and versions.
    pub include_system_info: bool,
    /// File name stem (`<stem>.json`, `.csv`, `.txt`, `.records.jsonl`). By default
    /// `engine-<model>-<YYYYMMDD-HHMMSS>`, so a re-run never overwrites an earlier result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        Self { warmup_runs: 1, test_runs: 3, input_lengths: vec![32, 128], output_lengths: vec![32, 64] }
    }
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self { measure_peak: true, measure_kv_cache: true }
    }
}

impl Default for ThroughputConfig {
    fn default() -> Self {
        Self { concurrent_requests: 8, batch_sizes: vec![1, 4, 8], tokens_per_request: 64, duration_seconds: 0.0 }
    }
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            output_dir: PathBuf::from("results"),
            format: vec!["json".into(), "csv".into(), "text".into()],
            include_system_info: true,
            file_name: None,
        }
    }
}

/// One request's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Trace {
    /// Prompt tokens.
    pub input_tokens: usize,
    /// Tokens generated.
    pub output_tokens: usize,
    /// Submit to first token, ms.
    pub ttft_ms: f64,
    /// Submit to last token, ms.
    pub e2e_ms: f64,
    /// Decode tokens/s after the first token.
    pub decode_tok_s: f64,
}

/// One cell of the latency grid: an input length by an output length, run `test_runs` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LatencyCell {
    /// Prompt tokens.
    pub input_tokens: usize,
    /// Output tokens asked for.
    pub output_tokens: usize,
    /// Time to first token over the runs, ms.
    pub ttft_ms: Distribution,
    /// Decode rate over the runs, tokens/s.
    pub decode_tok_s: Distribution,
    /// End-to-end latency over the runs, ms.
    pub e2e_ms: Distribution,
    /// Each measured run.
    pub iterations: Vec<Trace>,
}

/// Kind name of engine results (kept for readers of version-1 files).
pub const ENGINE_KIND: &str = "engine";

/// A whole engine benchmark, as `inferbench engine` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EngineResult {
    /// Version, kind, tool, times, host, labels.
    #[serde(flatten)]
    pub header: Header,
    /// The model's name (a known name or the file stem).
    pub model: String,
    /// The GGUF file.
    pub model_path: String,
    /// Weight formats as loaded (`Q4_1`, `mixed Q4_1/Q8_0`, ...).
    pub weights: String,
    /// Compute threads.
    pub threads: usize,
    /// The configuration run (the spec of this kind).
    pub config: BenchConfig,
    /// The latency grid.
    pub latency: Vec<LatencyCell>,
    /// Memory figures, MB.
    pub memory: BTreeMap<String, f64>,
    /// Throughput figures.
    pub throughput: BTreeMap<String, f64>,
    /// The latency runs summarised exactly as a serving run is (same type, same formulas).
    pub latency_summary: Summary,
    /// Formats against the F32 reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantization: Vec<QuantRow>,
    /// Speculative against target-only decoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speculative: Option<SpecResult>,
    /// Baseline against variant per batch size (seed 003).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<VariantComparison>,
    /// Every figure targets can name.
    pub metrics: BTreeMap<String, f64>,
    /// Sections that failed (the others are still reported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Each target and how it fared.
    pub targets: Vec<TargetCheck>,
    /// GPU power and energy, host resources and CPU energy over the whole benchmark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitors: Option<crate::monitor::MonitorReport>,
    /// llama-bench's tests, when the run was one (`llama_bench` in the config).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llama_bench: Vec<LlamaBenchTest>,
}

/// One format of the quantization comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QuantRow {
    /// The format (`shipped`, `q4_1`, `q8_0`, `f32`).
    pub format: String,
    /// Resident memory the load added, MB.
    pub load_mb: f64,
    /// Bytes of weights, MB.
    pub weights_mb: f64,
    /// Greedy decode rate, tokens/s.
    pub decode_tokens_per_second: f64,
    /// Share of generated positions whose greedy token equals the F32 reference's.
    pub token_agreement: f64,
    /// Prompts whose whole greedy output equals the reference's.
    pub identical_outputs: usize,
    /// Prompts compared.
    pub prompts: usize,
}

/// The speculative-decoding comparison (seed 001): a target-only arm and one speculative arm
/// per gamma, each the same requests through the engine's scheduler. The top-level figures are
/// the best speculative arm's against the target arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpecResult {
    /// Target model and format.
    pub target: String,
    /// Draft model and format.
    pub draft: String,
    /// Tokens proposed per target pass (the best arm's).
    pub gamma: usize,
    /// Sampling temperature (0 is greedy).
    pub temperature: f32,
    /// Requests in each arm (the speculative arm's, in a time-based run).
    pub prompts_run: usize,
    /// Target-only output rate, tokens/s.
    pub target_only_tokens_per_second: f64,
    /// Speculative output rate, tokens/s.
    pub speculative_tokens_per_second: f64,
    /// Speculative over target-only rate.
    pub speedup: f64,
    /// Accepted draft tokens / proposed ones.
    pub acceptance_rate: f64,
    /// Tokens gained per target pass (1 + accepted per draft).
    pub mean_accepted_length: f64,
    /// Every speculative output equalled the target-only output for the same request (greedy,
    /// or sampled with the same seed: verification keeps the target's own tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identical_to_target: Option<bool>,
    /// Where the models ran, as resolved (`same: 2 shared threads`).
    #[serde(default)]
    pub placement: String,
    /// How requests arrived (`4 at once`, `Poisson 2 req/s for 60 s`).
    #[serde(default)]
    pub arrivals: String,
    /// Sequences decoded together.
    #[serde(default)]
    pub batch_size: usize,
    /// Every arm: target only first, then one per gamma.
    #[serde(default)]
    pub arms: Vec<SpecArm>,
}

/// One arm of the speculative comparison: its requests' latencies, token counts and rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpecArm {
    /// `target` or `speculative`, with the gamma when several run (`speculative_gamma4`).
    pub name: String,
    /// Tokens proposed per pass (none for the target arm).
    pub gamma: Option<usize>,
    /// Requests completed.
    pub requests: usize,
    /// Prompt tokens over all requests.
    pub prompt_tokens: u64,
    /// Generated tokens over all requests.
    pub generated_tokens: u64,
    /// Prompt plus generated tokens.
    pub total_tokens: u64,
    /// From the first arrival to the last request's end, seconds.
    pub duration_s: f64,
    /// Generated tokens per second of `duration_s`.
    pub output_tokens_per_second: f64,
    /// Prompt and generated tokens per second of `duration_s`.
    pub total_tokens_per_second: f64,
    /// Requests per second of `duration_s`.
    pub requests_per_second: f64,
    /// Time to first token from each request's scheduled arrival, ms.
    pub ttft_ms: Distribution,
    /// End-to-end latency from each request's scheduled arrival, ms.
    pub e2e_ms: Distribution,
    /// Output rate over the target arm's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speedup: Option<f64>,
    /// Accepted over proposed draft tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance_rate: Option<f64>,
    /// 1 + accepted tokens per draft checked (vLLM's mean acceptance length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_acceptance_length: Option<f64>,
    /// Share of drafts whose token at each position (0 first) was accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acceptance_by_position: Vec<f64>,
    /// Each request's output equalled the target arm's for the same request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identical_to_target: Option<bool>,
}

/// Per batch size: each side's iterations and the derived figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VariantRow {
    /// Requests submitted together.
    pub batch_size: usize,
    /// Baseline wall latency of the batch, ms.
    pub baseline_latency_ms: Distribution,
    /// Variant wall latency of the batch, ms.
    pub variant_latency_ms: Distribution,
    /// Baseline output tokens/s.
    pub baseline_tokens_per_second: Distribution,
    /// Variant output tokens/s.
    pub variant_tokens_per_second: Distribution,
    /// Variant throughput over baseline throughput.
    pub speedup: f64,
    /// 1 - variant latency / baseline latency.
    pub latency_reduction: f64,
    /// Each baseline iteration, ms.
    pub baseline_iterations_ms: Vec<f64>,
    /// Each variant iteration, ms.
    pub variant_iterations_ms: Vec<f64>,
}

/// Baseline against variant (seed 003).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VariantComparison {
    /// The reference side.
    pub baseline: Variant,
    /// The candidate side.
    pub variant: Variant,
    /// One row per batch size.
    pub rows: Vec<VariantRow>,
    /// Mean of the rows' speedups.
    pub average_speedup: f64,
    /// Mean of the rows' latency reductions.
    pub average_latency_reduction: f64,
    /// The conclusion in words.
    pub verdict: String,
}

/// One target and how it fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TargetCheck {
    /// As configured (`min_tokens_per_second`).
    pub key: String,
    /// The metric it names.
    pub metric: String,
    /// The limit.
    pub limit: f64,
    /// The measured value.
    pub value: f64,
    /// Whether the value is on the right side of the limit.
    pub pass: bool,
}

#[cfg(test)]
mod tests {
    use super::LlamaBenchTest;

    #[test]
    fn llama_bench_aggregates_by_hand() {
        let mut t = LlamaBenchTest { n_prompt: 512, ..Default::default() };
        t.set_samples(vec![1_000_000_000, 2_000_000_000]);
        // t/s 512 and 256: mean 384, sample sd sqrt(2 * 128^2 / 1) = 181.019...
        assert_eq!(t.samples_ts, vec![512.0, 256.0]);
        assert_eq!(t.avg_ts, 384.0);
        assert!((t.stddev_ts - 128.0 * 2f64.sqrt()).abs() < 1e-9);
        assert_eq!(t.avg_ns, 1_500_000_000);
        assert_eq!(t.stddev_ns, 707_106_781);
        assert_eq!(t.name(), "pp512");
        let d = LlamaBenchTest { n_gen: 128, n_depth: 512, ..Default::default() };
        assert_eq!(d.name(), "tg128 @ d512");
        assert_eq!(LlamaBenchTest { n_prompt: 8, n_gen: 4, ..Default::default() }.name(), "pp8+tg4");
    }

    #[test]
    fn llama_bench_aggregates_match_llama_bench_own_output() {
        // llama-bench's README (JSON example): five pp512 samples and the figures it printed.
        let mut t = LlamaBenchTest { n_prompt: 512, ..Default::default() };
        t.set_samples(vec![74601900, 71632900, 71745200, 71952700, 70745500]);
        assert_eq!(t.avg_ns, 72135640);
        assert!((t.stddev_ns as i64 - 1453752).abs() <= 1, "{}", t.stddev_ns);
        assert!((t.avg_ts - 7100.002165).abs() < 1e-5, "{}", t.avg_ts);
        assert!((t.stddev_ts - 140.341520).abs() < 1e-5, "{}", t.stddev_ts);
    }
}
