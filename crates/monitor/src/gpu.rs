//! NVIDIA GPUs through NVML, loaded at run time (`libnvidia-ml.so`), so the same binary runs on
//! machines without one. A [`GpuSource`] gives readings; [`GpuMonitor`] turns them into power,
//! energy and peaks. Tests drive it with a source of their own.

use inferbench_core::monitor::{GpuDeviceReport, GpuReport};
use serde_json::{json, Value};

/// A device as found.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuInfo {
    /// NVML index.
    pub index: u32,
    /// Product name.
    pub name: String,
    /// Memory, bytes.
    pub memory_total: u64,
}

/// One reading of one device.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GpuReading {
    /// Power draw, W.
    pub power_w: f64,
    /// The driver's energy counter since it was loaded, mJ (Volta and later), if present.
    pub energy_mj: Option<u64>,
    /// GPU utilisation, %.
    pub utilization_pct: f64,
    /// Memory used, bytes.
    pub memory_used: u64,
    /// Temperature, °C.
    pub temperature_c: f64,
    /// SM clock, MHz.
    pub sm_clock_mhz: f64,
}

/// Where GPU readings come from: NVML on a real machine, a fake in tests.
pub trait GpuSource: Send {
    /// The devices to watch.
    fn devices(&self) -> Vec<GpuInfo>;
    /// A reading of device `index`.
    fn read(&mut self, index: u32) -> Result<GpuReading, String>;
}

/// NVML, when the library loads and finds a device.
pub struct Nvml {
    nvml: nvml_wrapper::Nvml,
    devices: Vec<GpuInfo>,
}

/// The one line a machine without an NVIDIA GPU gets.
pub const NO_GPU: &str = "no NVIDIA GPU found";

impl Nvml {
    /// Loads NVML and lists the devices (`only`: these indices). `Err` says why not, in one line,
    /// starting with [`NO_GPU`] when there is simply no GPU or driver.
    pub fn open(only: Option<&[u32]>) -> Result<Self, String> {
        let nvml = nvml_wrapper::Nvml::init().map_err(|e| format!("{NO_GPU} ({e})"))?;
        let count = nvml.device_count().map_err(|e| format!("{NO_GPU} (NVML: {e})"))?;
        if count == 0 {
            return Err(NO_GPU.to_owned());
        }
        let mut devices = Vec::new();
        for index in 0..count {
            if only.is_some_and(|o| !o.contains(&index)) {
                continue;
            }
            let d = nvml.device_by_index(index).map_err(|e| format!("GPU {index}: {e}"))?;
            let name = d.name().unwrap_or_else(|_| "unknown".into());
            let memory_total = d.memory_info().map(|m| m.total).unwrap_or(0);
            devices.push(GpuInfo { index, name, memory_total });
        }
        if let Some(o) = only {
            if let Some(missing) = o.iter().find(|i| **i >= count) {
                return Err(format!("--gpus: there is no GPU {missing}; this machine has {count} (0 to {})", count - 1));
            }
        }
        Ok(Self { nvml, devices })
    }
}

impl GpuSource for Nvml {
    fn devices(&self) -> Vec<GpuInfo> {
        self.devices.clone()
    }

    fn read(&mut self, index: u32) -> Result<GpuReading, String> {
        use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
        let d = self.nvml.device_by_index(index).map_err(|e| e.to_string())?;
        Ok(GpuReading {
            power_w: d.power_usage().map(|mw| f64::from(mw) / 1e3).map_err(|e| e.to_string())?,
            energy_mj: d.total_energy_consumption().ok(),
            utilization_pct: d.utilization_rates().map(|u| f64::from(u.gpu)).unwrap_or(0.0),
            memory_used: d.memory_info().map(|m| m.used).unwrap_or(0),
            temperature_c: d.temperature(TemperatureSensor::Gpu).map(f64::from).unwrap_or(0.0),
            sm_clock_mhz: d.clock_info(Clock::SM).map(f64::from).unwrap_or(0.0),
        })
    }
}

