//! What happens around a run besides its requests: the serving stack's Prometheus metrics, NVIDIA
//! GPUs through NVML, this machine's CPU, memory, network and CPU energy, and live alerts. Pure
//! state machines fed with readings, so every summary is tested on hand-made samples; the
//! pipelines in `inferbench-bench` run the samplers on their own threads and feed them.

pub mod alerts;
mod gauge;
pub mod gpu;
pub mod host;
pub mod prom;
pub mod server;

pub use alerts::{Alerts, Rule, RuleError, Watched, Window};
pub use gpu::{GpuInfo, GpuMonitor, GpuReading, GpuSource, Nvml, NO_GPU};
pub use host::{HostMonitor, HostProbe, HostReading};
pub use prom::Page;
pub use server::ServerMonitor;
