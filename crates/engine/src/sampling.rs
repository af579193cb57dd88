//! Choosing the next token from logits: greedy, or temperature with top-k and top-p, seeded.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Sampling settings of one request (OpenAI / vLLM semantics).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// Nucleus cut-off in (0, 1]; 1 keeps everything.
    pub top_p: f32,
    /// Keep the k most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Seed for reproducible sampling; `None` draws one.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self { temperature: 0.0, top_p: 1.0, top_k: 0, seed: None }
    }
}

impl SamplingParams {
    /// Whether this always takes the most likely token.
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || self.top_k == 1
    }

    /// Checks the ranges, naming the bad parameter.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(format!("temperature must be >= 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        Ok(())
    }
}

/// A per-sequence sampler (owns its random stream).
#[derive(Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: SmallRng,
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

impl Sampler {
    /// A sampler for `params`.
    pub fn new(params: SamplingParams) -> Self {
        let rng = match params.seed {
            Some(s) => SmallRng::seed_from_u64(s),
            None => SmallRng::seed_from_u64(rand::random()),
        };
        Self { params, rng }
    }

    /// The probabilities sampling draws from (after temperature, top-k, top-p), as (token, p)
    /// pairs; also used by speculative decoding's acceptance test.
    pub fn distribution(&self, logits: &[f32]) -> Vec<(u32, f32)> {
        let t = self.params.temperature.max(1e-6);
        let mut c: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l / t)).collect();
        let k = if self.params.top_k == 0 { c.len() } else { self.params.top_k.min(c.len()) };
        if k < c.len() {
            c.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
            c.truncate(k);
        }
        c.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let max = c[0].1;
        let mut sum = 0f32;
        for x in c.iter_mut() {
            x.1 = (x.1 - max).exp();
            sum += x.1;
        }
        let mut cum = 0f32;
        let n = c.len();
        let mut keep = n;
        for (i, x) in c.iter_mut().enumerate() {
            x.1 /= sum;
            cum += x.1;
            if cum >= self.params.top_p && keep == n {
                keep = i + 1;
            }
        }
        c.truncate(keep);
        let total: f32 = c.iter().map(|x| x.1).sum();
        c.iter_mut().for_each(|x| x.1 /= total);
        c
    }

    /// Picks the next token.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.params.is_greedy() {
            return argmax(logits);
        }
        let dist = self.distribution(logits);
        let u: f32 = self.rng.random();
        let mut cum = 0f32;
        for &(t, p) in &dist {
            cum += p;
            if u < cum {
                return t;
            }
        }
        dist.last().map_or(0, |x| x.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), 1);
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&[0.0, 0.5, 0.2]), 1);
    }

    #[test]
    fn top_k_and_top_p_cut_the_distribution() {
        let logits = [(0.5f32).ln(), (0.3f32).ln(), (0.15f32).ln(), (0.05f32).ln()];
        let s = Sampler::new(SamplingParams { temperature: 1.0, top_p: 0.75, top_k: 0, seed: Some(1) });
        let d = s.distribution(&logits);
        assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!((d[0].1 - 0.625).abs() < 1e-5, "{d:?}");
        let s = Sampler::new(SamplingParams { temperature: 1.0, top_p: 1.0, top_k: 3, seed: Some(1) });
        assert_eq!(s.distribution(&logits).len(), 3);
    }

    #[test]
    fn seeded_sampling_repeats_and_follows_the_probabilities() {
        let logits = [(0.7f32).ln(), (0.2f32).ln(), (0.1f32).ln()];
        let p = SamplingParams { temperature: 1.0, top_p: 1.0, top_k: 0, seed: Some(42) };
        let draw = |p: &SamplingParams| {
            let mut s = Sampler::new(p.clone());
            (0..2000).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        let a = draw(&p);
        assert_eq!(a, draw(&p));
        let zeros = a.iter().filter(|&&t| t == 0).count() as f64 / 2000.0;
        assert!((zeros - 0.7).abs() < 0.04, "{zeros}");
        assert!(p.validate().is_ok());
        assert!(SamplingParams { top_p: 0.0, ..p }.validate().is_err());
    }
}