#[derive(Debug, Clone, Default)]
struct DeviceAcc {
    info: Option<GpuInfo>,
    samples: u64,
    first: Option<(f64, GpuReading)>,
    last: Option<(f64, GpuReading)>,
    integrated_j: f64,
    counter_ok: bool,
    peak_power: f64,
    util_sum: f64,
    clock_sum: f64,
    peak_mem: u64,
    peak_temp: f64,
}

/// Accumulates readings into the report. Energy comes from the driver's counter (last minus
/// first) where every reading had one, else from the power samples integrated by the trapezoid
/// rule; average power is energy over the time the samples span.
#[derive(Debug, Default)]
pub struct GpuMonitor {
    devices: Vec<DeviceAcc>,
    /// Sum of the devices' power at each sample time.
    peak_total_power: f64,
}

impl GpuMonitor {
    /// A monitor for these devices.
    pub fn new(devices: &[GpuInfo]) -> Self {
        Self {
            devices: devices.iter().map(|d| DeviceAcc { info: Some(d.clone()), counter_ok: true, ..DeviceAcc::default() }).collect(),
            peak_total_power: 0.0,
        }
    }

    /// One reading per device (in the order given to `new`) at `t_s`; returns the time-series
    /// lines.
    pub fn observe(&mut self, t_s: f64, readings: &[Option<GpuReading>]) -> Vec<Value> {
        let mut lines = Vec::new();
        let mut total = 0.0;
        for (acc, r) in self.devices.iter_mut().zip(readings) {
            let Some(r) = *r else { continue };
            if let Some((t0, prev)) = acc.last {
                acc.integrated_j += (prev.power_w + r.power_w) / 2.0 * (t_s - t0).max(0.0);
            }
            acc.counter_ok &= r.energy_mj.is_some();
            if acc.first.is_none() {
                acc.first = Some((t_s, r));
            }
            acc.last = Some((t_s, r));
            acc.samples += 1;
            acc.peak_power = acc.peak_power.max(r.power_w);
            acc.util_sum += r.utilization_pct;
            acc.clock_sum += r.sm_clock_mhz;
            acc.peak_mem = acc.peak_mem.max(r.memory_used);
            acc.peak_temp = acc.peak_temp.max(r.temperature_c);
            total += r.power_w;
            let index = acc.info.as_ref().map_or(0, |i| i.index);
            lines.push(json!({
                "t": (t_s * 1e3).round() / 1e3, "source": "gpu", "device": index, "power_w": r.power_w,
                "energy_mj": r.energy_mj, "utilization_pct": r.utilization_pct, "memory_used_bytes": r.memory_used,
                "temperature_c": r.temperature_c, "sm_clock_mhz": r.sm_clock_mhz,
            }));
        }
        self.peak_total_power = self.peak_total_power.max(total);
        lines
    }

    /// The latest reading's memory use, % of the device's, the largest over devices (for alerts).
    pub fn latest_memory_pct(&self) -> Option<f64> {
        self.devices
            .iter()
            .filter_map(|d| {
                let total = d.info.as_ref()?.memory_total;
                Some(d.last?.1.memory_used as f64 / total.max(1) as f64 * 100.0)
            })
            .reduce(f64::max)
    }

