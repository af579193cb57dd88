//! llama-bench's tests run on our engine, the way llama-bench runs them on llama.cpp's: one
//! sequence driven through the model's forward pass directly (no scheduler), random token ids,
//! the KV cache filled to the test's depth untimed, then `pp` prompt tokens processed in
//! `batch_size`-token steps and/or `tg` tokens generated one step each, timed together with a
//! monotonic clock. t/s per repetition is (n_prompt + n_gen) / time, aggregated as llama-bench
//! does ([`LlamaBenchTest::set_samples`]). Tokenization and sampling are not timed (as there).

use super::recorder::Recorder;
use super::{with_pool, Result};
use crate::error::{BenchError, Context};
use crate::observer::{Event, Observer};
use inferbench_core::engine_bench::{LlamaBenchConfig, LlamaBenchTest};
use inferbench_data::gguf::GgufMetadata;
use inferbench_engine::{BatchItem, KvCache, Model};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::Instant;

/// What every test row shares: the model's size, parameter count and description (from the
/// file's tensor directory, as llama.cpp's `llama_model_size`, `llama_model_n_params` and
/// `llama_model_desc`: architecture, size class, file type) and this build.
pub(super) fn describe(path: &Path, model: &Model, cfg: &LlamaBenchConfig) -> Result<LlamaBenchTest> {
    let md = GgufMetadata::read(path).map_err(|e| BenchError::invalid(format!("{}: {e}", path.display())))?;
    let n_params: u64 = md.tensors.iter().map(|t| t.elements()).sum();
    let size: u64 =
        md.tensors.iter().map(|t| inferbench_engine::quant::ggml_size(t.ggml_type, t.elements() as usize).unwrap_or(0) as u64).sum();
    let class = if n_params < 1_000_000 {
        format!("{:.2}M", n_params as f64 / 1e6)
    } else if n_params < 1_000_000_000 {
        format!("{}M", (n_params as f64 / 1e6).round())
    } else {
        format!("{}B", (n_params as f64 / 1e8).round() / 10.0)
    };
    let tool = crate::tool_info();
    Ok(LlamaBenchTest {
        build_commit: tool.commit.map_or_else(|| format!("inferbench {}", tool.version), |c| c.chars().take(8).collect()),
        cpu_info: inferbench_core::sysinfo::SystemInfo::collect().cpu_model,
        backends: "CPU".into(),
        model_filename: path.display().to_string(),
        model_type: format!("{} {class} {}", model.cfg.arch, model.file_format),
        model_size: size,
        model_n_params: n_params,
        n_batch: cfg.batch_size,
        ..Default::default()
    })
}

/// Checks the section before the model is loaded.
pub(crate) fn validate(c: &LlamaBenchConfig) -> Result<()> {
    let bad = |m: String| Err(BenchError::invalid(format!("llama_bench: {m}")));
    if c.repetitions == 0 {
        return bad("repetitions must be at least 1".into());
    }
    if c.batch_size == 0 {
        return bad("batch_size must be at least 1".into());
    }
    if c.threads.contains(&0) {
        return bad("threads must be positive".into());
    }
    if c.depth.is_empty() {
        return bad("depth needs at least one value (0 for an empty cache)".into());
    }
    if c.pp.iter().chain(&c.tg).all(|&n| n == 0) && c.pg.is_empty() {
        return bad("no test to run: every pp and tg value is 0 and pg is empty".into());
    }
    if c.pg.iter().any(|[p, g]| *p == 0 || *g == 0) {
        return bad("each pg pair needs a positive prompt and generation length (pp,tg)".into());
    }
    if !inferbench_report::llama_bench::FORMATS.contains(&c.output.as_str()) {
        return bad(format!("unknown output '{}' ({})", c.output, inferbench_report::llama_bench::FORMATS.join(", ")));
    }
    Ok(())
}

/// The tests in llama-bench's order: per thread count and depth, every pp, then every tg, then
/// every pg pair.
pub(super) fn plan(c: &LlamaBenchConfig, threads: usize) -> Vec<(usize, usize, usize, usize)> {
    let ts = if c.threads.is_empty() { vec![threads] } else { c.threads.clone() };
    let mut out = Vec::new();
    for &t in &ts {
        for &d in &c.depth {
            out.extend(c.pp.iter().filter(|&&p| p > 0).map(|&p| (t, d, p, 0)));
            out.extend(c.tg.iter().filter(|&&g| g > 0).map(|&g| (t, d, 0, g)));
            out.extend(c.pg.iter().map(|&[p, g]| (t, d, p, g)));
        }
    }
    out
}

