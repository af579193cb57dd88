//! The seam between the HTTP front and whatever produces tokens (the simulator now, the real
//! engine later): a request in, a channel of events out.

use tokio::sync::mpsc;

/// A generation request, already validated by the front.
#[derive(Debug, Clone, Default)]
pub struct GenRequest {
    /// The prompt text (for chat: the messages' text joined, for generators without a template).
    pub prompt: String,
    /// The chat messages, for generators that apply the model's chat template.
    pub messages: Option<Vec<inferbench_data::prompt::ChatMessage>>,
    /// Sampling temperature (`None`: the generator's default, greedy for the engine).
    pub temperature: Option<f32>,
    /// Nucleus sampling cut-off.
    pub top_p: Option<f32>,
    /// Top-k cut-off (0 or -1: off).
    pub top_k: Option<i64>,
    /// Seed for reproducible sampling.
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Tokens to generate at most.
    pub max_tokens: u32,
    /// Tokens to generate at least (EOS is ignored until then).
    pub min_tokens: u32,
    /// Ignore end-of-sequence entirely.
    pub ignore_eos: bool,
}

/// A fault the simulator injects into a stream, for testing clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Send a chunk that is not valid JSON.
    Malformed,
    /// Drop the connection mid-stream.
    Disconnect,
}

/// What a generator sends back, in order: tokens, then exactly one `Finish` (unless a fault ends
/// the stream first).
#[derive(Debug, Clone, PartialEq)]
pub enum GenEvent {
    /// One generated token's text.
    Token(String),
    /// An injected fault.
    Fault(Fault),
    /// The generator failed mid-stream; the stream ends with an error.
    Error(String),
    /// Generation is over.
    Finish {
        /// `length` or `stop`.
        reason: &'static str,
        /// Prompt tokens.
        prompt_tokens: u32,
        /// Generated tokens.
        completion_tokens: u32,
        /// Prompt tokens served from a prefix cache, when the generator has one.
        cached_tokens: Option<u32>,
    },
}

/// Why a generation request was refused; each maps to one HTTP status.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum GenError {
    /// The request is invalid (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// The prompt or requested output does not fit (HTTP 413).
    #[error("{0}")]
    TooLarge(String),
    /// The server cannot take the request now (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The generator failed (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl GenError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            GenError::BadRequest(_) => 400,
            GenError::TooLarge(_) => 413,
            GenError::Unavailable(_) => 503,
            GenError::Internal(_) => 500,
        }
    }

    /// A stable machine-readable error type.
    pub fn error_type(&self) -> &'static str {
        match self {
            GenError::BadRequest(_) => "invalid_request_error",
            GenError::TooLarge(_) => "context_length_exceeded",
            GenError::Unavailable(_) => "server_overloaded",
            GenError::Internal(_) => "internal_error",
        }
    }
}

/// Something that turns prompts into token streams.
pub trait Generator: Send + Sync + 'static {
    /// The model name served at `/v1/models`.
    fn model_name(&self) -> &str;
    /// Starts generating; events arrive on the returned channel.
    fn generate(&self, req: GenRequest) -> Result<mpsc::Receiver<GenEvent>, GenError>;
    /// Prometheus exposition text of the generator's metrics.
    fn metrics_text(&self) -> String;
    /// The tokenizer prompts are counted with: served at `/tokenize` and `/detokenize`, and
    /// named at `/v1/models`, so a client can count prompt tokens exactly as the server does.
    fn tokenizer(&self) -> Option<&inferbench_data::tokenizer::Tokenizer> {
        None
    }
    /// Whether responses carry `usage` (the simulator can leave it out to test clients).
    fn reports_usage(&self) -> bool {
        true
    }
    /// Empties the prefix cache (vLLM's `POST /reset_prefix_cache`); false when there is none.
    fn reset_prefix_cache(&self) -> bool {
        false
    }
}
