//! Baseline against variant (seed 003): the same requests submitted together at each batch size
//! on two loadings of the model, with speedup, latency reduction and a verdict.

use super::recorder::{run_together, Recorder};
use super::{config, dist, Result};
use crate::error::{BenchError, Context};
use crate::observer::{Event, Observer};
use inferbench_core::engine_bench::{CompareConfig, Variant, VariantComparison, VariantRow};
use inferbench_engine::{Engine, EngineConfig};
use std::path::Path;
use std::time::Instant;

/// Per batch size: wall latency of `b` requests submitted together and their output tokens/s.
fn measure_side(
    v: &Variant,
    c: &CompareConfig,
    path: &Path,
    ids: &[u32],
    threads: usize,
    rec: &Recorder,
    obs: &Observer,
) -> Result<Vec<Vec<(f64, f64)>>> {
    let l = inferbench_engine::load(path, &config::load_options(&v.quantization)?).ctx(format!("loading {}", v.name))?;
    let max_b = c.batch_sizes.iter().copied().max().unwrap_or(1);
    let cfg = EngineConfig {
        max_num_seqs: max_b,
        threads: if v.threads > 0 { v.threads } else { threads },
        kv_cache_bytes: 1 << 30,
        ..Default::default()
    };
    let e = Engine::start(l.model.clone(), l.tokenizer.clone(), l.eos.clone(), cfg).map_err(|err| BenchError::failed(err.to_string()))?;
    let prompt: Vec<u32> = ids.iter().cycle().take(c.input_tokens).copied().collect();
    let mut out = Vec::new();
    for &b in &c.batch_sizes {
        let prompts = vec![prompt.clone(); b];
        run_together(&e, &prompts, c.tokens_per_request, rec, "warmup")?;
        let mut its = Vec::new();
        for _ in 0..c.iterations {
            let t = Instant::now();
            let traces = run_together(&e, &prompts, c.tokens_per_request, rec, &format!("comparison/{}/batch_{b}", v.name))?;
            let wall = t.elapsed().as_secs_f64();
            its.push((wall * 1e3, traces.iter().map(|t| t.output_tokens as f64).sum::<f64>() / wall));
        }
        (obs)(&Event::Progress(&format!(
            "  comparison {} batch {b}: {:.1} tok/s",
            v.name,
            its.iter().map(|x| x.1).sum::<f64>() / its.len() as f64
        )));
        out.push(its);
    }
    Ok(out)
}

/// Runs both sides at every batch size and compares them.
pub(super) fn run(
    c: &CompareConfig,
    path: &Path,
    ids: &[u32],
    threads: usize,
    rec: &Recorder,
    obs: &Observer,
) -> Result<VariantComparison> {
    if c.iterations == 0 || c.batch_sizes.is_empty() || c.batch_sizes.contains(&0) || c.tokens_per_request == 0 || c.input_tokens == 0 {
        return Err(BenchError::invalid("comparison: iterations, batch_sizes, input_tokens and tokens_per_request must be positive"));
    }
    let base = measure_side(&c.baseline, c, path, ids, threads, rec, obs)?;
    crate::proc::release_free_memory();
    let var = measure_side(&c.variant, c, path, ids, threads, rec, obs)?;
    let rows: Vec<VariantRow> = c
        .batch_sizes
        .iter()
        .zip(base.iter().zip(&var))
        .map(|(&b, (bi, vi))| {
            let bl = dist(bi.iter().map(|x| x.0));
            let vl = dist(vi.iter().map(|x| x.0));
            let bt = dist(bi.iter().map(|x| x.1));
            let vt = dist(vi.iter().map(|x| x.1));
            VariantRow {
                batch_size: b,
                speedup: vt.mean / bt.mean,
                latency_reduction: 1.0 - vl.mean / bl.mean,
                baseline_iterations_ms: bi.iter().map(|x| x.0).collect(),
                variant_iterations_ms: vi.iter().map(|x| x.0).collect(),
                baseline_latency_ms: bl,
                variant_latency_ms: vl,
                baseline_tokens_per_second: bt,
                variant_tokens_per_second: vt,
            }
        })
        .collect();
    let n = rows.len() as f64;
    let average_speedup = rows.iter().map(|r| r.speedup).sum::<f64>() / n;
    let average_latency_reduction = rows.iter().map(|r| r.latency_reduction).sum::<f64>() / n;
    let faster = rows.iter().filter(|r| r.speedup > 1.0).count();
    let verdict = if faster == rows.len() {
        format!("{} is faster than {} at every batch size ({:.2}x on average)", c.variant.name, c.baseline.name, average_speedup)
    } else if faster == 0 {
        format!("{} is slower than {} at every batch size ({:.2}x on average)", c.variant.name, c.baseline.name, average_speedup)
    } else {
        format!("mixed: {} is faster at {faster} of {} batch sizes ({:.2}x on average)", c.variant.name, rows.len(), average_speedup)
    };
    Ok(VariantComparison {
        baseline: c.baseline.clone(),
        variant: c.variant.clone(),
        rows,
        average_speedup,
        average_latency_reduction,
        verdict,
    })
}
