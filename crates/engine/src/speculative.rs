//! Speculative decoding: a small draft model proposes `gamma` tokens one at a time, the target
//! checks them all in one forward pass, and the longest agreeing prefix is kept plus one token of
//! the target's own. Greedy acceptance keeps exactly the target's greedy output (our forward pass
//! gives the same logits for a row alone or among others, so this holds bit for bit); sampled
//! acceptance uses the rejection rule of Leviathan et al. (2023), which keeps the target's
//! distribution.

use crate::llama::{BatchItem, Model};
use crate::sampling::{argmax, Sampler, SamplingParams};
use crate::{EngineError, KvCache, Loaded};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What one speculative generation did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SpecStats {
    /// Tokens the draft proposed.
    pub proposed: usize,
    /// Proposals the target accepted.
    pub accepted: usize,
    /// Target verification passes.
    pub rounds: usize,
    /// Tokens generated.
    pub generated: usize,
}

impl SpecStats {
    /// Accepted / proposed.
    pub fn acceptance_rate(&self) -> f64 {
        self.accepted as f64 / self.proposed.max(1) as f64
    }

    /// Tokens emitted per target pass (accepted proposals plus the target's own token).
    pub fn mean_accepted_length(&self) -> f64 {
        self.generated as f64 / self.rounds.max(1) as f64
    }
}

/// Refuses a draft whose tokenizer differs from the target's: proposals would be other words.
pub fn check_tokenizers(target: &Loaded, draft: &Loaded) -> Result<(), EngineError> {
    if target.model.cfg.vocab != draft.model.cfg.vocab {
        return Err(EngineError::BadInput(format!(
            "the draft's vocabulary ({} tokens) differs from the target's ({}); speculative decoding needs the same tokenizer",
            draft.model.cfg.vocab, target.model.cfg.vocab
        )));
    }
    let probe = "Speculative decoding needs identical tokenizers: 12345, naïve café, <|im_start|>user\n";
    if target.tokenizer.encode(probe) != draft.tokenizer.encode(probe) {
        return Err(EngineError::BadInput(
            "the draft's tokenizer encodes text differently from the target's; speculative decoding needs the same tokenizer".into(),
        ));
    }
    Ok(())
}

fn end(tok: u32, eos: &[u32], ignore_eos: bool) -> bool {
    !ignore_eos && eos.contains(&tok)
}

/// Plain decoding with the target alone (the baseline), one token per pass.
pub fn generate_plain(
    m: &Model,
    prompt: &[u32],
    max_tokens: usize,
    sampling: &SamplingParams,
    eos: &[u32],
    ignore_eos: bool,
) -> Result<Vec<u32>, EngineError> {
    let mut cache = KvCache::new(m.cfg.n_layer, m.cfg.kv_dim(), prompt.len() + max_tokens);
    let mut sampler = Sampler::new(sampling.clone());
    let mut logits = m.forward(&mut [BatchItem { tokens: prompt, start: 0, cache: &mut cache, want_logits: true }])?.remove(0);
    let mut out = Vec::new();
    loop {
        let t = sampler.sample(&logits);
        out.push(t);
        if out.len() >= max_tokens || end(t, eos, ignore_eos) {
            return Ok(out);
        }
        let start = cache.len();
        logits = m.forward(&mut [BatchItem { tokens: &[t], start, cache: &mut cache, want_logits: true }])?.remove(0);
    }
}

