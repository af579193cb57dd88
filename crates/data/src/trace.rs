//! Trace replay: production request logs (Mooncake, Azure LLM inference, BurstGPT) read into
//! arrival offsets and exact prompt and output lengths. A trace can hold a million requests of
//! thousands of tokens each, so prompts are not built up front: [`TraceSet::prompt`] builds one
//! when it is sent, from single-token words drawn by a seed, in under 25 µs per thousand
//! tokens. For Mooncake, each `hash_id` is one 512-token block drawn from a seed of its own, so
//! requests with equal hash ids share exactly those prompt blocks, as the traced requests did.

use crate::{DataError, Prompt, Tokenizer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// Tokens per Mooncake hash block (the trace's own block size).
pub const BLOCK_TOKENS: u32 = 512;

/// The trace formats `--trace-format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    /// JSON lines: `timestamp` (ms), `input_length`, `output_length`, `hash_ids`.
    Mooncake,
    /// CSV: `TIMESTAMP` (date-time or seconds), `ContextTokens`, `GeneratedTokens`.
    Azure,
    /// CSV: `Timestamp` (s), `Model`, `Request tokens`, `Response tokens`, `Log Type`.
    BurstGpt,
}

impl FromStr for TraceFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "mooncake" => Ok(Self::Mooncake),
            "azure" => Ok(Self::Azure),
            "burstgpt" => Ok(Self::BurstGpt),
            _ => Err(format!("unknown trace format '{s}' (expected mooncake, azure or burstgpt)")),
        }
    }
}

/// How to read and replay a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceOptions {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: TraceFormat,
    /// Time is divided by this (2 replays twice as fast).
    pub speedup: f64,
    /// Only requests whose trace time, in seconds from the first request, is in `[start, end)`.
    pub window: Option<(f64, f64)>,
    /// At most this many requests (the first ones in time).
    pub limit: Option<usize>,
    /// Seed of the prompt words.
    pub seed: u64,
}

/// One traced request.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Row {
    /// Trace time in seconds (absolute until rebased).
    t: f64,
    input: u32,
    output: u32,
    /// Range of this row's hash ids in `TraceSet::hashes`.
    hashes: (u32, u32),
    /// Index in `TraceSet::categories`, for BurstGPT.
    category: u32,
}

/// A trace ready to replay: arrival offsets, lengths and how to build each prompt.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceSet {
    rows: Vec<Row>,
    hashes: Vec<u64>,
    categories: Vec<String>,
    words: Arc<[String]>,
    /// The tokenizer adds the first space itself ([`Tokenizer::words_prompt`]).
    space_prefix: bool,
    seed: u64,
    /// Lines read, before the window and the limit.
    pub lines: usize,
}

impl TraceSet {
    /// Requests to replay.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing is left to replay.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Each request's send time in seconds from the run's start (already sped up).
    pub fn offsets(&self) -> Vec<f64> {
        self.rows.iter().map(|r| r.t).collect()
    }

    /// Seconds from the first send to the last (the rows are in time order).
    pub fn span_s(&self) -> f64 {
        self.rows.last().map_or(0.0, |r| r.t)
    }

    /// Total prompt tokens of the replay.
    pub fn input_tokens(&self) -> u64 {
        self.rows.iter().map(|r| r.input as u64).sum()
    }

    /// Request `i`'s prompt, built now: exactly its traced input length in the run's tokenizer,
    /// and its traced output length.
    pub fn prompt(&self, i: usize) -> Prompt {
        let r = &self.rows[i % self.rows.len()];
        let mut text = String::with_capacity(r.input as usize * 8);
        let hashes = &self.hashes[r.hashes.0 as usize..r.hashes.1 as usize];
        let mut left = r.input;
        if hashes.is_empty() {
            // No blocks (Azure, BurstGPT): every prompt its own.
            self.words_into(&mut text, self.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x7ace, left);
        }
        for (k, &h) in hashes.iter().enumerate() {
            if left == 0 {
                break;
            }
            // More tokens than blocks cover: the tail is the request's own.
            let last = k + 1 == hashes.len();
            let n = if last { left } else { left.min(BLOCK_TOKENS) };
            let block_seed = self.seed ^ h.wrapping_add(1).wrapping_mul(0xd1b5_4a32_d192_ed03);
            if n <= BLOCK_TOKENS {
                self.words_into(&mut text, block_seed, n);
            } else {
                self.words_into(&mut text, block_seed, BLOCK_TOKENS);
                self.words_into(&mut text, self.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), n - BLOCK_TOKENS);
            }
            left -= n;
        }
        let mut p = Prompt::new(crate::tokenizer::words_prompt(self.space_prefix, text), r.input, r.output);
        p.category = self.categories.get(r.category as usize).cloned();
        p
    }

    /// Appends `n` single-token words drawn from `seed`: the first `k` are the same for any `n`,
    /// so a partial block is a prefix of the full one.
    fn words_into(&self, out: &mut String, seed: u64, n: u32) {
        let mut rng = SmallRng::seed_from_u64(seed);
        for _ in 0..n {
            out.push_str(&self.words[rng.random_range(0..self.words.len())]);
        }
    }
}

