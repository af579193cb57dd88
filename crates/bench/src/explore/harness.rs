//! Other load generators behind the explorer's one interface: each adapter turns the treatment's
//! run spec into that tool's command line (and, for inference-perf, its config file), and names
//! the file the tool will write, which `import` then reads into our result type.
//!
//! Only what the tools can express is mapped: random prompts of fixed lengths, a closed loop
//! (concurrency) or an open one (rate), a request count, streaming, `ignore_eos`, the seed.
//! Anything else in the spec is refused with a line naming it, rather than run as something else.

use crate::error::BenchError;
use crate::import::Tool;
use inferbench_core::explore::{Harness, HarnessSpec};
use inferbench_core::RunSpec;
use std::path::{Path, PathBuf};

/// What to run and what it leaves behind.
#[derive(Debug, Clone, PartialEq)]
pub struct HarnessCommand {
    /// The argv, executable first.
    pub argv: Vec<String>,
    /// Files to write before running (inference-perf's config).
    pub files: Vec<(PathBuf, String)>,
    /// The file to import afterwards.
    pub result: PathBuf,
    /// The importer to read it with.
    pub tool: Tool,
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Refuses what the external tools cannot run as specified.
fn mappable(h: Harness, spec: &RunSpec) -> Result<(u32, u32, u64), BenchError> {
    let name = h.name();
    if spec.dataset.name != "random" {
        return Err(BenchError::invalid(format!(
            "harness {name}: only the random dataset is mapped to it (this workload uses '{}'); use harness inferbench",
            spec.dataset.name
        )));
    }
    if spec.duration_s.is_some() {
        return Err(BenchError::invalid(format!("harness {name}: give num_prompts, not a duration")));
    }
    if spec.ramp_up.is_some() {
        return Err(BenchError::invalid(format!("harness {name}: a ramp-up is not mapped")));
    }
    if spec.dataset.range_ratio != 0.0 {
        return Err(BenchError::invalid(format!("harness {name}: only fixed prompt and output lengths are mapped (range_ratio 0)")));
    }
    let n = spec.num_prompts.unwrap_or(1000);
    Ok((spec.dataset.input_len, spec.dataset.output_len, n))
}

/// Builds the command of `h` for `spec`, writing into `dir` under `stem`. `model` is the served
/// model's name (external tools need it spelled out).
pub fn command(h: &HarnessSpec, spec: &RunSpec, model: &str, dir: &Path, stem: &str) -> Result<HarnessCommand, BenchError> {
    let (isl, osl, n) = mappable(h.tool, spec)?;
    let chat = spec.endpoint.contains("chat");
    let exe = |default: &str| h.executable.clone().unwrap_or_else(|| default.to_owned());
    let tokenizer = (spec.tokenizer != "auto" && !spec.tokenizer.is_empty()).then(|| spec.tokenizer.clone());
    let mut c = match h.tool {
        Harness::Inferbench => return Err(BenchError::invalid("harness inferbench runs in process, not as a command")),
        Harness::Vllm => {
            let result = dir.join(format!("{stem}.vllm.json"));
            let mut a = vec![exe("vllm"), "bench".into(), "serve".into()];
            let mut kv = |k: &str, v: String| {
                a.push(k.to_owned());
                a.push(v);
            };
            kv("--backend", if chat { "openai-chat" } else { "openai" }.into());
            kv("--base-url", spec.base_url.clone());
            kv("--endpoint", spec.endpoint.clone());
            kv("--model", model.to_owned());
            if let Some(t) = &tokenizer {
                kv("--tokenizer", t.clone());
            }
            kv("--dataset-name", "random".into());
            kv("--random-input-len", isl.to_string());
            kv("--random-output-len", osl.to_string());
            kv("--random-range-ratio", "0".into());
            kv("--num-prompts", n.to_string());
            kv("--request-rate", spec.request_rate.map_or("inf".into(), num));
            if let Some(c) = spec.max_concurrency {
                kv("--max-concurrency", c.to_string());
            }
            kv("--seed", spec.seed.to_string());
            kv("--percentile-metrics", "ttft,tpot,itl,e2el".into());
            kv("--metric-percentiles", spec.percentiles.iter().map(|p| num(*p)).collect::<Vec<_>>().join(","));
            kv("--result-dir", dir.display().to_string());
            kv("--result-filename", format!("{stem}.vllm.json"));
            if spec.ignore_eos {
                a.push("--ignore-eos".into());
            }
            a.push("--save-result".into());
            a.push("--save-detailed".into());
            HarnessCommand { argv: a, files: vec![], result, tool: Tool::Vllm }
        }
        Harness::Guidellm => {
            let result = dir.join(format!("{stem}.guidellm.json"));
            let profile = match (spec.max_concurrency, spec.request_rate) {
                (Some(c), None) => format!("kind=concurrent,streams={c}"),
                (None, Some(r)) => format!("kind=constant,rate={}", num(r)),
                (None, None) => "kind=throughput".to_owned(),
                (Some(_), Some(_)) => {
                    return Err(BenchError::invalid(
                        "harness guidellm: give concurrency or rate, not both (its profiles are one or the other)",
                    ))
                }
            };
            let mut a = vec![
                exe("guidellm"),
                "run".into(),
                "--backend".into(),
                format!(
                    "kind=openai_http,target={},model={model},request_format={}",
                    spec.base_url,
                    if chat { "/v1/chat/completions" } else { "/v1/completions" }
                ),
                "--profile".into(),
                profile,
                "--constraint".into(),
                format!("kind=max_requests,count={n}"),
                "--data".into(),
                format!("kind=synthetic_text,prompt_tokens={isl},output_tokens={osl}"),
                "--seed".into(),
                format!("kind=static,value={}", spec.seed),
                "--output".into(),
                format!("kind=json,path={}", result.display()),
            ];
            if let Some(t) = &tokenizer {
                a.push("--tokenizer".into());
                a.push(format!("kind=huggingface_auto,model={t}"));
            }
            HarnessCommand { argv: a, files: vec![], result, tool: Tool::Guidellm }
        }
        Harness::InferencePerf => {
            let out = dir.join(format!("{stem}.inference-perf"));
            let config = dir.join(format!("{stem}.inference-perf.yaml"));
            let load = match (spec.max_concurrency, spec.request_rate) {
                (Some(c), None) => format!("  type: concurrent\n  stages:\n  - num_requests: {n}\n    concurrency_level: {c}\n"),
                (None, Some(r)) => {
                    let secs = (n as f64 / r).ceil().max(1.0);
                    format!("  type: constant\n  stages:\n  - rate: {}\n    duration: {}\n", num(r), num(secs))
                }
                _ => return Err(BenchError::invalid("harness inference-perf: give exactly one of concurrency or rate")),
            };
            let dist = |v: u32| format!("\n    min: {v}\n    max: {v}\n    mean: {v}\n    std_dev: 0\n    total_count: {}\n", n + 1);
            let yaml = format!(
                "api:\n  type: {}\n  streaming: {}\ndata:\n  type: random\n  input_distribution:{}  output_distribution:{}load:\n{load}  base_seed: {}\nreport:\n  request_lifecycle:\n    summary: true\n    per_stage: true\nstorage:\n  local_storage:\n    path: {}\nserver:\n  type: vllm\n  model_name: {model}\n  base_url: {}\n  ignore_eos: {}\n{}",
                if chat { "chat" } else { "completion" },
                spec.stream,
                dist(isl),
                dist(osl),
                spec.seed,
                serde_json::to_string(&out.display().to_string()).unwrap_or_default(),
                spec.base_url,
                spec.ignore_eos,
                tokenizer.as_ref().map_or(String::new(), |t| format!("tokenizer:\n  pretrained_model_name_or_path: {t}\n")),
            );
            HarnessCommand {
                argv: vec![exe("inference-perf"), "-c".into(), config.display().to_string()],
                files: vec![(config, yaml)],
                result: out.join("summary_lifecycle_metrics.json"),
                tool: Tool::InferencePerf,
            }
        }
        Harness::Aiperf => {
            let art = dir.join(format!("{stem}.aiperf"));
            let mut a = vec![
                exe("aiperf"),
                "profile".into(),
                "--model".into(),
                model.to_owned(),
                "--url".into(),
                spec.base_url.clone(),
                "--endpoint-type".into(),
                if chat { "chat" } else { "completions" }.into(),
                "--request-count".into(),
                n.to_string(),
                "--isl".into(),
                isl.to_string(),
                "--isl-stddev".into(),
                "0".into(),
                "--osl".into(),
                osl.to_string(),
                "--osl-stddev".into(),
                "0".into(),
                "--random-seed".into(),
                spec.seed.to_string(),
                "--artifact-dir".into(),
                art.display().to_string(),
                "--ui".into(),
                "none".into(),
            ];
            if spec.stream {
                a.push("--streaming".into());
            }
            if let Some(c) = spec.max_concurrency {
                a.extend(["--concurrency".into(), c.to_string()]);
            }
            if let Some(r) = spec.request_rate {
                a.extend(["--request-rate".into(), num(r)]);
            }
            if spec.ignore_eos {
                a.extend(["--extra-inputs".into(), "ignore_eos:true".into()]);
            }
            if let Some(t) = &tokenizer {
                a.extend(["--tokenizer".into(), t.clone()]);
            }
            HarnessCommand { argv: a, files: vec![], result: art.join("profile_export_aiperf.json"), tool: Tool::Aiperf }
        }
    };
    c.argv.extend(h.extra_args.iter().cloned());
    Ok(c)
}

/// Whether the harness's executable can be found (on PATH or as given).
pub fn installed(h: &HarnessSpec) -> bool {
    let exe = h.executable.clone().unwrap_or_else(|| h.tool.name().to_owned());
    if exe.contains('/') {
        return Path::new(&exe).is_file();
    }
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(&exe).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixtures' workload: 24 random 32-token prompts, 16 output tokens, 4 in flight.
    fn spec() -> RunSpec {
        let mut s = RunSpec::new("http://127.0.0.1:8000");
        s.endpoint = "/v1/completions".into();
        s.dataset.input_len = 32;
        s.dataset.output_len = 16;
        s.num_prompts = Some(24);
        s.max_concurrency = Some(4);
        s.ignore_eos = true;
        s.seed = 1;
        s
    }

    fn cmd(tool: Harness) -> HarnessCommand {
        let h = HarnessSpec { tool, ..Default::default() };
        command(&h, &spec(), "mock-model", Path::new("/out"), "t-c-4-r0").unwrap()
    }

    #[test]
    fn vllm_gets_the_fixture_command_line() {
        let c = cmd(Harness::Vllm);
        let line = c.argv.join(" ");
        // The flags of the fixture's own command (../shared/fixtures/peer-results/README.md).
        for part in [
            "vllm bench serve --backend openai --base-url http://127.0.0.1:8000 --endpoint /v1/completions --model mock-model",
            "--dataset-name random --random-input-len 32 --random-output-len 16 --random-range-ratio 0 --num-prompts 24",
            "--request-rate inf --max-concurrency 4 --seed 1",
            "--ignore-eos --save-result --save-detailed",
        ] {
            assert!(line.contains(part), "{line}\nlacks {part}");
        }
        assert_eq!(c.result, Path::new("/out/t-c-4-r0.vllm.json"));
    }

    #[test]
    fn guidellm_and_aiperf_get_their_fixture_flags() {
        let g = cmd(Harness::Guidellm).argv.join(" ");
        for part in ["guidellm run --backend kind=openai_http,target=http://127.0.0.1:8000,model=mock-model,request_format=/v1/completions",
            "--profile kind=concurrent,streams=4 --constraint kind=max_requests,count=24",
            "--data kind=synthetic_text,prompt_tokens=32,output_tokens=16 --seed kind=static,value=1 --output kind=json,path=/out/t-c-4-r0.guidellm.json"] {
            assert!(g.contains(part), "{g}\nlacks {part}");
        }
        let a = cmd(Harness::Aiperf).argv.join(" ");
        for part in [
            "aiperf profile --model mock-model --url http://127.0.0.1:8000 --endpoint-type completions --request-count 24",
            "--isl 32 --isl-stddev 0 --osl 16 --osl-stddev 0 --random-seed 1",
            "--streaming --concurrency 4 --extra-inputs ignore_eos:true",
        ] {
            assert!(a.contains(part), "{a}\nlacks {part}");
        }
    }

    #[test]
    fn inference_perf_gets_a_config_its_importer_reads_back() {
        let c = cmd(Harness::InferencePerf);
        let (path, yaml) = &c.files[0];
        assert_eq!(c.argv, ["inference-perf", "-c", &path.display().to_string()]);
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(v["load"]["stages"][0]["concurrency_level"].as_u64(), Some(4));
        assert_eq!(v["load"]["stages"][0]["num_requests"].as_u64(), Some(24));
        assert_eq!(v["data"]["input_distribution"]["mean"].as_u64(), Some(32));
        assert_eq!(v["server"]["ignore_eos"].as_bool(), Some(true));
        assert_eq!(c.result, Path::new("/out/t-c-4-r0.inference-perf/summary_lifecycle_metrics.json"));
    }

    #[test]
    fn what_cannot_be_mapped_is_refused() {
        let mut s = spec();
        s.dataset.name = "sharegpt".into();
        let h = HarnessSpec { tool: Harness::Guidellm, ..Default::default() };
        let e = command(&h, &s, "m", Path::new("/o"), "x").unwrap_err().to_string();
        assert!(e.contains("harness guidellm: only the random dataset"), "{e}");
    }
}
