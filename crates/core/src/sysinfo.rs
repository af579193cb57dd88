//! The machine a result was measured on, so results stay comparable years later.

use serde::{Deserialize, Serialize};

/// Host facts recorded in every result file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SystemInfo {
    /// CPU model name.
    pub cpu_model: String,
    /// Logical CPUs available to this process.
    pub cpu_cores: usize,
    /// Total RAM in bytes.
    pub memory_bytes: u64,
    /// Operating system and architecture.
    pub os: String,
    /// Kernel release, where known.
    pub kernel: String,
    /// Host name.
    pub hostname: String,
    /// GPUs, where any are visible (`nvidia-smi`-style names); empty on CPU-only hosts.
    #[serde(default)]
    pub gpus: Vec<String>,
}

impl SystemInfo {
    /// Reads what the OS exposes cheaply (`/proc` on Linux); missing facts stay empty.
    pub fn collect() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
            .unwrap_or_default();
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        let gpus = std::fs::read_dir("/proc/driver/nvidia/gpus")
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| {
                        let info = std::fs::read_to_string(e.path().join("information")).ok()?;
                        info.lines().find_map(|l| l.strip_prefix("Model:")).map(|m| m.trim().to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        SystemInfo {
            cpu_model,
            cpu_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
            gpus,
        }
    }
}
