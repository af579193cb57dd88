//! `inferbench-wire-truth`: one run's records against its packet capture.

use anyhow::{bail, Context, Result};
use clap::Parser;
use inferbench_core::RequestRecord;
use inferbench_load::Backend;
use inferbench_wire::{compare, read_segments, Follower, Gap};
use std::path::PathBuf;

/// Sets a run's records against a loopback packet capture taken during it, and prints the
/// client's TTFT and ITL minus the wire's (see docs/metrics.md, "Checked on the wire").
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The capture (`tcpdump -i lo -w FILE`, pcap, either timestamp precision).
    #[arg(long)]
    pcap: PathBuf,
    /// The run's result JSON; its `.records.jsonl` must be beside it.
    #[arg(long)]
    result: PathBuf,
    /// A label for the printed lines (e.g. the load).
    #[arg(long, default_value = "")]
    label: String,
    /// Print the figures as one JSON object instead.
    #[arg(long)]
    json: bool,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(a: Args) -> Result<()> {
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&a.result).with_context(|| format!("reading {}", a.result.display()))?)
            .with_context(|| format!("{} is not a result JSON", a.result.display()))?;
    let spec = &result["spec"];
    let backend: Backend = spec["backend"].as_str().unwrap_or("openai").parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(prefix) = spec["request_id_prefix"].as_str() else {
        bail!("{} was run without request ids (--request-id-prefix \"\"); nothing can be paired", a.result.display());
    };
    let base = spec["base_url"].as_str().unwrap_or_default();
    let port: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .with_context(|| format!("no port in the base URL '{base}'"))?;
    let records_path = a.result.with_extension("records.jsonl");
    let text = std::fs::read_to_string(&records_path).with_context(|| format!("reading {}", records_path.display()))?;
    let records: Vec<RequestRecord> = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}", records_path.display(), i + 2)))
        .collect::<Result<_>>()?;

    let bytes = std::fs::read(&a.pcap).with_context(|| format!("reading {}", a.pcap.display()))?;
    let mut follower = Follower::new(port, backend);
    let counts = read_segments(&bytes, |s| follower.segment(s)).with_context(|| a.pcap.display().to_string())?;
    let wire = follower.finish();
    let truth = compare(&records, &wire.exchanges, prefix);
    if a.json {
        let v = serde_json::json!({"label": a.label, "packets": counts.packets, "truncated": counts.truncated,
            "broken_connections": wire.broken_connections, "truth": truth});
        println!("{v}");
        return Ok(());
    }
    let l = if a.label.is_empty() { String::new() } else { format!("{} | ", a.label) };
    println!(
        "{l}{} requests paired with the wire ({} not), {} packets, {} truncated, {} connections lost to capture gaps",
        truth.matched, truth.unmatched, counts.packets, counts.truncated, wire.broken_connections
    );
    let row = |what: &str, g: &Gap| {
        println!("{l}{what:<42} n={:<6} mean {:+.3}  median {:+.3}  p99 {:+.3} ms", g.n, g.mean_ms, g.median_ms, g.p99_ms)
    };
    row("TTFT client-wire, reused connections", &truth.ttft_reused);
    row("TTFT client-wire, all, connect taken out", &truth.ttft_all_no_connect);
    row("TTFT client-wire, all, connect included", &truth.ttft_all_with_connect);
    row("ITL client-wire, every gap", &truth.itl);
    if truth.itl_mismatched_streams > 0 {
        println!("{l}{} streams left out of ITL: client and wire counted different numbers of token events", truth.itl_mismatched_streams);
    }
    Ok(())
}
