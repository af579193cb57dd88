//! Fuzz targets (property-based, with shrinking) for what the client parses from servers: the SSE
//! stream and the OpenAI / TGI chunks. `scripts/fuzz` runs them for minutes with fresh seeds;
//! the test suite runs a short pass. Counterexamples found are kept in `tests/fuzz.proptest-regressions` and re-run first.

use inferbench_load::sse::SseParser;
use inferbench_load::Backend;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config() -> Config {
    let cases = std::env::var("INFERBENCH_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    let seed = std::env::var("INFERBENCH_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).map_or(RngSeed::Random, RngSeed::Fixed);
    Config { cases, rng_seed: seed, ..Config::default() }
}

fn events(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut p = SseParser::with_limit(1 << 20);
    let mut out = Vec::new();
    for c in chunks {
        p.feed::<()>(c, |d| {
            out.push(d.to_vec());
            Ok(())
        })
        .unwrap();
    }
    out
}

/// Bytes that look like SSE often enough to reach every state.
fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b": comment\n".to_vec()),
        Just(b"event: x\n".to_vec()),
        Just(b"[DONE]".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(piece, 0..64).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    /// However the bytes are cut into reads, the same events come out, and nothing panics.
    #[test]
    fn sse_events_do_not_depend_on_read_boundaries(bytes in sse_bytes(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let whole = events(&[&bytes]);
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut pieces = Vec::new();
        let mut last = 0;
        for c in at {
            pieces.push(&bytes[last..c]);
            last = c;
        }
        pieces.push(&bytes[last..]);
        prop_assert_eq!(events(&pieces), whole);
    }

    /// Arbitrary bytes never panic any chunk parser.
    #[test]
    fn chunks_of_any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for b in [Backend::OpenAi, Backend::OpenAiChat, Backend::Vllm, Backend::Tgi] {
            let _ = b.parse_chunk(&bytes);
        }
    }

    /// The fast path never accepts what the full parse would not, nor reads different text.
    #[test]
    fn the_chunk_fast_path_agrees_with_the_full_parse(text in "\\PC{0,24}", extra in 0u8..6, noise in proptest::collection::vec(any::<u8>(), 0..8)) {
        let t = serde_json::to_string(&text).unwrap();
        let mut chunks: Vec<String> = vec![
            format!(r#"{{"id":"c","choices":[{{"index":0,"text":{t},"finish_reason":null}}]}}"#),
            format!(r#"{{"choices":[{{"index":0,"delta":{{"content":{t}}}}}]}}"#),
            format!(r#"{{"choices":[{{"index":0,"text":{t}}}],"usage":{{"prompt_tokens":{extra},"completion_tokens":1}}}}"#),
            format!(r#"{{"choices":[{{"index":0, "text" : {t} }}]}}"#),
        ];
        // Truncated and noisy variants: malformed chunks must stay errors on both paths.
        let cut = chunks[0].len() * usize::from(extra) / 6;
        let truncated = chunks[0].as_bytes()[..cut].to_vec();
        let mut noisy = chunks[1].clone().into_bytes();
        noisy.extend_from_slice(&noise);
        chunks.truncate(4);
        for b in [Backend::OpenAi, Backend::OpenAiChat] {
            for c in chunks.iter().map(|c| c.as_bytes()).chain([truncated.as_slice(), noisy.as_slice()]) {
                let fast = b.parse_chunk(c);
                let full = b.parse_chunk_fully(c);
                match (&fast, &full) {
                    (Ok(f), Ok(g)) => prop_assert_eq!(f, g, "{} {}", b, String::from_utf8_lossy(c)),
                    (Err(_), Err(_)) => {}
                    _ => prop_assert!(false, "{b}: fast {fast:?} vs full {full:?} on {}", String::from_utf8_lossy(c)),
                }
            }
        }
    }
}
