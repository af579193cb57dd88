//! Tokenizers bundled with the binary (tiktoken encodings), so counting works offline.

use crate::DataError;
use std::sync::OnceLock;
use tiktoken_rs::CoreBPE;

/// A tokenizer the client counts tokens with. Cheap to clone (the tables are shared statics).
#[derive(Clone)]
pub struct Tokenizer {
    name: &'static str,
    bpe: &'static CoreBPE,
    words: &'static OnceLock<Vec<String>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("name", &self.name).finish()
    }
}

static CL100K_WORDS: OnceLock<Vec<String>> = OnceLock::new();
static O200K_WORDS: OnceLock<Vec<String>> = OnceLock::new();
static GPT2_WORDS: OnceLock<Vec<String>> = OnceLock::new();

impl Tokenizer {
    /// Names accepted by [`Tokenizer::by_name`].
    pub const BUNDLED: [&'static str; 3] = ["cl100k_base", "o200k_base", "gpt2"];

    /// Loads a bundled encoding by name (`cl100k_base`, `o200k_base`, `gpt2` / `r50k_base`).
    pub fn by_name(name: &str) -> Result<Self, DataError> {
        let (name, bpe, words): (&'static str, fn() -> &'static CoreBPE, _) = match name {
            "cl100k_base" | "cl100k" => ("cl100k_base", tiktoken_rs::cl100k_base_singleton, &CL100K_WORDS),
            "o200k_base" | "o200k" => ("o200k_base", tiktoken_rs::o200k_base_singleton, &O200K_WORDS),
            "gpt2" | "r50k_base" => ("gpt2", tiktoken_rs::r50k_base_singleton, &GPT2_WORDS),
            other => return Err(DataError::UnknownTokenizer(other.to_owned())),
        };
        Ok(Self { name, bpe: bpe(), words })
    }

    /// The encoding's canonical name.
    pub fn name(&self) -> &str {
        self.name
    }

    /// Encodes text as ordinary text (special-token strings are not treated specially).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.bpe.encode_ordinary(text)
    }

    /// Counts the tokens of `text`.
    pub fn count(&self, text: &str) -> usize {
        self.encode(text).len()
    }

    /// Decodes token ids to text.
    pub fn decode(&self, ids: &[u32]) -> Result<String, DataError> {
        self.bpe.decode(ids.to_vec()).map_err(|e| DataError::Tokenizer { name: self.name.into(), message: e.to_string() })
    }

    /// Lower-case words that encode, with a leading space, to exactly one token each. A text made
    /// of such words separated by single spaces has exactly as many tokens as words, because every
    /// bundled encoding's pre-tokenizer splits it at the spaces. Used for exact-length prompts and
    /// for the simulator's output.
    pub fn single_token_words(&self) -> &'static [String] {
        self.words.get_or_init(|| {
            let mut words = Vec::new();
            let mut misses = 0;
            // Ids are dense up to the vocabulary size (special tokens aside): stop after a long
            // run of unknown ids rather than paying for an error on every id up to a guess.
            for id in 0u32.. {
                let Ok(piece) = self.bpe.decode(vec![id]) else {
                    misses += 1;
                    if misses > 1024 {
                        break;
                    }
                    continue;
                };
                misses = 0;
                let Some(word) = piece.strip_prefix(' ') else { continue };
                if (3..=8).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_lowercase()) && self.encode(&piece) == [id] {
                    words.push(piece);
                }
            }
            words
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_encodings_load_and_count() {
        for name in Tokenizer::BUNDLED {
            let t = Tokenizer::by_name(name).unwrap();
            assert_eq!(t.count("hello world"), 2, "{name}");
            let ids = t.encode("The capital of France is Paris.");
            assert_eq!(t.decode(&ids).unwrap(), "The capital of France is Paris.");
            let words = t.single_token_words();
            assert!(words.len() > 1000, "{name}: {} words", words.len());
            let text: String = words.iter().take(500).cloned().collect();
            assert_eq!(t.count(&text), 500, "{name}");
        }
    }

    #[test]
    fn unknown_tokenizer_is_named() {
        let e = Tokenizer::by_name("llama9").unwrap_err();
        assert!(e.to_string().contains("unknown tokenizer 'llama9'"));
    }
}