/// Speculative decoding of one prompt.
#[allow(clippy::too_many_arguments)]
pub fn generate_speculative(
    target: &Model,
    draft: &Model,
    prompt: &[u32],
    max_tokens: usize,
    gamma: usize,
    sampling: &SamplingParams,
    eos: &[u32],
    ignore_eos: bool,
) -> Result<(Vec<u32>, SpecStats), EngineError> {
    let gamma = gamma.max(1);
    let cap = prompt.len() + max_tokens + gamma + 2;
    let mut tc = KvCache::new(target.cfg.n_layer, target.cfg.kv_dim(), cap);
    let mut dc = KvCache::new(draft.cfg.n_layer, draft.cfg.kv_dim(), cap);
    let greedy = sampling.is_greedy();
    let sampler = Sampler::new(sampling.clone());
    let mut rng = SmallRng::seed_from_u64(sampling.seed.unwrap_or_else(rand::random));
    let pick = |logits: &[f32], rng: &mut SmallRng| -> u32 {
        if greedy {
            argmax(logits)
        } else {
            draw(&sampler.distribution(logits), rng.random())
        }
    };
    let mut stats = SpecStats::default();
    // The target's first token comes from its own prefill; the draft prefills the same prompt.
    let tl = target.forward(&mut [BatchItem { tokens: prompt, start: 0, cache: &mut tc, want_logits: true }])?.remove(0);
    draft.forward(&mut [BatchItem { tokens: prompt, start: 0, cache: &mut dc, want_logits: false }])?;
    let mut next = pick(&tl, &mut rng);
    let mut out = vec![next];
    // Tokens emitted but not yet in the draft's cache (besides `next`).
    let mut draft_pending: Vec<u32> = Vec::new();
    while out.len() < max_tokens && !end(next, eos, ignore_eos) {
        // Draft proposes.
        let mut proposals = Vec::with_capacity(gamma);
        let mut q_dists = Vec::with_capacity(gamma);
        let mut feed: Vec<u32> = std::mem::take(&mut draft_pending);
        feed.push(next);
        for _ in 0..gamma {
            let start = dc.len();
            let l = draft.forward(&mut [BatchItem { tokens: &feed, start, cache: &mut dc, want_logits: true }])?.remove(0);
            let d = pick(&l, &mut rng);
            if !greedy {
                q_dists.push(sampler.distribution(&l));
            }
            proposals.push(d);
            feed = vec![d];
        }
        // Target verifies next + proposals in one pass.
        let base = tc.len();
        let mut input = vec![next];
        input.extend_from_slice(&proposals);
        let rows = target.forward_all(&input, base, &mut tc)?;
        stats.rounds += 1;
        stats.proposed += gamma;
        let mut emitted = Vec::new();
        let mut accepted = 0;
        for (i, &d) in proposals.iter().enumerate() {
            let ok = if greedy {
                argmax(&rows[i]) == d
            } else {
                let p = prob(&sampler.distribution(&rows[i]), d);
                let q = prob(&q_dists[i], d);
                q > 0.0 && rng.random::<f32>() < (p / q).min(1.0)
            };
            if !ok {
                break;
            }
            accepted += 1;
            emitted.push(d);
            if end(d, eos, ignore_eos) || out.len() + emitted.len() >= max_tokens {
                break;
            }
        }
        stats.accepted += accepted;
        let stopped = emitted.last().is_some_and(|&d| end(d, eos, ignore_eos)) || out.len() + emitted.len() >= max_tokens;
        if !stopped {
            // The target's own token after the accepted prefix.
            let row = &rows[accepted];
            let t = if greedy || accepted == gamma {
                pick(row, &mut rng)
            } else {
                residual(&sampler.distribution(row), &q_dists[accepted], rng.random())
            };
            emitted.push(t);
        }
        // Keep only the cache entries of tokens that stand: next and the accepted proposals.
        tc.truncate(base + 1 + accepted);
        let draft_valid = base + 1 + accepted.min(gamma - 1);
        dc.truncate(draft_valid);
        if accepted == gamma {
            draft_pending.push(proposals[gamma - 1]);
        }
        out.extend_from_slice(&emitted);
        // `emitted` holds at least the target's own token unless the run stopped on a draft token.
        if let Some(&t) = out.last() {
            next = t;
        }
        if stopped {
            break;
        }
    }
    out.truncate(max_tokens);
    stats.generated = out.len();
    Ok((out, stats))
}

fn prob(dist: &[(u32, f32)], t: u32) -> f32 {
    dist.iter().find(|x| x.0 == t).map_or(0.0, |x| x.1)
}

fn draw(dist: &[(u32, f32)], u: f32) -> u32 {
    let mut cum = 0f32;
    for &(t, p) in dist {
        cum += p;
        if u < cum {
            return t;
        }
    }
    dist.last().map_or(0, |x| x.0)
}

/// Samples from max(0, p - q), normalized: the correction after a rejected proposal.
fn residual(p: &[(u32, f32)], q: &[(u32, f32)], u: f32) -> u32 {
    let r: Vec<(u32, f32)> = p.iter().map(|&(t, pp)| (t, (pp - prob(q, t)).max(0.0))).filter(|x| x.1 > 0.0).collect();
    let total: f32 = r.iter().map(|x| x.1).sum();
    if total <= 0.0 {
        return draw(p, u);
    }
    draw(&r.iter().map(|&(t, v)| (t, v / total)).collect::<Vec<_>>(), u)
}
