//! Reading and checking the engine benchmark's YAML configuration. Errors name the file, the line
//! and the key path.

use super::Result;
use crate::error::BenchError;
use inferbench_core::engine_bench::BenchConfig;
use inferbench_engine::LoadOptions;
use std::path::Path;

/// Reads a YAML config.
pub fn load_config(path: &Path) -> Result<BenchConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::invalid(format!("cannot read {}: {e}", path.display())))?;
    parse_config(&text).map_err(|e| BenchError::invalid(format!("{}: {e}", path.display())))
}

/// Parses a YAML config; unknown keys are errors.
pub fn parse_config(text: &str) -> std::result::Result<BenchConfig, String> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.location().map(|l| format!("line {}: ", l.line())).unwrap_or_default();
        if path == "." {
            format!("{line}{inner}")
        } else {
            format!("{line}key '{path}': {inner}")
        }
    })
}

/// How to load the weights for a format name (`shipped` keeps them as they are).
pub fn load_options(fmt: &str) -> Result<LoadOptions> {
    if fmt == "shipped" {
        return Ok(LoadOptions::default());
    }
    let requantize = inferbench_engine::Quantization::parse(fmt)
        .ok_or_else(|| BenchError::invalid(format!("unknown format '{fmt}' (shipped, q4_1, q8_0, q4_k, f32)")))?;
    Ok(LoadOptions { requantize: Some(requantize) })
}

/// Checks every section before anything is loaded.
pub fn validate(c: &BenchConfig) -> Result<()> {
    let bad = |m: &str| Err(BenchError::invalid(m));
    if c.latency.test_runs == 0 {
        return bad("latency.test_runs must be at least 1");
    }
    if c.latency.input_lengths.contains(&0) || c.latency.output_lengths.contains(&0) {
        return bad("latency.input_lengths and latency.output_lengths must be positive");
    }
    if c.throughput.tokens_per_request == 0 || c.throughput.batch_sizes.contains(&0) {
        return bad("throughput.tokens_per_request and throughput.batch_sizes must be positive");
    }
    let sides = [
        &c.speculative.draft_quantization,
        &c.speculative.target_quantization,
        &c.comparison.baseline.quantization,
        &c.comparison.variant.quantization,
    ];
    for f in c.quantization.formats.iter().chain(sides) {
        load_options(f).map_err(|e| BenchError::invalid(format!("quantization / speculative: {e}")))?;
    }
    let sp = &c.speculative;
    if sp.enabled {
        if sp.gamma.is_empty() || sp.gamma.contains(&0) || sp.prompts == 0 || sp.max_tokens == 0 || sp.batch_size == 0 {
            return bad("speculative.gamma, speculative.prompts, speculative.max_tokens and speculative.batch_size must be positive");
        }
        let longest = sp.gamma.iter().max().copied().unwrap_or(1);
        if sp.max_batch_length < sp.batch_size.max(longest + 1) {
            return Err(BenchError::invalid(format!(
                "speculative.max_batch_length ({}) must hold a step of batch_size ({}) sequences and a draft of gamma + 1 ({})",
                sp.max_batch_length,
                sp.batch_size,
                longest + 1
            )));
        }
        if sp.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) || !(sp.duration_seconds >= 0.0 && sp.duration_seconds.is_finite()) {
            return bad("speculative.rate must be positive and speculative.duration_seconds non-negative");
        }
        super::speculative::placement(&sp.placement, 2, &[0, 1])?;
    }
    if let Some(lb) = &c.llama_bench {
        super::llama_bench::validate(lb)?;
    }
    for f in &c.report.format {
        if !["json", "csv", "text"].contains(&f.as_str()) {
            return Err(BenchError::invalid(format!("report.format: unknown format '{f}' (json, csv, text)")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferbench_core::engine_bench::LatencyConfig;

    #[test]
    fn config_errors_name_the_line_and_key() {
        let e = parse_config("latency:\n  warmup_runs: 1\n  test_runs: many\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("latency.test_runs"), "{e}");
        let e = parse_config("latency:\n  warmup_runz: 1\n").unwrap_err();
        assert!(e.contains("unknown field `warmup_runz`"), "{e}");
        let c = parse_config("throughput:\n  batch_sizes: [2, 4]\ntargets:\n  m:\n    max_ttft_ms: 100\n").unwrap();
        assert_eq!(c.throughput.batch_sizes, vec![2, 4]);
        assert_eq!(c.latency, LatencyConfig::default());
        assert_eq!(c.targets["m"]["max_ttft_ms"], 100.0);
    }

    #[test]
    fn shipped_configs_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            // explore-*.yaml are explorations, checked by the explorer's own test.
            let exploration = p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("explore-"));
            if p.extension().is_some_and(|e| e == "yaml") && !exploration {
                let c = load_config(&p).unwrap();
                validate(&c).unwrap();
                n += 1;
            }
        }
        assert!(n >= 1);
    }
}
