//! Every workload users bring: files of prompts in the formats they already have, and generated
//! sets. All are deterministic under a seed; malformed input is reported with file and line.

use crate::builtin::builtin_prompts;
use crate::prompt::ChatMessage;
use crate::trace::{read_trace, TraceFormat, TraceOptions, TraceSet};
use crate::{random_prompts, DataError, Prompt, RandomConfig, Tokenizer};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The dataset kinds `--dataset-name` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetKind {
    /// Random words of exact token lengths.
    Random,
    /// ShareGPT conversations (JSON array, JSONL, or a directory of them).
    ShareGpt,
    /// Prompts cut from a text file to length targets, with a shared prefix.
    Sonnet,
    /// A text file with one prompt per line and `# category` headers.
    Prompts,
    /// JSON lines with `prompt` or `messages`, optional `output_tokens` and `category`.
    Jsonl,
    /// Groups of prompts sharing a long prefix (prefix-cache workloads).
    SharedPrefix,
    /// The built-in short / medium / long set.
    Builtin,
    /// Conversations sent as sessions whose history grows turn by turn: the user turns of a
    /// ShareGPT-style file, or generated turns of `input_len` tokens.
    MultiTurn,
    /// A production trace replayed with its own arrival times and lengths (`--trace-format`).
    Trace,
}

impl DatasetKind {
    /// Every name, for help and errors.
    pub const NAMES: [&'static str; 9] =
        ["random", "sharegpt", "sonnet", "prompts", "jsonl", "shared-prefix", "builtin", "multi-turn", "trace"];

    /// Whether the kind reads `--dataset-path`.
    pub fn needs_path(self) -> bool {
        matches!(self, DatasetKind::ShareGpt | DatasetKind::Sonnet | DatasetKind::Prompts | DatasetKind::Jsonl | DatasetKind::Trace)
    }
}

impl FromStr for DatasetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "random" => DatasetKind::Random,
            "sharegpt" => DatasetKind::ShareGpt,
            "sonnet" => DatasetKind::Sonnet,
            "prompts" => DatasetKind::Prompts,
            "jsonl" | "custom" => DatasetKind::Jsonl,
            "shared-prefix" | "prefix-repetition" => DatasetKind::SharedPrefix,
            "builtin" => DatasetKind::Builtin,
            "multi-turn" | "multiturn" => DatasetKind::MultiTurn,
            "trace" => DatasetKind::Trace,
            _ => return Err(format!("unknown dataset '{s}' (expected one of: {})", Self::NAMES.join(", "))),
        })
    }
}

/// What to load and how to sample it.
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    /// Which kind.
    pub kind: DatasetKind,
    /// File or directory, for the kinds that read one.
    pub path: Option<PathBuf>,
    /// Prompts wanted.
    pub num_prompts: usize,
    /// Seed for generation and shuffling.
    pub seed: u64,
    /// Shuffle file datasets before taking `num_prompts` (vLLM does).
    pub shuffle: bool,
    /// Fixed output length; `None` keeps the dataset's own (ShareGPT replies, JSONL
    /// `output_tokens`) or falls back to `default_output_len`.
    pub output_len: Option<u32>,
    /// Output length for prompts that have none.
    pub default_output_len: u32,
    /// Target prompt length (random, sonnet, shared-prefix suffix).
    pub input_len: u32,
    /// Length spread for random prompts.
    pub range_ratio: f64,
    /// Shared prefix length (random, sonnet, shared-prefix).
    pub prefix_len: u32,
    /// Number of prefix groups (shared-prefix).
    pub prefix_groups: u32,
    /// Drop prompts shorter than this many tokens.
    pub min_input_len: Option<u32>,
    /// Drop prompts longer than this many tokens.
    pub max_input_len: Option<u32>,
    /// User turns per generated conversation (multi-turn without a file).
    pub turns: u32,
    /// Prompts go to a chat endpoint: when the tokenizer has a chat template, count each
    /// prompt's tokens as the rendered conversation (what the server's model sees).
    pub chat: bool,
    /// Trace replay: format, speed-up and window (the trace kind only).
    pub trace: Option<TraceReplay>,
}

/// How a trace is replayed (`--trace-format`, `--trace-speedup`, `--trace-window`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceReplay {
    /// The file's format.
    pub format: TraceFormat,
    /// Time runs this many times faster than traced.
    pub speedup: f64,
    /// Seconds from the trace's first request, `[start, end)`.
    pub window: Option<(f64, f64)>,
}

/// Loaded prompts and what happened on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The prompts, `num_prompts` of them.
    pub prompts: Vec<Prompt>,
    /// Usable entries the source had (after filters).
    pub available: usize,
    /// Entries dropped by length filters or for having no usable turn.
    pub skipped: usize,
    /// True when the source had fewer prompts than asked and some repeat.
    pub oversampled: bool,
    /// Seconds spent reading and indexing the source (zero for generated sets).
    pub read_s: f64,
    /// A trace to replay: its prompts are built as they are sent, and its times are the
    /// arrivals; `prompts` then holds its first few prompts, for checks and previews.
    pub trace: Option<std::sync::Arc<TraceSet>>,
}

