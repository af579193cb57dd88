//! The latency grid: every input length by every output length, warm-up runs, then `test_runs`
//! measured runs per cell.

use super::recorder::run_together;
use super::{dist, Bench, Result};
use inferbench_core::engine_bench::LatencyCell;
use std::collections::BTreeMap;

/// Runs the grid; adds per-cell, worst-TTFT and slowest-decode figures to `metrics`. Once the
/// benchmark is cancelled the grid stops: the cells finished are returned (the cell in progress
/// is left out; its requests are in the records file).
pub(super) fn run(b: &Bench<'_>, metrics: &mut BTreeMap<String, f64>) -> Result<Vec<LatencyCell>> {
    let cfg = &b.cfg.latency;
    let mut cells = Vec::new();
    'grid: for &input in &cfg.input_lengths {
        for &output in &cfg.output_lengths {
            let p = b.prompt(input);
            let mut it = Vec::new();
            for i in 0..cfg.warmup_runs + cfg.test_runs {
                let label = if i < cfg.warmup_runs { "warmup".to_owned() } else { format!("latency/in{input}_out{output}") };
                match run_together(&b.engine, std::slice::from_ref(&p), output, b.rec, &label) {
                    Err(_) if b.rec.cancelled() => break 'grid,
                    Err(e) => return Err(e),
                    Ok(t) if i >= cfg.warmup_runs => it.extend(t),
                    Ok(_) => {}
                }
            }
            let cell = LatencyCell {
                input_tokens: input,
                output_tokens: output,
                ttft_ms: dist(it.iter().map(|t| t.ttft_ms)),
                decode_tok_s: dist(it.iter().map(|t| t.decode_tok_s)),
                e2e_ms: dist(it.iter().map(|t| t.e2e_ms)),
                iterations: it,
            };
            b.progress(&format!(
                "  latency in={input:<5} out={output:<5} TTFT {:.1} ± {:.1} ms, decode {:.1} ± {:.1} tok/s, E2E {:.1} ms",
                cell.ttft_ms.mean, cell.ttft_ms.std, cell.decode_tok_s.mean, cell.decode_tok_s.std, cell.e2e_ms.mean
            ));
            let key = format!("in{input}_out{output}");
            metrics.insert(format!("ttft_ms_{key}"), cell.ttft_ms.mean);
            metrics.insert(format!("decode_tokens_per_second_{key}"), cell.decode_tok_s.mean);
            metrics.insert(format!("e2e_ms_{key}"), cell.e2e_ms.mean);
            cells.push(cell);
        }
    }
    if let Some(worst) = cells.iter().map(|c| c.ttft_ms.mean).reduce(f64::max) {
        metrics.insert("ttft_ms".into(), worst);
    }
    if let Some(slowest) = cells.iter().map(|c| c.decode_tok_s.mean).reduce(f64::min) {
        metrics.insert("tokens_per_second".into(), slowest);
    }
    Ok(cells)
}
