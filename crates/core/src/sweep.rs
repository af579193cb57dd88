//! Sweeps: a series of runs at rising load, and what they answer — where throughput stops growing
//! (the knee), the highest load that still meets the SLOs, and how much repeats of one step agree.
//! Pure functions of summaries, so the analysis is tested on hand-made numbers (`docs/metrics.md`).

use crate::result::Header;
use crate::spec::RunSpec;
use crate::summary::{MetricName, Summary};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Throughput must grow by at least this fraction of the relative load increase for a step to
/// count as still scaling; below it (and with latency climbing) the previous step is the knee.
pub const KNEE_EFFICIENCY: f64 = 0.5;

/// Latency must grow by more than this fraction across a step for the knee rule to fire.
pub const KNEE_LATENCY_GROWTH: f64 = 0.10;

/// What a sweep varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// `--max-concurrency`: closed-loop users.
    Concurrency,
    /// `--request-rate`: open-loop arrivals per second.
    Rate,
}

impl Dimension {
    /// What the sweep varied, in words for messages: `concurrency (--concurrencies)`.
    pub fn describe(self) -> &'static str {
        match self {
            Dimension::Concurrency => "concurrency (--concurrencies)",
            Dimension::Rate => "request rate (--rates)",
        }
    }

    /// Short label of a load value: `c=8` or `r=2.5`.
    pub fn label(self, load: f64) -> String {
        match self {
            Dimension::Concurrency => format!("c={load}"),
            Dimension::Rate => format!("r={load}"),
        }
    }

    /// The latency that shows queueing for this kind of load: from the actual send for closed
    /// loops (every request of a closed loop is "scheduled" at the start), from the scheduled
    /// send for open loops (so client-side queueing counts).
    pub fn knee_latency(self) -> MetricName {
        match self {
            Dimension::Concurrency => MetricName::E2el,
            Dimension::Rate => MetricName::E2elSched,
        }
    }
}

/// A bad sweep list, SLO rule or plan input, naming the offending part.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SweepError {
    /// A list of loads was empty.
    #[error("the list of loads is empty (give e.g. 1,2,4,8 or a ramp like 1..64)")]
    EmptyList,
    /// A load value could not be read.
    #[error("'{0}' is not a positive number")]
    BadLoad(String),
    /// A ramp was malformed.
    #[error("'{0}': a ramp is START..MAX or START..MAXxFACTOR with 0 < START <= MAX and FACTOR > 1")]
    BadRamp(String),
    /// The SLO rule is malformed.
    #[error("'{0}' is not an SLO (expected METRIC:STAT:MS, e.g. ttft:p99:500, tpot:mean:50; STAT is p1..p100, mean or median)")]
    BadSlo(String),
    /// The SLO names a metric that has no per-request latency.
    #[error("unknown SLO metric '{0}' (expected one of: ttft, tpot, itl, e2el)")]
    UnknownMetric(String),
    /// The summary lacks the percentile an SLO needs.
    #[error("{metric} p{pct} is not in the results (they have {have}); rerun with --metric-percentiles including {pct}")]
    MissingPercentile {
        /// The metric.
        metric: String,
        /// The percentile asked for.
        pct: String,
        /// The percentiles present.
        have: String,
    },
}

/// Which statistic of a metric an SLO limits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    /// The arithmetic mean.
    Mean,
    /// A percentile in (0, 100]; the median is 50.
    Percentile(f64),
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stat::Mean => f.write_str("mean"),
            Stat::Percentile(p) => write!(f, "p{p}"),
        }
    }
}

/// An SLO on a run as a whole: a statistic of a latency metric must stay at or under a limit
/// (goodput SLOs, by contrast, judge each request).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SloRule {
    /// The latency metric.
    pub metric: MetricName,
    /// The statistic of it.
    pub stat: Stat,
    /// The limit, in milliseconds.
    pub limit_ms: f64,
}

impl fmt::Display for SloRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.metric, self.stat, self.limit_ms)
    }
}

