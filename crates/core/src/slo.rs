//! Service-level objectives: the per-request latency limits that define goodput.

use crate::record::RequestRecord;
use crate::summary::MetricName;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A bad SLO or metric specification, naming the offending part.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SloError {
    /// The metric is not one SLOs can be set on.
    #[error("unknown metric '{0}' (expected one of: ttft, tpot, itl, e2el)")]
    UnknownMetric(String),
    /// The item is not `metric:milliseconds`.
    #[error("'{0}' is not of the form metric:milliseconds (e.g. ttft:500)")]
    Malformed(String),
    /// The limit is not a positive number.
    #[error("'{0}': the limit must be a positive number of milliseconds")]
    BadValue(String),
    /// The same metric was given twice.
    #[error("metric '{0}' is given more than once")]
    Duplicate(String),
}

/// Per-request latency limits in milliseconds; a request is "good" when it meets every one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Slo {
    /// `(metric, limit_ms)` pairs.
    pub limits: Vec<(MetricName, f64)>,
}

impl Slo {
    /// Parses `ttft:500 tpot:50` (items separated by spaces or commas), vLLM's `--goodput` syntax.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, SloError> {
        let mut limits: Vec<(MetricName, f64)> = Vec::new();
        for item in items.iter().flat_map(|s| s.as_ref().split([' ', ',']).filter(|x| !x.is_empty()).map(str::to_owned).collect::<Vec<_>>())
        {
            let (name, value) = item.split_once(':').ok_or_else(|| SloError::Malformed(item.clone()))?;
            let metric: MetricName = name.parse().map_err(|_| SloError::UnknownMetric(name.to_owned()))?;
            if !metric.is_per_request() {
                return Err(SloError::UnknownMetric(name.to_owned()));
            }
            let ms: f64 = value.parse().map_err(|_| SloError::BadValue(item.clone()))?;
            if !(ms.is_finite() && ms > 0.0) {
                return Err(SloError::BadValue(item.clone()));
            }
            if limits.iter().any(|(m, _)| *m == metric) {
                return Err(SloError::Duplicate(name.to_owned()));
            }
            limits.push((metric, ms));
        }
        Ok(Self { limits })
    }

    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Whether a successful request meets every limit. A metric the request has no value for
    /// (TPOT of a one-token reply) does not count against it, as in vLLM.
    pub fn is_met_by(&self, r: &RequestRecord) -> bool {
        r.is_success()
            && self.limits.iter().all(|&(m, limit)| match m {
                MetricName::Ttft => r.ttft_ms().is_none_or(|v| v <= limit),
                MetricName::Tpot => r.tpot_ms().is_none_or(|v| v <= limit),
                MetricName::E2el => r.e2el_ms() <= limit,
                MetricName::Itl => r.itl_ns.iter().all(|&g| g as f64 / 1e6 <= limit),
                _ => true,
            })
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.limits.iter().map(|(m, v)| format!("{m}:{v}")).collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vllm_syntax() {
        let s = Slo::parse(&["ttft:500", "tpot:50.5"]).unwrap();
        assert_eq!(s.limits, vec![(MetricName::Ttft, 500.0), (MetricName::Tpot, 50.5)]);
        assert_eq!(Slo::parse(&["ttft:1,e2el:2"]).unwrap().limits.len(), 2);
        assert_eq!(s.to_string(), "ttft:500 tpot:50.5");
    }

    #[test]
    fn rejects_bad_items() {
        assert_eq!(Slo::parse(&["foo:1"]), Err(SloError::UnknownMetric("foo".into())));
        assert_eq!(Slo::parse(&["ttft"]), Err(SloError::Malformed("ttft".into())));
        assert_eq!(Slo::parse(&["ttft:-1"]), Err(SloError::BadValue("ttft:-1".into())));
        assert_eq!(Slo::parse(&["ttft:x"]), Err(SloError::BadValue("ttft:x".into())));
        assert_eq!(Slo::parse(&["ttft:1", "ttft:2"]), Err(SloError::Duplicate("ttft".into())));
    }
}
