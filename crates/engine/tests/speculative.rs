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
