//! The "Examples" block of each subcommand's `--help`. Every line runs as written against
//! `inferbench serve --sim --port 8000`, in order within one directory (later examples read the
//! files earlier ones wrote): `tests/it/docs.rs` runs them, so they cannot rot. Lines marked
//! `# minutes` are only checked (their flags exist, their files are there), not run.

/// How scripts read the outcome; the same for every subcommand.
macro_rules! exit_codes {
    () => {
        "\nExit codes: 0 success, 1 error, 2 bad usage (a bad flag, spec or file), 3 a gate failed \
         (--fail-on-regression, a missed engine --target, --max-error-rate), 130 interrupted (what was \
         measured is written)."
    };
}

/// `inferbench run`.
pub const RUN: &str = concat!(
    "Examples (start `inferbench serve --sim --port 8000` first to try them):
  inferbench run --base-url http://127.0.0.1:8000 --backend vllm --num-prompts 100 \\
      --request-rate 20 --result-filename base
  inferbench run --base-url http://127.0.0.1:8000 --backend openai-chat --dataset-name builtin \\
      --num-prompts 20 --max-concurrency 4
  inferbench run --base-url http://127.0.0.1:8000 --duration 3 --request-rate 10 \\
      --random-input-len 256 --random-output-len 32
  inferbench run --spec results/base.json --result-filename again
",
    exit_codes!()
);

/// `inferbench sweep`.
pub const SWEEP: &str = concat!(
    "Examples:
  inferbench sweep --base-url http://127.0.0.1:8000 --backend vllm --concurrencies 1,4,16 \\
      --num-prompts 32 --random-output-len 32 --slo ttft:p99:500 --result-filename s
  inferbench sweep --base-url http://127.0.0.1:8000 --rates 20,40 --num-prompts 40 --repeat 2 \\
      --random-output-len 32
",
    exit_codes!()
);

/// `inferbench plan`.
pub const PLAN: &str = concat!(
    "Examples (from the first `sweep --help` example's results):
  inferbench plan results/s.sweep.json --target-rate 50 --price-per-hour 2.50
  inferbench plan results/s.sweep.json --users 100 --headroom 30% --what-if \"ttft:p99:200\"
",
    exit_codes!()
);

/// `inferbench compare`.
pub const COMPARE: &str = concat!(
    "Examples (from the `run --help` examples' results):
  inferbench compare results/base.json results/again.json
  inferbench compare results/base.json results/again.json --fail-on-regression 5% --markdown
",
    exit_codes!()
);

/// `inferbench dataset`.
pub const DATASET: &str = concat!(
    "Examples:
  inferbench dataset --random-input-len 512 --num-prompts 100
  inferbench dataset --dataset-name builtin --num-prompts 50 --save prompts.jsonl
  inferbench dataset --dataset-name jsonl --dataset-path prompts.jsonl --num-prompts 50
",
    exit_codes!()
);