/// Prompts of a trace built up front, for the token-count check and previews.
const PREVIEW_PROMPTS: usize = 16;

/// Loads the dataset `opts` describes.
pub fn load_dataset(tok: &Tokenizer, opts: &DatasetOptions) -> Result<Dataset, DataError> {
    let mut ds = load_raw(tok, opts)?;
    if let (true, Some(t)) = (opts.chat, tok.chat_template()) {
        for p in &mut ds.prompts {
            let single;
            let messages = match &p.messages {
                Some(m) => m.as_slice(),
                None => {
                    single = [ChatMessage { role: "user".into(), content: p.text.clone() }];
                    &single
                }
            };
            p.input_tokens = tok.count(&t.render(messages, true)?) as u32;
        }
    }
    Ok(ds)
}

fn load_raw(tok: &Tokenizer, opts: &DatasetOptions) -> Result<Dataset, DataError> {
    if opts.num_prompts == 0 {
        return Err(DataError::BadParameter("--num-prompts must be at least 1".into()));
    }
    let path =
        || opts.path.as_deref().ok_or_else(|| DataError::BadParameter(format!("--dataset-name {:?} needs --dataset-path", opts.kind)));
    let mut rng = SmallRng::seed_from_u64(opts.seed ^ 0xda7a);
    match opts.kind {
        DatasetKind::Random => {
            let cfg = RandomConfig {
                input_len: opts.input_len,
                output_len: opts.output_len.unwrap_or(opts.default_output_len),
                range_ratio: opts.range_ratio,
                prefix_len: opts.prefix_len,
                num_prompts: opts.num_prompts,
                seed: opts.seed,
            };
            let prompts = random_prompts(tok, &cfg)?;
            Ok(Dataset { available: prompts.len(), prompts, skipped: 0, oversampled: false, read_s: 0.0, trace: None })
        }
        DatasetKind::SharedPrefix => shared_prefix(tok, opts, &mut rng),
        DatasetKind::Sonnet => sonnet(tok, opts, path()?, &mut rng),
        DatasetKind::Builtin => {
            let entries =
                builtin_prompts().into_iter().map(|(c, t)| Entry { text: t, messages: None, reply: None, output: None, category: Some(c) });
            sample(tok, opts, entries.collect(), &mut rng)
        }
        DatasetKind::Prompts => sample(tok, opts, read_prompts_file(path()?)?, &mut rng),
        DatasetKind::Jsonl => sample(tok, opts, read_jsonl(path()?)?, &mut rng),
        DatasetKind::MultiTurn => multi_turn(tok, opts, &mut rng),
        DatasetKind::Trace => {
            let t = std::time::Instant::now();
            let replay = opts.trace.ok_or_else(|| DataError::BadParameter("--dataset-name trace needs --trace-format".into()))?;
            let set = read_trace(
                tok,
                &TraceOptions {
                    path: path()?.to_owned(),
                    format: replay.format,
                    speedup: replay.speedup,
                    window: replay.window,
                    limit: Some(opts.num_prompts),
                    seed: opts.seed,
                },
            )?;
            let read_s = t.elapsed().as_secs_f64();
            let prompts = (0..set.len().min(PREVIEW_PROMPTS)).map(|i| set.prompt(i)).collect();
            Ok(Dataset { prompts, available: set.len(), skipped: 0, oversampled: false, read_s, trace: Some(set.into()) })
        }
        DatasetKind::ShareGpt => {
            let t = std::time::Instant::now();
            let (cands, raw) = read_sharegpt(path()?)?;
            let read_s = t.elapsed().as_secs_f64();
            Ok(Dataset { read_s, ..sample_candidates(tok, opts, cands, &raw, &mut rng)? })
        }
    }
}

/// One candidate prompt before tokenisation.
#[derive(Debug, Clone)]
struct Entry {
    text: String,
    messages: Option<Vec<ChatMessage>>,
    /// A reference reply whose length sets the output length (ShareGPT).
    reply: Option<String>,
    output: Option<u32>,
    category: Option<String>,
}

/// A dataset entry, parsed already or only located (a byte range of a file, parsed if sampled).
#[derive(Debug, Clone)]
enum Candidate {
    Ready(Entry),
    Raw { file: usize, start: usize, end: usize, line: usize },
}

/// The files raw candidates point into.
#[derive(Debug, Default)]
struct RawFiles(Vec<(PathBuf, FileBytes)>);

