//! What the synthetic-result examples share: a tiny deterministic generator and one streamed
//! request of 16 tokens, TTFT around 40 ms and ITL around 8 ms, both multiplied by `scale`.

use inferbench_core::record::{Outcome, RequestRecord, TokenSource};

/// SplitMix64: a tiny deterministic generator, so the examples need no extra dependency.
pub fn next(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// Request `id`, sent at `sent` ns: 256 prompt tokens, 16 streamed output tokens.
pub fn request(id: u64, sent: u64, scale: f64, state: &mut u64) -> RequestRecord {
    let ttft = (40e6 * scale * (0.7 + 0.6 * next(state))) as u64;
    let itl: Vec<u64> = (0..15).map(|_| (8e6 * scale * (0.8 + 0.4 * next(state))) as u64).collect();
    let first = sent + ttft;
    RequestRecord {
        id,
        scheduled_ns: sent,
        gate_ns: sent,
        sent_ns: sent,
        connect_ns: 0,
        reused: Some(true),
        first_token_ns: Some(first),
        end_ns: first + itl.iter().sum::<u64>(),
        itl_ns: itl,
        input_tokens: 256,
        output_tokens: 16,
        token_source: TokenSource::Server,
        cached_tokens: None,
        client_count: None,
        requested_output_tokens: None,
        outcome: Outcome::Success,
        category: None,
        turn: None,
        generated_text: None,
    }
}
