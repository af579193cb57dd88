//! One error type for every pipeline, sorted by what the caller should do about it: fix the
//! input (exit 2 in the CLI), look at a failed gate (exit 3), or read why the work failed (exit 1).

/// Why a benchmark could not be run or did not pass.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A setting is invalid; the message names it and its value.
    #[error("{0}")]
    Invalid(String),
    /// The work ran, but a gate it was asked to check failed (regression, target, SLO).
    #[error("{0}")]
    Gate(String),
    /// The work could not be done (unreachable server, unreadable file, full disk, ...).
    #[error("{0}")]
    Failed(String),
    /// Cancelled before anything was measured.
    #[error("interrupted {0}")]
    Interrupted(String),
    /// The run was measured, but a result file could not be written (a full disk): the result
    /// is here, so the caller can still show it; the message names each file and how far it got.
    #[error("{1}")]
    Unsaved(Box<inferbench_core::BenchmarkResult>, String),
}

impl BenchError {
    /// An invalid setting.
    pub fn invalid(msg: impl Into<String>) -> Self {
        BenchError::Invalid(msg.into())
    }

    /// A failure, with what was being done.
    pub fn failed(msg: impl Into<String>) -> Self {
        BenchError::Failed(msg.into())
    }
}

/// Adds what was being done to any error, as `context: error`.
pub(crate) trait Context<T> {
    /// Fails with `what: error`.
    fn ctx(self, what: impl std::fmt::Display) -> Result<T, BenchError>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: impl std::fmt::Display) -> Result<T, BenchError> {
        self.map_err(|e| BenchError::Failed(format!("{what}: {e}")))
    }
}

impl<T> Context<T> for Option<T> {
    fn ctx(self, what: impl std::fmt::Display) -> Result<T, BenchError> {
        self.ok_or_else(|| BenchError::Failed(what.to_string()))
    }
}
