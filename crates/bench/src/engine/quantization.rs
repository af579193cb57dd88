//! Quantization: the same model held in other formats, each format's greedy tokens compared with
//! the F32 reference's, with load memory and decode rate.

use super::{config, vm, with_pool, Result};
use crate::error::{BenchError, Context};
use crate::observer::{Event, Observer};
use inferbench_core::engine_bench::{QuantConfig, QuantRow};
use std::path::Path;
use std::time::Instant;

/// Loads the model in each format and compares greedy tokens with the F32 reference.
pub(super) fn run(
    q: &QuantConfig,
    path: &Path,
    prompts: &[Vec<u32>],
    eos: &[u32],
    threads: usize,
    obs: &Observer,
) -> Result<Vec<QuantRow>> {
    if q.formats.is_empty() {
        return Ok(Vec::new());
    }
    let mut formats = q.formats.clone();
    if !formats.iter().any(|f| f == "f32") {
        formats.push("f32".into());
    }
    let greedy = inferbench_engine::SamplingParams::default();
    let mut runs = Vec::new();
    for f in &formats {
        crate::proc::release_free_memory();
        let before = vm("VmRSS:");
        let l = inferbench_engine::load(path, &config::load_options(f)?).ctx(format!("loading as {f}"))?;
        let load_mb = vm("VmRSS:").saturating_sub(before) as f64 / 1e6;
        let m = l.model.clone();
        let t = Instant::now();
        let outs = with_pool(threads, || {
            prompts
                .iter()
                .map(|p| inferbench_engine::speculative::generate_plain(&m, p, q.max_tokens, &greedy, eos, true))
                .collect::<std::result::Result<Vec<_>, _>>()
        })?
        .map_err(|e| BenchError::failed(e.to_string()))?;
        let tokens: usize = outs.iter().map(Vec::len).sum();
        let tps = tokens as f64 / t.elapsed().as_secs_f64();
        (obs)(&Event::Progress(&format!("  quantization {f}: {load_mb:.0} MB loaded, {tps:.1} tok/s")));
        runs.push((f.clone(), load_mb, m.weight_bytes as f64 / 1e6, tps, outs));
        drop(l);
    }
    let reference = runs.iter().find(|r| r.0 == "f32").map(|r| r.4.clone()).unwrap_or_default();
    Ok(runs
        .into_iter()
        .filter(|r| q.formats.contains(&r.0))
        .map(|(format, load_mb, weights_mb, tps, outs)| {
            let (mut same, mut total, mut identical) = (0, 0, 0);
            for (o, r) in outs.iter().zip(&reference) {
                same += o.iter().zip(r).filter(|(a, b)| a == b).count();
                total += o.len().max(r.len());
                identical += usize::from(o == r);
            }
            QuantRow {
                format,
                load_mb,
                weights_mb,
                decode_tokens_per_second: tps,
                token_agreement: same as f64 / total.max(1) as f64,
                identical_outputs: identical,
                prompts: outs.len(),
            }
        })
        .collect())
}
