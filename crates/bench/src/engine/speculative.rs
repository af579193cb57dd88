//! Speculative decoding: a draft model proposes, the target verifies; the rate against
//! target-only decoding, the acceptance rate, and (greedy) whether the output is unchanged.

use super::{config, with_pool, Result};
use crate::error::{BenchError, Context};
use crate::observer::{Event, Observer};
use inferbench_core::engine_bench::{SpecConfig, SpecResult};
use std::path::Path;
use std::time::Instant;

/// Generates every prompt target-only and speculatively, and compares rate and output.
pub(super) fn run(c: &SpecConfig, path: &Path, prompts: &[Vec<u32>], threads: usize, obs: &Observer) -> Result<SpecResult> {
    use inferbench_engine::speculative::{check_tokenizers, generate_plain, generate_speculative, SpecStats};
    let target = inferbench_engine::load(path, &config::load_options(&c.target_quantization)?).ctx("loading the target")?;
    let draft_path = match &c.draft {
        Some(d) => crate::models::resolve(Some(d), &mut super::pull_notes(obs))?.0,
        None => path.to_owned(),
    };
    let draft = inferbench_engine::load(&draft_path, &config::load_options(&c.draft_quantization)?).ctx("loading the draft")?;
    check_tokenizers(&target, &draft).map_err(|e| BenchError::failed(e.to_string()))?;
    let sampling = inferbench_engine::SamplingParams { temperature: c.temperature, top_p: 1.0, top_k: 0, seed: Some(0) };
    let (tm, dm, eos) = (target.model.clone(), draft.model.clone(), target.eos.clone());
    let (plain_s, spec_s, stats, identical, n) = with_pool(threads, || -> Result<_> {
        let (mut plain_time, mut spec_time, mut stats, mut identical, mut n) = (0.0, 0.0, SpecStats::default(), true, 0);
        let (mut plain_tokens, mut spec_tokens) = (0usize, 0usize);
        let start = Instant::now();
        loop {
            for p in prompts {
                let t = Instant::now();
                let a = generate_plain(&tm, p, c.max_tokens, &sampling, &eos, true).map_err(|e| BenchError::failed(e.to_string()))?;
                plain_time += t.elapsed().as_secs_f64();
                let t = Instant::now();
                let (b, s) = generate_speculative(&tm, &dm, p, c.max_tokens, c.gamma, &sampling, &eos, true)
                    .map_err(|e| BenchError::failed(e.to_string()))?;
                spec_time += t.elapsed().as_secs_f64();
                plain_tokens += a.len();
                spec_tokens += b.len();
                identical &= a == b;
                stats.proposed += s.proposed;
                stats.accepted += s.accepted;
                stats.rounds += s.rounds;
                stats.generated += s.generated;
                n += 1;
            }
            if start.elapsed().as_secs_f64() >= c.duration_seconds {
                break;
            }
        }
        Ok((plain_tokens as f64 / plain_time, spec_tokens as f64 / spec_time, stats, identical, n))
    })??;
    (obs)(&Event::Progress(&format!(
        "  speculative: target only {plain_s:.1} tok/s, speculative {spec_s:.1} tok/s, acceptance {:.1}%",
        stats.acceptance_rate() * 100.0
    )));
    Ok(SpecResult {
        target: format!("{} as {}", path.display(), c.target_quantization),
        draft: format!("{} as {}", draft_path.display(), c.draft_quantization),
        gamma: c.gamma,
        temperature: c.temperature,
        prompts_run: n,
        target_only_tokens_per_second: plain_s,
        speculative_tokens_per_second: spec_s,
        speedup: spec_s / plain_s,
        acceptance_rate: stats.acceptance_rate(),
        mean_accepted_length: stats.mean_accepted_length(),
        identical_to_target: (c.temperature <= 0.0).then_some(identical),
    })
}
