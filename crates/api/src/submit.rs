//! What a client may submit, checked before anything is queued: a run, sweep or engine spec
//! (the JSON `--spec` reads, or any part of it over the defaults), seed 000's
//! `{model_name, test_types}`, and where the target is (a URL, the simulator, the embedded
//! model). Every refusal names the field. Secrets are split off here: the stored request never
//! holds an API key or a URL password.

use inferbench_core::engine_bench::BenchConfig;
use inferbench_core::json::{overlay, unknown_key};
use inferbench_core::sweep::SweepSpec;
use inferbench_core::RunSpec;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A refusal: the field and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct Invalid {
    /// The field, as a JSON path (`spec.num_prompts`).
    pub field: String,
    /// Why it was refused.
    pub why: String,
}

fn invalid(field: &str, why: impl std::fmt::Display) -> Invalid {
    Invalid { field: field.to_owned(), why: why.to_string() }
}

/// Which kind of benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A serving run.
    Run,
    /// A sweep of serving runs over rising load.
    Sweep,
    /// The in-process engine benchmark.
    Engine,
}

impl Kind {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Sweep => "sweep",
            Kind::Engine => "engine",
        }
    }
}

/// A server this process starts for the benchmark, on a free loopback port, and stops after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    /// The latency simulator.
    Simulator,
    /// The embedded engine serving a real model (the default model unless `model` names one).
    Embedded,
}

/// `POST /api/v1/benchmarks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    kind: Kind,
    #[serde(default)]
    spec: Value,
    #[serde(default)]
    server: Option<Server>,
    /// The model the embedded server loads (a known name or a GGUF path).
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Seed 000's `POST /api/benchmark`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRequest {
    model_name: String,
    #[serde(default)]
    test_types: Option<Vec<String>>,
}

/// The benchmark itself, checked.
#[derive(Debug, Clone)]
pub enum Plan {
    /// A serving run.
    Run(Box<RunSpec>),
    /// A sweep.
    Sweep(Box<SweepSpec>),
    /// An engine benchmark.
    Engine(Box<BenchConfig>),
}

/// What lives only in memory: never stored, logged or returned.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// The target's API key.
    pub api_key: Option<String>,
    /// The base URL with its password, when it had one (the stored one is redacted).
    pub base_url: Option<String>,
}

impl Secrets {
    /// True when there is something to keep.
    pub fn any(&self) -> bool {
        self.api_key.is_some() || self.base_url.is_some()
    }
}

/// A checked submission.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Its kind.
    pub kind: Kind,
    /// The benchmark.
    pub plan: Plan,
    /// The server to start for it.
    pub server: Option<Server>,
    /// The embedded server's model.
    pub server_model: Option<String>,
    /// The model measured, for listings.
    pub model: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// What is stored: the whole request, secrets removed.
    pub stored: Value,
    /// The secrets.
    pub secrets: Secrets,
}

/// Parses `value` as `T`, naming the field of the first error.
fn parse<T: DeserializeOwned + serde::Serialize>(value: Value, user: &Value, path: &str) -> Result<T, Invalid> {
    let t: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let field = if inner == "." || inner.is_empty() { path.to_owned() } else { format!("{path}.{inner}") };
        invalid(&field, e.into_inner())
    })?;
    let back = serde_json::to_value(&t).map_err(|e| invalid(path, e))?;
    if let Some(k) = unknown_key(user, &back, path) {
        return Err(invalid(&k, "unknown field"));
    }
    Ok(t)
}

