//! Load generation against HTTP inference servers: backends, SSE parsing, arrival processes, the
//! scheduler with its concurrency gate, and the measurement of each request into a record.

pub mod arrival;
pub mod backend;
pub mod client;
pub mod http1;
pub mod runner;
pub mod sse;

pub use arrival::{ArrivalConfig, Arrivals};
pub use backend::{Backend, RequestTemplate, TemplateOptions};
pub use client::{http_client, preflight, ClientError, HttpClient, HttpTarget, Requester, Slot};
pub use runner::{run_load, LoadProfile, RunEvent, RunOutcome};