/// A dataset file's bytes: memory-mapped, so a 100 MB file is indexed without copying it (the
/// page cache serves it, as it does `wc -l`). UTF-8 is checked per entry when it is parsed.
#[derive(Debug)]
enum FileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Read(v) => v,
        }
    }
}

fn map_file(path: &Path) -> Result<FileBytes, DataError> {
    let io = |e: std::io::Error| DataError::Io { path: path.to_owned(), message: e.to_string() };
    let f = std::fs::File::open(path).map_err(io)?;
    if f.metadata().map_err(io)?.len() == 0 {
        return Ok(FileBytes::Read(Vec::new()));
    }
    // SAFETY: the map is read-only and lives as long as the dataset is loaded; a file truncated
    // by another process meanwhile could fault, which is the documented risk of any mmap reader
    // and acceptable for a benchmark's input files. Reading is the fallback when mapping fails.
    #[allow(unsafe_code)]
    match unsafe { memmap2::Mmap::map(&f) } {
        Ok(m) => Ok(FileBytes::Mapped(m)),
        Err(_) => std::fs::read(path).map(FileBytes::Read).map_err(io),
    }
}

impl RawFiles {
    /// Parses one located ShareGPT entry; `None` when it has no usable user turn and reply.
    fn entry(&self, file: usize, start: usize, end: usize, line: usize) -> Result<Option<Entry>, DataError> {
        let (path, bytes) = &self.0[file];
        let v: Value = serde_json::from_slice(&bytes[start..end]).map_err(|e| malformed(path, line + e.line() - 1, e.to_string()))?;
        Ok(sharegpt_turns(&v).map(|(q, a)| Entry { text: q, messages: None, reply: Some(a), output: None, category: None }))
    }
}

/// Shuffles, then parses and tokenises lazily (only as many entries as are needed), filters and
/// oversamples.
fn sample(tok: &Tokenizer, opts: &DatasetOptions, entries: Vec<Entry>, rng: &mut SmallRng) -> Result<Dataset, DataError> {
    sample_candidates(tok, opts, entries.into_iter().map(Candidate::Ready).collect(), &RawFiles::default(), rng)
}

fn sample_candidates(
    tok: &Tokenizer,
    opts: &DatasetOptions,
    mut entries: Vec<Candidate>,
    raw: &RawFiles,
    rng: &mut SmallRng,
) -> Result<Dataset, DataError> {
    let source = opts.path.as_ref().map_or_else(|| "the built-in set".to_owned(), |p| p.display().to_string());
    if entries.is_empty() {
        return Err(DataError::Empty(format!("{source} has no prompts")));
    }
    if opts.shuffle {
        entries.shuffle(rng);
    }
    let mut prompts = Vec::with_capacity(opts.num_prompts.min(entries.len()));
    let mut skipped = 0;
    for c in entries {
        if prompts.len() == opts.num_prompts {
            break;
        }
        let e = match c {
            Candidate::Ready(e) => e,
            Candidate::Raw { file, start, end, line } => match raw.entry(file, start, end, line)? {
                Some(e) => e,
                None => {
                    skipped += 1;
                    continue;
                }
            },
        };
        let input_tokens = tok.count(&e.text) as u32;
        let output_tokens = match (opts.output_len, e.output, &e.reply) {
            (Some(n), _, _) | (None, Some(n), _) => n,
            (None, None, Some(reply)) => tok.count(reply) as u32,
            (None, None, None) => opts.default_output_len,
        };
        let too_short = opts.min_input_len.is_some_and(|m| input_tokens < m);
        let too_long = opts.max_input_len.is_some_and(|m| input_tokens > m);
        // Like vLLM: a reference reply too short to time is not a useful request.
        let tiny_reply = e.reply.is_some() && opts.output_len.is_none() && output_tokens < 4;
        if too_short || too_long || tiny_reply || output_tokens == 0 {
            skipped += 1;
            continue;
        }
        prompts.push(Prompt { text: e.text, input_tokens, output_tokens, category: e.category, messages: e.messages, turn: None });
    }
    if prompts.is_empty() {
        return Err(DataError::Empty(format!("no prompt of {source} is left after the length filters ({skipped} skipped)")));
    }
    let available = prompts.len();
    let oversampled = available < opts.num_prompts;
    let mut i = 0;
    while prompts.len() < opts.num_prompts {
        prompts.push(prompts[i % available].clone());
        i += 1;
    }
    Ok(Dataset { prompts, available, skipped, oversampled, read_s: 0.0, trace: None })
}

fn read(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|e| DataError::Io { path: path.to_owned(), message: e.to_string() })
}

fn malformed(path: &Path, line: usize, message: impl Into<String>) -> DataError {
    DataError::Malformed { path: path.to_owned(), line, message: message.into() }
}

