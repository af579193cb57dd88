//! The embedded engine: a GGUF model (llama, Qwen2, Qwen3 or GPT-2 family) on CPU, with a continuous-batching scheduler,
//! sampling, and a local model cache. Everything the serving front and the engine benchmark need
//! to do real work on a bare machine.
// No unwrap or expect outside tests: input must never panic us (clippy.toml allows them in tests).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cache;
mod detok;
pub mod engine;
pub mod kv;
pub mod llama;
pub mod prometheus;
pub mod quant;
pub mod sampling;
pub mod speculative;
#[doc(hidden)]
pub mod testing;

pub use engine::{DraftConfig, Engine, EngineConfig, Event, EventSink, FinishReason, Request};
pub use kv::KvCache;
pub use llama::{BatchItem, Config, LoadOptions, Model};
pub use prometheus::EngineStats;
pub use quant::{Quantization, WeightFormat};
pub use sampling::{Sampler, SamplingParams};

/// Why the engine refused or failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum EngineError {
    /// A model file could not be read.
    #[error("{0}")]
    Io(String),
    /// A model file is malformed.
    #[error("corrupt model: {0}")]
    Corrupt(String),
    /// The model uses something this engine does not implement.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// A request is invalid.
    #[error("{0}")]
    BadInput(String),
    /// A request does not fit the context or the KV budget.
    #[error("{0}")]
    TooLarge(String),
    /// The engine is shutting down or overloaded.
    #[error("{0}")]
    Unavailable(String),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
    /// A model download or cache operation failed.
    #[error("{0}")]
    Fetch(String),
}

use inferbench_data::gguf::{GgufMetadata, GgufValue};
use inferbench_data::tokenizer::Tokenizer;
use std::path::Path;
use std::sync::Arc;

/// A model ready to serve: weights, its own tokenizer and chat template, and the ids that end
/// generation.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The weights.
    pub model: Arc<Model>,
    /// The tokenizer embedded in the GGUF.
    pub tokenizer: Tokenizer,
    /// End-of-sequence ids (EOS, end-of-turn and the usual end markers present in the vocabulary).
    pub eos: Vec<u32>,
    /// Seconds the load took.
    pub load_seconds: f64,
}

/// Loads a GGUF model and the tokenizer it embeds.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Loaded, EngineError> {
    if !path.is_file() {
        return Err(EngineError::Io(format!("{}: no such model file", path.display())));
    }
    let t = std::time::Instant::now();
    let model = Model::load(path, opts)?;
    let tokenizer = Tokenizer::by_name(&path.to_string_lossy()).map_err(|e| EngineError::Unsupported(e.to_string()))?;
    let md = GgufMetadata::read(path).map_err(|e| EngineError::Corrupt(e.to_string()))?;
    let mut eos: Vec<u32> = ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]
        .iter()
        .filter_map(|k| md.kv.get(*k).and_then(GgufValue::as_i64))
        .map(|i| i as u32)
        .collect();
    if let Some(tokens) = md.kv.get("tokenizer.ggml.tokens").and_then(GgufValue::as_array) {
        for (i, t) in tokens.iter().enumerate() {
            if matches!(t.as_str(), Some("<|im_end|>" | "<|endoftext|>" | "<|eot_id|>" | "</s>")) {
                eos.push(i as u32);
            }
        }
    }
    eos.sort_unstable();
    eos.dedup();
    drop(md);
    release_freed_memory();
    Ok(Loaded { model: Arc::new(model), tokenizer, eos, load_seconds: t.elapsed().as_secs_f64() })
}

/// Hands the allocator's free pages back to the OS. Loading reads every tensor into a buffer and
/// converts it, and parses the GGUF directory and vocabulary more than once; glibc keeps what
/// was freed, which showed as ~40 MB of resident memory beyond the weights. The same holds for
/// KV caches and prefill activations once a burst of work is over (megabytes each, kept by glibc
/// once its mmap threshold has risen past them), so the scheduler calls this when it goes idle
/// and llama-bench's tests between tests. (Lowering the mmap threshold instead was dropped: every
/// large step buffer is then mapped and faulted in afresh; its cost was not measured on its own.)
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused heap memory to the OS; it has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
