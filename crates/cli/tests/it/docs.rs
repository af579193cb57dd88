//! What the README and `--help` tell a newcomer to type, typed (issue 20): every README command
//! block and every subcommand's "Examples" run as written, in a fresh directory, against what
//! the text says to start. A README block says how above it, in a comment:
//! `<!-- readme-test: sim -->` (against `inferbench serve --sim`, whose URL replaces
//! `http://127.0.0.1:8000`), `engine` (against `inferbench serve` with the default model), `run`
//! (as written; `serve` lines until they listen), or `skip: why`. A block without one fails.

use crate::harness::{machine_alone, Sim, BIN};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The README's own address for a server it tells you to start.
const README_URL: &str = "http://127.0.0.1:8000";

/// A shell with the built `inferbench` first on the PATH, in `dir`.
fn shell(line: &str, dir: &Path) -> Command {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new("sh");
    c.arg("-c").arg(line).current_dir(dir).env("PATH", path).env_remove("OPENAI_API_KEY");
    c
}

/// Runs one documented command line: to completion (exit 0 within `limit`), or, for `serve`,
/// until it says it is listening.
fn run_line(line: &str, dir: &Path, limit: Duration) {
    let start = Instant::now();
    if line.starts_with("inferbench serve") || line.starts_with("inferbench api") {
        let line = line.replace("--port 8000", "--port 0").replace("--port 8080", "--port 0");
        let mut child = shell(&format!("exec {line}"), dir).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut banner).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(banner.contains("listening on http://127.0.0.1:"), "`{line}` did not start: {banner:?}");
        eprintln!("ok ({:.1} s, listened): {line}", start.elapsed().as_secs_f64());
        return;
    }
    let mut child = shell(line, dir).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = String::new();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("`{line}` took over {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = reader.join().unwrap();
    assert!(status.success(), "`{line}` exited {status}:\n{err}");
    eprintln!("ok ({:.1} s): {line}", start.elapsed().as_secs_f64());
}

/// The command lines of a block: continuations joined, comments and blank lines dropped, and
/// whether the line is marked `# minutes`.
fn commands(block: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for raw in block.lines() {
        let line = raw.trim();
        if let Some(part) = line.strip_suffix('\\') {
            cur.push_str(part.trim_end());
            cur.push(' ');
            continue;
        }
        cur.push_str(line);
        let full = std::mem::take(&mut cur);
        let (cmd, comment) = full.split_once(" #").map_or((full.as_str(), ""), |(c, k)| (c, k));
        let cmd = cmd.trim();
        if !cmd.is_empty() && !cmd.starts_with('#') {
            out.push((cmd.to_owned(), comment.trim() == "minutes"));
        }
    }
    out
}

/// A line too slow to run here is still checked: each `--flag` it uses is one of the
/// subcommand's, and each file it names exists.
fn check_line(line: &str, help: &str, root: &Path) {
    for word in line.split_whitespace() {
        if let Some(flag) = word.strip_prefix("--").map(|f| f.split('=').next().unwrap_or(f)) {
            assert!(help.contains(&format!("--{flag} ")) || help.contains(&format!("--{flag}\n")), "`{line}`: no flag --{flag}");
        } else if word.ends_with(".yaml") {
            assert!(root.join(word).exists(), "`{line}`: no file {word}");
        }
    }
}

fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A README block against `inferbench api`: one is started (its own store and results) on a
/// free port standing for `http://localhost:8080`; its `inferbench api` line is that one; each
/// `curl` must exit 0 with an answer that carries no error.
fn run_api_block(block: &str, dir: &Path) {
    let api = crate::api::Api::start(dir, &[]);
    for (cmd, _) in commands(block) {
        if cmd.starts_with("inferbench api") {
            continue;
        }
        assert!(cmd.starts_with("curl "), "an api block runs curl: {cmd}");
        let cmd = cmd.replace("http://localhost:8080", &api.url);
        let o = shell(&cmd, dir).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && !out.contains("\"error\":\""), "`{cmd}`: {out}");
        eprintln!("ok: {cmd}");
    }
}