/// `# category` headers, then one prompt per line; blank lines ignored.
fn read_prompts_file(path: &Path) -> Result<Vec<Entry>, DataError> {
    let mut category = None;
    let mut out = Vec::new();
    for line in read(path)?.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(c) = t.strip_prefix('#') {
            let c = c.trim();
            category = (!c.is_empty()).then(|| c.to_owned());
            continue;
        }
        out.push(Entry { text: t.to_owned(), messages: None, reply: None, output: None, category: category.clone() });
    }
    Ok(out)
}

fn messages_of(v: &Value) -> Option<Vec<ChatMessage>> {
    v.as_array()?
        .iter()
        .map(|m| Some(ChatMessage { role: m.get("role")?.as_str()?.to_owned(), content: m.get("content")?.as_str()?.to_owned() }))
        .collect()
}

fn join_messages(ms: &[ChatMessage]) -> String {
    ms.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n")
}

/// `{"prompt" | "messages", "output_tokens"?, "category"?}` per line.
fn read_jsonl(path: &Path) -> Result<Vec<Entry>, DataError> {
    let mut out = Vec::new();
    for (i, line) in read(path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| malformed(path, i + 1, e.to_string()))?;
        let output = match v.get("output_tokens") {
            None | Some(Value::Null) => None,
            Some(n) => Some(
                n.as_u64()
                    .filter(|&n| n > 0 && n <= u32::MAX as u64)
                    .ok_or_else(|| malformed(path, i + 1, format!("\"output_tokens\" must be a positive integer, got {n}")))?
                    as u32,
            ),
        };
        let category = v.get("category").and_then(Value::as_str).map(str::to_owned);
        let (text, messages) = match (v.get("prompt"), v.get("messages")) {
            (Some(Value::String(p)), _) => (p.clone(), None),
            (_, Some(m)) => {
                let ms = messages_of(m)
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| malformed(path, i + 1, "\"messages\" must be a non-empty list of {\"role\", \"content\"}"))?;
                (join_messages(&ms), Some(ms))
            }
            _ => return Err(malformed(path, i + 1, "each line needs a \"prompt\" string or a \"messages\" list")),
        };
        out.push(Entry { text, messages, reply: None, output, category });
    }
    Ok(out)
}

/// The first user turn and the reply after it, from any of the ShareGPT layouts in the wild:
/// `conversations: [{from, value}]`, `conversation: [{human, assistant}]`, `messages: [{role, content}]`.
fn sharegpt_turns(v: &Value) -> Option<(String, String)> {
    let is_user = |r: &str| matches!(r, "human" | "user");
    if let Some(turns) = v.get("conversations").and_then(Value::as_array) {
        let pos = turns.iter().position(|t| t.get("from").and_then(Value::as_str).is_some_and(is_user))?;
        let q = turns[pos].get("value")?.as_str()?;
        let a = turns.get(pos + 1)?.get("value")?.as_str()?;
        return Some((q.to_owned(), a.to_owned()));
    }
    if let Some(turns) = v.get("conversation").and_then(Value::as_array) {
        let t = turns.first()?;
        return Some((t.get("human")?.as_str()?.to_owned(), t.get("assistant")?.as_str()?.to_owned()));
    }
    let ms = v.get("messages").and_then(messages_of)?;
    let pos = ms.iter().position(|m| is_user(&m.role))?;
    Some((ms[pos].content.clone(), ms.get(pos + 1)?.content.clone()))
}

/// A ShareGPT file (JSON array or JSON lines) or a directory of `.json` / `.jsonl` files. Entries
/// are only located here (line ends, or a structural scan of the array); each is parsed when
/// sampled, so loading a 100 MB file costs about as much as reading it.
fn read_sharegpt(path: &Path) -> Result<(Vec<Candidate>, RawFiles), DataError> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut fs: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| DataError::Io { path: path.to_owned(), message: e.to_string() })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "jsonl"))
            .collect();
        fs.sort();
        if fs.is_empty() {
            return Err(DataError::Empty(format!("{} has no .json or .jsonl files", path.display())));
        }
        fs
    } else {
        vec![path.to_owned()]
    };
    let mut out = Vec::new();
    let mut raw = RawFiles::default();
    for (file, f) in files.into_iter().enumerate() {
        let text = map_file(&f)?;
        let body = text.trim_ascii_start();
        if body.starts_with(b"[") {
            let offset = text.len() - body.len();
            let line0 = text[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
            for (start, end, line) in scan_array(body, line0).map_err(|(line, m)| malformed(&f, line, m))? {
                out.push(Candidate::Raw { file, start: offset + start, end: offset + end, line });
            }
        } else {
            let mut start = 0;
            let mut line = 1;
            let bytes: &[u8] = &text;
            while start < bytes.len() {
                let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
                if !bytes[start..end].trim_ascii().is_empty() {
                    out.push(Candidate::Raw { file, start, end, line });
                }
                start = end + 1;
                line += 1;
            }
        }
        raw.0.push((f, text));
    }
    Ok((out, raw))
}

