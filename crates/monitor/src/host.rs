//! This machine during a run, from `/proc` and `/sys`: CPU busy, memory, network bytes, a local
//! server process's CPU and RSS, and CPU package energy from RAPL where it is readable (so a
//! CPU-only run also gets joules per token).
#![allow(unsafe_code)]

use crate::gauge::GaugeAcc;
use inferbench_core::monitor::{CpuEnergy, HostReport, ProcessReport};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// One reading of the machine's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostReading {
    /// Busy and total jiffies over all CPUs (`/proc/stat`).
    pub cpu: Option<(u64, u64)>,
    /// Memory used and total, bytes (`MemTotal - MemAvailable`).
    pub memory: Option<(u64, u64)>,
    /// Received and sent bytes over non-loopback interfaces, and loopback bytes.
    pub net: Option<(u64, u64, u64)>,
    /// The watched process: CPU jiffies (user + system) and RSS bytes.
    pub process: Option<(u64, u64)>,
    /// RAPL energy counters, µJ, one per zone.
    pub rapl_uj: Vec<u64>,
}

/// Parses `/proc/stat`'s first line: busy and total jiffies.
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is already in user)
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Parses `/proc/meminfo`: used (`MemTotal - MemAvailable`) and total bytes.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let kib = |key: &str| text.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse::<u64>().ok();
    let (total, avail) = (kib("MemTotal:")?, kib("MemAvailable:")?);
    Some(((total.saturating_sub(avail)) * 1024, total * 1024))
}

/// Parses `/proc/net/dev`: received and sent bytes over every interface but `lo`, and `lo`'s
/// received bytes (each loopback byte is both sent and received: counted once).
pub fn parse_net_dev(text: &str) -> Option<(u64, u64, u64)> {
    let (mut rx, mut tx, mut lo) = (0, 0, 0);
    let mut any = false;
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let v: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if v.len() < 9 {
            continue;
        }
        any = true;
        if name.trim() == "lo" {
            lo += v[0];
        } else {
            rx += v[0];
            tx += v[8];
        }
    }
    any.then_some((rx, tx, lo))
}

/// Parses `/proc/<pid>/stat`: user + system jiffies, and RSS pages.
pub fn parse_pid_stat(text: &str) -> Option<(u64, u64)> {
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); utime is field 14, stime 15, rss 24.
    let num = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
    Some((num(14)? + num(15)?, num(24)?))
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: as above.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as f64
    } else {
        100.0
    }
}

/// The RAPL package zones whose energy counter this process may read.
pub fn rapl_zones(root: &Path) -> Vec<(String, PathBuf, u64)> {
    let mut zones = Vec::new();
    let Ok(dir) = std::fs::read_dir(root) else { return zones };
    let mut entries: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let fname = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Top-level zones only (intel-rapl:0, not intel-rapl:0:0): their counters include the subzones.
        if !fname.contains("rapl:") || fname.matches(':').count() != 1 {
            continue;
        }
        let name = std::fs::read_to_string(p.join("name")).map(|s| s.trim().to_owned()).unwrap_or_else(|_| fname.to_owned());
        let max = std::fs::read_to_string(p.join("max_energy_range_uj")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(u64::MAX);
        if std::fs::read_to_string(p.join("energy_uj")).ok().and_then(|s| s.trim().parse::<u64>().ok()).is_some() {
            zones.push((name, p.join("energy_uj"), max));
        }
    }
    zones
}

/// Reads the machine (and `pid`, when given) now.
pub struct HostProbe {
    pid: Option<u32>,
    rapl: Vec<(String, PathBuf, u64)>,
    page: u64,
}

impl HostProbe {
    /// A probe of this machine and, when given, process `pid`.
    pub fn new(pid: Option<u32>) -> Self {
        Self { pid, rapl: rapl_zones(Path::new("/sys/class/powercap")), page: page_size() }
    }

    /// The RAPL zones found.
    pub fn rapl_zone_names(&self) -> Vec<String> {
        self.rapl.iter().map(|z| z.0.clone()).collect()
    }

    /// The RAPL counters' wrap points.
    pub fn rapl_ranges(&self) -> Vec<u64> {
        self.rapl.iter().map(|z| z.2).collect()
    }

