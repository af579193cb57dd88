//! llama-bench's output formats for the engine's llama-bench tests: the Markdown table
//! (`| model | size | params | backend | threads | test | t/s |`), CSV, JSON, JSONL and SQL with
//! llama-bench's field names and value spellings, so scripts written for llama-bench read ours;
//! and the side-by-side table of `--compare-with`.

use inferbench_core::engine_bench::LlamaBenchTest;
use std::fmt::Write as _;

/// The output formats llama-bench's `-o` takes.
pub const FORMATS: [&str; 5] = ["md", "csv", "json", "jsonl", "sql"];

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Real,
}

/// The fields written, in llama-bench's order (those of its fields that mean something here).
const FIELDS: [(&str, Kind); 17] = [
    ("build_commit", Kind::Text),
    ("cpu_info", Kind::Text),
    ("backends", Kind::Text),
    ("model_filename", Kind::Text),
    ("model_type", Kind::Text),
    ("model_size", Kind::Int),
    ("model_n_params", Kind::Int),
    ("n_batch", Kind::Int),
    ("n_threads", Kind::Int),
    ("n_prompt", Kind::Int),
    ("n_gen", Kind::Int),
    ("n_depth", Kind::Int),
    ("test_time", Kind::Text),
    ("avg_ns", Kind::Int),
    ("stddev_ns", Kind::Int),
    ("avg_ts", Kind::Real),
    ("stddev_ts", Kind::Real),
];

/// A field's value as llama-bench spells it (reals with six decimals, C's `%f`).
fn value(t: &LlamaBenchTest, field: &str) -> String {
    match field {
        "build_commit" => t.build_commit.clone(),
        "cpu_info" => t.cpu_info.clone(),
        "backends" => t.backends.clone(),
        "model_filename" => t.model_filename.clone(),
        "model_type" => t.model_type.clone(),
        "model_size" => t.model_size.to_string(),
        "model_n_params" => t.model_n_params.to_string(),
        "n_batch" => t.n_batch.to_string(),
        "n_threads" => t.n_threads.to_string(),
        "n_prompt" => t.n_prompt.to_string(),
        "n_gen" => t.n_gen.to_string(),
        "n_depth" => t.n_depth.to_string(),
        "test_time" => t.test_time.clone(),
        "avg_ns" => t.avg_ns.to_string(),
        "stddev_ns" => t.stddev_ns.to_string(),
        "avg_ts" => format!("{:.6}", t.avg_ts),
        "stddev_ts" => format!("{:.6}", t.stddev_ts),
        _ => String::new(),
    }
}

/// Renders `tests` in `format` (one of [`FORMATS`]); `None` for an unknown format.
pub fn render(tests: &[LlamaBenchTest], format: &str) -> Option<String> {
    Some(match format {
        "md" => markdown(tests),
        "csv" => csv(tests),
        "json" => json(tests),
        "jsonl" => jsonl(tests),
        "sql" => sql(tests),
        _ => return None,
    })
}

fn size(bytes: u64) -> String {
    if bytes < 1 << 30 {
        format!("{:.2} MiB", bytes as f64 / 1048576.0)
    } else {
        format!("{:.2} GiB", bytes as f64 / 1073741824.0)
    }
}

fn params(n: u64) -> String {
    if n < 1_000_000_000 {
        format!("{:.2} M", n as f64 / 1e6)
    } else {
        format!("{:.2} B", n as f64 / 1e9)
    }
}

/// Pads like C's `%*s`: a negative width aligns left. Widths count characters, not bytes.
fn pad(s: &str, width: i32) -> String {
    let w = width.unsigned_abs() as usize;
    if width < 0 {
        format!("{s:<w$}")
    } else {
        format!("{s:>w$}")
    }
}

