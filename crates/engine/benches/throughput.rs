//! Engine throughput on a real GGUF: prefill and decode tokens/s for one sequence, aggregate
//! decode tokens/s at several concurrencies (all in the engine's own scheduler), and peak RSS
//! against the model file plus the KV cache in use. Prints one line of JSON per figure as well,
//! for `scripts/bench-engine` to tabulate beside llama.cpp.
//!
//! `cargo bench -p inferbench-engine --bench throughput -- [MODEL.gguf] [THREADS]`

use inferbench_engine::cache::{self as models, DEFAULT_MODEL};
use inferbench_engine::{load, Engine, EngineConfig, Event, LoadOptions, Request};
use std::sync::mpsc;
use std::time::Instant;

/// Per request: (time of first token, time of last token, tokens).
fn run(e: &Engine, prompts: &[Vec<u32>], max_tokens: usize) -> (f64, Vec<(f64, f64, usize)>) {
    let t0 = Instant::now();
    let rxs: Vec<_> = prompts
        .iter()
        .map(|p| {
            let (tx, rx) = mpsc::channel();
            e.submit(Request { prompt: p.clone(), max_tokens, ignore_eos: true, ..Default::default() }, Box::new(tx)).unwrap();
            rx
        })
        .collect();
    let mut per = Vec::new();
    for rx in rxs {
        let (mut first, mut last, mut n) = (0.0, 0.0, 0);
        while let Ok(ev) = rx.recv() {
            match ev {
                Event::Token { .. } => {
                    let t = t0.elapsed().as_secs_f64();
                    if n == 0 {
                        first = t;
                    }
                    last = t;
                    n += 1;
                }
                Event::Finished { .. } => break,
                Event::Failed(m) => panic!("{m}"),
            }
        }
        per.push((first, last, n));
    }
    (t0.elapsed().as_secs_f64(), per)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let path = match args.first() {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            models::pull(models::known(DEFAULT_MODEL).unwrap(), &models::cache_dir(), &mut |_, _| {}).expect("pull the default model").0
        }
    };
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let l = load(&path, &LoadOptions::default()).expect("load");
    let cfg = EngineConfig { max_num_seqs: 16, threads, ..Default::default() };
    let e = Engine::start(l.model.clone(), l.tokenizer.clone(), l.eos.clone(), cfg).unwrap();
    let out = |k: &str, v: f64| println!("{{\"engine\": \"inferbench\", \"metric\": \"{k}\", \"value\": {v:.2}}}");
    println!(
        "# inferbench engine, {} ({} weights), {threads} threads, load {:.2} s",
        path.display(),
        l.model.weight_format(),
        l.load_seconds
    );
    // Prefill: a 512-token prompt, time to its first token.
    let long: Vec<u32> = l.tokenizer.encode(&"The quick brown fox jumps over the lazy dog. ".repeat(60))[..512].to_vec();
    let _ = run(&e, std::slice::from_ref(&long), 1);
    let prefill = median((0..3).map(|_| 512.0 / run(&e, std::slice::from_ref(&long), 1).1[0].0).collect());
    out("prefill_tok_s_512", prefill);
    // Decode, one sequence: 128 tokens after a short chat prompt, and after the 512-token prompt.
    let chat = l.tokenizer.encode("<|im_start|>user\nTell me a long story about a dragon.<|im_end|>\n<|im_start|>assistant\n");
    let decode = |prompt: &Vec<u32>| {
        median(
            (0..3)
                .map(|_| {
                    let (_, per) = run(&e, std::slice::from_ref(prompt), 128);
                    let (first, last, n) = per[0];
                    (n - 1) as f64 / (last - first)
                })
                .collect(),
        )
    };
    out("decode_tok_s_short_ctx", decode(&chat));
    out("decode_tok_s_512_ctx", decode(&long));
    // Aggregate decode at several concurrencies: c sequences at once, 128 tokens each; tokens
    // after each sequence's first, over the time from the first first-token to the last token.
    for c in [1usize, 4, 8, 16] {
        let prompts: Vec<Vec<u32>> = (0..c)
            .map(|i| {
                l.tokenizer
                    .encode(&format!("<|im_start|>user\nTell me story number {i} about a dragon.<|im_end|>\n<|im_start|>assistant\n"))
            })
            .collect();
        let v = median(
            (0..3)
                .map(|_| {
                    let (_, per) = run(&e, &prompts, 128);
                    let start = per.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
                    let end = per.iter().map(|p| p.1).fold(0.0, f64::max);
                    per.iter().map(|p| p.2 as f64).sum::<f64>() / (end - start)
                })
                .collect(),
        );
        out(&format!("aggregate_tok_s_c{c}"), v);
    }
    let kv = 16 * (chat.len() + 16 + 128) * l.model.cfg.kv_bytes_per_token();
    let rss = peak_rss_bytes();
    out("peak_rss_mb", rss as f64 / 1e6);
    out("model_file_mb", file_bytes as f64 / 1e6);
    out("kv_cache_mb_at_c16", kv as f64 / 1e6);
    out("peak_rss_over_file_plus_kv", rss as f64 / (file_bytes as f64 + kv as f64));
}
