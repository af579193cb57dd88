//! Speculative decoding on tiny random models: greedy output is the target's own, token for
//! token; sampled decoding runs and reports its acceptance; mismatched tokenizers are refused.

use inferbench_engine::speculative::{check_tokenizers, generate_plain, generate_speculative};
use inferbench_engine::testing::{write_tiny_model, TinySpec};
use inferbench_engine::{load, LoadOptions, SamplingParams, WeightFormat};

#[test]
fn greedy_speculative_output_equals_target_only_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    write_tiny_model(&p, &TinySpec::default()).unwrap();
    let target = load(&p, &LoadOptions { requantize: Some(WeightFormat::F32.into()) }).unwrap();
    let draft = load(&p, &LoadOptions::default()).unwrap();
    check_tokenizers(&target, &draft).unwrap();
    let greedy = SamplingParams::default();
    let mut total_accepted = 0;
    for (k, gamma) in [(0u32, 1usize), (1, 3), (2, 4), (3, 7)] {
        let prompt: Vec<u32> = (0..(6 + k * 5)).map(|i| (i * 31 + k * 7) % 256).collect();
        let plain = generate_plain(&target.model, &prompt, 40, &greedy, &target.eos, true).unwrap();
        let (spec, stats) = generate_speculative(&target.model, &draft.model, &prompt, 40, gamma, &greedy, &target.eos, true).unwrap();
        assert_eq!(spec, plain, "gamma {gamma}");
        assert_eq!(stats.generated, 40);
        assert!(stats.accepted <= stats.proposed && stats.rounds > 0);
        total_accepted += stats.accepted;
        // A draft identical to the target accepts everything.
        let (same, s2) = generate_speculative(&target.model, &target.model, &prompt, 40, gamma, &greedy, &target.eos, true).unwrap();
        assert_eq!(same, plain);
        assert_eq!(s2.acceptance_rate(), 1.0, "{s2:?}");
    }
    assert!(total_accepted > 0, "a Q4_1 draft of the same weights should agree sometimes");
}

#[test]
fn sampled_speculative_runs_and_mismatched_tokenizers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    write_tiny_model(&p, &TinySpec::default()).unwrap();
    let target = load(&p, &LoadOptions { requantize: Some(WeightFormat::Q8_0.into()) }).unwrap();
    let draft = load(&p, &LoadOptions::default()).unwrap();
    let s = SamplingParams { temperature: 0.8, top_p: 0.95, top_k: 0, seed: Some(3) };
    let (a, stats) = generate_speculative(&target.model, &draft.model, &[1, 2, 3], 30, 4, &s, &target.eos, true).unwrap();
    assert_eq!(a.len(), 30);
    assert!((0.0..=1.0).contains(&stats.acceptance_rate()));
    let (b, _) = generate_speculative(&target.model, &draft.model, &[1, 2, 3], 30, 4, &s, &target.eos, true).unwrap();
    assert_eq!(a, b, "seeded sampling repeats");
    let q = dir.path().join("other.gguf");
    write_tiny_model(&q, &TinySpec { words: 10, ..Default::default() }).unwrap();
    let other = load(&q, &LoadOptions::default()).unwrap();
    let err = check_tokenizers(&target, &other).unwrap_err().to_string();
    assert!(err.contains("same tokenizer"), "{err}");
}

