//! One scrape of a Prometheus text page, as numbers: gauges, counters and histograms keyed by
//! family and label set. The grammar is `prom_text_format_parser`'s (it accepts the colons of
//! `vllm:` and `sglang:` names, which `prometheus-parse` drops); lines it cannot read are skipped
//! and counted, so one garbled line never costs the rest of the page.

use prom_text_format_parser::{parse_scrape, Metric, ScrapeParseError, Type, ValueType};
use std::collections::BTreeMap;

/// A series: its family name and its labels in canonical form (`a="1",b="2"`, sorted by key).
pub type SeriesKey = (String, String);

/// A cumulative histogram: `(le, count at or below)` in ascending `le`, with sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hist {
    /// Upper bounds and cumulative counts, `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of observations.
    pub sum: f64,
    /// Observations.
    pub count: f64,
}

impl Hist {
    /// This histogram's increase since `earlier` (a server restart, where counts went down, gives
    /// this page's own counts).
    pub fn since(&self, earlier: Option<&Hist>) -> Hist {
        let Some(e) = earlier.filter(|e| e.count <= self.count && e.buckets.len() == self.buckets.len()) else {
            return self.clone();
        };
        let buckets = self.buckets.iter().zip(&e.buckets).map(|(&(le, c), &(_, c0))| (le, (c - c0).max(0.0))).collect();
        Hist { buckets, sum: (self.sum - e.sum).max(0.0), count: self.count - e.count }
    }

    /// The `q`-quantile (0..=1), interpolated linearly inside the bucket it falls in, as
    /// Prometheus' `histogram_quantile` does; `None` without observations. A quantile in the
    /// `+Inf` bucket is the largest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last().map(|b| b.1).filter(|&t| t > 0.0)?;
        let rank = q.clamp(0.0, 1.0) * total;
        let mut prev = (0.0, 0.0);
        for &(le, c) in &self.buckets {
            if c >= rank {
                if le.is_infinite() {
                    return Some(prev.0);
                }
                let lower = if prev.0 == 0.0 && le <= 0.0 { le } else { prev.0 };
                let inside = c - prev.1;
                return Some(if inside <= 0.0 { le } else { lower + (le - lower) * (rank - prev.1) / inside });
            }
            prev = (le, c);
        }
        Some(prev.0)
    }
}

/// One parsed page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// Gauges (and untyped samples not named `_total`).
    pub gauges: BTreeMap<SeriesKey, f64>,
    /// Counters (and untyped `_total` samples, and summaries' `_sum` / `_count`).
    pub counters: BTreeMap<SeriesKey, f64>,
    /// Histograms.
    pub histograms: BTreeMap<SeriesKey, Hist>,
    /// Lines that could not be parsed and were left out.
    pub skipped_lines: u64,
}

impl Page {
    /// Parses a page. Never fails: what cannot be read is counted in `skipped_lines`.
    pub fn parse(text: &str) -> Page {
        let mut page = Page::default();
        if text.trim().is_empty() {
            return page;
        }
        let (metrics, err) = parse_scrape(text);
        let metrics = match err {
            None => metrics,
            Some(ScrapeParseError::Collect(errors)) => {
                page.skipped_lines += errors.iter().map(|e| e.line_no.len().max(1) as u64).sum::<u64>();
                metrics
            }
            Some(ScrapeParseError::Parse(_)) => {
                // Some line is not Prometheus text: keep the lines that are, one by one.
                let mut kept = String::with_capacity(text.len());
                for line in text.lines() {
                    let alone = format!("{line}\n");
                    if line.trim().is_empty() || !matches!(parse_scrape(&alone).1, Some(ScrapeParseError::Parse(_))) {
                        kept.push_str(&alone);
                    } else {
                        page.skipped_lines += 1;
                    }
                }
                let (metrics, err) = if kept.trim().is_empty() { (Vec::new(), None) } else { parse_scrape(&kept) };
                if let Some(ScrapeParseError::Collect(errors)) = &err {
                    page.skipped_lines += errors.len() as u64;
                }
                metrics
            }
        };
        for m in metrics {
            page.add(m);
        }
        page
    }

