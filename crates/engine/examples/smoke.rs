//! Loads a GGUF model, greedily answers one chat prompt, and prints prefill and decode speed.
//! `cargo run --release -p inferbench-engine --example smoke -- MODEL.gguf [THREADS]`

use inferbench_data::prompt::ChatMessage;
use inferbench_data::tokenizer::Tokenizer;
use inferbench_engine::{sampling::argmax, BatchItem, KvCache, LoadOptions, Model};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = std::path::Path::new(&args[1]);
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().unwrap();
    let t0 = Instant::now();
    let model = Model::load(path, &LoadOptions::default()).unwrap();
    println!("loaded in {:?}: {:?} {}", t0.elapsed(), model.cfg, model.weight_bytes);
    let tok = Tokenizer::by_name(&args[1]).unwrap();
    let msgs = vec![ChatMessage { role: "user".into(), content: "What is the capital of France?".into() }];
    let _ = &msgs;
    let text = tok.chat_template().unwrap().render(&msgs, true).unwrap();
    let ids = tok.encode(&text);
    println!("prompt {} tokens: {:?}", ids.len(), &ids[..ids.len().min(12)]);
    let mut cache = KvCache::new(model.cfg.n_layer, model.cfg.kv_dim(), 1024);
    let t = Instant::now();
    let mut logits = model.forward(&mut [BatchItem { tokens: &ids, start: 0, cache: &mut cache, want_logits: true }]).unwrap();
    println!("prefill {:?}", t.elapsed());
    let mut out = Vec::new();
    let t = Instant::now();
    for _ in 0..40 {
        let next = argmax(&logits[0]);
        out.push(next);
        if next == 2 {
            break;
        }
        let start = cache.len();
        logits = model.forward(&mut [BatchItem { tokens: &[next], start, cache: &mut cache, want_logits: true }]).unwrap();
    }
    let dt = t.elapsed();
    println!("decode {} tokens in {:?}: {:.1} tok/s", out.len(), dt, out.len() as f64 / dt.as_secs_f64());
    println!("{:?}", tok.decode(&out).unwrap());
    // A long prompt for prefill speed.
    let long: Vec<u32> = (0..512).map(|i| 1000 + (i * 37) % 20000).collect();
    let mut cache = KvCache::new(model.cfg.n_layer, model.cfg.kv_dim(), 1024);
    let t = Instant::now();
    let _ = model.forward(&mut [BatchItem { tokens: &long, start: 0, cache: &mut cache, want_logits: true }]).unwrap();
    println!("prefill 512: {:.1} tok/s", 512.0 / t.elapsed().as_secs_f64());
}
