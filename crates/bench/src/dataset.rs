//! Describing a dataset exactly as a run would load it: counts, token-length distributions,
//! categories and load times, so a workload can be checked (and frozen) before any server is
//! involved.

use crate::error::{BenchError, Context};
use inferbench_core::spec::DatasetSpec;
use inferbench_core::{Distribution, Samples};
use inferbench_data::{load_dataset, Dataset, Tokenizer};
use std::collections::BTreeMap;
use std::time::Instant;

/// What loading a dataset found.
pub struct DatasetReport {
    /// The prompts drawn.
    pub dataset: Dataset,
    /// The tokenizer's name.
    pub tokenizer: String,
    /// Seconds to get the tokenizer's tables ready.
    pub tokenizer_s: f64,
    /// Seconds to load, tokenise and filter the prompts.
    pub load_s: f64,
    /// Prompt lengths, tokens (p50 and p99 computed).
    pub input: Distribution,
    /// Output lengths asked for, tokens.
    pub output: Distribution,
    /// Prompts per category (`-` for none).
    pub categories: BTreeMap<String, u64>,
}

/// Loads `count` prompts of the dataset as `run --seed seed` would.
pub fn describe(d: &DatasetSpec, tokenizer: &str, count: usize, seed: u64) -> Result<DatasetReport, BenchError> {
    if count == 0 {
        return Err(BenchError::invalid("invalid --num-prompts '0': must be at least 1"));
    }
    let opts = crate::spec::dataset_options_for(d, count, seed)?;
    // No server to ask: `auto` is the fallback.
    let tokenizer = if tokenizer == crate::spec::AUTO_TOKENIZER { crate::spec::FALLBACK_TOKENIZER } else { tokenizer };
    let tok = Tokenizer::by_name(tokenizer).map_err(|e| BenchError::invalid(format!("--tokenizer: {e}")))?;
    let t0 = Instant::now();
    tok.single_token_words();
    let tokenizer_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let dataset = load_dataset(&tok, &opts).ctx("loading the dataset")?;
    let load_s = t1.elapsed().as_secs_f64();
    let (mut input, mut output) = (Samples::default(), Samples::default());
    let mut categories: BTreeMap<String, u64> = BTreeMap::new();
    for p in &dataset.prompts {
        input.push(f64::from(p.input_tokens));
        output.push(f64::from(p.output_tokens));
        *categories.entry(p.category.clone().unwrap_or_else(|| "-".into())).or_default() += 1;
    }
    let ps = [50.0, 99.0];
    Ok(DatasetReport {
        tokenizer: tok.name().to_owned(),
        tokenizer_s,
        load_s,
        input: input.distribution(&ps),
        output: output.distribution(&ps),
        categories,
        dataset,
    })
}