impl SloRule {
    /// Parses `ttft:p99:500`, `tpot:mean:50`, `e2el:median:2000`, or `ttft:500` (p99).
    pub fn parse(s: &str) -> Result<Self, SweepError> {
        let bad = || SweepError::BadSlo(s.to_owned());
        let parts: Vec<&str> = s.trim().split(':').collect();
        let (metric, stat, limit) = match parts.as_slice() {
            [m, l] => (*m, "p99", *l),
            [m, st, l] => (*m, *st, *l),
            _ => return Err(bad()),
        };
        let metric: MetricName = metric.parse().map_err(|_| SweepError::UnknownMetric(metric.to_owned()))?;
        if !metric.is_per_request() {
            return Err(SweepError::UnknownMetric(metric.key().to_owned()));
        }
        let stat = match stat.to_ascii_lowercase().as_str() {
            "mean" | "avg" => Stat::Mean,
            "median" | "p50" => Stat::Percentile(50.0),
            p => {
                let v: f64 = p.strip_prefix('p').and_then(|x| x.parse().ok()).ok_or_else(bad)?;
                if !(v > 0.0 && v <= 100.0) {
                    return Err(bad());
                }
                Stat::Percentile(v)
            }
        };
        let limit_ms: f64 = limit.parse().ok().filter(|v: &f64| v.is_finite() && *v > 0.0).ok_or_else(bad)?;
        Ok(Self { metric, stat, limit_ms })
    }

    /// The value this rule limits, read from a summary.
    pub fn value(&self, s: &Summary) -> Result<f64, SweepError> {
        let d = s.metric(self.metric);
        match self.stat {
            Stat::Mean => Ok(d.mean),
            Stat::Percentile(p) if (p - 50.0).abs() < 1e-9 => Ok(d.median),
            Stat::Percentile(p) => d.percentile(p).ok_or_else(|| SweepError::MissingPercentile {
                metric: self.metric.key().to_owned(),
                pct: format!("{p}"),
                have: d.percentiles.iter().map(|(q, _)| format!("p{q}")).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// The same rule with its limit multiplied by `f` (for what-if tables).
    pub fn scaled(&self, f: f64) -> Self {
        Self { limit_ms: self.limit_ms * f, ..*self }
    }
}

/// Parses a list of loads: `1,2,4,8`, or a geometric ramp `START..MAX` (doubling) or
/// `START..MAXxFACTOR`. Values come back in the order given.
pub fn parse_loads(s: &str) -> Result<Vec<f64>, SweepError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(SweepError::EmptyList);
    }
    if let Some((start, rest)) = s.split_once("..") {
        let (max, factor) = rest.split_once(['x', 'X']).unwrap_or((rest, "2"));
        let num = |x: &str| x.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        let (Some(start), Some(max), Some(factor)) = (num(start), num(max), num(factor)) else {
            return Err(SweepError::BadRamp(s.to_owned()));
        };
        if !(start > 0.0 && max >= start && factor > 1.0) {
            return Err(SweepError::BadRamp(s.to_owned()));
        }
        let mut out = Vec::new();
        let mut v = start;
        // A little slack so 1..1000x10 reaches 1000 despite rounding.
        while v <= max * (1.0 + 1e-9) {
            out.push((v * 1e6).round() / 1e6);
            v *= factor;
        }
        return Ok(out);
    }
    let out: Vec<f64> = s
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| x.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0).ok_or_else(|| SweepError::BadLoad(x.to_owned())))
        .collect::<Result<_, _>>()?;
    if out.is_empty() {
        return Err(SweepError::EmptyList);
    }
    Ok(out)
}

/// The mean of a few repeated measurements with its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Estimate {
    /// Arithmetic mean.
    pub mean: f64,
    /// Half-width of the 95 % confidence interval (Student's t); 0 for one measurement.
    pub ci95: f64,
    /// Coefficient of variation: sample standard deviation / mean; 0 for one measurement.
    pub cv: f64,
    /// Number of measurements.
    pub n: usize,
}

/// Two-sided 97.5 % quantiles of Student's t for 1..=30 degrees of freedom.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093,
    2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// The t quantile for a 95 % interval with `df` degrees of freedom (normal beyond 30).
