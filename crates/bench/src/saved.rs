//! Reading saved results of every kind into their types, with one clear error for a file that is
//! none of them or has another schema version; and writing them atomically.

use crate::error::BenchError;
use inferbench_core::record::RequestRecord;
use inferbench_core::sweep::SweepResult;
use inferbench_core::SavedResult;
use std::path::{Path, PathBuf};

/// Reads and classifies a result file.
pub fn read(path: &Path) -> Result<SavedResult, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::failed(format!("cannot read {}: {e}", path.display())))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| BenchError::invalid(format!("{}:{}: not JSON: {e}", path.display(), e.line())))?;
    SavedResult::from_json(v).map_err(|e| BenchError::invalid(format!("{}: {e}", path.display())))
}

/// Reads a sweep result, or says what the file is instead.
pub fn read_sweep(path: &Path) -> Result<SweepResult, BenchError> {
    match read(path)? {
        SavedResult::Sweep(s) => Ok(*s),
        other => Err(BenchError::invalid(format!(
            "{}: {}, not a sweep (make one with `inferbench sweep`)",
            path.display(),
            other.kind().described()
        ))),
    }
}

/// Writes a result as JSON, atomically (a reader never sees half a file).
pub fn write(path: &Path, r: &SavedResult) -> Result<(), BenchError> {
    let bytes = serde_json::to_vec_pretty(&r.to_json()).map_err(|e| BenchError::failed(e.to_string()))?;
    inferbench_report::write_atomic(path, &bytes).map_err(|e| BenchError::failed(e.to_string()))
}

/// The per-request records beside a result file (`x.json` → `x.records.jsonl`), if present.
/// They must be the same run's: a records file whose first line names another run than
/// `run_id` is refused (a rerun under the same name was interrupted, say).
pub fn records_beside(path: &Path, run_id: &str) -> Result<Option<Vec<RequestRecord>>, BenchError> {
    let rec_path: PathBuf = path.with_extension("records.jsonl");
    let text = match std::fs::read_to_string(&rec_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BenchError::failed(format!("cannot read {}: {e}", rec_path.display()))),
    };
    let (id, records) = parse_records(&text, &rec_path)?;
    if let Some(id) = id.filter(|id| !run_id.is_empty() && id != run_id) {
        return Err(BenchError::invalid(format!(
            "{} is from run {id}, but {} is from run {run_id}: they are not one run's files (was a rerun under the same name interrupted?)",
            rec_path.display(),
            path.display()
        )));
    }
    Ok(Some(records))
}

/// Streams the records beside a result file (`x.json` → `x.records.jsonl`) through `f`, 64k lines
/// at a time parsed in parallel, so a million-request run never sits in memory whole. `Ok(None)`
/// when there is no records file; refused like [`records_beside`] when it is another run's.
pub fn for_each_record_beside(path: &Path, run_id: &str, mut f: impl FnMut(&RequestRecord)) -> Result<Option<u64>, BenchError> {
    for_each_owned_record_beside(path, run_id, |r| f(&r))
}

