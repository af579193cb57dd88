//! A prompt ready to send.

use serde::{Deserialize, Serialize};

/// One request's input, with its token counts fixed before the run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// The prompt text (sent as the completion prompt, or as one user message for chat).
    pub text: String,
    /// Prompt length in the run's tokenizer.
    pub input_tokens: u32,
    /// Tokens to ask for (`max_tokens`).
    pub output_tokens: u32,
    /// Category, for per-category breakdowns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}
