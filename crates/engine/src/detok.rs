//! Incremental detokenization: turns each new token into the text it completes, in constant
//! time per token, holding back bytes of a UTF-8 character split across tokens.

use inferbench_data::tokenizer::Tokenizer;

/// Offsets into a sequence's generated ids (the vLLM / TGI prefix-offset scheme).
#[derive(Debug, Default, Clone)]
pub struct Detokenizer {
    prefix: usize,
    read: usize,
}

impl Detokenizer {
    /// The new text after `ids` grew by one token.
    pub fn step(&mut self, tok: &Tokenizer, ids: &[u32]) -> String {
        let prefix = tok.decode(&ids[self.prefix..self.read]).unwrap_or_default();
        let full = tok.decode(&ids[self.prefix..]).unwrap_or_default();
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') {
            if let Some(new) = full.get(prefix.len()..) {
                let new = new.to_owned();
                self.prefix = self.read;
                self.read = ids.len();
                return new;
            }
        }
        String::new()
    }

    /// Whatever text is still held back (at the end of generation).
    pub fn flush(&mut self, tok: &Tokenizer, ids: &[u32]) -> String {
        if self.read >= ids.len() {
            return String::new();
        }
        let prefix = tok.decode(&ids[self.prefix..self.read]).unwrap_or_default();
        let full = tok.decode(&ids[self.prefix..]).unwrap_or_default();
        self.prefix = ids.len();
        self.read = ids.len();
        full.get(prefix.len()..).map(str::to_owned).unwrap_or_default()
    }
}
