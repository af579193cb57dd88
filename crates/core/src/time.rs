//! Wall-clock timestamps for result headers (measurements themselves use monotonic clocks).

/// Now, as RFC 3339 in UTC to the second (`2026-12-02T05:39:08Z`).
pub fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Now as a compact `YYYYMMDD-HHMMSS` stamp for default file names.
pub fn compact_now() -> String {
    let digits: String = rfc3339_now().chars().filter(char::is_ascii_digit).collect();
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