/// An element's `(start, end, line)` in a file.
type Span = (usize, usize, usize);

/// Locates the elements of a JSON array without parsing them: `(start, end, line)` per element.
/// Strings are skipped with a SIMD search for their closing quote, so the scan runs near memory
/// speed. Errors give the line and what was wrong.
fn scan_array(b: &[u8], first_line: usize) -> Result<Vec<Span>, (usize, String)> {
    let mut out = Vec::new();
    let mut line = first_line;
    let mut i = 1; // past '['
    let unterminated = |line| Err((line, "the JSON array is not terminated".to_owned()));
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            line += (b[i] == b'\n') as usize;
            i += 1;
        }
        match b.get(i) {
            None => return unterminated(line),
            Some(b']') => return Ok(out),
            _ => {}
        }
        let (start, start_line) = (i, line);
        let mut depth = 0usize;
        loop {
            match b.get(i) {
                None => return unterminated(line),
                Some(b'"') => {
                    i += 1;
                    loop {
                        let Some(k) = memchr::memchr2(b'"', b'\\', &b[i..]) else { return unterminated(line) };
                        i += k;
                        if b[i] == b'"' {
                            break;
                        }
                        i += 2;
                    }
                }
                Some(b'{' | b'[') => depth += 1,
                Some(b'}' | b']') if depth == 0 => break,
                Some(b'}' | b']') => depth -= 1,
                Some(b',') if depth == 0 => break,
                Some(b'\n') => line += 1,
                _ => {}
            }
            i += 1;
        }
        let mut end = i;
        while end > start && b[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        if end == start {
            return Err((line, "empty element in the JSON array".into()));
        }
        out.push((start, end, start_line));
        if b[i] == b',' {
            i += 1;
        }
    }
}

/// Every user turn of a conversation, from the same layouts [`sharegpt_turns`] reads.
fn user_turns(v: &Value) -> Vec<String> {
    let text = |t: &Value, k: &str| t.get(k).and_then(Value::as_str).map(str::to_owned);
    if let Some(turns) = v.get("conversations").and_then(Value::as_array) {
        return turns
            .iter()
            .filter(|t| matches!(t.get("from").and_then(Value::as_str), Some("human" | "user")))
            .filter_map(|t| text(t, "value"))
            .collect();
    }
    if let Some(turns) = v.get("conversation").and_then(Value::as_array) {
        return turns.iter().filter_map(|t| text(t, "human")).collect();
    }
    v.get("messages")
        .and_then(messages_of)
        .map_or_else(Vec::new, |ms| ms.into_iter().filter(|m| m.role == "user").map(|m| m.content).collect())
}

/// Conversations of `opts.num_prompts` sessions (from a file's user turns, or generated).
/// Each turn's `input_tokens` counts its own message; the client adds the history when sending.
fn multi_turn(tok: &Tokenizer, opts: &DatasetOptions, rng: &mut SmallRng) -> Result<Dataset, DataError> {
    let output = opts.output_len.unwrap_or(opts.default_output_len);
    let mut convs: Vec<Vec<String>> = match &opts.path {
        Some(path) => {
            let (cands, raw) = read_sharegpt(path)?;
            let mut convs = Vec::new();
            for c in cands {
                let Candidate::Raw { file, start, end, line } = c else { continue };
                let (p, bytes) = &raw.0[file];
                let v: Value = serde_json::from_slice(&bytes[start..end]).map_err(|e| malformed(p, line + e.line() - 1, e.to_string()))?;
                let turns = user_turns(&v);
                if turns.len() >= 2 {
                    convs.push(turns);
                }
            }
            if convs.is_empty() {
                return Err(DataError::Empty(format!("{} has no conversation with two or more user turns", path.display())));
            }
            convs
        }
        None => {
            if opts.turns == 0 {
                return Err(DataError::BadParameter("--turns must be at least 1".into()));
            }
            let words = tok.single_token_words();
            (0..opts.num_prompts)
                .map(|_| {
                    (0..opts.turns)
                        .map(|_| (0..opts.input_len).map(|_| words[rng.random_range(0..words.len())].as_str()).collect())
                        .collect()
                })
                .collect()
        }
    };
    if opts.shuffle {
        convs.shuffle(rng);
    }
    let available = convs.len();
    let mut prompts = Vec::new();
    for c in 0..opts.num_prompts {
        for (turn, text) in convs[c % available].iter().enumerate() {
            let input_tokens = tok.count(text) as u32;
            prompts.push(Prompt { turn: Some(turn as u32), ..Prompt::new(text.clone(), input_tokens, output) });
        }
    }
    Ok(Dataset { prompts, available, skipped: 0, oversampled: available < opts.num_prompts, read_s: 0.0, trace: None })
}