/// A run spec from `user` over the defaults; the base URL's password is split off.
fn run_spec(user: &Value, path: &str, server: Option<Server>, secrets: &mut Secrets) -> Result<RunSpec, Invalid> {
    if !user.is_object() {
        return Err(invalid(path, "expected an object (the JSON that `inferbench run --spec` reads)"));
    }
    let placeholder = "http://127.0.0.1:8000";
    let mut v = serde_json::to_value(RunSpec::new(placeholder)).map_err(|e| invalid(path, e))?;
    if server.is_some() {
        // The server's own model name is used.
        v["model"] = Value::String(String::new());
    }
    overlay(&mut v, user);
    if server.is_none() && user.get("base_url").is_none() {
        return Err(invalid(
            &format!("{path}.base_url"),
            "missing: the server to benchmark (or set \"server\": \"simulator\" or \"embedded\")",
        ));
    }
    let mut spec: RunSpec = parse(v, user, path)?;
    let shown = inferbench_load::client::redact_url(&spec.base_url);
    if shown != spec.base_url {
        secrets.base_url = Some(std::mem::replace(&mut spec.base_url, shown));
    }
    let mut check = spec.clone();
    if let Some(real) = &secrets.base_url {
        check.base_url.clone_from(real);
    }
    inferbench_bench::spec::normalize(&mut check).map_err(|e| invalid(path, e))?;
    let tls = inferbench_load::TlsOptions { ca_cert: check.ca_cert.as_ref().map(Into::into), insecure: check.insecure };
    inferbench_load::HttpTarget::with_transport(
        &check.base_url,
        &check.endpoint,
        None,
        std::time::Duration::from_secs(1),
        &tls,
        &inferbench_load::ProxyEnv::from_env(),
    )
    .map_err(|e| invalid(&format!("{path}.base_url"), e))?;
    Ok(spec)
}

/// Checks a `POST /api/v1/benchmarks` body.
pub fn submission(body: &[u8]) -> Result<Checked, Invalid> {
    let mut raw: Value = serde_json::from_slice(body).map_err(|e| invalid("body", format!("not JSON: {e}")))?;
    // An API key may also sit in the spec (where `--spec` files never have one): taken out here,
    // before anything is parsed or stored.
    let mut in_spec = None;
    for ptr in ["/spec", "/spec/spec"] {
        if let Some(Value::Object(o)) = raw.pointer_mut(ptr) {
            if let Some(Value::String(k)) = o.remove("api_key") {
                in_spec = Some(k);
            }
        }
    }
    let sub: Submission = parse_top(raw.clone())?;
    let mut secrets = Secrets { api_key: sub.api_key.clone().or(in_spec).filter(|k| !k.is_empty()), base_url: None };
    let (plan, model) = match sub.kind {
        Kind::Run => {
            let spec = run_spec(&sub.spec, "spec", sub.server, &mut secrets)?;
            let model = spec.model.clone();
            (Plan::Run(Box::new(spec)), model)
        }
        Kind::Sweep => {
            let Some(user) = sub.spec.as_object() else {
                return Err(invalid("spec", "expected an object with dimension, loads and spec (the base run)"));
            };
            let run = run_spec(user.get("spec").unwrap_or(&json!({})), "spec.spec", sub.server, &mut secrets)?;
            let mut v = json!({"slos": [], "min_success_rate": 0.95, "repeat": 1, "cooldown_s": 0.0});
            overlay(&mut v, &sub.spec);
            v["spec"] = serde_json::to_value(&run).map_err(|e| invalid("spec.spec", e))?;
            let mut user_no_run = sub.spec.clone();
            if let Some(o) = user_no_run.as_object_mut() {
                o.remove("spec");
            }
            let sweep: SweepSpec = parse(v, &user_no_run, "spec")?;
            let mut check = sweep.clone();
            if let Some(real) = &secrets.base_url {
                check.run.base_url.clone_from(real);
            }
            let opts = inferbench_bench::SweepOptions { run: inferbench_bench::RunOptions::default() };
            inferbench_bench::Sweep::new(check, opts).map_err(|e| invalid("spec", e))?;
            let model = sweep.run.model.clone();
            (Plan::Sweep(Box::new(sweep)), model)
        }
        Kind::Engine => {
            if sub.server.is_some() {
                return Err(invalid("server", "an engine benchmark runs the model in this process; server applies to run and sweep"));
            }
            let mut v = serde_json::to_value(BenchConfig::default()).map_err(|e| invalid("spec", e))?;
            if !(sub.spec.is_object() || sub.spec.is_null()) {
                return Err(invalid("spec", "expected an object (the engine benchmark's YAML config, as JSON)"));
            }
            overlay(&mut v, &sub.spec);
            let cfg: BenchConfig = parse(v, &sub.spec, "spec")?;
            engine_checks(&cfg, "spec.model")?;
            let model = cfg.model.clone().unwrap_or_else(|| inferbench_engine::cache::DEFAULT_MODEL.to_owned());
            (Plan::Engine(Box::new(cfg)), model)
        }
    };
    if let Some(m) = &sub.model {
        if sub.server != Some(Server::Embedded) {
            return Err(invalid("model", "names the embedded server's model; set \"server\": \"embedded\" too"));
        }
        model_exists(m, "model")?;
    }
    let model = match (sub.server, model.is_empty()) {
        (Some(Server::Simulator), true) => "inferbench-sim".to_owned(),
        (Some(Server::Embedded), true) => sub.model.clone().unwrap_or_else(|| inferbench_engine::cache::DEFAULT_MODEL.to_owned()),
        _ => model,
    };
    let mut stored = raw;
    if let Some(o) = stored.as_object_mut() {
        o.remove("api_key");
        let url = match &plan {
            Plan::Run(s) => Some(("/spec/base_url", s.base_url.clone())),
            Plan::Sweep(s) => Some(("/spec/spec/base_url", s.run.base_url.clone())),
            Plan::Engine(_) => None,
        };
        if let Some((ptr, shown)) = url {
            if let Some(slot) = stored.pointer_mut(ptr) {
                *slot = Value::String(shown);
            }
        }
    }
    Ok(Checked { kind: sub.kind, plan, server: sub.server, server_model: sub.model, model, labels: sub.labels, stored, secrets })
}