/// Reads a trace: the rows in time order, rebased so the first kept request is at 0, windowed,
/// limited and sped up.
pub fn read_trace(tok: &Tokenizer, opts: &TraceOptions) -> Result<TraceSet, DataError> {
    if !(opts.speedup.is_finite() && opts.speedup > 0.0) {
        return Err(DataError::BadParameter(format!("--trace-speedup must be a positive number, got {}", opts.speedup)));
    }
    let words: Arc<[String]> = tok.single_token_words().to_vec().into();
    if words.is_empty() {
        return Err(DataError::BadParameter(format!(
            "tokenizer {} has no single-token words, so trace prompts of exact lengths cannot be built with it; pass another --tokenizer",
            tok.name()
        )));
    }
    let bytes = std::fs::read(&opts.path).map_err(|e| DataError::Io { path: opts.path.clone(), message: e.to_string() })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| DataError::Malformed {
        path: opts.path.clone(),
        line: 1,
        message: format!("not UTF-8: {e}"),
    })?;
    let mut set = match opts.format {
        TraceFormat::Mooncake => parse_mooncake(text, &opts.path)?,
        TraceFormat::Azure => parse_csv(text, &opts.path, &AZURE)?,
        TraceFormat::BurstGpt => parse_csv(text, &opts.path, &BURSTGPT)?,
    };
    set.words = words;
    set.space_prefix = tok.adds_space_prefix();
    set.seed = opts.seed;
    if set.rows.is_empty() {
        return Err(DataError::Empty(format!("{}: the trace has no requests", opts.path.display())));
    }
    // Stable: requests at the same instant keep their file order.
    if !set.rows.windows(2).all(|w| w[0].t <= w[1].t) {
        set.rows.sort_by(|a, b| a.t.total_cmp(&b.t));
    }
    let first = set.rows[0].t;
    if let Some((start, end)) = opts.window {
        if !(start >= 0.0 && end > start) {
            return Err(DataError::BadParameter(format!("--trace-window {start}:{end}: expected START:END seconds with END > START >= 0")));
        }
        set.rows.retain(|r| (start..end).contains(&(r.t - first)));
        if set.rows.is_empty() {
            let span = set.lines;
            return Err(DataError::Empty(format!(
                "--trace-window {start}:{end} holds none of the trace's {span} requests (times are seconds from its first request)"
            )));
        }
    }
    if let Some(n) = opts.limit {
        set.rows.truncate(n.max(1));
    }
    let zero = set.rows[0].t;
    for r in &mut set.rows {
        r.t = (r.t - zero) / opts.speedup;
    }
    Ok(set)
}

