//! The few facts about our own process that only the OS knows: CPU time, peak memory, and the
//! open-file limit (10,000 concurrent streams need 10,000 sockets).
#![allow(unsafe_code)]

/// User + system CPU seconds this process has used so far.
pub fn cpu_seconds() -> f64 {
    let u = usage();
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Peak resident set size of this process, in bytes. On Linux this is `VmHWM`, the high-water
/// mark of this program's own memory: `ru_maxrss` survives `exec`, so a small client started by a
/// large parent (a test harness, say) would report the parent's peak.
pub fn peak_rss_bytes() -> u64 {
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()));
    // Both are in KiB.
    hwm.unwrap_or_else(|| usage().ru_maxrss.max(0) as u64) * 1024
}

fn usage() -> libc::rusage {
    // SAFETY: getrusage only writes into the zeroed struct we pass; RUSAGE_SELF is always valid.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    }
}

/// Raises the soft open-file limit to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: get/setrlimit read and write a plain struct we own.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 0;
        }
        if l.rlim_cur < l.rlim_max {
            let want = libc::rlimit { rlim_cur: l.rlim_max, rlim_max: l.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
        l.rlim_cur
    }
}

/// Raises the open-file limit and checks that `needed` descriptors fit under it; the error says
/// what to raise (a run that would fail most of its connections is refused before it starts).
pub fn ensure_open_files(needed: u64, what: &str) -> Result<(), crate::BenchError> {
    let limit = raise_nofile_limit();
    if limit > 0 && limit < needed {
        return Err(crate::BenchError::invalid(format!(
            "{what} needs about {needed} open files, but this process may open {limit}; raise the limit (`ulimit -n {needed}`) or lower the concurrency"
        )));
    }
    Ok(())
}

/// What the kernel says of the wall clock's discipline (`adjtimex`, read only: mode 0 changes
/// nothing). Shards on several machines are placed on one timeline by their wall clocks, so the
/// result says how far those can be trusted.
pub fn clock_sync() -> inferbench_core::shard::ClockSync {
    // SAFETY: a zeroed timex with modes 0 asks for the clock's state and writes only into it.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return inferbench_core::shard::ClockSync::default();
    }
    // STA_NANO: the offset is in nanoseconds, else microseconds.
    let offset_us = if tx.status & libc::STA_NANO != 0 { tx.offset as f64 / 1e3 } else { tx.offset as f64 };
    inferbench_core::shard::ClockSync {
        synchronized: state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0,
        offset_us: Some(offset_us),
        est_error_us: Some(tx.esterror as f64),
        max_error_us: Some(tx.maxerror as f64),
    }
}

/// Returns freed heap memory to the OS, so a resident-memory delta measured next is the new
/// allocation's own and not a reuse of what an earlier model left behind.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_facts_are_plausible() {
        let before = cpu_seconds();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds() >= before);
        assert!(peak_rss_bytes() > 1 << 20);
        assert!(raise_nofile_limit() > 0);
    }
}
