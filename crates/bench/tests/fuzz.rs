//! Fuzz targets for the input files the library reads: the engine's YAML config and saved result
//! JSON. Arbitrary text and mutated real files give errors naming the problem, never a panic.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config() -> Config {
    let cases = std::env::var("INFERBENCH_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    let seed = std::env::var("INFERBENCH_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).map_or(RngSeed::Random, RngSeed::Fixed);
    Config { cases, rng_seed: seed, ..Config::default() }
}

/// The shipped configs, as a seed corpus.
fn configs() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
    v.sort();
    v
}

fn mutate(text: &str, at: prop::sample::Index, insert: &str, cut: bool) -> String {
    let mut i = at.index(text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    if cut {
        text[..i].to_owned()
    } else {
        format!("{}{insert}{}", &text[..i], &text[i..])
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn yaml_configs_never_panic(which in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), insert in "[\\PC\\n:\\-\\[\\]{}&*!|>'\"%@` ]{0,12}", cut in any::<bool>()) {
        let seeds = configs();
        let text = mutate(&seeds[which.index(seeds.len())], at, &insert, cut);
        if let Ok(c) = inferbench_bench::engine::parse_config(&text) {
            let _ = inferbench_bench::engine::validate(&c);
        }
    }

    #[test]
    fn arbitrary_yaml_never_panics(text in "\\PC{0,200}") {
        let _ = inferbench_bench::engine::parse_config(&text);
    }

    #[test]
    fn arbitrary_result_json_never_panics(at in any::<prop::sample::Index>(), insert in "[\\PC{}\\[\\]\",:0-9]{0,8}", cut in any::<bool>()) {
        let seed = r#"{"schema_version":2,"kind":"sweep","tool":{"name":"inferbench","version":"0"},"date":"x","dimension":"concurrency","loads":[1.0],"spec":{},"slos":[],"min_success_rate":0.95,"repeat":1,"cooldown_s":0.0,"steps":[],"knee":null,"slo_limit":null,"stopped":null}"#;
        let text = mutate(seed, at, &insert, cut);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            let _ = inferbench_core::SavedResult::from_json(v);
        }
    }
}