/// llama-bench's Markdown table (its column widths; the CPU backend shows `threads`, not `ngl`).
pub fn markdown(tests: &[LlamaBenchTest]) -> String {
    let cols: [(&str, i32); 7] =
        [("model", -30), ("size", 10), ("params", 10), ("backend", -10), ("threads", 7), ("test", 15), ("t/s", 20)];
    let mut out = String::from("|");
    for (name, w) in cols {
        let _ = write!(out, " {} |", pad(name, w));
    }
    out.push_str("\n|");
    for (_, w) in cols {
        let _ = write!(out, " {}{} |", "-".repeat(w.unsigned_abs() as usize - 1), if w > 0 { ":" } else { "-" });
    }
    out.push('\n');
    for t in tests {
        let cells = [
            t.model_type.clone(),
            size(t.model_size),
            params(t.model_n_params),
            t.backends.clone(),
            t.n_threads.to_string(),
            t.name(),
            format!("{:.2} ± {:.2}", t.avg_ts, t.stddev_ts),
        ];
        out.push('|');
        for ((_, w), c) in cols.iter().zip(cells) {
            let _ = write!(out, " {} |", pad(&c, *w));
        }
        out.push('\n');
    }
    if let Some(t) = tests.first() {
        let _ = writeln!(out, "\nbuild: {}", if t.build_commit.is_empty() { "unknown" } else { &t.build_commit });
    }
    out
}

fn csv(tests: &[LlamaBenchTest]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = FIELDS.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(",");
    out.push('\n');
    for t in tests {
        out.push_str(&FIELDS.iter().map(|(f, _)| quote(&value(t, f))).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

fn json(tests: &[LlamaBenchTest]) -> String {
    let mut s = serde_json::to_string_pretty(tests).unwrap_or_else(|_| "[]".into());
    s.push('\n');
    s
}

fn jsonl(tests: &[LlamaBenchTest]) -> String {
    tests.iter().filter_map(|t| serde_json::to_string(t).ok()).map(|l| l + "\n").collect()
}

fn sql(tests: &[LlamaBenchTest]) -> String {
    let mut out = String::from("CREATE TABLE IF NOT EXISTS llama_bench (\n");
    for (i, (f, k)) in FIELDS.iter().enumerate() {
        let ty = match k {
            Kind::Text => "TEXT",
            Kind::Int => "INTEGER",
            Kind::Real => "REAL",
        };
        let _ = writeln!(out, "  {f} {ty}{}", if i + 1 < FIELDS.len() { "," } else { "" });
    }
    out.push_str(");\n\n");
    let names = FIELDS.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ");
    for t in tests {
        let values = FIELDS.iter().map(|(f, _)| format!("'{}'", value(t, f).replace('\'', "''"))).collect::<Vec<_>>().join(", ");
        let _ = writeln!(out, "INSERT INTO llama_bench ({names}) VALUES ({values});");
    }
    out
}

/// Reads llama-bench's `-o json` (an array) or `-o jsonl` (one object per line) output.
pub fn parse(text: &str) -> Result<Vec<LlamaBenchTest>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).map_err(|e| format!("not llama-bench JSON output: {e}"));
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        out.push(serde_json::from_str(line).map_err(|e| format!("line {}: not llama-bench JSONL output: {e}", i + 1))?);
    }
    if out.is_empty() {
        return Err("no llama-bench tests in it (expected the output of llama-bench -o json or -o jsonl)".into());
    }
    Ok(out)
}

