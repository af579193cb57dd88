//! Load generation against HTTP inference servers: backends, SSE parsing, arrival processes, the
//! scheduler with its concurrency gate, and the measurement of each request into a record.
// No unwrap or expect outside tests: input must never panic us (clippy.toml allows them in tests).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod arrival;
pub mod backend;
pub mod client;
pub mod http1;
pub mod runner;
pub mod sse;
pub mod transport;

pub use arrival::{ArrivalConfig, Arrivals};
pub use backend::{Backend, RequestTemplate, TemplateOptions};
pub use client::{http_client, preflight, server_token_count, ClientError, HttpClient, HttpTarget, Requester, ServerInfo, Slot};
pub use http1::Timeouts;
pub use runner::{run_load, LoadProfile, Prompts, RunEvent, RunOutcome, ShardPlan};
pub use transport::{ProxyEnv, TlsOptions};
