//! Writes N synthetic shards of one run (for `scripts/bench-shards`):
//! `synth_shards OUT_DIR SHARDS RECORDS_PER_SHARD`. Shard `i` holds the ordinals `i, i+N, ...`
//! (the partition rule without a cap), its records (16 streamed tokens each), its result with a
//! shard section (epochs 1 ms apart) and its accumulator state, as `inferbench run --shard`
//! writes them.

use inferbench_core::result::{BenchmarkResult, ClientUsage, ToolInfo};
use inferbench_core::shard::{ClockSync, Shard, ShardInfo};
use inferbench_core::spec::DatasetStats;
use inferbench_core::{Header, ResultKind, RunSpec, SummaryOptions};
use std::io::Write;

#[path = "common/synth.rs"]
mod synth;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, shards, n] = args.as_slice() else {
        return Err("usage: synth_shards OUT_DIR SHARDS RECORDS_PER_SHARD".into());
    };
    let (shards, n): (u64, u64) = (shards.parse()?, n.parse()?);
    std::fs::create_dir_all(dir)?;
    let epoch0 = 1_796_000_000_000_000_000u64;
    for s in 0..shards {
        let stem = format!("{dir}/shard-{s}");
        let mut header = Header::now(ResultKind::Run, ToolInfo { name: "synth_shards".into(), version: String::new(), commit: None });
        header.run_id = format!("synth-shard-{s}");
        let mut out = std::io::BufWriter::new(std::fs::File::create(format!("{stem}.records.jsonl"))?);
        writeln!(out, "{}", serde_json::json!({ "run_id": header.run_id }))?;
        let mut acc = inferbench_core::summary::Accumulator::new(&SummaryOptions::default()).without_peak_events();
        let mut state = s + 1;
        for k in 0..n {
            // Each shard sends every N ms of the global 1 ms schedule.
            let sent = k * shards * 1_000_000;
            let r = synth::request(k * shards + s, sent, 1.0, &mut state);
            serde_json::to_writer(&mut out, &r)?;
            out.write_all(b"\n")?;
            acc.add(&r);
        }
        out.flush()?;
        let st = acc.state(150)?;
        std::fs::write(format!("{stem}.state.json"), serde_json::to_vec(&st)?)?;
        let summary = acc.finish();
        let result = BenchmarkResult {
            header,
            spec: RunSpec { num_prompts: Some(n * shards), percentiles: vec![50.0, 90.0, 95.0, 99.0], ..RunSpec::default() },
            summary,
            client: ClientUsage::default(),
            warmup_excluded: 0,
            dataset: DatasetStats::default(),
            interrupted: false,
            monitors: None,
            shard: Some(ShardInfo {
                shard: Shard { index: s, count: shards },
                max_concurrency: None,
                scheduled: n,
                epoch_unix_ns: epoch0 + s * 1_000_000,
                start_at_unix_ns: Some(epoch0),
                late_ms: Some(s as f64),
                clock: ClockSync::default(),
                state_file: Some(format!("shard-{s}.state.json")),
            }),
            merged: None,
            per_request: Default::default(),
            imported: None,
        };
        std::fs::write(format!("{stem}.json"), serde_json::to_vec_pretty(&result.to_json())?)?;
    }
    Ok(())
}