/// Mooncake JSON lines. Parsed on every core in slices of whole lines: a million lines of a few
/// hundred bytes each must load in well under 2 s.
fn parse_mooncake(text: &str, path: &Path) -> Result<TraceSet, DataError> {
    #[derive(serde::Deserialize)]
    struct Line {
        timestamp: f64,
        input_length: u32,
        output_length: u32,
        #[serde(default)]
        hash_ids: Vec<u64>,
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let slices = split_lines(text, threads);
    let parsed: Vec<Result<Parsed, DataError>> = std::thread::scope(|s| {
        let handles: Vec<_> = slices
            .iter()
            .map(|&(first_line, slice)| {
                s.spawn(move || {
                    let mut rows = Vec::with_capacity(slice.len() / 200 + 1);
                    let mut hashes = Vec::new();
                    let mut lines = 0;
                    for (k, line) in slice.lines().enumerate() {
                        let line = line.trim();
                        if line.is_empty() {
                            continue;
                        }
                        lines += 1;
                        let bad = |message: String| DataError::Malformed { path: path.to_owned(), line: first_line + k + 1, message };
                        let l: Line = serde_json::from_str(line).map_err(|e| bad(format!("not a Mooncake trace line: {e}")))?;
                        if !l.timestamp.is_finite() {
                            return Err(bad("timestamp is not a number".into()));
                        }
                        let start = hashes.len() as u32;
                        hashes.extend_from_slice(&l.hash_ids);
                        rows.push(Row {
                            t: l.timestamp / 1000.0,
                            input: l.input_length.max(1),
                            output: l.output_length.max(1),
                            hashes: (start, hashes.len() as u32),
                            category: u32::MAX,
                        });
                    }
                    Ok((rows, hashes, lines))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(DataError::Empty("a trace parser thread panicked".into())))).collect()
    });
    let mut set = TraceSet::default();
    for part in parsed {
        let (rows, hashes, lines) = part?;
        let base = set.hashes.len() as u32;
        set.hashes.extend_from_slice(&hashes);
        set.rows.extend(rows.into_iter().map(|r| Row { hashes: (r.hashes.0 + base, r.hashes.1 + base), ..r }));
        set.lines += lines;
    }
    Ok(set)
}

/// One slice's rows, their hash ids, and how many lines it held.
type Parsed = (Vec<Row>, Vec<u64>, usize);

/// `n` slices of whole lines, with the line number each starts at.
fn split_lines(text: &str, n: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::with_capacity(n);
    let (mut start, mut line) = (0, 0);
    for k in 1..=n {
        let mut end = if k == n { text.len() } else { (text.len() * k / n).max(start) };
        while end < text.len() && !text.is_char_boundary(end) {
            end += 1;
        }
        end = match text[end..].find('\n') {
            Some(i) if k < n => end + i + 1,
            _ if k < n => text.len(),
            _ => end,
        };
        let slice = &text[start..end];
        out.push((line, slice));
        line += memchr::memchr_iter(b'\n', slice.as_bytes()).count();
        start = end;
    }
    out
}

/// Which CSV columns hold what.
struct CsvColumns {
    name: &'static str,
    time: &'static str,
    input: &'static str,
    output: &'static str,
    categories: &'static [&'static str],
}

const AZURE: CsvColumns =
    CsvColumns { name: "Azure LLM inference", time: "TIMESTAMP", input: "ContextTokens", output: "GeneratedTokens", categories: &[] };
const BURSTGPT: CsvColumns = CsvColumns {
    name: "BurstGPT",
    time: "Timestamp",
    input: "Request tokens",
    output: "Response tokens",
    categories: &["Model", "Log Type"],
};

fn parse_csv(text: &str, path: &Path, cols: &CsvColumns) -> Result<TraceSet, DataError> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let bad = |line: usize, message: String| DataError::Malformed { path: path.to_owned(), line: line + 1, message };
    let Some((_, header)) = lines.next() else { return Err(DataError::Empty(format!("{}: the file is empty", path.display()))) };
    let names: Vec<&str> = header.split(',').map(|h| h.trim().trim_matches('"').trim_start_matches('\u{feff}')).collect();
    let col = |want: &str| {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(want))
            .ok_or_else(|| bad(0, format!("not a {} trace: no '{want}' column (the header has: {})", cols.name, names.join(", "))))
    };
    let (ti, ii, oi) = (col(cols.time)?, col(cols.input)?, col(cols.output)?);
    let cat_cols = cols.categories.iter().map(|c| col(c)).collect::<Result<Vec<_>, _>>()?;
    let mut set = TraceSet::default();
    let mut category_ids: std::collections::HashMap<String, u32> = Default::default();
    for (n, line) in lines {
        set.lines += 1;
        let fields: Vec<&str> = line.split(',').map(|f| f.trim().trim_matches('"')).collect();
        let field = |i: usize| {
            fields.get(i).copied().ok_or_else(|| bad(n, format!("{} fields where the header has {}", fields.len(), names.len())))
        };
        let t = parse_time(field(ti)?).ok_or_else(|| bad(n, format!("'{}' is not a time", fields[ti])))?;
        let count = |i: usize, what: &str| -> Result<u32, DataError> {
            let v = field(i)?;
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .map(|x| x.round().min(u32::MAX as f64) as u32)
                .ok_or_else(|| bad(n, format!("{what} '{v}' is not a token count")))
        };
        let (input, output) = (count(ii, cols.input)?, count(oi, cols.output)?);
        let category = if cat_cols.is_empty() {
            u32::MAX
        } else {
            let name = cat_cols.iter().map(|&c| field(c)).collect::<Result<Vec<_>, _>>()?.join("/");
            let next = set.categories.len() as u32;
            *category_ids.entry(name.clone()).or_insert_with(|| {
                set.categories.push(name);
                next
            })
        };
        set.rows.push(Row { t, input: input.max(1), output: output.max(1), hashes: (0, 0), category });
    }
    Ok(set)
}