/// [`for_each_record_beside`], handing each record over (a merge moves it onto another clock
/// without copying it).
pub fn for_each_owned_record_beside(path: &Path, run_id: &str, mut f: impl FnMut(RequestRecord)) -> Result<Option<u64>, BenchError> {
    use rayon::prelude::*;
    use std::io::BufRead;
    let rec_path: PathBuf = path.with_extension("records.jsonl");
    let file = match std::fs::File::open(&rec_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BenchError::failed(format!("cannot read {}: {e}", rec_path.display()))),
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let (mut n, mut line_no, mut first) = (0u64, 0usize, true);
    const CHUNK: usize = 1 << 16;
    // Line buffers are reused from chunk to chunk: no allocation per line once warm.
    let mut bufs: Vec<Vec<u8>> = Vec::with_capacity(CHUNK);
    let mut nums: Vec<usize> = vec![0; CHUNK];
    loop {
        let mut filled = 0;
        while filled < CHUNK {
            if bufs.len() == filled {
                bufs.push(Vec::with_capacity(512));
            }
            let buf = &mut bufs[filled];
            buf.clear();
            let got = reader.read_until(b'\n', buf).map_err(|e| BenchError::failed(format!("cannot read {}: {e}", rec_path.display())))?;
            if got == 0 {
                break;
            }
            line_no += 1;
            if first {
                first = false;
                if let Some(id) = std::str::from_utf8(buf).ok().and_then(header_run_id) {
                    if !run_id.is_empty() && id != run_id {
                        return Err(BenchError::invalid(format!(
                            "{} is from run {id}, but {} is from run {run_id}: they are not one run's files",
                            rec_path.display(),
                            path.display()
                        )));
                    }
                    continue;
                }
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            nums[filled] = line_no;
            filled += 1;
        }
        if filled == 0 {
            return Ok(Some(n));
        }
        let last = filled < CHUNK;
        let parsed: Vec<Result<RequestRecord, serde_json::Error>> = bufs[..filled].par_iter().map(|l| serde_json::from_slice(l)).collect();
        for (k, r) in parsed.into_iter().enumerate() {
            match r {
                Ok(r) => {
                    n += 1;
                    f(r);
                }
                // A torn last line: the writer was stopped mid-line.
                Err(_) if last && k + 1 == filled => tracing::warn!("{}:{}: skipping a torn last line", rec_path.display(), nums[k]),
                Err(e) => return Err(BenchError::invalid(format!("{}:{}: bad record: {e}", rec_path.display(), nums[k]))),
            }
        }
        if last {
            return Ok(Some(n));
        }
    }
}

/// The run id of a records file's first line, if it has one.
fn header_run_id(line: &str) -> Option<String> {
    if !line.contains("\"run_id\"") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v.get("id").is_none()).then(|| v["run_id"].as_str().map(str::to_owned)).flatten()
}

/// Parses JSONL records in parallel (a million records parse in about a second on two cores).
/// The parse writes into an exactly sized vector, so nothing is copied twice.
///
/// A torn last line (no newline, not valid JSON: the writer was killed mid-line) is skipped with a
/// warning; a bad line anywhere else is an error naming it.
pub fn parse_records(text: &str, path: &Path) -> Result<(Option<String>, Vec<RequestRecord>), BenchError> {
    use rayon::prelude::*;
    let mut lines: Vec<(usize, &str)> = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).collect();
    let run_id = lines.first().and_then(|(_, l)| header_run_id(l));
    if run_id.is_some() {
        lines.remove(0);
    }
    let parsed: Vec<Result<RequestRecord, serde_json::Error>> = lines.par_iter().map(|(_, l)| serde_json::from_str(l)).collect();
    let torn_tail = !text.ends_with('\n');
    let n = parsed.len();
    let mut out = Vec::with_capacity(n);
    for (k, (r, (i, _))) in parsed.into_iter().zip(&lines).enumerate() {
        match r {
            Ok(r) => out.push(r),
            Err(_) if torn_tail && k + 1 == n => {
                tracing::warn!("{}:{}: skipping a torn last line (the writer was stopped mid-line)", path.display(), i + 1);
            }
            Err(e) => return Err(BenchError::invalid(format!("{}:{}: bad record: {e}", path.display(), i + 1))),
        }
    }
    Ok((run_id, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: u64) -> String {
        format!(
            r#"{{"id":{id},"scheduled_ns":0,"gate_ns":0,"sent_ns":0,"first_token_ns":5,"end_ns":9,"itl_ns":[4],"input_tokens":3,"output_tokens":2,"token_source":"server","status":"success"}}"#
        )
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_a_torn_middle_refused() {
        let p = Path::new("r.records.jsonl");
        let whole = format!("{{\"run_id\":\"abc\",\"kind\":\"records\"}}\n{}\n{}\n", line(0), line(1));
        let (id, recs) = parse_records(&whole, p).unwrap();
        assert_eq!((id.as_deref(), recs.len()), (Some("abc"), 2));
        let torn = format!("{whole}{}", &line(2)[..40]);
        assert_eq!(parse_records(&torn, p).unwrap().1.len(), 2, "the torn tail is dropped");
        let middle = format!("{}\n{}\n{}\n", line(0), &line(1)[..40], line(2));
        let e = parse_records(&middle, p).unwrap_err().to_string();
        assert!(e.contains("r.records.jsonl:2: bad record"), "{e}");
    }
}
