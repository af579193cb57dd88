//! Prompts and token counts: the tokenizers the client counts with and the datasets it sends.
//! The serving benchmark, the simulator and (later) the engine bench all draw from here, so a
//! "1,024-token prompt" means the same thing everywhere.
// No unwrap or expect outside tests: input must never panic us (clippy.toml allows them in tests).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod builtin;
pub mod chat;
pub mod datasets;
pub mod gguf;
pub mod prompt;
pub mod random;
pub mod tokenizer;
pub mod trace;

pub use chat::ChatTemplate;
pub use datasets::{load_dataset, Dataset, DatasetKind, DatasetOptions};
pub use prompt::{to_jsonl, ChatMessage, Prompt};
pub use random::{random_prompts, RandomConfig};
pub use tokenizer::Tokenizer;
pub use trace::{read_trace, TraceFormat, TraceOptions, TraceSet};

/// Why prompts or a tokenizer could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The tokenizer name is not one we bundle.
    #[error("unknown tokenizer '{0}' (bundled: cl100k_base, o200k_base, gpt2; or a tokenizer.json file or model directory)")]
    UnknownTokenizer(String),
    /// The tokenizer failed to load or decode.
    #[error("tokenizer {name}: {message}")]
    Tokenizer {
        /// Tokenizer name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// A dataset parameter is out of range.
    #[error("{0}")]
    BadParameter(String),
    /// A dataset file could not be read.
    #[error("cannot read {}: {message}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        message: String,
    },
    /// A dataset file has a bad line.
    #[error("{}:{line}: {message}", path.display())]
    Malformed {
        /// The file.
        path: std::path::PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Nothing usable is left.
    #[error("{0}")]
    Empty(String),
    /// A GGUF file could not be read.
    #[error("{path}: {message}")]
    Gguf {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A chat template failed to compile or render.
    #[error("chat template: {0}")]
    Template(String),
}
