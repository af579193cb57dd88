//! Which treatments a design runs: the full factorial (server factors outermost, so one server
//! serves every workload level in a row), listed grid points, a seeded random draw, and the
//! neighbourhoods the adaptive search climbs through.

use crate::error::BenchError;
use inferbench_core::explore::{Design, FactorSide, Factors, Levels, Treatment};
use rand::{seq::index::sample, SeedableRng};
use serde_json::Value;

/// Every combination of every level, the last factor varying fastest.
pub fn factorial(factors: &Factors) -> Vec<Treatment> {
    let mut out = vec![Treatment::default()];
    for (name, levels, side) in factors.all() {
        let mut next = Vec::with_capacity(out.len() * levels.len().max(1));
        for t in &out {
            for l in levels {
                let mut t = t.clone();
                side_of(&mut t, side).insert(name.to_owned(), l.clone());
                next.push(t);
            }
        }
        out = next;
    }
    out
}

fn side_of(t: &mut Treatment, side: FactorSide) -> &mut Levels {
    match side {
        FactorSide::Server => &mut t.server,
        FactorSide::Workload => &mut t.workload,
    }
}

/// Checks the factors: at least one level each, no name on both sides.
pub fn check_factors(factors: &Factors) -> Result<(), BenchError> {
    for (name, levels, _) in factors.all() {
        if levels.is_empty() {
            return Err(BenchError::invalid(format!("factors: '{name}' has no levels")));
        }
        if let Some((i, _)) = levels.iter().enumerate().find(|(i, l)| levels[..*i].contains(l)) {
            return Err(BenchError::invalid(format!("factors: '{name}' lists the level {} twice", levels[i])));
        }
    }
    if let Some(k) = factors.server.keys().find(|k| factors.workload.contains_key(*k)) {
        return Err(BenchError::invalid(format!("factors: '{k}' is both a server and a workload factor")));
    }
    Ok(())
}

