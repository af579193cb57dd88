//! Capacity and cost planning from a sweep: the highest load one replica sustains under the SLOs,
//! how many replicas a target needs with headroom, and what a million tokens costs. Every
//! formula is in `docs/metrics.md` ("Plans") and tested on a hand-computed fixture.

use crate::summary::{MetricName, Summary};
use crate::sweep::{Dimension, SloRule, SweepError, SweepResult};
use serde::{Deserialize, Serialize};

/// A bad plan request, naming the problem.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// An SLO could not be evaluated.
    #[error(transparent)]
    Slo(#[from] SweepError),
    /// The sweep has no steps.
    #[error("the sweep has no steps")]
    NoSteps,
    /// Users were asked for, but the sweep varied the request rate.
    #[error("--users needs a sweep over concurrency (each user is one closed-loop stream); for a rate sweep give --target-rate")]
    UsersNeedConcurrency,
    /// A number was out of range.
    #[error("{0}")]
    Invalid(String),
}

/// What the deployment must carry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Requests per second, across all replicas.
    Rate(f64),
    /// Concurrent closed-loop users (streams), across all replicas.
    Users(f64),
}

/// One replica at its highest sustainable step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Capacity {
    /// The step's load (concurrency or request rate).
    pub load: f64,
    /// Achieved requests per second.
    pub request_rate: f64,
    /// Achieved prompt tokens per second.
    pub input_tok_s: f64,
    /// Achieved output tokens per second.
    pub output_tok_s: f64,
    /// Mean TTFT / mean E2E latency: the share of a request's time spent before its first token,
    /// used to split the cost between input and output tokens.
    pub prefill_share: f64,
}

impl Capacity {
    /// The capacity a set of repeated runs shows (means over the repeats).
    pub fn from_summaries(load: f64, runs: &[&Summary]) -> Self {
        let n = runs.len().max(1) as f64;
        let mean = |f: &dyn Fn(&Summary) -> f64| runs.iter().map(|s| f(s)).sum::<f64>() / n;
        Self {
            load,
            request_rate: mean(&|s| s.request_throughput),
            input_tok_s: mean(&|s| if s.duration_s > 0.0 { s.total_input_tokens as f64 / s.duration_s } else { 0.0 }),
            output_tok_s: mean(&|s| s.output_throughput),
            prefill_share: mean(&|s| {
                let e2e = s.metric(MetricName::E2el).mean;
                if e2e > 0.0 {
                    (s.metric(MetricName::Ttft).mean / e2e).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            }),
        }
    }
}

/// The highest sustainable step of a sweep under `rules`: the last step, before the first one
/// that breaks a rule or falls under `min_success`, in sweep order. `Ok(None)` when even the
/// first step fails.
pub fn sustainable(sweep: &SweepResult, rules: &[SloRule], min_success: f64) -> Result<Option<usize>, PlanError> {
    if sweep.steps.is_empty() {
        return Err(PlanError::NoSteps);
    }
    let mut passes = Vec::with_capacity(sweep.steps.len());
    for step in &sweep.steps {
        let mut ok = step.stats.success_rate.mean >= min_success;
        for r in rules {
            ok &= step.rule_value(r)? <= r.limit_ms;
        }
        passes.push(ok);
    }
    Ok(crate::sweep::slo_limit(&passes))
}

/// The money side of a plan, in the currency of the price per hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Cost {
    /// All replicas, per hour.
    pub per_hour: f64,
    /// Per million prompt tokens (the prefill share of the cost).
    pub per_million_input: f64,
    /// Per million output tokens (the decode share of the cost).
    pub per_million_output: f64,
    /// Per million tokens of either kind.
    pub per_million_tokens: f64,
    /// Per million output tokens when output carries the whole cost.
    pub per_million_output_all_in: f64,
}

/// How many replicas a target needs, and at what cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReplicaPlan {
    /// One replica at its sustainable step.
    pub capacity: Capacity,
    /// The rate one replica is planned to carry: capacity × (1 − headroom).
    pub usable_rate: f64,
    /// The request rate the deployment must carry.
    pub target_rate: f64,
    /// Replicas needed.
    pub replicas: u64,
    /// target_rate / (replicas × capacity.request_rate).
    pub utilisation: f64,
    /// Costs, when a price was given.
    pub cost: Option<Cost>,
}

/// `ceil`, forgiving the last bits of floating-point error (17.000000000001 replicas is 17).
fn ceil_tolerant(x: f64) -> f64 {
    (x - 1e-9).ceil().max(1.0)
}