/// Serving with a draft gives every request exactly what serving without one gives (greedy,
/// seeded sampling, stop strings, end-of-sequence, min_tokens), with several sequences speculating
/// in the same steps; the counters add up, by position too.
#[test]
fn the_serving_engine_speculates_without_changing_any_output() {
    use inferbench_engine::testing::run_requests;
    use inferbench_engine::{DraftConfig, Engine, EngineConfig, Request};
    use std::sync::atomic::Ordering::Relaxed;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    write_tiny_model(&p, &TinySpec::default()).unwrap();
    let target = load(&p, &LoadOptions { requantize: Some(WeightFormat::F32.into()) }).unwrap();
    let draft = load(&p, &LoadOptions::default()).unwrap();
    let reqs = || -> Vec<Request> {
        let prompt = |k: u32| -> Vec<u32> { (0..(4 + k * 3)).map(|i| (i * 17 + k * 11) % 256).collect() };
        let sampled = SamplingParams { temperature: 0.9, top_p: 0.95, top_k: 0, seed: Some(7) };
        vec![
            Request { prompt: prompt(0), max_tokens: 30, ignore_eos: true, ..Default::default() },
            Request { prompt: prompt(1), max_tokens: 1, ignore_eos: true, ..Default::default() },
            Request { prompt: prompt(2), max_tokens: 25, ignore_eos: true, sampling: sampled.clone(), ..Default::default() },
            Request { prompt: prompt(3), max_tokens: 40, min_tokens: 3, ..Default::default() },
            Request { prompt: prompt(4), max_tokens: 30, ignore_eos: true, stop: vec!["e".into(), "q".into()], ..Default::default() },
            Request { prompt: prompt(5), max_tokens: 17, ignore_eos: true, ..Default::default() },
        ]
    };
    let start = |d: Option<DraftConfig>| {
        let cfg = EngineConfig { max_num_seqs: 4, threads: 1, draft: d, ..Default::default() };
        Engine::start(target.model.clone(), target.tokenizer.clone(), target.eos.clone(), cfg).unwrap()
    };
    let plain = run_requests(&start(None), reqs()).unwrap();
    for (draft_model, k) in [(draft.model.clone(), 3), (target.model.clone(), 4), (draft.model.clone(), 1)] {
        let e = start(Some(DraftConfig { model: draft_model.clone(), num_speculative_tokens: k, threads: None, cpus: None }));
        let spec = run_requests(&e, reqs()).unwrap();
        assert_eq!(spec, plain, "k={k}");
        let st = e.stats();
        let (drafts, proposed, accepted) =
            (st.spec_drafts.load(Relaxed), st.spec_draft_tokens.load(Relaxed), st.spec_accepted_tokens.load(Relaxed));
        assert!(drafts > 0 && proposed >= drafts && proposed <= drafts * k as u64, "{drafts} {proposed}");
        assert!(accepted <= proposed);
        let per_pos: Vec<u64> = st.spec_accepted_per_pos.iter().map(|c| c.load(Relaxed)).collect();
        assert_eq!(per_pos.len(), k);
        assert_eq!(per_pos.iter().sum::<u64>(), accepted, "{per_pos:?}");
        assert!(per_pos.windows(2).all(|w| w[0] >= w[1]), "a later position is accepted only after the earlier: {per_pos:?}");
        // Every generated token is either a step's own or an accepted proposal.
        let generated: u64 = plain.iter().map(|r| r.0.len() as u64).sum();
        assert_eq!(st.generation_tokens.load(Relaxed), generated);
        if std::sync::Arc::ptr_eq(&draft_model, &target.model) {
            // Greedy requests that run to max_tokens accept every proposal of an identical draft
            // (the sampled request, stop strings and end-of-sequence cut drafts short).
            let e = start(Some(DraftConfig { model: draft_model.clone(), num_speculative_tokens: k, threads: None, cpus: None }));
            let greedy: Vec<Request> = reqs().into_iter().filter(|r| r.ignore_eos && r.stop.is_empty() && r.sampling.is_greedy()).collect();
            run_requests(&e, greedy).unwrap();
            let st = e.stats();
            assert_eq!(st.spec_accepted_tokens.load(Relaxed), st.spec_draft_tokens.load(Relaxed));
            assert!(accepted < proposed, "the others do cut drafts short: {accepted}/{proposed}");
        } else {
            assert!(accepted > 0, "a Q4_1 draft of the same weights agrees sometimes");
        }
        let text = st.prometheus("m");
        assert!(text.contains(&format!("vllm:spec_decode_num_accepted_tokens_total{{model_name=\"m\"}} {accepted}")), "{text}");
    }
    // A draft with another vocabulary is refused at start.
    let q = dir.path().join("other.gguf");
    write_tiny_model(&q, &TinySpec { words: 10, ..Default::default() }).unwrap();
    let other = load(&q, &LoadOptions::default()).unwrap();
    if other.model.cfg.vocab != target.model.cfg.vocab {
        let cfg = EngineConfig {
            draft: Some(DraftConfig { model: other.model.clone(), num_speculative_tokens: 2, threads: None, cpus: None }),
            ..Default::default()
        };
        let err = Engine::start(target.model.clone(), target.tokenizer.clone(), target.eos.clone(), cfg).unwrap_err().to_string();
        assert!(err.contains("vocabulary"), "{err}");
    }
}
