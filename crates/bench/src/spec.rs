//! The spec comes first: a [`RunSpec`] is checked once here, and everything a run needs — the
//! load profile, the dataset options, the request template, the summary options — is derived from
//! it in one place, never built side by side.

use crate::error::BenchError;
use inferbench_core::spec::{DatasetSpec, RunSpec};
use inferbench_core::{MetricName, Slo, SummaryOptions};
use inferbench_data::datasets::TraceReplay;
use inferbench_data::{DatasetKind, DatasetOptions, Tokenizer, TraceFormat};
use inferbench_load::{ArrivalConfig, Backend, LoadProfile, TemplateOptions};
use std::time::Duration;

/// `--tokenizer auto`: the tokenizer the server names at `/v1/models` when the client can load
/// it, else [`FALLBACK_TOKENIZER`]; the run's spec records the one used.
pub const AUTO_TOKENIZER: &str = "auto";

/// What `auto` falls back to when the server names no tokenizer this client can load.
pub const FALLBACK_TOKENIZER: &str = "cl100k_base";

/// Distinct prompts generated at most; longer runs cycle through them.
pub const MAX_DISTINCT_PROMPTS: u64 = 10_000;

/// Prefix groups of the shared-prefix dataset when the spec names none.
pub const DEFAULT_PREFIX_GROUPS: u32 = 8;

/// User turns per generated conversation when the spec names none.
pub const DEFAULT_TURNS: u32 = 3;

fn invalid(field: &str, value: impl std::fmt::Display, why: &str) -> BenchError {
    BenchError::invalid(format!("invalid --{} '{value}': {why}", field.replace('_', "-")))
}

fn positive(field: &str, v: f64) -> Result<f64, BenchError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(invalid(field, v, "must be a positive number"))
    }
}

/// The longest span of time any setting may give, seconds (about 31 years): far past any
/// benchmark, and far inside what a `Duration` holds.
pub const MAX_SECONDS: f64 = 1e9;

