//! `inferbench demo`: the README's main job. Starts the embedded server on a free loopback port,
//! benchmarks it at a few concurrency levels (specs built in code), prints the summaries and a
//! comparison, stops it.

use crate::args::{DemoArgs, SimArgs};
use crate::progress::ProgressSink;
use crate::serve;
use anyhow::Result;
use clap::Parser;
use inferbench_bench::serving::{Output, RunOptions};
use inferbench_bench::Benchmark;
use inferbench_core::spec::{DatasetSpec, RunSpec};
use inferbench_report::{render_summary, runs_table, ConsoleOptions};

#[derive(Parser)]
struct SimOnly {
    #[command(flatten)]
    sim: SimArgs,
}

/// The demo's run at one concurrency level.
fn level_spec(url: &str, tokenizer: &str, input_len: u32, output_len: u32, n: u64, c: u64) -> RunSpec {
    let mut s = RunSpec::new(url);
    s.backend = "vllm".into();
    s.tokenizer = tokenizer.into();
    s.dataset = DatasetSpec::random(input_len, output_len);
    (s.num_prompts, s.max_concurrency) = (Some(n), Some(c));
    s
}

/// Runs the demo; `Ok(true)` when interrupted.
pub async fn run(a: DemoArgs, interrupt: crate::Interrupt) -> Result<bool> {
    let stop = interrupt.stop.clone();
    let default_levels = if a.sim { "1,8,32" } else { "1,4,8" };
    let spec = a.concurrency.clone().unwrap_or_else(|| default_levels.into());
    let levels: Vec<u64> = spec
        .split(',')
        .map(|c| c.trim().parse::<u64>().ok().filter(|&c| c > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| crate::usage(format!("invalid --concurrency '{spec}': expected positive integers like 1,8,32")))?;
    inferbench_bench::proc::raise_nofile_limit();
    let sim = SimOnly::parse_from(["sim"]).sim;
    // The workload: the simulator gets 256-token prompts; the CPU model shorter ones so the demo
    // stays within a minute or two.
    let (server, label, tokenizer, input_len, output_len) = if a.sim {
        let cfg = sim.config();
        let server = serve::start("127.0.0.1", 0, serve::simulator(&sim)?, None, None).await?;
        outln!(
            "Simulator at {} (TTFT {} ms + {} ms/prompt token, ITL {} ms + {} ms per extra running sequence, max {} sequences)\n",
            server.url,
            cfg.ttft_ms,
            cfg.prefill_ms_per_token,
            cfg.itl_ms,
            cfg.itl_ms_per_seq,
            cfg.max_num_seqs
        );
        (server, "sim", "cl100k_base".to_owned(), 256, 64)
    } else {
        let (gen, info) = serve::engine(&a.engine, &sim).await?;
        let server = serve::start("127.0.0.1", 0, gen, None, None).await?;
        outln!("Embedded engine at {}\n  {}\n", server.url, info.summary);
        (server, "engine", info.path.to_string_lossy().into_owned(), 128, 64)
    };
    let mut results = Vec::new();
    let mut interrupted = false;
    for c in levels {
        let n = a.num_prompts.unwrap_or(if a.sim { (c * 4).clamp(16, 256) } else { (c * 2).clamp(8, 32) });
        let spec = level_spec(&server.url, &tokenizer, input_len, output_len, n, c);
        let opts = RunOptions {
            output: Some(Output { dir: a.result_dir.clone(), stem: format!("demo-{label}-c{c}") }),
            server_in_process: true,
            ..RunOptions::default()
        };
        outln!("--- concurrency {c}: {n} requests of {input_len} prompt / {output_len} output tokens ---");
        let run = Benchmark::serving(spec, opts)?;
        let paths = run.paths();
        let result = run
            .with_sink(ProgressSink::new(true, Some(n), None))
            .cancel_on(stop.clone())
            .abort_on(interrupt.abort.clone())
            .observe(crate::run::printer(false))
            .run()
            .await?;
        out!("{}", render_summary(&result, &ConsoleOptions::default()));
        if let Some(p) = paths {
            outln!("Results: {}\n         {}\n         {}", p.json.display(), p.csv.display(), p.records.display());
            crate::store::record(&a.store, std::slice::from_ref(&p.json));
        }
        interrupted |= result.interrupted;
        results.push((format!("c={c}"), result));
        if stop.is_cancelled() {
            break;
        }
    }
    server.shutdown().await?;
    let rows: Vec<(String, &_)> = results.iter().map(|(l, r)| (l.clone(), r)).collect();
    outln!("\n{}", runs_table(&rows));
    outln!("Results in {}/demo-{label}-c*.{{json,csv,records.jsonl,timeseries.jsonl}}", a.result_dir.display());
    Ok(interrupted)
}
