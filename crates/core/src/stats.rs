//! Exact descriptive statistics over latency samples, with bounded memory for huge runs.
//!
//! Percentiles use linear interpolation between closest ranks (numpy's default, which vLLM's
//! `bench serve` uses), std is the population standard deviation (numpy's `ddof=0`). Up to
//! [`Samples::DEFAULT_EXACT_CAP`] samples are kept verbatim so percentiles are exact; past that the
//! samples move into an HDR histogram (3 significant digits) and memory stays bounded. Mean, std,
//! min and max stay exact at any size (Welford's running moments).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A growing set of non-negative samples (milliseconds, by convention).
#[derive(Debug, Clone)]
pub struct Samples {
    values: Vec<f64>,
    hist: Option<Histogram<u64>>,
    cap: usize,
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

/// Histogram unit: samples are stored in nanoseconds-of-a-millisecond (1e-6 ms) resolution.
const HIST_SCALE: f64 = 1e6;

impl Default for Samples {
    fn default() -> Self {
        Self::with_exact_cap(Self::DEFAULT_EXACT_CAP)
    }
}

impl Samples {
    /// How many samples are kept verbatim before switching to a histogram: 2 MiB per metric, so
    /// a million-request soak's memory is flat after its first quarter.
    pub const DEFAULT_EXACT_CAP: usize = 256 * 1024;

    /// A set that keeps `cap` samples exactly, then bounds its memory.
    pub fn with_exact_cap(cap: usize) -> Self {
        Self { values: Vec::new(), hist: None, cap, count: 0, mean: 0.0, m2: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }
    }

    /// Adds one sample. Negative or non-finite samples are clamped to 0 (clock steps are impossible
    /// with a monotonic clock, but a corrupt input file must not poison the statistics).
    pub fn push(&mut self, v: f64) {
        let v = if v.is_finite() && v > 0.0 { v } else { 0.0 };
        self.count += 1;
        let d = v - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (v - self.mean);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        match &mut self.hist {
            Some(h) => record(h, v),
            None if self.values.len() < self.cap => self.values.push(v),
            None => {
                let mut h = self.spill();
                record(&mut h, v);
                self.hist = Some(h);
            }
        }
    }

    /// Number of samples.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True when no sample was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Moves the exact samples into a new histogram (3 significant digits, auto-resizing).
    fn spill(&mut self) -> Histogram<u64> {
        // Justified: `new` fails only for more than 5 significant digits; 3 is a constant.
        #[allow(clippy::expect_used)]
        let mut h = Histogram::<u64>::new(3).expect("3 significant digits is valid");
        h.auto(true);
        for x in self.values.drain(..) {
            record(&mut h, x);
        }
        self.values.shrink_to_fit();
        h
    }

    /// Adds every sample of `other`, as if each had been pushed here (Chan et al.'s pairwise
    /// update for the running moments). Exact sets stay exact while they fit the cap.
    pub fn merge(&mut self, other: Samples) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            let cap = self.cap;
            *self = other;
            self.cap = cap;
            return;
        }
        let (n1, n2) = (self.count as f64, other.count as f64);
        let n = n1 + n2;
        let d = other.mean - self.mean;
        self.mean += d * n2 / n;
        self.m2 += other.m2 + d * d * n1 * n2 / n;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        let fits = self.hist.is_none() && other.hist.is_none() && self.values.len() + other.values.len() <= self.cap;
        if fits {
            self.values.extend(other.values);
            return;
        }
        let mut h = match self.hist.take() {
            Some(h) => h,
            None => self.spill(),
        };
        match other.hist {
            // Both histograms auto-resize, so adding cannot fail on range.
            Some(o) => {
                let _ = h.add(&o);
            }
            None => other.values.iter().for_each(|&x| record(&mut h, x)),
        }
        self.hist = Some(h);
    }

    /// True while percentiles are exact (no histogram fallback yet).
    pub fn is_exact(&self) -> bool {
        self.hist.is_none()
    }

    /// Summarises the samples with the given percentiles (0–100). Empty sets give all zeros,
    /// as vLLM reports for metrics with no data.
    pub fn distribution(&mut self, percentiles: &[f64]) -> Distribution {
        if self.count == 0 {
            return Distribution { percentiles: percentiles.iter().map(|&p| (p, 0.0)).collect(), ..Distribution::default() };
        }
        if self.hist.is_none() {
            self.values.sort_unstable_by(f64::total_cmp);
        }
        let pct = |p: f64| match &self.hist {
            Some(h) => h.value_at_quantile(p / 100.0) as f64 / HIST_SCALE,
            None => percentile_sorted(&self.values, p),
        };
        // Exact sets take mean and std from the sorted values, so the answer does not depend on
        // the order samples arrived in (a merged set equals the same samples added in one place).
        let (mean, std) = match &self.hist {
            Some(_) => (self.mean, (self.m2 / self.count as f64).max(0.0).sqrt()),
            None => {
                let n = self.values.len() as f64;
                let mean = self.values.iter().sum::<f64>() / n;
                let var = self.values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                (mean, var.max(0.0).sqrt())
            }
        };
        Distribution {
            count: self.count,
            mean,
            median: pct(50.0),
            std,
            min: self.min,
            max: self.max,
            percentiles: percentiles.iter().map(|&p| (p, pct(p))).collect(),
            exact: self.hist.is_none(),
        }
    }
}

