//! Proof that the client measures the server and not itself: a loopback packet capture taken
//! during a run gives the instants the request and each token crossed the wire, independent of
//! client and server, and this crate sets the client's records against them.
//! `scripts/check-wire-truth` drives it; `docs/metrics.md` says how to read its output.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod capture;
pub mod streams;
pub mod truth;

pub use capture::{read_segments, CaptureCounts, CaptureError, Segment};
pub use streams::{Exchanges, Follower, WireExchange};
pub use truth::{compare, request_id, Gap, Truth};
