//! inferbench as a library: start the simulator in process, run a serving benchmark through a
//! custom sink that counts records as they arrive, cancel a second run halfway, print both.
use inferbench_bench::{Benchmark, RunOptions};
use inferbench_core::spec::{DatasetSpec, RunSpec};
use inferbench_core::{BenchmarkResult, RecordSink, RequestRecord, SinkError};
use std::sync::{atomic::AtomicU64, atomic::Ordering::Relaxed, Arc};
use tokio_util::sync::CancellationToken;

/// Counts records as they complete, and cancels the run once it has seen `cancel_after`.
struct Counter(Arc<AtomicU64>, Option<(u64, CancellationToken)>);
impl RecordSink for Counter {
    fn record(&mut self, _: &RequestRecord) -> Result<(), SinkError> {
        let n = self.0.fetch_add(1, Relaxed) + 1;
        self.1.as_ref().filter(|(after, _)| n >= *after).inspect(|(_, t)| t.cancel());
        Ok(())
    }
}

/// Both runs: the records the first run's sink counted, the full result, the cancelled one.
pub async fn runs() -> Result<(u64, BenchmarkResult, BenchmarkResult), Box<dyn std::error::Error>> {
    let sim = Arc::new(inferbench_server::Simulator::new(inferbench_server::SimConfig { itl_ms: 2.0, ..Default::default() })?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(inferbench_server::serve(listener, sim, None, None, std::future::pending()));
    let mut spec = RunSpec::new(&url);
    (spec.backend, spec.dataset, spec.num_prompts, spec.max_concurrency) = ("vllm".into(), DatasetSpec::random(32, 16), Some(40), Some(4));
    let (seen, stop) = (Arc::new(AtomicU64::new(0)), CancellationToken::new());
    let full = Benchmark::serving(spec.clone(), RunOptions::default())?.with_sink(Counter(seen.clone(), None)).run().await?;
    let half = Benchmark::serving(spec, RunOptions::default())?.with_sink(Counter(Arc::new(AtomicU64::new(0)), Some((20, stop.clone()))));
    Ok((seen.load(Relaxed), full, half.cancel_on(stop).run().await?))
}

/// Prints both results.
#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (seen, full, half) = runs().await?;
    println!("full: sink saw {seen}, {} completed, {:.1} tok/s", full.summary.completed, full.summary.output_throughput);
    println!("cancelled: interrupted={}, {} of 40 completed", half.interrupted, half.summary.completed);
    Ok(())
}