    /// A reading now.
    pub fn read(&self) -> HostReading {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        HostReading {
            cpu: read("/proc/stat").as_deref().and_then(parse_stat),
            memory: read("/proc/meminfo").as_deref().and_then(parse_meminfo),
            net: read("/proc/net/dev").as_deref().and_then(parse_net_dev),
            process: self
                .pid
                .and_then(|p| read(&format!("/proc/{p}/stat")))
                .as_deref()
                .and_then(parse_pid_stat)
                .map(|(cpu, rss)| (cpu, rss * self.page)),
            rapl_uj: self.rapl.iter().filter_map(|(_, p, _)| std::fs::read_to_string(p).ok()?.trim().parse().ok()).collect(),
        }
    }
}

/// Turns readings into rates and the report. Counters are differenced between consecutive
/// readings; RAPL counters that wrap are unwrapped with their `max_energy_range_uj`.
#[derive(Debug, Default)]
pub struct HostMonitor {
    pid: Option<u32>,
    zones: Vec<String>,
    ranges: Vec<u64>,
    ticks: f64,
    first: Option<(f64, HostReading)>,
    prev: Option<(f64, HostReading)>,
    cpu: GaugeAcc,
    mem: GaugeAcc,
    mem_total: u64,
    proc_cpu: GaugeAcc,
    proc_rss: GaugeAcc,
    rapl_uj: f64,
    samples: u64,
}

impl HostMonitor {
    /// A monitor for `pid` (if any), RAPL zones `zones` with wrap points `ranges`.
    pub fn new(pid: Option<u32>, zones: Vec<String>, ranges: Vec<u64>) -> Self {
        Self { pid, zones, ranges, ticks: clock_ticks(), ..Self::default() }
    }

    /// A reading at `t_s`; returns its time-series line (rates need a previous reading).
    pub fn observe(&mut self, t_s: f64, r: HostReading) -> Value {
        self.samples += 1;
        let mut line = json!({"t": (t_s * 1e3).round() / 1e3, "source": "host"});
        if let Some((used, total)) = r.memory {
            self.mem.add(used as f64);
            self.mem_total = total;
            line["memory_used_bytes"] = json!(used);
            line["memory_pct"] = json!(used as f64 / total.max(1) as f64 * 100.0);
        }
        if let Some((_, rss)) = r.process {
            self.proc_rss.add(rss as f64);
            line["server_rss_bytes"] = json!(rss);
        }
        if let Some((t0, prev)) = &self.prev {
            let dt = (t_s - t0).max(1e-9);
            if let (Some((b0, t0j)), Some((b1, t1j))) = (prev.cpu, r.cpu) {
                let pct = (b1.saturating_sub(b0)) as f64 / (t1j.saturating_sub(t0j)).max(1) as f64 * 100.0;
                self.cpu.add(pct);
                line["cpu_pct"] = json!((pct * 10.0).round() / 10.0);
            }
            if let (Some((c0, _)), Some((c1, _))) = (prev.process, r.process) {
                let pct = c1.saturating_sub(c0) as f64 / self.ticks / dt * 100.0;
                self.proc_cpu.add(pct);
                line["server_cpu_pct"] = json!((pct * 10.0).round() / 10.0);
            }
            if let (Some((rx0, tx0, lo0)), Some((rx1, tx1, lo1))) = (prev.net, r.net) {
                line["net_rx_bytes_s"] = json!((rx1.saturating_sub(rx0)) as f64 / dt);
                line["net_tx_bytes_s"] = json!((tx1.saturating_sub(tx0)) as f64 / dt);
                line["loopback_bytes_s"] = json!((lo1.saturating_sub(lo0)) as f64 / dt);
            }
            if prev.rapl_uj.len() == r.rapl_uj.len() && !r.rapl_uj.is_empty() {
                let uj: f64 = prev
                    .rapl_uj
                    .iter()
                    .zip(&r.rapl_uj)
                    .zip(self.ranges.iter().chain(std::iter::repeat(&u64::MAX)))
                    .map(|((&a, &b), &max)| if b >= a { (b - a) as f64 } else { (max - a + b) as f64 })
                    .sum();
                self.rapl_uj += uj;
                line["cpu_power_w"] = json!(uj / 1e6 / dt);
            }
        }
        if self.first.is_none() {
            self.first = Some((t_s, r.clone()));
        }
        self.prev = Some((t_s, r));
        line
    }