    fn add(&mut self, m: Metric) {
        match m.kind {
            Type::Histogram => {
                for s in m.samples {
                    let (key, le) = key_and_le(&m.name, &s.labels);
                    let v = s.value.value.parse::<f64>().unwrap_or(f64::NAN);
                    let h = self.histograms.entry(key).or_default();
                    match s.value.value_type {
                        ValueType::Sample => {
                            if let Some(le) = le {
                                h.buckets.push((le, v));
                            }
                        }
                        ValueType::Sum => h.sum = v,
                        ValueType::Count => h.count = v,
                    }
                }
                for h in self.histograms.values_mut() {
                    h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                }
            }
            kind => {
                for s in m.samples {
                    if kind == Type::Summary && s.value.value_type == ValueType::Sample {
                        continue; // quantiles over the server's lifetime: not a window figure
                    }
                    let suffix = match s.value.value_type {
                        ValueType::Sample => "",
                        ValueType::Sum => "_sum",
                        ValueType::Count => "_count",
                    };
                    let name = format!("{}{suffix}", m.name);
                    let (key, _) = key_and_le(&name, &s.labels);
                    let v = s.value.value.parse::<f64>().unwrap_or(f64::NAN);
                    let counter = kind == Type::Counter
                        || kind == Type::Summary
                        || (kind == Type::Untyped && (name.ends_with("_total") || name.ends_with("_count")));
                    if counter {
                        self.counters.insert(key, v);
                    } else {
                        self.gauges.insert(key, v);
                    }
                }
            }
        }
    }

    /// Every series of gauge family `name`, summed; `None` when the page has none.
    pub fn gauge_sum(&self, name: &str) -> Option<f64> {
        sum_family(&self.gauges, name)
    }

    /// Every series of gauge family `name`: the largest; `None` when the page has none.
    pub fn gauge_max(&self, name: &str) -> Option<f64> {
        family(&self.gauges, name).map(|(_, v)| *v).reduce(f64::max)
    }

    /// Every series of counter family `name`, summed.
    pub fn counter_sum(&self, name: &str) -> Option<f64> {
        sum_family(&self.counters, name)
    }

    /// Every series of histogram family `name`, merged (bucket bounds must agree).
    pub fn histogram(&self, name: &str) -> Option<Hist> {
        let mut it = family(&self.histograms, name).map(|(_, h)| h);
        let mut out = it.next()?.clone();
        for h in it {
            if h.buckets.len() == out.buckets.len() && h.buckets.iter().zip(&out.buckets).all(|(a, b)| a.0 == b.0) {
                out.buckets.iter_mut().zip(&h.buckets).for_each(|(o, b)| o.1 += b.1);
                out.sum += h.sum;
                out.count += h.count;
            }
        }
        Some(out)
    }

    /// True when any family of any kind is named `name`.
    pub fn has(&self, name: &str) -> bool {
        family(&self.gauges, name).next().is_some()
            || family(&self.counters, name).next().is_some()
            || family(&self.histograms, name).next().is_some()
    }
}

fn family<'a, V>(map: &'a BTreeMap<SeriesKey, V>, name: &'a str) -> impl Iterator<Item = (&'a SeriesKey, &'a V)> + 'a {
    map.range((name.to_owned(), String::new())..).take_while(move |((n, _), _)| n == name)
}

fn sum_family(map: &BTreeMap<SeriesKey, f64>, name: &str) -> Option<f64> {
    family(map, name).map(|(_, v)| *v).filter(|v| v.is_finite()).reduce(|a, b| a + b)
}

/// The canonical series key, with `le` taken out (and returned) for histogram buckets.
fn key_and_le(name: &str, labels: &prom_text_format_parser::Labels) -> (SeriesKey, Option<f64>) {
    let mut le = None;
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(labels.len());
    for l in labels.iter() {
        if l.key == "le" {
            le = l.value.parse::<f64>().ok();
        } else {
            pairs.push((&l.key, &l.value));
        }
    }
    pairs.sort_unstable();
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        s.push_str(v);
        s.push('"');
    }
    ((name.to_owned(), s), le)
}

