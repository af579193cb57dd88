//! Fuzz target for the GGUF reader and the model loader: a valid tiny model with bytes flipped,
//! lengths and counts overwritten, or the file cut short must give an error, never a panic or an
//! allocation the file cannot justify. `scripts/fuzz` runs it for minutes with fresh seeds.

use inferbench_data::gguf::GgufMetadata;
use inferbench_engine::testing::{write_tiny_model, TinySpec};
use inferbench_engine::LoadOptions;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use std::sync::OnceLock;

fn config() -> Config {
    let cases = std::env::var("INFERBENCH_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(32);
    let seed = std::env::var("INFERBENCH_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).map_or(RngSeed::Random, RngSeed::Fixed);
    Config { cases, rng_seed: seed, ..Config::default() }
}

/// The seed corpus: one valid tiny model.
fn seed_model() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        write_tiny_model(&p, &TinySpec::default()).unwrap();
        std::fs::read(p).unwrap()
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Overwrite one byte.
    Byte(prop::sample::Index, u8),
    /// Overwrite eight bytes with a large little-endian number (lengths, counts, dims, offsets).
    Huge(prop::sample::Index, u64),
    /// Cut the file here.
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Byte(i, b)),
        3 => (any::<prop::sample::Index>(), prop_oneof![Just(u64::MAX), Just(1u64 << 40), Just(1u64 << 24), any::<u64>()]).prop_map(|(i, v)| Mutation::Huge(i, v)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn corrupt_models_are_errors_not_panics(muts in proptest::collection::vec(mutation(), 1..6)) {
        let mut bytes = seed_model().to_vec();
        for m in &muts {
            match *m {
                // Mostly in the header and directory, where a bad number does harm.
                Mutation::Byte(i, b) if !bytes.is_empty() => { let n = bytes.len().min(4096); bytes[i.index(n)] = b; }
                Mutation::Byte(..) => {}
                Mutation::Huge(i, v) if bytes.len() >= 8 => {
                    let n = bytes.len().min(4096) - 7;
                    let at = i.index(n);
                    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
                Mutation::Huge(..) => {}
                Mutation::Truncate(i) if !bytes.is_empty() => { let n = bytes.len(); bytes.truncate(i.index(n)); }
                Mutation::Truncate(_) => {}
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        std::fs::write(&p, &bytes).unwrap();
        // Either may fail; neither may panic.
        let _ = GgufMetadata::read(&p);
        let _ = inferbench_engine::load(&p, &LoadOptions::default());
    }
}

/// What the fuzz target found: a huge `block_count` sized a `Vec` of layers before any tensor was
/// read (a 200 GB allocation, an abort). Now it is an error naming the key.
#[test]
fn a_huge_block_count_is_an_error_not_an_abort() {
    let mut bytes = seed_model().to_vec();
    let key = b"block_count";
    let at = bytes.windows(key.len()).position(|w| w == key).expect("the tiny model has a block_count") + key.len();
    // After the key: the value's type (4: u32, as llama.cpp writes it), then the value.
    assert_eq!(bytes[at..at + 4], 4u32.to_le_bytes());
    bytes[at + 4..at + 8].copy_from_slice(&4_000_000_000u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    std::fs::write(&p, &bytes).unwrap();
    let e = match inferbench_engine::load(&p, &LoadOptions::default()) {
        Ok(_) => panic!("a block_count of 4 billion was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("block_count 4000000000 is more than"), "{e}");
}