fn parse_top(raw: Value) -> Result<Submission, Invalid> {
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let p = e.path().to_string();
        invalid(if p == "." { "body" } else { &p }, e.into_inner())
    })
}

/// A model argument that can be loaded: a known name or an existing GGUF file.
fn model_exists(m: &str, field: &str) -> Result<(), Invalid> {
    if std::path::Path::new(m).is_file() || inferbench_engine::cache::known(m).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = inferbench_engine::cache::KNOWN.iter().map(|k| k.name).collect();
    Err(invalid(
        field,
        format!(
            "unknown model '{m}': known models are {} (see `inferbench model list`), or give the path of a .gguf file on the API's machine",
            known.join(", ")
        ),
    ))
}

fn engine_checks(cfg: &BenchConfig, model_field: &str) -> Result<(), Invalid> {
    if let Some(m) = &cfg.model {
        model_exists(m, model_field)?;
    }
    inferbench_bench::engine::validate(cfg).map_err(|e| invalid("spec", e))
}

/// The test types seed 000 names.
pub const TEST_TYPES: [&str; 3] = ["latency", "memory", "throughput"];

/// Checks seed 000's body: the engine benchmark with the default config, only the sections
/// `test_types` names (all three when it is absent).
pub fn seed_request(body: &[u8]) -> Result<Checked, Invalid> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| invalid("body", format!("not JSON: {e}")))?;
    let req: SeedRequest = serde_path_to_error::deserialize(raw.clone()).map_err(|e| {
        let p = e.path().to_string();
        invalid(if p == "." { "body" } else { &p }, e.into_inner())
    })?;
    let types = req.test_types.clone().unwrap_or_else(|| TEST_TYPES.map(String::from).to_vec());
    if types.is_empty() {
        return Err(invalid("test_types", format!("empty: pick from {}", TEST_TYPES.join(", "))));
    }
    for (i, t) in types.iter().enumerate() {
        if !TEST_TYPES.contains(&t.as_str()) {
            return Err(invalid(&format!("test_types[{i}]"), format!("unknown test type '{t}': pick from {}", TEST_TYPES.join(", "))));
        }
    }
    let mut cfg = BenchConfig { model: Some(req.model_name.clone()), ..BenchConfig::default() };
    let on = |t: &str| types.iter().any(|x| x == t);
    if !on("latency") {
        cfg.latency.input_lengths.clear();
        cfg.latency.output_lengths.clear();
    }
    if !on("memory") {
        cfg.memory.measure_peak = false;
        cfg.memory.measure_kv_cache = false;
    }
    if !on("throughput") {
        cfg.throughput.concurrent_requests = 0;
        cfg.throughput.batch_sizes.clear();
    }
    engine_checks(&cfg, "model_name")?;
    // Stored as the engine submission it amounts to, so the worker reads every job one way.
    let _ = raw;
    let stored = json!({"kind": "engine", "spec": cfg, "labels": {"submitted_as": "seed-000"}});
    Ok(Checked {
        kind: Kind::Engine,
        plan: Plan::Engine(Box::new(cfg)),
        server: None,
        server_model: None,
        model: req.model_name,
        labels: BTreeMap::from([("submitted_as".to_owned(), "seed-000".to_owned())]),
        stored,
        secrets: Secrets::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: Value) -> Invalid {
        submission(body.to_string().as_bytes()).unwrap_err()
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(err(json!({"kind": "run", "spec": {"base_url": "http://x", "num_prompts": "many"}})).field, "spec.num_prompts");
        assert_eq!(err(json!({"kind": "run", "spec": {"base_url": "http://x", "num_promts": 3}})).field, "spec.num_promts");
        assert_eq!(
            err(json!({"kind": "run", "spec": {"base_url": "http://x", "dataset": {"input_len": "x"}}}))
                .field
                .split('.')
                .take(2)
                .collect::<Vec<_>>(),
            ["spec", "dataset"]
        );
        assert_eq!(err(json!({"kind": "run", "spec": {}})).field, "spec.base_url");
        assert_eq!(err(json!({"kind": "walk", "spec": {}})).field, "kind");
        assert_eq!(err(json!({"kind": "run", "spek": {}})).field, "spek");
        let e = err(json!({"kind": "run", "spec": {"base_url": "ftp://x"}}));
        assert_eq!(e.field, "spec.base_url", "{e}");
        let e = err(json!({"kind": "sweep", "spec": {"dimension": "concurrency", "loads": [4, 2], "spec": {"base_url": "http://x"}}}));
        assert!(e.why.contains("increase"), "{e}");
        assert_eq!(err(json!({"kind": "engine", "spec": {"latency": {"test_runs": 0}}})).field, "spec");
        assert_eq!(err(json!({"kind": "engine", "spec": {"model": "gpt2"}})).field, "spec.model");
    }

    #[test]
    fn secrets_are_split_off() {
        let c = submission(
            json!({"kind": "run", "api_key": "sk-123", "spec": {"base_url": "http://u:hunter2@127.0.0.1:9/", "num_prompts": 4}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let stored = c.stored.to_string();
        assert!(!stored.contains("sk-123") && !stored.contains("hunter2"), "{stored}");
        assert_eq!(c.secrets.api_key.as_deref(), Some("sk-123"));
        assert!(c.secrets.base_url.as_deref().unwrap().contains("hunter2"));
        let Plan::Run(s) = &c.plan else { panic!() };
        assert!(!s.base_url.contains("hunter2") && s.num_prompts == Some(4));
        // In the spec, too.
        let c = submission(br#"{"kind": "run", "spec": {"base_url": "http://127.0.0.1:9", "api_key": "sk-456"}}"#).unwrap();
        assert_eq!(c.secrets.api_key.as_deref(), Some("sk-456"));
        assert!(!c.stored.to_string().contains("sk-456"));
    }

    #[test]
    fn seed_000_payload() {
        let c = seed_request(br#"{"model_name": "SmolLM2-135M-Instruct", "test_types": ["latency", "memory"]}"#).unwrap();
        let Plan::Engine(cfg) = &c.plan else { panic!() };
        assert!(cfg.throughput.batch_sizes.is_empty() && cfg.throughput.concurrent_requests == 0);
        assert!(!cfg.latency.input_lengths.is_empty() && cfg.memory.measure_peak);
        let e = seed_request(br#"{"model_name": "gpt2", "test_types": ["latency", "memory"]}"#).unwrap_err();
        assert!(e.field == "model_name" && e.why.contains("SmolLM2-135M-Instruct"), "{e}");
        let e = seed_request(br#"{"model_name": "SmolLM2-135M-Instruct", "test_types": ["speed"]}"#).unwrap_err();
        assert_eq!(e.field, "test_types[0]");
    }

    #[test]
    fn a_simulator_run_needs_no_url() {
        let c = submission(br#"{"kind": "run", "server": "simulator", "spec": {"num_prompts": 8}}"#).unwrap();
        assert_eq!((c.server, c.model.as_str()), (Some(Server::Simulator), "inferbench-sim"));
    }
}
