//! The Prometheus parser and the common-name mapping on a before and an after page for each
//! server kind: vLLM, SGLang and TGI pages written from the metric names their docs list, and
//! llama.cpp's server's own pages (captured from `llama-server --metrics` around two requests).
//! Every expected figure is computed by hand from the two pages.

use inferbench_monitor::{Page, ServerMonitor};

fn pages(kind: &str) -> (Page, Page) {
    let read = |which: &str| {
        let p = format!("{}/tests/fixtures/{kind}-{which}.prom", env!("CARGO_MANIFEST_DIR"));
        let page = Page::parse(&std::fs::read_to_string(&p).unwrap());
        assert_eq!(page.skipped_lines, 0, "{p}");
        page
    };
    (read("before"), read("after"))
}

fn window(kind: &str, client_tokens: u64) -> inferbench_core::monitor::ServerReport {
    let (before, after) = pages(kind);
    let mut m = ServerMonitor::new(&format!("http://127.0.0.1/{kind}"));
    m.baseline(0.0, before);
    let line = m.observe(10.0, after);
    assert_eq!(line["source"], "server");
    assert!(line["gauges"].as_object().is_some_and(|g| !g.is_empty()), "{line}");
    m.report(client_tokens)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn vllm() {
    let r = window("vllm", 2560);
    assert_eq!(r.server_kind.as_deref(), Some("vllm"));
    let c = &r.counters;
    assert_eq!((c["prompt_tokens"], c["generation_tokens"], c["preemptions"], c["requests_succeeded"]), (4000.0, 2560.0, 2.0, 20.0));
    assert_eq!(r.prefix_cache_hit_rate, Some(0.5));
    assert_eq!(r.spec_decode_acceptance, Some(0.5));
    // 150 drafts in the window carried 600 tokens, 300 accepted: 1 + 300/150 tokens per draft;
    // by position 120, 90, 60 and 30 of the 150.
    assert_eq!(r.spec_decode_mean_acceptance_length, Some(3.0));
    assert_eq!(r.spec_decode_acceptance_by_position, vec![0.8, 0.6, 0.4, 0.2]);
    assert_eq!((r.generation_tokens, r.client_output_tokens), (Some(2560.0), 2560));
    assert_eq!((r.gauges["running"].last, r.gauges["waiting"].last, r.gauges["kv_cache_usage"].max), (7.0, 3.0, 0.42));
    let t = &r.latency["ttft"];
    assert_eq!((t.count, t.mean_ms, t.p50_ms, t.p90_ms, t.p99_ms), (20, 125.0, 100.0, 420.0, 492.0));
    let i = &r.latency["itl"];
    assert_eq!((i.count, i.mean_ms, i.p50_ms), (1500, 28.0, 37.5));
    let e = &r.latency["e2e"];
    assert_eq!((e.count, e.mean_ms, e.p50_ms), (20, 4500.0, 5000.0));
    assert_eq!(r.raw_counters["python_gc_objects_collected_total{generation=\"0\"}"], 0.0);
}

#[test]
fn sglang() {
    let r = window("sglang", 10_000);
    assert_eq!(r.server_kind.as_deref(), Some("sglang"));
    assert_eq!((r.counters["prompt_tokens"], r.counters["generation_tokens"]), (10_000.0, 10_000.0));
    assert_eq!(r.prefix_cache_hit_rate, Some(0.25));
    assert_eq!((r.gauges["running"].last, r.gauges["waiting"].last, r.gauges["kv_cache_usage"].last), (162.0, 2826.0, 0.28));
    assert_eq!(r.gauges["server_prefix_cache_hit_rate"].last, 0.25);
    let t = &r.latency["ttft"];
    assert_eq!((t.count, t.mean_ms, t.p50_ms), (40, 250.0, 175.0));
}

#[test]
fn tgi() {
    let r = window("tgi", 1600);
    assert_eq!(r.server_kind.as_deref(), Some("tgi"));
    let c = &r.counters;
    assert_eq!((c["prompt_tokens"], c["generation_tokens"], c["requests_succeeded"]), (4800.0, 1600.0, 20.0));
    assert_eq!((r.gauges["running"].last, r.gauges["waiting"].last), (8.0, 2.0));
    let e = &r.latency["e2e"];
    assert_eq!((e.count, e.mean_ms, e.p50_ms), (20, 1250.0, 2000.0));
    let t = &r.latency["tpot"];
    assert_eq!(t.family, "tgi_request_mean_time_per_token_duration");
    // 10 of the 20 in (0.02, 0.05], 10 in (0.05, 0.1]: the median is the 0.05 bound, p90 0.09.
    assert!(close(t.mean_ms, 20.0) && close(t.p50_ms, 50.0) && close(t.p90_ms, 90.0), "{t:?}");
}

#[test]
fn llamacpp() {
    let r = window("llamacpp", 32);
    assert_eq!(r.server_kind.as_deref(), Some("llamacpp"));
    // 8 prompt tokens processed and 6 served from the cache: 14 in all, 6/14 hit.
    assert_eq!((r.counters["prompt_tokens"], r.counters["generation_tokens"]), (14.0, 32.0));
    assert!(close(r.prefix_cache_hit_rate.unwrap(), 6.0 / 14.0));
    assert_eq!(r.spec_decode_acceptance, None, "no drafts: no acceptance rate");
    assert_eq!((r.gauges["running"].last, r.gauges["waiting"].last), (0.0, 0.0));
    assert!(r.latency.is_empty());
}
