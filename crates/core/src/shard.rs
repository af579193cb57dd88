//! Sharded runs: one global schedule, split between processes by request ordinal, so that the
//! union of the shards is the run one process would have made. The rules here are the whole
//! contract between the shards; nothing is negotiated at run time.
//!
//! - Every shard derives the same arrival sequence and prompt list (same spec, same seed). Unit
//!   of work `i` (a prompt, or a whole multi-turn session) is due at the global arrival `i`.
//! - Without a concurrency cap, shard `I` of `N` takes the ordinals `i` with `i mod N = I`.
//! - With a cap `C`, the `C` global slots are dealt round-robin: slot `s` belongs to shard
//!   `s mod N`, so shard `I` holds `⌈(C − I) / N⌉` slots and the caps sum to exactly `C`. Ordinal
//!   `i` belongs to slot `i mod C`, so each shard's share of the requests is its share of the
//!   slots. When `C < N`, shards `C … N−1` hold no slot: they send nothing and write an empty
//!   result, which the merge still expects.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which part of a global schedule this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Shard {
    /// This shard's index, from 0.
    pub index: u64,
    /// How many shards share the schedule.
    pub count: u64,
}

/// Why a `--shard` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}")]
pub struct ShardError {
    why: String,
}

impl std::str::FromStr for Shard {
    type Err = ShardError;

    /// `I/N`, with `0 ≤ I < N`.
    fn from_str(s: &str) -> Result<Self, ShardError> {
        let bad = |why: String| ShardError { why };
        let (i, n) = s.split_once('/').ok_or_else(|| bad(format!("'{s}': expected INDEX/COUNT, e.g. 0/4")))?;
        let num = |x: &str| x.trim().parse::<u64>().map_err(|_| bad(format!("'{x}' is not a whole number")));
        let (index, count) = (num(i)?, num(n)?);
        if count == 0 {
            return Err(bad("the shard count must be at least 1".into()));
        }
        if index >= count {
            return Err(bad(format!(
                "shard indices count from 0, so {count} shard{} are numbered 0 to {}",
                if count == 1 { "" } else { "s" },
                count - 1
            )));
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The whole schedule (one process).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// How many of the `cap` global concurrency slots this shard holds: `⌈(cap − I) / N⌉`.
    pub fn slots(&self, cap: u64) -> u64 {
        if cap <= self.index {
            0
        } else {
            (cap - self.index).div_ceil(self.count)
        }
    }

    /// Whether global ordinal `i` is this shard's, under the global cap (if any).
    pub fn owns(&self, i: u64, cap: Option<u64>) -> bool {
        match cap {
            Some(c) if c > 0 => (i % c) % self.count == self.index,
            _ => i % self.count == self.index,
        }
    }

    /// The global ordinal of this shard's `k`-th unit of work (`None` when the shard holds no
    /// slot and so owns nothing).
    pub fn nth(&self, k: u64, cap: Option<u64>) -> Option<u64> {
        match cap {
            Some(c) if c > 0 => {
                let per_block = self.slots(c);
                (per_block > 0).then(|| (k / per_block) * c + self.index + (k % per_block) * self.count)
            }
            _ => Some(k * self.count + self.index),
        }
    }

    /// How many of the ordinals `0 … n−1` are this shard's.
    pub fn owned_below(&self, n: u64, cap: Option<u64>) -> u64 {
        match cap {
            Some(c) if c > 0 => {
                let full = n / c * self.slots(c);
                let rest = n % c; // the partial block's slots 0 … rest−1
                full + self.slots(rest)
            }
            _ => self.slots(n),
        }
    }
}

/// What a shard records about itself, so its result can be merged and its start judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShardInfo {
    /// Which shard this is.
    pub shard: Shard,
    /// The concurrency slots this shard held (its part of the global `max_concurrency`).
    pub max_concurrency: Option<u64>,
    /// Units of work this shard scheduled.
    pub scheduled: u64,
    /// The wall-clock instant of the shard's epoch (every record's `*_ns` counts from it), in
    /// nanoseconds since the Unix epoch: what puts the shards on one timeline.
    pub epoch_unix_ns: u64,
    /// The synchronised start asked for (`--start-at`), in nanoseconds since the Unix epoch.
    pub start_at_unix_ns: Option<u64>,
    /// How late the epoch was against `--start-at`, in milliseconds (negative: early).
    pub late_ms: Option<f64>,
    /// This machine's clock discipline when the shard started.
    pub clock: ClockSync,
    /// The accumulator state file written beside the result, for merges without records.
    pub state_file: Option<String>,
}

/// What the kernel says about the wall clock (`adjtimex`): shards on machines whose clocks
/// disagree by more than the requests' latencies cannot be placed on one timeline exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClockSync {
    /// True when the kernel reports the clock as synchronised (NTP, chrony, PTP).
    pub synchronized: bool,
    /// The offset the kernel is still correcting, in microseconds.
    pub offset_us: Option<f64>,
    /// The kernel's estimated error, in microseconds.
    pub est_error_us: Option<f64>,
    /// The kernel's maximum error, in microseconds.
    pub max_error_us: Option<f64>,
}

