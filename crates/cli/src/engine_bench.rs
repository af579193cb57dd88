//! `inferbench engine`: benchmarks a model in process, without HTTP. Latency by input × output
//! length, memory (load, inference delta, peak, KV cache), throughput (single, concurrent, batch
//! sizes) in the engine's own scheduler, and performance targets checked at the end. Configured
//! by YAML (`--config`), every key also a flag.

use crate::args::EngineBenchArgs;
use anyhow::{bail, Context, Result};
use inferbench_core::metrics::{Summary, SummaryOptions};
use inferbench_core::record::{Outcome, RequestRecord, TokenSource};
use inferbench_core::stats::{Distribution, Samples};
use inferbench_core::sysinfo::SystemInfo;
use inferbench_engine::{Engine, EngineConfig, Event, EventSink, LoadOptions, Request};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

/// The YAML configuration (seed 000's sections). Unknown keys are errors.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
}

/// One side of a comparison.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    /// Tokens the draft proposes per target pass.
    pub gamma: usize,
    /// Prompts per round.
    pub prompts: usize,
    /// Tokens generated per prompt.
    pub max_tokens: usize,
    /// 0 is greedy (output must equal the target's own); above 0 uses sampled acceptance.
    pub temperature: f32,
    /// Repeat the prompts until this many seconds have passed (0: one round).
    pub duration_seconds: f64,
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
            gamma: 4,
            prompts: 4,
            max_tokens: 64,
            temperature: 0.0,
            duration_seconds: 0.0,
        }
    }
}

fn load_options(fmt: &str) -> Result<LoadOptions> {
    if fmt == "shipped" {
        return Ok(LoadOptions::default());
    }
    let requantize =
        inferbench_engine::WeightFormat::parse(fmt).with_context(|| format!("unknown format '{fmt}' (shipped, q4_1, q8_0, f32)"))?;
    Ok(LoadOptions { requantize: Some(requantize) })
}

/// `latency:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Report peak resident memory.
    pub measure_peak: bool,
    /// Compute and measure the KV cache of the longest latency cell.
    pub measure_kv_cache: bool,
}

/// `throughput:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// Directory for the files.
    pub output_dir: PathBuf,
    /// Any of json, csv, text.
    pub format: Vec<String>,
    /// Record CPU, RAM, OS and versions.
    pub include_system_info: bool,
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
        Self { output_dir: PathBuf::from("results"), format: vec!["json".into(), "csv".into(), "text".into()], include_system_info: true }
    }
}

/// Reads a YAML config; errors name the file, the line and the key path.
pub fn load_config(path: &Path) -> Result<BenchConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_config(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn parse_config(text: &str) -> std::result::Result<BenchConfig, String> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.location().map(|l| format!("line {}: ", l.line())).unwrap_or_default();
        if path == "." {
            format!("{line}{inner}")
        } else {
            format!("{line}key '{path}': {inner}")
        }
    })
}

impl BenchConfig {
    /// Applies flags over the file's values.
    fn apply(&mut self, a: &EngineBenchArgs) {
        if a.model.is_some() {
            self.model = a.model.clone();
        }
        if a.threads.is_some() {
            self.threads = a.threads;
        }
        let l = &mut self.latency;
        a.warmup_runs.inspect(|v| l.warmup_runs = *v);
        a.test_runs.inspect(|v| l.test_runs = *v);
        a.input_lengths.as_ref().inspect(|v| l.input_lengths = (*v).clone());
        a.output_lengths.as_ref().inspect(|v| l.output_lengths = (*v).clone());
        let t = &mut self.throughput;
        a.concurrent_requests.inspect(|v| t.concurrent_requests = *v);
        a.batch_sizes.as_ref().inspect(|v| t.batch_sizes = (*v).clone());
        a.tokens_per_request.inspect(|v| t.tokens_per_request = *v);
        a.duration_seconds.inspect(|v| t.duration_seconds = *v);
        if let Some(d) = &a.output_dir {
            self.report.output_dir = d.clone();
        }
        if let Some(f) = &a.format {
            self.report.format = f.clone();
        }
        if a.no_system_info {
            self.report.include_system_info = false;
        }
        if let Some(f) = &a.quantization_formats {
            self.quantization.formats = f.clone();
        }
        if a.speculative {
            self.speculative.enabled = true;
        }
        if let Some(v) = &a.compare_variant {
            self.comparison.enabled = true;
            self.comparison.variant.quantization = v.clone();
            self.comparison.variant.name = v.clone();
        }
        if let Some(g) = a.gamma {
            self.speculative.gamma = g;
        }
        if a.draft_model.is_some() {
            self.speculative.draft = a.draft_model.clone();
        }
        for (k, v) in &a.target {
            self.targets.entry("default".into()).or_default().insert(k.clone(), *v);
        }
    }

    fn validate(&self) -> Result<()> {
        if self.latency.test_runs == 0 {
            bail!("latency.test_runs must be at least 1");
        }
        if self.latency.input_lengths.contains(&0) || self.latency.output_lengths.contains(&0) {
            bail!("latency.input_lengths and latency.output_lengths must be positive");
        }
        if self.throughput.tokens_per_request == 0 || self.throughput.batch_sizes.contains(&0) {
            bail!("throughput.tokens_per_request and throughput.batch_sizes must be positive");
        }
        let sides = [
            &self.speculative.draft_quantization,
            &self.speculative.target_quantization,
            &self.comparison.baseline.quantization,
            &self.comparison.variant.quantization,
        ];
        for f in self.quantization.formats.iter().chain(sides) {
            load_options(f).map_err(|e| anyhow::anyhow!("quantization / speculative: {e}"))?;
        }
        if self.speculative.enabled && (self.speculative.gamma == 0 || self.speculative.prompts == 0 || self.speculative.max_tokens == 0) {
            bail!("speculative.gamma, speculative.prompts and speculative.max_tokens must be positive");
        }
        for f in &self.report.format {
            if !["json", "csv", "text"].contains(&f.as_str()) {
                bail!("report.format: unknown format '{f}' (json, csv, text)");
            }
        }
        Ok(())
    }
}