pub fn t_quantile_95(df: usize) -> f64 {
    match df {
        0 => f64::NAN,
        d if d <= 30 => T_975[d - 1],
        d if d <= 60 => 2.000 + (2.042 - 2.000) * (60 - d) as f64 / 30.0,
        d if d <= 120 => 1.980 + (2.000 - 1.980) * (120 - d) as f64 / 60.0,
        _ => 1.960,
    }
}

impl Estimate {
    /// Mean, 95 % CI and CV of `xs`.
    pub fn of(xs: &[f64]) -> Self {
        let n = xs.len();
        if n == 0 {
            return Self::default();
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Self { mean, ci95: 0.0, cv: 0.0, n };
        }
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let sd = var.sqrt();
        let ci95 = t_quantile_95(n - 1) * sd / (n as f64).sqrt();
        let cv = if mean.abs() > 0.0 { sd / mean.abs() } else { 0.0 };
        Self { mean, ci95, cv, n }
    }
}

/// One run of a step, as the sweep file keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepRun {
    /// The run's result JSON, relative to the sweep file's directory.
    pub result: String,
    /// The run's id (its records file says the same).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    /// The run's summary (a copy, so the sweep file stands alone).
    pub summary: Summary,
    /// Wall time of the whole run, setup included, seconds.
    pub wall_s: f64,
    /// Wall time not spent sending or awaiting requests (dataset, pre-flight, files), seconds.
    pub overhead_s: f64,
    /// True when the run was cut short by an interrupt: its step cannot meet the SLOs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// The alert that stopped the run (`--abort-on-alert`), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by_alert: Option<String>,
}

/// The figures a sweep table shows for a step, each a mean over repeats with its interval.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepStats {
    /// Requests per second.
    pub request_throughput: Estimate,
    /// Output tokens per second.
    pub output_throughput: Estimate,
    /// Successful / all.
    pub success_rate: Estimate,
    /// Median TTFT, ms.
    pub ttft_median_ms: Estimate,
    /// Median TPOT, ms.
    pub tpot_median_ms: Estimate,
    /// Median latency the knee rule watches (see [`Dimension::knee_latency`]), ms.
    pub knee_latency_ms: Estimate,
}

impl StepStats {
    /// Aggregates the runs of one step.
    pub fn of(summaries: &[&Summary], dim: Dimension) -> Self {
        let est = |f: &dyn Fn(&Summary) -> f64| Estimate::of(&summaries.iter().map(|s| f(s)).collect::<Vec<_>>());
        Self {
            request_throughput: est(&|s| s.request_throughput),
            output_throughput: est(&|s| s.output_throughput),
            success_rate: est(&|s| s.success_rate),
            ttft_median_ms: est(&|s| s.metric(MetricName::Ttft).median),
            tpot_median_ms: est(&|s| s.metric(MetricName::Tpot).median),
            knee_latency_ms: est(&|s| s.metric(dim.knee_latency()).median),
        }
    }

    /// The figures whose coefficient of variation is above `threshold`, by name.
    pub fn noisy(&self, threshold: f64) -> Vec<&'static str> {
        [("output throughput", &self.output_throughput), ("median TTFT", &self.ttft_median_ms), ("median TPOT", &self.tpot_median_ms)]
            .into_iter()
            .filter(|(_, e)| e.n > 1 && e.cv > threshold)
            .map(|(n, _)| n)
            .collect()
    }
}

/// How one SLO fared at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SloCheck {
    /// The rule, as written.
    pub rule: String,
    /// The measured value (mean over repeats), ms.
    pub value_ms: f64,
    /// Whether it is within the limit.
    pub met: bool,
}

/// One load level of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SweepStep {
    /// The concurrency or request rate.
    pub load: f64,
    /// Each repeat.
    pub runs: Vec<StepRun>,
    /// Means and intervals over the repeats.
    pub stats: StepStats,
    /// Each SLO at this step.
    pub slo: Vec<SloCheck>,
    /// Figures with a coefficient of variation above the warning threshold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noisy: Vec<String>,
    /// True for a load added by `--refine` between a passing and a failing step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refined: bool,
}

