//! A latency simulator that speaks the same API as the real engine, so the client can be tested
//! and demonstrated without a model. Its latency model is documented in `docs/simulator.md`:
//!
//! * a request waits in a queue while `max_num_seqs` sequences are running;
//! * once admitted, its first token comes `ttft_ms + prefill_ms_per_token * prompt_tokens` later;
//! * each further token comes `itl_ms + itl_ms_per_seq * (running - 1)` after the previous one,
//!   where `running` is the number of sequences decoding at that moment;
//! * every deadline is absolute (previous deadline + gap), so timer jitter never accumulates.

use crate::generator::{Fault, GenError, GenEvent, GenRequest, Generator};
use inferbench_data::Tokenizer;
use inferbench_engine::prometheus::Histogram;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::{mpsc, Semaphore};

/// The simulator's latency model and fault modes.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Model name to serve.
    pub model: String,
    /// Base time to first token after admission, ms.
    pub ttft_ms: f64,
    /// Extra time to first token per prompt token, ms.
    pub prefill_ms_per_token: f64,
    /// Base gap between tokens, ms.
    pub itl_ms: f64,
    /// Extra gap per additional running sequence, ms.
    pub itl_ms_per_seq: f64,
    /// Sequences decoding at once; the rest wait.
    pub max_num_seqs: usize,
    /// Longest prompt accepted, in tokens (413 beyond).
    pub max_model_len: u32,
    /// Output length when the request gives no `max_tokens`.
    pub default_max_tokens: u32,
    /// Leave `usage` out of responses (forces clients to count tokens themselves).
    pub no_usage: bool,
    /// Fraction of requests answered with HTTP 500.
    pub error_rate: f64,
    /// Fraction of streams cut mid-way.
    pub disconnect_rate: f64,
    /// Fraction of streams that stall mid-way for `stall_ms`.
    pub stall_rate: f64,
    /// How long a stall lasts, ms.
    pub stall_ms: f64,
    /// Fraction of streams that carry a malformed chunk.
    pub malformed_rate: f64,
    /// Seed for fault selection and output text.
    pub seed: u64,
    /// Tokenizer for prompt counting and output text.
    pub tokenizer: String,
    /// Keep a prefix cache (vLLM's `--enable-prefix-caching`): prompts whose leading
    /// [`PREFIX_BLOCK`]-token blocks were seen before skip their prefill and report them as
    /// `cached_tokens`.
    pub prefix_caching: bool,
    /// Tokens added to both counts in `usage` (a server that miscounts, for testing clients'
    /// reconciliation); the text is unchanged.
    pub miscount_usage: u32,
}

/// Tokens per prefix-cache block (vLLM's default block size).
pub const PREFIX_BLOCK: usize = 16;

/// Blocks the prefix cache holds before it starts afresh (a bound, not an eviction policy).
const PREFIX_CACHE_BLOCKS: usize = 1 << 20;

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            model: "inferbench-sim".into(),
            ttft_ms: 20.0,
            prefill_ms_per_token: 0.02,
            itl_ms: 8.0,
            itl_ms_per_seq: 0.05,
            max_num_seqs: 256,
            max_model_len: 32_768,
            default_max_tokens: 16,
            no_usage: false,
            error_rate: 0.0,
            disconnect_rate: 0.0,
            stall_rate: 0.0,
            stall_ms: 3_600_000.0,
            malformed_rate: 0.0,
            seed: 0,
            tokenizer: "cl100k_base".into(),
            prefix_caching: false,
            miscount_usage: 0,
        }
    }
}

impl SimConfig {
    /// The gap before the next token with `running` sequences decoding, ms.
    pub fn itl_at(&self, running: u64) -> f64 {
        self.itl_ms + self.itl_ms_per_seq * running.saturating_sub(1) as f64
    }

    /// Time to first token after admission for a prompt of `prompt_tokens`, ms.
    pub fn ttft_for(&self, prompt_tokens: u32) -> f64 {
        self.ttft_ms + self.prefill_ms_per_token * prompt_tokens as f64
    }

    fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("--ttft-ms", self.ttft_ms),
            ("--prefill-ms-per-token", self.prefill_ms_per_token),
            ("--itl-ms", self.itl_ms),
            ("--itl-ms-per-seq", self.itl_ms_per_seq),
            ("--stall-ms", self.stall_ms),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be a non-negative number, got {v}"));
            }
        }
        for (name, v) in [
            ("--error-rate", self.error_rate),
            ("--disconnect-rate", self.disconnect_rate),
            ("--stall-rate", self.stall_rate),
            ("--malformed-rate", self.malformed_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        if self.max_num_seqs == 0 {
            return Err("--max-num-seqs must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    running: AtomicU64,
    waiting: AtomicU64,
    prompt_tokens: AtomicU64,
    generation_tokens: AtomicU64,
    success: AtomicU64,
    prefix_queries: AtomicU64,
    prefix_hits: AtomicU64,
    faults: [AtomicU64; 4],
}

/// The simulator's latency histograms, with vLLM's names and buckets.
#[derive(Debug)]
struct Latencies {
    ttft: Histogram,
    itl: Histogram,
    e2e: Histogram,
}

impl Default for Latencies {
    fn default() -> Self {
        use inferbench_engine::prometheus::{E2E_BUCKETS, ITL_BUCKETS, TTFT_BUCKETS};
        Self { ttft: Histogram::new(TTFT_BUCKETS), itl: Histogram::new(ITL_BUCKETS), e2e: Histogram::new(E2E_BUCKETS) }
    }
}

const FAULT_NAMES: [&str; 4] = ["error", "disconnect", "stall", "malformed"];

/// The simulator.
#[derive(Debug)]
pub struct Simulator {
    cfg: SimConfig,
    tokenizer: Tokenizer,
    gate: Arc<Semaphore>,
    counters: Arc<Counters>,
    latencies: Arc<Latencies>,
    /// Chained hashes of the prompt blocks seen (with `prefix_caching`).
    prefix_cache: std::sync::Mutex<std::collections::HashSet<u64>>,
}

impl Simulator {
    /// Builds a simulator, checking its parameters.
    pub fn new(cfg: SimConfig) -> Result<Self, String> {
        cfg.validate()?;
        let tokenizer = Tokenizer::by_name(&cfg.tokenizer).map_err(|e| e.to_string())?;
        tokenizer.single_token_words();
        let gate = Arc::new(Semaphore::new(cfg.max_num_seqs.min(Semaphore::MAX_PERMITS)));
        Ok(Self { cfg, tokenizer, gate, counters: Arc::default(), latencies: Arc::default(), prefix_cache: Default::default() })
    }

    /// How many leading tokens of `prompt` the prefix cache holds (whole blocks), adding its
    /// blocks to the cache. Each block's hash chains the previous one's, so a block is only a
    /// hit behind the same prefix, as in vLLM.
    fn cached_prefix(&self, prompt: &str) -> u32 {
        let ids = self.tokenizer.encode(prompt);
        let mut cache = self.prefix_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > PREFIX_CACHE_BLOCKS {
            cache.clear();
        }
        let (mut h, mut hits, mut missed) = (0xcbf2_9ce4_8422_2325u64, 0u32, false);
        for block in ids.chunks_exact(PREFIX_BLOCK) {
            for &t in block {
                h = mix(h ^ u64::from(t));
            }
            let new = cache.insert(h);
            missed |= new;
            if !missed {
                hits += PREFIX_BLOCK as u32;
            }
        }
        hits
    }

    /// The configuration in force.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }
}

/// splitmix64: a deterministic, well-mixed hash of (seed, request number) for fault draws.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    Clean,
    Disconnect(u32),
    Stall(u32),
    Malformed(u32),
}

struct RunningGuard(Arc<Counters>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Relaxed);
    }
}

/// Bytes per token above which a prompt is refused unread (see `generate`).
const MAX_BYTES_PER_TOKEN: u64 = 32;

