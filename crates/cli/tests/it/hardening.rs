//! Issue 12's defects, each reproduced as it was found: hostile input and unlucky faults give one
//! clear line and the right exit code, never a panic, a hang or a silent success.

use crate::harness::{get, post, run, run_cmd, Sim, BIN};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn one_line_error(r: &crate::harness::Run, code: i32, needle: &str) {
    let err = r.stderr();
    assert_eq!(r.out.status.code(), Some(code), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

#[test]
fn long_one_word_prompts_neither_freeze_nor_panic_the_simulator() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&[]);
    let url = format!("{}/v1/completions", sim.url);
    // Two 200 KB words at once used to stall every route for about a minute.
    let word = "a".repeat(200_000);
    let body = format!(r#"{{"prompt": "{word}", "max_tokens": 2}}"#);
    let t = Instant::now();
    let workers: Vec<_> = (0..2).map(|_| (url.clone(), body.clone())).map(|(u, b)| std::thread::spawn(move || post(&u, &b))).collect();
    std::thread::sleep(Duration::from_millis(50));
    let health = get(&format!("{}/health", sim.url));
    assert!(health.ends_with("ok"), "{health}");
    assert!(t.elapsed() < Duration::from_secs(5), "/health answered in {:?}", t.elapsed());
    for w in workers {
        let (status, body) = w.join().unwrap();
        assert_eq!(status, 200, "{body}");
    }
    // A 1.5 MB word (under the 2 MB body limit, over 32 bytes per token of the 32,768-token
    // context) is refused before it is tokenized, with JSON, not an empty reply.
    let (status, body) = post(&url, &format!(r#"{{"prompt": "{}", "max_tokens": 2}}"#, "a".repeat(3 << 19)));
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("refused without tokenizing"), "{body}");
}

#[test]
fn the_simulator_validates_requests_as_vllm_does() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--max-model-len", "1000"]);
    let url = format!("{}/v1/completions", sim.url);
    let chat = format!("{}/v1/chat/completions", sim.url);
    for (u, body, status, field) in [
        (&url, r#"{"prompt": "hi", "max_tokens": 1000000000}"#, 413, "maximum context length is 1000"),
        (&url, r#"{"prompt": "hi", "temperature": -5}"#, 400, "temperature"),
        (&url, r#"{"prompt": "hi", "top_p": 7}"#, 400, "top_p"),
        (&url, r#"{"prompt": "hi", "max_tokens": 4, "min_tokens": 9}"#, 400, "min_tokens"),
        (&chat, r#"{"messages": [{"role": "user"}]}"#, 400, "messages[0].content"),
    ] {
        let (s, b) = post(u, body);
        assert_eq!(s, status, "{body}: {b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap_or_else(|_| panic!("not JSON: {b}"));
        assert!(v["error"]["message"].as_str().unwrap().contains(field), "{b}");
    }
    // Unknown routes and methods answer JSON too; an oversized body is 413.
    let r = get(&format!("{}/v2/nothing", sim.url));
    assert!(r.starts_with("HTTP/1.1 404") && r.contains("\"error\""), "{r}");
    let r = get(&url);
    assert!(r.starts_with("HTTP/1.1 405") && r.contains("\"error\""), "{r}");
    // 3 MB, past the 2 MB limit: the server may stop reading early, so write errors are fine.
    let status = {
        use std::io::{Read, Write};
        let body = format!(r#"{{"prompt": "{}"}}"#, "b ".repeat(3 << 19));
        let host = sim.url.strip_prefix("http://").unwrap();
        let mut s = std::net::TcpStream::connect(host).unwrap();
        let head = format!("POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(body.as_bytes()));
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_whitespace().nth(1).unwrap_or_default().to_owned()
    };
    assert_eq!(status, "413");
}

#[test]
fn a_dataset_with_a_megabyte_word_does_not_panic_the_client() {
    let _machine = crate::harness::machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.jsonl");
    std::fs::write(&f, format!("{{\"prompt\": \"{}\", \"output_tokens\": 2}}\n", "a".repeat(1 << 20))).unwrap();
    let out = Command::new(BIN)
        .args(["dataset", "--dataset-name", "jsonl", "--dataset-path"])
        .arg(&f)
        .args(["--num-prompts", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("prompts:           1 drawn"));
}

#[test]
fn a_run_where_every_request_failed_exits_non_zero_and_shows_no_zeros() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--error-rate", "1"]);
    let r = run(&sim.url, &["--num-prompts", "5", "--random-input-len", "8", "--random-output-len", "2"]);
    one_line_error(&r, 1, "every request failed (5: http_500 x5)");
    assert!(r.stdout().contains("Mean TTFT (ms):                          n/a"), "{}", r.stdout());
    let j = r.json();
    assert!(j["mean_ttft_ms"].is_null() && j["p99_e2el_ms"].is_null(), "no value is null, not 0");
    assert!(j["summary"]["metrics"]["ttft"]["mean"].is_null());
    assert_eq!(j["failed"], 5);
    // Some failures pass by default, and fail the gate with --max-error-rate.
    let sim = Sim::start(&["--error-rate", "0.5", "--ttft-ms", "1", "--itl-ms", "1"]);
    let flags = ["--num-prompts", "40", "--random-input-len", "8", "--random-output-len", "2"];
    run(&sim.url, &flags).assert_ok();
    let r = run(&sim.url, &[&flags[..], &["--max-error-rate", "5%"]].concat());
    one_line_error(&r, 3, "above --max-error-rate 5.0%");
    assert!(r.file("json").exists(), "the results are written first");
}

#[test]
fn bad_urls_paths_durations_and_flags_are_refused_clearly() {
    let _machine = crate::harness::machine_shared();
    one_line_error(&run("http://127.0.0.1:99999", &[]), 2, "port 99999 is not a valid port");
    for (flags, needle) in [
        (&["--request-timeout", "1e20"][..], "invalid --request-timeout '100000000000000000000'"),
        (&["--duration", "1e20", "--max-concurrency", "2"][..], "invalid --duration"),
        (&["--grace-period", "1e20"][..], "invalid --grace-period"),
        (&["--grace-period=-1"][..], "must be a non-negative number of seconds"),
        (&["--result-filename", "../../x"][..], "without directories"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args(["run", "--base-url", "http://127.0.0.1:9", "--disable-tqdm", "--num-prompts", "1", "--result-dir"])
            .arg(dir.path())
            .args(flags)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(needle) && !err.contains("panicked"), "{flags:?}: {err}");
    }
    for flags in [&["run", "--workers", "0"][..], &["--log", "foo", "run"][..]] {
        let out = Command::new(BIN).args(flags).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let o = Command::new(BIN)
        .args(["sweep", "--base-url", "http://127.0.0.1:9", "--concurrencies", "1", "--cooldown", "1e20"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn passwords_in_the_url_never_reach_the_files() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let with_pw = sim.url.replace("http://", "http://bob:hunter2@");
    let r = run(&with_pw, &["--num-prompts", "2", "--random-input-len", "8", "--random-output-len", "2"]);
    let j = r.assert_ok().json();
    assert_eq!(j["spec"]["base_url"], sim.url.as_str());
    for ext in ["json", "csv", "records.jsonl"] {
        assert!(!std::fs::read_to_string(r.file(ext)).unwrap().contains("hunter2"), "{ext}");
    }
    assert!(!r.stderr().contains("hunter2") && !r.stdout().contains("hunter2"));
}

#[test]
fn a_closed_stdout_ends_the_output_not_the_run() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let (mut c, dir) = run_cmd(&sim.url, &["--num-prompts", "5", "--random-input-len", "8", "--random-output-len", "2"]);
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    // The reader is gone (like `| head -1`); the rest of the summary meets a broken pipe.
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    assert!(dir.path().join("r.json").exists());
}

#[test]
fn too_few_file_descriptors_for_the_concurrency_is_refused_up_front() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&[]);
    let cmd = format!("ulimit -n 256 && exec {BIN} run --base-url {} --max-concurrency 1000 --num-prompts 2000 --disable-tqdm", sim.url);
    let out = Command::new("sh").args(["-c", &cmd]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs about 1032 open files") && err.contains("ulimit -n"), "{err}");
}

#[test]
fn ctrl_c_during_the_pre_flight_check_stops_at_once() {
    let _machine = crate::harness::machine_shared();
    // A server that accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let (mut c, _dir) = run_cmd(&url, &["--num-prompts", "2"]);
    let child = c.stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let t = Instant::now();
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(t.elapsed() < Duration::from_secs(3), "stopped in {:?}", t.elapsed());
    drop(silent);
}

#[test]
fn serve_takes_ipv6_hosts_with_or_without_brackets_and_refuses_open_binds() {
    let _machine = crate::harness::machine_shared();
    let out = Command::new(BIN).args(["serve", "--sim", "--host", "0.0.0.0", "--port", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without --api-key"));
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here: skipping the ::1 half");
        return;
    }
    for host in ["::1", "[::1]"] {
        let mut child = Command::new(BIN).args(["serve", "--sim", "--host", host, "--port", "0"]).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(line.contains("http://[::1]:"), "{host}: {line}");
    }
}

#[test]
fn a_second_ctrl_c_cuts_the_grace_period_short() {
    let _machine = crate::harness::machine_shared();
    // Every request takes ~10 s; the grace period would wait a minute for them.
    let sim = Sim::start(&["--ttft-ms", "5", "--itl-ms", "100"]);
    let (mut c, dir) =
        run_cmd(&sim.url, &["--num-prompts", "8", "--max-concurrency", "4", "--random-output-len", "100", "--grace-period", "60"]);
    let child = c.stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let kill = || assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    kill();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(t.elapsed() < Duration::from_secs(5), "the second signal stopped it in {:?}", t.elapsed());
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(j["summary"]["failures"]["cancelled"], 4, "the four in flight are recorded as cancelled");
}

#[test]
fn a_full_disk_keeps_the_summary_and_whole_record_lines() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "0", "--itl-ms", "0"]);
    let dir = tempfile::tempdir().unwrap();
    // 256 blocks of 512 bytes per file: the records outgrow it, the summary (with vLLM's
    // per-request latency arrays) does not. SIGXFSZ is ignored, so writes fail with EFBIG as on a
    // full disk.
    let cmd = format!(
        "trap '' XFSZ; ulimit -f 256 && exec {BIN} run --base-url {} --backend vllm --num-prompts 1000 --random-input-len 8 \
         --random-output-len 2 --max-concurrency 16 --disable-tqdm --result-filename r --result-dir {}",
        sim.url,
        dir.path().display()
    );
    let out = Command::new("sh").args(["-c", &cmd]).output().unwrap();
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(stdout.contains("Serving Benchmark Result"), "the summary still reaches the console: {stdout}");
    assert_eq!(err.matches("error:").count(), 1, "the error is printed once: {err}");
    assert!(err.contains("r.records.jsonl") && err.contains("the file holds the first"), "{err}");
    let text = std::fs::read_to_string(dir.path().join("r.records.jsonl")).unwrap();
    assert!(text.ends_with('\n'), "the records end on a whole line");
    let n = crate::harness::read_records(&dir.path().join("r.records.jsonl")).len();
    assert!(n > 10 && n < 1000, "{n} records fit");
    assert!(err.contains(&format!("the file holds the first {n} of ")), "how far it got: {err}");
    assert!(err.contains("1000 requests were measured"), "{err}");
    let j = crate::harness::validated(&dir.path().join("r.json"));
    assert_eq!(j["completed"], 1000, "the summary counts every request, saved or not");
}

#[test]
fn a_rerun_never_leaves_a_mixed_pair_and_readers_refuse_one() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let flags = ["--num-prompts", "6", "--random-input-len", "8", "--random-output-len", "2"];
    let a = run(&sim.url, &flags);
    let b = run(&sim.url, &flags);
    let (ja, jb) = (a.assert_ok().json(), b.assert_ok().json());
    assert_ne!(ja["run_id"], jb["run_id"], "every run has its own id");
    assert_eq!(crate::harness::records_run_id(&a.file("records.jsonl")), ja["run_id"].as_str().unwrap());
    // b's records beside a's summary: compare refuses the pair.
    std::fs::copy(b.file("records.jsonl"), a.file("records.jsonl")).unwrap();
    let out = Command::new(BIN).arg("compare").arg(a.file("json")).arg(b.file("json")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not one run's files"), "{err}");
    // A rerun under the same name removes the old summary before it starts: killed early, it
    // leaves only its own records.
    let mut rerun = Command::new(BIN)
        .args(["run", "--base-url", &sim.url, "--disable-tqdm", "--result-filename", "r", "--result-dir"])
        .arg(a.dir.path())
        .args(["--num-prompts", "100000", "--max-concurrency", "2", "--random-input-len", "8", "--random-output-len", "50"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    rerun.kill().unwrap();
    rerun.wait().unwrap();
    assert!(!a.file("json").exists() && !a.file("csv").exists(), "the old summary is gone");
    assert!(!crate::harness::read_records(&a.file("records.jsonl")).is_empty());
}

#[test]
fn an_endless_line_is_an_overflow_not_unbounded_memory() {
    let _machine = crate::harness::machine_shared();
    // A server that answers every completion with one endless SSE line (64 MB, then it closes).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in listener.incoming().take(8) {
            let Ok(mut s) = s else { continue };
            let mut head = [0u8; 4096];
            let n = s.read(&mut head).unwrap_or(0);
            if head[..n].starts_with(b"GET") {
                let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: ");
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..64 {
                if s.write_all(&chunk).is_err() {
                    break;
                }
            }
        }
    });
    let r = run(
        &url,
        &["--model", "m", "--num-prompts", "2", "--max-concurrency", "1", "--max-response-bytes", "1048576", "--max-error-rate", "100%"],
    );
    let err = r.stderr();
    assert_eq!(r.out.status.code(), Some(1), "every request failed: {err}");
    let j = r.json();
    assert_eq!(j["summary"]["failures"]["overflow"], 2, "{j}");
    let rss = j["client"]["peak_rss_bytes"].as_u64().unwrap();
    assert!(rss < 200 << 20, "the client stayed small: {} MB", rss >> 20);
}

#[test]
fn log_levels_show_phases_and_failures() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1", "--error-rate", "0.5"]);
    let flags = ["--num-prompts", "8", "--random-input-len", "8", "--random-output-len", "2", "--warmup-requests", "1"];
    let info = run(&sim.url, &[&flags[..], &["--log", "info"]].concat());
    let err = info.stderr();
    for phase in ["dataset loaded", "pre-flight passed", "warm-up", "measuring", "run finished"] {
        assert!(err.contains(phase), "--log info names the phase '{phase}': {err}");
    }
    assert!(!err.contains("request failed"), "failures are debug events");
    let debug = run(&sim.url, &[&flags[..], &["--log", "debug"]].concat());
    assert!(debug.stderr().contains("request failed") && debug.stderr().contains("kind=http_500"), "{}", debug.stderr());
}

#[test]
fn sigkill_leaves_records_that_parse_line_by_line() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "0", "--itl-ms", "0"]);
    for round in 0..4 {
        let (mut c, dir) = run_cmd(
            &sim.url,
            &["--num-prompts", "200000", "--max-concurrency", "32", "--random-input-len", "8", "--random-output-len", "4"],
        );
        let mut child = c.stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(600 + 150 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        let text = std::fs::read_to_string(dir.path().join("r.records.jsonl")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 10, "round {round}: {} lines", lines.len());
        // Every line but a torn last one is a whole record (the readers skip a torn last line).
        let whole = if text.ends_with('\n') { lines.len() } else { lines.len() - 1 };
        for (i, l) in lines[..whole].iter().enumerate() {
            assert!(serde_json::from_str::<serde_json::Value>(l).is_ok(), "round {round}, line {}: {l}", i + 1);
        }
        assert!(!dir.path().join("r.json").exists(), "killed before the summary");
    }
}

#[test]
fn a_server_killed_mid_run_gives_counted_failures_not_a_hang() {
    let _machine = crate::harness::machine_shared();
    // Requests of ~0.5 s, 8 at a time: the kill at ~1.2 s finds some done and some in flight.
    let sim = Sim::start(&["--ttft-ms", "5", "--itl-ms", "10"]);
    let (mut c, dir) = run_cmd(
        &sim.url,
        &[
            "--num-prompts",
            "40",
            "--max-concurrency",
            "8",
            "--random-input-len",
            "8",
            "--random-output-len",
            "50",
            "--request-timeout",
            "5",
        ],
    );
    let child = c.stderr(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    drop(sim); // kills the server
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "the run ended in {:?}", t.elapsed());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    let j = crate::harness::validated(&dir.path().join("r.json"));
    let (ok, failed) = (j["completed"].as_u64().unwrap(), j["failed"].as_u64().unwrap());
    assert_eq!(ok + failed, 40, "every request is accounted for");
    assert!(ok > 0 && failed > 0, "{ok} completed, {failed} failed");
    let kinds = j["summary"]["failures"].as_object().unwrap();
    assert!(kinds.keys().all(|k| ["disconnect", "connection"].contains(&k.as_str())), "{kinds:?}");
    assert_eq!(crate::harness::read_records(&dir.path().join("r.records.jsonl")).len(), 40);
    // Some requests failed, none beyond a threshold was asked for: the run itself succeeds.
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// Issue 20: `serve` took 1–6 s to exit on Ctrl-C with streams still open. Open streams now get
/// one second, then are dropped: a server with a stream stalled for a minute exits at once.
#[test]
fn serve_exits_promptly_on_ctrl_c_with_a_stream_stalled() {
    use std::io::{Read, Write};
    let _m = crate::harness::machine_shared();
    let mut child = Command::new(BIN)
        .args(["serve", "--sim", "--port", "0", "--stall-rate", "1", "--stall-ms", "60000", "--itl-ms", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut banner).unwrap();
    let host = banner.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let mut s = std::net::TcpStream::connect(&host).unwrap();
    let body = r#"{"model":"inferbench-sim","prompt":"hi","max_tokens":50,"stream":true}"#;
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // The stream has started (some tokens arrived) and is stalled for a minute.
    let mut first = [0u8; 256];
    assert!(s.read(&mut first).unwrap() > 0);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("serve did not exit within 10 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(t.elapsed() < Duration::from_secs(3), "exit took {:?}", t.elapsed());
}
