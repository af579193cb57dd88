//! `inferbench merge`: the shards of one global schedule back into one ordinary result.
//!
//! Every shard's records are moved onto one clock (the earliest shard's epoch, by the wall-clock
//! instants the shards recorded) and fed to one accumulator, so every figure, percentiles
//! included, is what one process would have computed from the union of the records: counters
//! summed, throughput over the union of the shards' windows. When any shard's records are gone,
//! the shards' accumulator states are merged instead: counts stay exact, percentiles come from
//! the merged histograms within [`HIST_RELATIVE_ERROR`].

use crate::error::BenchError;
use crate::saved;
use inferbench_core::result::{ClientUsage, Header, ResultKind};
use inferbench_core::shard::MergeInfo;
use inferbench_core::stats::HIST_RELATIVE_ERROR;
use inferbench_core::summary::{Accumulator, AccumulatorState};
use inferbench_core::{BenchmarkResult, SavedResult};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to merge.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// Wait this long for every shard's result to appear (a merge Job started beside its shards).
    pub wait: Option<Duration>,
    /// Merge the accumulator states even when every shard's records are there.
    pub from_state: bool,
}

/// A merged result and what the merge has to say about it.
#[derive(Debug)]
pub struct Merged {
    /// The merged run: an ordinary result.
    pub result: BenchmarkResult,
    /// Things the reader should know (a late shard, a fallback to states).
    pub notes: Vec<String>,
}

/// One shard's result and where it came from.
struct ShardFile {
    path: PathBuf,
    result: BenchmarkResult,
}

/// Merges the shards found in `inputs` (result files, or directories searched for them).
pub fn merge(inputs: &[PathBuf], opts: &MergeOptions) -> Result<Merged, BenchError> {
    let deadline = opts.wait.map(|w| Instant::now() + w);
    let shards = loop {
        match collect_shards(inputs) {
            Ok(s) => break s,
            Err(Missing::Fatal(e)) => return Err(e),
            Err(Missing::Incomplete(e)) => match deadline {
                Some(d) if Instant::now() < d => std::thread::sleep(Duration::from_secs(1)),
                _ => return Err(e),
            },
        }
    };
    let mut notes = Vec::new();
    // A shard interrupted before its start has no epoch (0) and no records: it moves nothing.
    let epoch0 = shards.iter().map(|s| shard_info(s).epoch_unix_ns).filter(|&e| e > 0).min().unwrap_or(0);
    let epoch_spread_ms = shards.iter().map(|s| shard_info(s).epoch_unix_ns.saturating_sub(epoch0) as f64 / 1e6).fold(0.0, f64::max);
    let max_late_ms = shards.iter().filter_map(|s| shard_info(s).late_ms).reduce(f64::max);
    if let Some(late) = max_late_ms.filter(|&l| l > 100.0) {
        notes.push(format!("the latest shard started {late:.0} ms after --start-at: the shards' load did not begin together"));
    }
    if shards.iter().any(|s| !shard_info(s).clock.synchronized) {
        notes.push("a shard's clock was not synchronised (NTP): the shards are placed on one timeline by their wall clocks".into());
    }
    let first = &shards[0].result;
    let opts_summary = crate::spec::summary_options(&first.spec)?;
    let by_records = if opts.from_state { None } else { from_records(&shards, epoch0, &opts_summary, &mut notes)? };
    let from_records = by_records.is_some();
    let summary = match by_records {
        Some(acc) => acc.finish(),
        None => {
            let (acc, peak) = from_states(&shards, epoch0, &opts_summary)?;
            let mut s = acc.finish();
            // Shards never saw each other's requests: the sum of their peaks bounds the union's.
            s.max_concurrent_requests = peak;
            s
        }
    };
    let mut header = Header::now(ResultKind::Run, first.header.tool.clone());
    header.labels = first.header.labels.clone();
    header.started = shards.iter().map(|s| s.result.header.started.clone()).min().unwrap_or_default();
    header.date.clone_from(&first.header.date);
    header.ended = shards.iter().filter_map(|s| s.result.header.ended.clone()).max();
    header.system.clone_from(&first.header.system);
    let result = BenchmarkResult {
        header,
        spec: first.spec.clone(),
        summary,
        client: ClientUsage {
            cpu_s: shards.iter().map(|s| s.result.client.cpu_s).sum(),
            peak_rss_bytes: shards.iter().map(|s| s.result.client.peak_rss_bytes).max().unwrap_or(0),
            includes_server: shards.iter().any(|s| s.result.client.includes_server),
        },
        warmup_excluded: shards.iter().map(|s| s.result.warmup_excluded).sum(),
        dataset: first.dataset.clone(),
        interrupted: shards.iter().any(|s| s.result.interrupted),
        monitors: None,
        shard: None,
        merged: Some(MergeInfo {
            shards: shards.len() as u64,
            files: shards.iter().map(|s| s.path.display().to_string()).collect(),
            from_records,
            percentile_error: (!from_records).then_some(HIST_RELATIVE_ERROR),
            epoch_spread_ms,
            max_late_ms,
        }),
        per_request: Default::default(),
        imported: None,
    };
    Ok(Merged { result, notes })
}