/// Runs every test; each becomes a row and each repetition a record (category
/// `llama-bench/<test>`).
pub(super) fn run(
    c: &LlamaBenchConfig,
    model: &Model,
    base: &LlamaBenchTest,
    threads: usize,
    rec: &Recorder,
    obs: &Observer,
) -> Result<Vec<LlamaBenchTest>> {
    let tests = plan(c, threads);
    let longest = tests.iter().map(|&(_, d, p, g)| d + p + g).max().unwrap_or(0);
    if longest > model.cfg.context_length {
        return Err(BenchError::invalid(format!(
            "llama_bench: {longest} tokens (depth + pp + tg) exceed the model's context of {}",
            model.cfg.context_length
        )));
    }
    let mut rows = Vec::new();
    for (i, &(t, d, p, g)) in tests.iter().enumerate() {
        let mut row = LlamaBenchTest {
            n_threads: t,
            n_depth: d,
            n_prompt: p,
            n_gen: g,
            test_time: inferbench_core::time::rfc3339_now(),
            ..base.clone()
        };
        (obs)(&Event::Progress(&format!("  llama-bench {}/{}: {} ({t} threads) ...", i + 1, tests.len(), row.name())));
        let samples = with_pool(t, || one_test(c, model, &row, rec))??;
        // The test's cache and activations are freed; their pages must not count against the
        // next test's peak (as they would not in a fresh llama-bench process).
        inferbench_engine::release_freed_memory();
        if samples.is_empty() {
            break;
        }
        let partial = samples.len() < c.repetitions;
        row.set_samples(samples);
        (obs)(&Event::Progress(&format!("  {:<15} {t} threads  {:.2} ± {:.2} t/s", row.name(), row.avg_ts, row.stddev_ts)));
        rows.push(row);
        if partial {
            break;
        }
    }
    Ok(rows)
}

/// Feeds `n` random tokens to `cache` in steps of `batch`, asking for
/// the last step's logits as llama-bench's prompt test does.
fn prefill(model: &Model, cache: &mut KvCache, n: usize, batch: usize, rng: &mut impl Rng) -> Result<()> {
    let mut done = 0;
    while done < n {
        let take = batch.min(n - done);
        let tokens: Vec<u32> = (0..take).map(|_| rng.random_range(0..model.cfg.vocab as u32)).collect();
        let start = cache.len();
        model
            .forward(&mut [BatchItem { tokens: &tokens, start, cache, want_logits: done + take == n }])
            .map_err(|e| BenchError::failed(format!("llama-bench prefill: {e}")))?;
        done += take;
    }
    Ok(())
}

/// Generates `n` tokens one forward step each (random ids: sampling is not what is timed), the
/// instant after each step appended to `marks`.
fn generate(model: &Model, cache: &mut KvCache, n: usize, rng: &mut impl Rng, marks: &mut Vec<Instant>) -> Result<()> {
    let mut token = rng.random_range(0..model.cfg.vocab as u32);
    for _ in 0..n {
        let start = cache.len();
        model
            .forward(&mut [BatchItem { tokens: &[token], start, cache, want_logits: true }])
            .map_err(|e| BenchError::failed(format!("llama-bench generation: {e}")))?;
        marks.push(Instant::now());
        token = rng.random_range(0..model.cfg.vocab as u32);
    }
    Ok(())
}

/// One test's repetitions, ns each; fewer when the benchmark is cancelled (the ones finished).
fn one_test(c: &LlamaBenchConfig, model: &Model, row: &LlamaBenchTest, rec: &Recorder) -> Result<Vec<u64>> {
    let (d, p, g) = (row.n_depth, row.n_prompt, row.n_gen);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x11a3a);
    let mut cache = KvCache::new(model.cfg.n_layer, model.cfg.kv_dim(), d + p + g.max(1));
    // The depth is filled once; each repetition cuts the cache back to it (llama-bench restores
    // a saved state to the same effect).
    prefill(model, &mut cache, d, c.batch_size, &mut rng)?;
    if c.warmup {
        prefill(model, &mut cache, p, c.batch_size, &mut rng)?;
        if g > 0 {
            generate(model, &mut cache, 1, &mut rng, &mut Vec::new())?;
        }
        cache.truncate(d);
    }
    let category = format!("llama-bench/{}", row.name());
    let mut samples = Vec::with_capacity(c.repetitions);
    for _ in 0..c.repetitions {
        if rec.cancelled() {
            break;
        }
        cache.truncate(d);
        let mut marks = Vec::with_capacity(g + 1);
        let t0 = Instant::now();
        prefill(model, &mut cache, p, c.batch_size, &mut rng)?;
        if p > 0 {
            marks.push(Instant::now());
        }
        generate(model, &mut cache, g, &mut rng, &mut marks)?;
        let end = marks.last().copied().ctx("a test with neither prompt nor generation")?;
        samples.push((end - t0).as_nanos() as u64);
        rec.add_run(t0, &marks, d + p, g, &category)?;
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_follows_llama_bench_order() {
        let c = LlamaBenchConfig { pp: vec![64, 0], tg: vec![16], pg: vec![[8, 4]], depth: vec![0, 32], ..Default::default() };
        assert_eq!(plan(&c, 2), vec![(2, 0, 64, 0), (2, 0, 0, 16), (2, 0, 8, 4), (2, 32, 64, 0), (2, 32, 0, 16), (2, 32, 8, 4)]);
        let c = LlamaBenchConfig { threads: vec![1, 2], pp: vec![], ..Default::default() };
        assert_eq!(plan(&c, 8), vec![(1, 0, 0, 128), (2, 0, 0, 128)]);
    }

    #[test]
    fn bad_sections_are_named() {
        let e = |c: LlamaBenchConfig| validate(&c).unwrap_err().to_string();
        assert!(e(LlamaBenchConfig { repetitions: 0, ..Default::default() }).contains("repetitions"));
        assert!(e(LlamaBenchConfig { pp: vec![0], tg: vec![], ..Default::default() }).contains("no test"));
        assert!(e(LlamaBenchConfig { output: "xml".into(), ..Default::default() }).contains("md, csv, json, jsonl, sql"));
        assert!(e(LlamaBenchConfig { pg: vec![[0, 4]], ..Default::default() }).contains("pg"));
        validate(&LlamaBenchConfig::default()).unwrap();
    }
}
