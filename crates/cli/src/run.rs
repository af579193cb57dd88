//! `inferbench run`: flags become a validated plan in one place, then the pipeline runs —
//! prompts, pre-flight, load, collection, summary, files.

use crate::args::{ArrivalArg, DatasetArgs, RampArg, RunArgs};
use crate::collector::{collect, Collected};
use crate::proc;
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use inferbench_core::result::{ClientUsage, ToolInfo};
use inferbench_core::spec::{ArrivalKind, DatasetSpec, DatasetStats, RampStrategy, RampUp, Sampling};
use inferbench_core::sysinfo::SystemInfo;
use inferbench_core::{BenchmarkResult, MetricName, RunSpec, Slo, SummaryOptions, SCHEMA_VERSION};
use inferbench_data::{load_dataset, DatasetKind, DatasetOptions, Tokenizer};
use inferbench_load::{
    http_client, preflight, run_load, ArrivalConfig, Backend, HttpTarget, LoadPlan, RequestTemplate, Requester, TemplateOptions,
};
use inferbench_report::{categories_table, render_summary, write_csv_summary, write_json, ConsoleOptions, RecordWriter};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Distinct prompts generated at most; longer runs cycle through them.
const MAX_DISTINCT_PROMPTS: u64 = 10_000;

/// A run, validated: nothing below this point can fail because of a bad flag.
pub struct RunPlan {
    spec: RunSpec,
    backend: Backend,
    model: Option<String>,
    target: HttpTarget,
    template_opts: TemplateOptions,
    load: LoadPlan,
    summary_opts: SummaryOptions,
    console: ConsoleOptions,
    paths: ResultPaths,
    keep_text: bool,
    progress: bool,
    quiet: bool,
    show_summary: bool,
    reuse_prompts: bool,
    server_in_process: bool,
    dataset: DatasetOptions,
}

/// Where a run's files go.
#[derive(Debug, Clone)]
pub struct ResultPaths {
    /// Summary JSON.
    pub json: PathBuf,
    /// One-row CSV.
    pub csv: PathBuf,
    /// Per-request JSONL.
    pub records: PathBuf,
}

fn flag_err(flag: &str, value: &str, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("invalid {flag} '{value}': {why}")
}

fn positive(flag: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(flag_err(flag, &v.to_string(), "must be a positive number"))
    }
}

impl DatasetArgs {
    /// The dataset these flags describe, for `count` distinct prompts: `(name, options)`.
    pub fn options(&self, count: usize, seed: u64) -> Result<(String, DatasetOptions)> {
        let randoms_given = self.random_input_len.is_some()
            || self.random_output_len.is_some()
            || self.random_range_ratio.is_some()
            || self.random_prefix_len.is_some();
        let name = self.dataset_name.clone().unwrap_or_else(|| if randoms_given { "random" } else { "builtin" }.to_owned());
        let kind: DatasetKind = name.parse().map_err(|e| flag_err("--dataset-name", &name, e))?;
        if kind.needs_path() && self.dataset_path.is_none() {
            bail!("--dataset-name {name} needs --dataset-path FILE");
        }
        let opts = DatasetOptions {
            kind,
            path: self.dataset_path.clone(),
            num_prompts: count,
            seed,
            shuffle: !self.disable_shuffle,
            output_len: if kind == DatasetKind::Random { None } else { self.fixed_output_len },
            default_output_len: self.random_output_len.unwrap_or(128),
            // Generated conversations default to short turns; their history supplies the length.
            input_len: self.random_input_len.unwrap_or(if kind == DatasetKind::MultiTurn { 64 } else { 1024 }),
            range_ratio: self.random_range_ratio.unwrap_or(0.0),
            prefix_len: self.random_prefix_len.unwrap_or(0),
            prefix_groups: self.prefix_groups,
            min_input_len: self.min_input_len,
            max_input_len: self.max_input_len,
            chat: false,
            turns: self.turns,
        };
        Ok((name, opts))
    }
}

/// Parses `50,90,99` into percentiles in (0, 100].
pub fn parse_percentiles(s: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(|p| {
            let v: f64 = p.trim().parse().map_err(|_| flag_err("--metric-percentiles", s, format!("'{p}' is not a number")))?;
            if v > 0.0 && v <= 100.0 {
                Ok(v)
            } else {
                Err(flag_err("--metric-percentiles", s, format!("{v} is not in (0, 100]")))
            }
        })
        .collect()
}

