//! Memory: what loading the model added, its weights, peak resident memory, and the KV cache of
//! the longest latency cell, computed and measured.

use super::{vm, Bench, Result};
use crate::error::BenchError;
use inferbench_engine::Model;
use std::collections::BTreeMap;

/// Runs the section; `rss0` and `rss_loaded` are resident bytes before and after the load.
pub(super) fn run(
    b: &Bench<'_>,
    m: &Model,
    rss0: u64,
    rss_loaded: u64,
    longest: usize,
    metrics: &mut BTreeMap<String, f64>,
) -> Result<BTreeMap<String, f64>> {
    let cfg = &b.cfg.memory;
    let mut memory: BTreeMap<String, f64> = BTreeMap::new();
    memory.insert("model_load_mb".into(), rss_loaded.saturating_sub(rss0) as f64 / 1e6);
    memory.insert("model_weights_mb".into(), m.weight_bytes as f64 / 1e6);
    if cfg.measure_peak {
        let peak = crate::proc::peak_rss_bytes();
        memory.insert("peak_rss_mb".into(), peak as f64 / 1e6);
        memory.insert("inference_delta_mb".into(), peak.saturating_sub(rss_loaded) as f64 / 1e6);
        metrics.insert("memory_gb".into(), peak as f64 / 1e9);
    }
    if cfg.measure_kv_cache && longest > 0 {
        let computed = longest * m.cfg.kv_bytes_per_token();
        memory.insert("kv_cache_computed_mb".into(), computed as f64 / 1e6);
        // Measured: resident growth while one sequence of that length is cached.
        crate::proc::release_free_memory();
        let before = vm("VmRSS:");
        let mut cache = inferbench_engine::KvCache::new(m.cfg.n_layer, m.cfg.kv_dim(), longest);
        let toks = b.prompt(longest);
        m.forward(&mut [inferbench_engine::BatchItem { tokens: &toks, start: 0, cache: &mut cache, want_logits: false }])
            .map_err(|err| BenchError::failed(format!("memory: {err}")))?;
        // The forward pass's scratch buffers are freed by now; hand them back before reading.
        crate::proc::release_free_memory();
        memory.insert("kv_cache_measured_mb".into(), vm("VmRSS:").saturating_sub(before) as f64 / 1e6);
        drop(cache);
    }
    for (k, v) in &memory {
        b.progress(&format!("  memory {k}: {v:.1}"));
    }
    Ok(memory)
}
