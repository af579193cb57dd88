//! Scraping and parsing a 200 KB Prometheus page: `Page::parse` alone, and a scrape over loopback
//! HTTP (a new connection each time, so an upper bound on the run's keep-alive scraper) followed
//! by the parse and the common-name report. Prints medians of 50.

use inferbench_monitor::{Page, ServerMonitor};
use std::io::{Read, Write};
use std::time::Instant;

/// A vLLM-like page: every family for `models` label sets, histograms with vLLM's buckets.
fn page(models: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let buckets = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0];
    for (name, kind) in [
        ("vllm:num_requests_running", "gauge"),
        ("vllm:num_requests_waiting", "gauge"),
        ("vllm:kv_cache_usage_perc", "gauge"),
        ("vllm:prompt_tokens_total", "counter"),
        ("vllm:generation_tokens_total", "counter"),
        ("vllm:prefix_cache_queries_total", "counter"),
        ("vllm:prefix_cache_hits_total", "counter"),
    ] {
        let _ = writeln!(s, "# HELP {name} {name}.\n# TYPE {name} {kind}");
        for m in 0..models {
            let _ = writeln!(s, "{name}{{engine=\"0\",model_name=\"org/model-{m}\"}} {}", m * 17);
        }
    }
    for name in ["vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds", "vllm:e2e_request_latency_seconds"] {
        let _ = writeln!(s, "# HELP {name} {name}.\n# TYPE {name} histogram");
        for m in 0..models {
            let l = format!("engine=\"0\",model_name=\"org/model-{m}\"");
            for (i, b) in buckets.iter().enumerate() {
                let _ = writeln!(s, "{name}_bucket{{{l},le=\"{b}\"}} {}", i * 3);
            }
            let _ = writeln!(s, "{name}_bucket{{{l},le=\"+Inf\"}} 60\n{name}_sum{{{l}}} 12.5\n{name}_count{{{l}}} 60");
        }
    }
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut models = 1;
    let text = loop {
        let t = page(models);
        if t.len() >= 200 * 1024 {
            break t;
        }
        models += 1;
    };
    let lines = text.lines().count();
    let parsed = Page::parse(&text);
    assert_eq!(parsed.skipped_lines, 0);
    let parse_ms: Vec<f64> = (0..50)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(Page::parse(std::hint::black_box(&text)));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    // A one-page HTTP server on loopback.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = text.clone();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let mut mon = ServerMonitor::new("http://bench/metrics");
    mon.baseline(0.0, parsed);
    let scrape_ms: Vec<f64> = (0..50)
        .map(|i| {
            let t = Instant::now();
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").unwrap();
            let mut got = Vec::with_capacity(text.len() + 256);
            c.read_to_end(&mut got).unwrap();
            let at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let page = Page::parse(std::str::from_utf8(&got[at..]).unwrap());
            std::hint::black_box(mon.observe(f64::from(i + 1), page));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    println!("page: {} KB, {lines} lines, {models} label sets", text.len() / 1024);
    println!("{:<58} {:>8.2} ms", "parse a 200 KB page (median of 50)", median(parse_ms));
    println!("{:<58} {:>8.2} ms   (target < 5)", "scrape + parse + time-series line (median of 50)", median(scrape_ms));
}
