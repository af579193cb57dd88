//! The one load loop: an arrival process and an optional concurrency gate decide when each
//! request starts; every request becomes a record on a channel.
//!
//! With a finite request rate, sends are timed by a dedicated OS thread sleeping to absolute instants (the async timer wheel
//! has 1 ms granularity, too coarse for 1,000 req/s), which then hands each request to the async
//! runtime. The request task timestamps the actual send, so any delay in that hand-off shows up
//! as scheduling lag rather than hiding inside latency.

use crate::arrival::{ArrivalConfig, Arrivals};
use crate::client::{Requester, Slot};
use inferbench_core::shard::Shard;
use inferbench_core::RequestRecord;
use inferbench_data::{ChatMessage, Prompt, TraceSet};
use std::borrow::Cow;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How much load to offer and for how long.
#[derive(Debug, Clone)]
pub struct LoadProfile {
    /// The arrival process.
    pub arrivals: ArrivalConfig,
    /// Measured requests to send (count mode).
    pub num_prompts: Option<u64>,
    /// How long to keep sending (duration mode).
    pub duration: Option<Duration>,
    /// Most requests in flight at once.
    pub max_concurrency: Option<usize>,
    /// Requests sent first and excluded from results.
    pub warmup_requests: u64,
    /// Connections opened before the measured window (after any warm-up requests).
    pub warmup_connections: usize,
    /// After an interrupt, how long in-flight requests may take before they are cancelled.
    pub grace: Duration,
    /// Cuts the grace period short: in-flight requests are cancelled at once (a second Ctrl-C).
    pub abort: CancellationToken,
    /// This process runs one shard of the global schedule; `max_concurrency` is then already
    /// the shard's part of the global cap.
    pub shard: Option<ShardPlan>,
    /// Measured time starts at this wall-clock instant (a synchronised start of shards); a
    /// process that gets there late starts at once and reports how late.
    pub start_at: Option<SystemTime>,
}

/// A shard and the global concurrency cap that decides which ordinals are its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardPlan {
    /// Which shard.
    pub shard: Shard,
    /// The global `--max-concurrency`.
    pub global_cap: Option<u64>,
}

impl ShardPlan {
    fn owns(&self, i: u64) -> bool {
        self.shard.owns(i, self.global_cap)
    }

    fn nth(&self, k: u64) -> Option<u64> {
        self.shard.nth(k, self.global_cap)
    }
}

/// What the load loop reports to its consumer.
#[derive(Debug)]
pub enum RunEvent {
    /// A warm-up request finished (not measured).
    Warmup(Box<RequestRecord>),
    /// Warm-up is over; measured time starts at this instant, the epoch of every record's `*_ns`.
    MeasureStart(Instant),
    /// A measured request finished.
    Record(Box<RequestRecord>),
    /// A periodic tick, sent by the pipeline's clock (never by the load loop), so sinks that
    /// sample over time are called on the consumer's thread.
    Tick,
}

/// How the load loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// Measured requests scheduled.
    pub scheduled: u64,
    /// True when `stop` fired before the plan was complete.
    pub interrupted: bool,
    /// The most measured requests in flight at once, between their send and end timestamps.
    pub peak_in_flight: u64,
    /// The wall-clock instant of the epoch, ns since the Unix epoch (0 when measuring never began).
    pub epoch_unix_ns: u64,
    /// How late the epoch was against `start_at`, in ns (negative: early).
    pub late_ns: Option<i64>,
}

/// What the run sends: prompts built before the run, or a trace whose prompts are built as they
/// are sent (a million long prompts would not fit in memory).
#[derive(Debug, Clone)]
pub enum Prompts {
    /// Prompts ready to send; units of work repeat when the run outlasts them.
    Built(Arc<[Prompt]>),
    /// A replayed trace: request `i` is the trace's request `i`.
    Trace(Arc<TraceSet>),
}

impl From<Vec<Prompt>> for Prompts {
    fn from(v: Vec<Prompt>) -> Self {
        Prompts::Built(v.into())
    }
}

impl From<Arc<[Prompt]>> for Prompts {
    fn from(v: Arc<[Prompt]>) -> Self {
        Prompts::Built(v)
    }
}

impl Prompts {
    fn is_empty(&self) -> bool {
        match self {
            Prompts::Built(p) => p.is_empty(),
            Prompts::Trace(t) => t.is_empty(),
        }
    }
}

