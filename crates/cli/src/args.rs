//! Command-line flags, as clap parses them. Flag names follow vLLM's `bench serve` where the
//! concept is the same, so existing scripts carry over.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `--dataset-name` values.
const DATASETS: [&str; 9] = inferbench_data::DatasetKind::NAMES;

/// Benchmark LLM inference: serving benchmarks against any OpenAI-compatible server, and an
/// embedded simulator to try it on.
///
/// Exit codes: 0 success, 1 error, 2 bad usage, 3 a gate failed (compare found a regression, an
/// engine target was missed, --max-error-rate was exceeded), 130 interrupted (what was measured is written).
// No `Debug` on the types that hold `--api-key`: nothing can print it by accident.
#[derive(Parser)]
#[command(name = "inferbench", version, about, propagate_version = true)]
pub struct Cli {
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace, off), or a tracing
    /// filter such as `inferbench_load=debug`.
    #[arg(long, global = true, default_value = "warn", env = "INFERBENCH_LOG", value_parser = parse_log)]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run one serving benchmark against an OpenAI-compatible (or TGI) server.
    #[command(after_long_help = crate::examples::RUN)]
    Run(Box<RunArgs>),
    /// Serve the OpenAI-compatible API: a GGUF model on CPU (`--model`, the default model when
    /// omitted, pulled if missing), or `--sim` for the latency simulator.
    #[command(after_long_help = crate::examples::SERVE)]
    Serve(ServeArgs),
    /// Benchmark a model in process (no HTTP): latency by input x output length, memory,
    /// throughput, quantization, speculative decoding, baseline vs variant, performance targets.
    /// Configured by YAML (--config); the keys people change most are also flags.
    #[command(after_long_help = format!("{ENGINE_KEYS}\n\n{}", crate::examples::ENGINE))]
    Engine(Box<EngineBenchArgs>),
    /// Run a series of benchmarks at rising concurrency or request rate: finds the knee (where
    /// throughput stops growing while latency climbs) and the highest load meeting the SLOs.
    #[command(after_long_help = crate::examples::SWEEP)]
    #[command(mut_arg("num_prompts", |a| a.help(
        "Requests per step [default: 8 per stream for --concurrencies (at least 32), 20 seconds' worth for --rates (at least 32)]"
    )))]
    Sweep(Box<SweepArgs>),
    /// Compare two results (runs, sweeps or engine benchmarks; baseline then candidate): change
    /// per metric, Mann-Whitney significance on the per-request samples, a regression gate for CI.
    #[command(after_long_help = crate::examples::COMPARE)]
    Compare(CompareArgs),
    /// Capacity and cost from a sweep: sustainable load per replica under SLOs, replicas for a
    /// target rate or user count with headroom, cost per million tokens, what-if SLO table.
    #[command(after_long_help = crate::examples::PLAN)]
    Plan(PlanArgs),
    /// Manage the local model cache: pull, list, verify.
    #[command(subcommand, after_long_help = crate::examples::MODEL)]
    Model(ModelCmd),
    /// Start the embedded server, benchmark it at a few concurrency levels, stop it.
    #[command(after_long_help = crate::examples::DEMO)]
    Demo(DemoArgs),
    /// Load a dataset as `run` would and describe it: counts, token lengths, categories, load time.
    #[command(after_long_help = crate::examples::DATASET)]
    Dataset(DatasetCmdArgs),
    /// Re-render saved results (runs, sweeps, engine benchmarks, comparisons, plans) as text,
    /// Markdown, CSV, JSON or a self-contained HTML page with charts.
    #[command(after_long_help = crate::examples::REPORT)]
    Report(ReportArgs),
    /// The results store (SQLite): every result written is indexed; `import` indexes files
    /// written before.
    #[command(subcommand)]
    Store(StoreCmd),
    /// A metric over time for one workload, from the results store, with runs that moved beyond
    /// the noise of the runs before them flagged (seed 002's trend report).
    #[command(after_long_help = crate::examples::HISTORY)]
    History(HistoryArgs),
    /// Merge the shards of one run (`run --shard I/N`) into one result: counters summed,
    /// throughput over the union of the shards' windows, percentiles from the union of their
    /// records (from their merged histograms when records are gone, with the error bound).
    #[command(after_long_help = crate::examples::MERGE)]
    Merge(MergeArgs),
    /// Run a benchmark as a Kubernetes Indexed Job: render the manifests, or run the rendered
    /// pods' commands here as local processes.
    #[command(subcommand, after_long_help = crate::examples::K8S)]
    K8s(K8sCmd),
    /// Serve the HTTP API and the web dashboard: launch runs, sweeps and engine benchmarks over
    /// HTTP, queue them (one at a time, the queue kept in the results database), watch them live
    /// (server-sent events), and read, compare and trend their results.
    #[command(after_long_help = crate::examples::API)]
    Api(ApiArgs),
    /// Import another tool's results as ours (vllm bench serve, guidellm, inference-perf,
    /// AIPerf): figures recomputed from its per-request data where it kept them, mapped from its
    /// summary where not; what it did not measure is left empty. Then compare, report, plan
    /// and history take them like our own.
    #[command(after_long_help = crate::examples::IMPORT)]
    Import(ImportArgs),
    /// Explore a configuration space: for each treatment of a design (factorial, grid, random or
    /// adaptive), stand a server up, run the workload, collect the result and tear the server
    /// down; then rank the treatments against an objective under constraints, draw the Pareto
    /// frontiers and main effects, and recommend, in sentences backed by the numbers.
    #[command(after_long_help = crate::examples::EXPLORE)]
    Explore(ExploreArgs),
}