/// `inferbench report`.
pub const REPORT: &str = concat!(
    "Examples:
  inferbench report results/run.json --format html          (writes results/run.html)
  inferbench report results/*.json --format md -o reports/
  inferbench report results/sweep.sweep.json                (the sweep's table and conclusions)
",
    exit_codes!()
);

/// `inferbench history`.
pub const HISTORY: &str = concat!(
    "Examples:
  inferbench history --metric ttft_p99
  inferbench history --metric output_throughput --model my-model --label team=perf --html trend.html
  inferbench store import results/          (index results written before)
",
    exit_codes!()
);

/// `inferbench merge`.
pub const MERGE: &str = concat!(
    "Examples:
  # four shards of one global schedule, started together, then merged
  T=$(( $(date +%s) + 10 ))
  for i in 0 1 2 3; do
    inferbench run --request-rate 200 --num-prompts 2000 --shard $i/4 --start-at $T \\
        --result-dir shards --result-filename shard-$i &
  done; wait
  inferbench merge shards/ -o merged.json --html
  inferbench merge shards/ -o merged.json --from-state   (without the records: percentiles within 0.1 %)
",
    exit_codes!()
);

/// `inferbench api`.
pub const API: &str = concat!(
    "Examples:
  inferbench api --port 8080
  inferbench api --port 8080 --result-dir api-results --store api.sqlite

Then open http://127.0.0.1:8080/ for the dashboard, or:
  curl -X POST http://127.0.0.1:8080/api/v1/benchmarks \\
      -d '{\"kind\": \"run\", \"server\": \"simulator\", \"spec\": {\"num_prompts\": 50, \"max_concurrency\": 8}}'
  curl http://127.0.0.1:8080/api/v1/benchmarks            (the list; /{id} for one, /{id}/events to watch)
  curl -X POST http://localhost:8080/api/benchmark -d '{\"model_name\": \"SmolLM2-135M-Instruct\", \"test_types\": [\"latency\", \"memory\"]}'
The routes are in http://127.0.0.1:8080/api/openapi.json. With --token T (or INFERBENCH_API_TOKEN)
it may listen on another address, and every /api route needs `Authorization: Bearer T`.
",
    exit_codes!()
);

/// `inferbench import`.
pub const IMPORT: &str = concat!(
    "Examples (peer/ holds other tools' result files):
  inferbench import --from vllm peer/vllm/vllm.json
  inferbench import --from aiperf peer/aiperf/profile_export_aiperf.json -o results/aiperf.json
  inferbench import --from guidellm peer/guidellm/benchmarks.json --label tool=guidellm
  inferbench import --from inference-perf peer/inference-perf/summary_lifecycle_metrics.json
",
    exit_codes!()
);

/// `inferbench explore`.
pub const EXPLORE: &str = concat!(
    "Examples (config/ holds the example explorations):
  inferbench explore --config config/explore-sim.yaml
  inferbench explore --config config/explore-sim.yaml --design adaptive --output-dir results/climb
  inferbench explore --config config/explore-sim.yaml --design random --n 4 --seed 1 \\
      --constraint 'tpot_p99 <= 20' --output-dir results/random
  inferbench explore --config config/explore-embedded.yaml     # minutes
",
    exit_codes!()
);

/// `inferbench k8s`.
pub const K8S: &str = concat!(
    "Examples:
  inferbench k8s render --shards 8 --image ghcr.io/me/inferbench:0.1 --namespace bench \\
      --api-key-secret openai-key -- --base-url http://vllm:8000 --request-rate 400 --duration 300
  kubectl apply -k k8s/            (then: kubectl -n bench logs job/inferbench-merge)
  inferbench k8s run-local k8s/ --start-at +5     (the same pods, here, as processes)
",
    exit_codes!()
);

/// `inferbench serve`.
pub const SERVE: &str = concat!(
    "Examples:
  inferbench serve --sim --port 8000
  inferbench serve --sim --port 8000 --itl-ms 20 --max-num-seqs 8 --error-rate 0.01
  inferbench serve --port 8000
  inferbench serve --model SmolLM2-135M-Instruct --port 8000 --max-num-seqs 8 \\
      --max-prefill-tokens-while-decoding 16
  inferbench serve --port 8000 --quantization f32 --draft-model SmolLM2-135M-Instruct \\
      --draft-quantization q4_1 --num-speculative-tokens 4
",
    exit_codes!()
);

/// `inferbench demo`.
pub const DEMO: &str = concat!(
    "Examples:
  inferbench demo --sim
  inferbench demo --concurrency 1,2 --num-prompts 4
  inferbench demo   # minutes
",
    exit_codes!()
);

/// `inferbench engine`.
pub const ENGINE: &str = concat!(
    "Examples:
  inferbench engine --input-lengths 32 --output-lengths 8 --test-runs 1 --concurrent-requests \\
      0 --batch-sizes 1
  inferbench engine --config config/benchmark.yaml   # minutes
  inferbench engine --config config/quantization.yaml   # minutes
  inferbench engine --config config/speculative.yaml --gamma 2,4,8   # minutes
  inferbench engine --config config/speculative.yaml --rate 1 --duration 300 \\
      --placement separate   # minutes
  inferbench engine --pp 64 --tg 16 --depth 0,64 --repetitions 2
  inferbench engine --pp 512 --tg 128 --output sql | sqlite3 bench.db   # minutes
  inferbench engine --config config/llama-bench.yaml --compare-with llama-bench.json   # minutes
",
    exit_codes!()
);

/// `inferbench model`.
pub const MODEL: &str = concat!(
    "Examples:
  inferbench model pull
  inferbench model list
  inferbench model verify
",
    exit_codes!()
);
