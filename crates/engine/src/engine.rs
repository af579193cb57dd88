//! The serving engine: a scheduler thread that admits requests up to `max_num_seqs` and a KV
//! budget, queues the rest, and runs every admitted sequence in one forward step at a time
//! (continuous batching with chunked prefill). Requests arrive from any thread; events go back
//! through each request's [`EventSink`].

use crate::detok::Detokenizer;
use crate::llama::{BatchItem, Model};
use crate::prometheus::EngineStats;
use crate::sampling::{Sampler, SamplingParams};
use crate::{EngineError, KvCache};
use inferbench_data::tokenizer::Tokenizer;
use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

/// Scheduler limits.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Sequences decoded together at most; more requests wait.
    pub max_num_seqs: usize,
    /// Tokens one step may process (decode tokens plus prefill chunks).
    pub max_num_batched_tokens: usize,
    /// Prefill tokens one step may take while other sequences are decoding (`None`: up to
    /// `max_num_batched_tokens`), as long as at least as many decode as wait for prefill (see
    /// `prefill_budget`). A step costs about as much per row as it carries, so a whole prefill
    /// in one step stalls every decoding sequence for its length; small chunks spread it over
    /// several steps and keep inter-token latency even, at a few per cent of throughput on a
    /// CPU (measured in `docs/architecture.md`), so the bound is opt-in.
    pub max_prefill_tokens_while_decoding: Option<usize>,
    /// KV-cache budget in bytes; a request reserves `prompt + max_tokens` positions at admission.
    pub kv_cache_bytes: usize,
    /// Longest sequence (prompt + output) accepted; `None` is the model's context length.
    pub max_model_len: Option<usize>,
    /// Compute threads.
    pub threads: usize,
    /// CPUs the compute threads are pinned to, one each in turn (`None`: not pinned).
    pub cpus: Option<Vec<usize>>,
    /// A draft model for speculative decoding (`None`: plain decoding).
    pub draft: Option<DraftConfig>,
}

/// Speculative decoding in the serving engine: each step, every decoding sequence has the draft
/// propose up to `num_speculative_tokens` tokens (greedily, all sequences batched), and the
/// target checks them in the same forward step as everyone else's work. The target samples each
/// position as it would without a draft (same sampler, same random draws) and a proposal stands
/// while it equals the target's token, so the output is exactly what plain decoding gives, greedy
/// or seeded. (vLLM's rejection sampler accepts more often at temperature > 0; at temperature 0
/// the two agree.)
#[derive(Debug, Clone)]
pub struct DraftConfig {
    /// The draft model (same vocabulary as the target).
    pub model: Arc<Model>,
    /// Tokens proposed per step at most.
    pub num_speculative_tokens: usize,
    /// Threads of the draft's own pool (`None`: the draft shares the target's threads). Draft
    /// and target run one after the other within a step, so a pool of its own only pays where
    /// the two would otherwise contend (placement `separate` / `ratio` of the benchmark).
    pub threads: Option<usize>,
    /// CPUs the draft's own threads are pinned to.
    pub cpus: Option<Vec<usize>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_num_seqs: 16,
            max_num_batched_tokens: 512,
            max_prefill_tokens_while_decoding: None,
            kv_cache_bytes: 512 << 20,
            max_model_len: None,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            cpus: None,
            draft: None,
        }
    }
}

/// One generation request, already tokenized.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Tokens to generate at least (end-of-sequence is masked until then).
    pub min_tokens: usize,
    /// Never stop at end-of-sequence (benchmarks that need exact output lengths).
    pub ignore_eos: bool,
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// Stop strings: generation ends before the first occurrence.
    pub stop: Vec<String>,
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// `max_tokens` reached.
    Length,
    /// End-of-sequence token or a stop string.
    Stop,
}

impl FinishReason {
    /// The OpenAI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::Stop => "stop",
        }
    }
}

