//! Plain-language grades for TTFT and TPOT (seed 004's reference table): what a user of a chat
//! product would call the latency, so a summary answers "is this good?" at a glance.

use serde::{Deserialize, Serialize};

/// Upper limits (ms) for "excellent" and "good"; anything slower "needs work".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Thresholds {
    /// Below this: excellent.
    pub excellent_ms: f64,
    /// Below this: good.
    pub good_ms: f64,
}

/// The thresholds for both metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GradeScale {
    /// Time to first token.
    pub ttft: Thresholds,
    /// Time per output token.
    pub tpot: Thresholds,
}

impl Default for GradeScale {
    /// Seed 004: TTFT excellent < 100 ms, good < 200 ms; TPOT excellent < 50 ms, good < 100 ms.
    fn default() -> Self {
        Self { ttft: Thresholds { excellent_ms: 100.0, good_ms: 200.0 }, tpot: Thresholds { excellent_ms: 50.0, good_ms: 100.0 } }
    }
}

/// A grade.
pub fn grade(value_ms: f64, t: Thresholds) -> &'static str {
    if value_ms < t.excellent_ms {
        "excellent"
    } else if value_ms < t.good_ms {
        "good"
    } else {
        "needs work"
    }
}

/// Parses `EXCELLENT,GOOD` in ms (e.g. `100,200`).
pub fn parse_thresholds(s: &str) -> Result<Thresholds, String> {
    let (a, b) = s.split_once(',').ok_or_else(|| format!("'{s}': expected EXCELLENT_MS,GOOD_MS such as 100,200"))?;
    let a: f64 = a.trim().parse().map_err(|_| format!("'{s}': '{a}' is not a number"))?;
    let b: f64 = b.trim().parse().map_err(|_| format!("'{s}': '{b}' is not a number"))?;
    if !(a > 0.0 && b > a) {
        return Err(format!("'{s}': need 0 < excellent < good"));
    }
    Ok(Thresholds { excellent_ms: a, good_ms: b })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_follow_the_seed_table() {
        let s = GradeScale::default();
        assert_eq!(grade(99.9, s.ttft), "excellent");
        assert_eq!(grade(125.0, s.ttft), "good");
        assert_eq!(grade(200.0, s.ttft), "needs work");
        assert_eq!(grade(35.0, s.tpot), "excellent");
        assert_eq!(grade(78.0, s.tpot), "good");
        assert_eq!(parse_thresholds("20,40").unwrap(), Thresholds { excellent_ms: 20.0, good_ms: 40.0 });
        assert!(parse_thresholds("40,20").is_err());
        assert!(parse_thresholds("fast").is_err());
    }
}
