//! `inferbench dataset`: load a dataset exactly as `run` would and describe it, so a workload can
//! be checked (and frozen to a file) before any server is involved.

use crate::args::DatasetCmdArgs;
use anyhow::{anyhow, Context, Result};
use inferbench_core::Samples;
use inferbench_data::{load_dataset, Tokenizer};
use std::collections::BTreeMap;
use std::time::Instant;

/// Runs the subcommand.
pub fn run(a: DatasetCmdArgs) -> Result<()> {
    if a.num_prompts == 0 {
        return Err(crate::usage("invalid --num-prompts '0': must be at least 1"));
    }
    let ds_spec = a.data.spec()?;
    let name = ds_spec.name.clone();
    let opts = inferbench_bench::spec::dataset_options_for(&ds_spec, a.num_prompts as usize, a.seed)?;
    let tokenizer = Tokenizer::by_name(&a.data.tokenizer).map_err(|e| crate::usage(format!("--tokenizer: {e}")))?;
    let t0 = Instant::now();
    tokenizer.single_token_words();
    let t_tok = t0.elapsed();
    let t1 = Instant::now();
    let ds = load_dataset(&tokenizer, &opts).context("loading the dataset")?;
    let t_load = t1.elapsed();

    let mut input = Samples::default();
    let mut output = Samples::default();
    let mut cats: BTreeMap<&str, u64> = BTreeMap::new();
    for p in &ds.prompts {
        input.push(p.input_tokens as f64);
        output.push(p.output_tokens as f64);
        *cats.entry(p.category.as_deref().unwrap_or("-")).or_default() += 1;
    }
    let ps = [50.0, 99.0];
    let (i, o) = (input.distribution(&ps), output.distribution(&ps));
    println!("dataset:           {name}{}", opts.path.as_ref().map_or(String::new(), |p| format!(" ({})", p.display())));
    println!("tokenizer:         {} (tables ready in {:.2} s)", tokenizer.name(), t_tok.as_secs_f64());
    println!(
        "loaded in:         {:.3} s ({:.0} prompts/s)",
        t_load.as_secs_f64(),
        ds.prompts.len() as f64 / t_load.as_secs_f64().max(1e-9)
    );
    if ds.read_s > 0.0 {
        println!(
            "  of which:        {:.3} s reading and indexing the files, {:.3} s parsing, tokenising and filtering the drawn entries",
            ds.read_s,
            t_load.as_secs_f64() - ds.read_s
        );
    }
    println!(
        "prompts:           {} drawn, {} usable in the source, {} skipped{}",
        ds.prompts.len(),
        ds.available,
        ds.skipped,
        if ds.oversampled { ", oversampled (prompts repeat)" } else { "" }
    );
    for (label, d) in [("input tokens:", &i), ("output tokens:", &o)] {
        println!(
            "{label:<18} mean {:.1}, min {}, median {:.0}, p99 {:.0}, max {}",
            d.mean,
            d.min,
            d.median,
            d.percentile(99.0).unwrap_or(d.max),
            d.max
        );
    }
    if cats.len() > 1 || !cats.contains_key("-") {
        let list: Vec<String> = cats.iter().map(|(c, n)| format!("{c}={n}")).collect();
        println!("categories:        {}", list.join(" "));
    }
    if let Some(path) = &a.save {
        let mut out = String::new();
        for p in &ds.prompts {
            let mut v = serde_json::json!({"output_tokens": p.output_tokens});
            match &p.messages {
                Some(ms) => v["messages"] = serde_json::json!(ms),
                None => v["prompt"] = serde_json::json!(p.text),
            }
            if let Some(c) = &p.category {
                v["category"] = serde_json::json!(c);
            }
            out.push_str(&v.to_string());
            out.push('\n');
        }
        inferbench_report::write_atomic(path, out.as_bytes()).map_err(|e| anyhow!("--save: {e}"))?;
        println!("saved:             {} (use with --dataset-name jsonl)", path.display());
    }
    Ok(())
}