/// What a request's sink receives, in order: tokens, then `Finished` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// One generated token and the text it completes (may be empty while a UTF-8 character is
    /// split across tokens).
    Token {
        /// Token id.
        id: u32,
        /// New text.
        text: String,
    },
    /// Generation ended normally.
    Finished {
        /// Why.
        reason: FinishReason,
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Generated tokens.
        completion_tokens: usize,
    },
    /// The engine failed this request.
    Failed(String),
}

/// Where a request's events go.
pub trait EventSink: Send + 'static {
    /// Delivers an event; `false` means the receiver is gone and the request should be dropped.
    fn send(&mut self, ev: Event) -> bool;
    /// Whether the receiver is gone (checked before spending compute on a request).
    fn is_closed(&self) -> bool {
        false
    }
}

impl EventSink for mpsc::Sender<Event> {
    fn send(&mut self, ev: Event) -> bool {
        mpsc::Sender::send(self, ev).is_ok()
    }
}

struct Job {
    req: Request,
    sink: Box<dyn EventSink>,
    arrived: Instant,
}

struct Shared {
    model: Arc<Model>,
    tokenizer: Tokenizer,
    eos: Vec<u32>,
    cfg: EngineConfig,
    max_len: usize,
    kv_budget_tokens: usize,
    stats: Arc<EngineStats>,
}

/// A running engine. Dropping it stops the scheduler after the current step.
pub struct Engine {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("cfg", &self.shared.cfg).finish()
    }
}

impl Engine {
    /// Starts the scheduler thread over a loaded model and its tokenizer.
    pub fn start(model: Arc<Model>, tokenizer: Tokenizer, eos: Vec<u32>, cfg: EngineConfig) -> Result<Self, EngineError> {
        if cfg.max_num_seqs == 0 || cfg.max_num_batched_tokens < cfg.max_num_seqs {
            return Err(EngineError::BadInput(format!(
                "max_num_batched_tokens ({}) must be at least max_num_seqs ({}), which must be positive",
                cfg.max_num_batched_tokens, cfg.max_num_seqs
            )));
        }
        let mut max_len = cfg.max_model_len.unwrap_or(model.cfg.context_length).min(model.cfg.context_length);
        // Each position is cached by the target and, when there is one, by the draft.
        let mut bytes_per_token = model.cfg.kv_bytes_per_token();
        if let Some(d) = &cfg.draft {
            if d.model.cfg.vocab != model.cfg.vocab {
                return Err(EngineError::BadInput(format!(
                    "the draft's vocabulary ({} tokens) differs from the target's ({}); speculative decoding needs the same tokenizer",
                    d.model.cfg.vocab, model.cfg.vocab
                )));
            }
            if d.num_speculative_tokens == 0 {
                return Err(EngineError::BadInput("num_speculative_tokens must be at least 1 with a draft model".into()));
            }
            max_len = max_len.min(d.model.cfg.context_length);
            bytes_per_token += d.model.cfg.kv_bytes_per_token();
        }
        let kv_budget_tokens = cfg.kv_cache_bytes / bytes_per_token;
        if kv_budget_tokens == 0 {
            return Err(EngineError::BadInput(format!("a KV-cache budget of {} bytes holds no token", cfg.kv_cache_bytes)));
        }
        let pool = compute_pool(cfg.threads, cfg.cpus.clone(), "compute")?;
        let draft_pool = match &cfg.draft {
            Some(DraftConfig { threads: Some(t), cpus, .. }) => Some(compute_pool(*t, cpus.clone(), "draft")?),
            _ => None,
        };
        let stats = Arc::new(EngineStats::new(kv_budget_tokens, cfg.draft.as_ref().map_or(0, |d| d.num_speculative_tokens)));
        let shared = Arc::new(Shared { model, tokenizer, eos, cfg, max_len, kv_budget_tokens, stats });
        let (tx, rx) = mpsc::channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("inferbench-engine".into())
            .spawn(move || pool.install(|| Scheduler::new(s, draft_pool).run(rx)))
            .map_err(|e| EngineError::Internal(format!("cannot start the engine thread: {e}")))?;
        Ok(Self { shared, tx: Some(tx), thread: Some(thread) })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.shared.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.shared.tokenizer
    }

