//! Tokenizers the client counts with: bundled tiktoken encodings (offline, no files), a GGUF
//! file's own vocabulary (byte-level BPE or SentencePiece), or a
//! Hugging Face `tokenizer.json` (a file, or a model directory that holds one, whose
//! `tokenizer_config.json` also supplies the chat template).

use crate::chat::ChatTemplate;
use crate::gguf::{GgufMetadata, GgufValue};
use crate::DataError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tiktoken_rs::CoreBPE;

/// A tokenizer. Cheap to clone (shared tables).
#[derive(Clone)]
pub struct Tokenizer {
    name: String,
    inner: Arc<Inner>,
}

enum Inner {
    Tiktoken { bpe: &'static CoreBPE, words: &'static OnceLock<Vec<String>> },
    Hf { tok: Box<tokenizers::Tokenizer>, words: OnceLock<Vec<String>>, chat: Option<ChatTemplate>, space_prefix: bool },
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("name", &self.name).finish()
    }
}

/// Identifies a tokenizer file's contents: path, size, modification time.
type FileKey = (PathBuf, u64, Option<std::time::SystemTime>);

/// A bundled encoding: its name, its table loader and its word cache.
type Bundled = (&'static str, fn() -> &'static CoreBPE, &'static OnceLock<Vec<String>>);

static CL100K_WORDS: OnceLock<Vec<String>> = OnceLock::new();
static O200K_WORDS: OnceLock<Vec<String>> = OnceLock::new();
static GPT2_WORDS: OnceLock<Vec<String>> = OnceLock::new();

impl Tokenizer {
    /// Names of the bundled encodings.
    pub const BUNDLED: [&'static str; 3] = ["cl100k_base", "o200k_base", "gpt2"];

    /// Loads a bundled encoding by name (`cl100k_base`, `o200k_base`, `gpt2` / `r50k_base`), or
    /// a Hugging Face tokenizer from a `tokenizer.json` file or a directory containing one.
    pub fn by_name(spec: &str) -> Result<Self, DataError> {
        let bundled: Option<Bundled> = match spec {
            "cl100k_base" | "cl100k" => Some(("cl100k_base", tiktoken_rs::cl100k_base_singleton, &CL100K_WORDS)),
            "o200k_base" | "o200k" => Some(("o200k_base", tiktoken_rs::o200k_base_singleton, &O200K_WORDS)),
            "gpt2" | "r50k_base" => Some(("gpt2", tiktoken_rs::r50k_base_singleton, &GPT2_WORDS)),
            _ => None,
        };
        if let Some((name, bpe, words)) = bundled {
            return Ok(Self { name: name.to_owned(), inner: Arc::new(Inner::Tiktoken { bpe: bpe(), words }) });
        }
        let path = Path::new(spec);
        let is_gguf = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        if !is_gguf && !path.exists() {
            return Err(DataError::UnknownTokenizer(spec.to_owned()));
        }
        // Files are loaded once per process (a sweep loads the same one for every step), keyed
        // by path, size and modification time so an edited file is read again.
        let key = std::fs::metadata(path).ok().map(|m| (path.to_path_buf(), m.len(), m.modified().ok()));
        static CACHE: OnceLock<std::sync::Mutex<Vec<(FileKey, Tokenizer)>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(k) = &key {
            if let Some((_, t)) = cache.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(c, _)| c == k) {
                return Ok(t.clone());
            }
        }
        let tok = if is_gguf { Self::from_gguf(path)? } else { Self::from_hf(path)? };
        if let Some(k) = key {
            cache.lock().unwrap_or_else(|e| e.into_inner()).push((k, tok.clone()));
        }
        Ok(tok)
    }

    fn from_hf(path: &Path) -> Result<Self, DataError> {
        let (file, dir): (PathBuf, Option<&Path>) =
            if path.is_dir() { (path.join("tokenizer.json"), Some(path)) } else { (path.to_owned(), path.parent()) };
        let err = |message: String| DataError::Tokenizer { name: file.display().to_string(), message };
        let tok = tokenizers::Tokenizer::from_file(&file).map_err(|e| err(format!("cannot load: {e}")))?;
        let config = dir.map(|d| d.join("tokenizer_config.json")).filter(|p| p.exists());
        let chat = config.map(|c| ChatTemplate::from_tokenizer_config(&c)).transpose()?.flatten();
        Ok(Self::hf(path, tok, chat))
    }

    fn hf(path: &Path, tok: tokenizers::Tokenizer, chat: Option<ChatTemplate>) -> Self {
        let space_prefix = adds_space_prefix(&tok);
        Self {
            name: path.display().to_string(),
            inner: Arc::new(Inner::Hf { tok: Box::new(tok), words: OnceLock::new(), chat, space_prefix }),
        }
    }

    /// The tokenizer a GGUF model file embeds: byte-level BPE (`tokenizer.ggml.model = gpt2`,
    /// the family of SmolLM2, Qwen, Llama 3) built from its tokens and merges, control tokens
    /// matched before BPE, and the file's chat template.
    fn from_gguf(path: &Path) -> Result<Self, DataError> {
        use tokenizers::AddedToken;
        let md = GgufMetadata::read(path)?;
        let err = |m: String| DataError::Gguf { path: path.display().to_string(), message: m };
        let spm = match md.str("tokenizer.ggml.model") {
            Some("gpt2") => false,
            Some("llama") => true,
            Some(other) => {
                return Err(err(format!(
                    "tokenizer model '{other}' is not supported yet (byte-level BPE 'gpt2' and SentencePiece 'llama' are)"
                )))
            }
            None => return Err(err("it embeds no tokenizer (no tokenizer.ggml.model)".into())),
        };
        let strings = |key: &str| -> Result<Vec<String>, DataError> {
            md.kv
                .get(key)
                .and_then(GgufValue::as_array)
                .ok_or_else(|| err(format!("{key} is missing")))?
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| err(format!("{key} holds a non-string"))))
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let mut tok =
            if spm { sentencepiece(&md, &tokens) } else { byte_level_bpe(&md, &tokens, strings("tokenizer.ggml.merges")?) }.map_err(err)?;
        // Control (3) and user-defined (4) tokens are matched whole, before BPE, as llama.cpp does.
        let types: Vec<i64> = md
            .kv
            .get("tokenizer.ggml.token_type")
            .and_then(GgufValue::as_array)
            .map_or_else(Vec::new, |a| a.iter().filter_map(GgufValue::as_i64).collect());
        let special: Vec<AddedToken> =
            types.iter().enumerate().filter(|(_, &t)| t == 3 || t == 4).map(|(i, _)| AddedToken::from(tokens[i].clone(), true)).collect();
        tok.add_special_tokens(&special);
        let token_at =
            |key: &str| md.kv.get(key).and_then(GgufValue::as_i64).and_then(|i| tokens.get(i as usize)).cloned().unwrap_or_default();
        let chat = md
            .str("tokenizer.chat_template")
            .map(|t| ChatTemplate::new(t, token_at("tokenizer.ggml.bos_token_id"), token_at("tokenizer.ggml.eos_token_id")));
        Ok(Self::hf(path, tok, chat))
    }

    /// The encoding's name (a bundled name, or the path it was loaded from).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The chat template that came with the tokenizer, if any.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        match &*self.inner {
            Inner::Hf { chat, .. } => chat.as_ref(),
            Inner::Tiktoken { .. } => None,
        }
    }

    /// Encodes text as ordinary text (no special tokens added or recognised). A run of more than
    /// [`MAX_WORD_BYTES`] bytes without whitespace is encoded in pieces of that length, so the
    /// cost stays linear in the text's length and a 1 MB "word" cannot overflow the
    /// pre-tokenizer's stack (real words are far shorter, so their tokens are unchanged).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        if text.len() <= MAX_WORD_BYTES {
            return self.encode_piece(text);
        }
        let mut out = Vec::new();
        for piece in split_long_words(text) {
            out.extend(self.encode_piece(piece));
        }
        out
    }

    fn encode_piece(&self, text: &str) -> Vec<u32> {
        match &*self.inner {
            Inner::Tiktoken { bpe, .. } => bpe.encode_ordinary(text),
            Inner::Hf { tok, .. } => tok.encode(text, false).map(|e| e.get_ids().to_vec()).unwrap_or_default(),
        }
    }

    /// Counts the tokens of `text`.
    pub fn count(&self, text: &str) -> usize {
        self.encode(text).len()
    }

    /// Decodes token ids to text.
    pub fn decode(&self, ids: &[u32]) -> Result<String, DataError> {
        let err = |m: String| DataError::Tokenizer { name: self.name.clone(), message: m };
        match &*self.inner {
            Inner::Tiktoken { bpe, .. } => bpe.decode(ids.to_vec()).map_err(|e| err(e.to_string())),
            Inner::Hf { tok, .. } => tok.decode(ids, false).map_err(|e| err(e.to_string())),
        }
    }

    /// Whether the tokenizer puts a space before the text itself, as SentencePiece's dummy prefix
    /// does (Llama 2, Mistral, TinyLlama): " cat" is then two tokens and "cat" one.
    pub fn adds_space_prefix(&self) -> bool {
        matches!(&*self.inner, Inner::Hf { space_prefix: true, .. })
    }

    /// A text of [`single_token_words`](Self::single_token_words) as a prompt: without its first
    /// space where the tokenizer adds one itself, so that its token count is its word count.
    pub fn words_prompt(&self, text: String) -> String {
        words_prompt(self.adds_space_prefix(), text)
    }

    /// Lower-case words, each with a leading space, that are exactly one token each (where the
    /// tokenizer adds the first space itself, the word without it is that token). A text made of
    /// such words, passed through [`words_prompt`](Self::words_prompt), has exactly as many tokens
    /// as words in any tokenizer that splits at spaces (the generators re-encode samples to
    /// check). Used for exact-length prompts and for the simulator's output.
    pub fn single_token_words(&self) -> &[String] {
        let (words, vocab) = match &*self.inner {
            Inner::Tiktoken { words, .. } => (*words, None),
            Inner::Hf { tok, words, .. } => (words, Some(tok.get_vocab_size(true) as u32)),
        };
        let space_prefix = self.adds_space_prefix();
        words.get_or_init(|| {
            let mut found = Vec::new();
            let mut misses = 0;
            // tiktoken ids are dense up to the vocabulary size: stop after a long run of unknown ids.
            for id in 0u32..vocab.unwrap_or(u32::MAX) {
                let Ok(piece) = self.decode(&[id]) else {
                    misses += 1;
                    if misses > 1024 {
                        break;
                    }
                    continue;
                };
                misses = 0;
                // A SentencePiece piece "▁cat" decodes alone as "cat" (the added space is dropped).
                let word = match piece.strip_prefix(' ') {
                    Some(w) => w,
                    None if space_prefix => piece.as_str(),
                    None => continue,
                };
                let whole = if space_prefix { word } else { piece.as_str() };
                if (3..=8).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_lowercase()) && self.encode(whole) == [id] {
                    found.push(format!(" {word}"));
                }
            }
            found
        })
    }
}

