//! Fuzz target for every dataset reader: arbitrary and mutated files give a dataset or an error
//! naming the file and line, never a panic.

use inferbench_data::{load_dataset, DatasetKind, DatasetOptions, Tokenizer};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config() -> Config {
    let cases = std::env::var("INFERBENCH_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48);
    let seed = std::env::var("INFERBENCH_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).map_or(RngSeed::Random, RngSeed::Fixed);
    Config { cases, rng_seed: seed, ..Config::default() }
}

/// Lines that are nearly right often enough to reach the readers' deeper branches.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"{"prompt": "hello there", "output_tokens": 4, "category": "c"}"#.to_owned()),
        Just(r#"{"messages": [{"role": "user", "content": "hi"}], "output_tokens": 3}"#.to_owned()),
        Just(r#"{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a b c"}]}"#.to_owned()),
        Just("# category".to_owned()),
        "\\PC{0,40}",
        "[{}\\[\\]\":,0-9a-z ]{0,40}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn dataset_files_never_panic(lines in proptest::collection::vec(line(), 0..12), array in any::<bool>(), kind in 0usize..4) {
        let body = if array { format!("[{}]", lines.join(",")) } else { lines.join("\n") };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.txt");
        std::fs::write(&p, body).unwrap();
        let kind = [DatasetKind::Jsonl, DatasetKind::ShareGpt, DatasetKind::Prompts, DatasetKind::Sonnet][kind];
        let tok = Tokenizer::by_name("gpt2").unwrap();
        let opts = DatasetOptions {
            kind,
            path: Some(p),
            num_prompts: 4,
            seed: 1,
            shuffle: true,
            output_len: None,
            default_output_len: 8,
            input_len: 16,
            range_ratio: 0.0,
            prefix_len: 0,
            prefix_groups: 1,
            min_input_len: None,
            max_input_len: None,
            turns: 2,
            chat: false,
            trace: None,
        };
        let _ = load_dataset(&tok, &opts);
    }
}
