//! `inferbench serve`: the OpenAI-compatible server, in the foreground until Ctrl-C / SIGTERM.

use crate::args::{ServeArgs, SimArgs};
use anyhow::{bail, Context, Result};
use inferbench_server::{serve, Generator, SimConfig, Simulator};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

impl SimArgs {
    /// The simulator configuration these flags describe.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            model: self.model.clone(),
            ttft_ms: self.ttft_ms,
            prefill_ms_per_token: self.prefill_ms_per_token,
            itl_ms: self.itl_ms,
            itl_ms_per_seq: self.itl_ms_per_seq,
            max_num_seqs: self.max_num_seqs,
            max_model_len: self.max_model_len,
            default_max_tokens: 16,
            no_usage: self.no_usage,
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
}

/// Binds `host:port` and serves `gen` in a background task.
pub async fn start(host: &str, port: u16, gen: Arc<dyn Generator>, api_key: Option<String>) -> Result<Running> {
    let addr: SocketAddr = format!("{host}:{port}").parse().with_context(|| format!("invalid --host/--port '{host}:{port}'"))?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, gen, api_key, async move {
        let _ = rx.await;
    }));
    Ok(Running { url: format!("http://{local}"), stop, task })
}

/// Builds the simulator from flags.
pub fn simulator(a: &SimArgs) -> Result<Arc<dyn Generator>> {
    Ok(Arc::new(Simulator::new(a.config()).map_err(anyhow::Error::msg).context("simulator")?))
}

/// Runs `inferbench serve` until interrupted.
pub async fn run(a: ServeArgs) -> Result<()> {
    if !a.sim {
        bail!("the embedded model engine is not part of this build yet; use `inferbench serve --sim` for the simulator");
    }
    crate::proc::raise_nofile_limit();
    let gen = simulator(&a.sim_args)?;
    let model = gen.model_name().to_owned();
    let server = start(&a.host, a.port, gen, a.api_key.clone()).await?;
    println!("inferbench serve: listening on {} (simulator, model {model})", server.url);
    shutdown_signal().await;
    eprintln!("inferbench serve: shutting down");
    server.shutdown().await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