/// [`Tokenizer::words_prompt`] for a tokenizer that does (`space_prefix`) or does not add the
/// first space itself.
pub(crate) fn words_prompt(space_prefix: bool, mut text: String) -> String {
    if space_prefix && text.starts_with(' ') {
        text.remove(0);
    }
    text
}

/// Whether a Hugging Face tokenizer puts `▁` before the text itself: a `Prepend` normalizer (as
/// the converter of SentencePiece files writes, and as [`sentencepiece`] builds), or a `Metaspace`
/// pre-tokenizer that prepends (newer `tokenizer.json` files of the same models).
fn adds_space_prefix(tok: &tokenizers::Tokenizer) -> bool {
    use serde_json::Value;
    fn any(v: &Value, hit: &dyn Fn(&serde_json::Map<String, Value>) -> bool) -> bool {
        match v {
            Value::Object(m) => hit(m) || m.values().any(|x| any(x, hit)),
            Value::Array(a) => a.iter().any(|x| any(x, hit)),
            _ => false,
        }
    }
    let kind = |m: &serde_json::Map<String, Value>, t: &str| m.get("type").and_then(Value::as_str) == Some(t);
    let prepend = tok.get_normalizer().and_then(|n| serde_json::to_value(n).ok()).is_some_and(|n| any(&n, &|m| kind(m, "Prepend")));
    let metaspace = tok.get_pre_tokenizer().and_then(|p| serde_json::to_value(p).ok()).is_some_and(|p| {
        any(&p, &|m| {
            kind(m, "Metaspace")
                && (matches!(m.get("prepend_scheme").and_then(Value::as_str), Some("always" | "first"))
                    || m.get("add_prefix_space").and_then(Value::as_bool) == Some(true))
        })
    });
    prepend || metaspace
}