/// Plans a deployment. Without a target, one replica at its usable rate is planned (unit costs).
pub fn plan_replicas(
    cap: Capacity,
    dim: Dimension,
    target: Option<Target>,
    headroom: f64,
    price_per_hour: Option<f64>,
) -> Result<ReplicaPlan, PlanError> {
    if !(0.0..1.0).contains(&headroom) {
        return Err(PlanError::Invalid(format!("headroom {headroom} must be in [0, 1)")));
    }
    if cap.request_rate <= 0.0 || cap.load <= 0.0 {
        return Err(PlanError::Invalid("the sustainable step completed no requests".into()));
    }
    let usable_rate = cap.request_rate * (1.0 - headroom);
    let (target_rate, replicas) = match target {
        None => (usable_rate, 1.0),
        Some(Target::Rate(r)) if r > 0.0 && r.is_finite() => (r, ceil_tolerant(r / usable_rate)),
        Some(Target::Users(u)) if u > 0.0 && u.is_finite() => {
            if dim != Dimension::Concurrency {
                return Err(PlanError::UsersNeedConcurrency);
            }
            // Each user is one stream; a replica keeps `load` of them at `request_rate`.
            (u * cap.request_rate / cap.load, ceil_tolerant(u / (cap.load * (1.0 - headroom))))
        }
        Some(t) => return Err(PlanError::Invalid(format!("the target must be positive, got {t:?}"))),
    };
    let cost = match price_per_hour {
        None => None,
        Some(p) if p.is_finite() && p >= 0.0 => {
            let per_hour = replicas * p;
            let per_req_in = cap.input_tok_s / cap.request_rate;
            let per_req_out = cap.output_tok_s / cap.request_rate;
            let in_per_h = target_rate * per_req_in * 3600.0;
            let out_per_h = target_rate * per_req_out * 3600.0;
            let per_m = |cost: f64, tokens: f64| if tokens > 0.0 { cost / tokens * 1e6 } else { f64::NAN };
            Some(Cost {
                per_hour,
                per_million_input: per_m(per_hour * cap.prefill_share, in_per_h),
                per_million_output: per_m(per_hour * (1.0 - cap.prefill_share), out_per_h),
                per_million_tokens: per_m(per_hour, in_per_h + out_per_h),
                per_million_output_all_in: per_m(per_hour, out_per_h),
            })
        }
        Some(p) => return Err(PlanError::Invalid(format!("the price per hour must be a non-negative number, got {p}"))),
    };
    Ok(ReplicaPlan {
        capacity: cap,
        usable_rate,
        target_rate,
        replicas: replicas as u64,
        utilisation: target_rate / (replicas * cap.request_rate),
        cost,
    })
}

/// One SLO choice, planned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanChoice {
    /// The SLOs, as written (`no SLO (highest throughput)` when none).
    pub slos: String,
    /// The sustainable step's load; `None` when no step qualifies.
    pub load: Option<f64>,
    /// True when the sustainable step is the sweep's highest: the replica may hold more.
    pub at_sweep_top: bool,
    /// The plan at that step.
    pub plan: Option<ReplicaPlan>,
}

/// A whole capacity plan, as `inferbench plan --output` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CapacityPlan {
    /// Version, kind, tool, times, host, labels.
    #[serde(flatten)]
    pub header: crate::result::Header,
    /// The sweep planned from.
    pub sweep: String,
    /// What the sweep varied.
    pub dimension: Dimension,
    /// Steps in the sweep.
    pub sweep_steps: usize,
    /// The sweep's lowest load.
    pub first_load: f64,
    /// Capacity kept in reserve per replica, as a fraction.
    pub headroom: f64,
    /// Price of one replica per hour.
    pub price_per_hour: Option<f64>,
    /// What the deployment must carry.
    pub target: Option<Target>,
    /// Lowest acceptable success rate, as a fraction.
    pub min_success_rate: f64,
    /// The plan under the chosen SLOs.
    pub plan: PlanChoice,
    /// The same target under other SLO choices.
    pub what_if: Vec<PlanChoice>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap() -> Capacity {
        // 3.6 req/s of 500 prompt and 200 output tokens; TTFT is a tenth of E2E.
        Capacity { load: 4.0, request_rate: 3.6, input_tok_s: 1800.0, output_tok_s: 720.0, prefill_share: 0.1 }
    }

    #[test]
    fn replicas_and_costs_by_hand() {
        // usable 3.6 * 0.8 = 2.88 req/s; 50 / 2.88 = 17.36 -> 18 replicas; 18 * $2 = $36/h.
        let p = plan_replicas(cap(), Dimension::Concurrency, Some(Target::Rate(50.0)), 0.2, Some(2.0)).unwrap();
        assert!((p.usable_rate - 2.88).abs() < 1e-12);
        assert_eq!(p.replicas, 18);
        assert!((p.utilisation - 50.0 / (18.0 * 3.6)).abs() < 1e-12);
        let c = p.cost.unwrap();
        assert!((c.per_hour - 36.0).abs() < 1e-12);
        // 50 req/s * 500 * 3600 = 90 M input tokens/h; 50 * 200 * 3600 = 36 M output tokens/h.
        assert!((c.per_million_input - 36.0 * 0.1 / 90.0).abs() < 1e-12, "{c:?}");
        assert!((c.per_million_output - 36.0 * 0.9 / 36.0).abs() < 1e-12);
        assert!((c.per_million_tokens - 36.0 / 126.0).abs() < 1e-12);
        assert!((c.per_million_output_all_in - 1.0).abs() < 1e-12);
    }

    #[test]
    fn users_need_a_concurrency_sweep() {
        // 4 users per replica at 80 %: 3.2; 100 / 3.2 = 31.25 -> 32 replicas.
        let p = plan_replicas(cap(), Dimension::Concurrency, Some(Target::Users(100.0)), 0.2, None).unwrap();
        assert_eq!(p.replicas, 32);
        assert!((p.target_rate - 100.0 * 3.6 / 4.0).abs() < 1e-12);
        assert_eq!(plan_replicas(cap(), Dimension::Rate, Some(Target::Users(100.0)), 0.2, None), Err(PlanError::UsersNeedConcurrency));
    }

    #[test]
    fn exact_fits_do_not_round_up_and_bad_numbers_are_refused() {
        // 2.88 * 10 = 28.8 exactly fits 10 replicas, despite floating-point error.
        assert_eq!(plan_replicas(cap(), Dimension::Rate, Some(Target::Rate(28.8)), 0.2, None).unwrap().replicas, 10);
        assert_eq!(plan_replicas(cap(), Dimension::Rate, None, 0.0, None).unwrap().replicas, 1);
        assert!(plan_replicas(cap(), Dimension::Rate, None, 1.0, None).is_err());
        assert!(plan_replicas(cap(), Dimension::Rate, Some(Target::Rate(-1.0)), 0.2, None).is_err());
        assert!(plan_replicas(cap(), Dimension::Rate, None, 0.2, Some(-1.0)).is_err());
    }
}
