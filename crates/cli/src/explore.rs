//! `inferbench explore --config explore.yaml`: the config with the flags laid over it, handed to
//! the library's explorer; this module prints its progress lines and the final summary.

use crate::args::ExploreArgs;
use crate::run::printer;
use crate::usage;
use anyhow::Result;
use inferbench_bench::explore::{read_config, render_text, Explorer};
use inferbench_core::explore::{Design, ExploreConfig, Harness, Objective};
use std::path::PathBuf;

fn harness(name: &str) -> Result<Harness> {
    Ok(match name {
        "inferbench" => Harness::Inferbench,
        "vllm" => Harness::Vllm,
        "guidellm" => Harness::Guidellm,
        "inference-perf" => Harness::InferencePerf,
        "aiperf" => Harness::Aiperf,
        other => return Err(usage(format!("invalid --harness '{other}': inferbench, vllm, guidellm, inference-perf or aiperf"))),
    })
}

/// The config with the flags laid over it.
fn config(a: &ExploreArgs) -> Result<ExploreConfig> {
    let mut c = read_config(&a.config)?;
    if let Some(kind) = &a.design {
        c.design = match kind.as_str() {
            "factorial" => Design::Factorial,
            "grid" => Design::Grid {
                points: match &c.design {
                    Design::Grid { points } => points.clone(),
                    _ => Vec::new(),
                },
            },
            "random" => {
                let n = a.n.or(match c.design {
                    Design::Random { n, .. } => Some(n),
                    _ => None,
                });
                let n = n.ok_or_else(|| usage("--design random needs --n (how many treatments to draw)"))?;
                Design::Random { n, seed: a.seed.unwrap_or(0) }
            }
            "adaptive" => Design::Adaptive { budget: a.budget },
            other => return Err(usage(format!("invalid --design '{other}': factorial, grid, random or adaptive"))),
        };
    } else {
        match &mut c.design {
            Design::Random { n, seed } => {
                *n = a.n.unwrap_or(*n);
                *seed = a.seed.unwrap_or(*seed);
            }
            Design::Adaptive { budget } => *budget = a.budget.or(*budget),
            _ => {}
        }
    }
    if (a.n.is_some() || a.seed.is_some()) && !matches!(c.design, Design::Random { .. }) {
        return Err(usage("--n and --seed belong to the random design (--design random)"));
    }
    if a.budget.is_some() && !matches!(c.design, Design::Adaptive { .. }) {
        return Err(usage("--budget belongs to the adaptive design (--design adaptive)"));
    }
    if let Some(m) = &a.maximize {
        c.objective = Objective { maximize: Some(m.clone()), ..Default::default() };
    }
    if let Some(m) = &a.minimize {
        c.objective = Objective { minimize: Some(m.clone()), ..Default::default() };
    }
    if !a.constraint.is_empty() {
        c.constraints.clone_from(&a.constraint);
    }
    if let Some(r) = a.repeat {
        c.repeat = r;
    }
    if let Some(s) = a.cooldown {
        c.cooldown_s = s;
    }
    if let Some(u) = &a.external {
        c.external = Some(u.clone());
        c.server = None;
    }
    if let Some(p) = a.price_per_hour {
        c.price_per_hour = Some(p);
    }
    if let Some(h) = &a.harness {
        c.harness.tool = harness(h)?;
    }
    Ok(c)
}

/// Runs `inferbench explore`; `Ok(true)` when interrupted.
pub async fn run(a: ExploreArgs, stop: crate::Interrupt) -> Result<bool> {
    let cfg = config(&a)?;
    let dir = a.output_dir.clone().or_else(|| cfg.output_dir.as_ref().map(PathBuf::from)).unwrap_or_else(|| {
        let name = cfg.name.clone().unwrap_or_else(|| "explore".into());
        PathBuf::from("results").join(if name.starts_with("explore") { name } else { format!("explore-{name}") })
    });
    let explorer = Explorer::new(cfg, dir.clone(), a.api_key.clone())?.cancel_on(stop.stop).observe(printer(a.quiet));
    let path = explorer.result_path();
    let r = explorer.run().await?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        out!("{}", render_text(&r));
        outln!(
            "\nResults: {} and explore.html beside it (runs in {}/runs, server logs in {}/servers)",
            path.display(),
            dir.display(),
            dir.display()
        );
    }
    let files: Vec<PathBuf> =
        r.runs.iter().filter(|x| x.status.measured()).filter_map(|x| x.result_file.as_ref().map(|f| dir.join(f))).collect();
    crate::store::record(&a.store, &files);
    Ok(r.interrupted)
}
