//! `inferbench demo`: the README's main job. Starts the embedded server on a free loopback port,
//! benchmarks it at a few concurrency levels, prints the summaries and a comparison, stops it.

use crate::args::{DemoArgs, RunArgs, SimArgs};
use crate::run::RunPlan;
use crate::serve;
use anyhow::{bail, Result};
use clap::Parser;
use inferbench_report::runs_table;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct RunOnly {
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Parser)]
struct SimOnly {
    #[command(flatten)]
    sim: SimArgs,
}

/// Runs the demo.
pub async fn run(a: DemoArgs, stop: CancellationToken) -> Result<bool> {
    if !a.sim {
        bail!("the embedded model engine is not part of this build yet; run `inferbench demo --sim` to benchmark the simulator");
    }
    let levels: Vec<u64> = a
        .concurrency
        .split(',')
        .map(|c| c.trim().parse::<u64>().ok().filter(|&c| c > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow::anyhow!("invalid --concurrency '{}': expected positive integers like 1,8,32", a.concurrency))?;
    crate::proc::raise_nofile_limit();
    let sim = SimOnly::parse_from(["sim"]).sim;
    let cfg = sim.config();
    let server = serve::start("127.0.0.1", 0, serve::simulator(&sim)?, None).await?;
    println!(
        "Simulator at {} (TTFT {} ms + {} ms/prompt token, ITL {} ms + {} ms per extra running sequence, max {} sequences)\n",
        server.url, cfg.ttft_ms, cfg.prefill_ms_per_token, cfg.itl_ms, cfg.itl_ms_per_seq, cfg.max_num_seqs
    );
    let mut results = Vec::new();
    let mut interrupted = false;
    for c in levels {
        let n = a.num_prompts.unwrap_or((c * 4).clamp(16, 256)).to_string();
        let conc = c.to_string();
        let dir = a.result_dir.to_string_lossy().into_owned();
        let stem = format!("demo-sim-c{c}");
        let args = RunOnly::parse_from([
            "run",
            "--base-url",
            &server.url,
            "--backend",
            "vllm",
            "--random-input-len",
            "256",
            "--random-output-len",
            "64",
            "--num-prompts",
            &n,
            "--max-concurrency",
            &conc,
            "--result-dir",
            &dir,
            "--result-filename",
            &stem,
        ])
        .run;
        println!("--- concurrency {c}: {n} requests of 256 prompt / 64 output tokens ---");
        let result = RunPlan::from_args(&args)?.with_server_in_process().execute(stop.clone()).await?;
        interrupted |= result.interrupted;
        results.push((format!("c={c}"), result));
        if stop.is_cancelled() {
            break;
        }
    }
    server.shutdown().await?;
    let rows: Vec<(String, &_)> = results.iter().map(|(l, r)| (l.clone(), r)).collect();
    println!("\n{}", runs_table(&rows));
    println!("Results in {}/demo-sim-c*.{{json,csv,records.jsonl}}", a.result_dir.display());
    Ok(!interrupted)
}