#[test]
fn every_readme_command_block_runs_as_written() {
    let _m = machine_alone();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The example configs, as a checkout has them.
    std::fs::create_dir(dir.path().join("config")).unwrap();
    for e in std::fs::read_dir(repo_root().join("config")).unwrap().flatten() {
        std::fs::copy(e.path(), dir.path().join("config").join(e.file_name())).unwrap();
    }
    let sim = Sim::start(&[]);
    let mut engine: Option<Sim> = None;
    let mut lines = readme.lines().peekable();
    let mut last_text = "";
    let (mut ran, mut skipped) = (0, 0);
    while let Some(line) = lines.next() {
        if !line.starts_with("```") {
            if !line.trim().is_empty() {
                last_text = line;
            }
            continue;
        }
        let lang = line.trim_start_matches('`').trim();
        let mut block = String::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            block.push_str(l);
            block.push('\n');
        }
        if lang == "rust" {
            // Compiled and run as crates/bench/examples/library.rs by crates/bench/tests/example.rs.
            continue;
        }
        let mode = last_text
            .strip_prefix("<!-- readme-test:")
            .and_then(|m| m.strip_suffix("-->"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("README block without a `<!-- readme-test: ... -->` line above it:\n{block}"));
        let url = match mode {
            "sim" => Some(sim.url.clone()),
            "engine" => Some(engine.get_or_insert_with(|| Sim::serve(&["--max-num-seqs", "4"])).url.clone()),
            "run" => None,
            "api" => {
                run_api_block(&block, dir.path());
                ran += 1;
                last_text = "";
                continue;
            }
            m if m.starts_with("skip:") && m.len() > 10 => {
                skipped += 1;
                continue;
            }
            m => panic!("unknown readme-test mode '{m}' (sim, engine, run or skip: reason)"),
        };
        for (cmd, _) in commands(&block) {
            let cmd = url.as_ref().map_or(cmd.clone(), |u| cmd.replace(README_URL, u));
            run_line(&cmd, dir.path(), Duration::from_secs(240));
            ran += 1;
        }
        last_text = "";
    }
    assert!(ran >= 15 && skipped >= 2, "ran {ran} README commands, skipped {skipped} blocks");
}

#[test]
fn every_help_example_runs_as_written() {
    let _m = machine_alone();
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(&[]);
    std::fs::create_dir(dir.path().join("config")).unwrap();
    for f in [
        "benchmark.yaml",
        "quantization.yaml",
        "speculative.yaml",
        "batch-sizes.yaml",
        "explore-sim.yaml",
        "explore-embedded.yaml",
        "llama-bench.yaml",
    ] {
        std::fs::copy(repo_root().join("config").join(f), dir.path().join("config").join(f)).unwrap();
    }
    // Other tools' result files, as `import`'s examples name them.
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/tests/fixtures/peer-results");
    for (sub, files) in [
        ("vllm", &["vllm.json"][..]),
        ("aiperf", &["profile_export_aiperf.json", "profile_export.jsonl"][..]),
        ("guidellm", &["benchmarks.json"][..]),
        ("inference-perf", &["summary_lifecycle_metrics.json", "config.yaml"][..]),
    ] {
        std::fs::create_dir_all(dir.path().join("peer").join(sub)).unwrap();
        for f in files {
            std::fs::copy(peer.join(sub).join(f), dir.path().join("peer").join(sub).join(f)).unwrap();
        }
    }
    let mut ran = 0;
    // In this order, later examples read what earlier ones wrote.
    for cmd in ["run", "sweep", "plan", "compare", "dataset", "serve", "model", "demo", "engine", "api", "import", "explore"] {
        let out = Command::new(BIN).args([cmd, "--help"]).env("COLUMNS", "100").output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("\nExit codes: 0 success"), "`{cmd} --help` does not give the exit codes");
        let examples = help.split("\nExamples").nth(1).unwrap_or_else(|| panic!("`{cmd} --help` has no Examples"));
        let block: String = examples.lines().skip(1).take_while(|l| l.starts_with("  ")).map(|l| format!("{l}\n")).collect();
        let lines = commands(&block);
        assert!(lines.len() >= 2, "`{cmd} --help` has fewer than two examples:\n{block}");
        for (line, slow) in lines {
            assert!(line.starts_with(&format!("inferbench {cmd}")), "an example of {cmd} runs something else: {line}");
            if slow {
                check_line(&line, &help, dir.path());
            } else {
                run_line(&line.replace(README_URL, &sim.url), dir.path(), Duration::from_secs(240));
                ran += 1;
            }
        }
    }
    assert!(ran >= 20, "ran {ran} help examples");
}