    /// The report, with energy per output token.
    pub fn report(&self, output_tokens: u64) -> Option<GpuReport> {
        let mut devices = Vec::new();
        let mut duration: f64 = 0.0;
        for d in &self.devices {
            let (Some(info), Some((t0, first)), Some((t1, last))) = (&d.info, d.first, d.last) else { continue };
            let span = t1 - t0;
            duration = duration.max(span);
            let (energy_j, source) = match (d.counter_ok, first.energy_mj, last.energy_mj) {
                (true, Some(a), Some(b)) if b >= a => (b.saturating_sub(a) as f64 / 1e3, "counter"),
                _ => (d.integrated_j, "integrated"),
            };
            let n = d.samples.max(1) as f64;
            devices.push(GpuDeviceReport {
                index: info.index,
                name: info.name.clone(),
                samples: d.samples,
                avg_power_w: if span > 0.0 { energy_j / span } else { last.power_w },
                peak_power_w: d.peak_power,
                energy_j,
                energy_source: source.to_owned(),
                avg_utilization_pct: d.util_sum / n,
                peak_memory_gib: d.peak_mem as f64 / (1u64 << 30) as f64,
                peak_memory_pct: d.peak_mem as f64 / info.memory_total.max(1) as f64 * 100.0,
                peak_temperature_c: d.peak_temp,
                avg_sm_clock_mhz: d.clock_sum / n,
            });
        }
        if devices.is_empty() {
            return None;
        }
        let total_energy_j: f64 = devices.iter().map(|d| d.energy_j).sum();
        let per_token = (output_tokens > 0 && total_energy_j > 0.0).then(|| total_energy_j / output_tokens as f64);
        Some(GpuReport {
            total_avg_power_w: devices.iter().map(|d| d.avg_power_w).sum(),
            total_peak_power_w: self.peak_total_power,
            duration_s: duration,
            total_energy_j,
            output_tokens,
            joules_per_output_token: per_token,
            output_tokens_per_joule: per_token.map(|j| 1.0 / j),
            devices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(power_w: f64, energy_mj: Option<u64>, mem_gib: u64, temp: f64) -> Option<GpuReading> {
        Some(GpuReading {
            power_w,
            energy_mj,
            utilization_pct: 50.0,
            memory_used: mem_gib << 30,
            temperature_c: temp,
            sm_clock_mhz: 1000.0,
        })
    }

    /// Hand-computed. Device 0 has the energy counter: 10,000 mJ → 40,000 mJ over 2 s = 30 J,
    /// 15 W mean. Device 1 has none: power 100, 200, 100 W at 0, 1, 2 s integrates to
    /// 150 + 150 = 300 J, 150 W mean. 330 J for 660 tokens: 0.5 J/token, 2 tokens/J.
    #[test]
    fn energy_from_counters_or_integrated_power() {
        let devs = [
            GpuInfo { index: 0, name: "A".into(), memory_total: 80 << 30 },
            GpuInfo { index: 2, name: "B".into(), memory_total: 40 << 30 },
        ];
        let mut m = GpuMonitor::new(&devs);
        m.observe(0.0, &[reading(10.0, Some(10_000), 10, 50.0), reading(100.0, None, 20, 60.0)]);
        m.observe(1.0, &[reading(20.0, Some(25_000), 30, 55.0), reading(200.0, None, 10, 70.0)]);
        let lines = m.observe(2.0, &[reading(15.0, Some(40_000), 20, 52.0), reading(100.0, None, 10, 65.0)]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["device"], 2);
        let r = m.report(660).unwrap();
        let (a, b) = (&r.devices[0], &r.devices[1]);
        assert_eq!((a.energy_j, a.energy_source.as_str(), a.avg_power_w, a.peak_power_w), (30.0, "counter", 15.0, 20.0));
        assert_eq!((b.energy_j, b.energy_source.as_str(), b.avg_power_w, b.peak_power_w), (300.0, "integrated", 150.0, 200.0));
        assert_eq!((a.peak_memory_gib, a.peak_memory_pct), (30.0, 37.5));
        assert_eq!((b.peak_memory_gib, b.peak_memory_pct, b.peak_temperature_c), (20.0, 50.0, 70.0));
        assert_eq!(r.total_energy_j, 330.0);
        assert_eq!(r.total_avg_power_w, 165.0);
        assert_eq!(r.total_peak_power_w, 220.0);
        assert_eq!(r.joules_per_output_token, Some(0.5));
        assert_eq!(r.output_tokens_per_joule, Some(2.0));
        assert_eq!(m.latest_memory_pct(), Some(25.0));
    }

    #[test]
    fn no_readings_no_report() {
        assert!(GpuMonitor::new(&[]).report(10).is_none());
    }
}