fn shard_info(s: &ShardFile) -> &inferbench_core::shard::ShardInfo {
    // Checked in `collect_shards`: every file kept has a shard section.
    s.result.shard.as_ref().unwrap_or_else(|| unreachable!("checked when the shards were collected"))
}

/// Why the shards cannot be merged: for good, or not yet (a shard is still running).
enum Missing {
    Fatal(BenchError),
    Incomplete(BenchError),
}

/// The result files named or found in directories, checked to be the shards of one run, in
/// shard order.
fn collect_shards(inputs: &[PathBuf]) -> Result<Vec<ShardFile>, Missing> {
    let fatal = |e: String| Missing::Fatal(BenchError::invalid(e));
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|e| fatal(format!("cannot read the directory {}: {e}", p.display())))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json") && !f.to_string_lossy().ends_with(".state.json"))
                .collect();
            found.sort();
            for f in found {
                // Only shards count in a directory: the merged result may sit beside them.
                if let Ok(SavedResult::Run(r)) = saved::read(&f) {
                    if r.shard.is_some() {
                        files.push(ShardFile { path: f, result: *r });
                    }
                }
            }
        } else {
            let r = match saved::read(p) {
                Ok(SavedResult::Run(r)) => *r,
                Ok(other) => return Err(fatal(format!("{} is {}, not a shard of a run", p.display(), other.kind().described()))),
                Err(e) => return Err(Missing::Fatal(e)),
            };
            if r.shard.is_none() {
                return Err(fatal(format!(
                    "{} is not a shard's result (it has no shard section): run each part with --shard I/N",
                    p.display()
                )));
            }
            files.push(ShardFile { path: p.clone(), result: r });
        }
    }
    if files.is_empty() {
        let named = inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(Missing::Incomplete(BenchError::invalid(format!("no shard results in {named}"))));
    }
    let count = shard_info(&files[0]).shard.count;
    let mut by_index: BTreeMap<u64, usize> = BTreeMap::new();
    for (k, f) in files.iter().enumerate() {
        let s = shard_info(f).shard;
        if s.count != count {
            return Err(fatal(format!(
                "{} is shard {s} but {} is shard {}: they split the run differently",
                f.path.display(),
                files[0].path.display(),
                shard_info(&files[0]).shard
            )));
        }
        if let Some(&other) = by_index.get(&s.index) {
            return Err(fatal(format!("shard {s} is given twice: {} and {}", files[other].path.display(), f.path.display())));
        }
        by_index.insert(s.index, k);
        if let Some(diff) = spec_difference(&files[0].result, &f.result) {
            return Err(fatal(format!(
                "{} was run with a different spec from {}: {diff}; shards of one run share one spec",
                f.path.display(),
                files[0].path.display()
            )));
        }
    }
    let missing: Vec<String> = (0..count).filter(|i| !by_index.contains_key(i)).map(|i| i.to_string()).collect();
    if !missing.is_empty() {
        return Err(Missing::Incomplete(BenchError::invalid(format!(
            "shard{} {} of {count} missing (found {} of {count}): a merge needs every shard",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            by_index.len()
        ))));
    }
    let mut slots: Vec<Option<ShardFile>> = files.into_iter().map(Some).collect();
    Ok(by_index.values().filter_map(|&k| slots[k].take()).collect())
}

