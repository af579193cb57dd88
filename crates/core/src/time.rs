//! Wall-clock timestamps for result headers (measurements themselves use monotonic clocks).

/// Now, as RFC 3339 in UTC to the second (`2026-12-02T05:39:08Z`).
pub fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Now as a compact `YYYYMMDD-HHMMSS` stamp for default file names.
pub fn compact_now() -> String {
    compact(&rfc3339_now())
}

/// An RFC 3339 time as vLLM's `date` (`%Y%m%d-%H%M%S`, here in UTC): `2026-12-02T03:01:00Z` →
/// `20261202-030100`. Tools that read vLLM results reject anything else.
pub fn compact(rfc3339: &str) -> String {
    let digits: String = rfc3339.chars().filter(char::is_ascii_digit).take(14).collect();
    if digits.len() < 14 {
        return rfc3339.to_owned();
    }
    format!("{}-{}", &digits[..8], &digits[8..14])
}

/// A fresh id for a run: the wall clock in nanoseconds, the process id and a counter, in hex.
/// Unique across the runs of one machine, and sortable by start time.
pub fn new_run_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    format!("{nanos:016x}-{:05x}-{:04x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff)
}

#[cfg(test)]
mod tests {
    #[test]
    fn vllm_dates_are_compact() {
        assert_eq!(super::compact("2026-12-02T03:01:00Z"), "20261202-030100");
        assert_eq!(super::compact("garbage"), "garbage");
        assert_eq!(super::compact_now().len(), 15);
    }
}
