//! A gauge's running statistics over a run's samples: count, mean, largest, last.

use inferbench_core::monitor::GaugeStats;

/// Samples seen so far; non-finite samples are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GaugeAcc {
    pub(crate) samples: u64,
    sum: f64,
    max: f64,
    pub(crate) last: f64,
}

impl GaugeAcc {
    pub(crate) fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.max = if self.samples == 0 { v } else { self.max.max(v) };
        self.samples += 1;
        self.sum += v;
        self.last = v;
    }

    pub(crate) fn stats(&self) -> GaugeStats {
        GaugeStats { samples: self.samples, mean: self.sum / self.samples.max(1) as f64, max: self.max, last: self.last }
    }
}