impl Generator for Simulator {
    fn model_name(&self) -> &str {
        &self.cfg.model
    }

    fn tokenizer(&self) -> Option<&Tokenizer> {
        Some(&self.tokenizer)
    }

    fn generate(&self, req: GenRequest) -> Result<mpsc::Receiver<GenEvent>, GenError> {
        let arrived = Instant::now();
        let c = &self.counters;
        let n = c.requests.fetch_add(1, Relaxed);
        let h = mix(self.cfg.seed ^ mix(n));
        // Refused before tokenizing: no tokenizer's tokens average anywhere near this many bytes.
        let byte_cap = u64::from(self.cfg.max_model_len) * MAX_BYTES_PER_TOKEN;
        if req.prompt.len() as u64 > byte_cap {
            return Err(GenError::TooLarge(format!(
                "prompt of {} bytes cannot fit this model's context of {} tokens (refused without tokenizing)",
                req.prompt.len(),
                self.cfg.max_model_len
            )));
        }
        let prompt_tokens = self.tokenizer.count(&req.prompt) as u32;
        let cached_tokens = self.cfg.prefix_caching.then(|| self.cached_prefix(&req.prompt));
        if let Some(hit) = cached_tokens {
            c.prefix_queries.fetch_add(u64::from(prompt_tokens), Relaxed);
            c.prefix_hits.fetch_add(u64::from(hit), Relaxed);
        }
        let out = req.max_tokens.max(req.min_tokens).max(1);
        // The context must hold the prompt and the whole output, as the engine server checks.
        if u64::from(prompt_tokens) + u64::from(out) > u64::from(self.cfg.max_model_len) {
            return Err(GenError::TooLarge(format!(
                "this model's maximum context length is {} tokens; the request has {prompt_tokens} prompt tokens and asks for {out}",
                self.cfg.max_model_len
            )));
        }
        // One draw per request decides its fate; the rates partition [0, 1).
        let u = unit(h);
        let cfg = &self.cfg;
        let mid = (out / 2).max(1);
        let rates = [cfg.error_rate, cfg.disconnect_rate, cfg.stall_rate, cfg.malformed_rate];
        let fault = rates.iter().scan(0.0, |acc, r| {
            *acc += r;
            Some(*acc)
        });
        let plan = match fault.enumerate().find(|&(_, edge)| u < edge).map(|(i, _)| i) {
            Some(0) => {
                c.faults[0].fetch_add(1, Relaxed);
                return Err(GenError::Internal("injected error (simulator --error-rate)".into()));
            }
            Some(1) => Plan::Disconnect(mid),
            Some(2) => Plan::Stall(mid),
            Some(3) => Plan::Malformed(mid),
            _ => Plan::Clean,
        };
        let (tx, rx) = mpsc::channel(32);
        let tokenizer = self.tokenizer.clone();
        let (gate, counters, cfg) = (self.gate.clone(), self.counters.clone(), self.cfg.clone());
        let lat = self.latencies.clone();
        tokio::spawn(async move {
            let (_permit, start) = match gate.clone().try_acquire_owned() {
                Ok(p) => (p, arrived),
                Err(_) => {
                    counters.waiting.fetch_add(1, Relaxed);
                    let permit = gate.acquire_owned().await;
                    counters.waiting.fetch_sub(1, Relaxed);
                    let Ok(p) = permit else { return };
                    (p, Instant::now())
                }
            };
            counters.running.fetch_add(1, Relaxed);
            let _running = RunningGuard(counters.clone());
            counters.prompt_tokens.fetch_add(prompt_tokens as u64, Relaxed);
            // TTFT counts from arrival (as a server's own TTFT does), or from admission when the
            // request had to queue for a slot.
            // Cached prompt tokens need no prefill.
            let mut deadline = start + ms(cfg.ttft_for(prompt_tokens - cached_tokens.unwrap_or(0)));
            let words = tokenizer.single_token_words();
            let mut word = h;
            let mut last = arrived;
            for i in 0..out {
                if i > 0 {
                    deadline += ms(cfg.itl_at(counters.running.load(Relaxed)));
                }
                crate::timer::sleep_until(deadline).await;
                match plan {
                    Plan::Disconnect(k) if i == k => {
                        counters.faults[1].fetch_add(1, Relaxed);
                        let _ = tx.send(GenEvent::Fault(Fault::Disconnect)).await;
                        return;
                    }
                    Plan::Stall(k) if i == k => {
                        counters.faults[2].fetch_add(1, Relaxed);
                        tokio::time::sleep(ms(cfg.stall_ms)).await;
                        deadline = Instant::now();
                    }
                    Plan::Malformed(k) if i == k => {
                        counters.faults[3].fetch_add(1, Relaxed);
                        if tx.send(GenEvent::Fault(Fault::Malformed)).await.is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
                word = mix(word);
                let text = words[(word % words.len() as u64) as usize].clone();
                if tx.send(GenEvent::Token(text)).await.is_err() {
                    return; // client went away
                }
                let now = Instant::now();
                if i == 0 {
                    lat.ttft.observe(now - arrived);
                } else {
                    lat.itl.observe(now - last);
                }
                last = now;
                counters.generation_tokens.fetch_add(1, Relaxed);
            }
            counters.success.fetch_add(1, Relaxed);
            lat.e2e.observe(arrived.elapsed());
            let skew = cfg.miscount_usage;
            let (prompt_tokens, completion_tokens) = (prompt_tokens + skew, out + skew);
            let _ = tx.send(GenEvent::Finish { reason: "length", prompt_tokens, completion_tokens, cached_tokens }).await;
        });
        Ok(rx)
    }

    fn reports_usage(&self) -> bool {
        !self.cfg.no_usage
    }

    fn reset_prefix_cache(&self) -> bool {
        if self.cfg.prefix_caching {
            self.prefix_cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        self.cfg.prefix_caching
    }

    fn metrics_text(&self) -> String {
        let c = &self.counters;
        let m = &self.cfg.model;
        let mut s = String::new();
        for (name, kind, help, v) in [
            ("vllm:num_requests_running", "gauge", "Requests decoding now.", c.running.load(Relaxed)),
            ("vllm:num_requests_waiting", "gauge", "Requests waiting for a slot.", c.waiting.load(Relaxed)),
            ("vllm:prompt_tokens_total", "counter", "Prompt tokens admitted.", c.prompt_tokens.load(Relaxed)),
            ("vllm:generation_tokens_total", "counter", "Tokens generated.", c.generation_tokens.load(Relaxed)),
            ("vllm:request_success_total", "counter", "Requests finished normally.", c.success.load(Relaxed)),
            ("vllm:prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.", c.prefix_queries.load(Relaxed)),
            ("vllm:prefix_cache_hits_total", "counter", "Prompt tokens the prefix cache served.", c.prefix_hits.load(Relaxed)),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{model_name=\"{m}\"}} {v}");
        }
        let labels = format!("model_name=\"{m}\"");
        let l = &self.latencies;
        l.ttft.write(&mut s, "vllm:time_to_first_token_seconds", "Time from arrival to the first token.", &labels);
        l.itl.write(&mut s, "vllm:inter_token_latency_seconds", "Time between consecutive tokens of a request.", &labels);
        l.e2e.write(&mut s, "vllm:e2e_request_latency_seconds", "Time from arrival to the last token.", &labels);
        let _ =
            writeln!(s, "# HELP inferbench_sim_faults_total Faults injected by the simulator.\n# TYPE inferbench_sim_faults_total counter");
        for (i, kind) in FAULT_NAMES.iter().enumerate() {
            let _ = writeln!(s, "inferbench_sim_faults_total{{kind=\"{kind}\"}} {}", c.faults[i].load(Relaxed));
        }
        s
    }
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(n: u32) -> GenRequest {
        GenRequest { prompt: "hello world".into(), max_tokens: n, min_tokens: 0, ignore_eos: true, ..Default::default() }
    }

    #[test]
    fn latency_model_formulas() {
        let c = SimConfig { ttft_ms: 10.0, prefill_ms_per_token: 0.5, itl_ms: 4.0, itl_ms_per_seq: 1.0, ..SimConfig::default() };
        assert_eq!(c.ttft_for(100), 60.0);
        assert_eq!(c.itl_at(1), 4.0);
        assert_eq!(c.itl_at(5), 8.0);
        assert!(Simulator::new(SimConfig { error_rate: 2.0, ..c.clone() }).unwrap_err().contains("--error-rate"));
    }

    fn near(actual: &[f64], expected: &[f64]) -> bool {
        actual.len() == expected.len() && actual.iter().zip(expected).all(|(a, e)| (a - e).abs() < 3.0)
    }

    #[tokio::test]
    async fn emits_exact_tokens_on_schedule() {
        let sim = Simulator::new(SimConfig {
            ttft_ms: 10.0,
            prefill_ms_per_token: 0.0,
            itl_ms: 5.0,
            itl_ms_per_seq: 0.0,
            ..SimConfig::default()
        })
        .unwrap();
        let start = Instant::now();
        let mut rx = sim.generate(req(4)).unwrap();
        let mut times = Vec::new();
        let mut text = String::new();
        while let Some(ev) = rx.recv().await {
            match ev {
                GenEvent::Token(t) => {
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                    text.push_str(&t);
                }
                GenEvent::Finish { completion_tokens, prompt_tokens, .. } => {
                    assert_eq!((completion_tokens, prompt_tokens), (4, 2));
                }
                other @ (GenEvent::Fault(_) | GenEvent::Error(_)) => panic!("unexpected {other:?}"),
            }
        }
        assert!(near(&times, &[10.0, 15.0, 20.0, 25.0]), "{times:?}");
        assert_eq!(Tokenizer::by_name("cl100k_base").unwrap().count(&text), 4);
        assert!(sim.metrics_text().contains("vllm:generation_tokens_total{model_name=\"inferbench-sim\"} 4"));
    }

    #[tokio::test]
    async fn faults_follow_their_rates() {
        let sim = Simulator::new(SimConfig { error_rate: 1.0, ..SimConfig::default() }).unwrap();
        assert_eq!(sim.generate(req(2)).unwrap_err().status(), 500);
        let sim = Simulator::new(SimConfig { disconnect_rate: 1.0, itl_ms: 0.0, ttft_ms: 0.0, ..SimConfig::default() }).unwrap();
        let mut rx = sim.generate(req(4)).unwrap();
        let mut evs = Vec::new();
        while let Some(e) = rx.recv().await {
            evs.push(e);
        }
        assert_eq!(evs.len(), 3, "two tokens then the fault: {evs:?}");
        assert_eq!(evs[2], GenEvent::Fault(Fault::Disconnect));
    }

    #[tokio::test]
    async fn queue_beyond_max_num_seqs() {
        let sim =
            Simulator::new(SimConfig { max_num_seqs: 1, ttft_ms: 10.0, itl_ms: 10.0, prefill_ms_per_token: 0.0, ..SimConfig::default() })
                .unwrap();
        // Warm the tokenizer and the timer thread first: their one-off start-up is not queueing.
        let mut warm = sim.generate(req(1)).unwrap();
        while warm.recv().await.is_some() {}
        let start = Instant::now();
        let mut a = sim.generate(req(2)).unwrap();
        let mut b = sim.generate(req(2)).unwrap();
        while a.recv().await.is_some() {}
        let a_done = start.elapsed().as_secs_f64() * 1e3;
        let first_b = b.recv().await.unwrap();
        assert!(matches!(first_b, GenEvent::Token(_)));
        // b waited for a's 20 ms, then its own 10 ms TTFT.
        let b_first = start.elapsed().as_secs_f64() * 1e3;
        assert!(near(&[a_done, b_first], &[20.0, 30.0]), "{a_done} {b_first}");
    }
}
