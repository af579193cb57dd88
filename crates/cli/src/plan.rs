//! `inferbench plan`: capacity and cost from a sweep. The arithmetic is `core::plan`; this module
//! reads the sweep, picks the sustainable step under each SLO choice, and prints the answers.

use crate::args::PlanArgs;
use crate::saved::read_sweep;
use anyhow::{anyhow, bail, Result};
use inferbench_core::plan::{plan, sustainable, Capacity, Plan, Target};
use inferbench_core::sweep::{SloRule, SweepResult};
use inferbench_report::{text_table, write_atomic};
use serde::Serialize;

fn parse_rules(items: &[String], flag: &str) -> Result<Vec<SloRule>> {
    items
        .iter()
        .flat_map(|s| s.split([' ', ',']).filter(|x| !x.is_empty()))
        .map(|s| SloRule::parse(s).map_err(|e| anyhow!("invalid {flag} '{s}': {e}")))
        .collect()
}

fn describe(rules: &[SloRule]) -> String {
    if rules.is_empty() {
        "no SLO (highest throughput)".to_owned()
    } else {
        rules.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
    }
}

/// One SLO choice, planned.
#[derive(Serialize)]
struct Choice {
    slos: String,
    /// The sustainable step's load; `None` when no step qualifies.
    load: Option<f64>,
    /// True when the sustainable step is the sweep's highest: the replica may hold more.
    at_sweep_top: bool,
    plan: Option<Plan>,
}

fn choose(sweep: &SweepResult, rules: &[SloRule], min_success: f64, a: &PlanArgs, target: Option<Target>) -> Result<Choice> {
    let idx = sustainable(sweep, rules, min_success)?;
    let Some(i) = idx else {
        return Ok(Choice { slos: describe(rules), load: None, at_sweep_top: false, plan: None });
    };
    let step = &sweep.steps[i];
    let cap = Capacity::from_summaries(step.load, &step.summaries());
    let p = plan(cap, sweep.dimension, target, a.headroom, a.price_per_hour)?;
    Ok(Choice { slos: describe(rules), load: Some(step.load), at_sweep_top: i + 1 == sweep.steps.len(), plan: Some(p) })
}

