//! Capacity and cost from a sweep: the sustainable step under each SLO choice, planned with
//! `core::capacity`'s arithmetic into a typed [`CapacityPlan`].

use crate::error::BenchError;
use inferbench_core::capacity::{plan_replicas, sustainable, Capacity, CapacityPlan, PlanChoice, Target};
use inferbench_core::result::{Header, ResultKind};
use inferbench_core::sweep::{SloRule, SweepResult};

/// What to plan for.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// SLOs a replica must meet; `None` takes the sweep's own.
    pub slos: Option<Vec<SloRule>>,
    /// What the deployment must carry; `None` plans one replica.
    pub target: Option<Target>,
    /// Capacity kept in reserve per replica, as a fraction.
    pub headroom: f64,
    /// Price of one replica per hour.
    pub price_per_hour: Option<f64>,
    /// Lowest acceptable success rate as a fraction; `None` takes the sweep's.
    pub min_success_rate: Option<f64>,
    /// Extra SLO sets for the what-if table; empty scales the SLOs by 0.5, 1 and 2 and adds a row
    /// without SLOs.
    pub what_if: Vec<Vec<SloRule>>,
}

/// The SLO set in words.
pub fn describe(rules: &[SloRule]) -> String {
    if rules.is_empty() {
        "no SLO (highest throughput)".to_owned()
    } else {
        rules.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
    }
}

fn choose(sweep: &SweepResult, rules: &[SloRule], min_success: f64, o: &PlanOptions) -> Result<PlanChoice, BenchError> {
    let bad = |e: inferbench_core::capacity::PlanError| BenchError::invalid(e.to_string());
    let idx = sustainable(sweep, rules, min_success).map_err(bad)?;
    let Some(i) = idx else {
        return Ok(PlanChoice { slos: describe(rules), load: None, at_sweep_top: false, plan: None });
    };
    let step = &sweep.steps[i];
    let cap = Capacity::from_summaries(step.load, &step.summaries());
    let p = plan_replicas(cap, sweep.dimension(), o.target, o.headroom, o.price_per_hour).map_err(bad)?;
    Ok(PlanChoice { slos: describe(rules), load: Some(step.load), at_sweep_top: i + 1 == sweep.steps.len(), plan: Some(p) })
}

/// Plans from the sweep at `paths[0]`, or from several runs of one workload at different loads
/// (merged shards, say), assembled into a sweep.
pub fn plan(paths: &[std::path::PathBuf], o: &PlanOptions) -> Result<CapacityPlan, BenchError> {
    let (sweep, path) = match paths {
        [one] if !matches!(crate::saved::read(one)?, inferbench_core::SavedResult::Run(_)) => (crate::saved::read_sweep(one)?, one.clone()),
        [] => return Err(BenchError::invalid("no results given")),
        many => {
            let s = crate::sweep::from_runs(many)?;
            let names: Vec<String> = many.iter().map(|p| p.display().to_string()).collect();
            (s, std::path::PathBuf::from(names.join(",")))
        }
    };
    let path = path.as_path();
    if sweep.steps.is_empty() {
        return Err(BenchError::invalid(format!("{}: the sweep has no steps", path.display())));
    }
    let rules = o.slos.clone().unwrap_or_else(|| sweep.sweep.slos.clone());
    let min_success = match o.min_success_rate {
        Some(p) if (0.0..=1.0).contains(&p) => p,
        Some(p) => {
            return Err(BenchError::invalid(format!("invalid --min-success-rate '{}': must be a percentage between 0 and 100", p * 100.0)))
        }
        None => sweep.sweep.min_success_rate,
    };
    let main = choose(&sweep, &rules, min_success, o)?;
    let mut sets: Vec<Vec<SloRule>> = Vec::new();
    if o.what_if.is_empty() {
        if !rules.is_empty() {
            for f in [0.5, 1.0, 2.0] {
                sets.push(rules.iter().map(|r| r.scaled(f)).collect());
            }
        }
        sets.push(Vec::new());
    } else {
        sets.push(rules.clone());
        sets.extend(o.what_if.iter().cloned());
    }
    let what_if = sets.iter().map(|set| choose(&sweep, set, min_success, o)).collect::<Result<Vec<_>, _>>()?;
    let mut header = Header::now(ResultKind::Plan, crate::tool_info());
    header.end();
    Ok(CapacityPlan {
        header,
        sweep: path.display().to_string(),
        dimension: sweep.dimension(),
        sweep_steps: sweep.steps.len(),
        first_load: sweep.steps[0].load,
        headroom: o.headroom,
        price_per_hour: o.price_per_hour,
        target: o.target,
        min_success_rate: min_success,
        plan: main,
        what_if,
    })
}