impl RunPlan {
    /// Checks every flag and prepares the output directory.
    pub fn from_args(a: &RunArgs) -> Result<Self> {
        let backend: Backend = a.backend.parse().map_err(|e| flag_err("--backend", &a.backend, e))?;
        let stream = !a.no_stream;
        let endpoint = a.endpoint.clone().unwrap_or_else(|| backend.default_endpoint(stream).to_owned());
        let timeout = positive("--request-timeout", a.request_timeout)?;
        let target = HttpTarget::new(&a.base_url, &endpoint, a.api_key.as_deref(), Duration::from_secs_f64(timeout))
            .map_err(|e| anyhow!("--base-url: {e}"))?;
        let request_rate = match a.request_rate.trim() {
            "inf" | "infinity" | "Inf" => None,
            r => Some(positive("--request-rate", r.parse().map_err(|_| flag_err("--request-rate", r, "expected a number or inf"))?)?),
        };
        positive("--burstiness", a.burstiness)?;
        let duration = a.duration.map(|d| positive("--duration", d)).transpose()?;
        let num_prompts = match (a.num_prompts, duration) {
            (Some(0), _) => bail!("invalid --num-prompts '0': must be at least 1"),
            (n @ Some(_), _) => n,
            (None, Some(_)) => None,
            (None, None) => Some(1000),
        };
        let ramp_up = match a.ramp_up_strategy {
            None => None,
            Some(s) => {
                let start = positive("--ramp-up-start-rps", a.ramp_up_start_rps.unwrap_or(0.0))?;
                let end = positive("--ramp-up-end-rps", a.ramp_up_end_rps.unwrap_or(0.0))?;
                if num_prompts.is_none() && duration.is_none() {
                    bail!("--ramp-up-strategy needs --num-prompts or --duration");
                }
                let strategy = match s {
                    RampArg::Linear => RampStrategy::Linear,
                    RampArg::Exponential => RampStrategy::Exponential,
                };
                Some(RampUp { strategy, start_rps: start, end_rps: end })
            }
        };
        if duration.is_some() && request_rate.is_none() && ramp_up.is_none() && a.max_concurrency.is_none() && a.num_prompts.is_none() {
            bail!("--duration with --request-rate inf needs --max-concurrency (or --num-prompts): otherwise every request would start at once");
        }
        if a.max_concurrency == Some(0) {
            bail!("invalid --max-concurrency '0': must be at least 1");
        }
        let extra_body = match &a.extra_body {
            None => None,
            Some(s) => match serde_json::from_str::<serde_json::Value>(s) {
                Ok(serde_json::Value::Object(m)) => Some(m),
                Ok(_) => return Err(flag_err("--extra-body", s, "must be a JSON object")),
                Err(e) => return Err(flag_err("--extra-body", s, e)),
            },
        };
        let percentiles = parse_percentiles(&a.metric_percentiles)?;
        let percentile_metrics: Vec<MetricName> = a
            .percentile_metrics
            .split(',')
            .map(|m| m.parse::<MetricName>().map_err(|e| flag_err("--percentile-metrics", &a.percentile_metrics, e)))
            .collect::<Result<_>>()?;
        let goodput = Slo::parse(&a.goodput).map_err(|e| flag_err("--goodput", &a.goodput.join(" "), e))?;
        let grace = positive("--grace-period", a.grace_period.max(f64::MIN_POSITIVE))?;
        let sampling = Sampling { temperature: a.temperature, top_p: a.top_p, top_k: a.top_k, seed: a.sampling_seed };
        let arrival = match a.arrival {
            ArrivalArg::Poisson => ArrivalKind::Poisson,
            ArrivalArg::Constant => ArrivalKind::Constant,
        };

        let distinct = num_prompts.unwrap_or(MAX_DISTINCT_PROMPTS).clamp(1, MAX_DISTINCT_PROMPTS) as usize;
        let (dataset_name, mut dataset) = a.data.options(distinct, a.seed)?;
        dataset.chat = backend == Backend::OpenAiChat;
        let kind = dataset.kind;
        Tokenizer::by_name(&a.data.tokenizer).map_err(|e| anyhow!("--tokenizer: {e}"))?;

        let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let stem = a.result_filename.clone().unwrap_or_else(|| {
            let compact: String = date.chars().filter(char::is_ascii_digit).collect();
            let rate = request_rate.map_or("inf".into(), |r| format!("{r}"));
            let conc = a.max_concurrency.map_or(String::new(), |c| format!("-c{c}"));
            format!("{}-{rate}qps{conc}-{}-{}", backend.name(), &compact[..8], &compact[8..14])
        });
        std::fs::create_dir_all(&a.result_dir).with_context(|| format!("--result-dir: cannot create {}", a.result_dir.display()))?;
        let paths = ResultPaths {
            json: a.result_dir.join(format!("{stem}.json")),
            csv: a.result_dir.join(format!("{stem}.csv")),
            records: a.result_dir.join(format!("{stem}.records.jsonl")),
        };

        let spec = RunSpec {
            backend: backend.name().into(),
            base_url: target.base_url.clone(),
            endpoint,
            model: a.model.clone().unwrap_or_default(),
            tokenizer: a.data.tokenizer.clone(),
            dataset: DatasetSpec {
                name: dataset_name.clone(),
                path: dataset.path.as_ref().map(|p| p.display().to_string()),
                input_len: dataset.input_len,
                output_len: dataset.default_output_len,
                range_ratio: dataset.range_ratio,
                prefix_len: dataset.prefix_len,
                shuffle: dataset.shuffle,
                fixed_output_len: dataset.output_len,
                min_input_len: dataset.min_input_len,
                max_input_len: dataset.max_input_len,
                prefix_groups: (kind == DatasetKind::SharedPrefix).then_some(dataset.prefix_groups),
            },
            num_prompts,
            duration_s: duration,
            request_rate,
            burstiness: a.burstiness,
            arrival,
            max_concurrency: a.max_concurrency,
            ramp_up,
            warmup_requests: a.warmup_requests,
            seed: a.seed,
            stream,
            sampling: sampling.clone(),
            ignore_eos: a.ignore_eos || backend == Backend::Vllm,
            timeout_s: timeout,
            extra_body: extra_body.clone().map(serde_json::Value::Object),
            percentiles: percentiles.clone(),
            percentile_metrics: percentile_metrics.iter().map(|m| m.key().to_owned()).collect(),
            goodput: (!goodput.is_empty()).then(|| goodput.to_string()),
        };
        let load = LoadPlan {
            arrivals: ArrivalConfig {
                rate: request_rate,
                burstiness: a.burstiness,
                kind: arrival,
                ramp: ramp_up,
                total: num_prompts,
                duration_s: duration,
                seed: a.seed,
            },
            num_prompts,
            duration: duration.map(Duration::from_secs_f64),
            max_concurrency: a.max_concurrency.map(|c| c as usize),
            warmup_requests: a.warmup_requests,
            grace: Duration::from_secs_f64(grace),
        };
        Ok(Self {
            spec,
            backend,
            model: a.model.clone(),
            target,
            template_opts: TemplateOptions { model: String::new(), stream, ignore_eos: a.ignore_eos, sampling, extra_body },
            load,
            summary_opts: SummaryOptions { percentiles, goodput },
            console: ConsoleOptions {
                percentile_metrics,
                grades: inferbench_core::grade::GradeScale { ttft: a.grade_ttft, tpot: a.grade_tpot },
                ..ConsoleOptions::default()
            },
            paths,
            keep_text: a.save_generated_text,
            progress: !(a.disable_tqdm || a.quiet),
            quiet: a.quiet,
            show_summary: !a.quiet,
            reuse_prompts: false,
            server_in_process: false,
            dataset,
        })
    }

