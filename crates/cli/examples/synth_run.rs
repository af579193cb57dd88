//! Writes a synthetic serving result with N per-request records (for `scripts/bench-compare`):
//! `synth_run OUT_STEM N SCALE SEED`. Latencies are drawn from a fixed lognormal-ish shape and
//! multiplied by SCALE, so two files with scales 1.0 and 1.1 differ by a planted 10 %.

use inferbench_core::result::{BenchmarkResult, ClientUsage, ToolInfo};
use inferbench_core::spec::DatasetStats;
use inferbench_core::{Header, ResultKind, RunSpec, Summary, SummaryOptions};
use std::io::Write;

#[path = "common/synth.rs"]
mod synth;

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
        let r = synth::request(id, sent, scale, &mut state);
        serde_json::to_writer(&mut out, &r)?;
        out.write_all(b"\n")?;
        acc.add(&r);
    }
    out.flush()?;
    let summary: Summary = acc.finish();
    let result = BenchmarkResult {
        monitors: None,
        shard: None,
        merged: None,
        per_request: Default::default(),
        imported: None,
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