impl SweepStep {
    /// Whether every SLO is met and the success rate reaches `min_success`.
    pub fn passes(&self, min_success: f64) -> bool {
        self.slo.iter().all(|c| c.met) && self.stats.success_rate.mean >= min_success && !self.runs.iter().any(|r| r.interrupted)
    }

    /// The summaries of the repeats.
    pub fn summaries(&self) -> Vec<&Summary> {
        self.runs.iter().map(|r| &r.summary).collect()
    }

    /// The mean over repeats of an SLO rule's value.
    pub fn rule_value(&self, rule: &SloRule) -> Result<f64, SweepError> {
        let vals = self.runs.iter().map(|r| rule.value(&r.summary)).collect::<Result<Vec<_>, _>>()?;
        Ok(vals.iter().sum::<f64>() / vals.len().max(1) as f64)
    }
}

/// Everything that defines a sweep: the base run, what is varied over which loads, and the rules
/// that judge and stop it. Complete, so a saved sweep can be run again from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SweepSpec {
    /// What is varied.
    pub dimension: Dimension,
    /// The loads planned, increasing (refinement may add loads between them).
    #[serde(default)]
    pub loads: Vec<f64>,
    /// The run every step makes, before the swept value is set (and, when it has no
    /// `num_prompts` or `duration_s`, before the per-step request count is chosen).
    #[serde(rename = "spec")]
    pub run: RunSpec,
    /// SLOs checked at every step.
    pub slos: Vec<SloRule>,
    /// Success rate below which a step fails (and the sweep stops).
    pub min_success_rate: f64,
    /// Stop at the first step that breaks an SLO.
    #[serde(default)]
    pub stop_on_slo: bool,
    /// Stop when median latency exceeds this multiple of the lowest load's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_latency_factor: Option<f64>,
    /// Repeats per step.
    pub repeat: usize,
    /// Give every repeat the base seed. By default repeat `k` (from 0) runs with `seed + k`, so
    /// repeats draw their own prompts and arrivals and the intervals measure that spread too.
    #[serde(default)]
    pub same_seed: bool,
    /// Pause between runs, seconds.
    pub cooldown_s: f64,
    /// Bisections between the SLO limit and the first failing step, after the grid.
    #[serde(default)]
    pub refine: usize,
    /// Coefficient of variation above which repeats are called noisy.
    #[serde(default = "default_cv_warn")]
    pub cv_warn: f64,
}

fn default_cv_warn() -> f64 {
    0.1
}

/// Requests per step when the base run gives neither a count nor a duration: enough for every
/// concurrency slot to turn over several times, or about 20 seconds of arrivals at a rate.
pub fn default_prompts(dim: Dimension, load: f64) -> u64 {
    match dim {
        Dimension::Concurrency => ((load * 8.0) as u64).max(32),
        Dimension::Rate => ((load * 20.0).ceil() as u64).max(32),
    }
}

impl SweepSpec {
    /// The run of one step: the base run with the swept value (and a request count) set.
    pub fn step_spec(&self, load: f64) -> RunSpec {
        let mut s = self.run.clone();
        match self.dimension {
            Dimension::Concurrency => s.max_concurrency = Some(load as u64),
            Dimension::Rate => s.request_rate = Some(load),
        }
        if s.num_prompts.is_none() && s.duration_s.is_none() {
            s.num_prompts = Some(default_prompts(self.dimension, load));
        }
        s
    }

    /// The run of repeat `rep` (from 0) of one step: [`Self::step_spec`] with that repeat's seed.
    pub fn repeat_spec(&self, load: f64, rep: usize) -> RunSpec {
        let mut s = self.step_spec(load);
        if !self.same_seed {
            s.seed = s.seed.wrapping_add(rep as u64);
        }
        s
    }
}

/// A whole sweep, as `inferbench sweep` writes it and `plan` / `compare` read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SweepResult {
    /// Version, kind, tool, times, host, labels.
    #[serde(flatten)]
    pub header: Header,
    /// What was run.
    #[serde(flatten)]
    pub sweep: SweepSpec,
    /// The steps run, in order.
    pub steps: Vec<SweepStep>,
    /// The load at the knee, if the sweep reached one.
    pub knee: Option<f64>,
    /// The highest load meeting every SLO and the success threshold before the first step that
    /// does not.
    pub slo_limit: Option<f64>,
    /// Why the sweep stopped before its last load, if it did.
    pub stopped: Option<String>,
}

