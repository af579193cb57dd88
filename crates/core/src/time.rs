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