/// Seconds from a number of seconds, or from a date-time `YYYY-MM-DD HH:MM:SS[.fraction]`
/// (the Azure trace's form; `T` between date and time also accepted), counted from 1970.
fn parse_time(s: &str) -> Option<f64> {
    if let Ok(x) = s.parse::<f64>() {
        return x.is_finite().then_some(x);
    }
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let mut t = time.splitn(3, ':');
    let (h, min, sec) = (t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(y, m, day) as f64 * 86400.0 + h * 3600.0 + min * 60.0 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tok() -> Tokenizer {
        Tokenizer::by_name("cl100k_base").unwrap()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn opts(f: &tempfile::NamedTempFile, format: TraceFormat) -> TraceOptions {
        TraceOptions { path: f.path().to_owned(), format, speedup: 1.0, window: None, limit: None, seed: 7 }
    }

    #[test]
    fn azure_date_times_are_seconds() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        let a = parse_time("2023-11-16 18:15:46.6805900").unwrap();
        let b = parse_time("2023-11-16 18:15:47.1805900").unwrap();
        assert!((b - a - 0.5).abs() < 1e-6);
        assert_eq!(parse_time("2023-11-16T00:00:00Z").unwrap(), 1_700_092_800.0);
        assert_eq!(parse_time("12.5"), Some(12.5));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn mooncake_offsets_lengths_and_shared_blocks() {
        let f = file(concat!(
            "{\"timestamp\": 1000, \"input_length\": 1100, \"output_length\": 5, \"hash_ids\": [1, 2, 3]}\n",
            "{\"timestamp\": 1500, \"input_length\": 1300, \"output_length\": 9, \"hash_ids\": [1, 2, 4]}\n",
            "\n",
            "{\"timestamp\": 4000, \"input_length\": 600, \"output_length\": 0, \"hash_ids\": [1, 9]}\n",
        ));
        let t = tok();
        let mut o = opts(&f, TraceFormat::Mooncake);
        o.speedup = 2.0;
        let set = read_trace(&t, &o).unwrap();
        assert_eq!(set.offsets(), vec![0.0, 0.25, 1.5], "ms, rebased to the first, halved");
        assert_eq!(set.span_s(), 1.5);
        let p: Vec<Prompt> = (0..3).map(|i| set.prompt(i)).collect();
        for (p, (input, output)) in p.iter().zip([(1100, 5), (1300, 9), (600, 1)]) {
            assert_eq!((p.input_tokens, p.output_tokens), (input, output));
            assert_eq!(t.count(&p.text), input as usize, "exact in the tokenizer");
        }
        let (a, b) = (t.encode(&p[0].text), t.encode(&p[1].text));
        let shared = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        assert!((1024..1030).contains(&shared), "blocks 1 and 2 shared, block 3 differs: {shared} tokens");
        assert_eq!(&a[..1024], &b[..1024]);
        let shared13 = t.encode(&p[2].text).iter().zip(&a).take_while(|(x, y)| x == y).count();
        assert!((512..520).contains(&shared13), "only block 1 shared: {shared13}");
        // Deterministic.
        assert_eq!(set.prompt(1), read_trace(&t, &o).unwrap().prompt(1));
        // Exact too where the tokenizer adds the first space itself (SentencePiece).
        let dir = tempfile::tempdir().unwrap();
        let spm = Tokenizer::by_name(crate::tokenizer::tests::write_spm_gguf(dir.path(), true).to_str().unwrap()).unwrap();
        let set = read_trace(&spm, &o).unwrap();
        for (i, input) in [1100, 1300, 600].into_iter().enumerate() {
            assert_eq!(spm.count(&set.prompt(i).text), input, "SentencePiece, request {i}");
        }
    }

    #[test]
    fn windows_and_limits_cut_the_trace() {
        let lines: String = (0..10)
            .map(|k| format!("{{\"timestamp\": {}, \"input_length\": 10, \"output_length\": 2, \"hash_ids\": [{k}]}}\n", 5000 + k * 1000))
            .collect();
        let f = file(&lines);
        let mut o = opts(&f, TraceFormat::Mooncake);
        o.window = Some((2.0, 5.0));
        let set = read_trace(&tok(), &o).unwrap();
        assert_eq!(set.offsets(), vec![0.0, 1.0, 2.0]);
        assert_eq!(set.lines, 10);
        o.limit = Some(2);
        assert_eq!(read_trace(&tok(), &o).unwrap().len(), 2);
        o.window = Some((50.0, 60.0));
        assert!(read_trace(&tok(), &o).unwrap_err().to_string().contains("holds none"));
    }

    #[test]
    fn azure_and_burstgpt_csv() {
        let az = file("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.5,374,44\n2023-11-16 18:15:47.0,396,109\n");
        let t = tok();
        let set = read_trace(&t, &opts(&az, TraceFormat::Azure)).unwrap();
        assert_eq!(set.offsets(), vec![0.0, 0.5]);
        let p = set.prompt(1);
        assert_eq!((p.input_tokens, p.output_tokens, t.count(&p.text)), (396, 109, 396));
        assert_ne!(set.prompt(0).text[..40], p.text[..40], "no shared blocks without hash ids");

        let bg = file(
            "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n\
             5,ChatGPT,472,18,490,Conversation log\n\
             45,GPT-4,1087,0,1087,API log\n\
             46,ChatGPT,20,30,50,Conversation log\n",
        );
        let set = read_trace(&t, &opts(&bg, TraceFormat::BurstGpt)).unwrap();
        assert_eq!(set.offsets(), vec![0.0, 40.0, 41.0]);
        let cats: Vec<_> = (0..3).map(|i| set.prompt(i).category.unwrap()).collect();
        assert_eq!(cats, ["ChatGPT/Conversation log", "GPT-4/API log", "ChatGPT/Conversation log"]);
        assert_eq!(set.prompt(1).output_tokens, 1, "a failed request's 0 becomes 1");
    }

    #[test]
    fn malformed_traces_name_file_and_line() {
        let f = file("{\"timestamp\": 1, \"input_length\": 3, \"output_length\": 1}\n{\"timestamp\": \"x\"}\n");
        let e = read_trace(&tok(), &opts(&f, TraceFormat::Mooncake)).unwrap_err().to_string();
        assert!(e.contains(":2: not a Mooncake trace line"), "{e}");
        let az = file("time,in,out\n1,2,3\n");
        let e = read_trace(&tok(), &opts(&az, TraceFormat::Azure)).unwrap_err().to_string();
        assert!(e.contains("no 'TIMESTAMP' column"), "{e}");
        let az = file("TIMESTAMP,ContextTokens,GeneratedTokens\n1,2\n");
        let e = read_trace(&tok(), &opts(&az, TraceFormat::Azure)).unwrap_err().to_string();
        assert!(e.contains(":2: 2 fields where the header has 3"), "{e}");
        let mut o = opts(&az, TraceFormat::Azure);
        o.speedup = 0.0;
        assert!(read_trace(&tok(), &o).unwrap_err().to_string().contains("--trace-speedup"));
    }

    #[test]
    fn lines_split_on_whole_lines_with_their_numbers() {
        let text = "a\nbb\nccc\ndddd\n";
        for n in 1..6 {
            let parts = split_lines(text, n);
            assert_eq!(parts.iter().map(|p| p.1).collect::<String>(), text);
            for (first, slice) in parts {
                if let Some(l) = slice.lines().next() {
                    assert_eq!(text.lines().nth(first), Some(l));
                }
            }
        }
    }
}
