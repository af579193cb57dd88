//! Targets: each `min_<metric>` / `max_<metric>` of the model's own section (else `default`)
//! checked against the measured figures.

use super::Result;
use crate::error::BenchError;
use inferbench_core::engine_bench::{BenchConfig, TargetCheck};
use std::collections::BTreeMap;

/// Checks every target; an unknown metric or a malformed key is an error naming it.
pub(super) fn check(cfg: &BenchConfig, name: &str, metrics: &BTreeMap<String, f64>) -> Result<Vec<TargetCheck>> {
    let targets = cfg.targets.get(name).or_else(|| cfg.targets.get("default")).cloned().unwrap_or_default();
    let mut checks = Vec::new();
    for (key, limit) in &targets {
        let (is_min, metric) = match key.split_once('_') {
            Some(("min", m)) => (true, m),
            Some(("max", m)) => (false, m),
            _ => return Err(BenchError::invalid(format!("targets.{name}.{key}: a target is min_<metric> or max_<metric>"))),
        };
        let Some(&value) = metrics.get(metric) else {
            let known: Vec<&str> = metrics.keys().map(String::as_str).collect();
            return Err(BenchError::invalid(format!("targets.{key}: unknown metric '{metric}'; known: {}", known.join(", "))));
        };
        let pass = if is_min { value >= *limit } else { value <= *limit };
        checks.push(TargetCheck { key: key.clone(), metric: metric.to_owned(), limit: *limit, value, pass });
    }
    Ok(checks)
}
