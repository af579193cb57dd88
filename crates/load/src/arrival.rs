//! When each request should start: absolute offsets from the run's start, never "sleep after
//! send", so a slow send does not push every later request back.

use inferbench_core::spec::{ArrivalKind, RampStrategy, RampUp};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Gamma};
use std::sync::Arc;

/// What shapes the arrival process.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrivalConfig {
    /// Requests per second; `None` for everything at once.
    pub rate: Option<f64>,
    /// Gamma shape (1 = Poisson; lower is burstier).
    pub burstiness: f64,
    /// Poisson-like or evenly spaced.
    pub kind: ArrivalKind,
    /// Optional rate ramp (overrides `rate`).
    pub ramp: Option<RampUp>,
    /// Number of requests, for ramp progress in count mode.
    pub total: Option<u64>,
    /// Run length in seconds, for ramp progress in duration mode.
    pub duration_s: Option<f64>,
    /// RNG seed.
    pub seed: u64,
    /// Given send times (a replayed trace), in seconds from the start; overrides everything
    /// else, and the sequence ends with them.
    pub offsets: Option<Arc<[f64]>>,
}

impl ArrivalConfig {
    /// Whether requests are timed (a rate, a ramp or a trace) rather than all due at once.
    pub fn is_timed(&self) -> bool {
        self.rate.is_some() || self.ramp.is_some() || self.offsets.is_some()
    }
}

/// An endless sequence of scheduled offsets in seconds, the first at 0.
#[derive(Debug)]
pub struct Arrivals {
    cfg: ArrivalConfig,
    rng: SmallRng,
    next_s: f64,
    index: u64,
}

impl Arrivals {
    /// Starts the sequence.
    pub fn new(cfg: ArrivalConfig) -> Self {
        let rng = SmallRng::seed_from_u64(cfg.seed ^ 0x5eed_a771_7a15);
        Self { cfg, rng, next_s: 0.0, index: 0 }
    }

    /// The rate in force at `t` seconds for request `index`; `None` means infinite.
    pub fn rate_at(&self, t: f64, index: u64) -> Option<f64> {
        let Some(r) = self.cfg.ramp else { return self.cfg.rate };
        let progress = match (self.cfg.total, self.cfg.duration_s) {
            (Some(n), _) if n > 1 => index as f64 / (n - 1) as f64,
            (_, Some(d)) if d > 0.0 => t / d,
            _ => 0.0,
        }
        .clamp(0.0, 1.0);
        Some(match r.strategy {
            RampStrategy::Linear => r.start_rps + (r.end_rps - r.start_rps) * progress,
            RampStrategy::Exponential => r.start_rps * (r.end_rps / r.start_rps).powf(progress),
        })
    }
}

impl Iterator for Arrivals {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        if let Some(offsets) = &self.cfg.offsets {
            let t = offsets.get(self.index as usize).copied();
            self.index += 1;
            return t;
        }
        let t = self.next_s;
        let gap = match self.rate_at(t, self.index) {
            None => 0.0,
            Some(r) if r <= 0.0 || !r.is_finite() => 0.0,
            Some(r) => match self.cfg.kind {
                ArrivalKind::Constant => 1.0 / r,
                ArrivalKind::Poisson => {
                    let shape = self.cfg.burstiness;
                    Gamma::new(shape, 1.0 / (r * shape)).map_or(1.0 / r, |g| g.sample(&mut self.rng))
                }
            },
        };
        self.next_s += gap;
        self.index += 1;
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rate: Option<f64>) -> ArrivalConfig {
        ArrivalConfig {
            rate,
            burstiness: 1.0,
            kind: ArrivalKind::Poisson,
            ramp: None,
            total: None,
            duration_s: None,
            seed: 1,
            offsets: None,
        }
    }

    #[test]
    fn given_offsets_are_the_arrivals_and_end_the_sequence() {
        let a = Arrivals::new(ArrivalConfig { offsets: Some(vec![0.0, 0.5, 0.5, 2.0].into()), ..cfg(Some(100.0)) });
        assert_eq!(a.collect::<Vec<_>>(), vec![0.0, 0.5, 0.5, 2.0]);
    }

    #[test]
    fn infinite_rate_sends_everything_at_zero() {
        assert!(Arrivals::new(cfg(None)).take(100).all(|t| t == 0.0));
    }

    #[test]
    fn constant_is_evenly_spaced() {
        let a: Vec<f64> = Arrivals::new(ArrivalConfig { kind: ArrivalKind::Constant, ..cfg(Some(4.0)) }).take(5).collect();
        assert_eq!(a, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn poisson_mean_rate_and_burstiness() {
        let n = 200_000;
        let last = Arrivals::new(cfg(Some(100.0))).take(n).last().unwrap();
        let rate = (n - 1) as f64 / last;
        assert!((rate - 100.0).abs() < 1.5, "rate {rate}");
        // Gamma gaps: CV^2 = 1/shape. Burstiness 0.25 -> CV 2.
        let ts: Vec<f64> = Arrivals::new(ArrivalConfig { burstiness: 0.25, ..cfg(Some(100.0)) }).take(n).collect();
        let gaps: Vec<f64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((var.sqrt() / mean - 2.0).abs() < 0.1, "cv {}", var.sqrt() / mean);
    }

    #[test]
    fn linear_ramp_over_count() {
        let ramp = RampUp { strategy: RampStrategy::Linear, start_rps: 10.0, end_rps: 30.0 };
        let a = Arrivals::new(ArrivalConfig { ramp: Some(ramp), total: Some(3), kind: ArrivalKind::Constant, ..cfg(None) });
        assert_eq!(a.rate_at(0.0, 0), Some(10.0));
        assert_eq!(a.rate_at(0.0, 1), Some(20.0));
        let ts: Vec<f64> = a.take(3).collect();
        assert!((ts[1] - 0.1).abs() < 1e-12 && (ts[2] - 0.15).abs() < 1e-12, "{ts:?}");
    }
}
