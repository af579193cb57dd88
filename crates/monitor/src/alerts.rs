//! Live alerts: rules like `p95_ttft_ms>5000`, `error_rate>1%` or `kv_cache_usage>95%`, checked on
//! a rolling window as the run goes. Each rule fires once, with the time and the value.

use inferbench_core::monitor::AlertFiring;
use inferbench_core::RequestRecord;
use std::collections::VecDeque;
use std::fmt;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Watched {
    /// A latency percentile over the window's requests, ms (`p` in 0..=100; 0 means the mean).
    Latency(Latency, f64),
    /// Failed over all requests ended in the window (a fraction).
    ErrorRate,
    /// Output tokens per second over the window.
    OutputThroughput,
    /// The server's KV-cache usage (a fraction).
    KvCacheUsage,
    /// Requests the server has waiting.
    Waiting,
    /// This machine's memory in use (a fraction).
    MemoryUsage,
    /// The fullest GPU's memory in use (a fraction).
    GpuMemoryUsage,
}

/// A per-request latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// Time to first token.
    Ttft,
    /// Time per output token.
    Tpot,
    /// Inter-token latency (every gap).
    Itl,
    /// End-to-end latency.
    E2el,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// As given.
    pub text: String,
    /// What it watches.
    pub watched: Watched,
    /// The comparison.
    pub op: Op,
    /// The threshold, in the watched quantity's unit (ms, fraction, tokens/s, count).
    pub threshold: f64,
}

/// A rule that cannot be read, with what is wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid --alert '{rule}': {why}")]
pub struct RuleError {
    rule: String,
    why: String,
}

const METRICS_HELP: &str = "metrics: p50/p90/p95/p99/mean_{ttft,tpot,itl,e2el}_ms (or p95_latency for E2EL), error_rate, \
                            output_throughput, kv_cache_usage, waiting, memory_usage, gpu_memory_usage";

