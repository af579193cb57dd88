//! Datasets from files, end to end: per-category results, chat conversations, clear errors.

use crate::harness::{run, Sim};

#[test]
fn prompts_file_gives_per_category_results() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prompts.txt");
    std::fs::write(&path, "# code\nwrite a sort in C\nwrite a parser\n# chat\nhello there\n").unwrap();
    let p = path.to_str().unwrap();
    let r = run(&sim.url, &["--dataset-name", "prompts", "--dataset-path", p, "--num-prompts", "6", "--fixed-output-len", "5"]);
    let j = r.assert_ok().json();
    assert_eq!(j["completed"], 6);
    assert_eq!(j["total_output_tokens"], 30);
    let cats = &j["summary"]["categories"];
    assert_eq!(cats["code"]["completed"].as_u64().unwrap() + cats["chat"]["completed"].as_u64().unwrap(), 6);
    assert_eq!(j["dataset"]["available"], 3);
    assert_eq!(j["dataset"]["oversampled"], true);
    assert_eq!(j["spec"]["dataset"]["name"], "prompts");
    assert!(r.stdout().contains("Per category"), "{}", r.stdout());
    assert!(r.stderr().contains("prompts repeat"));
    assert!(r.records().iter().all(|r| r["category"].is_string()));
}

#[test]
fn jsonl_conversations_go_to_chat_as_messages() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.jsonl");
    let line = r#"{"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a prime."}], "output_tokens": 7}"#;
    std::fs::write(&path, format!("{line}\n")).unwrap();
    let p = path.to_str().unwrap();
    let r = run(&sim.url, &["--backend", "openai-chat", "--dataset-name", "jsonl", "--dataset-path", p, "--num-prompts", "2"]);
    let j = r.assert_ok().json();
    assert_eq!(j["total_output_tokens"], 14);
    // The simulator counts the messages' contents: both messages arrived.
    let tok_count = j["total_input_tokens"].as_u64().unwrap();
    assert_eq!(tok_count, 2 * 7, "'You are terse.' + 'Name a prime.' are 4 + 3 tokens in cl100k_base");
}

#[test]
fn builtin_set_is_the_default() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let r = run(&sim.url, &["--num-prompts", "10", "--fixed-output-len", "3"]);
    let j = r.assert_ok().json();
    assert_eq!(j["spec"]["dataset"]["name"], "builtin");
    assert!(j["summary"]["categories"].as_object().unwrap().len() >= 2);
}

#[test]
fn bad_dataset_files_are_named_with_their_line() {
    let _machine = crate::harness::machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, "{\"prompt\": \"fine\"}\n{\"prompt\": }\n").unwrap();
    let sim = Sim::start(&[]);
    let r = run(&sim.url, &["--dataset-name", "jsonl", "--dataset-path", path.to_str().unwrap(), "--num-prompts", "2"]);
    let err = r.stderr();
    assert!(!r.out.status.success());
    assert!(err.contains("bad.jsonl:2:"), "{err}");
    assert_eq!(err.lines().filter(|l| !l.trim().is_empty()).count(), 1, "{err}");
    let r = run(&sim.url, &["--dataset-name", "sharegpt", "--num-prompts", "2"]);
    assert!(r.stderr().contains("needs --dataset-path"), "{}", r.stderr());
}

#[test]
fn multi_turn_sessions_carry_their_history() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let r = run(
        &sim.url,
        &[
            "--backend",
            "openai-chat",
            "--dataset-name",
            "multi-turn",
            "--turns",
            "3",
            "--random-input-len",
            "10",
            "--fixed-output-len",
            "5",
            "--num-prompts",
            "4",
            "--max-concurrency",
            "2",
        ],
    );
    let j = r.assert_ok().json();
    assert_eq!(j["completed"], 12, "4 sessions of 3 turns");
    let mut recs = r.records();
    recs.sort_by_key(|r| (r["id"].as_u64().unwrap(), r["turn"].as_u64().unwrap()));
    for s in recs.chunks(3) {
        let inputs: Vec<u64> = s.iter().map(|r| r["input_tokens"].as_u64().unwrap()).collect();
        // Turn k sees k+1 user messages of 10 tokens and k answers of 5 tokens (the simulator
        // counts the messages' contents).
        assert_eq!(inputs, [10, 25, 40], "history grows turn by turn");
        // Each turn starts after the previous one ended.
        for w in s.windows(2) {
            assert!(w[1]["sent_ns"].as_u64() >= w[0]["end_ns"].as_u64());
            assert_eq!(w[1]["scheduled_ns"], w[0]["end_ns"]);
        }
    }
    let cats = &j["summary"]["categories"];
    assert_eq!(cats["turn-2"]["completed"], 4);
}