/// A sample set as a shard hands it to a merge: the running moments and every sample in an HDR
/// histogram (3 significant digits), serialised in HdrHistogram's V2 format, deflated, base64.
/// A few kilobytes whatever the number of samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplesState {
    /// Number of samples.
    pub count: u64,
    /// Running mean.
    pub mean: f64,
    /// Running sum of squared deviations.
    pub m2: f64,
    /// Smallest sample.
    pub min: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
    /// The histogram (empty with no samples).
    pub hist: String,
}

/// Why a saved state cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("accumulator state: {0}")]
pub struct StateError(pub String);

/// The relative error of a percentile read from the histograms (3 significant digits).
pub const HIST_RELATIVE_ERROR: f64 = 1e-3;

impl Samples {
    /// The mergeable state of this set (exact samples are moved into a histogram copy).
    pub fn state(&self) -> Result<SamplesState, StateError> {
        use base64::Engine;
        use hdrhistogram::serialization::Serializer;
        let hist = if self.count == 0 {
            String::new()
        } else {
            let h = match &self.hist {
                Some(h) => h.clone(),
                None => {
                    let mut copy = Self { values: self.values.clone(), hist: None, ..Self::with_exact_cap(0) };
                    copy.spill()
                }
            };
            let mut bytes = Vec::new();
            hdrhistogram::serialization::V2DeflateSerializer::new()
                .serialize(&h, &mut bytes)
                .map_err(|e| StateError(format!("encoding a histogram: {e:?}")))?;
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        Ok(SamplesState {
            count: self.count,
            mean: self.mean,
            m2: self.m2,
            min: (self.count > 0).then_some(self.min),
            max: (self.count > 0).then_some(self.max),
            hist,
        })
    }

    /// A set rebuilt from its state: its percentiles come from the histogram from now on.
    pub fn from_state(s: &SamplesState) -> Result<Self, StateError> {
        use base64::Engine;
        let mut out = Self::default();
        if s.count == 0 {
            return Ok(out);
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(&s.hist).map_err(|e| StateError(format!("histogram: {e}")))?;
        let mut h: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| StateError(format!("histogram: {e:?}")))?;
        h.auto(true);
        if h.len() != s.count {
            return Err(StateError(format!("histogram holds {} samples where the count says {}", h.len(), s.count)));
        }
        out.hist = Some(h);
        out.count = s.count;
        out.mean = s.mean;
        out.m2 = s.m2;
        out.min = s.min.unwrap_or(0.0);
        out.max = s.max.unwrap_or(0.0);
        Ok(out)
    }
}

fn record(h: &mut Histogram<u64>, v: f64) {
    // auto-resizing histogram: recording cannot fail for finite non-negative values.
    let _ = h.record((v * HIST_SCALE).round() as u64);
}

/// Linear-interpolation percentile of an ascending slice (numpy `method="linear"`).
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let rank = (p / 100.0).clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = rank.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

/// The summary of one metric's samples. Saved with `null` for every figure when there were no
/// samples (read back as zeros, with `count` 0 saying there is no value).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "DistributionRepr", from = "DistributionRepr")]
pub struct Distribution {
    /// Number of samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// 50th percentile (interpolated).
    pub median: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// `(percentile, value)` pairs, in the order asked for.
    pub percentiles: Vec<(f64, f64)>,
    /// False when the percentiles come from the bounded-memory histogram (3 significant digits).
    pub exact: bool,
}

/// How a [`Distribution`] is written: figures are `null` when there are no samples.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct DistributionRepr {
    /// Number of samples.
    count: u64,
    /// Arithmetic mean.
    mean: Option<f64>,
    /// 50th percentile (interpolated).
    median: Option<f64>,
    /// Population standard deviation.
    std: Option<f64>,
    /// Smallest sample.
    min: Option<f64>,
    /// Largest sample.
    max: Option<f64>,
    /// `(percentile, value)` pairs, in the order asked for.
    percentiles: Vec<(f64, Option<f64>)>,
    /// False when the percentiles come from the bounded-memory histogram (3 significant digits).
    exact: bool,
}

