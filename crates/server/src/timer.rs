//! A sub-millisecond timer for the simulator. Tokio's timer wheel fires on 1 ms ticks, so a
//! simulated 8 ms gap would come out 8–10 ms; one thread sleeping on a futex to the earliest
//! deadline wakes within tens of microseconds, which keeps the injected latencies honest.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::OnceLock;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::oneshot;

const TICK: Duration = Duration::from_millis(1);

struct Entry(Instant, u64, oneshot::Sender<()>);

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(o.0, o.1))
    }
}

/// A wake-up request: the instant, and whom to tell.
type Wake = (Instant, oneshot::Sender<()>);

fn timer_thread() -> &'static std::sync::Mutex<Sender<Wake>> {
    static TX: OnceLock<std::sync::Mutex<Sender<Wake>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = channel::<Wake>();
        // Without the thread, `rx` is dropped, every send fails, and `sleep_until` falls back
        // to tokio's millisecond timer.
        let spawned = std::thread::Builder::new().name("inferbench-sim-timer".into()).spawn(move || {
            let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
            let mut seq = 0u64;
            loop {
                let now = Instant::now();
                while let Some(top) = heap.peek_mut() {
                    if top.0 .0 > now {
                        break;
                    }
                    let Reverse(Entry(_, _, done)) = std::collections::binary_heap::PeekMut::pop(top);
                    let _ = done.send(());
                }
                let next = match heap.peek() {
                    // Wake at least every millisecond while anything is pending: a virtual CPU
                    // left idle for longer takes ~0.5 ms to wake, which would skew TTFT.
                    Some(Reverse(e)) => rx.recv_timeout(e.0.saturating_duration_since(now).min(TICK)),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match next {
                    Ok((at, done)) => {
                        seq += 1;
                        heap.push(Reverse(Entry(at, seq, done)));
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("no simulator timer thread ({e}); delays fall back to tokio's timer");
        }
        std::sync::Mutex::new(tx)
    })
}

/// Waits until `at` with sub-millisecond precision.
pub async fn sleep_until(at: Instant) {
    if at <= Instant::now() {
        return;
    }
    let (tx, rx) = oneshot::channel();
    let sent = timer_thread().lock().map(|t| t.send((at, tx)).is_ok()).unwrap_or(false);
    if !sent || rx.await.is_err() {
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_close_to_the_deadline() {
        let mut worst = Duration::ZERO;
        for i in 0..20u64 {
            let at = Instant::now() + Duration::from_micros(2_000 + 137 * i);
            sleep_until(at).await;
            let late = Instant::now() - at;
            worst = worst.max(late);
        }
        // Generous bound for a loaded CI machine; typical lateness is under 0.1 ms.
        eprintln!("worst lateness {worst:?}");
        assert!(worst < Duration::from_millis(5), "worst lateness {worst:?}");
    }
}