/// Runs the plan. Records arrive on `tx` as requests complete; `stop` ends scheduling early
/// (in-flight requests then get `plan.grace` to finish before they are cancelled and recorded
/// as such).
pub async fn run_load(
    req: Arc<Requester>,
    prompts: Prompts,
    plan: LoadProfile,
    tx: mpsc::UnboundedSender<RunEvent>,
    stop: CancellationToken,
) -> RunOutcome {
    assert!(!prompts.is_empty(), "run_load needs at least one prompt");
    let hard = CancellationToken::new();
    let tracker = TaskTracker::new();
    let work = Arc::new(Work::new(prompts));

    if plan.warmup_requests > 0 {
        tracing::info!(requests = plan.warmup_requests, "warm-up: sending requests that are not measured");
        let gate = Arc::new(Semaphore::new(plan.max_concurrency.unwrap_or(Semaphore::MAX_PERMITS).min(Semaphore::MAX_PERMITS)));
        let epoch = Instant::now();
        for i in 0..plan.warmup_requests {
            let permit = tokio::select! {
                p = gate.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break, // closed: never, the gate is ours
                },
                _ = stop.cancelled() => break,
            };
            let (req, work, tx, hard) = (req.clone(), work.clone(), tx.clone(), hard.clone());
            tracker.spawn(async move {
                let slot = Slot { id: i, scheduled_ns: 0, gate_ns: 0, warmup: true };
                let rec = req.send(slot, &work.one(i), epoch, &hard).await;
                drop(permit);
                let _ = tx.send(RunEvent::Warmup(Box::new(rec)));
            });
        }
        tracker.close();
        drain(&tracker, &stop, &hard, plan.grace, &plan.abort).await;
        tracker.reopen();
        if stop.is_cancelled() {
            return RunOutcome::stopped();
        }
    }

    if plan.warmup_connections > 0 {
        let opened = tokio::select! {
            r = req.warm_connections(plan.warmup_connections) => r,
            _ = stop.cancelled() => return RunOutcome::stopped(),
        };
        match opened {
            Ok(n) => tracing::info!(opened = n, idle = plan.warmup_connections, "warm-up: connections open"),
            // Not fatal: the requests that find no open connection open their own, and say so.
            Err(e) => tracing::warn!("could not open all {} warm-up connections: {e}", plan.warmup_connections),
        }
    }
    if let Some(at) = plan.start_at {
        tracing::info!(at = ?at, "waiting for the synchronised start");
        let wait = at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        if !sleep_until(Instant::now() + wait, &stop) {
            return RunOutcome::stopped();
        }
    }
    req.reset_peak();
    let epoch = Instant::now();
    let epoch_wall = SystemTime::now();
    let epoch_unix_ns = epoch_wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let late_ns = plan.start_at.map(|at| match epoch_wall.duration_since(at) {
        Ok(late) => late.as_nanos() as i64,
        Err(early) => -(early.duration().as_nanos() as i64),
    });
    let _ = tx.send(RunEvent::MeasureStart(epoch));
    tracing::info!(
        num_prompts = ?plan.num_prompts,
        duration_s = ?plan.duration.map(|d| d.as_secs_f64()),
        max_concurrency = ?plan.max_concurrency,
        rate = ?plan.arrivals.rate,
        "measuring"
    );
    let scheduled = if !plan.arrivals.is_timed() {
        closed_loop(&tracker, &req, &work, &plan, epoch, &tx, &stop, &hard)
    } else {
        open_loop(tracker.clone(), req.clone(), work, &plan, epoch, tx, stop.clone(), hard.clone()).await
    };
    tracker.close();
    drain(&tracker, &stop, &hard, plan.grace, &plan.abort).await;
    RunOutcome {
        scheduled: scheduled.load(Ordering::Relaxed),
        interrupted: stop.is_cancelled(),
        peak_in_flight: req.peak_in_flight(),
        epoch_unix_ns,
        late_ns,
    }
}

impl RunOutcome {
    fn stopped() -> Self {
        Self { scheduled: 0, interrupted: true, peak_in_flight: 0, epoch_unix_ns: 0, late_ns: None }
    }
}