/// The first spec field in which two shards differ, as `key.sub: A there, B here`.
fn spec_difference(a: &BenchmarkResult, b: &BenchmarkResult) -> Option<String> {
    let (va, vb) = (serde_json::to_value(&a.spec).ok()?, serde_json::to_value(&b.spec).ok()?);
    first_difference("", &va, &vb)
}

/// The first place two JSON documents differ, as `a.b is X there and Y here`.
pub(crate) fn first_difference(path: &str, a: &serde_json::Value, b: &serde_json::Value) -> Option<String> {
    if a == b {
        return None;
    }
    if let (Some(ma), Some(mb)) = (a.as_object(), b.as_object()) {
        let keys: std::collections::BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
        let null = serde_json::Value::Null;
        for k in keys {
            let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            if let Some(d) = first_difference(&sub, ma.get(k).unwrap_or(&null), mb.get(k).unwrap_or(&null)) {
                return Some(d);
            }
        }
        return None;
    }
    Some(format!("{} is {a} there and {b} here", if path.is_empty() { "the spec" } else { path }))
}

/// The union of the shards' records on one clock, or `None` (with a note) when a shard's records
/// are missing or incomplete.
fn from_records(
    shards: &[ShardFile],
    epoch0: u64,
    opts: &inferbench_core::SummaryOptions,
    notes: &mut Vec<String>,
) -> Result<Option<Accumulator>, BenchError> {
    use rayon::prelude::*;
    let per_shard: Vec<Result<Option<Accumulator>, BenchError>> = shards
        .par_iter()
        .map(|s| {
            let info = shard_info(s);
            let shift = info.epoch_unix_ns.saturating_sub(epoch0);
            let cap = s.result.spec.max_concurrency;
            let mut acc = Accumulator::new(opts);
            let mut foreign: Option<u64> = None;
            let n = saved::for_each_owned_record_beside(&s.path, &s.result.header.run_id, |mut r| {
                if !info.shard.owns(r.id, cap) {
                    foreign.get_or_insert(r.id);
                }
                r.shift(shift);
                acc.add(&r);
            })?;
            if let Some(id) = foreign {
                return Err(BenchError::invalid(format!(
                    "{}: request {id} is not shard {}'s by the partition rule: these records are another run's",
                    s.path.with_extension("records.jsonl").display(),
                    info.shard
                )));
            }
            let want = s.result.summary.completed + s.result.summary.failed;
            Ok(n.filter(|&n| n == want).map(|_| acc))
        })
        .collect();
    let mut merged: Option<Accumulator> = None;
    for (s, r) in shards.iter().zip(per_shard) {
        let Some(acc) = r? else {
            notes.push(format!(
                "{}'s records are missing or incomplete: merged from the shards' accumulator states (percentiles within {:.1} %)",
                s.path.display(),
                HIST_RELATIVE_ERROR * 100.0
            ));
            return Ok(None);
        };
        match &mut merged {
            None => merged = Some(acc),
            Some(m) => m.merge(acc),
        }
    }
    Ok(merged)
}

/// The shards' accumulator states, merged on one clock, and the sum of their peaks.
fn from_states(shards: &[ShardFile], epoch0: u64, opts: &inferbench_core::SummaryOptions) -> Result<(Accumulator, u64), BenchError> {
    let mut merged: Option<Accumulator> = None;
    let mut peak = 0;
    for s in shards {
        let info = shard_info(s);
        let name = info.state_file.clone().unwrap_or_default();
        let path = s.path.parent().unwrap_or(Path::new(".")).join(&name);
        let text = std::fs::read(&path).map_err(|e| {
            BenchError::invalid(format!(
                "{}: neither complete records nor the accumulator state ({}: {e}) are there; this shard cannot be merged",
                s.path.display(),
                path.display()
            ))
        })?;
        let state: AccumulatorState =
            serde_json::from_slice(&text).map_err(|e| BenchError::invalid(format!("{}: not an accumulator state: {e}", path.display())))?;
        let mut acc = Accumulator::from_state(&state, opts).map_err(|e| BenchError::invalid(format!("{}: {e}", path.display())))?;
        acc.shift(info.epoch_unix_ns.saturating_sub(epoch0));
        peak += state.peak_in_flight;
        match &mut merged {
            None => merged = Some(acc),
            Some(m) => m.merge(acc),
        }
    }
    merged.map(|m| (m, peak)).ok_or_else(|| BenchError::invalid("no shards to merge"))
}
