//! Timeouts end every request: servers that accept and never answer, that send a head and stall,
//! that stop mid-stream, and a listener whose queue is full. Each run ends within its timeouts
//! plus a second, with failures of the right kind.

use crate::harness::run;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How the test server misbehaves on a generation request (`/v1/models` always answers).
#[derive(Clone, Copy)]
enum Mode {
    /// Reads the request and never answers.
    Silent,
    /// Sends a streaming head, then nothing.
    HeadThenStall,
    /// Sends a head and two tokens, then nothing.
    PartThenStall,
}

/// Reads one request head and its body; the request line, or `None` when the peer closed.
fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(head.lines().next().unwrap_or_default().to_owned())
}

fn misbehaving_server(mode: Mode) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                while let Some(line) = read_request(&mut s) {
                    if line.starts_with("GET /v1/models") {
                        let body = r#"{"object":"list","data":[{"id":"m","object":"model"}]}"#;
                        let _ =
                            write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                        continue;
                    }
                    if !line.contains("/v1/completions") {
                        let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                        continue;
                    }
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
                    match mode {
                        Mode::Silent => {}
                        Mode::HeadThenStall => {
                            let _ = s.write_all(head.as_bytes());
                        }
                        Mode::PartThenStall => {
                            let _ = s.write_all(head.as_bytes());
                            for t in ["a", "b"] {
                                let data = format!("data: {{\"choices\":[{{\"text\":\"{t}\"}}]}}\n\n");
                                let _ = write!(s, "{:x}\r\n{data}\r\n", data.len());
                            }
                        }
                    }
                    // Hold the connection until the client gives up on it.
                    let mut sink = [0u8; 1024];
                    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
                    return;
                }
            });
        }
    });
    url
}

const FLAGS: [&str; 8] = ["--random-input-len", "8", "--random-output-len", "4", "--num-prompts", "3", "--max-concurrency", "3"];

fn timed(url: &str, extra: &[&str]) -> (crate::harness::Run, Duration) {
    let t = Instant::now();
    let r = run(url, &[&FLAGS[..], extra].concat());
    (r, t.elapsed())
}

#[test]
fn each_timeout_ends_its_requests_in_time_and_is_counted_by_kind() {
    let _machine = crate::harness::machine_shared();
    let cases: [(Mode, &[&str], &str, f64); 3] = [
        (Mode::Silent, &["--request-timeout", "1"], "timeout", 1.0),
        (Mode::HeadThenStall, &["--idle-timeout", "1"], "idle_timeout", 1.0),
        (Mode::PartThenStall, &["--idle-timeout", "1", "--request-timeout", "60"], "idle_timeout", 1.0),
    ];
    for (mode, flags, kind, limit) in cases {
        let url = misbehaving_server(mode);
        let (r, took) = timed(&url, flags);
        assert_eq!(r.out.status.code(), Some(1), "every request failed: exit 1\n{}", r.stderr());
        assert!(took.as_secs_f64() < limit + 1.0, "{kind}: the run took {took:?} with a {limit} s timeout");
        let j = r.json();
        assert_eq!(j["summary"]["failures"][kind], 3, "{kind}: {}", j["summary"]["failures"]);
        assert!(r.stderr().contains(kind), "the failure kinds are named on stderr: {}", r.stderr());
        if kind == "idle_timeout" {
            let recs = r.records();
            assert!(recs.iter().all(|x| x["message"].as_str().unwrap().contains("--idle-timeout")), "{recs:?}");
        }
    }
}

/// A listener whose accept queue is full drops new connects (their SYNs go unanswered): the
/// run must give up after `--connect-timeout`, and say so.
#[test]
fn a_connect_that_never_completes_ends_at_the_connect_timeout() {
    let _machine = crate::harness::machine_shared();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (listener, addr) = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = s.local_addr().unwrap();
        (s.listen(1).unwrap(), addr)
    });
    // Fill the queue: connects complete until it is full, then hang.
    let mut held = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    let url = format!("http://{addr}");
    let (r, took) = timed(&url, &["--connect-timeout", "1"]);
    assert_ne!(r.out.status.code(), Some(0));
    assert!(took.as_secs_f64() < 2.0, "the run took {took:?} with a 1 s connect timeout");
    assert!(r.stderr().contains("timed out after 1 s (--connect-timeout"), "{}", r.stderr());
    assert_eq!(r.stderr().trim().lines().count(), 1, "one line: {}", r.stderr());
    drop((listener, held));
}

/// `--ready-check-timeout-sec` waits for a server that is still starting, as vLLM's does.
#[test]
fn the_ready_check_waits_for_a_server_that_comes_up_late() {
    let _machine = crate::harness::machine_shared();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let (mut c, dir) = crate::harness::run_cmd(&url, &[&FLAGS[..], &["--ready-check-timeout-sec", "30"]].concat());
    let client = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut sim = std::process::Command::new(crate::harness::BIN)
        .args(["serve", "--sim", "--host", "127.0.0.1", "--port", &port.to_string(), "--ttft-ms", "1", "--itl-ms", "1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = client.wait_with_output().unwrap();
    let _ = sim.kill();
    let _ = sim.wait();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("waiting up to 30 s for"), "{text}");
    assert!(dir.path().join("r.json").exists());
}