/// How a merged result was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MergeInfo {
    /// How many shards were merged.
    pub shards: u64,
    /// Their result files, in shard order.
    pub files: Vec<String>,
    /// True when the summary was computed from every shard's records (percentiles exactly as one
    /// process would compute them); false when it came from the shards' accumulator states.
    pub from_records: bool,
    /// The relative error bound of the percentiles when they come from merged histograms.
    pub percentile_error: Option<f64>,
    /// The spread of the shards' epochs, in milliseconds (how far from simultaneous they began).
    pub epoch_spread_ms: f64,
    /// The latest shard's lateness against `--start-at`, in milliseconds.
    pub max_late_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(i: u64, n: u64) -> Shard {
        Shard { index: i, count: n }
    }

    #[test]
    fn parses_and_refuses_with_the_reason() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), shard(2, 4));
        let e = "4/4".parse::<Shard>().unwrap_err().to_string();
        assert_eq!(e, "shard indices count from 0, so 4 shards are numbered 0 to 3");
        assert!("0/0".parse::<Shard>().unwrap_err().to_string().contains("at least 1"));
        assert!("a/4".parse::<Shard>().unwrap_err().to_string().contains("'a' is not a whole number"));
        assert!("3".parse::<Shard>().unwrap_err().to_string().contains("INDEX/COUNT"));
    }

    #[test]
    fn caps_sum_to_the_global_cap_even_below_the_shard_count() {
        // Hand-computed: 10 slots over 4 shards -> 3, 3, 2, 2; 3 slots over 4 -> 1, 1, 1, 0.
        assert_eq!((0..4).map(|i| shard(i, 4).slots(10)).collect::<Vec<_>>(), vec![3, 3, 2, 2]);
        assert_eq!((0..4).map(|i| shard(i, 4).slots(3)).collect::<Vec<_>>(), vec![1, 1, 1, 0]);
        for c in 0..40 {
            for n in 1..9 {
                assert_eq!((0..n).map(|i| shard(i, n).slots(c)).sum::<u64>(), c, "c={c} n={n}");
            }
        }
    }

    #[test]
    fn every_ordinal_has_exactly_one_owner_and_nth_enumerates_them_in_order() {
        for cap in [None, Some(1), Some(3), Some(5), Some(8), Some(13)] {
            for n in 1..7u64 {
                let mut owners = vec![0u32; 200];
                for i in 0..n {
                    let s = shard(i, n);
                    let owned: Vec<u64> = (0..200).filter(|&o| s.owns(o, cap)).collect();
                    let listed: Vec<u64> = (0..owned.len() as u64).filter_map(|k| s.nth(k, cap)).collect();
                    assert_eq!(owned, listed, "cap={cap:?} shard {i}/{n}");
                    assert_eq!(s.owned_below(200, cap), owned.len() as u64);
                    assert_eq!(s.owned_below(37, cap), owned.iter().filter(|&&o| o < 37).count() as u64);
                    owned.iter().for_each(|&o| owners[o as usize] += 1);
                }
                assert!(owners.iter().all(|&c| c == 1), "cap={cap:?} n={n}");
            }
        }
    }

    #[test]
    fn with_a_cap_the_share_of_requests_follows_the_share_of_slots() {
        // Cap 5 over 2 shards: slots 0, 2, 4 -> shard 0; 1, 3 -> shard 1. Ordinals 0..10.
        let (a, b) = (shard(0, 2), shard(1, 2));
        assert_eq!((0..10).filter(|&i| a.owns(i, Some(5))).collect::<Vec<_>>(), vec![0, 2, 4, 5, 7, 9]);
        assert_eq!((0..10).filter(|&i| b.owns(i, Some(5))).collect::<Vec<_>>(), vec![1, 3, 6, 8]);
        // A shard with no slot owns nothing.
        assert_eq!(shard(3, 4).nth(0, Some(3)), None);
    }
}