/// Longest run of non-whitespace bytes encoded as one piece (see [`Tokenizer::encode`]).
pub const MAX_WORD_BYTES: usize = 512;

/// `text` cut inside runs of non-whitespace longer than [`MAX_WORD_BYTES`] (at char boundaries),
/// and nowhere else.
pub fn split_long_words(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut run) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            run = 0;
            continue;
        }
        if run >= MAX_WORD_BYTES {
            pieces.push(&text[start..i]);
            start = i;
            run = 0;
        }
        run += c.len_utf8();
    }
    pieces.push(&text[start..]);
    pieces
}

/// llama.cpp's pre-tokenizer expression for Llama 3 (`LLAMA_VOCAB_PRE_TYPE_LLAMA3`).
const LLAMA3_SPLIT: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp's pre-tokenizer expression for Qwen2 (`LLAMA_VOCAB_PRE_TYPE_QWEN2`).
const QWEN2_SPLIT: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A byte-level BPE vocabulary from GGUF (`tokenizer.ggml.model = gpt2`: SmolLM2, Qwen, Llama 3,
/// GPT-2) from its tokens and merges, with the pre-tokenizer its `tokenizer.ggml.pre` names.
fn byte_level_bpe(md: &GgufMetadata, tokens: &[String], merges: Vec<String>) -> Result<tokenizers::Tokenizer, String> {
    use tokenizers::models::bpe::{Vocab, BPE};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::digits::Digits;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior};
    let merges: Vec<(String, String)> = merges
        .into_iter()
        .map(|m| m.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())).ok_or_else(|| format!("bad merge '{m}'")))
        .collect::<Result<_, _>>()?;
    let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let pre = md.str("tokenizer.ggml.pre");
    // Llama 3's family takes a pre-token that is itself in the vocabulary whole, merges or not.
    let llama3 = matches!(pre, Some("llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2"));
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).ignore_merges(llama3).build().map_err(|e| e.to_string())?;
    let mut tok = tokenizers::Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    // The pre-tokenizer expressions llama.cpp uses for each `tokenizer.ggml.pre` (llama-vocab.cpp),
    // checked against llama.cpp's own test vectors on the real vocabularies (tests/llama_vocabs.rs).
    let split = |pattern: &str| -> Result<PreTokenizerWrapper, String> {
        let regex = SplitPattern::Regex(pattern.to_owned());
        Ok(PreTokenizerWrapper::Split(Split::new(regex, SplitDelimiterBehavior::Isolated, false).map_err(|e| e.to_string())?))
    };
    let then_bytes =
        |first: PreTokenizerWrapper| Sequence::new(vec![first, PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false))]);
    match pre {
        // Llama 3 and its kin: contractions in any case, a letter run with one leading
        // non-letter, digits in threes.
        _ if llama3 => tok.with_pre_tokenizer(Some(then_bytes(split(LLAMA3_SPLIT)?))),
        Some("dbrx" | "smaug-bpe") => tok.with_pre_tokenizer(Some(then_bytes(split(LLAMA3_SPLIT)?))),
        // Qwen2 / Qwen2.5 / Qwen3: the same with every digit alone.
        Some("qwen2" | "deepseek-r1-qwen" | "stablelm2") => tok.with_pre_tokenizer(Some(then_bytes(split(QWEN2_SPLIT)?))),
        // SmolLM and others: every digit alone, then GPT-2's expression.
        Some("smollm" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva") => tok.with_pre_tokenizer(Some(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(byte_level),
        ]))),
        // GPT-2's own expression (gpt-2, phi-2, mpt, olmo, and files that name none).
        _ => tok.with_pre_tokenizer(Some(byte_level)),
    };
    tok.with_decoder(Some(ByteLevel::default()));
    Ok(tok)
}

