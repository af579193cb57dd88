//! The engine-event → [`RequestRecord`] adapter: each request's token timeline, timestamped on the
//! engine thread as tokens are emitted, becomes the same record a serving run makes, fed to the
//! same sinks (the JSONL writer, the caller's own) as each request completes.

use super::Result;
use crate::error::{BenchError, Context};
use inferbench_core::engine_bench::Trace;
use inferbench_core::record::{Outcome, RequestRecord, TokenSource};
use inferbench_core::summary::{Summary, SummaryOptions};
use inferbench_core::RecordSink;
use inferbench_engine::{Engine, Event, EventSink, Request};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

/// Timestamps events on the engine thread as they are emitted.
pub(super) struct Timed(pub(super) mpsc::Sender<(Instant, Event)>);

impl EventSink for Timed {
    fn send(&mut self, ev: Event) -> bool {
        self.0.send((Instant::now(), ev)).is_ok()
    }
}

fn submit(e: &Engine, prompt: &[u32], out: usize) -> Result<(Instant, mpsc::Receiver<(Instant, Event)>)> {
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    e.submit(Request { prompt: prompt.to_vec(), max_tokens: out, ignore_eos: true, ..Default::default() }, Box::new(Timed(tx)))
        .map_err(|err| BenchError::failed(err.to_string()))?;
    Ok((t0, rx))
}

struct Inner {
    next_id: u64,
    sinks: Vec<Box<dyn RecordSink>>,
    kept: Vec<RequestRecord>,
}

/// Turns timelines into records, feeds them to the sinks and keeps them for the summaries.
pub struct Recorder {
    epoch: Instant,
    inner: Mutex<Inner>,
    cancel: tokio_util::sync::CancellationToken,
}

impl Recorder {
    /// A recorder feeding `sinks`; its clock starts now.
    pub fn new(mut sinks: Vec<Box<dyn RecordSink>>) -> Self {
        let epoch = Instant::now();
        sinks.iter_mut().for_each(|s| s.measure_start(epoch));
        Self { epoch, inner: Mutex::new(Inner { next_id: 0, sinks, kept: Vec::new() }), cancel: Default::default() }
    }

    /// Stops taking records once `token` is cancelled: the section measuring then ends with a
    /// `cancelled` error and the next ones end at their first request; what was recorded stays.
    pub fn cancel_on(mut self, token: tokio_util::sync::CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// True once the benchmark was cancelled: sections stop at their next request.
    pub fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn add(&self, t0: Instant, tokens: &[Instant], input: usize, category: &str) -> Result<()> {
        if self.cancel.is_cancelled() {
            return Err(crate::BenchError::failed("cancelled"));
        }
        self.add_run(t0, tokens, input, tokens.len(), category)
    }

    /// Records one timed run that did not go through the scheduler: `marks` are the instants its
    /// steps ended (the first is the "first token"), `output` the tokens it generated (0 for a
    /// prompt-processing run, whose one mark is the end of the prefill). Taken even after a
    /// cancel: the caller stops at its next repetition, and the one finished is kept.
    pub(super) fn add_run(&self, t0: Instant, marks: &[Instant], input: usize, output: usize, category: &str) -> Result<()> {
        let tokens = marks;
        let ns = |t: Instant| t.saturating_duration_since(self.epoch).as_nanos() as u64;
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let rec = RequestRecord {
            id: g.next_id,
            scheduled_ns: ns(t0),
            gate_ns: ns(t0),
            sent_ns: ns(t0),
            connect_ns: 0,
            reused: None,
            first_token_ns: tokens.first().map(|&t| ns(t)),
            end_ns: tokens.last().map_or(ns(t0), |&t| ns(t)),
            itl_ns: tokens.windows(2).map(|w| (w[1] - w[0]).as_nanos() as u64).collect(),
            input_tokens: input as u64,
            output_tokens: output as u64,
            token_source: TokenSource::Engine,
            cached_tokens: None,
            client_count: None,
            requested_output_tokens: None,
            outcome: Outcome::Success,
            category: Some(category.to_owned()),
            turn: None,
            generated_text: None,
        };
        g.next_id += 1;
        for s in g.sinks.iter_mut() {
            if let Err(e) = s.record(&rec).and_then(|()| s.flush()) {
                return Err(BenchError::failed(format!("writing a record: {e}")));
            }
        }
        g.kept.push(rec);
        Ok(())
    }

    /// The summary of the records whose category starts with `prefix`.
    pub fn summary(&self, prefix: &str) -> Summary {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Summary::from_records(
            g.kept.iter().filter(|r| r.category.as_deref().is_some_and(|c| c.starts_with(prefix))),
            &SummaryOptions::default(),
        )
    }

    /// Tells every sink the run is over.
    pub fn finish(&self) -> Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for s in g.sinks.iter_mut() {
            s.finish().map_err(|e| BenchError::failed(format!("writing a record: {e}")))?;
        }
        Ok(())
    }
}

fn collect(t0: Instant, rx: mpsc::Receiver<(Instant, Event)>, input: usize, rec: &Recorder, category: &str) -> Result<Trace> {
    let (mut first, mut last, mut n) = (None, t0, 0usize);
    let mut times = Vec::new();
    for (at, ev) in rx {
        match ev {
            Event::Token { .. } => {
                first.get_or_insert(at);
                last = at;
                n += 1;
                times.push(at);
            }
            Event::Finished { .. } => break,
            Event::Failed(m) => return Err(BenchError::failed(format!("the engine failed a request: {m}"))),
        }
    }
    let first = first.ctx("a request produced no token")?;
    rec.add(t0, &times, input, category)?;
    let decode = if n > 1 { (n - 1) as f64 / (last - first).as_secs_f64().max(1e-9) } else { 0.0 };
    Ok(Trace {
        input_tokens: input,
        output_tokens: n,
        ttft_ms: (first - t0).as_secs_f64() * 1e3,
        e2e_ms: (last - t0).as_secs_f64() * 1e3,
        decode_tok_s: decode,
    })
}

/// Submits every prompt at once and waits for all of them; one trace each, in order.
pub fn run_together(e: &Engine, prompts: &[Vec<u32>], out: usize, rec: &Recorder, category: &str) -> Result<Vec<Trace>> {
    let pending: Vec<_> = prompts.iter().map(|p| submit(e, p, out).map(|s| (s, p.len()))).collect::<Result<_>>()?;
    pending.into_iter().map(|((t0, rx), n)| collect(t0, rx, n, rec, category)).collect()
}