/// Infinite rate: every request is due at once, and `--max-concurrency` (or the request count)
/// decides how many run. That many worker tasks each send their next request as soon as the last
/// one ends: no timer, no semaphore, no hand-off between threads per request.
#[allow(clippy::too_many_arguments)]
fn closed_loop(
    tracker: &TaskTracker,
    req: &Arc<Requester>,
    work: &Arc<Work>,
    plan: &LoadProfile,
    epoch: Instant,
    tx: &mpsc::UnboundedSender<RunEvent>,
    stop: &CancellationToken,
    hard: &CancellationToken,
) -> Arc<AtomicU64> {
    let next = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    // A shard's own units of work below the global count (all of them when not sharded).
    let own = |n: u64| plan.shard.map_or(n, |s| s.shard.owned_below(n, s.global_cap));
    let workers = match (plan.max_concurrency, plan.num_prompts) {
        (Some(c), Some(n)) => (c as u64).min(own(n)),
        (Some(c), None) => c as u64,
        (None, Some(n)) => own(n),
        (None, None) => unreachable!("validated: an infinite rate needs a request count or a concurrency cap"),
    };
    for _ in 0..workers {
        let (req, work, tx, stop, hard, next, sent) =
            (req.clone(), work.clone(), tx.clone(), stop.clone(), hard.clone(), next.clone(), sent.clone());
        let (limit, duration, capped, shard) = (plan.num_prompts, plan.duration, plan.max_concurrency.is_some(), plan.shard);
        tracker.spawn(async move {
            while !stop.is_cancelled() {
                let now = Instant::now();
                if duration.is_some_and(|d| now - epoch >= d) {
                    break;
                }
                let k = next.fetch_add(1, Ordering::Relaxed);
                // The k-th unit of work of this shard is global ordinal i: records carry i, so the
                // shards' records together number 0 … n−1 exactly once.
                let Some(i) = shard.map_or(Some(k), |s| s.nth(k)) else { break };
                if limit.is_some_and(|n| i >= n) {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                // With a cap, a request is due the moment a slot frees (closed loop), so the
                // scheduling lag is the client's delay in using that slot. Without one, every
                // request is due at the start and the lag is how long the client took to send it.
                let due_ns = if capped { now.duration_since(epoch).as_nanos() as u64 } else { 0 };
                let slot = Slot::new(i, due_ns, due_ns);
                if !run_job(&req, &work.job(i), slot, epoch, &hard, &tx).await {
                    break;
                }
            }
        });
    }
    sent
}

/// Finite rate: a dedicated thread sleeps to each arrival instant and hands the request to the
/// runtime, behind the optional concurrency gate.
#[allow(clippy::too_many_arguments)]
async fn open_loop(
    tracker: TaskTracker,
    req: Arc<Requester>,
    work: Arc<Work>,
    plan: &LoadProfile,
    epoch: Instant,
    tx: mpsc::UnboundedSender<RunEvent>,
    stop: CancellationToken,
    hard: CancellationToken,
) -> Arc<AtomicU64> {
    let gate = plan.max_concurrency.map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
    let handle = tokio::runtime::Handle::current();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let plan = plan.clone();
    // Justified: a thread fails to start only when the OS is out of threads, which no input
    // causes; `std::thread::spawn` panics the same way.
    #[allow(clippy::expect_used)]
    std::thread::Builder::new()
        .name("inferbench-scheduler".into())
        .spawn(move || {
            let n = schedule(&handle, &tracker, &req, &work, &plan, gate, epoch, &tx, &stop, &hard);
            let _ = done_tx.send(n);
        })
        .expect("spawning the scheduler thread");
    // The sender is dropped unsent only if `schedule` panicked; its message is already printed.
    let scheduled = done_rx.await.unwrap_or_else(|_| {
        tracing::error!("the scheduler thread died; the scheduled count is unknown");
        0
    });
    Arc::new(AtomicU64::new(scheduled))
}

/// The prompts and how they group into units of work: a single prompt, or the turns of one
/// conversation (consecutive prompts numbered turn 0, 1, 2, ...).
#[derive(Debug)]
struct Work {
    prompts: Prompts,
    jobs: Vec<Range<usize>>,
}

impl Work {
    fn new(prompts: Prompts) -> Self {
        let mut jobs: Vec<Range<usize>> = Vec::new();
        if let Prompts::Built(built) = &prompts {
            jobs.reserve(built.len());
            for (i, p) in built.iter().enumerate() {
                match (p.turn, jobs.last_mut()) {
                    (Some(t), Some(last)) if t > 0 => last.end = i + 1,
                    _ => jobs.push(i..i + 1),
                }
            }
        }
        Self { prompts, jobs }
    }

    /// The prompts of unit `i` (units repeat when the run outlasts them); a trace's request is
    /// built here, in the request's own task.
    fn job(&self, i: u64) -> Cow<'_, [Prompt]> {
        match &self.prompts {
            Prompts::Built(p) => Cow::Borrowed(&p[self.jobs[i as usize % self.jobs.len()].clone()]),
            Prompts::Trace(t) => Cow::Owned(vec![t.prompt(i as usize)]),
        }
    }

    /// A single prompt for warm-up request `i`.
    fn one(&self, i: u64) -> Cow<'_, Prompt> {
        match &self.prompts {
            Prompts::Built(p) => Cow::Borrowed(&p[i as usize % p.len()]),
            Prompts::Trace(t) => Cow::Owned(t.prompt(i as usize)),
        }
    }
}

