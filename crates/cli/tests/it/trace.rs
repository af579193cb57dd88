//! Trace replay end to end: a Mooncake trace the test writes, replayed against the simulator
//! with its prefix cache on; arrivals, lengths and the prefix sharing of equal hash ids checked.

use crate::harness::{run, Sim};

#[test]
fn a_mooncake_trace_is_replayed_at_its_times_with_its_lengths_and_shared_blocks() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1", "--enable-prefix-caching"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.jsonl");
    // (timestamp ms, input, output, hash ids)
    let rows: [(u64, u32, u32, &[u32]); 5] =
        [(5000, 1000, 3, &[1, 2]), (5200, 1500, 2, &[1, 2, 3]), (5200, 700, 2, &[1, 5]), (5600, 100, 4, &[7]), (6000, 1400, 2, &[1, 2, 3])];
    let text: String = rows
        .iter()
        .map(|(t, i, o, h)| format!("{{\"timestamp\": {t}, \"input_length\": {i}, \"output_length\": {o}, \"hash_ids\": {h:?}}}\n"))
        .collect();
    std::fs::write(&path, text).unwrap();
    let r = run(
        &sim.url,
        &[
            "--backend",
            "vllm",
            "--dataset-name",
            "trace",
            "--trace-format",
            "mooncake",
            "--dataset-path",
            path.to_str().unwrap(),
            "--trace-speedup",
            "2",
        ],
    );
    let j = r.assert_ok().json();
    assert_eq!(j["completed"], 5, "the whole trace, not a default count");
    assert_eq!(j["spec"]["dataset"]["trace_format"], "mooncake");
    let mut recs = r.records();
    recs.sort_by_key(|x| x["id"].as_u64().unwrap());
    let offsets_s = [0.0, 0.1, 0.1, 0.3, 0.5];
    for (k, (rec, (_, input, output, _))) in recs.iter().zip(rows).enumerate() {
        let at = rec["scheduled_ns"].as_f64().unwrap() / 1e9;
        assert!((at - offsets_s[k]).abs() < 1e-6, "request {k} scheduled at {at} s, the trace says {} s", offsets_s[k]);
        assert_eq!(rec["input_tokens"], input, "request {k}: the server counts the traced prompt length");
        assert_eq!(rec["output_tokens"], output, "request {k}");
    }
    // The simulator caches 16-token blocks. Request 1 holds request 0's whole prompt (blocks 1
    // and the first 488 tokens of 2): 62 blocks. Request 2 shares only block 1 (512 tokens);
    // request 3 nothing; request 4 is a prefix of request 1: 87 whole blocks.
    let cached: Vec<u64> = recs.iter().map(|x| x["cached_tokens"].as_u64().unwrap()).collect();
    assert_eq!(cached, vec![0, 992, 512, 0, 1392]);
    let lag = j["summary"]["metrics"]["lag"]["mean"].as_f64().unwrap();
    assert!(lag < 50.0, "scheduling lag is reported as for any arrival process: {lag} ms");
}

#[test]
fn trace_flags_are_checked() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    std::fs::write(&path, "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.5,20,2\n").unwrap();
    let p = path.to_str().unwrap();
    for (flags, says) in [
        (vec!["--dataset-name", "trace", "--dataset-path", p], "needs --trace-format"),
        (vec!["--dataset-name", "trace", "--trace-format", "azure", "--dataset-path", p, "--request-rate", "5"], "traced time"),
        (vec!["--trace-format", "azure"], "need --dataset-name trace"),
        (vec!["--dataset-name", "trace", "--trace-format", "azure", "--dataset-path", p, "--trace-window", "5:1"], "--trace-window"),
        (vec!["--dataset-name", "trace", "--trace-format", "mooncake", "--dataset-path", p], "not a Mooncake trace line"),
    ] {
        let r = run(&sim.url, &flags);
        let err = r.stderr();
        assert!(matches!(r.out.status.code(), Some(1 | 2)), "{flags:?}: {err}");
        assert!(err.contains(says), "{flags:?} should say {says:?}: {err}");
        assert_eq!(err.matches("error:").count(), 1, "one line: {err}");
    }
    let ok = run(&sim.url, &["--dataset-name", "trace", "--trace-format", "azure", "--dataset-path", p]);
    assert_eq!(ok.assert_ok().json()["completed"], 1);
}
