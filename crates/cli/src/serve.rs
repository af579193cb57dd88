//! `inferbench serve`: the OpenAI-compatible server, in the foreground until Ctrl-C / SIGTERM.

use crate::args::{EngineArgs, ServeArgs, SimArgs};
use anyhow::{Context, Result};
use inferbench_engine::{DraftConfig, Engine, EngineConfig, LoadOptions, Quantization};
use inferbench_server::{serve, EngineGenerator, Generator, SimConfig, Simulator};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

impl SimArgs {
    /// The simulator configuration these flags describe.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            model: self.served_model_name.clone().unwrap_or_else(|| "inferbench-sim".into()),
            ttft_ms: self.ttft_ms,
            prefill_ms_per_token: self.prefill_ms_per_token,
            itl_ms: self.itl_ms,
            itl_ms_per_seq: self.itl_ms_per_seq,
            max_num_seqs: self.max_num_seqs.unwrap_or(256),
            max_model_len: self.max_model_len.unwrap_or(32768),
            default_max_tokens: 16,
            no_usage: self.no_usage,
            prefix_caching: self.enable_prefix_caching,
            miscount_usage: self.miscount_usage,
            error_rate: self.error_rate,
            disconnect_rate: self.disconnect_rate,
            stall_rate: self.stall_rate,
            stall_ms: self.stall_ms,
            malformed_rate: self.malformed_rate,
            seed: self.seed,
            tokenizer: self.tokenizer.clone(),
        }
    }
}

/// A server running in the background of this process.
pub struct Running {
    /// Its base URL.
    pub url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, lets open streams finish, and waits.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("server task")?.context("server")?;
        Ok(())
    }

    /// Stops accepting and gives open streams `grace` to finish, then drops them: a stream
    /// generating for a client that went away (or stalled on purpose) must not hold the exit.
    pub async fn shutdown_within(mut self, grace: std::time::Duration) -> Result<()> {
        let _ = self.stop.send(());
        match tokio::time::timeout(grace, &mut self.task).await {
            Ok(r) => r.context("server task")?.context("server")?,
            Err(_) => {
                tracing::info!("open streams did not finish within {grace:?}; closing them");
                self.task.abort();
            }
        }
        Ok(())
    }
}

/// How long `inferbench serve` lets open streams run on after Ctrl-C or SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Binds `host:port` and serves `gen` in a background task, over HTTPS with `tls`.
pub async fn start(
    host: &str,
    port: u16,
    gen: Arc<dyn Generator>,
    api_key: Option<String>,
    tls: Option<Arc<inferbench_server::tls::ServerConfig>>,
) -> Result<Running> {
    // `::1` and `[::1]` both name the IPv6 loopback.
    let ip: std::net::IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| crate::usage(format!("invalid --host '{host}': expected an IP address such as 127.0.0.1 or ::1")))?;
    let addr = SocketAddr::new(ip, port);
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let task = tokio::spawn(serve(listener, gen, api_key, tls, async move {
        let _ = rx.await;
    }));
    Ok(Running { url: format!("{scheme}://{local}"), stop, task })
}

/// Builds the simulator from flags.
pub fn simulator(a: &SimArgs) -> Result<Arc<dyn Generator>> {
    Ok(Arc::new(Simulator::new(a.config()).map_err(anyhow::Error::msg).context("simulator")?))
}

/// What the engine server loaded, for the banner and reports.
pub struct EngineInfo {
    /// The model file.
    pub path: std::path::PathBuf,
    /// A one-line description: dimensions, formats, limits.
    pub summary: String,
}

