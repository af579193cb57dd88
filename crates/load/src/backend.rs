//! The wire protocols a benchmark can speak: request bodies out, stream chunks in.

use inferbench_data::ChatMessage;
use memchr::memmem;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// A server protocol (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// OpenAI `/v1/completions`.
    OpenAi,
    /// OpenAI `/v1/chat/completions`.
    OpenAiChat,
    /// vLLM's completions: OpenAI plus `ignore_eos` and `min_tokens` for exact output lengths.
    Vllm,
    /// Hugging Face TGI's native `/generate_stream`.
    Tgi,
}

impl Backend {
    /// Every backend name, for help and error messages.
    pub const NAMES: [&'static str; 4] = ["openai", "openai-chat", "vllm", "tgi"];

    /// The flag value naming this backend.
    pub fn name(self) -> &'static str {
        match self {
            Backend::OpenAi => "openai",
            Backend::OpenAiChat => "openai-chat",
            Backend::Vllm => "vllm",
            Backend::Tgi => "tgi",
        }
    }

    /// The endpoint used when `--endpoint` is not given.
    pub fn default_endpoint(self, stream: bool) -> &'static str {
        match self {
            Backend::OpenAi | Backend::Vllm => "/v1/completions",
            Backend::OpenAiChat => "/v1/chat/completions",
            Backend::Tgi if stream => "/generate_stream",
            Backend::Tgi => "/generate",
        }
    }

    /// Whether the protocol can report token usage in-band.
    pub fn reports_prompt_tokens(self) -> bool {
        !matches!(self, Backend::Tgi)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "openai" | "openai-completions" => Backend::OpenAi,
            "openai-chat" | "chat" => Backend::OpenAiChat,
            "vllm" => Backend::Vllm,
            "tgi" => Backend::Tgi,
            _ => return Err(format!("unknown backend '{s}' (expected one of: {})", Backend::NAMES.join(", "))),
        })
    }
}

/// Request settings shared by every request of a run.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    backend: Backend,
    stream: bool,
    fixed: Map<String, Value>,
    ignore_eos: bool,
    /// The fixed fields serialised once, without the closing brace, when per-request fields can
    /// simply be appended (OpenAI bodies whose `--extra-body` does not override them).
    prefix: Option<Vec<u8>>,
}

/// Body fields set per request; an `--extra-body` naming one of them takes the slow path.
const PER_REQUEST_KEYS: [&str; 5] = ["prompt", "messages", "max_tokens", "min_tokens", "inputs"];

/// What goes into every request body besides the prompt.
#[derive(Debug, Clone, Default)]
pub struct TemplateOptions {
    /// Model name.
    pub model: String,
    /// Stream the response.
    pub stream: bool,
    /// Ask for exact output lengths (`ignore_eos`, `min_tokens`).
    pub ignore_eos: bool,
    /// Sampling parameters.
    pub sampling: inferbench_core::spec::Sampling,
    /// Extra fields merged into each body last (they win).
    pub extra_body: Option<Map<String, Value>>,
}

impl RequestTemplate {
    /// Prepares the fixed part of every body.
    pub fn new(backend: Backend, opts: &TemplateOptions) -> Self {
        let mut fixed = Map::new();
        let s = &opts.sampling;
        let ignore_eos = opts.ignore_eos || backend == Backend::Vllm;
        if backend == Backend::Tgi {
            let mut params = Map::new();
            params.insert("details".into(), json!(true));
            if let Some(t) = s.temperature {
                params.insert("temperature".into(), json!(t));
                params.insert("do_sample".into(), json!(t > 0.0));
            }
            for (k, v) in [("top_p", s.top_p.map(|x| json!(x))), ("top_k", s.top_k.map(|x| json!(x))), ("seed", s.seed.map(|x| json!(x)))] {
                if let Some(v) = v {
                    params.insert(k.into(), v);
                }
            }
            fixed.insert("parameters".into(), Value::Object(params));
        } else {
            fixed.insert("model".into(), json!(opts.model));
            fixed.insert("stream".into(), json!(opts.stream));
            if opts.stream {
                fixed.insert("stream_options".into(), json!({"include_usage": true}));
            }
            for (k, v) in [
                ("temperature", s.temperature.map(|x| json!(x))),
                ("top_p", s.top_p.map(|x| json!(x))),
                ("top_k", s.top_k.map(|x| json!(x))),
                ("seed", s.seed.map(|x| json!(x))),
            ] {
                if let Some(v) = v {
                    fixed.insert(k.into(), v);
                }
            }
            if ignore_eos {
                fixed.insert("ignore_eos".into(), json!(true));
            }
        }
        if let Some(extra) = &opts.extra_body {
            for (k, v) in extra {
                fixed.insert(k.clone(), v.clone());
            }
        }
        let overridden = opts.extra_body.as_ref().is_some_and(|e| PER_REQUEST_KEYS.iter().any(|k| e.contains_key(*k)));
        let prefix = (backend != Backend::Tgi && !overridden).then(|| {
            let mut p = Value::Object(fixed.clone()).to_string().into_bytes();
            p.pop(); // the closing brace
            p
        });
        Self { backend, stream: opts.stream, fixed, ignore_eos, prefix }
    }

