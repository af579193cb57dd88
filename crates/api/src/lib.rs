//! `inferbench api`: benchmarks launched, queued, watched and compared over HTTP, and the web
//! dashboard that drives them. Built on the library (`inferbench-bench`): a submission is the same
//! spec `--spec` reads; results land in the same files and the same results store as the CLI's.
//!
//! One benchmark runs at a time; the queue lives in the results database ([`inferbench_store::queue`])
//! so a restart loses nothing. Without a token the API binds loopback only; with one, every API
//! route needs `Authorization: Bearer <token>`. Secrets in a submission are used and never kept.
// No unwrap or expect outside tests: input must never panic us (clippy.toml allows them in tests).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod auth;
mod files;
pub mod live;
pub mod openapi;
mod routes;
pub mod submit;
pub mod worker;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// How the API is started.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind.
    pub host: IpAddr,
    /// Port (0: any free one).
    pub port: u16,
    /// Bearer token every API route needs; required to bind anything but loopback.
    pub token: Option<String>,
    /// Where each benchmark's files go (`<dir>/<id>/`).
    pub results_dir: PathBuf,
    /// The results database: the queue and the index of results.
    pub store: PathBuf,
    /// Largest request body accepted (413 past it).
    pub max_body_bytes: usize,
}

/// Largest request body accepted by default: a spec is a few kilobytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Why the API did not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A setting is refused (a public bind without a token, say).
    #[error("{0}")]
    Refused(String),
    /// The results database.
    #[error(transparent)]
    Store(#[from] inferbench_store::StoreError),
    /// Binding, or the worker thread.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The API, listening.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Benchmarks marked `interrupted` at start-up (they were running when the last process died).
    pub interrupted: Vec<String>,
    shared: Arc<worker::Shared>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    worker: std::thread::JoinHandle<()>,
}

impl Running {
    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops: the running benchmark is stopped and marked `interrupted` (what it measured is
    /// written), the server stops accepting, and queued benchmarks stay queued for the next start.
    pub async fn shutdown(self) -> Result<(), ApiError> {
        self.shared.shutdown();
        let _ = self.stop.send(());
        let worker = self.worker;
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        match tokio::time::timeout(std::time::Duration::from_secs(3), self.task).await {
            Ok(Ok(r)) => r.map_err(|source| ApiError::Io { what: "the API server".into(), source }),
            _ => Ok(()),
        }
    }
}

/// Checks the settings, opens the database (marking benchmarks left running as interrupted),
/// binds, and starts the server and the worker.
pub async fn start(cfg: Config) -> Result<Running, ApiError> {
    if cfg.token.as_deref().is_some_and(str::is_empty) {
        return Err(ApiError::Refused("--token is empty".into()));
    }
    if cfg.token.is_none() && !cfg.host.is_loopback() {
        return Err(ApiError::Refused(format!(
            "refusing to listen on {} without --token: anyone who can reach it could run benchmarks from this machine; \
             set --token (or INFERBENCH_API_TOKEN), or bind 127.0.0.1",
            cfg.host
        )));
    }
    std::fs::create_dir_all(&cfg.results_dir)
        .map_err(|source| ApiError::Io { what: format!("cannot create {}", cfg.results_dir.display()), source })?;
    let store = inferbench_store::Store::open(&cfg.store)?;
    let interrupted = store.interrupt_running(&inferbench_core::time::rfc3339_now())?;
    drop(store);
    let addr = SocketAddr::new(cfg.host, cfg.port);
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| ApiError::Io { what: format!("cannot listen on {addr}"), source })?;
    let addr = listener.local_addr().map_err(|source| ApiError::Io { what: "local address".into(), source })?;
    let shared = worker::Shared::new(cfg.store.clone(), cfg.results_dir.clone());
    let app = routes::router(cfg, shared.clone())?;
    let worker = worker::spawn(shared.clone()).map_err(|source| ApiError::Io { what: "the worker thread".into(), source })?;
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(Running { addr, interrupted, shared, stop, task, worker })
}
