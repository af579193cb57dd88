//! `inferbench demo`: the README's main job. Starts the embedded server on a free loopback port,
//! benchmarks it at a few concurrency levels, prints the summaries and a comparison, stops it.

use crate::args::{DemoArgs, RunArgs, SimArgs};
use crate::run::RunPlan;
use crate::serve;
use anyhow::Result;
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
    let default_levels = if a.sim { "1,8,32" } else { "1,4,8" };
    let spec = a.concurrency.clone().unwrap_or_else(|| default_levels.into());
    let levels: Vec<u64> = spec
        .split(',')
        .map(|c| c.trim().parse::<u64>().ok().filter(|&c| c > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow::anyhow!("invalid --concurrency '{spec}': expected positive integers like 1,8,32"))?;
    crate::proc::raise_nofile_limit();
    let sim = SimOnly::parse_from(["sim"]).sim;
    // The workload: the simulator gets 256-token prompts; the CPU model shorter ones so the demo
    // stays within a minute or two.
    let (server, label, tokenizer, input_len, output_len) = if a.sim {
        let cfg = sim.config();
        let server = serve::start("127.0.0.1", 0, serve::simulator(&sim)?, None).await?;
        println!(
            "Simulator at {} (TTFT {} ms + {} ms/prompt token, ITL {} ms + {} ms per extra running sequence, max {} sequences)\n",
            server.url, cfg.ttft_ms, cfg.prefill_ms_per_token, cfg.itl_ms, cfg.itl_ms_per_seq, cfg.max_num_seqs
        );
        (server, "sim", "cl100k_base".to_owned(), 256, 64)
    } else {
        let (gen, info) = serve::engine(&a.engine, &sim).await?;
        let server = serve::start("127.0.0.1", 0, gen, None).await?;
        println!("Embedded engine at {}\n  {}\n", server.url, info.summary);
        (server, "engine", info.path.to_string_lossy().into_owned(), 128, 64)
    };
    let mut results = Vec::new();
    let mut interrupted = false;
    for c in levels {
        let n = a.num_prompts.unwrap_or(if a.sim { (c * 4).clamp(16, 256) } else { (c * 2).clamp(8, 32) }).to_string();
        let conc = c.to_string();
        let dir = a.result_dir.to_string_lossy().into_owned();
        let stem = format!("demo-{label}-c{c}");
        let (il, ol) = (input_len.to_string(), output_len.to_string());
        let args = RunOnly::parse_from([
            "run",
            "--base-url",
            &server.url,
            "--backend",
            "vllm",
            "--tokenizer",
            &tokenizer,
            "--random-input-len",
            &il,
            "--random-output-len",
            &ol,
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
        println!("--- concurrency {c}: {n} requests of {input_len} prompt / {output_len} output tokens ---");
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
    println!("Results in {}/demo-{label}-c*.{{json,csv,records.jsonl}}", a.result_dir.display());
    Ok(!interrupted)
}
