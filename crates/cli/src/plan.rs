//! `inferbench plan`: the library plans from a sweep, `report` draws the plan.

use crate::args::PlanArgs;
use crate::usage;
use anyhow::Result;
use inferbench_bench::capacity::{plan, PlanOptions};
use inferbench_core::capacity::Target;
use inferbench_core::sweep::SloRule;
use inferbench_core::SavedResult;

fn parse_rules(items: &[String], flag: &str) -> Result<Vec<SloRule>> {
    items
        .iter()
        .flat_map(|s| s.split([' ', ',']).filter(|x| !x.is_empty()))
        .map(|s| SloRule::parse(s).map_err(|e| usage(format!("invalid {flag} '{s}': {e}"))))
        .collect()
}

/// Runs `plan`.
pub fn run(a: PlanArgs) -> Result<()> {
    let o = PlanOptions {
        slos: if a.slo.is_empty() { None } else { Some(parse_rules(&a.slo, "--slo")?) },
        target: match (a.target_rate, a.users) {
            (Some(r), _) => Some(Target::Rate(r)),
            (None, Some(u)) => Some(Target::Users(u)),
            (None, None) => None,
        },
        headroom: a.headroom,
        price_per_hour: a.price_per_hour,
        min_success_rate: a.min_success_rate.map(|p| p / 100.0),
        what_if: a.what_if.iter().map(|w| parse_rules(std::slice::from_ref(w), "--what-if")).collect::<Result<_>>()?,
    };
    let mut p = plan(&a.sweep, &o)?;
    p.header.labels = crate::labels(&a.label)?;
    out!("{}", inferbench_report::text::plan(&p));
    if let Some(path) = &a.output {
        inferbench_bench::saved::write(path, &SavedResult::Plan(Box::new(p)))?;
        outln!("Plan: {}", path.display());
    }
    Ok(())
}