impl SweepResult {
    /// What was varied.
    pub fn dimension(&self) -> Dimension {
        self.sweep.dimension
    }
}

/// The knee of a load curve: `loads`, `throughput` and `latency` are per step, in increasing
/// load. Returns the index of the last step before throughput stops keeping up with load while
/// latency climbs (see `docs/metrics.md`), or `None` if every step still scaled.
pub fn find_knee(loads: &[f64], throughput: &[f64], latency: &[f64]) -> Option<usize> {
    (1..loads.len()).find_map(|i| {
        let load_gain = loads[i] / loads[i - 1] - 1.0;
        if load_gain <= 0.0 || throughput[i - 1] <= 0.0 || latency[i - 1] <= 0.0 {
            return None;
        }
        let efficiency = (throughput[i] / throughput[i - 1] - 1.0) / load_gain;
        let latency_growth = latency[i] / latency[i - 1] - 1.0;
        (efficiency < KNEE_EFFICIENCY && latency_growth > KNEE_LATENCY_GROWTH).then_some(i - 1)
    })
}

/// The index of the last passing step before the first failing one; `None` when the first
/// step already fails.
pub fn slo_limit(passes: &[bool]) -> Option<usize> {
    passes.iter().position(|p| !p).map_or(passes.len().checked_sub(1), |first_fail| first_fail.checked_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_parse_as_lists_and_ramps() {
        assert_eq!(parse_loads("1,2, 4,8").unwrap(), vec![1.0, 2.0, 4.0, 8.0]);
        assert_eq!(parse_loads("1..16").unwrap(), vec![1.0, 2.0, 4.0, 8.0, 16.0]);
        assert_eq!(parse_loads("1..20").unwrap(), vec![1.0, 2.0, 4.0, 8.0, 16.0]);
        assert_eq!(parse_loads("1..1000x10").unwrap(), vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(parse_loads("0.5..2x2").unwrap(), vec![0.5, 1.0, 2.0]);
        assert_eq!(parse_loads(""), Err(SweepError::EmptyList));
        assert_eq!(parse_loads(" , "), Err(SweepError::EmptyList));
        assert_eq!(parse_loads("1,x"), Err(SweepError::BadLoad("x".into())));
        assert_eq!(parse_loads("1,-2"), Err(SweepError::BadLoad("-2".into())));
        assert!(matches!(parse_loads("4..2"), Err(SweepError::BadRamp(_))));
        assert!(matches!(parse_loads("1..8x1"), Err(SweepError::BadRamp(_))));
    }

    #[test]
    fn slo_rules_parse_or_name_the_problem() {
        let r = SloRule::parse("ttft:p99:500").unwrap();
        assert_eq!((r.metric, r.stat, r.limit_ms), (MetricName::Ttft, Stat::Percentile(99.0), 500.0));
        assert_eq!(SloRule::parse("tpot:mean:50").unwrap().stat, Stat::Mean);
        assert_eq!(SloRule::parse("e2el:median:9").unwrap().stat, Stat::Percentile(50.0));
        assert_eq!(SloRule::parse("itl:20").unwrap().stat, Stat::Percentile(99.0));
        assert_eq!(SloRule::parse("ttft:p99:500").unwrap().to_string(), "ttft:p99:500");
        assert_eq!(SloRule::parse("latency:p99:5"), Err(SweepError::UnknownMetric("latency".into())));
        assert_eq!(SloRule::parse("queue:p99:5"), Err(SweepError::UnknownMetric("queue".into())));
        assert!(matches!(SloRule::parse("ttft:p0:5"), Err(SweepError::BadSlo(_))));
        assert!(matches!(SloRule::parse("ttft:q9:5"), Err(SweepError::BadSlo(_))));
        assert!(matches!(SloRule::parse("ttft:p99:-5"), Err(SweepError::BadSlo(_))));
        assert!(matches!(SloRule::parse("ttft"), Err(SweepError::BadSlo(_))));
    }

    #[test]
    fn rule_values_come_from_the_summary_or_say_what_is_missing() {
        let mut s = Summary::default();
        let d = crate::stats::Distribution { mean: 12.0, median: 10.0, percentiles: vec![(99.0, 30.0)], ..Default::default() };
        s.metrics.insert(MetricName::Ttft, d);
        assert_eq!(SloRule::parse("ttft:p99:1").unwrap().value(&s), Ok(30.0));
        assert_eq!(SloRule::parse("ttft:median:1").unwrap().value(&s), Ok(10.0));
        assert_eq!(SloRule::parse("ttft:mean:1").unwrap().value(&s), Ok(12.0));
        let e = SloRule::parse("ttft:p95:1").unwrap().value(&s).unwrap_err().to_string();
        assert!(e.contains("p95") && e.contains("p99") && e.contains("--metric-percentiles"), "{e}");
    }

    #[test]
    fn confidence_interval_by_hand() {
        // 10, 12, 14: mean 12, sample sd 2, t(2) = 4.303, half-width 4.303 * 2 / sqrt 3 = 4.9687.
        let e = Estimate::of(&[10.0, 12.0, 14.0]);
        assert_eq!(e.mean, 12.0);
        assert!((e.ci95 - 4.303 * 2.0 / 3f64.sqrt()).abs() < 1e-9, "{e:?}");
        assert!((e.cv - 2.0 / 12.0).abs() < 1e-12);
        assert_eq!(Estimate::of(&[5.0]), Estimate { mean: 5.0, ci95: 0.0, cv: 0.0, n: 1 });
        assert_eq!(t_quantile_95(1000), 1.96);
    }

    #[test]
    fn noisy_repeats_are_named() {
        let mut a = Summary { output_throughput: 100.0, ..Default::default() };
        let mut b = a.clone();
        b.output_throughput = 130.0;
        let d = |m: f64| crate::stats::Distribution { median: m, ..Default::default() };
        a.metrics.insert(MetricName::Ttft, d(50.0));
        b.metrics.insert(MetricName::Ttft, d(51.0));
        // Throughput 100 and 130: sd 21.2, mean 115, CV 18 %; TTFT CV 1.4 %.
        let st = StepStats::of(&[&a, &b], Dimension::Concurrency);
        assert_eq!(st.noisy(0.10), vec!["output throughput"]);
        assert!(st.noisy(0.20).is_empty());
        // One run has no spread to judge.
        assert!(StepStats::of(&[&a], Dimension::Concurrency).noisy(0.0).is_empty());
    }

    #[test]
    fn knee_is_where_throughput_flattens_and_latency_climbs() {
        // Doubling concurrency doubles throughput up to 8, then nothing more while latency doubles.
        let loads = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0];
        let thr = [10.0, 19.8, 39.0, 76.0, 77.0, 77.5];
        let lat = [100.0, 101.0, 103.0, 105.0, 210.0, 420.0];
        assert_eq!(find_knee(&loads, &thr, &lat), Some(3));
        // Still scaling everywhere: no knee.
        assert_eq!(find_knee(&loads[..4], &thr[..4], &lat[..4]), None);
        // Flat throughput but flat latency too (the server was never the limit): no knee.
        assert_eq!(find_knee(&[1.0, 2.0], &[10.0, 10.0], &[100.0, 100.0]), None);
        // Efficiency exactly at the threshold still scales: (15/10 - 1) / (2 - 1) = 0.5.
        assert_eq!(find_knee(&[1.0, 2.0], &[10.0, 15.0], &[100.0, 200.0]), None);
        assert_eq!(find_knee(&[1.0, 2.0], &[10.0, 14.9], &[100.0, 200.0]), Some(0));
    }

    #[test]
    fn slo_limit_is_the_last_pass_before_the_first_failure() {
        assert_eq!(slo_limit(&[true, true, false, true]), Some(1));
        assert_eq!(slo_limit(&[true, true]), Some(1));
        assert_eq!(slo_limit(&[false, true]), None);
        assert_eq!(slo_limit(&[]), None);
    }
}