/// Runs one unit of work and reports its records; false once nobody is listening. A
/// conversation's turns go one after another, each with the history so far (earlier user turns
/// and the server's actual answers) and due the moment the previous answer ended; a failed turn
/// ends its session.
async fn run_job(
    req: &Requester,
    turns: &[Prompt],
    slot: Slot,
    epoch: Instant,
    hard: &CancellationToken,
    tx: &mpsc::UnboundedSender<RunEvent>,
) -> bool {
    if let [single] = turns {
        let rec = req.send(slot, single, epoch, hard).await;
        return tx.send(RunEvent::Record(Box::new(rec))).is_ok();
    }
    let mut history: Vec<ChatMessage> = Vec::new();
    let mut slot = slot;
    for (k, p) in turns.iter().enumerate() {
        history.push(ChatMessage { role: "user".into(), content: p.text.clone() });
        let text = history.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
        let turn = Prompt {
            text,
            input_tokens: 0,
            output_tokens: p.output_tokens,
            category: Some(p.category.clone().unwrap_or_else(|| format!("turn-{k}"))),
            messages: Some(history.clone()),
            turn: Some(k as u32),
        };
        let (mut rec, reply) = req.send_with_text(slot, &turn, epoch, hard).await;
        if rec.input_tokens == 0 {
            rec.input_tokens = req.count(&turn.text); // the server reported no usage
        }
        let (ok, end) = (rec.is_success(), rec.end_ns);
        if tx.send(RunEvent::Record(Box::new(rec))).is_err() {
            return false;
        }
        if !ok || hard.is_cancelled() {
            break;
        }
        history.push(ChatMessage { role: "assistant".into(), content: reply });
        slot = Slot::new(slot.id, end, end);
    }
    true
}

/// Waits for in-flight requests; after an interrupt, cancels what outlives the grace period.
async fn drain(tracker: &TaskTracker, stop: &CancellationToken, hard: &CancellationToken, grace: Duration, abort: &CancellationToken) {
    tokio::select! {
        _ = tracker.wait() => {}
        _ = stop.cancelled() => {
            tracing::info!(in_flight = tracker.len(), grace_s = grace.as_secs_f64(), "interrupted: waiting for requests in flight");
            let finished = tokio::select! {
                r = tokio::time::timeout(grace, tracker.wait()) => r.is_ok(),
                () = abort.cancelled() => false,
            };
            if !finished {
                tracing::info!(in_flight = tracker.len(), "cancelling the requests still in flight");
                hard.cancel();
                tracker.wait().await;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn schedule(
    handle: &tokio::runtime::Handle,
    tracker: &TaskTracker,
    req: &Arc<Requester>,
    work: &Arc<Work>,
    plan: &LoadProfile,
    gate: Option<Arc<Semaphore>>,
    epoch: Instant,
    tx: &mpsc::UnboundedSender<RunEvent>,
    stop: &CancellationToken,
    hard: &CancellationToken,
) -> u64 {
    let mut arrivals = Arrivals::new(plan.arrivals.clone());
    let (mut i, mut sent): (u64, u64) = (0, 0);
    while plan.num_prompts.is_none_or(|n| i < n) {
        let Some(offset) = arrivals.next() else { break };
        if plan.duration.is_some_and(|d| offset >= d.as_secs_f64()) {
            break;
        }
        // Every shard draws the whole global sequence (so the arrival times are the same
        // everywhere) and sends only its own ordinals.
        if plan.shard.is_some_and(|s| !s.owns(i)) {
            i += 1;
            continue;
        }
        let at = epoch + Duration::from_secs_f64(offset);
        if !sleep_until(at, stop) {
            break;
        }
        let permit = match &gate {
            None => None,
            Some(g) => {
                let acquired = handle.block_on(async {
                    tokio::select! {
                        p = g.clone().acquire_owned() => p.ok(),
                        _ = stop.cancelled() => None,
                    }
                });
                match acquired {
                    Some(p) => Some(p),
                    None => break,
                }
            }
        };
        let now = Instant::now();
        let ns = |t: Instant| t.saturating_duration_since(epoch).as_nanos() as u64;
        let slot = Slot::new(i, ns(at), ns(now.max(at)));
        let (req, work, tx, hard) = (req.clone(), work.clone(), tx.clone(), hard.clone());
        tracker.spawn_on(
            async move {
                run_job(&req, &work.job(i), slot, epoch, &hard, &tx).await;
                drop(permit);
            },
            handle,
        );
        i += 1;
        sent += 1;
    }
    sent
}

/// Sleeps until `at` in slices, so an interrupt is noticed within 50 ms. False when interrupted.
fn sleep_until(at: Instant, stop: &CancellationToken) -> bool {
    loop {
        if stop.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        std::thread::sleep((at - now).min(Duration::from_millis(50)));
    }
}
