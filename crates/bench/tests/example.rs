//! The library example runs as part of the tests, so it cannot rot: a full run whose sink sees
//! every record, and a run cancelled halfway that keeps what it measured.

#[path = "../examples/library.rs"]
#[allow(dead_code)] // `main` is the example's own entry point
mod example;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_example_runs_and_cancels_halfway() {
    let (seen, full, half) = example::runs().await.expect("the example runs against the in-process simulator");
    assert_eq!(seen, 40, "the custom sink sees every record as it completes");
    assert_eq!((full.summary.completed, full.summary.failed), (40, 0));
    assert!(!full.interrupted);
    assert_eq!(full.summary.total_output_tokens, 40 * 16, "vllm backend: exact output lengths");
    assert!(half.interrupted, "the second run was cancelled");
    let done = half.summary.completed + half.summary.failed;
    assert!((20..40).contains(&done), "cancelled after 20 records, with up to 4 in flight: {done}");
}