/// A SentencePiece vocabulary from GGUF (`tokenizer.ggml.model = llama`: Llama 2, Mistral,
/// TinyLlama) as llama.cpp's tokenizer runs it: a space before the text, spaces as `▁`, then the
/// adjacent pair whose joined piece has the highest score merged first, and bytes of anything not
/// in the vocabulary as `<0xXX>` tokens. As Hugging Face's converter does, this becomes a BPE whose
/// merges are every split of every piece, ranked by the joined piece's score, with byte fallback.
fn sentencepiece(md: &GgufMetadata, tokens: &[String]) -> Result<tokenizers::Tokenizer, String> {
    use tokenizers::decoders::{byte_fallback::ByteFallback, fuse::Fuse, sequence::Sequence, strip::Strip};
    use tokenizers::models::bpe::{Vocab, BPE};
    use tokenizers::normalizers::{prepend::Prepend, replace::Replace, Sequence as Normalizers};
    use tokenizers::{DecoderWrapper, NormalizerWrapper};
    let scores: Vec<f64> = md
        .kv
        .get("tokenizer.ggml.scores")
        .and_then(GgufValue::as_array)
        .ok_or("tokenizer.ggml.scores is missing")?
        .iter()
        .map(|v| match v {
            GgufValue::Float(f) => Ok(*f),
            _ => Err("tokenizer.ggml.scores holds a non-number".to_owned()),
        })
        .collect::<Result<_, _>>()?;
    if scores.len() != tokens.len() {
        return Err(format!("{} scores for {} tokens", scores.len(), tokens.len()));
    }
    let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    // Every split (left, right) of a piece whose halves are pieces too, the highest-scoring
    // joined piece first.
    let mut ranked: Vec<(f64, u32, u32, String, String)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        for (at, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(at);
            if let (Some(&li), Some(_)) = (vocab.get(l), vocab.get(r)) {
                ranked.push((scores[id], id as u32, li, l.to_owned(), r.to_owned()));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let merges = ranked.into_iter().map(|(_, _, _, l, r)| (l, r)).collect();
    let unk = md.kv.get("tokenizer.ggml.unknown_token_id").and_then(GgufValue::as_i64).and_then(|i| tokens.get(i as usize)).cloned();
    let mut builder = BPE::builder().vocab_and_merges(vocab, merges).byte_fallback(true).fuse_unk(true);
    if let Some(u) = unk {
        builder = builder.unk_token(u);
    }
    let mut tok = tokenizers::Tokenizer::new(builder.build().map_err(|e| e.to_string())?);
    let add_space = !matches!(md.kv.get("tokenizer.ggml.add_space_prefix"), Some(GgufValue::Bool(false)));
    let mut norm = Vec::new();
    if add_space {
        norm.push(NormalizerWrapper::Prepend(Prepend::new("\u{2581}".into())));
    }
    norm.push(NormalizerWrapper::Replace(Replace::new(" ", "\u{2581}").map_err(|e| e.to_string())?));
    tok.with_normalizer(Some(Normalizers::new(norm)));
    let mut dec = vec![
        DecoderWrapper::Replace(Replace::new("\u{2581}", " ").map_err(|e| e.to_string())?),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ];
    if add_space {
        dec.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
    }
    tok.with_decoder(Some(Sequence::new(dec)));
    Ok(tok)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn long_words_are_cut_only_inside_themselves() {
        let text = format!("hello {} world", "a".repeat(1200));
        let pieces = split_long_words(&text);
        assert_eq!(pieces.concat(), text, "nothing is lost");
        assert_eq!(pieces.len(), 3, "1,200 bytes make three runs of at most 512");
        assert!(split_long_words("short words only").len() == 1);
        let wide = "é".repeat(600); // two bytes each: cuts fall on char boundaries
        assert_eq!(split_long_words(&wide).concat(), wide);
    }

    #[test]
    fn a_megabyte_word_encodes_quickly_and_without_overflowing() {
        let tok = Tokenizer::by_name("cl100k_base").unwrap();
        let word = "a".repeat(1 << 20);
        let t = std::time::Instant::now();
        let n = tok.count(&word);
        assert!(n > 1000, "{n} tokens");
        // Quadratic encoding of one piece took about a minute for 200 KB; pieces keep it linear.
        assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
        assert_eq!(tok.count("hello world"), 2, "ordinary text is unchanged");
    }

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

    /// Writes a small byte-level BPE `tokenizer.json` (GPT-2 style) whose vocabulary holds the
    /// 256 byte symbols plus ` cat`, ` dog`, ` bird`, ` fish`, ` mouse` and their prefixes.
    pub(crate) fn write_tiny_hf_tokenizer(dir: &Path) -> PathBuf {
        use std::collections::HashMap;
        use tokenizers::models::bpe::BPE;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
        alphabet.sort_unstable();
        for c in alphabet {
            let n = vocab.len() as u32;
            vocab.insert(c.to_string(), n);
        }
        let mut merges = Vec::new();
        for w in ["cat", "dog", "bird", "fish", "mouse"] {
            let mut cur = "Ġ".to_owned();
            for ch in w.chars() {
                let next = format!("{cur}{ch}");
                if !vocab.contains_key(&next) {
                    merges.push((cur.clone(), ch.to_string()));
                    let n = vocab.len() as u32;
                    vocab.insert(next.clone(), n);
                }
                cur = next;
            }
        }
        let vocab: tokenizers::models::bpe::Vocab = vocab.into_iter().collect();
        let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().unwrap();
        let mut tok = tokenizers::Tokenizer::new(bpe);
        tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        tok.with_decoder(Some(ByteLevel::default()));
        let path = dir.join("tokenizer.json");
        tok.save(&path, false).unwrap();
        path
    }

    #[test]
    fn hugging_face_tokenizer_json_from_file_or_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_tiny_hf_tokenizer(dir.path());
        for spec in [file.to_str().unwrap(), dir.path().to_str().unwrap()] {
            let t = Tokenizer::by_name(spec).unwrap();
            assert_eq!(t.count(" cat dog"), 2);
            assert_eq!(t.decode(&t.encode(" fish mouse!")).unwrap(), " fish mouse!");
            let mut words = t.single_token_words().to_vec();
            words.sort();
            // Every prefix of at least three letters is a token too (the merges build words up).
            assert_eq!(words, [" bir", " bird", " cat", " dog", " fis", " fish", " mou", " mous", " mouse"]);
            assert!(t.chat_template().is_none());
        }
        std::fs::write(dir.path().join("broken.json"), "{not a tokenizer").unwrap();
        let e = Tokenizer::by_name(dir.path().join("broken.json").to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("broken.json") && e.contains("cannot load"), "{e}");
    }

    /// Writes a GGUF (metadata only) with the tiny tokenizer's vocabulary and merges, two
    /// control tokens (ids n and n+1) and a chat template. Returns the path and n.
    pub(crate) fn write_tiny_gguf(dir: &Path) -> (PathBuf, i64) {
        let hf_path = write_tiny_hf_tokenizer(dir);
        // Rebuild the same vocabulary and merges as GGUF metadata, plus two control tokens.
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&hf_path).unwrap()).unwrap();
        let mut vocab: Vec<(String, u32)> =
            json["model"]["vocab"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap() as u32)).collect();
        vocab.sort_by_key(|(_, id)| *id);
        let mut tokens: Vec<String> = vocab.into_iter().map(|(t, _)| t).collect();
        let n = tokens.len() as i64;
        tokens.extend(["<|im_start|>".to_owned(), "<|im_end|>".to_owned()]);
        let merges: Vec<GgufValue> = json["model"]["merges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| match m {
                serde_json::Value::String(s) => GgufValue::Str(s.clone()),
                pair => GgufValue::Str(format!("{} {}", pair[0].as_str().unwrap(), pair[1].as_str().unwrap())),
            })
            .collect();
        let mut types = vec![GgufValue::Int(1); n as usize];
        types.extend([GgufValue::Int(3), GgufValue::Int(3)]);
        let gguf = dir.join("tiny.gguf");
        crate::gguf::write_metadata(
            &gguf,
            &[
                ("general.architecture", GgufValue::Str("llama".into())),
                ("tokenizer.ggml.model", GgufValue::Str("gpt2".into())),
                ("tokenizer.ggml.tokens", GgufValue::Array(tokens.iter().cloned().map(GgufValue::Str).collect())),
                ("tokenizer.ggml.merges", GgufValue::Array(merges)),
                ("tokenizer.ggml.token_type", GgufValue::Array(types)),
                ("tokenizer.ggml.bos_token_id", GgufValue::Int(n)),
                ("tokenizer.ggml.eos_token_id", GgufValue::Int(n + 1)),
                (
                    "tokenizer.chat_template",
                    GgufValue::Str("{% for m in messages %}{{ bos_token }}{{ m.role }}\n{{ m.content }}{{ eos_token }}{% endfor %}".into()),
                ),
            ],
        )
        .unwrap();
        (gguf, n)
    }

    #[test]
    fn gguf_tokenizer_matches_the_tokenizer_json_it_was_made_from() {
        let dir = tempfile::tempdir().unwrap();
        let (gguf, n) = write_tiny_gguf(dir.path());
        let hf = Tokenizer::by_name(dir.path().join("tokenizer.json").to_str().unwrap()).unwrap();
        let g = Tokenizer::by_name(gguf.to_str().unwrap()).unwrap();
        for text in [" cat dog bird", "mouse, fish! 42 cats", " fi sh\n\tdog"] {
            assert_eq!(g.encode(text), hf.encode(text), "{text:?}");
            assert_eq!(g.decode(&g.encode(text)).unwrap(), text);
        }
        // Control tokens are matched whole, before BPE.
        assert_eq!(g.encode("<|im_start|>user cat"), [[n as u32].as_slice(), &hf.encode("user cat")].concat());
        let chat = g.chat_template().unwrap();
        let rendered = chat.render(&[crate::ChatMessage { role: "user".into(), content: " cat".into() }], false).unwrap();
        assert_eq!(rendered, "<|im_start|>user\n cat<|im_end|>");
        assert_eq!(g.count(&rendered), 2 + hf.count("user\n cat"));
    }

    /// `tokenizer.ggml.pre` picks llama.cpp's expression: on a vocabulary of "3", "33", "333",
    /// "a", "b" and "ab" (merges "3 3", "33 3", and none for "ab"), "3333" is one pre-token for
    /// GPT-2 (33 + 33), "333" + "3" for Llama 3, single digits for Qwen2; and Llama 3 alone takes
    /// the vocabulary's "ab" whole although no merge makes it.
    #[test]
    fn pre_tokenizer_follows_tokenizer_ggml_pre() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = ["3", "33", "333", "a", "b", "ab", "Ġ"];
        let merges = ["3 3", "33 3"];
        let id = |t: &str| tokens.iter().position(|x| *x == t).unwrap() as u32;
        let load = |pre: Option<&str>| {
            let p = dir.path().join(format!("{}.gguf", pre.unwrap_or("none")));
            let mut kv = vec![
                ("tokenizer.ggml.model", GgufValue::Str("gpt2".into())),
                ("tokenizer.ggml.tokens", GgufValue::Array(tokens.iter().map(|t| GgufValue::Str((*t).into())).collect())),
                ("tokenizer.ggml.merges", GgufValue::Array(merges.iter().map(|m| GgufValue::Str((*m).into())).collect())),
            ];
            if let Some(pre) = pre {
                kv.push(("tokenizer.ggml.pre", GgufValue::Str(pre.into())));
            }
            crate::gguf::write_metadata(&p, &kv).unwrap();
            Tokenizer::by_name(p.to_str().unwrap()).unwrap()
        };
        let (gpt2, llama3, qwen2, none) = (load(Some("gpt-2")), load(Some("llama-bpe")), load(Some("qwen2")), load(None));
        assert_eq!(gpt2.encode("3333"), [id("33"), id("33")]);
        assert_eq!(none.encode("3333"), gpt2.encode("3333"));
        assert_eq!(llama3.encode("3333"), [id("333"), id("3")]);
        assert_eq!(qwen2.encode("3333"), [id("3"); 4]);
        assert_eq!(llama3.encode("ab"), [id("ab")]);
        assert_eq!(qwen2.encode("ab"), [id("a"), id("b")]);
    }

    #[test]
    fn bad_gguf_files_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gguf");
        std::fs::write(&p, b"NOPE").unwrap();
        assert!(Tokenizer::by_name(p.to_str().unwrap()).unwrap_err().to_string().contains("bad magic"));
        std::fs::write(&p, b"GGUF\x03\x00\x00\x00\x00").unwrap();
        assert!(Tokenizer::by_name(p.to_str().unwrap()).unwrap_err().to_string().contains("truncated"));
        crate::gguf::write_metadata(&p, &[("tokenizer.ggml.model", GgufValue::Str("bert".into()))]).unwrap();
        let e = Tokenizer::by_name(p.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("'bert' is not supported") && e.contains("SentencePiece 'llama'"), "{e}");
        // A SentencePiece vocabulary without its scores.
        let tokens = GgufValue::Array(vec![GgufValue::Str("<unk>".into()), GgufValue::Str("\u{2581}a".into())]);
        crate::gguf::write_metadata(&p, &[("tokenizer.ggml.model", GgufValue::Str("llama".into())), ("tokenizer.ggml.tokens", tokens)])
            .unwrap();
        let e = Tokenizer::by_name(p.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("tokenizer.ggml.scores is missing"), "{e}");
        crate::gguf::write_metadata(&p, &[("general.name", GgufValue::Str("x".into()))]).unwrap();
        assert!(Tokenizer::by_name(p.to_str().unwrap()).unwrap_err().to_string().contains("no tokenizer"));
        assert!(Tokenizer::by_name("/missing/model.gguf").unwrap_err().to_string().contains("/missing/model.gguf"));
    }

    #[test]
    fn unknown_tokenizer_is_named() {
        let e = Tokenizer::by_name("llama9").unwrap_err();
        assert!(e.to_string().contains("unknown tokenizer 'llama9'"));
    }

    /// The pieces of a tiny SentencePiece vocabulary, best score first: four three-letter words
    /// that start with `▁`, their prefixes, the letters, and "cat" as a word-inner piece.
    const SPM_PIECES: [&str; 22] = [
        "▁", "c", "a", "t", "d", "o", "g", "s", "h", "e", "▁c", "▁ca", "▁cat", "▁d", "▁do", "▁dog", "▁s", "▁sa", "▁sat", "▁t", "▁th",
        "▁the",
    ];

    /// Writes a GGUF (metadata only) with a SentencePiece vocabulary (`<unk>`, `<s>`, `</s>`, the
    /// 256 byte tokens, [`SPM_PIECES`] and "ca", "cat"), adding the space prefix or not.
    pub(crate) fn write_spm_gguf(dir: &Path, add_space: bool) -> PathBuf {
        let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        let mut types = vec![GgufValue::Int(2), GgufValue::Int(3), GgufValue::Int(3)];
        types.extend((0..256).map(|_| GgufValue::Int(6)));
        let first = tokens.len();
        tokens.extend(SPM_PIECES.iter().chain(&["ca", "cat"]).map(|p| p.to_string()));
        types.extend((first..tokens.len()).map(|_| GgufValue::Int(1)));
        let scores = (0..tokens.len()).map(|i| GgufValue::Float(if i < first { 0.0 } else { -(i as f64) })).collect();
        let path = dir.join(format!("spm-{add_space}.gguf"));
        crate::gguf::write_metadata(
            &path,
            &[
                ("tokenizer.ggml.model", GgufValue::Str("llama".into())),
                ("tokenizer.ggml.tokens", GgufValue::Array(tokens.into_iter().map(GgufValue::Str).collect())),
                ("tokenizer.ggml.scores", GgufValue::Array(scores)),
                ("tokenizer.ggml.token_type", GgufValue::Array(types)),
                ("tokenizer.ggml.unknown_token_id", GgufValue::Int(0)),
                ("tokenizer.ggml.add_space_prefix", GgufValue::Bool(add_space)),
            ],
        )
        .unwrap();
        path
    }

    /// Single-token words and word texts where the tokenizer adds the first space itself: a
    /// SentencePiece GGUF, and a `tokenizer.json` with a prepending `Metaspace` pre-tokenizer.
    #[test]
    fn word_texts_count_exactly_where_the_tokenizer_adds_the_first_space() {
        use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
        use tokenizers::models::bpe::BPE;
        use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
        let dir = tempfile::tempdir().unwrap();
        let want = [" cat", " dog", " sat", " the"];
        let sorted = |t: &Tokenizer| {
            let mut w = t.single_token_words().to_vec();
            w.sort();
            w
        };
        let spm = Tokenizer::by_name(write_spm_gguf(dir.path(), true).to_str().unwrap()).unwrap();
        assert!(spm.adds_space_prefix());
        assert_eq!(sorted(&spm), want, "each word is its ▁ piece, not the word-inner \"cat\"");
        assert_eq!(spm.count(" cat dog sat"), 4, "the text's own first space is a token of its own");
        assert_eq!(spm.words_prompt(" cat dog sat".into()), "cat dog sat");
        assert_eq!(spm.count("cat dog sat"), 3);
        // Without the prefix the words keep their spaces, as byte-level BPE's do.
        let plain = Tokenizer::by_name(write_spm_gguf(dir.path(), false).to_str().unwrap()).unwrap();
        assert!(!plain.adds_space_prefix());
        assert_eq!(sorted(&plain), want);
        assert_eq!(plain.words_prompt(" cat dog".into()), " cat dog");
        assert_eq!(plain.count(" cat dog"), 2);
        // The same vocabulary as a tokenizer.json whose Metaspace pre-tokenizer prepends.
        let vocab: tokenizers::models::bpe::Vocab = SPM_PIECES.iter().enumerate().map(|(i, p)| (p.to_string(), i as u32)).collect();
        let merges = SPM_PIECES
            .iter()
            .filter(|p| p.chars().count() > 1)
            .map(|p| {
                let at = p.char_indices().last().unwrap().0;
                (p[..at].to_owned(), p[at..].to_owned())
            })
            .collect();
        let mut hf = tokenizers::Tokenizer::new(BPE::builder().vocab_and_merges(vocab, merges).build().unwrap());
        hf.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
        hf.with_decoder(Some(MetaspaceDecoder::new('▁', PrependScheme::Always, true)));
        let path = dir.path().join("metaspace.json");
        hf.save(&path, false).unwrap();
        let meta = Tokenizer::by_name(path.to_str().unwrap()).unwrap();
        assert!(meta.adds_space_prefix());
        assert_eq!(sorted(&meta), want);
        assert_eq!(meta.count(&meta.words_prompt(" the cat sat".into())), 3);
        // Byte-level tokenizers are unchanged.
        let gpt2 = Tokenizer::by_name("gpt2").unwrap();
        assert!(!gpt2.adds_space_prefix());
        assert_eq!(gpt2.words_prompt(" the cat".into()), " the cat");
        let hf_bpe = Tokenizer::by_name(write_tiny_hf_tokenizer(dir.path()).to_str().unwrap()).unwrap();
        assert!(!hf_bpe.adds_space_prefix());
    }
}
