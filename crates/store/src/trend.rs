//! A metric over time for one workload, with the points that moved beyond the noise of the runs
//! before them flagged. The rule (docs/metrics.md, "Trends"): a point is flagged when it differs
//! from the mean of the previous `window` points by more than `sigmas` of their standard deviation
//! and by more than `min_change` of their mean.

use crate::{Store, StoreError};
use rusqlite::params;

/// What to follow.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The metric (`ttft_p99`, `output_throughput`, ...).
    pub metric: String,
    /// Only this model.
    pub model: Option<String>,
    /// Only results with these labels.
    pub labels: Vec<(String, String)>,
    /// The workload; `None`: the workload of the newest matching run.
    pub fingerprint: Option<String>,
}

/// How points are flagged.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Previous points the noise is measured on.
    pub window: usize,
    /// How many standard deviations away a point must be.
    pub sigmas: f64,
    /// And by what fraction of the mean at least.
    pub min_change: f64,
}

impl Default for Rule {
    fn default() -> Self {
        Self { window: 5, sigmas: 3.0, min_change: 0.05 }
    }
}

/// One run on the trend.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Run id.
    pub id: String,
    /// When it started.
    pub time: String,
    /// The metric's value.
    pub value: f64,
    /// Tool version and commit that measured it.
    pub tool: String,
    /// Relative change from the previous window's mean, when flagged.
    pub flagged: Option<f64>,
    /// True when the flagged change is for the worse.
    pub worse: bool,
}

/// The trend.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// The metric.
    pub metric: String,
    /// The workload followed.
    pub fingerprint: String,
    /// Whether lower is better for this metric.
    pub lower_better: bool,
    /// The runs, oldest first.
    pub points: Vec<Point>,
}

/// Lower is better for latencies and failures; higher for throughputs, goodput, success.
pub fn lower_is_better(metric: &str) -> bool {
    !(metric.contains("throughput") || metric.contains("goodput") || metric == "success_rate" || metric == "completed")
}

/// Flags the points that moved beyond the noise of the `rule.window` points before them.
pub fn flag(points: &mut [Point], rule: Rule, lower_better: bool) {
    for i in rule.window..points.len() {
        let prev: Vec<f64> = points[i - rule.window..i].iter().map(|p| p.value).collect();
        let n = prev.len() as f64;
        let mean = prev.iter().sum::<f64>() / n;
        let sd = (prev.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
        let d = points[i].value - mean;
        if mean != 0.0 && d.abs() > rule.sigmas * sd && (d / mean).abs() > rule.min_change {
            points[i].flagged = Some(d / mean);
            points[i].worse = (d > 0.0) == lower_better;
        }
    }
}

impl Store {
    /// The trend `q` asks for, flagged by `rule`.
    pub fn history(&self, q: &Query, rule: Rule) -> Result<Trend, StoreError> {
        let err = |e| self.err(e);
        let mut filter = String::from("r.kind = 'run'");
        let mut args: Vec<String> = vec![q.metric.clone()];
        if let Some(m) = &q.model {
            args.push(m.clone());
            filter.push_str(&format!(" AND r.model = ?{}", args.len()));
        }
        for (k, v) in &q.labels {
            args.push(format!("$.\"{}\"", k.replace('"', "")));
            args.push(v.clone());
            filter.push_str(&format!(" AND json_extract(r.labels, ?{}) = ?{}", args.len() - 1, args.len()));
        }
        let fingerprint = match &q.fingerprint {
            Some(f) => f.clone(),
            None => {
                let sql = format!(
                    "SELECT r.fingerprint FROM results r JOIN metrics m ON m.id = r.id AND m.name = ?1 WHERE {filter} ORDER BY r.time DESC LIMIT 1"
                );
                let found: Option<String> =
                    self.conn().prepare(&sql).map_err(err)?.query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0)).ok();
                match found {
                    Some(f) => f,
                    None => {
                        return Ok(Trend {
                            metric: q.metric.clone(),
                            fingerprint: String::new(),
                            lower_better: lower_is_better(&q.metric),
                            points: vec![],
                        })
                    }
                }
            }
        };
        args.push(fingerprint.clone());
        let sql = format!(
            "SELECT r.id, r.time, m.value, r.tool_version, r.tool_commit FROM results r JOIN metrics m ON m.id = r.id AND m.name = ?1
             WHERE {filter} AND r.fingerprint = ?{} ORDER BY r.time, r.id",
            args.len()
        );
        let mut stmt = self.conn().prepare(&sql).map_err(err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok(Point {
                    id: r.get(0)?,
                    time: r.get(1)?,
                    value: r.get(2)?,
                    tool: format!(
                        "{} {}",
                        r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                        r.get::<_, Option<String>>(4)?.unwrap_or_default()
                    )
                    .trim()
                    .to_owned(),
                    flagged: None,
                    worse: false,
                })
            })
            .map_err(err)?;
        let mut points = Vec::new();
        for p in rows {
            points.push(p.map_err(err)?);
        }
        let lower_better = lower_is_better(&q.metric);
        flag(&mut points, rule, lower_better);
        Ok(Trend { metric: q.metric.clone(), fingerprint, lower_better, points })
    }

    /// The metric names stored for runs (for a helpful error when one is misspelled).
    pub fn metric_names(&self) -> Result<Vec<String>, StoreError> {
        let mut s = self.conn().prepare("SELECT DISTINCT name FROM metrics ORDER BY name").map_err(|e| self.err(e))?;
        let names = s.query_map(params![], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        names.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[f64]) -> Vec<Point> {
        v.iter()
            .enumerate()
            .map(|(i, &value)| Point { id: i.to_string(), time: i.to_string(), value, tool: String::new(), flagged: None, worse: false })
            .collect()
    }

    /// Hand-computed: window 5 of 100, 102, 98, 101, 99 has mean 100 and sd 1.58; 115 is 15 sd
    /// and 15 % away: flagged, worse for a latency. 101 after it is not (the window now holds 115).
    #[test]
    fn the_rule_flags_a_jump_beyond_the_noise() {
        let mut p = pts(&[100.0, 102.0, 98.0, 101.0, 99.0, 115.0, 101.0]);
        flag(&mut p, Rule::default(), true);
        let flagged: Vec<usize> = p.iter().enumerate().filter(|(_, x)| x.flagged.is_some()).map(|(i, _)| i).collect();
        assert_eq!(flagged, vec![5]);
        assert!((p[5].flagged.unwrap() - 0.15).abs() < 1e-12 && p[5].worse);
        // For a throughput the same jump is an improvement.
        let mut q = pts(&[100.0, 102.0, 98.0, 101.0, 99.0, 115.0]);
        flag(&mut q, Rule::default(), false);
        assert!(q[5].flagged.is_some() && !q[5].worse);
        // 4 % away is within min_change even when beyond 3 sd of a quiet window.
        let mut quiet = pts(&[100.0, 100.1, 99.9, 100.0, 100.0, 104.0]);
        flag(&mut quiet, Rule::default(), true);
        assert!(quiet[5].flagged.is_none());
    }
}