/// Runs `plan`.
pub fn run(a: PlanArgs) -> Result<bool> {
    let sweep = read_sweep(&a.sweep)?;
    if sweep.steps.is_empty() {
        bail!("{}: the sweep has no steps", a.sweep.display());
    }
    let rules = if a.slo.is_empty() { sweep.slos.clone() } else { parse_rules(&a.slo, "--slo")? };
    let min_success = match a.min_success_rate {
        Some(p) if (0.0..=100.0).contains(&p) => p / 100.0,
        Some(p) => bail!("invalid --min-success-rate '{p}': must be a percentage between 0 and 100"),
        None => sweep.min_success_rate,
    };
    let target = match (a.target_rate, a.users) {
        (Some(r), _) => Some(Target::Rate(r)),
        (None, Some(u)) => Some(Target::Users(u)),
        (None, None) => None,
    };
    let main = choose(&sweep, &rules, min_success, &a, target)?;
    let dim = sweep.dimension;
    let mut out = String::new();
    out.push_str(&format!(
        "Sweep {} ({} steps over {}), SLOs: {}, success >= {}%\n",
        a.sweep.display(),
        sweep.steps.len(),
        match dim {
            inferbench_core::sweep::Dimension::Concurrency => "concurrency",
            inferbench_core::sweep::Dimension::Rate => "request rate",
        },
        describe(&rules),
        min_success * 100.0
    ));
    match (&main.plan, main.load) {
        (Some(p), Some(load)) => {
            let c = &p.capacity;
            out.push_str(&format!(
                "Per replica: sustainable at {}{}: {:.2} req/s, {:.0} input tok/s, {:.1} output tok/s\n",
                dim.label(load),
                if main.at_sweep_top { " (the sweep's highest load: the replica may hold more; sweep further)" } else { "" },
                c.request_rate,
                c.input_tok_s,
                c.output_tok_s
            ));
            out.push_str(&format!("Planned at {:.0}% headroom: {:.2} req/s per replica\n", a.headroom * 100.0, p.usable_rate));
            let target_txt = match target {
                Some(Target::Rate(r)) => format!("{r} req/s"),
                Some(Target::Users(u)) => format!("{u} concurrent users ({:.2} req/s)", p.target_rate),
                None => format!("one replica's planned load ({:.2} req/s)", p.target_rate),
            };
            out.push_str(&format!("Target {target_txt}: {} replica(s), {:.0}% utilised\n", p.replicas, p.utilisation * 100.0));
            if let Some(cost) = &p.cost {
                out.push_str(&format!(
                    "Cost: {:.2}/hour; per million tokens: input {:.4}, output {:.4}, blended {:.4} (output carrying it all: {:.4})\n",
                    cost.per_hour, cost.per_million_input, cost.per_million_output, cost.per_million_tokens, cost.per_million_output_all_in
                ));
                out.push_str(&format!(
                    "  (input/output split by time share: TTFT is {:.1}% of mean E2E latency at that step)\n",
                    c.prefill_share * 100.0
                ));
            }
        }
        _ => out.push_str(&format!(
            "No step meets {} with success >= {}%: even {} fails. Sweep lower loads or relax the SLOs.\n",
            describe(&rules),
            min_success * 100.0,
            dim.label(sweep.steps[0].load)
        )),
    }

    // What-if: the same target under other SLO choices.
    let mut sets: Vec<Vec<SloRule>> = Vec::new();
    if a.what_if.is_empty() {
        if !rules.is_empty() {
            for f in [0.5, 1.0, 2.0] {
                sets.push(rules.iter().map(|r| r.scaled(f)).collect());
            }
        }
        sets.push(Vec::new());
    } else {
        sets.push(rules.clone());
        for w in &a.what_if {
            sets.push(parse_rules(std::slice::from_ref(w), "--what-if")?);
        }
    }
    let mut choices = Vec::new();
    for set in &sets {
        choices.push(choose(&sweep, set, min_success, &a, target)?);
    }
    let rows = choices
        .iter()
        .map(|c| match (&c.plan, c.load) {
            (Some(p), Some(load)) => vec![
                c.slos.clone(),
                format!("{}{}", if c.at_sweep_top { ">=" } else { "" }, dim.label(load)),
                format!("{:.2}", p.capacity.request_rate),
                format!("{:.1}", p.capacity.output_tok_s),
                p.replicas.to_string(),
                p.cost.map_or_else(|| "-".to_owned(), |c| format!("{:.2}", c.per_hour)),
                p.cost.map_or_else(|| "-".to_owned(), |c| format!("{:.4}", c.per_million_output_all_in)),
            ],
            _ => vec![c.slos.clone(), "none".into(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into()],
        })
        .collect();
    out.push_str("\nWhat if the SLOs were different:\n");
    out.push_str(&text_table(
        &["SLOs", "sustainable", "req/s/replica", "out tok/s/replica", "replicas", "cost/hour", "per M output"],
        rows,
    ));
    out.push('\n');
    if choices.iter().any(|c| c.at_sweep_top) {
        out.push_str("(>= : the sweep's highest load passed; the true limit may be higher)\n");
    }
    print!("{out}");
    if let Some(path) = &a.output {
        #[derive(Serialize)]
        struct PlanFile<'a> {
            sweep: String,
            headroom: f64,
            price_per_hour: Option<f64>,
            target: Option<Target>,
            min_success_rate: f64,
            plan: &'a Choice,
            what_if: &'a [Choice],
        }
        let file = PlanFile {
            sweep: a.sweep.display().to_string(),
            headroom: a.headroom,
            price_per_hour: a.price_per_hour,
            target,
            min_success_rate: min_success,
            plan: &main,
            what_if: &choices,
        };
        write_atomic(path, &serde_json::to_vec_pretty(&file)?).map_err(|e| anyhow!("--output: {e}"))?;
        println!("Plan: {}", path.display());
    }
    Ok(true)
}
