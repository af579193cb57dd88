//! `inferbench dataset`: load a dataset exactly as `run` would and print what the library found,
//! so a workload can be checked (and frozen to a file) before any server is involved.

use crate::args::DatasetCmdArgs;
use anyhow::{anyhow, Result};

/// Runs the subcommand.
pub fn run(a: DatasetCmdArgs) -> Result<()> {
    let spec = a.data.spec()?;
    let r = inferbench_bench::dataset::describe(&spec, &a.data.tokenizer, a.num_prompts as usize, a.seed)?;
    let ds = &r.dataset;
    outln!("dataset:           {}{}", spec.name, spec.path.as_ref().map_or(String::new(), |p| format!(" ({p})")));
    outln!("tokenizer:         {} (tables ready in {:.2} s)", r.tokenizer, r.tokenizer_s);
    if let Some(t) = &ds.trace {
        outln!(
            "loaded in:         {:.3} s ({:.0} requests/s): parsed, windowed and scheduled",
            r.load_s,
            t.len() as f64 / r.load_s.max(1e-9)
        );
        outln!(
            "trace:             {} requests of the file's {}, over {:.1} s of replay; {} prompt tokens in all, built as each request is sent",
            t.len(),
            t.lines,
            t.span_s(),
            t.input_tokens()
        );
        outln!("statistics below:  the first {} requests", ds.prompts.len());
    } else {
        outln!("loaded in:         {:.3} s ({:.0} prompts/s)", r.load_s, ds.prompts.len() as f64 / r.load_s.max(1e-9));
    }
    if ds.read_s > 0.0 {
        outln!(
            "  of which:        {:.3} s reading and indexing the files, {:.3} s parsing, tokenising and filtering the drawn entries",
            ds.read_s,
            r.load_s - ds.read_s
        );
    }
    outln!(
        "prompts:           {} drawn, {} usable in the source, {} skipped{}",
        ds.prompts.len(),
        ds.available,
        ds.skipped,
        if ds.oversampled { ", oversampled (prompts repeat)" } else { "" }
    );
    for (label, d) in [("input tokens:", &r.input), ("output tokens:", &r.output)] {
        outln!(
            "{label:<18} mean {:.1}, min {}, median {:.0}, p99 {:.0}, max {}",
            d.mean,
            d.min,
            d.median,
            d.percentile(99.0).unwrap_or(d.max),
            d.max
        );
    }
    if r.categories.len() > 1 || !r.categories.contains_key("-") {
        let list: Vec<String> = r.categories.iter().map(|(c, n)| format!("{c}={n}")).collect();
        outln!("categories:        {}", list.join(" "));
    }
    if let Some(path) = &a.save {
        let all: Vec<inferbench_data::Prompt>;
        let prompts = match &ds.trace {
            Some(t) => {
                all = (0..t.len()).map(|i| t.prompt(i)).collect();
                &all
            }
            None => &ds.prompts,
        };
        inferbench_report::write_atomic(path, inferbench_data::to_jsonl(prompts).as_bytes()).map_err(|e| anyhow!("--save: {e}"))?;
        outln!("saved:             {} (use with --dataset-name jsonl)", path.display());
    }
    Ok(())
}