impl Rule {
    /// Parses `METRIC OP VALUE[%|ms|s]`, e.g. `p95_ttft_ms>5000`, `p95_latency>5s`, `error_rate>1%`.
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        let err = |why: String| RuleError { rule: text.to_owned(), why };
        let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let at = s.find(['>', '<']).ok_or_else(|| err(format!("expected METRIC>VALUE or METRIC<VALUE ({METRICS_HELP})")))?;
        let (metric, rest) = s.split_at(at);
        let (op, value) = if let Some(v) = rest.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Op::Gt, v)
        } else {
            (Op::Lt, &rest[1..])
        };
        let watched = watched(metric).ok_or_else(|| err(format!("unknown metric '{metric}' ({METRICS_HELP})")))?;
        let (num, unit) = split_unit(value);
        let n: f64 = num.parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| err(format!("'{value}' is not a number")))?;
        let fraction = matches!(watched, Watched::ErrorRate | Watched::KvCacheUsage | Watched::MemoryUsage | Watched::GpuMemoryUsage);
        let threshold = match (unit, watched) {
            ("", _) => n,
            ("%", _) if fraction => n / 100.0,
            ("ms", Watched::Latency(..)) => n,
            ("s", Watched::Latency(..)) => n * 1e3,
            (u, _) => return Err(err(format!("the unit '{u}' does not fit {metric}"))),
        };
        Ok(Rule { text: text.trim().to_owned(), watched, op, threshold })
    }

    /// True when `value` breaks the rule.
    pub fn holds(&self, value: f64) -> bool {
        match self.op {
            Op::Gt => value > self.threshold,
            Op::Ge => value >= self.threshold,
            Op::Lt => value < self.threshold,
            Op::Le => value <= self.threshold,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn split_unit(v: &str) -> (&str, &str) {
    let cut = v.find(|c: char| c.is_ascii_alphabetic() || c == '%').unwrap_or(v.len());
    v.split_at(cut)
}

fn watched(metric: &str) -> Option<Watched> {
    Some(match metric {
        "error_rate" => Watched::ErrorRate,
        "output_throughput" => Watched::OutputThroughput,
        "kv_cache_usage" => Watched::KvCacheUsage,
        "waiting" => Watched::Waiting,
        "memory_usage" => Watched::MemoryUsage,
        "gpu_memory_usage" => Watched::GpuMemoryUsage,
        "p95_latency" => Watched::Latency(Latency::E2el, 95.0),
        m => {
            let m = m.strip_suffix("_ms").unwrap_or(m);
            let (stat, lat) = m.split_once('_')?;
            let p = if stat == "mean" { 0.0 } else { stat.strip_prefix('p')?.parse::<f64>().ok().filter(|p| *p > 0.0 && *p <= 100.0)? };
            let lat = match lat {
                "ttft" => Latency::Ttft,
                "tpot" => Latency::Tpot,
                "itl" => Latency::Itl,
                "e2el" | "latency" => Latency::E2el,
                _ => return None,
            };
            Watched::Latency(lat, p)
        }
    })
}

/// Fewest requests ended in the window before rules on requests are checked (one failure out of
/// two is not yet an error rate).
pub const MIN_WINDOW_REQUESTS: usize = 10;

#[derive(Debug)]
struct Ended {
    end_ns: u64,
    ok: bool,
    output_tokens: u64,
    ttft: Option<f64>,
    tpot: Option<f64>,
    e2el: f64,
    itl: Vec<f64>,
}

/// The last `span` of ended requests.
#[derive(Debug)]
pub struct Window {
    span_ns: u64,
    ended: VecDeque<Ended>,
}

impl Window {
    /// A window `span_s` seconds long.
    pub fn new(span_s: f64) -> Self {
        Self { span_ns: (span_s * 1e9) as u64, ended: VecDeque::new() }
    }

    /// A request ended.
    pub fn add(&mut self, r: &RequestRecord, keep_itl: bool) {
        self.ended.push_back(Ended {
            end_ns: r.end_ns,
            ok: r.is_success(),
            output_tokens: r.output_tokens,
            ttft: r.ttft_ms(),
            tpot: r.tpot_ms(),
            e2el: r.e2el_ms(),
            itl: if keep_itl { r.itl_ns.iter().map(|&n| n as f64 / 1e6).collect() } else { Vec::new() },
        });
    }

    /// Drops what ended before `now_ns - span`.
    pub fn advance(&mut self, now_ns: u64) {
        let from = now_ns.saturating_sub(self.span_ns);
        while self.ended.front().is_some_and(|e| e.end_ns < from) {
            self.ended.pop_front();
        }
    }

    /// The value of a request-based quantity over the window, when it has enough requests.
    pub fn value(&self, w: Watched) -> Option<f64> {
        if self.ended.len() < MIN_WINDOW_REQUESTS {
            return None;
        }
        match w {
            Watched::ErrorRate => Some(self.ended.iter().filter(|e| !e.ok).count() as f64 / self.ended.len() as f64),
            Watched::OutputThroughput => {
                let tokens: u64 = self.ended.iter().filter(|e| e.ok).map(|e| e.output_tokens).sum();
                Some(tokens as f64 / (self.span_ns as f64 / 1e9))
            }
            Watched::Latency(lat, p) => {
                let ok = self.ended.iter().filter(|e| e.ok);
                let mut v: Vec<f64> = match lat {
                    Latency::Ttft => ok.filter_map(|e| e.ttft).collect(),
                    Latency::Tpot => ok.filter_map(|e| e.tpot).collect(),
                    Latency::E2el => ok.map(|e| e.e2el).collect(),
                    Latency::Itl => ok.flat_map(|e| e.itl.iter().copied()).collect(),
                };
                if v.is_empty() {
                    return None;
                }
                if p == 0.0 {
                    return Some(v.iter().sum::<f64>() / v.len() as f64);
                }
                v.sort_by(f64::total_cmp);
                Some(inferbench_core::stats::percentile_sorted(&v, p))
            }
            _ => None,
        }
    }
}

/// The rules and what has fired.
#[derive(Debug)]
pub struct Alerts {
    rules: Vec<Rule>,
    fired: Vec<AlertFiring>,
}

impl Alerts {
    /// These rules, none fired yet.
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules, fired: Vec::new() }
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when every rule has fired (nothing is left to check).
    pub fn all_fired(&self) -> bool {
        self.fired.len() >= self.rules.len()
    }

    /// True when some rule needs every inter-token gap kept.
    pub fn wants_itl(&self) -> bool {
        self.rules.iter().any(|r| matches!(r.watched, Watched::Latency(Latency::Itl, _)))
    }

    /// Checks every rule not yet fired; `value` reads what a rule watches (None: not known now).
    /// Returns the rules that fired now.
    pub fn check(&mut self, at_s: f64, value: impl Fn(Watched) -> Option<f64>) -> Vec<AlertFiring> {
        let mut now = Vec::new();
        for r in &self.rules {
            if self.fired.iter().any(|f| f.rule == r.text) {
                continue;
            }
            if let Some(v) = value(r.watched).filter(|v| r.holds(*v)) {
                now.push(AlertFiring { rule: r.text.clone(), at_s: (at_s * 1e3).round() / 1e3, value: v, aborted: false });
            }
        }
        self.fired.extend(now.iter().cloned());
        now
    }

    /// What fired, in order; `aborted` marks the firing that stopped the run.
    pub fn fired(&self) -> &[AlertFiring] {
        &self.fired
    }

    /// Marks the first firing as the one that stopped the run.
    pub fn mark_aborted(&mut self) {
        if let Some(f) = self.fired.first_mut() {
            f.aborted = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_units() {
        let r = Rule::parse("p95_ttft_ms>5000").unwrap();
        assert_eq!((r.watched, r.op, r.threshold), (Watched::Latency(Latency::Ttft, 95.0), Op::Gt, 5000.0));
        assert_eq!(Rule::parse("p95_latency > 5s").unwrap().threshold, 5000.0);
        assert_eq!(Rule::parse("error_rate>1%").unwrap().threshold, 0.01);
        assert_eq!(Rule::parse("kv_cache_usage>=95%").unwrap().op, Op::Ge);
        assert_eq!(Rule::parse("output_throughput<100").unwrap().op, Op::Lt);
        assert_eq!(Rule::parse("mean_itl_ms>50").unwrap().watched, Watched::Latency(Latency::Itl, 0.0));
        for bad in ["p95_ttft", "ttft>5", "p95_ttft_ms>abc", "error_rate>5ms", "p101_ttft_ms>1", "waiting>5%"] {
            let e = Rule::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid --alert '{bad}'")), "{e}");
        }
    }

    fn rec(id: u64, end_ms: u64, ok: bool, ttft_ms: u64) -> RequestRecord {
        RequestRecord {
            id,
            scheduled_ns: 0,
            gate_ns: 0,
            sent_ns: 0,
            connect_ns: 0,
            reused: None,
            first_token_ns: ok.then_some(ttft_ms * 1_000_000),
            end_ns: end_ms * 1_000_000,
            itl_ns: Vec::new(),
            input_tokens: 10,
            output_tokens: if ok { 10 } else { 0 },
            token_source: Default::default(),
            client_count: None,
            requested_output_tokens: None,
            cached_tokens: None,
            outcome: if ok {
                inferbench_core::Outcome::Success
            } else {
                inferbench_core::Outcome::Failed { failure: inferbench_core::FailureKind::Http { status: 500 }, message: String::new() }
            },
            category: None,
            turn: None,
            generated_text: None,
        }
    }

    /// Hand-computed: 20 requests over 2 s, one failed (5 %): error_rate>1% fires, >10% does
    /// not; after the window moves past them nothing is left to judge.
    #[test]
    fn fires_once_on_the_window() {
        let mut w = Window::new(10.0);
        for i in 0..20 {
            w.add(&rec(i, 100 * i, i != 7, 50 + i), false);
        }
        let mut a = Alerts::new(vec![Rule::parse("error_rate>1%").unwrap(), Rule::parse("error_rate>10%").unwrap()]);
        let fired = a.check(2.0, |m| w.value(m));
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].rule.as_str(), fired[0].value), ("error_rate>1%", 0.05));
        assert!(a.check(3.0, |m| w.value(m)).is_empty(), "fires once");
        assert_eq!(w.value(Watched::OutputThroughput), Some(19.0 * 10.0 / 10.0));
        w.advance(30_000_000_000);
        assert_eq!(w.value(Watched::ErrorRate), None);
    }
}
