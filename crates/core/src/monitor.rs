//! What the monitors saw during a run, as saved in the result: the server's own metrics over the
//! measured window, GPU power and energy, host resources, the steady-state window and the alerts
//! that fired. Computed by `inferbench-monitor`; every formula is in `docs/metrics.md`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything the monitors add to a result. Each part is absent when its monitor was off or found
/// nothing to watch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MonitorReport {
    /// The serving stack's Prometheus metrics over the measured window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerReport>,
    /// NVIDIA GPUs, per device and in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuReport>,
    /// This machine: CPU, memory, network, the server process, CPU package energy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostReport>,
    /// The window where in-flight requests stayed at the target, and the figures over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_state: Option<SteadyState>,
    /// Alerts that fired, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertFiring>,
    /// The time-series file's name, in the result's directory (`<name>.timeseries.jsonl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeseries_file: Option<String>,
}

impl MonitorReport {
    /// True when no monitor contributed anything.
    pub fn is_empty(&self) -> bool {
        self.server.is_none() && self.gpu.is_none() && self.host.is_none() && self.steady_state.is_none() && self.alerts.is_empty()
    }
}

/// A gauge over the window: mean of the samples, the largest, the last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GaugeStats {
    /// Samples taken.
    pub samples: u64,
    /// Mean of the samples.
    pub mean: f64,
    /// Largest sample.
    pub max: f64,
    /// Last sample.
    pub last: f64,
}

/// Percentiles of a server-side latency histogram's increase over the window (seconds turned to
/// milliseconds), interpolated within buckets as Prometheus' `histogram_quantile` does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerLatency {
    /// The server's metric family.
    pub family: String,
    /// Observations in the window.
    pub count: u64,
    /// Mean (sum / count), ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// The server's own metrics over the measured window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerReport {
    /// Where they were scraped (credentials removed).
    pub url: String,
    /// Which server's metric names were recognised (`vllm`, `sglang`, `tgi`, `llamacpp`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_kind: Option<String>,
    /// Pages scraped and parsed.
    pub scrapes: u64,
    /// Scrapes that failed (unreachable, HTTP error, not text).
    pub failed_scrapes: u64,
    /// Lines of the pages that could not be parsed and were skipped, over all scrapes.
    pub skipped_lines: u64,
    /// Common-name gauges (`running`, `waiting`, `kv_cache_usage`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gauges: BTreeMap<String, GaugeStats>,
    /// Common-name counters' increase over the window (`prompt_tokens`, `generation_tokens`,
    /// `preemptions`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, f64>,
    /// Every counter's increase over the window, by its own name and labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw_counters: BTreeMap<String, f64>,
    /// Prefix-cache hits over queries in the window, from counter deltas (not since server start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hit_rate: Option<f64>,
    /// Accepted over drafted speculative tokens in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_decode_acceptance: Option<f64>,
    /// Speculative decoding, vLLM's mean acceptance length: 1 + accepted tokens per draft checked
    /// (the tokens a target pass yields per sequence) in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_decode_mean_acceptance_length: Option<f64>,
    /// Share of drafts whose token at each position (0 first) was accepted, in the window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spec_decode_acceptance_by_position: Vec<f64>,
    /// Tokens the server says it generated in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens: Option<f64>,
    /// Output tokens the client counted in the same run, beside the server's figure.
    pub client_output_tokens: u64,
    /// Server-side latencies over the window, by common name (`ttft`, `itl`, `tpot`, `e2e`,
    /// `queue`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latency: BTreeMap<String, ServerLatency>,
}

/// One GPU over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuDeviceReport {
    /// NVML index.
    pub index: u32,
    /// Product name.
    pub name: String,
    /// Samples taken.
    pub samples: u64,
    /// Mean power (energy / time), W.
    pub avg_power_w: f64,
    /// Largest power sample, W.
    pub peak_power_w: f64,
    /// Energy over the window, J.
    pub energy_j: f64,
    /// `counter` (the driver's energy counter) or `integrated` (power samples integrated over
    /// time, where the counter is absent).
    pub energy_source: String,
    /// Mean utilisation, %.
    pub avg_utilization_pct: f64,
    /// Most memory used, GiB.
    pub peak_memory_gib: f64,
    /// Most memory used, % of the device's.
    pub peak_memory_pct: f64,
    /// Highest temperature, °C.
    pub peak_temperature_c: f64,
    /// Mean SM clock, MHz.
    pub avg_sm_clock_mhz: f64,
}

/// The GPUs over the run, with energy per token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuReport {
    /// Per device.
    pub devices: Vec<GpuDeviceReport>,
    /// Seconds the samples span.
    pub duration_s: f64,
    /// Sum of the devices' mean power, W.
    pub total_avg_power_w: f64,
    /// Largest sum of the devices' power at one sample, W.
    pub total_peak_power_w: f64,
    /// Energy of all devices, J.
    pub total_energy_j: f64,
    /// Output tokens of the run.
    pub output_tokens: u64,
    /// Joules per output token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_output_token: Option<f64>,
    /// Output tokens per joule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_per_joule: Option<f64>,
}

/// This machine over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HostReport {
    /// Samples taken.
    pub samples: u64,
    /// Machine CPU busy, % of all cores.
    pub cpu_pct: GaugeStats,
    /// Machine memory in use, bytes.
    pub memory_used_bytes: GaugeStats,
    /// Machine memory size, bytes.
    pub memory_total_bytes: u64,
    /// Bytes received over every interface but loopback.
    pub net_rx_bytes: u64,
    /// Bytes sent (non-loopback interfaces).
    pub net_tx_bytes: u64,
    /// Bytes over the loopback interface (counted once).
    pub loopback_bytes: u64,
    /// The server process, when it is local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_process: Option<ProcessReport>,
    /// CPU package energy from RAPL, where readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_energy: Option<CpuEnergy>,
}

/// A process's CPU and memory over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProcessReport {
    /// Its pid.
    pub pid: u32,
    /// CPU used, % of one core.
    pub cpu_pct: GaugeStats,
    /// Resident memory, bytes.
    pub rss_bytes: GaugeStats,
}

/// CPU package energy over the run (Intel/AMD RAPL through `/sys/class/powercap`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CpuEnergy {
    /// The RAPL zones summed (`package-0`, ...).
    pub zones: Vec<String>,
    /// Energy, J.
    pub energy_j: f64,
    /// Mean power, W.
    pub avg_power_w: f64,
    /// Joules per output token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_output_token: Option<f64>,
}

/// Figures over the steady-state window, beside the whole run's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SteadyState {
    /// The in-flight level the window held (the concurrency target, or the median level of an
    /// open-loop run).
    pub target_in_flight: u64,
    /// Window start, seconds on the run's clock.
    pub start_s: f64,
    /// Window end, seconds on the run's clock.
    pub end_s: f64,
    /// Requests that started and ended inside the window.
    pub requests: u64,
    /// Output tokens that arrived inside the window, per second.
    pub output_throughput: f64,
    /// Requests ended inside the window, per second.
    pub request_throughput: f64,
    /// TTFT of the window's requests, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<Quantiles>,
    /// TPOT of the window's requests, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<Quantiles>,
    /// E2EL of the window's requests, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2el_ms: Option<Quantiles>,
}

/// Mean, median and 99th percentile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Quantiles {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// An alert that fired during the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AlertFiring {
    /// The rule as given (`p95_ttft_ms>5000`).
    pub rule: String,
    /// Seconds on the run's clock when it first held.
    pub at_s: f64,
    /// The value that broke it.
    pub value: f64,
    /// True when the run was stopped because of it (`--abort-on-alert`).
    pub aborted: bool,
}
