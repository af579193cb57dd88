//! inferbench on Kubernetes as it exists, with no scheduler of our own: an Indexed Job whose pod
//! `I` runs shard `I/N` of one global schedule, a merge Job, and a local runner that starts the
//! rendered pods' commands as processes (so the manifests' command lines are tested without a
//! cluster).
// No unwrap or expect outside tests: input must never panic us (clippy.toml allows them in tests).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod local;
pub mod render;

pub use local::{run_local, LocalOptions, PodOutcome};
pub use render::{render, Manifest, RenderSpec};

/// Why rendering or running manifests failed; each message is one line naming the problem.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// A setting or a manifest is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A file or process could not be handled.
    #[error("{0}")]
    Io(String),
}