/// A series key as Prometheus writes it: `name{labels}`.
pub fn series_name((name, labels): &SeriesKey) -> String {
    if labels.is_empty() {
        name.clone()
    } else {
        format!("{name}{{{labels}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_names_labels_and_histograms() {
        let page = Page::parse(
            "# HELP vllm:num_requests_running r\n# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} 3\n\
             # TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{model_name=\"m\"} 120\n\
             # TYPE vllm:e2e_request_latency_seconds histogram\n\
             vllm:e2e_request_latency_seconds_bucket{le=\"0.5\",model_name=\"m\"} 1\n\
             vllm:e2e_request_latency_seconds_bucket{le=\"1.0\",model_name=\"m\"} 3\n\
             vllm:e2e_request_latency_seconds_bucket{le=\"+Inf\",model_name=\"m\"} 4\n\
             vllm:e2e_request_latency_seconds_sum{model_name=\"m\"} 4.5\n\
             vllm:e2e_request_latency_seconds_count{model_name=\"m\"} 4\n",
        );
        assert_eq!(page.skipped_lines, 0);
        assert_eq!(page.gauge_sum("vllm:num_requests_running"), Some(3.0));
        assert_eq!(page.counter_sum("vllm:prompt_tokens_total"), Some(120.0));
        let h = page.histogram("vllm:e2e_request_latency_seconds").unwrap();
        assert_eq!(h.buckets, vec![(0.5, 1.0), (1.0, 3.0), (f64::INFINITY, 4.0)]);
        assert_eq!((h.sum, h.count), (4.5, 4.0));
    }

    #[test]
    fn garbled_lines_are_skipped_and_counted() {
        let page = Page::parse("# TYPE a gauge\na 1\nthis is not prometheus\n# TYPE b_total counter\nb_total 7\n}}{{ 5\n");
        assert_eq!(page.skipped_lines, 2);
        assert_eq!(page.gauge_sum("a"), Some(1.0));
        assert_eq!(page.counter_sum("b_total"), Some(7.0));
        assert_eq!(Page::parse("<html>nope</html>").skipped_lines, 1);
        assert_eq!(Page::parse(""), Page::default());
    }

    /// Hand-computed: 10 observations, 2 ≤ 0.1, 8 ≤ 0.5, 10 ≤ 1.
    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let h = Hist { buckets: vec![(0.1, 2.0), (0.5, 8.0), (1.0, 10.0), (f64::INFINITY, 10.0)], sum: 4.0, count: 10.0 };
        // rank 5 falls in (0.1, 0.5]: 0.1 + 0.4 * (5 - 2) / 6 = 0.3
        assert!((h.quantile(0.5).unwrap() - 0.3).abs() < 1e-12);
        // rank 1 in (0, 0.1]: 0.1 * 1/2 = 0.05
        assert!((h.quantile(0.1).unwrap() - 0.05).abs() < 1e-12);
        // rank 9.9 in (0.5, 1]: 0.5 + 0.5 * 1.9 / 2 = 0.975
        assert!((h.quantile(0.99).unwrap() - 0.975).abs() < 1e-12);
        let inf = Hist { buckets: vec![(1.0, 1.0), (f64::INFINITY, 3.0)], sum: 9.0, count: 3.0 };
        assert_eq!(inf.quantile(0.9), Some(1.0));
        assert_eq!(Hist::default().quantile(0.5), None);
    }

    #[test]
    fn deltas_subtract_and_survive_restarts() {
        let a = Hist { buckets: vec![(1.0, 2.0), (f64::INFINITY, 3.0)], sum: 3.0, count: 3.0 };
        let b = Hist { buckets: vec![(1.0, 5.0), (f64::INFINITY, 7.0)], sum: 8.0, count: 7.0 };
        assert_eq!(b.since(Some(&a)), Hist { buckets: vec![(1.0, 3.0), (f64::INFINITY, 4.0)], sum: 5.0, count: 4.0 });
        assert_eq!(a.since(Some(&b)), a, "a restart: the later page's own counts");
    }
}
