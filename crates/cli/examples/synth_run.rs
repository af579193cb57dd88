//! Writes a synthetic serving result with N per-request records (for `scripts/bench-compare`):
//! `synth_run OUT_STEM N SCALE SEED`. Latencies are drawn from a fixed lognormal-ish shape and
//! multiplied by SCALE, so two files with scales 1.0 and 1.1 differ by a planted 10 %.

use inferbench_core::record::{Outcome, RequestRecord, TokenSource};
use inferbench_core::result::{BenchmarkResult, ClientUsage, ToolInfo};
use inferbench_core::spec::DatasetStats;
use inferbench_core::{Header, ResultKind, RunSpec, Summary, SummaryOptions};
use std::io::Write;

/// SplitMix64: a tiny deterministic generator, so the example needs no extra dependency.
fn next(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, stem, n, scale, seed] = args.as_slice() else {
        return Err("usage: synth_run OUT_STEM N SCALE SEED".into());
    };
    let (n, scale, mut state): (u64, f64, u64) = (n.parse()?, scale.parse()?, seed.parse()?);
    let mut out = std::io::BufWriter::new(std::fs::File::create(format!("{stem}.records.jsonl"))?);
    let mut acc = inferbench_core::summary::Accumulator::new(&SummaryOptions::default());
    let mut t = 0u64;
    for id in 0..n {
        // Sends every 1 ms; TTFT around 40 ms, 16 tokens 8 ms apart, each with some spread.
        let sent = t;
        t += 1_000_000;
        let ttft = (40e6 * scale * (0.7 + 0.6 * next(&mut state))) as u64;
        let itl: Vec<u64> = (0..15).map(|_| (8e6 * scale * (0.8 + 0.4 * next(&mut state))) as u64).collect();
        let first = sent + ttft;
        let end = first + itl.iter().sum::<u64>();
        let r = RequestRecord {
            id,
            scheduled_ns: sent,
            gate_ns: sent,
            sent_ns: sent,
            connect_ns: 0,
            reused: Some(true),
            first_token_ns: Some(first),
            end_ns: end,
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
        };
        serde_json::to_writer(&mut out, &r)?;
        out.write_all(b"\n")?;
        acc.add(&r);
    }
    out.flush()?;
    let summary: Summary = acc.finish();
    let result = BenchmarkResult {
        monitors: None,
        per_request: Default::default(),
        header: Header::now(ResultKind::Run, ToolInfo { name: "synth_run".into(), version: String::new(), commit: None }),
        spec: RunSpec::default(),
        summary,
        client: ClientUsage::default(),
        warmup_excluded: 0,
        dataset: DatasetStats::default(),
        interrupted: false,
    };
    std::fs::write(format!("{stem}.json"), serde_json::to_vec_pretty(&result.to_json())?)?;
    Ok(())
}