    /// Live counters and histograms.
    pub fn stats(&self) -> &Arc<EngineStats> {
        &self.shared.stats
    }

    /// Positions the KV budget holds.
    pub fn kv_budget_tokens(&self) -> usize {
        self.shared.kv_budget_tokens
    }

    /// Longest prompt + output accepted.
    pub fn max_model_len(&self) -> usize {
        self.shared.max_len
    }

    /// Checks a request against the context and the KV budget and queues it.
    pub fn submit(&self, req: Request, sink: Box<dyn EventSink>) -> Result<(), EngineError> {
        let s = &self.shared;
        if req.prompt.is_empty() {
            return Err(EngineError::BadInput("the prompt is empty".into()));
        }
        if req.max_tokens == 0 {
            return Err(EngineError::BadInput("max_tokens must be at least 1".into()));
        }
        if let Some(&t) = req.prompt.iter().find(|&&t| t as usize >= s.model.cfg.vocab) {
            return Err(EngineError::BadInput(format!("token id {t} is outside the vocabulary of {}", s.model.cfg.vocab)));
        }
        req.sampling.validate().map_err(EngineError::BadInput)?;
        let need = req.prompt.len() + req.max_tokens;
        if need > s.max_len {
            return Err(EngineError::TooLarge(format!(
                "this model's maximum context length is {} tokens; the request asks for {} ({} prompt + {} output)",
                s.max_len,
                need,
                req.prompt.len(),
                req.max_tokens
            )));
        }
        if need > s.kv_budget_tokens {
            return Err(EngineError::TooLarge(format!(
                "the request needs {need} KV-cache positions ({} prompt + {} output) but the whole budget holds {}",
                req.prompt.len(),
                req.max_tokens,
                s.kv_budget_tokens
            )));
        }
        s.stats.waiting_add(1);
        let tx = self.tx.as_ref().ok_or_else(|| EngineError::Unavailable("the engine is shutting down".into()))?;
        tx.send(Job { req, sink, arrived: Instant::now() }).map_err(|_| {
            s.stats.waiting_add(-1);
            EngineError::Unavailable("the engine has stopped".into())
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Seq {
    tokens: Vec<u32>,
    prompt_len: usize,
    cache: KvCache,
    /// The draft's cache (speculative decoding): positions of `tokens` the draft has seen.
    draft_cache: Option<KvCache>,
    sampler: Sampler,
    sink: Box<dyn EventSink>,
    req: Request,
    detok: Detokenizer,
    text: String,
    emitted: usize,
    arrived: Instant,
    last_token: Option<Instant>,
}

impl Seq {
    fn generated(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }
}

/// One sequence's share of a step: `tokens` of its own (prefill chunk or its last token) plus
/// `proposals` draft tokens to check.
struct Planned {
    seq: usize,
    tokens: usize,
    proposals: usize,
}

struct Scheduler {
    s: Arc<Shared>,
    /// The draft's own threads, when it does not share the target's.
    draft_pool: Option<rayon::ThreadPool>,
    waiting: VecDeque<Job>,
    running: Vec<Seq>,
    kv_used: usize,
}

impl Scheduler {
    fn new(s: Arc<Shared>, draft_pool: Option<rayon::ThreadPool>) -> Self {
        Self { s, draft_pool, waiting: VecDeque::new(), running: Vec::new(), kv_used: 0 }
    }

    fn run(mut self, rx: mpsc::Receiver<Job>) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                // Idle: the finished sequences' caches go back to the OS, not just to malloc.
                crate::release_freed_memory();
                match rx.recv() {
                    Ok(j) => self.waiting.push_back(j),
                    Err(_) => return,
                }
            }
            while let Ok(j) = rx.try_recv() {
                self.waiting.push_back(j);
            }
            self.admit();
            self.step();
        }
    }

    fn admit(&mut self) {
        let c = &self.s.model.cfg;
        // Requests whose client left while queued are dropped without compute.
        let before = self.waiting.len();
        self.waiting.retain(|j| !j.sink.is_closed());
        self.s.stats.waiting_add(-((before - self.waiting.len()) as i64));
        while self.running.len() < self.s.cfg.max_num_seqs {
            let Some(need) = self.waiting.front().map(|j| j.req.prompt.len() + j.req.max_tokens) else { break };
            if self.kv_used + need > self.s.kv_budget_tokens {
                break;
            }
            let Some(mut j) = self.waiting.pop_front() else { break };
            self.kv_used += need;
            self.s.stats.waiting_add(-1);
            self.s.stats.prompt_tokens.fetch_add(j.req.prompt.len() as u64, std::sync::atomic::Ordering::Relaxed);
            // The prompt moves into the sequence's token list; the request keeps the settings.
            let tokens = std::mem::take(&mut j.req.prompt);
            self.running.push(Seq {
                prompt_len: tokens.len(),
                tokens,
                cache: KvCache::new(c.n_layer, c.kv_dim(), need),
                draft_cache: self.s.cfg.draft.as_ref().map(|d| KvCache::new(d.model.cfg.n_layer, d.model.cfg.kv_dim(), need)),
                sampler: Sampler::new(j.req.sampling.clone()),
                sink: j.sink,
                req: j.req,
                detok: Detokenizer::default(),
                text: String::new(),
                emitted: 0,
                arrived: j.arrived,
                last_token: None,
            });
        }
        self.s.stats.set_running(self.running.len(), self.kv_used);
    }

    fn step(&mut self) {
        self.running.retain(|q| !q.sink.is_closed());
        if self.running.is_empty() {
            self.recount();
            return;
        }
        // Decoding sequences first (their token, plus draft proposals to check when there is a
        // draft), then prefill chunks in arrival order.
        let spec_k = self.s.cfg.draft.as_ref().map_or(0, |d| d.num_speculative_tokens);
        let mut budget = self.s.cfg.max_num_batched_tokens;
        let mut plan: Vec<Planned> = Vec::new();
        for (i, q) in self.running.iter().enumerate() {
            if q.tokens.len() - q.cache.len() == 1 && budget > 0 {
                // Proposals past max_tokens would be thrown away: propose only what can stand.
                let k = spec_k.min(q.req.max_tokens.saturating_sub(q.generated() + 1)).min(budget - 1);
                plan.push(Planned { seq: i, tokens: 1 + k, proposals: k });
                budget -= 1 + k;
            }
        }
        let decoding = plan.len();
        let prefilling = self.running.iter().filter(|q| q.tokens.len() - q.cache.len() > 1).count();
        budget = prefill_budget(budget, decoding, prefilling, self.s.cfg.max_prefill_tokens_while_decoding);
        for (i, q) in self.running.iter().enumerate() {
            let pending = q.tokens.len() - q.cache.len();
            if pending > 1 && budget > 0 {
                let n = pending.min(budget);
                plan.push(Planned { seq: i, tokens: n, proposals: 0 });
                budget -= n;
            }
        }
        plan.sort_unstable_by_key(|p| p.seq);
        // The draft proposes first; each speculating sequence's step is then its last token
        // followed by the proposals.
        let proposals = match self.propose(&plan) {
            Ok(p) => p,
            Err(e) => return self.fail(&plan, &e),
        };
        let verify: Vec<Vec<u32>> = plan
            .iter()
            .zip(&proposals)
            .map(|(p, props)| match props.is_empty() {
                true => Vec::new(),
                false => {
                    std::iter::once(self.running[p.seq].tokens[self.running[p.seq].tokens.len() - 1]).chain(props.iter().copied()).collect()
                }
            })
            .collect();
        let model = self.s.model.clone();
        let mut items: Vec<BatchItem<'_>> = Vec::with_capacity(plan.len());
        let mut every_row = Vec::with_capacity(plan.len());
        let mut planned = plan.iter().zip(&verify).peekable();
        for (i, q) in self.running.iter_mut().enumerate() {
            if let Some((p, v)) = planned.next_if(|p| p.0.seq == i) {
                let start = q.cache.len();
                let (tokens, want_logits) = match p.proposals {
                    0 => (&q.tokens[start..start + p.tokens], start + p.tokens == q.tokens.len()),
                    _ => (&v[..], true),
                };
                items.push(BatchItem { tokens, start, cache: &mut q.cache, want_logits });
                every_row.push(p.proposals > 0);
            }
        }
        let t = Instant::now();
        let result = model.forward_mixed(&mut items, &every_row);
        let step_tokens: usize = plan.iter().map(|p| p.tokens).sum();
        drop(items);
        self.s.stats.record_step(step_tokens, t.elapsed());
        let logits = match result {
            Ok(l) => l,
            Err(e) => return self.fail(&plan, &e),
        };
        // Logits come back in plan order: one row for each sequence whose pending tokens are all
        // cached, one per checked position for each speculating sequence.
        let mut logits = logits.into_iter();
        let mut done = Vec::new();
        for (p, props) in plan.iter().zip(&proposals) {
            let i = p.seq;
            if props.is_empty() {
                if self.running[i].cache.len() != self.running[i].tokens.len() {
                    continue;
                }
                let Some(mut l) = logits.next() else { break };
                if let (_, Some(finish)) = self.emit(i, &mut l, |_, _| {}) {
                    done.push((i, finish));
                }
                continue;
            }
            // The target's token at each checked position, as plain decoding would sample it;
            // the next position counts only while the proposal before it was that token.
            // The counters move before each token is delivered, so a client that has seen its
            // request finish also sees that request's drafts counted.
            let rows: Vec<Vec<f32>> = logits.by_ref().take(props.len() + 1).collect();
            self.s.stats.drafted(props.len());
            let mut finished = None;
            for (j, mut row) in rows.into_iter().enumerate() {
                let proposed = props.get(j).copied();
                let (tok, finish) = self.emit(i, &mut row, |tok, stats| {
                    if proposed == Some(tok) {
                        stats.accepted_at(j);
                    }
                });
                if finish.is_some() || proposed != Some(tok) {
                    finished = finish;
                    break;
                }
            }
            match finished {
                Some(f) => done.push((i, f)),
                None => {
                    // Cached positions past the last accepted proposal hold rejected tokens.
                    let q = &mut self.running[i];
                    let keep = q.tokens.len() - 1;
                    q.cache.truncate(keep);
                    if let Some(dc) = q.draft_cache.as_mut() {
                        dc.truncate(keep);
                    }
                }
            }
        }
        done.sort_unstable_by_key(|d| std::cmp::Reverse(d.0));
        for (i, _alive) in done {
            self.running.swap_remove(i);
        }
        self.recount();
    }

    /// The draft's greedy proposals for each planned sequence that speculates (empty for the
    /// others): `proposals` draft steps, every speculating sequence batched in each. The first
    /// step also feeds the draft whatever of the sequence it has not seen (the prompt, the
    /// first time).
    fn propose(&mut self, plan: &[Planned]) -> Result<Vec<Vec<u32>>, EngineError> {
        let mut out: Vec<Vec<u32>> = plan.iter().map(|p| Vec::with_capacity(p.proposals)).collect();
        let Some(draft) = self.s.cfg.draft.as_ref().map(|d| d.model.clone()) else { return Ok(out) };
        let rounds = plan.iter().map(|p| p.proposals).max().unwrap_or(0);
        for round in 0..rounds {
            let mut items: Vec<BatchItem<'_>> = Vec::new();
            let mut who = Vec::new();
            let mut planned = plan.iter().enumerate().peekable();
            for (i, q) in self.running.iter_mut().enumerate() {
                let Some((k, p)) = planned.next_if(|p| p.1.seq == i) else { continue };
                if round >= p.proposals {
                    continue;
                }
                let Some(dc) = q.draft_cache.as_mut() else { continue };
                let start = dc.len();
                let tokens = match round {
                    0 => &q.tokens[start..],
                    _ => std::slice::from_ref(&out[k][round - 1]),
                };
                items.push(BatchItem { tokens, start, cache: dc, want_logits: true });
                who.push(k);
            }
            let logits = match &self.draft_pool {
                Some(pool) => pool.install(|| draft.forward(&mut items))?,
                None => draft.forward(&mut items)?,
            };
            drop(items);
            for (k, l) in who.into_iter().zip(logits) {
                out[k].push(crate::sampling::argmax(&l));
            }
        }
        Ok(out)
    }

    /// Fails every planned sequence with `e` (a forward step that could not run).
    fn fail(&mut self, plan: &[Planned], e: &EngineError) {
        tracing::error!("forward step failed: {e}");
        for p in plan.iter().rev() {
            let mut q = self.running.swap_remove(p.seq);
            q.sink.send(Event::Failed(e.to_string()));
        }
        self.recount();
    }

    fn recount(&mut self) {
        self.kv_used = self.running.iter().map(|q| q.cache.capacity()).sum();
        self.s.stats.set_running(self.running.len(), self.kv_used);
    }

    /// Samples and delivers the next token of sequence `i`: the token, and `Some(alive)` when the
    /// sequence is over (`alive` false when the client went away). `sampled` sees the token before
    /// anything is delivered.
    fn emit(&mut self, i: usize, logits: &mut [f32], sampled: impl FnOnce(u32, &EngineStats)) -> (u32, Option<bool>) {
        let s = &self.s;
        let q = &mut self.running[i];
        let eos_allowed = !q.req.ignore_eos && q.generated() >= q.req.min_tokens;
        if !eos_allowed {
            for &e in &s.eos {
                if let Some(l) = logits.get_mut(e as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        let tok = q.sampler.sample(logits);
        sampled(tok, &s.stats);
        let now = Instant::now();
        match q.last_token {
            None => s.stats.ttft(now - q.arrived),
            Some(prev) => s.stats.itl(now - prev),
        }
        q.last_token = Some(now);
        s.stats.generation_tokens.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let finish = |q: &mut Seq, reason| {
            let ev = Event::Finished { reason, prompt_tokens: q.prompt_len, completion_tokens: q.generated() };
            s.stats.finished(q.arrived.elapsed());
            Some(q.sink.send(ev))
        };
        if eos_allowed && s.eos.contains(&tok) {
            // The end-of-sequence token counts as generated (as in vLLM) but has no text.
            q.tokens.push(tok);
            let mut rest = q.detok.flush(&s.tokenizer, &q.tokens[q.prompt_len..q.tokens.len() - 1]);
            if !q.req.stop.is_empty() {
                q.text.push_str(&rest);
                rest = q.text.get(q.emitted..).unwrap_or_default().to_owned();
            }
            if !rest.is_empty() && !q.sink.send(Event::Token { id: tok, text: rest }) {
                return (tok, Some(false));
            }
            return (tok, finish(q, FinishReason::Stop));
        }
        q.tokens.push(tok);
        let mut text = q.detok.step(&s.tokenizer, &q.tokens[q.prompt_len..]);
        let at_limit = q.generated() >= q.req.max_tokens;
        if at_limit {
            text.push_str(&q.detok.flush(&s.tokenizer, &q.tokens[q.prompt_len..]));
        }
        let mut stopped = false;
        if !q.req.stop.is_empty() {
            // Text that may be the start of a stop string is held back until it is not.
            q.text.push_str(&text);
            let from = q.emitted.saturating_sub(q.req.stop.iter().map(String::len).max().unwrap_or(0));
            let from = (0..=from).rev().find(|&k| q.text.is_char_boundary(k)).unwrap_or(0);
            let found =
                q.req.stop.iter().filter(|s| !s.is_empty()).filter_map(|st| q.text[from..].find(st.as_str()).map(|p| from + p)).min();
            let upto = match found {
                Some(cut) => {
                    stopped = true;
                    q.text.truncate(cut);
                    cut
                }
                None if at_limit => q.text.len(),
                None => q.text.len() - held_back(&q.text, &q.req.stop),
            };
            text = q.text.get(q.emitted..upto.max(q.emitted)).unwrap_or_default().to_owned();
            q.emitted = upto.max(q.emitted);
        }
        if !q.sink.send(Event::Token { id: tok, text }) {
            return (tok, Some(false));
        }
        if stopped {
            return (tok, finish(q, FinishReason::Stop));
        }
        if at_limit {
            return (tok, finish(q, FinishReason::Length));
        }
        (tok, None)
    }
}

/// A pool of `threads` compute threads, pinned to `cpus` in turn when given.
fn compute_pool(threads: usize, cpus: Option<Vec<usize>>, name: &'static str) -> Result<rayon::ThreadPool, EngineError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("inferbench-{name}-{i}"))
        .start_handler(move |i| {
            if let Some(c) = cpus.as_ref().filter(|c| !c.is_empty()) {
                pin_to_cpu(c[i % c.len()]);
            }
        })
        .build()
        .map_err(|e| EngineError::Internal(format!("thread pool: {e}")))
}

/// Pins the calling thread to one CPU (best effort: a CPU outside the process's set is ignored
/// by the kernel with an error, and the thread stays unpinned).
#[allow(unsafe_code)]
fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET bounds-checks against the set's size, and
    // sched_setaffinity(0, ...) only affects the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::warn!("cannot pin a compute thread to CPU {cpu}: {}", std::io::Error::last_os_error());
        }
    }
}

/// Bytes at the end of `text` that are a proper prefix of some stop string.
fn held_back(text: &str, stops: &[String]) -> usize {
    let mut hold = 0;
    for st in stops {
        for (k, _) in st.char_indices().skip(1) {
            if k > hold && text.ends_with(&st[..k]) {
                hold = k;
            }
        }
    }
    hold
}
/// Prefill tokens a step may take, of the `budget` left after `decoding` decode tokens, with
/// `prefilling` sequences waiting for prefill. The bound protects the decoding streams'
/// inter-token latency; when fewer streams decode than wait for prefill (a burst of arrivals), a
/// whole-prefill step stalls few tokens and starts many streams at once, while chunking it would
/// leave most slots idle for many small steps (where bounded prefill lost its throughput).
fn prefill_budget(budget: usize, decoding: usize, prefilling: usize, bound: Option<usize>) -> usize {
    match bound {
        Some(b) if decoding > 0 && decoding >= prefilling => budget.min(b.max(1)),
        _ => budget,
    }
}

#[cfg(test)]
mod tests {
    use super::prefill_budget;

    #[test]
    fn the_bound_holds_while_as_many_stream_decode_as_wait() {
        // 7 decoding, 1 prompt waiting: bounded. Nothing decoding: the whole budget.
        assert_eq!(prefill_budget(505, 7, 1, Some(16)), 16);
        assert_eq!(prefill_budget(512, 0, 8, Some(16)), 512);
        // A burst: 1 decoding, 7 waiting: the whole budget; 4 and 4: bounded.
        assert_eq!(prefill_budget(511, 1, 7, Some(16)), 511);
        assert_eq!(prefill_budget(508, 4, 4, Some(16)), 16);
        // No bound asked: the whole budget; a bound larger than what is left: what is left.
        assert_eq!(prefill_budget(505, 7, 1, None), 505);
        assert_eq!(prefill_budget(10, 7, 1, Some(16)), 10);
    }
}
