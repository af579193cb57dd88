//! Result files: the summary JSON and CSV (replaced atomically) and the per-request JSONL
//! (appended as each request completes, so an interrupted run loses nothing).

use inferbench_core::{BenchmarkResult, RequestRecord};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A result file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct ReportError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError { path: path.to_owned(), source }
}

#[cfg(unix)]
fn temp_builder() -> tempfile::Builder<'static, 'static> {
    use std::os::unix::fs::PermissionsExt;
    let mut b = tempfile::Builder::new();
    b.permissions(std::fs::Permissions::from_mode(0o666));
    b
}

#[cfg(not(unix))]
fn temp_builder() -> tempfile::Builder<'static, 'static> {
    tempfile::Builder::new()
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place, so readers never
/// see a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // 0666 before the umask, like any file the user's tools create (a plain NamedTempFile would
    // be 0600 while the records beside it are 0644).
    let mut tmp = temp_builder().tempfile_in(dir).map_err(err(path))?;
    tmp.write_all(bytes).map_err(err(path))?;
    tmp.as_file().sync_data().map_err(err(path))?;
    tmp.persist(path).map_err(|e| ReportError { path: path.to_owned(), source: e.error })?;
    Ok(())
}

/// Writes the result JSON (pretty, with vLLM's flat keys).
pub fn write_json(path: &Path, r: &BenchmarkResult) -> Result<(), ReportError> {
    let mut bytes = serde_json::to_vec_pretty(&r.to_json()).map_err(std::io::Error::from).map_err(err(path))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Writes a one-row CSV of the headline metrics (a header line, then the values), easy to
/// concatenate across runs.
pub fn write_csv_summary(path: &Path, r: &BenchmarkResult) -> Result<(), ReportError> {
    let text = crate::csv::run(r).map_err(std::io::Error::other).map_err(err(path))?;
    write_atomic(path, text.as_bytes())
}

/// Appends one JSON line per record, after a first line naming the run (`{"run_id": ...}`) so a
/// reader can tell whether the records belong to the summary beside them. Lines are buffered and
/// written whole: after a failed write (a full disk) the file is cut back to its last complete
/// line, and the error says how many records it holds.
#[derive(Debug)]
pub struct RecordWriter {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// End offset in `buf` of each line it holds.
    ends: Vec<usize>,
    /// Bytes and records known to be in the file.
    on_disk: u64,
    records_on_disk: u64,
    records_seen: u64,
    failed: bool,
}

/// Bytes buffered before a write to the file.
const RECORD_BUFFER: usize = 256 << 10;

impl RecordWriter {
    /// Creates (truncates) the file and writes the run-id line.
    pub fn create(path: &Path, run_id: &str) -> Result<Self, ReportError> {
        let file = File::create(path).map_err(err(path))?;
        let mut w = Self {
            path: path.to_owned(),
            file,
            buf: Vec::with_capacity(RECORD_BUFFER + 4096),
            ends: Vec::new(),
            on_disk: 0,
            records_on_disk: 0,
            records_seen: 0,
            failed: false,
        };
        let head = serde_json::json!({"run_id": run_id, "kind": "records", "schema_version": inferbench_core::SCHEMA_VERSION});
        w.buf.extend_from_slice(head.to_string().as_bytes());
        w.buf.push(b'\n');
        w.flush()?;
        Ok(w)
    }

    /// Appends one record.
    pub fn write(&mut self, r: &RequestRecord) -> Result<(), ReportError> {
        serde_json::to_writer(&mut self.buf, r).map_err(std::io::Error::from).map_err(err(&self.path))?;
        self.buf.push(b'\n');
        self.ends.push(self.buf.len());
        self.records_seen += 1;
        if self.buf.len() >= RECORD_BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    /// Pushes buffered lines to the OS. On failure the file is cut back to whole lines.
    pub fn flush(&mut self) -> Result<(), ReportError> {
        if self.buf.is_empty() || self.failed {
            return Ok(());
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => {
                self.on_disk += self.buf.len() as u64;
                self.records_on_disk += self.ends.len() as u64;
                self.buf.clear();
                self.ends.clear();
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                // How much of the buffer reached the file, then back to the last whole line.
                let len = self.file.metadata().map_or(self.on_disk, |m| m.len());
                let written = len.saturating_sub(self.on_disk) as usize;
                let whole = self.ends.iter().take_while(|&&end| end <= written).count();
                let keep = if whole == 0 { 0 } else { self.ends[whole - 1] };
                let _ = self.file.set_len(self.on_disk + keep as u64);
                self.records_on_disk += whole as u64;
                Err(ReportError {
                    path: self.path.clone(),
                    source: std::io::Error::new(
                        e.kind(),
                        format!("{e}; the file holds the first {} of {} records, each line whole", self.records_on_disk, self.records_seen),
                    ),
                })
            }
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The JSONL file as a sink: each record appended as it arrives, flushed after every batch.
impl inferbench_core::RecordSink for RecordWriter {
    fn record(&mut self, r: &RequestRecord) -> Result<(), inferbench_core::SinkError> {
        self.write(r).map_err(Into::into)
    }
    fn flush(&mut self) -> Result<(), inferbench_core::SinkError> {
        RecordWriter::flush(self).map_err(Into::into)
    }
    fn finish(&mut self) -> Result<(), inferbench_core::SinkError> {
        RecordWriter::flush(self).map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_reports_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let e = write_atomic(&dir.path().join("missing/r.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("missing/r.json"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn summaries_and_records_get_the_same_umask_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (j, r) = (dir.path().join("r.json"), dir.path().join("r.records.jsonl"));
        write_atomic(&j, b"{}").unwrap();
        RecordWriter::create(&r, "test").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // The records are a plain File::create (0666 less the umask); under the usual 022 the
        // temporary-file mode this replaced (0600) differed from it.
        assert_eq!(mode(&j), mode(&r), "both follow the umask");
    }
}