    /// Marks the server as running inside this process, so CPU figures are labelled as shared.
    pub fn with_server_in_process(mut self) -> Self {
        self.server_in_process = true;
        self
    }

    /// Keeps the per-run summary block off the console (a sweep prints one table instead);
    /// notes and the progress bar stay.
    pub fn without_summary(mut self) -> Self {
        self.show_summary = false;
        self
    }

    /// Reuses the previous run's generated prompts when this run asks for the same set (a
    /// sweep's steps differ only in load); a single run keeps no copy.
    pub fn reusing_prompts(mut self) -> Self {
        self.reuse_prompts = true;
        self
    }

    /// Where this run's files go.
    pub fn paths(&self) -> &ResultPaths {
        &self.paths
    }

    /// Runs the benchmark. `stop` interrupts it; everything measured is still written.
    pub async fn execute(mut self, stop: CancellationToken) -> Result<BenchmarkResult> {
        let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let tokenizer = Tokenizer::by_name(&self.spec.tokenizer)?;
        let loaded = if self.reuse_prompts {
            cached_dataset(&tokenizer, &self.spec.tokenizer, &self.dataset)?
        } else {
            load_dataset(&tokenizer, &self.dataset).context("loading the dataset")?
        };
        if loaded.oversampled && !self.quiet {
            eprintln!(
                "note: the dataset has {} usable prompts for {} requests; prompts repeat",
                loaded.available,
                self.spec.num_prompts.map_or_else(|| "a timed run's".to_owned(), |n| n.to_string())
            );
        }
        if loaded.skipped > 0 && !self.quiet {
            eprintln!("note: {} dataset entries skipped by the length filters", loaded.skipped);
        }
        let dataset_stats = DatasetStats { available: loaded.available, skipped: loaded.skipped, oversampled: loaded.oversampled };
        let prompts = loaded.prompts;

        let client = http_client(&self.target);
        let model = preflight(&client, &self.target, self.model.as_deref()).await?;
        self.spec.model = model.clone();
        self.template_opts.model = model;
        let template = RequestTemplate::new(self.backend, &self.template_opts);
        let requester = Arc::new(Requester::new(client, &self.target, template, tokenizer, self.keep_text));

        let writer = RecordWriter::create(&self.paths.records).map_err(|e| anyhow!("--result-dir: {e}"))?;
        // Sessions of several turns make more records than --num-prompts: count without a bar.
        let sessions = prompts.iter().any(|p| p.turn.is_some());
        let pb = progress_bar(self.progress, self.spec.num_prompts.filter(|_| !sessions), self.spec.duration_s);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let opts = self.summary_opts.clone();
        let collector = std::thread::Builder::new().name("inferbench-collector".into()).spawn(move || collect(rx, writer, &opts, pb))?;

        let outcome = run_load(requester, prompts.into(), self.load.clone(), tx, stop).await;
        let cpu_end = proc::cpu_seconds();
        let Collected { summary, warmups, cpu_at_start, write_error } =
            collector.join().map_err(|_| anyhow!("the collector thread panicked"))?;

        let result = BenchmarkResult {
            schema_version: SCHEMA_VERSION,
            tool: tool_info(),
            date,
            spec: self.spec,
            system: SystemInfo::collect(),
            summary,
            client: ClientUsage {
                cpu_s: (cpu_end - cpu_at_start).max(0.0),
                peak_rss_bytes: proc::peak_rss_bytes(),
                includes_server: self.server_in_process,
            },
            warmup_excluded: warmups,
            dataset: dataset_stats,
            interrupted: outcome.interrupted,
        };
        write_json(&self.paths.json, &result)?;
        write_csv_summary(&self.paths.csv, &result)?;
        if let Some(e) = write_error {
            return Err(e.into());
        }
        if self.show_summary {
            print!("{}", render_summary(&result, &self.console));
            if !result.summary.categories.is_empty() {
                println!("{}", categories_table(&result.summary));
            }
            println!(
                "Results: {}\n         {}\n         {}",
                self.paths.json.display(),
                self.paths.csv.display(),
                self.paths.records.display()
            );
        }
        Ok(result)
    }
}

