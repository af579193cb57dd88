//! `inferbench k8s render` and `inferbench k8s run-local`.

use crate::args::{K8sCmd, K8sRenderArgs, K8sRunLocalArgs, RunArgs};
use anyhow::{Context, Result};
use clap::Parser;
use inferbench_k8s::{render, run_local, LocalOptions, RenderSpec};

/// The run flags after `--`, parsed as `inferbench run` parses them.
#[derive(Parser)]
#[command(name = "inferbench k8s render -- <RUN FLAGS>", no_binary_name = true, disable_help_flag = true)]
struct RunFlags {
    #[command(flatten)]
    run: RunArgs,
}

/// Run options (not in the spec) that every shard pod gets as given.
const PASSED: &[&str] = &[
    "--label",
    "--metadata",
    "--server-metrics",
    "--metrics-interval",
    "--gpu-monitor-interval",
    "--gpus",
    "--gpu-results-file",
    "--no-host-monitor",
    "--alert",
    "--alert-window",
    "--abort-on-alert",
    "--metrics-port",
    "--grace-period",
    "--save-detailed",
    "--save-generated-text",
    "--max-error-rate",
    "--ready-check-timeout-sec",
    "--allow-tokenizer-mismatch",
    "--reconcile-every",
    "--max-response-bytes",
    "--html",
    "--workers",
    "--quiet",
];

/// Flags the manifests set themselves, or that must never be in them.
const REFUSED: &[(&str, &str)] = &[
    ("--api-key", "a key in the manifests would be readable by anyone who can read the ConfigMap or Job; pass --api-key-secret NAME"),
    ("--shard", "the Job gives each pod its shard"),
    ("--start-at", "give --start-at to `k8s render` itself"),
    ("--result-dir", "the pods write to the shared results volume"),
    ("--result-filename", "the pods name their results shard-<index>"),
    ("--store", "the pods record nothing; the merged result is on the results volume"),
    ("--no-store", "the pods record nothing already"),
    ("--spec", "the spec is built from the run flags; pass the flags, or `inferbench run --spec` locally"),
];

/// Runs `inferbench k8s ...`.
pub async fn run(cmd: K8sCmd) -> Result<()> {
    match cmd {
        K8sCmd::Render(a) => render_cmd(&a),
        K8sCmd::RunLocal(a) => tokio::task::spawn_blocking(move || run_local_cmd(&a)).await?,
    }
}

fn flag_name(tok: &str) -> &str {
    tok.split_once('=').map_or(tok, |(n, _)| n)
}

fn render_cmd(a: &K8sRenderArgs) -> Result<()> {
    for tok in &a.run {
        if let Some((_, why)) = REFUSED.iter().find(|(f, _)| flag_name(tok) == *f) {
            return Err(crate::usage(format!("{} after `--` is refused: {why}", flag_name(tok))));
        }
    }
    let flags = RunFlags::try_parse_from(&a.run).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or("").trim_start_matches("error: ").to_owned();
        crate::usage(format!("the run flags after `--`: {first}"))
    })?;
    let spec = flags.run.spec()?;
    // The same checks `run` makes, so a bad flag is found here and not in N pods.
    let checked = inferbench_bench::Benchmark::serving(spec, inferbench_bench::RunOptions::default())?;
    let spec_json = serde_json::to_string_pretty(checked.spec()).context("serialising the spec")?;
    let mut passed = Vec::new();
    let mut copying = false;
    for tok in &a.run {
        if tok.starts_with("--") {
            copying = PASSED.contains(&flag_name(tok));
        }
        if copying {
            passed.push(tok.clone());
        }
    }
    let start_at = match &a.start_at {
        Some(t) => crate::run::parse_time("--start-at", t)?,
        None => std::time::SystemTime::now() + std::time::Duration::from_secs(300),
    };
    let start_at = humantime::format_rfc3339_seconds(start_at).to_string();
    let api_key_secret = a.api_key_secret.as_ref().map(|s| match s.split_once(':') {
        Some((n, k)) => (n.to_owned(), k.to_owned()),
        None => (s.clone(), "api-key".to_owned()),
    });
    let manifests = render(&RenderSpec {
        name: a.name.clone(),
        namespace: a.namespace.clone(),
        image: a.image.clone(),
        shards: a.shards,
        spec_json,
        run_args: passed,
        start_at: start_at.clone(),
        api_key_secret,
        pvc: a.pvc.clone(),
        storage: a.storage.clone(),
        storage_class: a.storage_class.clone(),
        cpu: a.cpu.clone(),
        memory: a.memory.clone(),
    })?;
    std::fs::create_dir_all(&a.output).with_context(|| format!("cannot create {}", a.output.display()))?;
    for m in &manifests {
        let p = a.output.join(&m.file);
        inferbench_report::write_atomic(&p, m.yaml.as_bytes()).with_context(|| format!("cannot write {}", p.display()))?;
    }
    outln!("Wrote {} manifests to {}: {} shards start measuring at {start_at}.", manifests.len(), a.output.display(), a.shards);
    outln!("Apply them before then:   kubectl apply -k {}", a.output.display());
    outln!(
        "The merged result:        {}/merged.json on the results volume (kubectl -n {} logs job/{}-merge)",
        "/results",
        a.namespace,
        a.name
    );
    outln!("Try them here first:      inferbench k8s run-local {} --start-at +5", a.output.display());
    Ok(())
}

fn run_local_cmd(a: &K8sRunLocalArgs) -> Result<()> {
    let start_at = match &a.start_at {
        // Checked here, passed on as written (the pods parse it again).
        Some(t) => {
            let at = crate::run::parse_time("--start-at", t)?;
            Some(humantime::format_rfc3339_nanos(at).to_string())
        }
        None => None,
    };
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let outcomes = run_local(&a.dir, &LocalOptions { work: a.work.clone(), exe, start_at })?;
    let mut failed = Vec::new();
    for o in &outcomes {
        let status = match o.code {
            Some(0) => "succeeded".to_owned(),
            Some(c) => format!("failed (exit {c})"),
            None => "killed".to_owned(),
        };
        outln!("{:<28} {status:<18} {}", o.pod, o.log.display());
        if o.code != Some(0) {
            failed.push(format!("pod {} {status}; its log: {}", o.pod, o.log.display()));
        }
    }
    if let Some(f) = failed.first() {
        anyhow::bail!("{f}{}", if failed.len() > 1 { format!(" (and {} more)", failed.len() - 1) } else { String::new() });
    }
    if let Some(merge) = outcomes.iter().find(|o| o.pod.ends_with("-merge")) {
        let log = std::fs::read_to_string(&merge.log).unwrap_or_default();
        out!("{log}");
    }
    Ok(())
}