/// The treatments of a non-adaptive design, in the order they run.
pub fn treatments(design: &Design, factors: &Factors) -> Result<Vec<Treatment>, BenchError> {
    let full = factorial(factors);
    match design {
        Design::Factorial | Design::Adaptive { .. } => Ok(full),
        Design::Grid { points } if points.is_empty() => Ok(full),
        Design::Grid { points } => {
            let mut out: Vec<Treatment> = Vec::new();
            for (i, p) in points.iter().enumerate() {
                for k in p.keys() {
                    if !factors.server.contains_key(k) && !factors.workload.contains_key(k) {
                        return Err(BenchError::invalid(format!("design.points[{i}]: '{k}' is not a factor")));
                    }
                }
                // The point's levels, crossed with every level of the factors it leaves out.
                let rest = Factors {
                    server: factors.server.iter().filter(|(k, _)| !p.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
                    workload: factors.workload.iter().filter(|(k, _)| !p.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
                };
                for mut t in factorial(&rest) {
                    for (k, v) in p {
                        let side = if factors.server.contains_key(k) { FactorSide::Server } else { FactorSide::Workload };
                        side_of(&mut t, side).insert(k.clone(), v.clone());
                    }
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
            Ok(out)
        }
        Design::Random { n, seed } => {
            if *n == 0 {
                return Err(BenchError::invalid("design.n: must be at least 1"));
            }
            let mut rng = rand::rngs::SmallRng::seed_from_u64(*seed);
            let mut picked = sample(&mut rng, full.len(), (*n).min(full.len())).into_vec();
            // Run in grid order, so consecutive treatments share servers where they can.
            picked.sort_unstable();
            Ok(picked.into_iter().map(|i| full[i].clone()).collect())
        }
    }
}

/// The adaptive search's first point: the upper middle level of each factor (levels are read in
/// the order given, which for serving factors is their natural order).
pub fn start(factors: &Factors) -> Treatment {
    let mut t = Treatment::default();
    for (name, levels, side) in factors.all() {
        if let Some(l) = levels.get(levels.len() / 2) {
            side_of(&mut t, side).insert(name.to_owned(), l.clone());
        }
    }
    t
}

/// The treatments one level step away from `t` along one factor.
pub fn neighbours(factors: &Factors, t: &Treatment) -> Vec<Treatment> {
    let mut out = Vec::new();
    for (name, levels, side) in factors.all() {
        let Some(at) = t.level(name).and_then(|l| levels.iter().position(|x| x == l)) else { continue };
        for j in [at.checked_sub(1), Some(at + 1)].into_iter().flatten() {
            if let Some(l) = levels.get(j) {
                let mut n = t.clone();
                side_of(&mut n, side).insert(name.to_owned(), l.clone());
                out.push(n);
            }
        }
    }
    out
}

/// How many treatments the full grid has.
pub fn grid_size(factors: &Factors) -> usize {
    factors.all().iter().map(|(_, l, _)| l.len().max(1)).product()
}

/// A level given as `inf` (a rate) is no limit.
pub fn is_infinite(v: &Value) -> bool {
    matches!(v, Value::String(s) if s == "inf") || v.as_f64().is_some_and(f64::is_infinite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn factors() -> Factors {
        Factors {
            server: [("max_num_seqs".to_owned(), vec![json!(4), json!(8), json!(16)])].into(),
            workload: [("concurrency".to_owned(), vec![json!(1), json!(8)])].into(),
        }
    }

    #[test]
    fn factorial_puts_server_factors_outermost() {
        let ts = factorial(&factors());
        let keys: Vec<String> = ts.iter().map(Treatment::key).collect();
        assert_eq!(
            keys,
            [
                "max_num_seqs=4 concurrency=1",
                "max_num_seqs=4 concurrency=8",
                "max_num_seqs=8 concurrency=1",
                "max_num_seqs=8 concurrency=8",
                "max_num_seqs=16 concurrency=1",
                "max_num_seqs=16 concurrency=8"
            ]
        );
        assert_eq!(grid_size(&factors()), 6);
    }

    #[test]
    fn grid_points_cross_the_factors_they_leave_out() {
        let p: Levels = [("max_num_seqs".to_owned(), json!(8))].into();
        let q: Levels = [("max_num_seqs".to_owned(), json!(16)), ("concurrency".to_owned(), json!(8))].into();
        let ts = treatments(&Design::Grid { points: vec![p, q] }, &factors()).unwrap();
        let keys: Vec<String> = ts.iter().map(Treatment::key).collect();
        assert_eq!(keys, ["max_num_seqs=8 concurrency=1", "max_num_seqs=8 concurrency=8", "max_num_seqs=16 concurrency=8"]);
        let bad: Levels = [("max_seqs".to_owned(), json!(8))].into();
        assert!(treatments(&Design::Grid { points: vec![bad] }, &factors())
            .unwrap_err()
            .to_string()
            .contains("'max_seqs' is not a factor"));
    }

    #[test]
    fn random_draws_are_seeded_distinct_and_in_grid_order() {
        let a = treatments(&Design::Random { n: 4, seed: 7 }, &factors()).unwrap();
        let b = treatments(&Design::Random { n: 4, seed: 7 }, &factors()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 4);
        let full = factorial(&factors());
        let idx: Vec<usize> = a.iter().map(|t| full.iter().position(|f| f == t).unwrap()).collect();
        assert!(idx.windows(2).all(|w| w[0] < w[1]), "{idx:?}");
        assert_eq!(treatments(&Design::Random { n: 99, seed: 1 }, &factors()).unwrap().len(), 6);
    }

    #[test]
    fn the_climb_starts_in_the_upper_middle_and_steps_one_level() {
        let s = start(&factors());
        assert_eq!(s.key(), "max_num_seqs=8 concurrency=8");
        let n: Vec<String> = neighbours(&factors(), &s).iter().map(Treatment::key).collect();
        assert_eq!(n, ["max_num_seqs=4 concurrency=8", "max_num_seqs=16 concurrency=8", "max_num_seqs=8 concurrency=1"]);
    }

    #[test]
    fn factors_are_checked() {
        let mut f = factors();
        f.workload.insert("max_num_seqs".into(), vec![json!(1)]);
        assert!(check_factors(&f).unwrap_err().to_string().contains("both a server and a workload factor"));
        let mut f = factors();
        f.workload.insert("rate".into(), vec![json!(1), json!(1)]);
        assert!(check_factors(&f).unwrap_err().to_string().contains("lists the level 1 twice"));
    }
}
