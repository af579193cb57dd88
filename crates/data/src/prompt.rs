//! A prompt ready to send.

use serde::{Deserialize, Serialize};

/// One chat message, for datasets that carry whole conversations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

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
    /// The conversation, when the dataset gave one: chat backends send it as is, completion
    /// backends send `text` (the messages' contents joined by newlines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<ChatMessage>>,
    /// For multi-turn datasets, which turn of its conversation this is (0-based). Consecutive
    /// prompts with turns 0, 1, 2, ... form one conversation, sent as a session: each turn after
    /// the previous one's answer, with the history (including the live answers) in front.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
}

impl Prompt {
    /// A single-text prompt.
    pub fn new(text: String, input_tokens: u32, output_tokens: u32) -> Self {
        Self { text, input_tokens, output_tokens, category: None, messages: None, turn: None }
    }
}

/// The prompts as the `jsonl` dataset reads them back (`prompt` or `messages`, `output_tokens`,
/// `category`), one per line: a drawn workload frozen to a file.
pub fn to_jsonl(prompts: &[Prompt]) -> String {
    let mut out = String::new();
    for p in prompts {
        let mut v = serde_json::json!({"output_tokens": p.output_tokens});
        match &p.messages {
            Some(ms) => v["messages"] = serde_json::json!(ms),
            None => v["prompt"] = serde_json::json!(p.text),
        }
        if let Some(c) = &p.category {
            v["category"] = serde_json::json!(c);
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}