/// A number of seconds: finite, at least `min`, at most [`MAX_SECONDS`].
pub fn seconds(field: &str, v: f64, min_exclusive: bool) -> Result<Duration, BenchError> {
    let low_ok = if min_exclusive { v > 0.0 } else { v >= 0.0 };
    if !(v.is_finite() && low_ok) {
        let what = if min_exclusive { "a positive number of seconds" } else { "a non-negative number of seconds" };
        return Err(invalid(field, v, &format!("must be {what}")));
    }
    if v > MAX_SECONDS {
        return Err(invalid(field, v, &format!("must be at most {MAX_SECONDS:e} seconds")));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The backend a spec names.
pub fn backend(spec: &RunSpec) -> Result<Backend, BenchError> {
    spec.backend.parse::<Backend>().map_err(|e| invalid("backend", &spec.backend, &e.to_string()))
}

/// Checks a spec and fills in what follows from it (the backend's endpoint, vLLM's exact output
/// lengths). Messages name the flag that sets the field, since the spec's names are the flags'.
pub fn normalize(spec: &mut RunSpec) -> Result<(), BenchError> {
    let b = backend(spec)?;
    spec.backend = b.name().to_owned();
    if spec.endpoint.is_empty() {
        spec.endpoint = b.default_endpoint(spec.stream).to_owned();
    }
    // The one place the rule lives: `vllm` means completions with exact output lengths.
    spec.ignore_eos |= b == Backend::Vllm;
    seconds("request_timeout", spec.timeout_s, true)?;
    seconds("connect_timeout", spec.connect_timeout_s, true)?;
    if let Some(t) = spec.idle_timeout_s {
        seconds("idle_timeout", t, true)?;
    }
    if let Some(r) = spec.request_rate {
        positive("request_rate", r)?;
    }
    positive("burstiness", spec.burstiness)?;
    if let Some(d) = spec.duration_s {
        seconds("duration", d, true)?;
    }
    if spec.num_prompts == Some(0) {
        return Err(invalid("num_prompts", 0, "must be at least 1"));
    }
    let trace = spec.dataset.name == "trace";
    if trace && (spec.request_rate.is_some() || spec.ramp_up.is_some()) {
        return Err(BenchError::invalid(
            "a trace replay sends each request at its traced time: drop --request-rate and --ramp-up-* (--trace-speedup scales time)",
        ));
    }
    // A trace replays all of itself unless told otherwise.
    if spec.num_prompts.is_none() && spec.duration_s.is_none() && !trace {
        spec.num_prompts = Some(1000);
    }
    if spec.max_concurrency == Some(0) {
        return Err(invalid("max_concurrency", 0, "must be at least 1"));
    }
    if let Some(r) = &spec.ramp_up {
        positive("ramp_up_start_rps", r.start_rps)?;
        positive("ramp_up_end_rps", r.end_rps)?;
    }
    if spec.duration_s.is_some()
        && spec.request_rate.is_none()
        && spec.ramp_up.is_none()
        && spec.max_concurrency.is_none()
        && spec.num_prompts.is_none()
    {
        return Err(BenchError::invalid(
            "--duration with --request-rate inf needs --max-concurrency (or --num-prompts): otherwise every request would start at once",
        ));
    }
    if let Some(e) = &spec.extra_body {
        if !e.is_object() {
            return Err(invalid("extra_body", e, "must be a JSON object"));
        }
    }
    for &p in &spec.percentiles {
        if !(p > 0.0 && p <= 100.0) {
            return Err(invalid("metric_percentiles", p, "percentiles must be in (0, 100]"));
        }
    }
    // Asked twice, reported once.
    let mut seen: Vec<f64> = Vec::new();
    spec.percentiles.retain(|p| {
        let new = !seen.iter().any(|q| (q - p).abs() < 1e-9);
        seen.push(*p);
        new
    });
    for m in &spec.percentile_metrics {
        m.parse::<MetricName>().map_err(|e| invalid("percentile_metrics", m, &e))?;
    }
    summary_options(spec)?;
    let kind = dataset_kind(&spec.dataset)?;
    if kind.needs_path() && spec.dataset.path.is_none() {
        return Err(BenchError::invalid(format!("--dataset-name {} needs --dataset-path FILE", spec.dataset.name)));
    }
    if spec.tokenizer != AUTO_TOKENIZER {
        Tokenizer::by_name(&spec.tokenizer).map_err(|e| BenchError::invalid(format!("--tokenizer: {e}")))?;
    }
    Ok(())
}

fn dataset_kind(d: &DatasetSpec) -> Result<DatasetKind, BenchError> {
    d.name.parse::<DatasetKind>().map_err(|e| invalid("dataset_name", &d.name, &e.to_string()))
}

/// The dataset options for `count` distinct prompts of a dataset spec (the `dataset` command's
/// view, with no backend).
pub fn dataset_options_for(d: &DatasetSpec, count: usize, seed: u64) -> Result<DatasetOptions, BenchError> {
    let kind = dataset_kind(d)?;
    if kind.needs_path() && d.path.is_none() {
        return Err(BenchError::invalid(format!("--dataset-name {} needs --dataset-path FILE", d.name)));
    }
    Ok(DatasetOptions {
        kind,
        path: d.path.as_ref().map(Into::into),
        num_prompts: count,
        seed,
        shuffle: d.shuffle,
        output_len: if kind == DatasetKind::Random { None } else { d.fixed_output_len },
        default_output_len: d.output_len,
        input_len: d.input_len,
        range_ratio: d.range_ratio,
        prefix_len: d.prefix_len,
        prefix_groups: d.prefix_groups.unwrap_or(DEFAULT_PREFIX_GROUPS),
        min_input_len: d.min_input_len,
        max_input_len: d.max_input_len,
        chat: false,
        turns: d.turns.unwrap_or(DEFAULT_TURNS),
        trace: trace_replay(d, kind)?,
    })
}

/// The trace flags, checked: only with `--dataset-name trace`, which needs a format.
fn trace_replay(d: &DatasetSpec, kind: DatasetKind) -> Result<Option<TraceReplay>, BenchError> {
    let given = d.trace_format.is_some() || d.trace_speedup.is_some() || d.trace_window.is_some();
    if kind != DatasetKind::Trace {
        if given {
            return Err(BenchError::invalid("--trace-format, --trace-speedup and --trace-window need --dataset-name trace"));
        }
        return Ok(None);
    }
    let format = d
        .trace_format
        .as_deref()
        .ok_or_else(|| BenchError::invalid("--dataset-name trace needs --trace-format mooncake|azure|burstgpt"))?
        .parse::<TraceFormat>()
        .map_err(|e| invalid("trace_format", d.trace_format.as_deref().unwrap_or(""), &e))?;
    let speedup = d.trace_speedup.unwrap_or(1.0);
    positive("trace_speedup", speedup)?;
    let window = match d.trace_window {
        Some([a, b]) if a >= 0.0 && b > a => Some((a, b)),
        Some([a, b]) => return Err(invalid("trace_window", format!("{a}:{b}"), "expected START:END seconds with END > START >= 0")),
        None => None,
    };
    Ok(Some(TraceReplay { format, speedup, window }))
}

/// The dataset options a run's spec describes.
pub fn dataset_options(spec: &RunSpec) -> Result<DatasetOptions, BenchError> {
    let distinct = match spec.dataset.name.as_str() {
        // Traces are not drawn from: their first N requests are replayed, lazily built.
        "trace" => spec.num_prompts.map_or(usize::MAX, |n| n as usize),
        _ => spec.num_prompts.unwrap_or(MAX_DISTINCT_PROMPTS).clamp(1, MAX_DISTINCT_PROMPTS) as usize,
    };
    let mut o = dataset_options_for(&spec.dataset, distinct, spec.seed)?;
    o.chat = backend(spec)? == Backend::OpenAiChat;
    Ok(o)
}

/// When requests start: arrivals, count or duration, concurrency cap, warm-up.
pub fn load_profile(spec: &RunSpec, grace: Duration, abort: tokio_util::sync::CancellationToken) -> LoadProfile {
    LoadProfile {
        arrivals: ArrivalConfig {
            rate: spec.request_rate,
            burstiness: spec.burstiness,
            kind: spec.arrival,
            ramp: spec.ramp_up,
            total: spec.num_prompts,
            duration_s: spec.duration_s,
            seed: spec.seed,
            offsets: None,
        },
        num_prompts: spec.num_prompts,
        duration: spec.duration_s.map(Duration::from_secs_f64),
        max_concurrency: spec.max_concurrency.map(|c| c as usize),
        warmup_requests: spec.warmup_requests,
        warmup_connections: spec.warmup_connections as usize,
        grace,
        abort,
        shard: None,
        start_at: None,
    }
}

/// What goes into every request body; `model` is the name the server confirmed.
pub fn template_options(spec: &RunSpec, model: &str) -> TemplateOptions {
    TemplateOptions {
        model: model.to_owned(),
        stream: spec.stream,
        ignore_eos: spec.ignore_eos,
        sampling: spec.sampling.clone(),
        extra_body: spec.extra_body.as_ref().and_then(|v| v.as_object().cloned()),
    }
}

/// Percentiles and goodput SLOs of the summary.
pub fn summary_options(spec: &RunSpec) -> Result<SummaryOptions, BenchError> {
    let goodput = match &spec.goodput {
        None => Slo::default(),
        Some(g) => Slo::parse(&[g.as_str()]).map_err(|e| invalid("goodput", g, &e.to_string()))?,
    };
    Ok(SummaryOptions { percentiles: spec.percentiles.clone(), goodput })
}

/// The fields of a spec that shape the workload: two results that differ in any of them did not
/// measure the same thing. The target (URL, endpoint, model), the timeout and what the summary
/// reports may differ.
pub fn workload_diffs(a: &RunSpec, b: &RunSpec) -> Vec<String> {
    use inferbench_core::spec::NOT_WORKLOAD;
    let (Ok(serde_json::Value::Object(x)), Ok(serde_json::Value::Object(y))) = (serde_json::to_value(a), serde_json::to_value(b)) else {
        return vec!["the specs could not be read".into()];
    };
    let mut diffs = Vec::new();
    let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
    for k in keys.into_iter().filter(|k| !NOT_WORKLOAD.contains(&k.as_str())) {
        let (u, v) = (x.get(k).unwrap_or(&serde_json::Value::Null), y.get(k).unwrap_or(&serde_json::Value::Null));
        match (u, v) {
            (serde_json::Value::Object(p), serde_json::Value::Object(q)) => {
                let inner: std::collections::BTreeSet<&String> = p.keys().chain(q.keys()).collect();
                for ik in inner {
                    let (pu, qv) = (p.get(ik).unwrap_or(&serde_json::Value::Null), q.get(ik).unwrap_or(&serde_json::Value::Null));
                    if pu != qv {
                        diffs.push(format!("{k}.{ik}: {pu} vs {qv}"));
                    }
                }
            }
            _ if u != v => diffs.push(format!("{k}: {u} vs {v}")),
            _ => {}
        }
    }
    diffs
}

/// A default file stem for a run: backend, rate, concurrency, date.
pub fn default_stem(spec: &RunSpec) -> String {
    // vLLM's `{backend}-{rate}qps[-concurrency{N}]-{model}-{date}`; the model's last path part,
    // when one was asked for (the server's default is only known once the run starts).
    let rate = spec.request_rate.map_or("inf".into(), |r| format!("{r}"));
    let conc = spec.max_concurrency.map_or(String::new(), |c| format!("-concurrency{c}"));
    let model = spec.model.rsplit('/').next().filter(|m| !m.is_empty()).map_or(String::new(), |m| format!("-{m}"));
    let model: String = model.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    format!("{}-{rate}qps{conc}{model}-{}", spec.backend, inferbench_core::time::compact_now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunSpec {
        RunSpec {
            backend: "vllm".into(),
            base_url: "http://127.0.0.1:8000".into(),
            tokenizer: "cl100k_base".into(),
            dataset: DatasetSpec { name: "multi-turn".into(), input_len: 64, output_len: 16, turns: Some(5), ..Default::default() },
            burstiness: 1.0,
            timeout_s: 10.0,
            connect_timeout_s: 10.0,
            idle_timeout_s: None,
            ca_cert: None,
            insecure: false,
            percentiles: vec![50.0, 99.0],
            percentile_metrics: vec!["ttft".into()],
            ..Default::default()
        }
    }

    #[test]
    fn everything_is_derived_from_the_spec() {
        let mut s = spec();
        normalize(&mut s).unwrap();
        assert!(s.ignore_eos, "vllm implies exact output lengths");
        assert_eq!(s.endpoint, "/v1/completions");
        assert_eq!(s.num_prompts, Some(1000));
        let d = dataset_options(&s).unwrap();
        assert_eq!((d.turns, d.input_len, d.num_prompts), (5, 64, 1000));
        let t = template_options(&s, "m");
        assert!(t.ignore_eos && t.model == "m");
        let l = load_profile(&s, Duration::from_secs(1), Default::default());
        assert_eq!(l.num_prompts, Some(1000));
    }

    #[test]
    fn bad_specs_name_the_field() {
        let mut s = spec();
        s.num_prompts = Some(0);
        assert!(normalize(&mut s).unwrap_err().to_string().contains("--num-prompts '0'"));
        let mut s = spec();
        s.request_rate = Some(-1.0);
        assert!(normalize(&mut s).unwrap_err().to_string().contains("--request-rate"));
        for huge in [1e20, f64::INFINITY, f64::NAN] {
            let mut s = spec();
            s.timeout_s = huge;
            assert!(normalize(&mut s).unwrap_err().to_string().contains("--request-timeout"), "{huge}");
            let mut s = spec();
            s.duration_s = Some(huge);
            assert!(normalize(&mut s).unwrap_err().to_string().contains("--duration"), "{huge}");
        }
        let mut s = spec();
        s.percentiles = vec![50.0, 99.0, 50.0];
        normalize(&mut s).unwrap();
        assert_eq!(s.percentiles, vec![50.0, 99.0], "duplicates are reported once");
        let mut s = spec();
        s.dataset.name = "sharegpt".into();
        assert!(normalize(&mut s).unwrap_err().to_string().contains("needs --dataset-path"));
    }

    #[test]
    fn turns_shape_the_workload_and_the_url_does_not() {
        let (a, mut b) = (spec(), spec());
        b.base_url = "http://10.0.0.1:9".into();
        assert!(workload_diffs(&a, &b).is_empty());
        b.dataset.turns = Some(2);
        assert_eq!(workload_diffs(&a, &b), vec!["dataset.turns: 5 vs 2".to_owned()]);
    }
}