    /// The latest memory use, % (for alerts).
    pub fn latest_memory_pct(&self) -> Option<f64> {
        (self.mem.samples > 0).then(|| self.mem.last / self.mem_total.max(1) as f64 * 100.0)
    }

    /// The report over the readings, with CPU joules per output token.
    pub fn report(&self, output_tokens: u64) -> Option<HostReport> {
        let (Some((t0, first)), Some((t1, last))) = (&self.first, &self.prev) else { return None };
        let net = match (first.net, last.net) {
            (Some((rx0, tx0, lo0)), Some((rx1, tx1, lo1))) => (rx1.saturating_sub(rx0), tx1.saturating_sub(tx0), lo1.saturating_sub(lo0)),
            _ => (0, 0, 0),
        };
        let span = t1 - t0;
        let cpu_energy = (!self.zones.is_empty() && self.samples > 1 && span > 0.0).then(|| {
            let j = self.rapl_uj / 1e6;
            CpuEnergy {
                zones: self.zones.clone(),
                energy_j: j,
                avg_power_w: j / span,
                joules_per_output_token: (output_tokens > 0).then(|| j / output_tokens as f64),
            }
        });
        Some(HostReport {
            samples: self.samples,
            cpu_pct: self.cpu.stats(),
            memory_used_bytes: self.mem.stats(),
            memory_total_bytes: self.mem_total,
            net_rx_bytes: net.0,
            net_tx_bytes: net.1,
            loopback_bytes: net.2,
            server_process: self.pid.filter(|_| self.proc_rss.samples > 0).map(|pid| ProcessReport {
                pid,
                cpu_pct: self.proc_cpu.stats(),
                rss_bytes: self.proc_rss.stats(),
            }),
            cpu_energy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(parse_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n"), Some((150, 1000)));
        assert_eq!(parse_meminfo("MemTotal:       1000 kB\nMemFree: 10 kB\nMemAvailable:    250 kB\n"), Some((750 * 1024, 1000 * 1024)));
        let net = "Inter-|   Receive\n face |bytes\n    lo: 500 5 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(net), Some((1000, 2000, 500)));
        let stat = "42 (my (odd) server) S 1 42 42 0 -1 4194304 100 0 0 0 70 30 0 0 20 0 4 0 100 1000000 256 18446744073709551615";
        assert_eq!(parse_pid_stat(stat), Some((100, 256)));
    }

    /// Hand-computed: CPU 150 of 1000 jiffies busy then 450 of 2000: (450-150)/(2000-1000) = 30 %.
    /// RAPL 1,000,000 µJ to 3,000,000 µJ over 2 s = 2 J, 1 W; 4 tokens: 0.5 J each. A counter that
    /// wraps at 10,000,000 from 9,000,000 to 500,000 adds 1,500,000 µJ.
    #[test]
    fn rates_energy_and_wraps() {
        let mut m = HostMonitor::new(None, vec!["package-0".into()], vec![10_000_000]);
        let r = |busy, total, uj| HostReading {
            cpu: Some((busy, total)),
            memory: Some((50, 100)),
            net: Some((0, 0, 0)),
            process: None,
            rapl_uj: vec![uj],
        };
        m.observe(0.0, r(150, 1000, 1_000_000));
        let line = m.observe(2.0, r(450, 2000, 3_000_000));
        assert_eq!(line["cpu_pct"], 30.0);
        assert_eq!(line["cpu_power_w"], 1.0);
        let rep = m.report(4).unwrap();
        let e = rep.cpu_energy.unwrap();
        assert_eq!((e.energy_j, e.avg_power_w, e.joules_per_output_token), (2.0, 1.0, Some(0.5)));
        assert_eq!(m.latest_memory_pct(), Some(50.0));
        let mut w = HostMonitor::new(None, vec!["package-0".into()], vec![10_000_000]);
        w.observe(0.0, r(0, 0, 9_000_000));
        w.observe(1.0, r(0, 0, 500_000));
        assert_eq!(w.report(0).unwrap().cpu_energy.unwrap().energy_j, 1.5);
    }

    #[test]
    fn this_machine_reads() {
        let probe = HostProbe::new(Some(std::process::id()));
        let r = probe.read();
        assert!(r.cpu.is_some() && r.memory.is_some() && r.process.is_some(), "{r:?}");
    }
}
