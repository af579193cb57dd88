//! HTML reports of saved results, with what lies beside them: a run's records (streamed) and time
//! series, a comparison's two runs' records. `inferbench report --format html` and `--html` on
//! the commands both come here.

use crate::error::BenchError;
use crate::saved;
use inferbench_core::{BenchmarkResult, SavedResult};
use inferbench_report::html::{self, RunData};
use std::path::{Path, PathBuf};

/// The HTML of the result saved at `path`.
pub fn render(path: &Path, r: &SavedResult) -> Result<String, BenchError> {
    Ok(match r {
        SavedResult::Run(x) => run(path, x)?,
        SavedResult::Compare(c) => {
            // The two files as the comparison named them: from here, or beside the comparison.
            let dir = path.parent().unwrap_or(Path::new("."));
            let find = |s: &str| if Path::new(s).exists() { PathBuf::from(s) } else { dir.join(s) };
            let cdfs = compare_samples(&find(&c.baseline), &find(&c.candidate)).unwrap_or_default();
            html::compare(c, &cdfs)
        }
        other => html::render(other),
    })
}

/// `x.json` → `x.html`.
pub fn path_beside(path: &Path) -> PathBuf {
    path.with_extension("html")
}

fn run(path: &Path, r: &BenchmarkResult) -> Result<String, BenchError> {
    let mut data = RunData::new(r.summary.duration_s);
    let found = saved::for_each_record_beside(path, &r.header.run_id, |rec| data.add(rec))?;
    let series_path = path.with_extension("timeseries.jsonl");
    let series: Vec<serde_json::Value> =
        std::fs::read_to_string(series_path).map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()).unwrap_or_default();
    Ok(html::run(r, found.filter(|n| *n > 0).map(|_| data), &series))
}

/// TTFT, TPOT and E2EL of the successful requests of two runs, from their records, when both
/// files are runs with records beside them.
fn compare_samples(base: &Path, cand: &Path) -> Option<Vec<html::PairedSamples>> {
    let values = |p: &Path| -> Option<[Vec<f64>; 3]> {
        let SavedResult::Run(r) = saved::read(p).ok()? else { return None };
        let mut v: [Vec<f64>; 3] = Default::default();
        let mut stride = 1u64;
        saved::for_each_record_beside(p, &r.header.run_id, |rec| {
            if rec.is_success() && rec.id % stride == 0 {
                rec.ttft_ms().inspect(|x| v[0].push(*x));
                rec.tpot_ms().inspect(|x| v[1].push(*x));
                v[2].push(rec.e2el_ms());
                if v[2].len() > html::MAX_VALUES {
                    stride *= 2;
                    // Halve what was kept so the sample stays even.
                    for s in &mut v {
                        let mut i = 0;
                        s.retain(|_| {
                            i += 1;
                            i % 2 == 1
                        });
                    }
                }
            }
        })
        .ok()??;
        Some(v)
    };
    let (b, c) = (values(base)?, values(cand)?);
    Some(["TTFT", "TPOT", "E2EL"].iter().zip(b).zip(c).map(|((n, b), c)| ((*n).to_owned(), b, c)).collect())
}