/// Resolves the model (pulling the default one if missing), loads it and starts the engine.
pub async fn engine(e: &EngineArgs, s: &SimArgs) -> Result<(Arc<EngineGenerator>, EngineInfo)> {
    let spec = e.model.clone();
    let (path, name) = tokio::task::spawn_blocking(move || crate::model::resolve(spec.as_deref())).await??;
    let requantize = e.quantization.as_deref().and_then(Quantization::parse);
    let p = path.clone();
    let loaded = tokio::task::spawn_blocking(move || inferbench_engine::load(&p, &LoadOptions { requantize }))
        .await?
        .with_context(|| format!("cannot load the model {}", path.display()))?;
    let draft = match &e.draft_model {
        Some(spec) => Some(load_draft(spec, e.draft_quantization.as_deref(), &loaded).await?),
        None => None,
    };
    let draft_line = draft.as_ref().map(|(d, p)| {
        format!(
            "; draft {} ({} layers, {}), {} speculative tokens",
            p.display(),
            d.cfg.n_layer,
            d.weight_format(),
            e.num_speculative_tokens
        )
    });
    let cfg = EngineConfig {
        draft: draft.map(|(model, _)| DraftConfig {
            model,
            num_speculative_tokens: e.num_speculative_tokens as usize,
            threads: None,
            cpus: None,
        }),
        max_num_seqs: s.max_num_seqs.unwrap_or(16),
        max_num_batched_tokens: e.max_num_batched_tokens,
        max_prefill_tokens_while_decoding: e.max_prefill_tokens_while_decoding.map(|v| v as usize),
        kv_cache_bytes: (e.kv_cache_memory_mib.max(0.0) * 1048576.0) as usize,
        max_model_len: s.max_model_len.map(|v| v as usize),
        threads: e.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        cpus: None,
    };
    let m = &loaded.model;
    let summary = format!(
        "{name}: {} layers, {} hidden, {} heads ({} KV), vocab {}; file {}, weights {} ({:.0} MB) loaded in {:.2} s; \
         {} threads, up to {} sequences, KV budget {} MiB",
        m.cfg.n_layer,
        m.cfg.n_embd,
        m.cfg.n_head,
        m.cfg.n_head_kv,
        m.cfg.vocab,
        m.file_format,
        m.weight_format(),
        m.weight_bytes as f64 / 1e6,
        loaded.load_seconds,
        cfg.threads,
        cfg.max_num_seqs,
        e.kv_cache_memory_mib,
    ) + draft_line.as_deref().unwrap_or("");
    let engine =
        Engine::start(loaded.model.clone(), loaded.tokenizer.clone(), loaded.eos.clone(), cfg).context("cannot start the engine")?;
    let served = s.served_model_name.clone().unwrap_or(name);
    Ok((Arc::new(EngineGenerator::new(engine, served)), EngineInfo { path, summary }))
}

/// Loads the draft of `--draft-model` and checks that it tokenizes as the target does.
async fn load_draft(
    spec: &str,
    quantization: Option<&str>,
    target: &inferbench_engine::Loaded,
) -> Result<(Arc<inferbench_engine::Model>, std::path::PathBuf)> {
    let spec = spec.to_owned();
    let (path, _) = tokio::task::spawn_blocking(move || crate::model::resolve(Some(&spec)))
        .await?
        .map_err(|e| crate::usage(format!("--draft-model: {e}")))?;
    let requantize = quantization.and_then(Quantization::parse);
    let p = path.clone();
    let draft = tokio::task::spawn_blocking(move || inferbench_engine::load(&p, &LoadOptions { requantize }))
        .await?
        .with_context(|| format!("cannot load the draft model {}", path.display()))?;
    inferbench_engine::speculative::check_tokenizers(target, &draft)
        .map_err(|e| crate::usage(format!("--draft-model {}: {e}", path.display())))?;
    Ok((draft.model, path))
}

/// Runs `inferbench serve` until interrupted.
pub async fn run(a: ServeArgs) -> Result<()> {
    // Secure by default: anything but loopback needs a token.
    let loopback = a.host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback && a.api_key.as_deref().is_none_or(str::is_empty) {
        return Err(crate::usage(format!(
            "refusing to serve on {} without --api-key (or INFERBENCH_SERVER_API_KEY): only loopback addresses are open without a token",
            a.host
        )));
    }
    let tls = match (&a.ssl_certfile, &a.ssl_keyfile) {
        (Some(cert), Some(key)) => Some(inferbench_server::tls::server_config(cert, key).map_err(crate::usage)?),
        _ => None,
    };
    inferbench_bench::proc::raise_nofile_limit();
    let (gen, what): (Arc<dyn Generator>, String) = if a.sim {
        (simulator(&a.sim_args)?, "simulator".into())
    } else {
        let (g, info) = engine(&a.engine, &a.sim_args).await?;
        (g, format!("engine, {}", info.summary))
    };
    let model = gen.model_name().to_owned();
    let server = start(&a.host, a.port, gen, a.api_key.clone(), tls).await?;
    outln!("inferbench serve: listening on {} (model {model}; {what})", server.url);
    shutdown_signal().await;
    eprintln!("inferbench serve: shutting down (open streams get {} s)", SHUTDOWN_GRACE.as_secs());
    server.shutdown_within(SHUTDOWN_GRACE).await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            },
            Err(e) => {
                tracing::warn!("no SIGTERM handler ({e}); only Ctrl-C stops the server cleanly");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