impl From<Distribution> for DistributionRepr {
    fn from(d: Distribution) -> Self {
        let v = |x: f64| (d.count > 0).then_some(x);
        Self {
            count: d.count,
            mean: v(d.mean),
            median: v(d.median),
            std: v(d.std),
            min: v(d.min),
            max: v(d.max),
            percentiles: d.percentiles.iter().map(|&(p, x)| (p, v(x))).collect(),
            exact: d.exact,
        }
    }
}

impl From<DistributionRepr> for Distribution {
    fn from(r: DistributionRepr) -> Self {
        let z = |x: Option<f64>| x.unwrap_or(0.0);
        Self {
            count: r.count,
            mean: z(r.mean),
            median: z(r.median),
            std: z(r.std),
            min: z(r.min),
            max: z(r.max),
            percentiles: r.percentiles.into_iter().map(|(p, x)| (p, z(x))).collect(),
            exact: r.exact,
        }
    }
}

impl schemars::JsonSchema for Distribution {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Distribution".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        DistributionRepr::json_schema(g)
    }
}

impl Distribution {
    /// The value at percentile `p`, if it was computed.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        self.percentiles.iter().find(|(q, _)| (*q - p).abs() < 1e-9).map(|&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(xs: &[f64], ps: &[f64]) -> Distribution {
        let mut s = Samples::default();
        xs.iter().for_each(|&x| s.push(x));
        s.distribution(ps)
    }

    #[test]
    fn empty_distributions_are_written_as_nulls_and_read_back() {
        let empty = Samples::default().distribution(&[50.0, 99.0]);
        let j = serde_json::to_value(&empty).unwrap();
        assert_eq!(j["count"], 0);
        assert!(j["mean"].is_null() && j["max"].is_null() && j["percentiles"][1][1].is_null(), "{j}");
        assert_eq!(serde_json::from_value::<Distribution>(j).unwrap(), empty);
        let mut s = Samples::default();
        s.push(2.0);
        let one = s.distribution(&[99.0]);
        assert_eq!(serde_json::to_value(&one).unwrap()["mean"], 2.0);
    }

    #[test]
    fn hand_computed_trace() {
        // xs = 1, 2, 3, 4, 10: mean 4, population variance (9+4+1+0+36)/5 = 10.
        let d = dist(&[4.0, 10.0, 1.0, 3.0, 2.0], &[25.0, 90.0, 99.0]);
        assert_eq!(d.mean, 4.0);
        assert!((d.std - 10f64.sqrt()).abs() < 1e-12);
        assert_eq!(d.median, 3.0);
        assert_eq!((d.min, d.max), (1.0, 10.0));
        // rank = 0.25*4 = 1 -> 2; rank 3.6 -> 4 + 0.6*6 = 7.6; rank 3.96 -> 4 + 0.96*6 = 9.76
        assert_eq!(d.percentile(25.0), Some(2.0));
        assert!((d.percentile(90.0).unwrap() - 7.6).abs() < 1e-12);
        assert!((d.percentile(99.0).unwrap() - 9.76).abs() < 1e-12);
        assert!(d.exact);
    }

    #[test]
    fn even_count_median_interpolates() {
        let d = dist(&[1.0, 2.0, 3.0, 4.0], &[]);
        assert_eq!(d.median, 2.5);
        // variance: (2.25+0.25+0.25+2.25)/4 = 1.25
        assert!((d.std - 1.25f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn empty_and_single() {
        let d = dist(&[], &[99.0]);
        assert_eq!((d.count, d.mean, d.percentile(99.0)), (0, 0.0, Some(0.0)));
        let d = dist(&[7.0], &[99.0]);
        assert_eq!((d.median, d.std, d.percentile(99.0)), (7.0, 0.0, Some(7.0)));
    }

    #[test]
    fn histogram_fallback_bounds_memory_and_stays_close() {
        let mut s = Samples::with_exact_cap(1000);
        for i in 1..=100_000u32 {
            s.push(i as f64 / 100.0); // 0.01 .. 1000 ms
        }
        assert!(!s.is_exact());
        let d = s.distribution(&[99.0]);
        assert!((d.mean - 500.005).abs() < 1e-6, "mean stays exact: {}", d.mean);
        let exact_p99 = percentile_sorted(&(1..=100_000u32).map(|i| i as f64 / 100.0).collect::<Vec<_>>(), 99.0);
        assert!((d.percentile(99.0).unwrap() - exact_p99).abs() / exact_p99 < 1e-3);
        assert!(!d.exact);
    }
}