/// vLLM's sonnet dataset: a shared prefix of the file's first lines, then random lines, cut to
/// `input_len` tokens.
fn sonnet(tok: &Tokenizer, opts: &DatasetOptions, path: &Path, rng: &mut SmallRng) -> Result<Dataset, DataError> {
    let text = read(path)?;
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        return Err(DataError::Empty(format!("{} has no lines", path.display())));
    }
    let mut prefix = String::new();
    for l in lines.iter().cycle().take(lines.len() * 8) {
        if tok.count(&prefix) >= opts.prefix_len as usize {
            break;
        }
        prefix.push_str(l);
        prefix.push('\n');
    }
    let prefix_ids = tok.encode(&prefix);
    let prefix = tok.decode(&prefix_ids[..prefix_ids.len().min(opts.prefix_len as usize)])?;
    let target = opts.input_len.max(opts.prefix_len) as usize;
    let output = opts.output_len.unwrap_or(opts.default_output_len);
    let prompts = (0..opts.num_prompts)
        .map(|_| {
            let mut body = prefix.clone();
            while tok.count(&body) < target {
                body.push_str(lines[rng.random_range(0..lines.len())]);
                body.push('\n');
            }
            let ids = tok.encode(&body);
            let text = tok.decode(&ids[..target.min(ids.len())])?;
            let input_tokens = tok.count(&text) as u32;
            Ok(Prompt::new(text, input_tokens, output))
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    Ok(Dataset { available: prompts.len(), prompts, skipped: 0, oversampled: false, read_s: 0.0, trace: None })
}

/// `prefix_groups` groups of prompts; within a group every prompt starts with the same
/// `prefix_len`-token prefix, followed by its own `input_len`-token suffix. Lengths are exact.
fn shared_prefix(tok: &Tokenizer, opts: &DatasetOptions, rng: &mut SmallRng) -> Result<Dataset, DataError> {
    let groups = opts.prefix_groups.max(1) as usize;
    if opts.prefix_len == 0 {
        return Err(DataError::BadParameter("--dataset-name shared-prefix needs --random-prefix-len > 0".into()));
    }
    let words = tok.single_token_words();
    let mut gen = |n: u32| -> String { (0..n).map(|_| words[rng.random_range(0..words.len())].as_str()).collect() };
    let prefixes: Vec<String> = (0..groups).map(|_| gen(opts.prefix_len)).collect();
    let output = opts.output_len.unwrap_or(opts.default_output_len);
    let prompts: Vec<Prompt> = (0..opts.num_prompts)
        .map(|i| {
            let g = i % groups;
            let text = tok.words_prompt(format!("{}{}", prefixes[g], gen(opts.input_len)));
            Prompt { category: Some(format!("group-{g}")), ..Prompt::new(text, opts.prefix_len + opts.input_len, output) }
        })
        .collect();
    Ok(Dataset { available: prompts.len(), prompts, skipped: 0, oversampled: false, read_s: 0.0, trace: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn opts(kind: DatasetKind, path: Option<&Path>, n: usize) -> DatasetOptions {
        DatasetOptions {
            kind,
            path: path.map(Path::to_owned),
            num_prompts: n,
            seed: 1,
            shuffle: false,
            output_len: None,
            default_output_len: 32,
            input_len: 64,
            range_ratio: 0.0,
            prefix_len: 0,
            prefix_groups: 4,
            min_input_len: None,
            max_input_len: None,
            chat: false,
            trace: None,
            turns: 3,
        }
    }

    fn file(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(content.as_bytes()).unwrap();
        (dir, p)
    }

    fn tok() -> Tokenizer {
        Tokenizer::by_name("cl100k_base").unwrap()
    }

    #[test]
    fn prompts_file_with_categories() {
        let (_d, p) = file("p.txt", "# code\nwrite a sort\n\n# chat\nhello there\nhow are you\n");
        let ds = load_dataset(&tok(), &opts(DatasetKind::Prompts, Some(&p), 3)).unwrap();
        let cats: Vec<_> = ds.prompts.iter().map(|p| p.category.as_deref().unwrap()).collect();
        assert_eq!(cats, ["code", "chat", "chat"]);
        assert_eq!(ds.prompts[1].input_tokens as usize, tok().count("hello there"));
        assert_eq!(ds.prompts[0].output_tokens, 32);
        let more = load_dataset(&tok(), &opts(DatasetKind::Prompts, Some(&p), 7)).unwrap();
        assert!(more.oversampled && more.prompts.len() == 7 && more.available == 3);
    }

    #[test]
    fn jsonl_prompts_messages_and_errors_with_line_numbers() {
        let (_d, p) = file(
            "d.jsonl",
            "{\"prompt\": \"hi\", \"output_tokens\": 5, \"category\": \"a\"}\n\n{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", \"content\": \"why?\"}]}\n",
        );
        let ds = load_dataset(&tok(), &opts(DatasetKind::Jsonl, Some(&p), 2)).unwrap();
        assert_eq!((ds.prompts[0].output_tokens, ds.prompts[0].category.as_deref()), (5, Some("a")));
        assert_eq!(ds.prompts[1].messages.as_ref().unwrap().len(), 2);
        assert_eq!(ds.prompts[1].text, "be brief\nwhy?");
        let (_d, bad) = file("bad.jsonl", "{\"prompt\": \"ok\"}\n{\"prompt\": \"ok\"\n");
        let e = load_dataset(&tok(), &opts(DatasetKind::Jsonl, Some(&bad), 1)).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl:2:"), "{e}");
        let (_d, bad) = file("bad.jsonl", "{\"text\": \"no prompt key\"}\n");
        let e = load_dataset(&tok(), &opts(DatasetKind::Jsonl, Some(&bad), 1)).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl:1:") && e.contains("\"prompt\""), "{e}");
    }

    #[test]
    fn sharegpt_layouts_files_and_directories() {
        let reply = "This reply is certainly long enough to count as a reference answer.";
        let v3 = format!(
            "[{{\"id\": \"1\", \"conversations\": [{{\"from\": \"human\", \"value\": \"What is Rust used for?\"}}, {{\"from\": \"gpt\", \"value\": \"{reply}\"}}]}}, {{\"id\": \"2\", \"conversations\": [{{\"from\": \"human\", \"value\": \"lonely\"}}]}}]"
        );
        let (dir, p) = file("sharegpt_V3_format.json", &v3);
        let ds = load_dataset(&tok(), &opts(DatasetKind::ShareGpt, Some(&p), 1)).unwrap();
        assert_eq!(ds.prompts[0].text, "What is Rust used for?");
        assert_eq!(ds.prompts[0].output_tokens as usize, tok().count(reply), "output length from the reference reply");
        let zh = format!("{{\"conversation\": [{{\"human\": \"你好，请介绍一下你自己\", \"assistant\": \"{reply}\"}}]}}\n");
        std::fs::write(dir.path().join("sharegpt_zh_38K_format.jsonl"), zh).unwrap();
        let gpt4 = format!("{{\"messages\": [{{\"role\": \"user\", \"content\": \"Explain TCP.\"}}, {{\"role\": \"assistant\", \"content\": \"{reply}\"}}]}}\n");
        std::fs::write(dir.path().join("sharegpt_gpt4.jsonl"), gpt4).unwrap();
        let mut o = opts(DatasetKind::ShareGpt, Some(dir.path()), 3);
        o.output_len = Some(7);
        let ds = load_dataset(&tok(), &o).unwrap();
        assert_eq!(ds.available, 3);
        assert!(ds.prompts.iter().all(|p| p.output_tokens == 7));
        let (_d, bad) = file("broken.json", "[\n{\"conversations\": []},\n{oops}\n]");
        let e = load_dataset(&tok(), &opts(DatasetKind::ShareGpt, Some(&bad), 2)).unwrap_err().to_string();
        assert!(e.contains("broken.json:3:"), "{e}");
        let (_d, bad) = file("cut.json", "[\n{\"conversations\": [{\"from\": \"human\", \"value\": \"a");
        let e = load_dataset(&tok(), &opts(DatasetKind::ShareGpt, Some(&bad), 1)).unwrap_err().to_string();
        assert!(e.contains("cut.json:2:") && e.contains("not terminated"), "{e}");
    }

    #[test]
    fn array_scan_finds_elements_with_nesting_strings_and_lines() {
        let text = "[\n {\"a\": [1, {\"b\": \"x,]}\\\"\"}]},\n  2 ,\n\"s\"\n]";
        let got = scan_array(text.as_bytes(), 1).unwrap();
        let parts: Vec<(&str, usize)> = got.iter().map(|&(s, e, l)| (&text[s..e], l)).collect();
        assert_eq!(parts, vec![("{\"a\": [1, {\"b\": \"x,]}\\\"\"}]}", 2), ("2", 3), ("\"s\"", 4)]);
        assert_eq!(scan_array(b"[]", 1).unwrap(), vec![]);
    }

    #[test]
    fn filters_can_empty_a_dataset_and_say_so() {
        let (_d, p) = file("p.txt", "short one\nanother short one\n");
        let mut o = opts(DatasetKind::Prompts, Some(&p), 2);
        o.min_input_len = Some(100);
        let e = load_dataset(&tok(), &o).unwrap_err().to_string();
        assert!(e.contains("no prompt") && e.contains("2 skipped"), "{e}");
        let missing = opts(DatasetKind::Jsonl, Some(Path::new("/nonexistent/x.jsonl")), 1);
        assert!(load_dataset(&tok(), &missing).unwrap_err().to_string().contains("/nonexistent/x.jsonl"));
    }

    #[test]
    fn shared_prefix_groups_are_exact() {
        let mut o = opts(DatasetKind::SharedPrefix, None, 8);
        o.prefix_len = 100;
        o.input_len = 20;
        let dir = tempfile::tempdir().unwrap();
        let spm = crate::tokenizer::tests::write_spm_gguf(dir.path(), true);
        for tok in [tok(), Tokenizer::by_name(spm.to_str().unwrap()).unwrap()] {
            let ds = load_dataset(&tok, &o).unwrap();
            for p in &ds.prompts {
                assert_eq!(tok.count(&p.text), 120, "{}", tok.name());
            }
            let g0: Vec<_> = ds.prompts.iter().filter(|p| p.category.as_deref() == Some("group-0")).collect();
            assert_eq!(g0.len(), 2);
            assert_eq!(tok.encode(&g0[0].text)[..100], tok.encode(&g0[1].text)[..100]);
            assert_ne!(tok.encode(&ds.prompts[0].text)[..100], tok.encode(&ds.prompts[1].text)[..100]);
        }
    }

    #[test]
    fn sonnet_cuts_to_length_with_a_shared_prefix() {
        let poem = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\nRough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date;\n";
        let (_d, p) = file("sonnet.txt", poem);
        let mut o = opts(DatasetKind::Sonnet, Some(&p), 5);
        o.prefix_len = 10;
        o.input_len = 60;
        let ds = load_dataset(&tok(), &o).unwrap();
        let first10 = tok().encode(&ds.prompts[0].text)[..10].to_vec();
        for p in &ds.prompts {
            assert!((58..=62).contains(&p.input_tokens), "{}", p.input_tokens);
            assert_eq!(tok().encode(&p.text)[..10], first10[..]);
        }
    }

    #[test]
    fn chat_prompts_are_counted_through_the_chat_template() {
        let dir = tempfile::tempdir().unwrap();
        crate::tokenizer::tests::write_tiny_hf_tokenizer(dir.path());
        let tmpl = "{% for m in messages %} cat{{ m.content }}{% endfor %}{% if add_generation_prompt %} dog{% endif %}";
        std::fs::write(dir.path().join("tokenizer_config.json"), serde_json::json!({"chat_template": tmpl}).to_string()).unwrap();
        let t = Tokenizer::by_name(dir.path().to_str().unwrap()).unwrap();
        let (_d, p) = file("p.jsonl", "{\"prompt\": \" fish fish\"}\n");
        let mut o = opts(DatasetKind::Jsonl, Some(&p), 1);
        assert_eq!(load_dataset(&t, &o).unwrap().prompts[0].input_tokens, 2);
        o.chat = true;
        // " cat" + " fish fish" + " dog" = 4 tokens.
        assert_eq!(load_dataset(&t, &o).unwrap().prompts[0].input_tokens, 4);
    }

    #[test]
    fn multi_turn_conversations_from_files_or_generated() {
        let (_d, p) = file(
            "conv.jsonl",
            "{\"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}, {\"from\": \"gpt\", \"value\": \"hello\"}, {\"from\": \"human\", \"value\": \"how are you\"}]}\n{\"conversations\": [{\"from\": \"human\", \"value\": \"single\"}]}\n",
        );
        let ds = load_dataset(&tok(), &opts(DatasetKind::MultiTurn, Some(&p), 2)).unwrap();
        let turns: Vec<(Option<u32>, &str)> = ds.prompts.iter().map(|p| (p.turn, p.text.as_str())).collect();
        assert_eq!(turns, [(Some(0), "hi"), (Some(1), "how are you"), (Some(0), "hi"), (Some(1), "how are you")]);
        assert!(ds.oversampled, "one usable conversation for two sessions");
        let mut o = opts(DatasetKind::MultiTurn, None, 3);
        o.turns = 4;
        o.input_len = 10;
        let ds = load_dataset(&tok(), &o).unwrap();
        assert_eq!(ds.prompts.len(), 12);
        assert!(ds.prompts.iter().all(|p| p.input_tokens == 10));
        assert_eq!(ds.prompts.iter().filter(|p| p.turn == Some(0)).count(), 3);
    }

    #[test]
    fn builtin_set_has_categories_and_is_deterministic() {
        let mut o = opts(DatasetKind::Builtin, None, 40);
        o.shuffle = true;
        let a = load_dataset(&tok(), &o).unwrap();
        assert_eq!(a, load_dataset(&tok(), &o).unwrap());
        let cats: std::collections::BTreeSet<_> = a.prompts.iter().filter_map(|p| p.category.clone()).collect();
        for c in ["short", "medium", "long", "code", "reasoning", "multilingual", "edge"] {
            assert!(cats.contains(c), "{c}");
        }
        assert!(a.prompts.iter().any(|p| p.input_tokens > 2000), "a very long prompt");
    }
}