/// Ours beside theirs, test by test (matched on prompt, generated, depth and threads): t/s of
/// each and ours / theirs. Tests only one side ran show a dash on the other.
pub fn compare(ours: &[LlamaBenchTest], theirs: &[LlamaBenchTest], their_name: &str) -> String {
    let key = |t: &LlamaBenchTest| (t.n_prompt, t.n_gen, t.n_depth, t.n_threads);
    let ts = |t: &LlamaBenchTest| format!("{:.2} ± {:.2}", t.avg_ts, t.stddev_ts);
    let mut out = String::new();
    if let (Some(a), Some(b)) = (ours.first(), theirs.first()) {
        let _ = writeln!(out, "inferbench: {} ({})", a.model_type, a.model_filename);
        let _ = writeln!(out, "{their_name}: {} ({}), build {}\n", b.model_type, b.model_filename, b.build_commit);
    }
    let _ = writeln!(
        out,
        "| {:<15} | {:>7} | {:>20} | {:>20} | {:>6} |",
        "test",
        "threads",
        "inferbench t/s",
        format!("{their_name} t/s"),
        "ratio"
    );
    let _ = writeln!(out, "| {} | {}: | {}: | {}: | {}: |", "-".repeat(15), "-".repeat(6), "-".repeat(19), "-".repeat(19), "-".repeat(5));
    let mut rows: Vec<(Option<&LlamaBenchTest>, Option<&LlamaBenchTest>)> =
        ours.iter().map(|o| (Some(o), theirs.iter().find(|t| key(t) == key(o)))).collect();
    rows.extend(theirs.iter().filter(|t| !ours.iter().any(|o| key(o) == key(t))).map(|t| (None, Some(t))));
    for (o, t) in rows {
        let Some(any) = o.or(t) else { continue };
        let ratio = match (o, t) {
            (Some(o), Some(t)) if t.avg_ts > 0.0 => format!("{:.2}", o.avg_ts / t.avg_ts),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {:<15} | {:>7} | {:>20} | {:>20} | {:>6} |",
            any.name(),
            any.n_threads,
            o.map_or("-".into(), ts),
            t.map_or("-".into(), ts),
            ratio
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(p: usize, g: usize, d: usize, ts: f64) -> LlamaBenchTest {
        LlamaBenchTest {
            build_commit: "abc1234".into(),
            cpu_info: "Test CPU".into(),
            backends: "CPU".into(),
            model_filename: "m.gguf".into(),
            model_type: "llama 135M Q4_1".into(),
            model_size: 90_000_000,
            model_n_params: 134_515_008,
            n_batch: 512,
            n_threads: 2,
            n_prompt: p,
            n_gen: g,
            n_depth: d,
            test_time: "2026-12-04T00:00:00Z".into(),
            avg_ts: ts,
            stddev_ts: 1.5,
            ..Default::default()
        }
    }

    #[test]
    fn markdown_reads_like_llama_bench() {
        let md = markdown(&[test(512, 0, 0, 912.345), test(0, 128, 512, 88.5)]);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| model                          |       size |     params | backend    | threads |            test |                  t/s |"
        );
        assert_eq!(
            lines[1],
            "| ------------------------------ | ---------: | ---------: | ---------- | ------: | --------------: | -------------------: |"
        );
        assert_eq!(
            lines[2],
            "| llama 135M Q4_1                |  85.83 MiB |   134.52 M | CPU        |       2 |           pp512 |        912.35 ± 1.50 |"
        );
        assert!(lines[3].contains("|    tg128 @ d512 |         88.50 ± 1.50 |"), "{}", lines[3]);
        assert_eq!(lines[5], "build: abc1234");
    }

    #[test]
    fn json_and_jsonl_read_back() {
        let tests = vec![test(512, 0, 0, 900.0), test(0, 128, 0, 80.0)];
        assert_eq!(parse(&json(&tests)).unwrap(), tests);
        assert_eq!(parse(&jsonl(&tests)).unwrap(), tests);
        let broken = format!("{}not json\n", jsonl(&tests[..1]));
        assert!(parse(&broken).unwrap_err().contains("line 2"));
        assert!(parse("").is_err());
    }

    #[test]
    fn csv_and_sql_quote_like_llama_bench() {
        let mut t = test(512, 0, 0, 900.0);
        t.cpu_info = "It's \"quoted\"".into();
        let c = csv(std::slice::from_ref(&t));
        assert!(c.starts_with("build_commit,cpu_info,backends,"), "{c}");
        assert!(c.contains("\"It's \"\"quoted\"\"\""), "{c}");
        assert!(c.contains(",\"900.000000\",\"1.500000\"\n"), "{c}");
        let s = sql(&[t]);
        assert!(s.starts_with("CREATE TABLE IF NOT EXISTS llama_bench (\n  build_commit TEXT,"), "{s}");
        assert!(s.contains("avg_ts REAL,\n  stddev_ts REAL\n);"), "{s}");
        assert!(s.contains("'It''s \"quoted\"'"), "{s}");
    }

    #[test]
    fn compare_pairs_tests_and_names_the_unmatched() {
        let ours = vec![test(512, 0, 0, 1000.0), test(0, 128, 0, 90.0)];
        let theirs = vec![test(512, 0, 0, 800.0), test(0, 128, 512, 70.0)];
        let c = compare(&ours, &theirs, "llama.cpp");
        assert!(c.contains("| pp512           |       2 |       1000.00 ± 1.50 |        800.00 ± 1.50 |   1.25 |"), "{c}");
        assert!(c.contains("| tg128           |       2 |         90.00 ± 1.50 |                    - |      - |"), "{c}");
        assert!(c.contains("| tg128 @ d512    |       2 |                    - |         70.00 ± 1.50 |      - |"), "{c}");
    }
}