    /// The backend this template speaks.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether requests ask for exact output lengths (`ignore_eos`).
    pub fn exact_lengths(&self) -> bool {
        self.ignore_eos
    }

    /// Whether responses are streamed.
    pub fn stream(&self) -> bool {
        self.stream
    }

    /// The JSON body for one prompt; chat backends send `messages` when the dataset has them.
    pub fn body(&self, prompt: &str, messages: Option<&[ChatMessage]>, max_tokens: u32) -> Vec<u8> {
        let messages = messages.filter(|_| self.backend == Backend::OpenAiChat);
        if let (Some(prefix), None) = (&self.prefix, messages) {
            // Hot path: append the per-request fields to the pre-serialised fixed ones.
            let mut b = Vec::with_capacity(prefix.len() + prompt.len() + 96);
            b.extend_from_slice(prefix);
            if b.len() > 1 {
                b.push(b',');
            }
            match self.backend {
                Backend::OpenAiChat => b.extend_from_slice(br#""messages":[{"role":"user","content":"#),
                _ => b.extend_from_slice(br#""prompt":"#),
            }
            // Justified: serialising a `&str` into a `Vec` has no error path (no I/O, no map keys).
            #[allow(clippy::expect_used)]
            serde_json::to_writer(&mut b, prompt).expect("strings serialise");
            if self.backend == Backend::OpenAiChat {
                b.extend_from_slice(b"}]");
            }
            b.extend_from_slice(format!(r#","max_tokens":{max_tokens}"#).as_bytes());
            if self.ignore_eos {
                b.extend_from_slice(format!(r#","min_tokens":{max_tokens}"#).as_bytes());
            }
            b.push(b'}');
            return b;
        }
        let mut m = self.fixed.clone();
        match self.backend {
            Backend::Tgi => {
                m.insert("inputs".into(), json!(prompt));
                if let Some(Value::Object(p)) = m.get_mut("parameters") {
                    p.entry("max_new_tokens").or_insert(json!(max_tokens));
                }
            }
            Backend::OpenAiChat => {
                let ms = messages.map_or_else(|| json!([{"role": "user", "content": prompt}]), |ms| json!(ms));
                m.entry("messages").or_insert(ms);
                m.entry("max_tokens").or_insert(json!(max_tokens));
            }
            Backend::OpenAi | Backend::Vllm => {
                m.entry("prompt").or_insert_with(|| json!(prompt));
                m.entry("max_tokens").or_insert(json!(max_tokens));
            }
        }
        if self.ignore_eos && self.backend != Backend::Tgi {
            m.entry("min_tokens").or_insert(json!(max_tokens));
        }
        Value::Object(m).to_string().into_bytes()
    }
}

/// What one streamed chunk (or a whole non-streamed body) said.
#[derive(Debug, Default, PartialEq)]
pub struct Chunk<'a> {
    /// Generated text in this chunk (may be empty: role-only deltas, usage-only chunks).
    pub text: Cow<'a, str>,
    /// Prompt tokens, when the server reported usage.
    pub prompt_tokens: Option<u64>,
    /// Completion tokens, when the server reported them.
    pub completion_tokens: Option<u64>,
    /// Prompt tokens the server's prefix cache served, when it said.
    pub cached_tokens: Option<u64>,
    /// True when this chunk ends the response (TGI's final event).
    pub done: bool,
    /// An error the server reported in-band.
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct OaiChunk<'a> {
    #[serde(borrow, default, deserialize_with = "first_choice")]
    choices: Option<OaiChoice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    object: Option<Cow<'a, str>>,
    #[serde(default)]
    message: Option<Cow<'a, str>>,
}

/// Keeps only the first element of `choices` (we send one prompt), without allocating a Vec.
fn first_choice<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<OaiChoice<'de>>, D::Error> {
    struct First;
    impl<'de> serde::de::Visitor<'de> for First {
        type Value = Option<OaiChoice<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of choices")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element()?;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(first)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(First)
}

#[derive(Deserialize)]
struct OaiChoice<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    delta: Option<OaiMessage<'a>>,
    #[serde(borrow, default)]
    message: Option<OaiMessage<'a>>,
}

#[derive(Deserialize)]
struct OaiMessage<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

/// OpenAI's `usage.prompt_tokens_details` (vLLM and llama.cpp fill `cached_tokens` when their
/// prefix cache served part of the prompt).
#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct TgiChunk<'a> {
    #[serde(borrow, default)]
    token: Option<TgiToken<'a>>,
    #[serde(default)]
    generated_text: Option<Value>,
    #[serde(default)]
    details: Option<TgiDetails>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct TgiToken<'a> {
    #[serde(borrow, default)]
    text: Cow<'a, str>,
    #[serde(default)]
    special: bool,
}

#[derive(Deserialize)]
struct TgiDetails {
    #[serde(default)]
    generated_tokens: Option<u64>,
}

/// Why a chunk could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("malformed chunk: {0}")]
pub struct ChunkError(String);

static USAGE: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(br#""usage""#));
static ERROR: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(br#""error""#));
static TEXT: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(br#""text":""#));
static CONTENT: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(br#""content":""#));

/// The per-token fast path: the text of an ordinary OpenAI chunk (one choice, no usage, no
/// error), found by its key instead of a full parse. Sound because the byte sequence `"text":"`
/// cannot occur inside a JSON string (a quote there is always escaped). Anything unusual returns
/// `None` and gets the full parse.
fn fast_text<'a>(data: &'a [u8], key: &memmem::Finder<'_>) -> Option<Cow<'a, str>> {
    if data.first() != Some(&b'{') || !absent_or_null(data, &USAGE) || !absent_or_null(data, &ERROR) {
        return None;
    }
    let open = key.find(data)? + key.needle().len() - 1;
    let mut i = open + 1;
    let mut escaped = false;
    loop {
        // `get`: a backslash at the very end must not slice past it (found by the fuzz target).
        i += memchr::memchr2(b'"', b'\\', data.get(i..)?)?;
        if data[i] == b'"' {
            break;
        }
        escaped = true;
        i += 2;
    }
    if !closed(data, open, i) {
        return None;
    }
    let raw = &data[open..=i];
    if escaped {
        serde_json::from_slice::<String>(raw).ok().map(Cow::Owned)
    } else {
        std::str::from_utf8(&raw[1..raw.len() - 1]).ok().map(Cow::Borrowed)
    }
}

/// A cheap check that the text found at `data[start..=end]` sits in one whole JSON object: what
/// comes before it only opens (`{`, `[`), what comes after only closes, the closers match the
/// openers kind for kind, and the object ends at the last byte (JSON whitespace aside). Anything
/// else (a truncated chunk, trailing bytes, an object value after the text) takes the full
/// parse, which then decides. Without it the fast path read the text of truncated chunks and of
/// chunks with trailing bytes, which the full parse rejects (found by the fuzz target).
fn closed(data: &[u8], start: usize, end: usize) -> bool {
    let last = data.iter().rposition(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if last.map(|e| data[e]) != Some(b'}') {
        return false;
    }
    let (head, tail) = (&data[..start], &data[end + 1..]);
    if memchr::memchr2(b'}', b']', head).is_some() || memchr::memchr2(b'{', b'[', tail).is_some() {
        return false;
    }
    // The closers, read backwards, must answer the openers one for one.
    let mut opens = memchr::memchr2_iter(b'{', b'[', head).rev();
    let mut closes = memchr::memchr2_iter(b'}', b']', tail);
    loop {
        match (opens.next(), closes.next()) {
            (None, None) => return true,
            (Some(o), Some(c)) if (head[o] == b'{') == (tail[c] == b'}') => {}
            _ => return false,
        }
    }
}

/// True when `"key"` does not occur, or only as `"key": null` (OpenAI streams send
/// `"usage":null` on every chunk when usage is requested).
fn absent_or_null(data: &[u8], key: &memmem::Finder<'_>) -> bool {
    key.find_iter(data).all(|at| {
        let rest = &data[at + key.needle().len()..];
        let rest = rest.trim_ascii_start();
        rest.strip_prefix(b":").is_some_and(|r| r.trim_ascii_start().starts_with(b"null"))
    })
}

impl Backend {
    /// Parses one SSE `data` payload or one whole non-streamed body.
    pub fn parse_chunk<'a>(self, data: &'a [u8]) -> Result<Chunk<'a>, ChunkError> {
        let fast = match self {
            Backend::OpenAi | Backend::Vllm => fast_text(data, &TEXT),
            Backend::OpenAiChat => fast_text(data, &CONTENT),
            Backend::Tgi => None,
        };
        if let Some(text) = fast {
            return Ok(Chunk { text, ..Chunk::default() });
        }
        self.parse_chunk_fully(data)
    }

    /// Parses a chunk with the full JSON parser (public for the fuzz tests, which check that
    /// [`Backend::parse_chunk`]'s fast path never disagrees with it).
    #[doc(hidden)]
    pub fn parse_chunk_fully<'a>(self, data: &'a [u8]) -> Result<Chunk<'a>, ChunkError> {
        let err = |e: serde_json::Error| ChunkError(format!("{e} in {}", String::from_utf8_lossy(&data[..data.len().min(120)])));
        match self {
            Backend::Tgi => {
                // TGI's /generate returns a list with one object when not streaming.
                let c: TgiChunk<'a> = match data.first() {
                    Some(b'[') => {
                        let mut v: Vec<TgiChunk<'a>> = serde_json::from_slice(data).map_err(err)?;
                        v.pop().ok_or_else(|| ChunkError("empty list".into()))?
                    }
                    _ => serde_json::from_slice(data).map_err(err)?,
                };
                let done = c.generated_text.as_ref().is_some_and(|v| !v.is_null());
                let text = match (c.token, &c.generated_text) {
                    (Some(t), _) if !t.special => t.text,
                    (None, Some(Value::String(s))) => Cow::Owned(s.clone()),
                    _ => Cow::Borrowed(""),
                };
                let completion_tokens = c.details.and_then(|d| d.generated_tokens);
                Ok(Chunk { text, prompt_tokens: None, completion_tokens, cached_tokens: None, done, error: c.error })
            }
            _ => {
                let c: OaiChunk<'a> = serde_json::from_slice(data).map_err(err)?;
                let error = match (c.error, c.object.as_deref()) {
                    (Some(e), _) => Some(e.get("message").and_then(Value::as_str).map_or_else(|| e.to_string(), str::to_owned)),
                    (None, Some("error")) => Some(c.message.map_or_else(|| "error".to_owned(), Cow::into_owned)),
                    _ => None,
                };
                let text = c
                    .choices
                    .and_then(|ch| {
                        ch.text.or_else(|| {
                            let m = ch.delta.or(ch.message)?;
                            match (m.content, m.reasoning_content) {
                                (Some(c), _) if !c.is_empty() => Some(c),
                                (_, r) => r,
                            }
                        })
                    })
                    .unwrap_or(Cow::Borrowed(""));
                let (prompt_tokens, completion_tokens, cached_tokens) = c.usage.map_or((None, None, None), |u| {
                    (u.prompt_tokens, u.completion_tokens, u.prompt_tokens_details.and_then(|d| d.cached_tokens))
                });
                Ok(Chunk { text, prompt_tokens, completion_tokens, cached_tokens, done: false, error })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> TemplateOptions {
        TemplateOptions { model: "m".into(), stream: true, ..Default::default() }
    }

    #[test]
    fn vllm_body_forces_exact_lengths() {
        let t = RequestTemplate::new(Backend::Vllm, &opts());
        let v: Value = serde_json::from_slice(&t.body("hi", None, 7)).unwrap();
        assert_eq!(v["prompt"], "hi");
        assert_eq!(v["max_tokens"], 7);
        assert_eq!(v["min_tokens"], 7);
        assert_eq!(v["ignore_eos"], true);
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn fast_path_equals_the_general_one() {
        for backend in [Backend::OpenAi, Backend::OpenAiChat, Backend::Vllm] {
            let mut o = opts();
            o.sampling.temperature = Some(0.5);
            o.extra_body = Some(json!({"top_k": 5}).as_object().unwrap().clone());
            let fast = RequestTemplate::new(backend, &o);
            assert!(fast.prefix.is_some());
            let slow = RequestTemplate { prefix: None, ..fast.clone() };
            let prompt = "say \"hi\"\n\u{1F600}";
            let a: Value = serde_json::from_slice(&fast.body(prompt, None, 9)).unwrap();
            let b: Value = serde_json::from_slice(&slow.body(prompt, None, 9)).unwrap();
            assert_eq!(a, b, "{backend}");
        }
        let mut o = opts();
        o.extra_body = Some(json!({"max_tokens": 3}).as_object().unwrap().clone());
        let t = RequestTemplate::new(Backend::OpenAi, &o);
        assert!(t.prefix.is_none(), "overriding a per-request field takes the general path");
        let v: Value = serde_json::from_slice(&t.body("x", None, 9)).unwrap();
        assert_eq!(v["max_tokens"], 3);
    }

    #[test]
    fn chat_and_tgi_bodies() {
        let mut o = opts();
        o.extra_body = Some(json!({"top_k": 5}).as_object().unwrap().clone());
        let v: Value = serde_json::from_slice(&RequestTemplate::new(Backend::OpenAiChat, &o).body("hi", None, 3)).unwrap();
        assert_eq!(v["messages"][0]["content"], "hi");
        assert_eq!(v["top_k"], 5);
        assert!(v.get("ignore_eos").is_none());
        let v: Value = serde_json::from_slice(&RequestTemplate::new(Backend::Tgi, &opts()).body("hi", None, 3)).unwrap();
        assert_eq!(v["inputs"], "hi");
        assert_eq!(v["parameters"]["max_new_tokens"], 3);
        let ms =
            [ChatMessage { role: "system".into(), content: "be brief".into() }, ChatMessage { role: "user".into(), content: "hi".into() }];
        let v: Value =
            serde_json::from_slice(&RequestTemplate::new(Backend::OpenAiChat, &opts()).body("be brief\nhi", Some(&ms), 3)).unwrap();
        assert_eq!(v["messages"][0]["role"], "system");
        assert_eq!(v["messages"][1]["content"], "hi");
        let v: Value = serde_json::from_slice(&RequestTemplate::new(Backend::OpenAi, &opts()).body("be brief\nhi", Some(&ms), 3)).unwrap();
        assert_eq!(v["prompt"], "be brief\nhi", "completion backends send the joined text");
    }

    #[test]
    fn parses_openai_chunks() {
        let c = Backend::OpenAi.parse_chunk(br#"{"id":"x","choices":[{"index":0,"text":" the","finish_reason":null}]}"#).unwrap();
        assert_eq!(c.text, " the");
        let c = Backend::OpenAiChat.parse_chunk(br#"{"choices":[{"delta":{"role":"assistant","content":"a\nb"}}]}"#).unwrap();
        assert_eq!(c.text, "a\nb");
        let c =
            Backend::OpenAi.parse_chunk(br#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}"#).unwrap();
        assert_eq!((c.text.as_ref(), c.prompt_tokens, c.completion_tokens, c.cached_tokens), ("", Some(5), Some(9), None));
        let c = Backend::OpenAi
            .parse_chunk(
                br#"{"choices":[],"usage":{"prompt_tokens":50,"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":32}}}"#,
            )
            .unwrap();
        assert_eq!((c.prompt_tokens, c.cached_tokens), (Some(50), Some(32)));
        let c = Backend::OpenAi.parse_chunk(br#"{"object":"error","message":"too long"}"#).unwrap();
        assert_eq!(c.error.as_deref(), Some("too long"));
        let c = Backend::OpenAi.parse_chunk(br#"{"error":{"message":"bad"}}"#).unwrap();
        assert_eq!(c.error.as_deref(), Some("bad"));
        assert!(Backend::OpenAi.parse_chunk(b"{\"choices\":[").is_err());
    }

    #[test]
    fn the_structure_check_takes_whole_objects_only() {
        let ok = br#"{"a":[{"t":"x"}],"b":null} "#;
        assert!(closed(ok, 11, 13));
        let p = |c: &[u8]| Backend::OpenAi.parse_chunk(c).is_ok();
        assert!(p(br#"{"choices":[{"text":"x"}]}"#));
        assert!(!p(br#"{"choices":[{"text":"x"}]"#), "truncated");
        assert!(!p(br#"{"choices":[{"text":"x"}]}}"#), "trailing bytes");
        assert!(!p(br#"{"choices":[{"text":"x"}]}{}"#), "a second object");
        assert!(!p(b"{\"choices\":[{\"text\":\"x\"}]}\x0c"), "a form feed is not JSON whitespace");
        assert!(!p(br#"{"choices":[{"text":"x"]}}"#), "mismatched");
        assert!(p(br#"{"choices":[{"text":"{x]"}]}"#), "braces inside the text are text");
        assert!(!p(b"{\"choices\":[{\"text\":\"ab\\"), "a backslash at the very end is an error, not a panic");
    }

    #[test]
    #[ignore = "timing: cargo test --release -p inferbench-load -- --ignored --nocapture"]
    fn fast_path_cost_per_chunk() {
        let c = br#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" the","logprobs":null,"finish_reason":null}]}"#;
        let t = std::time::Instant::now();
        let n = 2_000_000;
        let mut total = 0;
        for _ in 0..n {
            total += Backend::OpenAi.parse_chunk(std::hint::black_box(c)).unwrap().text.len();
        }
        let per = t.elapsed().as_nanos() as f64 / f64::from(n);
        let t = std::time::Instant::now();
        for _ in 0..n {
            total += usize::from(closed(std::hint::black_box(c), 100, 105));
        }
        let check = t.elapsed().as_nanos() as f64 / f64::from(n);
        println!("parse_chunk {per:.1} ns per chunk, of which the structure check {check:.1} ns ({total})");
    }

    #[test]
    fn fast_path_agrees_with_the_full_parse() {
        let chunks: [&[u8]; 10] = [
            br#"{"id":"c","choices":[{"index":0,"text":"x","finish_reason":null}],"usage":null}"#,
            br#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" the","logprobs":null,"finish_reason":null}]}"#,
            br#"{"id":"c","choices":[{"index":0,"text":"say \"hi\"\n\u00e9 \\","finish_reason":null}]}"#,
            br#"{"id":"c","choices":[{"index":0,"text":"","finish_reason":"length"}]}"#,
            br#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
            br#"{"object":"error","message":"boom"}"#,
            br#"{"choices":[{"index":0,"text":null}]}"#,
            br#"{"choices":[{"index":0,"text": " spaced"}]}"#,
            br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"a\tb"}}]}"#,
            br#"{"choices":[{"index":0,"delta":{"reasoning_content":"think","content":null}}]}"#,
        ];
        for backend in [Backend::OpenAi, Backend::OpenAiChat] {
            for c in chunks {
                assert!(backend != Backend::OpenAi || c != chunks[0] || fast_text(c, &TEXT).is_some(), "usage:null keeps the fast path");
                let fast = backend.parse_chunk(c).unwrap();
                let full = backend.parse_chunk_fully(c).unwrap();
                assert_eq!(fast, full, "{backend} {}", String::from_utf8_lossy(c));
            }
        }
        assert!(Backend::OpenAi.parse_chunk(br#"{"choices":[{"text":"unterminated"#).is_err());
    }

    #[test]
    fn parses_tgi_events() {
        let c = Backend::Tgi
            .parse_chunk(br#"{"token":{"id":1,"text":" hi","logprob":0.0,"special":false},"generated_text":null,"details":null}"#)
            .unwrap();
        assert_eq!((c.text.as_ref(), c.done), (" hi", false));
        let c = Backend::Tgi
            .parse_chunk(br#"{"token":{"id":2,"text":"</s>","special":true},"generated_text":" hi","details":{"finish_reason":"length","generated_tokens":2}}"#)
            .unwrap();
        assert_eq!((c.text.as_ref(), c.done, c.completion_tokens), ("", true, Some(2)));
    }

    #[test]
    fn unknown_backend_lists_choices() {
        assert!("foo".parse::<Backend>().unwrap_err().contains("openai, openai-chat, vllm, tgi"));
    }
}
