//! The embedded OpenAI-compatible server: one HTTP front over a [`Generator`], implemented by the
//! latency simulator and by the real engine.
// No unwrap or expect outside tests: input must never panic us (clippy.toml allows them in tests).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod engine;
pub mod generator;
pub mod sim;
mod timer;
pub mod tls;

pub use engine::EngineGenerator;
pub use generator::{Fault, GenError, GenEvent, GenRequest, Generator};
pub use sim::{SimConfig, Simulator};

use axum::serve::ListenerExt;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves `gen` on `listener` until `shutdown` resolves; `api_key` protects the `/v1` routes;
/// with `tls`, every connection is HTTPS.
pub async fn serve(
    listener: TcpListener,
    gen: Arc<dyn Generator>,
    api_key: Option<String>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Some(config) = tls {
        let listener = tls::TlsListener::new(listener, config)?;
        return axum::serve(listener, api::router(gen, api_key)).with_graceful_shutdown(shutdown).await;
    }
    // No Nagle: every token is a small write that must leave at once, not wait for an ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("set_nodelay failed: {e}");
        }
    });
    axum::serve(listener, api::router(gen, api_key)).with_graceful_shutdown(shutdown).await
}