/// Loads the dataset, reusing the previous run's prompts when a sweep asks for the same generated
/// set again (same options, same tokenizer), so no time goes to regenerating them between steps.
/// File datasets are always read afresh.
fn cached_dataset(tokenizer: &Tokenizer, tokenizer_name: &str, opts: &DatasetOptions) -> Result<inferbench_data::Dataset> {
    static LAST: std::sync::Mutex<Option<(String, inferbench_data::Dataset)>> = std::sync::Mutex::new(None);
    let key = opts.path.is_none().then(|| format!("{tokenizer_name}|{opts:?}"));
    if let Some(k) = &key {
        if let Some((_, d)) = LAST.lock().unwrap_or_else(|e| e.into_inner()).as_ref().filter(|(c, _)| c == k) {
            return Ok(d.clone());
        }
    }
    let loaded = load_dataset(tokenizer, opts).context("loading the dataset")?;
    if let Some(k) = key {
        *LAST.lock().unwrap_or_else(|e| e.into_inner()) = Some((k, loaded.clone()));
    }
    Ok(loaded)
}

fn progress_bar(show: bool, total: Option<u64>, duration: Option<f64>) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = match (total, duration) {
        (Some(n), None) => ProgressBar::new(n),
        _ => ProgressBar::no_length(),
    };
    let tmpl = if pb.length().is_some() {
        "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} requests ({per_sec}) {msg}"
    } else {
        "{spinner} {elapsed_precise} {pos} requests ({per_sec}) {msg}"
    };
    pb.set_style(ProgressStyle::with_template(tmpl).expect("valid template").progress_chars("=> "));
    pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    pb
}

/// This binary's name, version and commit.
pub fn tool_info() -> ToolInfo {
    let commit = env!("INFERBENCH_GIT_COMMIT");
    ToolInfo {
        name: "inferbench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        commit: (!commit.is_empty()).then(|| commit.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_parse_or_name_the_problem() {
        assert_eq!(parse_percentiles("50, 99.9").unwrap(), vec![50.0, 99.9]);
        let e = parse_percentiles("50,abc").unwrap_err().to_string();
        assert!(e.contains("--metric-percentiles") && e.contains("'abc'"), "{e}");
        assert!(parse_percentiles("0").is_err());
        assert!(parse_percentiles("101").is_err());
    }
}
