//! Baseline against candidate, as `inferbench compare` computes it: one row per metric with the
//! change, the speedup and the Mann–Whitney p-value, and the regression gate's verdict. The
//! analysis that fills it is in `inferbench-bench`; the tables are in `inferbench-report`.

use crate::result::{Header, ResultKind};
use serde::{Deserialize, Serialize};

/// Rows without per-request samples (throughputs, engine figures) within this fraction of each
/// other are called the same.
pub const UNTESTED_SAME: f64 = 0.01;

/// One metric of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CompareRow {
    /// The step (`c=8`) for sweeps, `latency runs` / `engine` for engine results, empty for runs.
    pub group: String,
    /// What the row shows, for people (`TTFT median (ms)`).
    pub metric: String,
    /// What `--regression-metric` matches (`e2el_median`, `output_throughput`, engine keys).
    pub key: String,
    /// The baseline's value.
    pub baseline: f64,
    /// The candidate's value.
    pub candidate: f64,
    /// Whether lower values are better; `None` when the direction is unknown.
    pub lower_better: Option<bool>,
    /// Mann–Whitney p-value on the per-request samples, when both sides have them.
    pub p: Option<f64>,
}

impl CompareRow {
    /// (candidate − baseline) / baseline.
    pub fn change(&self) -> f64 {
        (self.candidate - self.baseline) / self.baseline
    }

    /// How much worse the candidate is (positive = regression), as a fraction.
    pub fn regression(&self) -> f64 {
        match self.lower_better {
            Some(true) => self.change(),
            Some(false) => -self.change(),
            None => 0.0,
        }
    }

    /// Above 1 when the candidate is better: baseline/candidate for latencies,
    /// candidate/baseline for throughputs.
    pub fn speedup(&self) -> f64 {
        match self.lower_better {
            Some(true) => self.baseline / self.candidate,
            _ => self.candidate / self.baseline,
        }
    }

    /// The verdict in words at significance level `alpha`.
    pub fn verdict(&self, alpha: f64) -> &'static str {
        if self.lower_better.is_none() {
            return "-";
        }
        match (self.p, self.regression()) {
            (None, x) if x > UNTESTED_SAME => "worse (not tested)",
            (None, x) if x < -UNTESTED_SAME => "better (not tested)",
            (None, _) => "same (within 1%, not tested)",
            (Some(p), _) if p >= alpha => "no significant change",
            (Some(_), x) if x > 0.0 => "worse",
            (Some(_), x) if x < 0.0 => "better",
            _ => "no significant change",
        }
    }
}

/// What the regression gate decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateOutcome {
    /// The metric watched, as given.
    pub metric: String,
    /// The threshold, as a fraction.
    pub threshold: f64,
    /// One line per significant regression beyond the threshold; empty when it passed.
    pub failures: Vec<String>,
}

impl GateOutcome {
    /// True when nothing regressed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A whole comparison, as `inferbench compare --output` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CompareResult {
    /// Version, kind, tool, times, host, labels.
    #[serde(flatten)]
    pub header: Header,
    /// The baseline file.
    pub baseline: String,
    /// The candidate file.
    pub candidate: String,
    /// What both files are.
    pub compared: ResultKind,
    /// Significance level of the test.
    pub alpha: f64,
    /// One row per metric (per step for sweeps).
    pub rows: Vec<CompareRow>,
    /// Workload differences that were allowed (`--allow-different-workloads`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workload_diffs: Vec<String>,
    /// Remarks (knees and limits of sweeps, untested significance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The regression gate, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateOutcome>,
}

/// Formats a p-value for tables.
pub fn fmt_p(p: Option<f64>) -> String {
    p.map_or("n/a".to_owned(), |p| if p < 1e-4 { "<0.0001".to_owned() } else { format!("{p:.4}") })
}
