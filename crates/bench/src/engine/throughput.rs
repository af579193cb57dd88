//! Throughput in the engine's own scheduler: one request alone, `concurrent_requests` at once
//! (repeated for `duration_seconds`), and each batch size; plus what the timing itself costs.

use super::recorder::run_together;
use super::{dist, Bench, Result};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Instant;

/// Runs the section.
pub(super) fn run(b: &Bench<'_>) -> Result<BTreeMap<String, f64>> {
    let cfg = &b.cfg.throughput;
    let mut throughput: BTreeMap<String, f64> = BTreeMap::new();
    let tpr = cfg.tokens_per_request;
    let base = b.prompt(32);
    let single = run_together(&b.engine, std::slice::from_ref(&base), tpr, b.rec, "throughput/single")?.remove(0);
    throughput.insert("single_decode_tokens_per_second".into(), single.decode_tok_s);
    throughput.insert("single_e2e_ms".into(), single.e2e_ms);
    // What the instrumentation costs: one clock read and one channel send per token, timed over
    // many repetitions, against the measured time per decoded token.
    let probe = Instant::now();
    let (tx, rx) = mpsc::channel();
    let reps = 200_000u32;
    for i in 0..reps {
        let _ = tx.send((Instant::now(), i));
    }
    drop(rx);
    let per_token_s = probe.elapsed().as_secs_f64() / f64::from(reps);
    if single.decode_tok_s > 0.0 {
        throughput.insert("timing_overhead_percent".into(), 100.0 * per_token_s * single.decode_tok_s);
    }
    let n = cfg.concurrent_requests;
    if n > 0 {
        let t = Instant::now();
        let mut all = Vec::new();
        loop {
            all.extend(run_together(&b.engine, &vec![base.clone(); n], tpr, b.rec, &format!("throughput/concurrent_{n}"))?);
            if t.elapsed().as_secs_f64() >= cfg.duration_seconds {
                break;
            }
        }
        let wall = t.elapsed().as_secs_f64();
        let lat = dist(all.iter().map(|t| t.e2e_ms));
        throughput.insert(format!("concurrent_{n}_requests_per_second"), all.len() as f64 / wall);
        throughput.insert(format!("concurrent_{n}_latency_avg_ms"), lat.mean);
        throughput.insert(format!("concurrent_{n}_latency_p99_ms"), lat.percentile(99.0).unwrap_or(lat.max));
        throughput
            .insert(format!("concurrent_{n}_output_tokens_per_second"), all.iter().map(|t| t.output_tokens as f64).sum::<f64>() / wall);
    }
    for &bs in &cfg.batch_sizes {
        let t = Instant::now();
        let traces = run_together(&b.engine, &vec![base.clone(); bs], tpr, b.rec, &format!("throughput/batch_{bs}"))?;
        let wall = t.elapsed().as_secs_f64();
        throughput.insert(format!("batch_{bs}_tokens_per_second"), traces.iter().map(|t| t.output_tokens as f64).sum::<f64>() / wall);
    }
    for (k, v) in &throughput {
        b.progress(&format!("  throughput {k}: {v:.1}"));
    }
    Ok(throughput)
}
