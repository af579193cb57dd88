//! Chat templates (the Jinja templates models ship in `tokenizer_config.json` or GGUF
//! metadata), rendered with a real Jinja engine so a conversation's token count matches what a
//! server that applies the same template sees.

use crate::prompt::ChatMessage;
use crate::DataError;
use serde_json::Value;
use std::path::Path;

/// A model's chat template with its special tokens.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

fn token_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).unwrap_or_default().to_owned(),
        _ => String::new(),
    }
}

impl ChatTemplate {
    /// A template from its source and special tokens.
    pub fn new(source: impl Into<String>, bos_token: impl Into<String>, eos_token: impl Into<String>) -> Self {
        Self { source: source.into(), bos_token: bos_token.into(), eos_token: eos_token.into() }
    }

    /// Reads `chat_template` (a string, or a list of named templates: `default` or the first)
    /// and the BOS / EOS tokens from a `tokenizer_config.json`. `Ok(None)` when it has none.
    pub fn from_tokenizer_config(path: &Path) -> Result<Option<Self>, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::Io { path: path.to_owned(), message: e.to_string() })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| DataError::Malformed {
            path: path.to_owned(),
            line: e.line(),
            message: e.to_string(),
        })?;
        let source = match v.get("chat_template") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(list)) => {
                let named = |n: &str| list.iter().find(|t| t["name"] == n);
                match named("default").or_else(|| list.first()).and_then(|t| t["template"].as_str()) {
                    Some(s) => s.to_owned(),
                    None => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        let t = Self::new(source, token_text(v.get("bos_token")), token_text(v.get("eos_token")));
        t.render(&[ChatMessage { role: "user".into(), content: "hi".into() }], true).map_err(|e| DataError::Malformed {
            path: path.to_owned(),
            line: 1,
            message: format!("chat_template: {e}"),
        })?;
        Ok(Some(t))
    }

    /// Renders a conversation, optionally with the prompt that starts the assistant's turn.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String, DataError> {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        let err = |e: minijinja::Error| DataError::Template(e.to_string());
        let tmpl = env.template_from_str(&self.source).map_err(err)?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-Instruct's template (ChatML), as its tokenizer_config.json ships it.
    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn msgs() -> Vec<ChatMessage> {
        vec![ChatMessage { role: "user".into(), content: "What is 2+2?".into() }]
    }

    #[test]
    fn renders_chatml_like_the_model_expects() {
        let t = ChatTemplate::new(CHATML, "<|im_start|>", "<|im_end|>");
        let out = t.render(&msgs(), true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_methods_and_raise_exception_work() {
        let src = "{% if messages[0].role == 'system' %}{{ raise_exception('no system') }}{% endif %}{{ bos_token }}{% for m in messages %}[{{ m.role.upper() }}] {{ m.content.strip() }}{% endfor %}";
        let t = ChatTemplate::new(src, "<s>", "</s>");
        let m = vec![ChatMessage { role: "user".into(), content: "  hi  ".into() }];
        assert_eq!(t.render(&m, false).unwrap(), "<s>[USER] hi");
        let sys = vec![ChatMessage { role: "system".into(), content: "x".into() }];
        assert!(t.render(&sys, false).unwrap_err().to_string().contains("no system"));
    }

    #[test]
    fn reads_tokenizer_config_variants() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer_config.json");
        let cfg = serde_json::json!({"chat_template": CHATML, "bos_token": {"content": "<|im_start|>"}, "eos_token": "<|im_end|>"});
        std::fs::write(&p, cfg.to_string()).unwrap();
        let t = ChatTemplate::from_tokenizer_config(&p).unwrap().unwrap();
        assert_eq!(t.bos_token, "<|im_start|>");
        let cfg = serde_json::json!({"chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "{{ messages[0].content }}"}]});
        std::fs::write(&p, cfg.to_string()).unwrap();
        assert_eq!(ChatTemplate::from_tokenizer_config(&p).unwrap().unwrap().render(&msgs(), false).unwrap(), "What is 2+2?");
        std::fs::write(&p, "{}").unwrap();
        assert!(ChatTemplate::from_tokenizer_config(&p).unwrap().is_none());
        std::fs::write(&p, serde_json::json!({"chat_template": "{% for %}"}).to_string()).unwrap();
        assert!(ChatTemplate::from_tokenizer_config(&p).unwrap_err().to_string().contains("chat_template"));
    }
}