/// Timestamps events on the engine thread as they are emitted.
struct Timed(mpsc::Sender<(Instant, Event)>);

impl EventSink for Timed {
    fn send(&mut self, ev: Event) -> bool {
        self.0.send((Instant::now(), ev)).is_ok()
    }
}

/// One request's timeline.
#[derive(Debug, Clone, Serialize)]
struct Trace {
    input_tokens: usize,
    output_tokens: usize,
    ttft_ms: f64,
    e2e_ms: f64,
    /// Decode tokens/s after the first token.
    decode_tok_s: f64,
}

fn submit(e: &Engine, prompt: &[u32], out: usize) -> Result<(Instant, mpsc::Receiver<(Instant, Event)>)> {
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    e.submit(Request { prompt: prompt.to_vec(), max_tokens: out, ignore_eos: true, ..Default::default() }, Box::new(Timed(tx)))
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    Ok((t0, rx))
}

/// Turns timelines into the serving benchmark's `RequestRecord`s, written to
/// `engine-<model>.records.jsonl` as each request completes and kept for the summary.
struct Recorder {
    epoch: Instant,
    inner: std::sync::Mutex<(u64, Option<inferbench_report::RecordWriter>, Vec<RequestRecord>)>,
}

impl Recorder {
    fn new(path: Option<&Path>) -> Result<Self> {
        let writer = match path {
            Some(p) => Some(inferbench_report::RecordWriter::create(p).with_context(|| format!("cannot create {}", p.display()))?),
            None => None,
        };
        Ok(Self { epoch: Instant::now(), inner: std::sync::Mutex::new((0, writer, Vec::new())) })
    }

    fn add(&self, t0: Instant, tokens: &[Instant], input: usize, category: &str) -> Result<()> {
        let ns = |t: Instant| t.saturating_duration_since(self.epoch).as_nanos() as u64;
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let rec = RequestRecord {
            id: g.0,
            scheduled_ns: ns(t0),
            gate_ns: ns(t0),
            sent_ns: ns(t0),
            first_token_ns: tokens.first().map(|&t| ns(t)),
            end_ns: tokens.last().map_or(ns(t0), |&t| ns(t)),
            itl_ns: tokens.windows(2).map(|w| (w[1] - w[0]).as_nanos() as u64).collect(),
            input_tokens: input as u64,
            output_tokens: tokens.len() as u64,
            token_source: TokenSource::Engine,
            outcome: Outcome::Success,
            category: Some(category.to_owned()),
            turn: None,
            generated_text: None,
        };
        g.0 += 1;
        if let Some(w) = g.1.as_mut() {
            w.write(&rec).context("writing a record")?;
            w.flush().context("writing a record")?;
        }
        g.2.push(rec);
        Ok(())
    }

    fn summary(&self, prefix: &str) -> Summary {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Summary::from_records(
            g.2.iter().filter(|r| r.category.as_deref().is_some_and(|c| c.starts_with(prefix))),
            &SummaryOptions::default(),
        )
    }
}

fn collect(t0: Instant, rx: mpsc::Receiver<(Instant, Event)>, input: usize, rec: &Recorder, category: &str) -> Result<Trace> {
    let (mut first, mut last, mut n) = (None, t0, 0usize);
    let mut times = Vec::new();
    for (at, ev) in rx {
        match ev {
            Event::Token { .. } => {
                first.get_or_insert(at);
                last = at;
                n += 1;
                times.push(at);
            }
            Event::Finished { .. } => break,
            Event::Failed(m) => bail!("the engine failed a request: {m}"),
        }
    }
    let first = first.context("a request produced no token")?;
    rec.add(t0, &times, input, category)?;
    let decode = if n > 1 { (n - 1) as f64 / (last - first).as_secs_f64().max(1e-9) } else { 0.0 };
    Ok(Trace {
        input_tokens: input,
        output_tokens: n,
        ttft_ms: (first - t0).as_secs_f64() * 1e3,
        e2e_ms: (last - t0).as_secs_f64() * 1e3,
        decode_tok_s: decode,
    })
}

fn run_together(e: &Engine, prompts: &[Vec<u32>], out: usize, rec: &Recorder, category: &str) -> Result<Vec<Trace>> {
    let pending: Vec<_> = prompts.iter().map(|p| submit(e, p, out).map(|s| (s, p.len()))).collect::<Result<_>>()?;
    pending.into_iter().map(|((t0, rx), n)| collect(t0, rx, n, rec, category)).collect()
}

fn dist(v: impl IntoIterator<Item = f64>) -> Distribution {
    let mut s = Samples::default();
    v.into_iter().for_each(|x| s.push(x));
    s.distribution(&[50.0, 99.0])
}

fn vm(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map_or(0, |kb| kb * 1024)
}

