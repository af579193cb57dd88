//! What one forward step costs as it carries more rows: `d` decoding sequences (one row each,
//! logits wanted) plus one prompt chunk of `p` rows, on a real GGUF. Prints the median step time
//! per (d, p) and the fit `step ≈ W + r·rows`: the fixed part W is what splitting a prefill into
//! more steps pays again per step.
//!
//! `cargo run --release -p inferbench-engine --example step_cost -- [MODEL.gguf] [D]`

use inferbench_engine::cache::{self as models, DEFAULT_MODEL};
use inferbench_engine::{load, BatchItem, KvCache, LoadOptions};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.first() {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            models::pull(models::known(DEFAULT_MODEL).expect("known"), &models::cache_dir(), &mut |_, _| {})
                .expect("pull the default model")
                .0
        }
    };
    let d: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(8);
    let loaded = load(&path, &LoadOptions::default()).expect("load");
    let m = loaded.model;
    let c = m.cfg.clone();
    let ctx = 160; // the decoding sequences are this far into their context
    let mut results = Vec::new();
    for p in [0usize, 8, 16, 32, 64, 128, 256] {
        let mut times = Vec::new();
        for _ in 0..7 {
            let mut caches: Vec<KvCache> = (0..d).map(|_| KvCache::new(c.n_layer, c.kv_dim(), ctx + 2)).collect();
            let prompt: Vec<u32> = (0..ctx as u32).map(|t| 100 + t % 1000).collect();
            for cache in &mut caches {
                // Fill each decoding sequence's context (not timed).
                m.forward(&mut [BatchItem { tokens: &prompt[..ctx], start: 0, cache, want_logits: false }]).expect("fill");
            }
            let mut chunk_cache = KvCache::new(c.n_layer, c.kv_dim(), p + 1);
            let chunk: Vec<u32> = (0..p as u32).map(|t| 200 + t).collect();
            let next = [42u32];
            let mut items: Vec<BatchItem<'_>> =
                caches.iter_mut().map(|cache| BatchItem { tokens: &next, start: ctx, cache, want_logits: true }).collect();
            if p > 0 {
                items.push(BatchItem { tokens: &chunk, start: 0, cache: &mut chunk_cache, want_logits: false });
            }
            let t = Instant::now();
            m.forward(&mut items).expect("step");
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        println!("d={d:2} p={p:3} rows={:3}  step {med:7.2} ms  ({:.2} ms per row)", d + p, med / (d + p) as f64);
        results.push(((d + p) as f64, med));
    }
    // Least-squares line through (rows, ms).
    let n = results.len() as f64;
    let (sx, sy) = results.iter().fold((0.0, 0.0), |a, (x, y)| (a.0 + x, a.1 + y));
    let (mx, my) = (sx / n, sy / n);
    let r = results.iter().map(|(x, y)| (x - mx) * (y - my)).sum::<f64>() / results.iter().map(|(x, _)| (x - mx).powi(2)).sum::<f64>();
    println!("fit: step ≈ {:.2} ms + {:.3} ms × rows", my - r * mx, r);
}