/// `inferbench explore`.
#[derive(Clone, Debug, Args)]
pub struct ExploreArgs {
    /// The exploration: server (or external), factors, workload, design, objective, constraints
    /// (YAML or JSON; see config/explore-*.yaml). The flags below override its keys.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Where runs, server logs and explore.json go [default: the config's output_dir, else
    /// results/explore-<name>]. Treatments already measured there are skipped (resume).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// The design: factorial, grid, random or adaptive (overrides design.kind; random takes
    /// --n and --seed, adaptive --budget).
    #[arg(long, value_name = "KIND")]
    pub design: Option<String>,
    /// Random design: how many treatments to draw.
    #[arg(long, value_name = "N")]
    pub n: Option<usize>,
    /// Random design: the seed of the draw.
    #[arg(long, value_name = "SEED")]
    pub seed: Option<u64>,
    /// Adaptive design: most treatments to run.
    #[arg(long, value_name = "N")]
    pub budget: Option<usize>,
    /// Metric to maximise (overrides objective): output_throughput_per_replica, ...
    #[arg(long, value_name = "METRIC", conflicts_with = "minimize")]
    pub maximize: Option<String>,
    /// Metric to minimise (overrides objective): tpot_p99, cost_per_million_tokens, ...
    #[arg(long, value_name = "METRIC")]
    pub minimize: Option<String>,
    /// A constraint, METRIC <= LIMIT or METRIC >= LIMIT (repeatable; replaces the config's):
    /// "ttft_p95 <= 2000", "tpot_p99 <= 50", "success_rate >= 0.99".
    #[arg(long, value_name = "RULE")]
    pub constraint: Vec<String>,
    /// Runs per treatment; figures are their means.
    #[arg(long, value_name = "N")]
    pub repeat: Option<u32>,
    /// Seconds of rest between runs.
    #[arg(long, value_name = "SECONDS")]
    pub cooldown: Option<f64>,
    /// Benchmark this running server instead of standing one up (no server factors then).
    #[arg(long, value_name = "URL")]
    pub external: Option<String>,
    /// Price of one replica per hour, for cost metrics.
    #[arg(long, value_name = "USD")]
    pub price_per_hour: Option<f64>,
    /// The load generator: inferbench, vllm, guidellm, inference-perf or aiperf.
    #[arg(long, value_name = "TOOL")]
    pub harness: Option<String>,
    /// Bearer token for the server; never written anywhere.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Print explore.json to stdout instead of the text summary.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but the summary and errors.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `inferbench import`.
#[derive(Clone, Debug, Args)]
pub struct ImportArgs {
    /// The tool that wrote the files: vllm, guidellm, inference-perf or aiperf.
    #[arg(long = "from", value_name = "TOOL")]
    pub from: String,
    /// Its result files: vLLM's --save-result JSON; guidellm's benchmarks.json; inference-perf's
    /// summary_lifecycle_metrics.json (config.yaml beside it); AIPerf's profile_export_aiperf.json
    /// (profile_export.jsonl beside it).
    #[arg(required = true, value_name = "FILES")]
    pub files: Vec<PathBuf>,
    /// Write the imported result to this file (one input file only).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Where imported results go otherwise, as imported-<tool>-<file stem>.json.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub result_dir: PathBuf,
    /// guidellm: which of the file's benchmarks (1 is the first).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub benchmark: usize,
    /// A label carried into the imported result, KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Flags of `inferbench api`.
#[derive(Clone, Debug, Args)]
pub struct ApiArgs {
    /// Address to listen on. Any address but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the chosen URL is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Bearer token every /api route then needs (`Authorization: Bearer <token>`), compared in
    /// constant time and never logged. Required to listen on anything but loopback.
    #[arg(long, env = "INFERBENCH_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where each benchmark's files go: <DIR>/<id>/result.json, .csv, .records.jsonl, .html.
    #[arg(long, value_name = "DIR", default_value = "results/api")]
    pub result_dir: PathBuf,
    /// The results database: the queue and the index of results (default: the store every
    /// command records in; see `inferbench history`).
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,
    /// Largest request body accepted, in bytes (413 past it).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
}

/// `inferbench merge`.
#[derive(Clone, Debug, Args)]
pub struct MergeArgs {
    /// Shard result files, or directories holding them (other files there are ignored).
    #[arg(required = true, value_name = "FILES|DIR")]
    pub inputs: Vec<PathBuf>,
    /// Where the merged result goes (JSON; a CSV row is written beside it).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Wait up to this many seconds for every shard's result to appear (a merge Job started
    /// beside its shards).
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<f64>,
    /// Merge the shards' accumulator states even when their records are there (faster; the
    /// percentiles are then within 0.1 %).
    #[arg(long)]
    pub from_state: bool,
    /// Also write the HTML report beside the merged result.
    #[arg(long)]
    pub html: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `inferbench k8s`.
#[derive(Clone, Debug, Subcommand)]
pub enum K8sCmd {
    /// Write the manifests: a ConfigMap with the spec, an Indexed Job of N shards, a merge Job,
    /// a claim for the shared results volume, and a kustomization. The target's API key comes
    /// from a Secret by reference, never from the manifests.
    Render(Box<K8sRenderArgs>),
    /// Run rendered manifests' pods as local processes, with the environment Kubernetes would
    /// give them (JOB_COMPLETION_INDEX, the mounted files), then their merge.
    RunLocal(K8sRunLocalArgs),
}

/// `inferbench k8s render`.
#[derive(Clone, Debug, Args)]
pub struct K8sRenderArgs {
    /// How many shards (pods) share the load.
    #[arg(long)]
    pub shards: u64,
    /// The container image with inferbench in it (see deploy/Dockerfile).
    #[arg(long)]
    pub image: String,
    /// The namespace of every object.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// The name the objects are given (and prefixed with).
    #[arg(long, default_value = "inferbench")]
    pub name: String,
    /// When the shards start measuring (RFC 3339 or Unix seconds); default: 5 minutes after
    /// rendering, printed. Apply the manifests before then.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
    /// A Secret holding the target's API key, NAME or NAME:KEY (key default: api-key); it
    /// reaches the pods as OPENAI_API_KEY and is never written into the manifests.
    #[arg(long, value_name = "NAME[:KEY]")]
    pub api_key_secret: Option<String>,
    /// An existing ReadWriteMany claim for the results; default: one is rendered.
    #[arg(long, value_name = "NAME")]
    pub pvc: Option<String>,
    /// The rendered claim's size.
    #[arg(long, default_value = "10Gi")]
    pub storage: String,
    /// The rendered claim's storage class (must support ReadWriteMany).
    #[arg(long)]
    pub storage_class: Option<String>,
    /// CPU and memory each shard pod requests (and is limited to).
    #[arg(long, default_value = "2")]
    pub cpu: String,
    /// Memory each shard pod requests (and is limited to).
    #[arg(long, default_value = "2Gi")]
    pub memory: String,
    /// Where the manifests go (a directory; `kubectl apply -k DIR` applies them).
    #[arg(long, short, default_value = "k8s")]
    pub output: PathBuf,
    /// The run's flags, after `--`: what `inferbench run` would take (workload, target, output
    /// options). --api-key is refused: use --api-key-secret.
    #[arg(last = true, value_name = "RUN FLAGS")]
    pub run: Vec<String>,
}

/// `inferbench k8s run-local`.
#[derive(Clone, Debug, Args)]
pub struct K8sRunLocalArgs {
    /// The rendered directory (from `k8s render`).
    pub dir: PathBuf,
    /// Where the pods' volumes live here (the shared results volume becomes WORK/results).
    #[arg(long, default_value = "k8s-local")]
    pub work: PathBuf,
    /// Start the shards at this time instead of the rendered one (RFC 3339, Unix seconds, or
    /// +SECONDS from now).
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
}

/// Where results are indexed. Default: $INFERBENCH_STORE, else the user's data directory
/// (~/.local/share/inferbench/results.sqlite).
#[derive(Clone, Debug, Args, Default)]
pub struct StoreArgs {
    /// The results database (SQLite) to record in.
    #[arg(long, value_name = "PATH", help_heading = "Store")]
    pub store: Option<PathBuf>,
    /// Do not record this result in the results database.
    #[arg(long, help_heading = "Store", conflicts_with = "store")]
    pub no_store: bool,
}

/// `inferbench store`.
#[derive(Clone, Debug, Subcommand)]
pub enum StoreCmd {
    /// Index every result file under a directory (runs, sweeps, engine, compare, plan).
    Import {
        /// The directory (searched recursively).
        dir: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `inferbench history`.
#[derive(Clone, Debug, Args)]
pub struct HistoryArgs {
    /// The metric: ttft_p99, tpot_p50, e2el_mean, output_throughput, request_goodput, ...
    #[arg(long)]
    pub metric: String,
    /// Only runs of this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Only runs with this label, KEY=VALUE (repeatable).
    #[arg(long)]
    pub label: Vec<String>,
    /// The workload fingerprint to follow [default: the newest matching run's].
    #[arg(long, value_name = "FP")]
    pub workload: Option<String>,
    /// Previous runs the noise is measured on.
    #[arg(long, default_value_t = 5)]
    pub window: usize,
    /// Standard deviations from their mean beyond which a run is flagged.
    #[arg(long, default_value_t = 3.0)]
    pub sigmas: f64,
    /// And the least change from their mean that is flagged, e.g. 5% or 0.05.
    #[arg(long, default_value = "5%", value_parser = crate::compare::parse_fraction)]
    pub min_change: f64,
    /// Also write the trend as an HTML chart here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `inferbench report`.
#[derive(Clone, Debug, Args)]
pub struct ReportArgs {
    /// Result files (JSON) written by run, sweep, engine, compare or plan.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// text, md, csv, json or html. HTML of a run reads the records and time series beside it.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Where to write: a file for one input, a directory for several [default: standard
    /// output; for html, beside each input as <name>.html].
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Inter-arrival distribution.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ArrivalArg {
    /// Gamma-distributed gaps (Poisson at --burstiness 1).
    Poisson,
    /// Evenly spaced sends at exactly --request-rate.
    Constant,
}

/// Ramp shape.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RampArg {
    /// Rate grows linearly.
    Linear,
    /// Rate grows geometrically.
    Exponential,
}

/// Flags of `inferbench run`.
#[derive(Clone, Args)]
pub struct RunArgs {
    /// Server protocol: openai (/v1/completions), openai-chat (/v1/chat/completions), vllm (openai
    /// plus ignore_eos/min_tokens for exact output lengths), tgi (/generate_stream).
    #[arg(long, default_value = "openai", help_heading = "Target")]
    pub backend: String,
    /// Server base URL (http only).
    #[arg(long, default_value = "http://127.0.0.1:8000", help_heading = "Target")]
    pub base_url: String,
    /// Endpoint path; defaults to the backend's usual one.
    #[arg(long, help_heading = "Target")]
    pub endpoint: Option<String>,
    /// Model name to request; defaults to the first model the server lists at /v1/models.
    #[arg(long, help_heading = "Target")]
    pub model: Option<String>,
    /// Bearer token for the server. Never written to results or logs.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true, help_heading = "Target")]
    pub api_key: Option<String>,
    /// Per-request timeout in seconds, connect to last byte (6 h by default, as vLLM's); slower
    /// requests fail as `timeout`.
    #[arg(long, default_value_t = inferbench_core::spec::DEFAULT_REQUEST_TIMEOUT_S, help_heading = "Target")]
    pub request_timeout: f64,
    /// Most seconds opening a connection may take; slower connects fail as `connect_timeout`.
    #[arg(long, default_value_t = 10.0, help_heading = "Target")]
    pub connect_timeout: f64,
    /// Most seconds without a byte once an answer has started (a stalled stream); such requests
    /// fail as `idle_timeout`. Default: no limit.
    #[arg(long, help_heading = "Target")]
    pub idle_timeout: Option<f64>,
    /// A PEM file of CA certificates to trust for an https:// target, beside the system's roots
    /// (for a private CA or a self-signed server). HTTPS_PROXY, HTTP_PROXY and NO_PROXY are
    /// honoured as curl honours them.
    #[arg(long, value_name = "FILE", help_heading = "Target")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Do not check the server's TLS certificate (the traffic is still encrypted); warned once
    /// and written into the result.
    #[arg(long, help_heading = "Target")]
    pub insecure: bool,
    /// Count the tokens of every N-th request on the client too (the whole text, once) and
    /// report how often and by how much they differ from the server's usage; 0 turns it off.
    /// A sample, because encoding an answer costs about as much CPU as receiving it.
    #[arg(long, default_value_t = 32, help_heading = "Metrics")]
    pub reconcile_every: u64,
    /// Empty the server's prefix cache before the run (vLLM's POST /reset_prefix_cache), so the
    /// run starts cold; the run says whether the server had the route.
    #[arg(long, help_heading = "Target")]
    pub reset_prefix_cache: bool,
    /// Wait up to this many seconds for the server to come up (its /v1/models answering) before
    /// the run, retrying every second; 0 fails at once when it is down.
    #[arg(long, default_value_t = 0.0, help_heading = "Target")]
    pub ready_check_timeout_sec: f64,
    /// Most bytes one streamed line or event, or a whole non-streamed answer, may take; past it
    /// the request fails as `overflow` (a misbehaving server cannot exhaust the client's memory).
    #[arg(long, default_value_t = 8 << 20, help_heading = "Target")]
    pub max_response_bytes: usize,
    /// Run even when the server's /tokenize counts the first prompts more than 5% differently
    /// from --tokenizer (prompt lengths are then not what was asked for).
    #[arg(long, help_heading = "Target")]
    pub allow_tokenizer_mismatch: bool,
    /// Ask for non-streamed responses (TTFT then equals E2E latency).
    #[arg(long, help_heading = "Target")]
    pub no_stream: bool,

    #[command(flatten)]
    pub data: DatasetArgs,
    /// Send ignore_eos and min_tokens so outputs have exactly the requested length (implied by
    /// --backend vllm).
    #[arg(long, help_heading = "Workload")]
    pub ignore_eos: bool,
    /// Sampling temperature (left to the server when absent).
    #[arg(long, help_heading = "Workload")]
    pub temperature: Option<f64>,
    /// Nucleus sampling probability mass.
    #[arg(long, help_heading = "Workload")]
    pub top_p: Option<f64>,
    /// Top-k sampling cut-off.
    #[arg(long, help_heading = "Workload")]
    pub top_k: Option<i64>,
    /// Seed sent to the server for sampling.
    #[arg(long, help_heading = "Workload")]
    pub sampling_seed: Option<u64>,
    /// Extra JSON object merged into every request body, e.g. '{"repetition_penalty":1.1}'.
    #[arg(long, help_heading = "Workload")]
    pub extra_body: Option<String>,

    /// Number of measured requests [default: 1000, or no limit with --duration]. With
    /// --duration, an upper bound.
    #[arg(long, help_heading = "Load")]
    pub num_prompts: Option<u64>,
    /// Keep sending for this many seconds instead of a fixed count.
    #[arg(long, help_heading = "Load")]
    pub duration: Option<f64>,
    /// Requests per second, or inf to send everything at once (then --max-concurrency paces it).
    #[arg(long, default_value = "inf", help_heading = "Load")]
    pub request_rate: String,
    /// Gamma shape of inter-arrival gaps: 1 is Poisson, below 1 burstier, above 1 smoother.
    #[arg(long, default_value_t = 1.0, help_heading = "Load")]
    pub burstiness: f64,
    /// Arrival process.
    #[arg(long, value_enum, default_value = "poisson", help_heading = "Load")]
    pub arrival: ArrivalArg,
    /// Most requests in flight at once (a closed-loop cap; requests wait at the gate, and the
    /// wait is reported separately from latency).
    #[arg(long, help_heading = "Load")]
    pub max_concurrency: Option<u64>,
    /// Ramp the request rate from --ramp-up-start-rps to --ramp-up-end-rps over the run.
    #[arg(long, value_enum, help_heading = "Load", requires_all = ["ramp_up_start_rps", "ramp_up_end_rps"])]
    pub ramp_up_strategy: Option<RampArg>,
    /// Rate at the start of the ramp.
    #[arg(long, help_heading = "Load")]
    pub ramp_up_start_rps: Option<f64>,
    /// Rate at the end of the ramp.
    #[arg(long, help_heading = "Load")]
    pub ramp_up_end_rps: Option<f64>,
    /// Requests sent first and left out of the results (warms caches and connections).
    #[arg(long, visible_alias = "num-warmups", default_value_t = 0, help_heading = "Load")]
    pub warmup_requests: u64,
    /// Connections to open before the measured window, so its first wave does not connect.
    ///
    /// Without it, the first request on each connection pays the TCP connect inside vLLM's TTFT
    /// (reported apart as connect time and TTFT without connect). Use --max-concurrency's value
    /// for a steady-state measurement.
    #[arg(long, default_value_t = 0, help_heading = "Load")]
    pub warmup_connections: u64,
    /// Prefix of the X-Request-Id header sent with every request (vLLM's flag); the header is
    /// PREFIX plus the record's id, so server logs and packet captures name the request.
    /// An empty prefix sends no header; `uuid` sends UUID-shaped ids holding the record's id
    /// (llama-cpp-python's server answers any other X-Request-Id with an empty HTTP 400).
    #[arg(long, default_value = "inferbench-", help_heading = "Target")]
    pub request_id_prefix: String,
    /// Seed for prompts and arrivals: the same seed gives the same workload.
    #[arg(long, default_value_t = 0, help_heading = "Load")]
    pub seed: u64,
    /// After Ctrl-C, seconds to wait for in-flight requests before cancelling them.
    #[arg(long, default_value_t = 5.0, help_heading = "Load")]
    pub grace_period: f64,
    /// Async worker threads for the client (default: one per core).
    #[arg(long, help_heading = "Load", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// Grade thresholds for mean TTFT: EXCELLENT_MS,GOOD_MS (slower "needs work").
    #[arg(long, default_value = "100,200", value_parser = inferbench_core::grade::parse_thresholds, help_heading = "Metrics")]
    pub grade_ttft: inferbench_core::grade::Thresholds,
    /// Grade thresholds for mean TPOT: EXCELLENT_MS,GOOD_MS.
    #[arg(long, default_value = "50,100", value_parser = inferbench_core::grade::parse_thresholds, help_heading = "Metrics")]
    pub grade_tpot: inferbench_core::grade::Thresholds,
    /// SLOs for goodput, e.g. --goodput ttft:500 tpot:50 (ms; metrics ttft, tpot, itl, e2el).
    #[arg(long, num_args = 1.., help_heading = "Metrics")]
    pub goodput: Vec<String>,
    /// Percentiles to report, comma-separated.
    #[arg(long, default_value = "50,90,95,99", help_heading = "Metrics")]
    pub metric_percentiles: String,
    /// Fail (exit 3) when more than this share of requests failed, e.g. 1% or 0.01 (the results
    /// are still written). A run in which every request failed always exits 1.
    #[arg(long, value_parser = crate::compare::parse_fraction, help_heading = "Metrics")]
    pub max_error_rate: Option<f64>,
    /// Metrics whose percentiles are printed, comma-separated (ttft, tpot, itl, e2el).
    #[arg(long, default_value = "ttft,tpot,itl,e2el", help_heading = "Metrics")]
    pub percentile_metrics: String,

    /// Directory for the result JSON, CSV and per-request JSONL.
    #[arg(long, default_value = "results", help_heading = "Output")]
    pub result_dir: PathBuf,
    /// File name stem for the results (default: backend, rate, concurrency, date).
    #[arg(long, help_heading = "Output")]
    pub result_filename: Option<String>,
    /// Accepted for vLLM compatibility: results are always saved.
    #[arg(long, hide = true)]
    pub save_result: bool,
    /// Keep each request's generated text in the per-request JSONL.
    #[arg(long, help_heading = "Output")]
    pub save_generated_text: bool,
    /// Also write a self-contained HTML report beside the JSON (<name>.html): latency
    /// histograms and CDFs, throughput and in-flight over time, a per-request timeline, the
    /// monitors' series (a sweep: latency against throughput with the knee marked).
    #[arg(long, help_heading = "Output")]
    pub html: bool,
    /// Also write llm-d's Benchmark Report v0.2 of the run to this file (JSON), the format
    /// llm-d-benchmark's analysis tools and dashboards read.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub benchmark_report: Option<PathBuf>,
    /// Also write vLLM's per-request arrays into the result JSON (input_lens, output_lens,
    /// ttfts, itls, start_times, generated_texts, errors), as vLLM's --save-detailed does.
    /// latencies and queue_times are always written.
    #[arg(long, help_heading = "Output")]
    pub save_detailed: bool,
    /// No progress bar.
    #[arg(long, help_heading = "Output")]
    pub disable_tqdm: bool,
    /// Print nothing but errors (results are still written).
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
    /// A label carried into every result file, KEY=VALUE (repeatable, or several after one
    /// flag), for finding and grouping results later. vLLM's --metadata is the same flag.
    #[arg(long, visible_alias = "metadata", num_args = 1.., help_heading = "Output")]
    pub label: Vec<String>,
    /// Re-run exactly the workload of a saved spec or result (a run's JSON, a sweep's; flags that
    /// shape the workload are then taken from the file, output flags from the command line).
    #[arg(long, help_heading = "Target")]
    pub spec: Option<PathBuf>,
    /// Run one shard of the global schedule, I/N (I from 0): every shard derives the same arrival
    /// times and prompts from the spec and seed and sends the requests whose ordinal is its own;
    /// --max-concurrency is split so the shards' caps sum to it. Merge the shards with
    /// `inferbench merge`. See docs/scale.md.
    #[arg(long, value_name = "I/N", help_heading = "Scale-out")]
    pub shard: Option<inferbench_core::shard::Shard>,
    /// Start measuring at this wall-clock time (RFC 3339, e.g. 2026-12-03T18:00:00Z, or Unix
    /// seconds), so shards on several machines begin together. The result records how late the
    /// start was and the clock's synchronisation.
    #[arg(long, value_name = "TIME", help_heading = "Scale-out")]
    pub start_at: Option<String>,
    #[command(flatten)]
    pub monitor: MonitorArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// What is watched besides the requests: the server's metrics, GPUs, this machine, alerts.
#[derive(Clone, Debug, Args)]
pub struct MonitorArgs {
    /// The server's Prometheus page, scraped every --metrics-interval: `auto` (the target's
    /// /metrics, if it answers), `off`, or a URL. Gauges become time series, counters window
    /// deltas, latency histograms the server's own percentiles for this run.
    #[arg(long, value_name = "auto|off|URL", default_value = "auto", num_args = 0..=1, default_missing_value = "auto", help_heading = "Monitoring")]
    pub server_metrics: String,
    /// Seconds between scrapes of the server's metrics.
    #[arg(long, default_value_t = 1.0, help_heading = "Monitoring")]
    pub metrics_interval: f64,
    /// Seconds between readings of the GPUs (NVML) and of this machine.
    #[arg(long, default_value_t = 1.0, help_heading = "Monitoring")]
    pub gpu_monitor_interval: f64,
    /// GPU indices to watch, comma-separated (default: all; `none`: no GPU monitoring).
    #[arg(long, value_name = "LIST", help_heading = "Monitoring")]
    pub gpus: Option<String>,
    /// Also write the GPU section alone to this file (benchmark_results_gpu.json).
    #[arg(long, value_name = "FILE", help_heading = "Monitoring")]
    pub gpu_results_file: Option<PathBuf>,
    /// A local server process whose CPU and memory are watched.
    #[arg(long, value_name = "PID", help_heading = "Monitoring")]
    pub server_pid: Option<u32>,
    /// Do not read this machine's CPU, memory, network and RAPL energy.
    #[arg(long, help_heading = "Monitoring")]
    pub no_host_monitor: bool,
    /// An alert checked during the run on a rolling window (repeatable): METRIC>VALUE or
    /// METRIC<VALUE, e.g. 'p95_ttft_ms>5000', 'p95_latency>5s', 'error_rate>1%',
    /// 'kv_cache_usage>95%', 'memory_usage>95%', 'output_throughput<100'. Each fires once.
    #[arg(long, value_name = "RULE", help_heading = "Monitoring")]
    pub alert: Vec<String>,
    /// Seconds of recent requests the alerts are judged on.
    #[arg(long, default_value_t = 10.0, help_heading = "Monitoring")]
    pub alert_window: f64,
    /// Stop the run when an alert fires: everything measured is written, and the exit code is 3.
    #[arg(long, help_heading = "Monitoring")]
    pub abort_on_alert: bool,
    /// Serve the run's own live metrics in Prometheus text at http://127.0.0.1:PORT/metrics
    /// (requests by outcome, in flight, tokens, TTFT / ITL / E2EL histograms), for Grafana.
    #[arg(long, value_name = "PORT", help_heading = "Monitoring")]
    pub metrics_port: Option<u16>,
}

/// Where prompts come from (shared by `run` and `dataset`).
#[derive(Clone, Debug, Args)]
pub struct DatasetArgs {
    /// Dataset: random (exact token lengths), sharegpt (JSON / JSONL / directory), sonnet (a text
    /// file cut to lengths), prompts (one per line, `# category` headers), jsonl (`prompt` or
    /// `messages`, optional `output_tokens` and `category`), shared-prefix (prefix-cache groups),
    /// builtin (short / medium / long, several categories), multi-turn (conversations sent as
    /// sessions, history growing turn by turn; --num-prompts counts sessions), trace (a
    /// production trace replayed with its own arrival times and lengths: --trace-format).
    /// Default: builtin, or random when a --random-* flag is given.
    #[arg(long, value_parser = DATASETS, help_heading = "Workload")]
    pub dataset_name: Option<String>,
    /// File (or, for sharegpt, directory) the dataset is read from.
    #[arg(long, help_heading = "Workload")]
    pub dataset_path: Option<PathBuf>,
    /// Take file datasets in file order instead of a seeded shuffle.
    #[arg(long, help_heading = "Workload")]
    pub disable_shuffle: bool,
    /// Tokenizer for prompt generation and for counting when the server reports no usage:
    /// auto (the one the server names at /v1/models, as `inferbench serve` does; or the model
    /// the server names by a local .gguf or directory path, as llama.cpp's servers do; else
    /// cl100k_base), cl100k_base, o200k_base or gpt2 (bundled), a Hugging Face tokenizer.json
    /// file or model directory, or a .gguf model file (its embedded tokenizer). A chat template
    /// that comes with it (tokenizer_config.json or GGUF) counts openai-chat prompts as the model
    /// sees them. Where the server has vLLM's /tokenize, the first prompts are counted there too,
    /// and a difference over 5% stops the run (see --allow-tokenizer-mismatch).
    #[arg(long, default_value = "auto", help_heading = "Workload")]
    pub tokenizer: String,
    /// Prompt length in tokens (random; also sonnet and the shared-prefix suffix) [default: 1024].
    #[arg(long, help_heading = "Workload")]
    pub random_input_len: Option<u32>,
    /// Output length in tokens (sent as max_tokens), and the output length of prompts that
    /// carry none [default: 128].
    #[arg(long, help_heading = "Workload")]
    pub random_output_len: Option<u32>,
    /// Draw random lengths uniformly from len*(1-r)..len*(1+r) [default: 0].
    #[arg(long, help_heading = "Workload")]
    pub random_range_ratio: Option<f64>,
    /// Tokens of a prefix shared by prompts (random, sonnet, shared-prefix) [default: 0].
    #[arg(long, help_heading = "Workload")]
    pub random_prefix_len: Option<u32>,
    /// User turns per generated conversation (multi-turn without --dataset-path).
    #[arg(long, default_value_t = 3, help_heading = "Workload")]
    pub turns: u32,
    /// Groups of prompts with their own shared prefix (shared-prefix dataset).
    #[arg(long, default_value_t = 8, help_heading = "Workload")]
    pub prefix_groups: u32,
    /// Force this output length on file datasets instead of the reference reply's length or
    /// the file's `output_tokens`.
    #[arg(long, alias = "sharegpt-output-len", alias = "custom-output-len", help_heading = "Workload")]
    pub fixed_output_len: Option<u32>,
    /// Drop dataset prompts shorter than this many tokens (counted, and reported as skipped).
    #[arg(long, help_heading = "Workload")]
    pub min_input_len: Option<u32>,
    /// Drop dataset prompts longer than this many tokens (e.g. the server's context length).
    #[arg(long, help_heading = "Workload")]
    pub max_input_len: Option<u32>,
    /// Trace file format (with --dataset-name trace): mooncake (JSONL: timestamp ms,
    /// input_length, output_length, hash_ids; equal hash ids become equal 512-token prompt
    /// blocks), azure (CSV: TIMESTAMP, ContextTokens, GeneratedTokens), burstgpt (CSV:
    /// Timestamp, Request tokens, Response tokens; Model and Log Type become categories).
    /// Requests are sent at the trace's times; --num-prompts takes the first N.
    #[arg(long, value_parser = ["mooncake", "azure", "burstgpt"], help_heading = "Workload")]
    pub trace_format: Option<String>,
    /// Replay the trace this many times faster (2 halves every gap) [default: 1].
    #[arg(long, help_heading = "Workload")]
    pub trace_speedup: Option<f64>,
    /// Replay only START:END, in seconds from the trace's first request (e.g. 600:1200).
    #[arg(long, value_name = "START:END", help_heading = "Workload")]
    pub trace_window: Option<String>,
}

/// Flags of `inferbench dataset`.
#[derive(Clone, Debug, Args)]
pub struct DatasetCmdArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Prompts to draw.
    #[arg(long, default_value_t = 1000)]
    pub num_prompts: u64,
    /// Seed: the same seed draws the same prompts as `run --seed`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the drawn prompts as JSON lines (the `jsonl` dataset format), to freeze a workload.
    #[arg(long)]
    pub save: Option<PathBuf>,
}

/// Flags of `inferbench serve`.
#[derive(Clone, Args)]
pub struct ServeArgs {
    /// Serve the latency simulator (no model needed).
    #[arg(long, conflicts_with = "model")]
    pub sim: bool,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the chosen URL is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Require this bearer token on /v1 routes.
    #[arg(long, env = "INFERBENCH_SERVER_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with --ssl-keyfile), as vLLM's flag does.
    #[arg(long, value_name = "FILE", requires = "ssl_keyfile")]
    pub ssl_certfile: Option<std::path::PathBuf>,
    /// The PEM private key of --ssl-certfile.
    #[arg(long, value_name = "FILE", requires = "ssl_certfile")]
    pub ssl_keyfile: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub sim_args: SimArgs,
}

/// The simulator's latency model and fault modes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Simulator")]
pub struct SimArgs {
    /// Model name served at /v1/models (simulator: inferbench-sim; engine: the model's name).
    #[arg(long, help_heading = "Serving")]
    pub served_model_name: Option<String>,
    /// Time to first token after admission, ms.
    #[arg(long, default_value_t = 20.0)]
    pub ttft_ms: f64,
    /// Extra time to first token per prompt token, ms.
    #[arg(long, default_value_t = 0.02)]
    pub prefill_ms_per_token: f64,
    /// Gap between tokens of one sequence, ms.
    #[arg(long, default_value_t = 8.0)]
    pub itl_ms: f64,
    /// Extra gap per additional running sequence, ms (models batch decode cost).
    #[arg(long, default_value_t = 0.05)]
    pub itl_ms_per_seq: f64,
    /// Sequences decoded at once; more requests queue [default: simulator 256, engine 16].
    #[arg(long, help_heading = "Serving")]
    pub max_num_seqs: Option<usize>,
    /// Longest prompt + output accepted, tokens (HTTP 413 beyond) [default: simulator 32768,
    /// engine the model's context length].
    #[arg(long, help_heading = "Serving")]
    pub max_model_len: Option<u32>,
    /// Leave `usage` out of responses (clients must count tokens themselves).
    #[arg(long)]
    pub no_usage: bool,
    /// Simulate a prefix cache, as vLLM's flag: prompts whose leading 16-token blocks were seen
    /// before skip their prefill and report them in usage.prompt_tokens_details.cached_tokens;
    /// POST /reset_prefix_cache empties it.
    #[arg(long, help_heading = "Simulator")]
    pub enable_prefix_caching: bool,
    /// Add this many tokens to both counts in usage, leaving the text as is (a server that
    /// miscounts, to test clients' reconciliation).
    #[arg(long, default_value_t = 0, help_heading = "Simulator")]
    pub miscount_usage: u32,
    /// Fraction of requests answered with HTTP 500.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fraction of streams cut mid-way.
    #[arg(long, default_value_t = 0.0)]
    pub disconnect_rate: f64,
    /// Fraction of streams that stall mid-way for --stall-ms.
    #[arg(long, default_value_t = 0.0)]
    pub stall_rate: f64,
    /// Length of a stall, ms.
    #[arg(long, default_value_t = 3_600_000.0)]
    pub stall_ms: f64,
    /// Fraction of streams carrying a malformed chunk.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Seed for faults and output text.
    #[arg(long = "sim-seed", default_value_t = 0)]
    pub seed: u64,
    /// Tokenizer the simulator counts prompts and builds output with (a bundled name or a
    /// tokenizer.json file or directory).
    #[arg(long = "sim-tokenizer", default_value = "cl100k_base")]
    pub tokenizer: String,
}

/// The embedded engine's flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Engine")]
pub struct EngineArgs {
    /// GGUF model to serve: a file path, or a name from `inferbench model list` (pulled into the
    /// cache if missing) [default: SmolLM2-135M-Instruct].
    #[arg(long)]
    pub model: Option<String>,
    /// Compute threads [default: the number of CPUs].
    #[arg(long)]
    pub threads: Option<usize>,
    /// KV-cache budget, MiB. Each request reserves prompt + max_tokens positions when admitted;
    /// requests that do not fit wait, and one larger than the whole budget gets HTTP 413.
    #[arg(long, default_value_t = 512.0)]
    pub kv_cache_memory_mib: f64,
    /// Tokens one forward step may process (decode tokens plus chunks of prefill).
    #[arg(long, default_value_t = 512)]
    pub max_num_batched_tokens: usize,
    /// Prefill tokens one step may take while at least as many sequences decode as wait for
    /// prefill [default: up to --max-num-batched-tokens]. 16 keeps inter-token latency even (a
    /// new prompt is prefilled in small chunks between decode steps; a burst of arrivals still
    /// goes whole: demo ITL p99 2.2x its median instead of 17-26x) at about 5% less output
    /// throughput on a 2-core CPU (docs/architecture.md says why).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_prefill_tokens_while_decoding: Option<u64>,
    /// Re-quantize the weights at load: q4_1, q8_0, q4_k (llama.cpp's Q4_K blocks, for matrices
    /// whose rows are a multiple of 256 wide; narrower ones as q8_0), or f32 (dequantized: the
    /// slow, exact reference) [default: as shipped].
    #[arg(long, value_parser = ["q4_1", "q8_0", "q4_k", "f32"])]
    pub quantization: Option<String>,
    /// Serve with speculative decoding: this GGUF (a path or a `model list` name, with the
    /// target's tokenizer) proposes tokens that the model checks in its batched steps. Output is
    /// unchanged; /metrics gains vLLM's vllm:spec_decode_* counters, which `run` reads into an
    /// acceptance rate. The same file with --draft-quantization q4_1 makes a quick draft.
    #[arg(long, value_name = "MODEL", help_heading = "Speculative decoding")]
    pub draft_model: Option<String>,
    /// Draft tokens proposed per sequence per step, as vLLM's num_speculative_tokens.
    #[arg(long, default_value_t = 4, requires = "draft_model", value_parser = clap::value_parser!(u64).range(1..=16), help_heading = "Speculative decoding")]
    pub num_speculative_tokens: u64,
    /// Re-quantize the draft at load: q4_1, q8_0, q4_k or f32 [default: as shipped].
    #[arg(long, requires = "draft_model", value_parser = ["q4_1", "q8_0", "q4_k", "f32"], help_heading = "Speculative decoding")]
    pub draft_quantization: Option<String>,
}

/// Which `inferbench engine` YAML keys have flags, and which are YAML-only (a test checks this
/// against the config's schema, so a new key cannot go unmentioned).
pub const ENGINE_KEYS: &str = "\
YAML keys and flags:
  Flags: model, threads, latency.* (--warmup-runs --test-runs --input-lengths --output-lengths),
  throughput.* (--concurrent-requests --batch-sizes --tokens-per-request --duration-seconds),
  report.* (--output-dir --format --no-system-info --result-filename), quantization.formats,
  speculative.enabled (--speculative), speculative.gamma, speculative.draft (--draft-model),
  speculative.prompts (--num-prompts), speculative.rate, speculative.duration_seconds
  (--duration), speculative.batch_size, speculative.max_batch_length, speculative.placement,
  speculative.max_tokens, speculative.temperature, speculative.draft_quantization,
  speculative.target_quantization, comparison.enabled and comparison.variant.quantization (--compare-variant), targets.default
  (--target), llama_bench.* (--pp --tg --pg --depth --repetitions --threads --output
  --no-warmup --compare-with).
  YAML-only: llama_bench.batch_size, memory.measure_peak, memory.measure_kv_cache, test_prompts, quantization.prompts,
  quantization.max_tokens, speculative.seed, comparison.baseline.name, comparison.baseline.quantization,
  comparison.baseline.threads, comparison.variant.name, comparison.variant.threads,
  comparison.batch_sizes, comparison.iterations, comparison.input_tokens,
  comparison.tokens_per_request, targets.<model>.";

/// Flags of `inferbench engine` (each overrides the same key of --config).
#[derive(Debug, Clone, Args)]
pub struct EngineBenchArgs {
    /// YAML configuration: model, threads and the sections latency, memory, throughput, report,
    /// targets, test_prompts, quantization, speculative and comparison, or llama_bench alone
    /// (see config/*.yaml; unknown keys are refused with their line).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// GGUF model: a path or a known name [default: SmolLM2-135M-Instruct].
    #[arg(long)]
    pub model: Option<String>,
    /// Compute threads [default: the number of CPUs]. With the llama-bench tests, a
    /// comma-separated list runs each test at each count (llama_bench.threads).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<Vec<u64>>,
    /// llama_bench.pp: prompt-processing tests, tokens each, comma-separated (`pp512`). Any
    /// llama-bench flag runs llama-bench's tests instead of the sections below; the rest take
    /// llama-bench's defaults (--pp 512 --tg 128 --depth 0 --repetitions 5).
    #[arg(long, value_delimiter = ',', value_name = "N,...", help_heading = "llama-bench tests")]
    pub pp: Option<Vec<usize>>,
    /// llama_bench.tg: text-generation tests, tokens each, comma-separated (`tg128`).
    #[arg(long, value_delimiter = ',', value_name = "N,...", help_heading = "llama-bench tests")]
    pub tg: Option<Vec<usize>>,
    /// llama_bench.pg: a prompt then generation timed together, PP,TG (`pp512+tg128`;
    /// repeatable).
    #[arg(long, value_parser = parse_pg, value_name = "PP,TG", help_heading = "llama-bench tests")]
    pub pg: Vec<[usize; 2]>,
    /// llama_bench.depth: tokens already in the KV cache before each test, comma-separated
    /// (`tg128 @ d512`).
    #[arg(long, value_delimiter = ',', value_name = "N,...", help_heading = "llama-bench tests")]
    pub depth: Option<Vec<usize>>,
    /// llama_bench.repetitions: timed runs of each test (t/s is their mean ± standard deviation).
    #[arg(long, help_heading = "llama-bench tests")]
    pub repetitions: Option<usize>,
    /// llama_bench.output: what goes to stdout, as llama-bench's -o: md, csv, json, jsonl or sql
    /// (`--output sql | sqlite3 results.db`); progress goes to stderr.
    #[arg(long, value_parser = ["md", "csv", "json", "jsonl", "sql"], help_heading = "llama-bench tests")]
    pub output: Option<String>,
    /// llama_bench.warmup = false: no untimed run before each test.
    #[arg(long, help_heading = "llama-bench tests")]
    pub no_warmup: bool,
    /// llama_bench.compare_with: llama-bench's own -o json or jsonl output of the same tests,
    /// printed beside ours with the ratio.
    #[arg(long, value_name = "FILE", help_heading = "llama-bench tests")]
    pub compare_with: Option<PathBuf>,
    /// latency.warmup_runs: runs per cell not counted.
    #[arg(long, help_heading = "Latency")]
    pub warmup_runs: Option<usize>,
    /// latency.test_runs: runs per cell measured.
    #[arg(long, help_heading = "Latency")]
    pub test_runs: Option<usize>,
    /// latency.input_lengths, comma-separated.
    #[arg(long, value_delimiter = ',', help_heading = "Latency")]
    pub input_lengths: Option<Vec<usize>>,
    /// latency.output_lengths, comma-separated.
    #[arg(long, value_delimiter = ',', help_heading = "Latency")]
    pub output_lengths: Option<Vec<usize>>,
    /// throughput.concurrent_requests (0 skips the concurrent test).
    #[arg(long, help_heading = "Throughput")]
    pub concurrent_requests: Option<usize>,
    /// throughput.batch_sizes, comma-separated.
    #[arg(long, value_delimiter = ',', help_heading = "Throughput")]
    pub batch_sizes: Option<Vec<usize>>,
    /// throughput.tokens_per_request.
    #[arg(long, help_heading = "Throughput")]
    pub tokens_per_request: Option<usize>,
    /// throughput.duration_seconds: repeat the concurrent test this long.
    #[arg(long, help_heading = "Throughput")]
    pub duration_seconds: Option<f64>,
    /// report.file_name: the files' name stem [default: engine-<model>-<YYYYMMDD-HHMMSS>].
    #[arg(long, help_heading = "Report")]
    pub result_filename: Option<String>,
    /// report.output_dir.
    #[arg(long, help_heading = "Report")]
    pub output_dir: Option<PathBuf>,
    /// report.format, comma-separated: json, csv, text.
    #[arg(long, value_delimiter = ',', help_heading = "Report")]
    pub format: Option<Vec<String>>,
    /// report.include_system_info = false.
    #[arg(long, help_heading = "Report")]
    pub no_system_info: bool,
    /// quantization.formats, comma-separated: shipped, q4_1, q8_0, q4_k, f32 (F32 is the reference).
    #[arg(long, value_delimiter = ',', help_heading = "Quantization")]
    pub quantization_formats: Option<Vec<String>>,
    /// speculative.enabled: compare speculative decoding with target-only decoding.
    #[arg(long, help_heading = "Speculative decoding")]
    pub speculative: bool,
    /// speculative.gamma: tokens the draft proposes per target pass; a comma-separated list
    /// runs one speculative arm per value (--gamma 2,4,8), each against the same target arm.
    #[arg(long, value_delimiter = ',', value_name = "N,...", value_parser = clap::value_parser!(u64).range(1..=16), help_heading = "Speculative decoding")]
    pub gamma: Option<Vec<u64>>,
    /// speculative.prompts: requests per arm (all at once, or arriving at --rate).
    #[arg(long, help_heading = "Speculative decoding")]
    pub num_prompts: Option<usize>,
    /// speculative.rate: requests per second, Poisson arrivals [default: all at once].
    #[arg(long, value_name = "REQ_PER_S", help_heading = "Speculative decoding")]
    pub rate: Option<f64>,
    /// speculative.duration_seconds: with --rate, requests arrive for this long (time-based run);
    /// without, rounds of --num-prompts repeat until this long has passed.
    #[arg(long, value_name = "SECONDS", help_heading = "Speculative decoding")]
    pub duration: Option<f64>,
    /// speculative.batch_size: sequences decoded together (1: one at a time).
    #[arg(long, help_heading = "Speculative decoding")]
    pub batch_size: Option<usize>,
    /// speculative.max_batch_length: tokens one step may carry (prefill chunks, decode tokens
    /// and proposals being checked).
    #[arg(long, help_heading = "Speculative decoding")]
    pub max_batch_length: Option<usize>,
    /// speculative.placement: where draft and target run: same (one shared pool), separate
    /// (disjoint halves of the CPUs), 'ratio T:D' (disjoint sets, T to D), auto (same here: the
    /// two take turns within a step).
    #[arg(long, help_heading = "Speculative decoding")]
    pub placement: Option<String>,
    /// speculative.max_tokens: tokens generated per request.
    #[arg(long, help_heading = "Speculative decoding")]
    pub max_tokens: Option<usize>,
    /// speculative.temperature: 0 is greedy; above 0, seeded sampling (output still equals the
    /// target's own, request for request).
    #[arg(long, help_heading = "Speculative decoding")]
    pub temperature: Option<f32>,
    /// speculative.draft_quantization: shipped, q4_1, q8_0, q4_k or f32.
    #[arg(long, help_heading = "Speculative decoding")]
    pub draft_quantization: Option<String>,
    /// speculative.target_quantization: shipped, q4_1, q8_0, q4_k or f32.
    #[arg(long, help_heading = "Speculative decoding")]
    pub target_quantization: Option<String>,
    /// speculative.draft: the draft model (path or name) [default: the target's file].
    #[arg(long, help_heading = "Speculative decoding")]
    pub draft_model: Option<String>,
    /// comparison: benchmark the shipped weights (baseline) against this format (variant) per
    /// batch size: q4_1, q8_0 or f32.
    #[arg(long, help_heading = "Comparison")]
    pub compare_variant: Option<String>,
    /// A target, e.g. max_ttft_ms=200 or min_tokens_per_second=50 (repeatable); a failed target
    /// exits 3 after the reports are written.
    #[arg(long, value_parser = parse_target, help_heading = "Targets")]
    pub target: Vec<(String, f64)>,
    /// A label carried into the result file, KEY=VALUE (repeatable).
    #[arg(long, help_heading = "Report")]
    pub label: Vec<String>,
    /// GPU indices to watch, comma-separated (default: all; `none`: no GPU monitoring).
    #[arg(long, value_name = "LIST", help_heading = "Monitoring")]
    pub gpus: Option<String>,
    /// Seconds between readings of the GPUs (NVML) and of this machine.
    #[arg(long, default_value_t = 1.0, help_heading = "Monitoring")]
    pub gpu_monitor_interval: f64,
    /// Also write the GPU section alone to this file (benchmark_results_gpu.json).
    #[arg(long, value_name = "FILE", help_heading = "Monitoring")]
    pub gpu_results_file: Option<PathBuf>,
    /// Do not read this machine's CPU, memory, network and RAPL energy.
    #[arg(long, help_heading = "Monitoring")]
    pub no_host_monitor: bool,
    /// Also write the report as a self-contained HTML page beside the JSON (heat maps of the
    /// latency grid, the section tables).
    #[arg(long, help_heading = "Report")]
    pub html: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `PP,TG` for `--pg`.
fn parse_pg(s: &str) -> Result<[usize; 2], String> {
    let bad = || format!("'{s}': expected PP,TG (prompt and generated tokens, both positive), e.g. 512,128");
    let (p, g) = s.split_once(',').ok_or_else(bad)?;
    match (p.trim().parse::<usize>(), g.trim().parse::<usize>()) {
        (Ok(p), Ok(g)) if p > 0 && g > 0 => Ok([p, g]),
        _ => Err(bad()),
    }
}

/// A level name, or a filter with `=` (`inferbench_load=debug,warn`).
fn parse_log(s: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let ok = s.split(',').all(|d| match d.split_once('=') {
        Some((target, level)) => !target.is_empty() && LEVELS.contains(&level.to_ascii_lowercase().as_str()),
        None => LEVELS.contains(&d.to_ascii_lowercase().as_str()),
    });
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!("'{s}': expected a level (error, warn, info, debug, trace, off) or TARGET=LEVEL pairs"))
    }
}

fn parse_target(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("'{s}': expected NAME=VALUE, e.g. max_ttft_ms=200"))?;
    let v: f64 = v.parse().map_err(|_| format!("'{s}': '{v}' is not a number"))?;
    Ok((k.trim().to_owned(), v))
}

/// Flags of `inferbench compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Baseline result JSON (its .records.jsonl beside it gives the per-request samples).
    pub baseline: PathBuf,
    /// Candidate result JSON.
    pub candidate: PathBuf,
    /// Exit 3 when --regression-metric's median is worse by more than this (e.g. 5% or 0.05)
    /// and the difference is significant.
    #[arg(long, value_parser = crate::compare::parse_fraction)]
    pub fail_on_regression: Option<f64>,
    /// Metric the gate watches: ttft, tpot, itl, e2el or throughput.
    #[arg(long, default_value = "e2el")]
    pub regression_metric: String,
    /// Significance level for the Mann-Whitney test.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Markdown table (for a pull-request comment).
    #[arg(long)]
    pub markdown: bool,
    /// Compare results whose workloads differ (anything in the spec that shapes the load:
    /// dataset, turns, lengths, rate, concurrency, sampling, seed...), warned about loudly.
    #[arg(long)]
    pub allow_different_workloads: bool,
    /// Also write the comparison as JSON here (`inferbench report` renders it again).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Also write the comparison as HTML beside --output (<name>.html): the two runs' latency
    /// CDFs overlaid when their records are beside them, and the table with changes, speedups
    /// and significance.
    #[arg(long, requires = "output")]
    pub html: bool,
    /// A label carried into the comparison file, KEY=VALUE (repeatable).
    #[arg(long)]
    pub label: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Flags of `inferbench sweep`: every `run` flag, plus the loads and the stop rules.
#[derive(Clone, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Concurrency levels to run (each sets --max-concurrency): a list like 1,2,4,8, or a ramp
    /// START..MAX that doubles (START..MAXxFACTOR for another factor) until a stop rule fires.
    #[arg(long, help_heading = "Sweep", conflicts_with = "rates", required_unless_present = "rates")]
    pub concurrencies: Option<String>,
    /// Request rates to run (each sets --request-rate), as a list or a ramp like --concurrencies.
    #[arg(long, help_heading = "Sweep")]
    pub rates: Option<String>,
    /// SLO checked at every step, METRIC:STAT:MS, e.g. ttft:p99:500, tpot:mean:50, e2el:median:2000
    /// (STAT p1..p100, mean or median; METRIC:MS means p99). Repeat the flag for several.
    #[arg(long = "slo", help_heading = "Sweep")]
    pub slo: Vec<String>,
    /// Stop at the first step that breaks an SLO (otherwise the sweep goes on to find the knee).
    #[arg(long, help_heading = "Sweep")]
    pub stop_on_slo: bool,
    /// Stop when a step's success rate falls below this percentage (it also fails the SLO limit).
    #[arg(long, default_value_t = 95.0, help_heading = "Sweep")]
    pub min_success_rate: f64,
    /// Stop when median latency exceeds this multiple of the lowest load's (E2EL for
    /// concurrency, E2EL from the scheduled send for rates).
    #[arg(long, help_heading = "Sweep")]
    pub stop_latency_factor: Option<f64>,
    /// Run each step this many times; the table shows means with 95% confidence intervals.
    #[arg(long, default_value_t = 1, help_heading = "Sweep")]
    pub repeat: usize,
    /// Run every repeat with the same --seed. By default repeat k runs with seed + k (recorded
    /// in its result), so the intervals include the spread of prompts and arrivals.
    #[arg(long, help_heading = "Sweep")]
    pub same_seed: bool,
    /// Seconds to pause between runs (lets queues drain and clocks settle). No other idle time
    /// is added between steps.
    #[arg(long, default_value_t = 0.0, help_heading = "Sweep")]
    pub cooldown: f64,
    /// After the sweep, bisect this many times between the highest load meeting the SLOs and
    /// the first one past it, to narrow the limit down (concurrency to the unit).
    #[arg(long, default_value_t = 0, help_heading = "Sweep")]
    pub refine: usize,
    /// Warn when repeats of a step vary more than this (coefficient of variation, e.g. 10%).
    #[arg(long, default_value = "10%", value_parser = crate::compare::parse_fraction, help_heading = "Sweep")]
    pub cv_warn: f64,
}

/// Flags of `inferbench plan`.
#[derive(Clone, Debug, Args)]
pub struct PlanArgs {
    /// A sweep result (`*.sweep.json` from `inferbench sweep`), or several run results of one
    /// workload at different concurrencies or rates (merged shards, runs made one by one).
    #[arg(required = true, value_name = "SWEEP|RUNS")]
    pub sweep: Vec<PathBuf>,
    /// SLO a replica must meet, as in `sweep --slo` (ttft:p99:500). Default: the sweep's own SLOs.
    #[arg(long = "slo")]
    pub slo: Vec<String>,
    /// Requests per second the deployment must carry.
    #[arg(long, conflicts_with = "users")]
    pub target_rate: Option<f64>,
    /// Concurrent users (closed-loop streams) the deployment must hold; needs a concurrency sweep.
    #[arg(long)]
    pub users: Option<f64>,
    /// Capacity kept in reserve on each replica, e.g. 20% (plan each replica at 80% of what it
    /// sustained).
    #[arg(long, default_value = "20%", value_parser = crate::compare::parse_fraction)]
    pub headroom: f64,
    /// Price of one replica per hour (any currency), for cost per million tokens.
    #[arg(long)]
    pub price_per_hour: Option<f64>,
    /// Lowest acceptable success rate, percent (default: the sweep's).
    #[arg(long)]
    pub min_success_rate: Option<f64>,
    /// Extra SLO sets for the what-if table, each like "ttft:p99:200 tpot:p99:50". By default
    /// the table scales the SLOs by 0.5x, 1x and 2x and adds a row without SLOs.
    #[arg(long)]
    pub what_if: Vec<String>,
    /// Also write the plan as JSON here.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// A label carried into the plan file, KEY=VALUE (repeatable).
    #[arg(long)]
    pub label: Vec<String>,
}

/// `inferbench model` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ModelCmd {
    /// Download a known model into the cache, trying its sources in order, verifying its SHA-256.
    Pull {
        /// Model name [default: SmolLM2-135M-Instruct].
        name: Option<String>,
    },
    /// List known models and what the cache holds.
    List,
    /// Recompute the SHA-256 of cached models and compare with the known checksums.
    Verify {
        /// Model name [default: every cached known model].
        name: Option<String>,
    },
}

/// Flags of `inferbench demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Benchmark the latency simulator instead of the embedded model.
    #[arg(long)]
    pub sim: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Concurrency levels to run, comma-separated [default: 1,4,8 for the engine, 1,8,32 for
    /// the simulator].
    #[arg(long)]
    pub concurrency: Option<String>,
    /// Requests per level [default: engine 2 per concurrent stream (8 to 32), simulator 4 (16 to
    /// 256)].
    #[arg(long)]
    pub num_prompts: Option<u64>,
    /// Directory for results.
    #[arg(long, default_value = "results")]
    pub result_dir: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
}