/// One latency cell.
#[derive(Debug, Serialize)]
struct LatencyCell {
    input_tokens: usize,
    output_tokens: usize,
    ttft_ms: Distribution,
    decode_tok_s: Distribution,
    e2e_ms: Distribution,
    iterations: Vec<Trace>,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct EngineReport {
    schema_version: u32,
    kind: &'static str,
    date: String,
    tool_version: String,
    model: String,
    model_path: String,
    weights: String,
    threads: usize,
    config: BenchConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<SystemInfo>,
    latency: Vec<LatencyCell>,
    memory: BTreeMap<String, f64>,
    throughput: BTreeMap<String, f64>,
    /// The latency runs summarised exactly as a serving run is (same type, same formulas).
    latency_summary: Summary,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quantization: Vec<QuantRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    speculative: Option<SpecResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comparison: Option<Comparison>,
    /// Every figure targets can name.
    metrics: BTreeMap<String, f64>,
    /// Sections that failed (the others are still reported).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
    targets: Vec<TargetCheck>,
}

/// One format of the quantization comparison.
#[derive(Debug, Serialize)]
struct QuantRow {
    format: String,
    load_mb: f64,
    weights_mb: f64,
    decode_tokens_per_second: f64,
    /// Share of generated positions whose greedy token equals the F32 reference's.
    token_agreement: f64,
    /// Prompts whose whole greedy output equals the reference's.
    identical_outputs: usize,
    prompts: usize,
}

/// The speculative-decoding comparison.
#[derive(Debug, Serialize)]
struct SpecResult {
    target: String,
    draft: String,
    gamma: usize,
    temperature: f32,
    prompts_run: usize,
    target_only_tokens_per_second: f64,
    speculative_tokens_per_second: f64,
    speedup: f64,
    acceptance_rate: f64,
    mean_accepted_length: f64,
    /// Greedy only: every speculative output equalled the target-only output.
    #[serde(skip_serializing_if = "Option::is_none")]
    identical_to_target: Option<bool>,
}

/// Per batch size: each side's iterations and the derived figures.
#[derive(Debug, Serialize)]
struct CompareRow {
    batch_size: usize,
    baseline_latency_ms: Distribution,
    variant_latency_ms: Distribution,
    baseline_tokens_per_second: Distribution,
    variant_tokens_per_second: Distribution,
    /// Variant throughput over baseline throughput.
    speedup: f64,
    /// 1 - variant latency / baseline latency.
    latency_reduction: f64,
    baseline_iterations_ms: Vec<f64>,
    variant_iterations_ms: Vec<f64>,
}

/// The seed-003 report.
#[derive(Debug, Serialize)]
struct Comparison {
    baseline: Variant,
    variant: Variant,
    rows: Vec<CompareRow>,
    average_speedup: f64,
    average_latency_reduction: f64,
    verdict: String,
}

/// One target and how it fared.
#[derive(Debug, Serialize)]
struct TargetCheck {
    key: String,
    metric: String,
    limit: f64,
    value: f64,
    pass: bool,
}

/// Runs `inferbench engine`; `Ok(false)` never happens (no interruption support yet), and a failed
/// target is an error after every file is written.
pub async fn run(a: EngineBenchArgs) -> Result<bool> {
    let mut cfg = match &a.config {
        Some(p) => load_config(p)?,
        None => BenchConfig::default(),
    };
    cfg.apply(&a);
    cfg.validate()?;
    let spec = cfg.model.clone();
    let (path, name) = tokio::task::spawn_blocking(move || crate::model::resolve(spec.as_deref())).await??;
    tokio::task::spawn_blocking(move || bench(cfg, path, name)).await?
}

fn bench(cfg: BenchConfig, path: PathBuf, name: String) -> Result<bool> {
    let threads = cfg.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let rss0 = vm("VmRSS:");
    let loaded = inferbench_engine::load(&path, &LoadOptions::default()).with_context(|| format!("cannot load {}", path.display()))?;
    let rss_loaded = vm("VmRSS:");
    let m = loaded.model.clone();
    let ctx = m.cfg.context_length;
    let longest =
        cfg.latency.input_lengths.iter().max().copied().unwrap_or(0) + cfg.latency.output_lengths.iter().max().copied().unwrap_or(0);
    if longest > ctx {
        bail!("latency: {longest} tokens (longest input + longest output) exceed the model's context of {ctx}");
    }
    let max_batch = cfg.throughput.batch_sizes.iter().copied().chain([cfg.throughput.concurrent_requests, 1]).max().unwrap_or(1);
    let engine_cfg = EngineConfig { max_num_seqs: max_batch.max(1), threads, kv_cache_bytes: 1 << 30, ..Default::default() };
    let per_seq = cfg.latency.input_lengths.iter().max().copied().unwrap_or(32).max(32) + cfg.throughput.tokens_per_request;
    if per_seq * max_batch * m.cfg.kv_bytes_per_token() > engine_cfg.kv_cache_bytes {
        bail!(
            "throughput: {max_batch} sequences of {per_seq} tokens need {:.0} MiB of KV cache, more than the 1024 MiB budget",
            (per_seq * max_batch * m.cfg.kv_bytes_per_token()) as f64 / 1048576.0
        );
    }
    let e = Engine::start(m.clone(), loaded.tokenizer.clone(), loaded.eos.clone(), engine_cfg).context("cannot start the engine")?;
    std::fs::create_dir_all(&cfg.report.output_dir).with_context(|| format!("cannot create {}", cfg.report.output_dir.display()))?;
    let rec = Recorder::new(Some(&cfg.report.output_dir.join(format!("engine-{name}.records.jsonl"))))?;
    // Prompts of exact lengths: the first n tokens of the test prompts, repeated as needed.
    let source = if cfg.test_prompts.is_empty() {
        "The history of computing is a story of machines that learned to count, then to remember, then to talk. ".repeat(8)
    } else {
        cfg.test_prompts.join("\n")
    };
    let ids = loaded.tokenizer.encode(&source);
    if ids.is_empty() {
        bail!("test_prompts encode to no tokens");
    }
    let prompt = |n: usize| -> Vec<u32> { ids.iter().cycle().take(n).copied().collect() };
    let mut metrics: BTreeMap<String, f64> = BTreeMap::new();
    eprintln!("inferbench engine: {name} ({} weights, {threads} threads)", m.weight_format());
    // Latency grid.
    let mut cells = Vec::new();
    for &input in &cfg.latency.input_lengths {
        for &output in &cfg.latency.output_lengths {
            let p = prompt(input);
            for _ in 0..cfg.latency.warmup_runs {
                run_together(&e, std::slice::from_ref(&p), output, &rec, "warmup")?;
            }
            let mut it = Vec::new();
            for _ in 0..cfg.latency.test_runs {
                it.extend(run_together(&e, std::slice::from_ref(&p), output, &rec, &format!("latency/in{input}_out{output}"))?);
            }
            let cell = LatencyCell {
                input_tokens: input,
                output_tokens: output,
                ttft_ms: dist(it.iter().map(|t| t.ttft_ms)),
                decode_tok_s: dist(it.iter().map(|t| t.decode_tok_s)),
                e2e_ms: dist(it.iter().map(|t| t.e2e_ms)),
                iterations: it,
            };
            eprintln!(
                "  latency in={input:<5} out={output:<5} TTFT {:.1} ± {:.1} ms, decode {:.1} ± {:.1} tok/s, E2E {:.1} ms",
                cell.ttft_ms.mean, cell.ttft_ms.std, cell.decode_tok_s.mean, cell.decode_tok_s.std, cell.e2e_ms.mean
            );
            let key = format!("in{input}_out{output}");
            metrics.insert(format!("ttft_ms_{key}"), cell.ttft_ms.mean);
            metrics.insert(format!("decode_tokens_per_second_{key}"), cell.decode_tok_s.mean);
            metrics.insert(format!("e2e_ms_{key}"), cell.e2e_ms.mean);
            cells.push(cell);
        }
    }
    if let Some(worst) = cells.iter().map(|c| c.ttft_ms.mean).reduce(f64::max) {
        metrics.insert("ttft_ms".into(), worst);
    }
    if let Some(slowest) = cells.iter().map(|c| c.decode_tok_s.mean).reduce(f64::min) {
        metrics.insert("tokens_per_second".into(), slowest);
    }
    // Throughput.
    let mut throughput: BTreeMap<String, f64> = BTreeMap::new();
    let tpr = cfg.throughput.tokens_per_request;
    let base = prompt(32);
    let single = run_together(&e, std::slice::from_ref(&base), tpr, &rec, "throughput/single")?.remove(0);
    throughput.insert("single_decode_tokens_per_second".into(), single.decode_tok_s);
    throughput.insert("single_e2e_ms".into(), single.e2e_ms);
    // What the instrumentation costs: one clock read and one channel send per token, timed over
    // many repetitions, against the measured time per decoded token.
    let probe = Instant::now();
    let (tx, rx) = mpsc::channel();
    let reps = 200_000u32;
    for i in 0..reps {
        let _ = tx.send((Instant::now(), i));
    }
    drop(rx);
    let per_token_s = probe.elapsed().as_secs_f64() / f64::from(reps);
    if single.decode_tok_s > 0.0 {
        throughput.insert("timing_overhead_percent".into(), 100.0 * per_token_s * single.decode_tok_s);
    }
    let n = cfg.throughput.concurrent_requests;
    if n > 0 {
        let t = Instant::now();
        let mut all = Vec::new();
        loop {
            all.extend(run_together(&e, &vec![base.clone(); n], tpr, &rec, &format!("throughput/concurrent_{n}"))?);
            if t.elapsed().as_secs_f64() >= cfg.throughput.duration_seconds {
                break;
            }
        }
        let wall = t.elapsed().as_secs_f64();
        let lat = dist(all.iter().map(|t| t.e2e_ms));
        throughput.insert(format!("concurrent_{n}_requests_per_second"), all.len() as f64 / wall);
        throughput.insert(format!("concurrent_{n}_latency_avg_ms"), lat.mean);
        throughput.insert(format!("concurrent_{n}_latency_p99_ms"), lat.percentile(99.0).unwrap_or(lat.max));
        throughput
            .insert(format!("concurrent_{n}_output_tokens_per_second"), all.iter().map(|t| t.output_tokens as f64).sum::<f64>() / wall);
    }
    for &b in &cfg.throughput.batch_sizes {
        let t = Instant::now();
        let traces = run_together(&e, &vec![base.clone(); b], tpr, &rec, &format!("throughput/batch_{b}"))?;
        let wall = t.elapsed().as_secs_f64();
        throughput.insert(format!("batch_{b}_tokens_per_second"), traces.iter().map(|t| t.output_tokens as f64).sum::<f64>() / wall);
    }
    for (k, v) in &throughput {
        eprintln!("  throughput {k}: {v:.1}");
    }
    // Memory.
    let mut memory: BTreeMap<String, f64> = BTreeMap::new();
    memory.insert("model_load_mb".into(), rss_loaded.saturating_sub(rss0) as f64 / 1e6);
    memory.insert("model_weights_mb".into(), m.weight_bytes as f64 / 1e6);
    if cfg.memory.measure_peak {
        let peak = crate::proc::peak_rss_bytes();
        memory.insert("peak_rss_mb".into(), peak as f64 / 1e6);
        memory.insert("inference_delta_mb".into(), peak.saturating_sub(rss_loaded) as f64 / 1e6);
        metrics.insert("memory_gb".into(), peak as f64 / 1e9);
    }
    if cfg.memory.measure_kv_cache && longest > 0 {
        let computed = longest * m.cfg.kv_bytes_per_token();
        memory.insert("kv_cache_computed_mb".into(), computed as f64 / 1e6);
        // Measured: resident growth while one sequence of that length is cached.
        crate::proc::release_free_memory();
        let before = vm("VmRSS:");
        let mut cache = inferbench_engine::KvCache::new(m.cfg.n_layer, m.cfg.kv_dim(), longest);
        let toks = prompt(longest);
        m.forward(&mut [inferbench_engine::BatchItem { tokens: &toks, start: 0, cache: &mut cache, want_logits: false }])
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        // The forward pass's scratch buffers are freed by now; hand them back before reading.
        crate::proc::release_free_memory();
        memory.insert("kv_cache_measured_mb".into(), vm("VmRSS:").saturating_sub(before) as f64 / 1e6);
        drop(cache);
    }
    for (k, v) in &memory {
        eprintln!("  memory {k}: {v:.1}");
    }
    drop(e);
    let prompts_for = |n: usize| -> Vec<Vec<u32>> {
        let texts: Vec<String> = if cfg.test_prompts.is_empty() {
            ["Tell me about the ocean.", "What is the capital of France?", "Write a haiku about autumn.", "Explain gravity simply."]
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            cfg.test_prompts.clone()
        };
        (0..n)
            .map(|i| loaded.tokenizer.encode(&format!("<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n", texts[i % texts.len()])))
            .collect()
    };
    // A later section that fails does not lose the earlier ones: its error is reported with them.
    let mut errors: Vec<String> = Vec::new();
    let quantization = quant_compare(&cfg.quantization, &path, &prompts_for(cfg.quantization.prompts), &loaded.eos, threads)
        .unwrap_or_else(|e| {
            errors.push(format!("quantization: {e:#}"));
            Vec::new()
        });
    for q in &quantization {
        metrics.insert(format!("decode_tokens_per_second_{}", q.format), q.decode_tokens_per_second);
        metrics.insert(format!("token_agreement_{}", q.format), q.token_agreement);
    }
    let speculative = if cfg.speculative.enabled {
        match spec_compare(&cfg.speculative, &path, &prompts_for(cfg.speculative.prompts), threads) {
            Ok(r) => {
                metrics.insert("speculative_speedup".into(), r.speedup);
                metrics.insert("speculative_acceptance_rate".into(), r.acceptance_rate);
                Some(r)
            }
            Err(e) => {
                errors.push(format!("speculative: {e:#}"));
                None
            }
        }
    } else {
        None
    };
    let comparison = if cfg.comparison.enabled {
        match compare(&cfg.comparison, &path, &ids, threads, &rec) {
            Ok(c) => {
                metrics.insert("comparison_average_speedup".into(), c.average_speedup);
                Some(c)
            }
            Err(e) => {
                errors.push(format!("comparison: {e:#}"));
                None
            }
        }
    } else {
        None
    };
    metrics.extend(throughput.iter().map(|(k, v)| (k.clone(), *v)));
    metrics.extend(memory.iter().map(|(k, v)| (k.clone(), *v)));
    // Targets: the model's own, else `default`.
    let targets = cfg.targets.get(&name).or_else(|| cfg.targets.get("default")).cloned().unwrap_or_default();
    let mut checks = Vec::new();
    for (key, limit) in &targets {
        let (is_min, metric) = match key.split_once('_') {
            Some(("min", m)) => (true, m),
            Some(("max", m)) => (false, m),
            _ => bail!("targets.{name}.{key}: a target is min_<metric> or max_<metric>"),
        };
        let Some(&value) = metrics.get(metric) else {
            let known: Vec<&str> = metrics.keys().map(String::as_str).collect();
            bail!("targets.{key}: unknown metric '{metric}'; known: {}", known.join(", "));
        };
        let pass = if is_min { value >= *limit } else { value <= *limit };
        checks.push(TargetCheck { key: key.clone(), metric: metric.to_owned(), limit: *limit, value, pass });
    }
    let report = EngineReport {
        schema_version: 1,
        kind: "engine",
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        tool_version: format!("inferbench {} ({})", env!("CARGO_PKG_VERSION"), env!("INFERBENCH_GIT_COMMIT")),
        model: name.clone(),
        model_path: path.display().to_string(),
        weights: m.weight_format().to_string(),
        threads,
        system: cfg.report.include_system_info.then(SystemInfo::collect),
        config: cfg.clone(),
        latency: cells,
        latency_summary: rec.summary("latency/"),
        quantization,
        speculative,
        comparison,
        memory,
        throughput,
        metrics,
        targets: checks,
        errors,
    };
    write_reports(&cfg.report, &report)?;
    if !report.errors.is_empty() {
        bail!("{} (the other results are written)", report.errors.join("; "));
    }
    let failed: Vec<&TargetCheck> = report.targets.iter().filter(|c| !c.pass).collect();
    for c in &report.targets {
        println!(
            "target {:<32} {:>10.2} {} {:<10.2} {}",
            c.key,
            c.value,
            if c.key.starts_with("min") { ">=" } else { "<=" },
            c.limit,
            if c.pass { "pass" } else { "FAIL" }
        );
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} targets failed: {}",
            failed.len(),
            report.targets.len(),
            failed.iter().map(|c| c.key.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(true)
}

fn with_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().context("thread pool")?;
    Ok(pool.install(f))
}

fn quant_compare(q: &QuantConfig, path: &Path, prompts: &[Vec<u32>], eos: &[u32], threads: usize) -> Result<Vec<QuantRow>> {
    if q.formats.is_empty() {
        return Ok(Vec::new());
    }
    let mut formats = q.formats.clone();
    if !formats.iter().any(|f| f == "f32") {
        formats.push("f32".into());
    }
    let greedy = inferbench_engine::SamplingParams::default();
    let mut runs = Vec::new();
    for f in &formats {
        crate::proc::release_free_memory();
        let before = vm("VmRSS:");
        let l = inferbench_engine::load(path, &load_options(f)?).with_context(|| format!("loading as {f}"))?;
        let load_mb = vm("VmRSS:").saturating_sub(before) as f64 / 1e6;
        let m = l.model.clone();
        let t = Instant::now();
        let outs = with_pool(threads, || {
            prompts
                .iter()
                .map(|p| inferbench_engine::speculative::generate_plain(&m, p, q.max_tokens, &greedy, eos, true))
                .collect::<Result<Vec<_>, _>>()
        })?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let tokens: usize = outs.iter().map(Vec::len).sum();
        let tps = tokens as f64 / t.elapsed().as_secs_f64();
        eprintln!("  quantization {f}: {load_mb:.0} MB loaded, {tps:.1} tok/s");
        runs.push((f.clone(), load_mb, m.weight_bytes as f64 / 1e6, tps, outs));
        drop(l);
    }
    let reference = runs.iter().find(|r| r.0 == "f32").map(|r| r.4.clone()).unwrap_or_default();
    Ok(runs
        .into_iter()
        .filter(|r| q.formats.contains(&r.0))
        .map(|(format, load_mb, weights_mb, tps, outs)| {
            let (mut same, mut total, mut identical) = (0, 0, 0);
            for (o, r) in outs.iter().zip(&reference) {
                same += o.iter().zip(r).filter(|(a, b)| a == b).count();
                total += o.len().max(r.len());
                identical += usize::from(o == r);
            }
            QuantRow {
                format,
                load_mb,
                weights_mb,
                decode_tokens_per_second: tps,
                token_agreement: same as f64 / total.max(1) as f64,
                identical_outputs: identical,
                prompts: outs.len(),
            }
        })
        .collect())
}

fn spec_compare(c: &SpecConfig, path: &Path, prompts: &[Vec<u32>], threads: usize) -> Result<SpecResult> {
    use inferbench_engine::speculative::{check_tokenizers, generate_plain, generate_speculative, SpecStats};
    let target = inferbench_engine::load(path, &load_options(&c.target_quantization)?).context("loading the target")?;
    let draft_path = match &c.draft {
        Some(d) => crate::model::resolve(Some(d))?.0,
        None => path.to_owned(),
    };
    let draft = inferbench_engine::load(&draft_path, &load_options(&c.draft_quantization)?).context("loading the draft")?;
    check_tokenizers(&target, &draft).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sampling = inferbench_engine::SamplingParams { temperature: c.temperature, top_p: 1.0, top_k: 0, seed: Some(0) };
    let (tm, dm, eos) = (target.model.clone(), draft.model.clone(), target.eos.clone());
    let (plain_s, spec_s, stats, identical, n) = with_pool(threads, || -> Result<_> {
        let (mut plain_time, mut spec_time, mut stats, mut identical, mut n) = (0.0, 0.0, SpecStats::default(), true, 0);
        let (mut plain_tokens, mut spec_tokens) = (0usize, 0usize);
        let start = Instant::now();
        loop {
            for p in prompts {
                let t = Instant::now();
                let a = generate_plain(&tm, p, c.max_tokens, &sampling, &eos, true).map_err(|e| anyhow::anyhow!("{e}"))?;
                plain_time += t.elapsed().as_secs_f64();
                let t = Instant::now();
                let (b, s) =
                    generate_speculative(&tm, &dm, p, c.max_tokens, c.gamma, &sampling, &eos, true).map_err(|e| anyhow::anyhow!("{e}"))?;
                spec_time += t.elapsed().as_secs_f64();
                plain_tokens += a.len();
                spec_tokens += b.len();
                identical &= a == b;
                stats.proposed += s.proposed;
                stats.accepted += s.accepted;
                stats.rounds += s.rounds;
                stats.generated += s.generated;
                n += 1;
            }
            if start.elapsed().as_secs_f64() >= c.duration_seconds {
                break;
            }
        }
        Ok((plain_tokens as f64 / plain_time, spec_tokens as f64 / spec_time, stats, identical, n))
    })??;
    eprintln!(
        "  speculative: target only {plain_s:.1} tok/s, speculative {spec_s:.1} tok/s, acceptance {:.1}%",
        stats.acceptance_rate() * 100.0
    );
    Ok(SpecResult {
        target: format!("{} as {}", path.display(), c.target_quantization),
        draft: format!("{} as {}", draft_path.display(), c.draft_quantization),
        gamma: c.gamma,
        temperature: c.temperature,
        prompts_run: n,
        target_only_tokens_per_second: plain_s,
        speculative_tokens_per_second: spec_s,
        speedup: spec_s / plain_s,
        acceptance_rate: stats.acceptance_rate(),
        mean_accepted_length: stats.mean_accepted_length(),
        identical_to_target: (c.temperature <= 0.0).then_some(identical),
    })
}

/// Per batch size: wall latency of `b` requests submitted together and their output tokens/s.
fn measure_side(v: &Variant, c: &CompareConfig, path: &Path, ids: &[u32], threads: usize, rec: &Recorder) -> Result<Vec<Vec<(f64, f64)>>> {
    let l = inferbench_engine::load(path, &load_options(&v.quantization)?).with_context(|| format!("loading {}", v.name))?;
    let max_b = c.batch_sizes.iter().copied().max().unwrap_or(1);
    let cfg = EngineConfig {
        max_num_seqs: max_b,
        threads: if v.threads > 0 { v.threads } else { threads },
        kv_cache_bytes: 1 << 30,
        ..Default::default()
    };
    let e = Engine::start(l.model.clone(), l.tokenizer.clone(), l.eos.clone(), cfg).map_err(|err| anyhow::anyhow!("{err}"))?;
    let prompt: Vec<u32> = ids.iter().cycle().take(c.input_tokens).copied().collect();
    let mut out = Vec::new();
    for &b in &c.batch_sizes {
        let prompts = vec![prompt.clone(); b];
        run_together(&e, &prompts, c.tokens_per_request, rec, "warmup")?;
        let mut its = Vec::new();
        for _ in 0..c.iterations {
            let t = Instant::now();
            let traces = run_together(&e, &prompts, c.tokens_per_request, rec, &format!("comparison/{}/batch_{b}", v.name))?;
            let wall = t.elapsed().as_secs_f64();
            its.push((wall * 1e3, traces.iter().map(|t| t.output_tokens as f64).sum::<f64>() / wall));
        }
        eprintln!("  comparison {} batch {b}: {:.1} tok/s", v.name, its.iter().map(|x| x.1).sum::<f64>() / its.len() as f64);
        out.push(its);
    }
    Ok(out)
}

fn compare(c: &CompareConfig, path: &Path, ids: &[u32], threads: usize, rec: &Recorder) -> Result<Comparison> {
    if c.iterations == 0 || c.batch_sizes.is_empty() || c.batch_sizes.contains(&0) || c.tokens_per_request == 0 || c.input_tokens == 0 {
        bail!("comparison: iterations, batch_sizes, input_tokens and tokens_per_request must be positive");
    }
    let base = measure_side(&c.baseline, c, path, ids, threads, rec)?;
    crate::proc::release_free_memory();
    let var = measure_side(&c.variant, c, path, ids, threads, rec)?;
    let rows: Vec<CompareRow> = c
        .batch_sizes
        .iter()
        .zip(base.iter().zip(&var))
        .map(|(&b, (bi, vi))| {
            let bl = dist(bi.iter().map(|x| x.0));
            let vl = dist(vi.iter().map(|x| x.0));
            let bt = dist(bi.iter().map(|x| x.1));
            let vt = dist(vi.iter().map(|x| x.1));
            CompareRow {
                batch_size: b,
                speedup: vt.mean / bt.mean,
                latency_reduction: 1.0 - vl.mean / bl.mean,
                baseline_iterations_ms: bi.iter().map(|x| x.0).collect(),
                variant_iterations_ms: vi.iter().map(|x| x.0).collect(),
                baseline_latency_ms: bl,
                variant_latency_ms: vl,
                baseline_tokens_per_second: bt,
                variant_tokens_per_second: vt,
            }
        })
        .collect();
    let n = rows.len() as f64;
    let average_speedup = rows.iter().map(|r| r.speedup).sum::<f64>() / n;
    let average_latency_reduction = rows.iter().map(|r| r.latency_reduction).sum::<f64>() / n;
    let faster = rows.iter().filter(|r| r.speedup > 1.0).count();
    let verdict = if faster == rows.len() {
        format!("{} is faster than {} at every batch size ({:.2}x on average)", c.variant.name, c.baseline.name, average_speedup)
    } else if faster == 0 {
        format!("{} is slower than {} at every batch size ({:.2}x on average)", c.variant.name, c.baseline.name, average_speedup)
    } else {
        format!("mixed: {} is faster at {faster} of {} batch sizes ({:.2}x on average)", c.variant.name, rows.len(), average_speedup)
    };
    Ok(Comparison { baseline: c.baseline.clone(), variant: c.variant.clone(), rows, average_speedup, average_latency_reduction, verdict })
}

fn write_reports(r: &ReportConfig, rep: &EngineReport) -> Result<()> {
    std::fs::create_dir_all(&r.output_dir).with_context(|| format!("cannot create {}", r.output_dir.display()))?;
    let stem = r.output_dir.join(format!("engine-{}", rep.model));
    let write = |ext: &str, bytes: &[u8]| -> Result<()> {
        let p = stem.with_extension(ext);
        inferbench_report::files::write_atomic(&p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
        println!("wrote {}", p.display());
        Ok(())
    };
    let text = text_report(rep);
    print!("{text}");
    if r.format.iter().any(|f| f == "json") {
        write("json", &serde_json::to_vec_pretty(rep)?)?;
    }
    if r.format.iter().any(|f| f == "csv") {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "input_tokens",
            "output_tokens",
            "runs",
            "ttft_ms_mean",
            "ttft_ms_std",
            "decode_tok_s_mean",
            "decode_tok_s_std",
            "e2e_ms_mean",
            "e2e_ms_std",
            "e2e_ms_min",
            "e2e_ms_max",
            "e2e_ms_median",
        ])?;
        for c in &rep.latency {
            let f = |v: f64| format!("{v:.3}");
            w.write_record([
                c.input_tokens.to_string(),
                c.output_tokens.to_string(),
                c.iterations.len().to_string(),
                f(c.ttft_ms.mean),
                f(c.ttft_ms.std),
                f(c.decode_tok_s.mean),
                f(c.decode_tok_s.std),
                f(c.e2e_ms.mean),
                f(c.e2e_ms.std),
                f(c.e2e_ms.min),
                f(c.e2e_ms.max),
                f(c.e2e_ms.median),
            ])?;
        }
        write("csv", &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    }
    if r.format.iter().any(|f| f == "text") {
        write("txt", text.as_bytes())?;
    }
    Ok(())
}

fn text_report(r: &EngineReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "\n==== Engine benchmark: {} ({} weights, {} threads) ====", r.model, r.weights, r.threads);
    if let Some(sys) = &r.system {
        let _ = writeln!(
            s,
            "system: {} ({} cores), {:.1} GiB RAM, {}; {}",
            sys.cpu_model,
            sys.cpu_cores,
            sys.memory_bytes as f64 / (1u64 << 30) as f64,
            sys.os,
            r.tool_version
        );
    }
    let _ = writeln!(s, "\nLatency (mean ± std [min, median, max] over {} runs)", r.config.latency.test_runs);
    let _ = writeln!(s, "{:>6} {:>6}  {:>30}  {:>24}  {:>16}", "in", "out", "TTFT ms", "decode tok/s", "E2E ms");
    for c in &r.latency {
        let d = |x: &Distribution| format!("{:.1} ± {:.1} [{:.1}, {:.1}, {:.1}]", x.mean, x.std, x.min, x.median, x.max);
        let _ = writeln!(
            s,
            "{:>6} {:>6}  {:>30}  {:>24}  {:>16}",
            c.input_tokens,
            c.output_tokens,
            d(&c.ttft_ms),
            format!("{:.1} ± {:.1}", c.decode_tok_s.mean, c.decode_tok_s.std),
            format!("{:.1} ± {:.1}", c.e2e_ms.mean, c.e2e_ms.std)
        );
    }
    let _ = writeln!(s, "\nThroughput");
    for (k, v) in &r.throughput {
        let _ = writeln!(s, "  {k:<44} {v:>10.2}");
    }
    let _ = writeln!(s, "\nMemory (MB)");
    for (k, v) in &r.memory {
        let _ = writeln!(s, "  {k:<44} {v:>10.1}");
    }
    if !r.quantization.is_empty() {
        let _ = writeln!(s, "\nQuantization (greedy tokens compared with the F32 reference)");
        let _ = writeln!(
            s,
            "  {:<8} {:>10} {:>11} {:>13} {:>10} {:>10}",
            "format", "load MB", "weights MB", "decode tok/s", "agreement", "identical"
        );
        for q in &r.quantization {
            let _ = writeln!(
                s,
                "  {:<8} {:>10.1} {:>11.1} {:>13.1} {:>9.1}% {:>6}/{}",
                q.format,
                q.load_mb,
                q.weights_mb,
                q.decode_tokens_per_second,
                q.token_agreement * 100.0,
                q.identical_outputs,
                q.prompts
            );
        }
    }
    if let Some(sp) = &r.speculative {
        let _ = writeln!(
            s,
            "\nSpeculative decoding: draft {} -> target {}, gamma {}, temperature {}",
            sp.draft, sp.target, sp.gamma, sp.temperature
        );
        let _ = writeln!(s, "  target only        {:>8.1} tok/s", sp.target_only_tokens_per_second);
        let _ = writeln!(s, "  speculative        {:>8.1} tok/s   speedup {:.2}x", sp.speculative_tokens_per_second, sp.speedup);
        let _ = writeln!(
            s,
            "  acceptance rate    {:>8.1}%   mean accepted length {:.2} tokens per target pass",
            sp.acceptance_rate * 100.0,
            sp.mean_accepted_length
        );
        if let Some(same) = sp.identical_to_target {
            let _ = writeln!(s, "  output identical to target-only greedy: {same}");
        }
    }
    if let Some(c) = &r.comparison {
        let _ = writeln!(
            s,
            "\nComparison: {} ({}) vs {} ({}), mean ± std over {} iterations",
            c.baseline.name, c.baseline.quantization, c.variant.name, c.variant.quantization, r.config.comparison.iterations
        );
        let _ = writeln!(
            s,
            "  {:>5} {:>20} {:>20} {:>16} {:>16} {:>8} {:>10}",
            "batch", "base latency ms", "var latency ms", "base tok/s", "var tok/s", "speedup", "lat. red."
        );
        for row in &c.rows {
            let _ = writeln!(
                s,
                "  {:>5} {:>20} {:>20} {:>16} {:>16} {:>7.2}x {:>9.1}%",
                row.batch_size,
                format!("{:.1} ± {:.1}", row.baseline_latency_ms.mean, row.baseline_latency_ms.std),
                format!("{:.1} ± {:.1}", row.variant_latency_ms.mean, row.variant_latency_ms.std),
                format!("{:.1} ± {:.1}", row.baseline_tokens_per_second.mean, row.baseline_tokens_per_second.std),
                format!("{:.1} ± {:.1}", row.variant_tokens_per_second.mean, row.variant_tokens_per_second.std),
                row.speedup,
                row.latency_reduction * 100.0
            );
        }
        let _ = writeln!(
            s,
            "  average speedup {:.2}x, average latency reduction {:.1}%",
            c.average_speedup,
            c.average_latency_reduction * 100.0
        );
        let _ = writeln!(s, "  verdict: {}", c.verdict);
    }
    if !r.targets.is_empty() {
        let _ = writeln!(s, "\nTargets");
        for c in &r.targets {
            let _ = writeln!(s, "  {:<32} {:>10.2} limit {:>10.2}  {}", c.key, c.value, c.limit, if c.pass { "pass" } else { "FAIL" });
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_line_and_key() {
        let e = parse_config("latency:\n  warmup_runs: 1\n  test_runs: many\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("latency.test_runs"), "{e}");
        let e = parse_config("latency:\n  warmup_runz: 1\n").unwrap_err();
        assert!(e.contains("unknown field `warmup_runz`"), "{e}");
        let c = parse_config("throughput:\n  batch_sizes: [2, 4]\ntargets:\n  m:\n    max_ttft_ms: 100\n").unwrap();
        assert_eq!(c.throughput.batch_sizes, vec![2, 4]);
        assert_eq!(c.latency, LatencyConfig::default());
        assert_eq!(c.targets["m"]["max_ttft_ms"], 100.0);
    }

    #[test]
    fn shipped_configs_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                let c = load_config(&p).unwrap();
                c.validate().unwrap();
                n += 1;
            }
        }
        assert!(n >= 1);
    }
}
