//! Result files: the summary JSON and CSV (replaced atomically) and the per-request JSONL
//! (appended as each request completes, so an interrupted run loses nothing).

use inferbench_core::{BenchmarkResult, RequestRecord};
use std::fs::File;
use std::io::{BufWriter, Write};
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

/// Writes `bytes` to a temporary file beside `path` and renames it into place, so readers never
/// see a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err(path))?;
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

/// Appends one JSON line per record. Buffered, and flushed whenever the producer has nothing
/// more queued (see [`RecordWriter::flush`]), so a crash loses at most the records in flight.
#[derive(Debug)]
pub struct RecordWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl RecordWriter {
    /// Creates (truncates) the file.
    pub fn create(path: &Path) -> Result<Self, ReportError> {
        let f = File::create(path).map_err(err(path))?;
        Ok(Self { path: path.to_owned(), out: BufWriter::with_capacity(256 << 10, f) })
    }

    /// Appends one record.
    pub fn write(&mut self, r: &RequestRecord) -> Result<(), ReportError> {
        serde_json::to_writer(&mut self.out, r).map_err(std::io::Error::from).map_err(err(&self.path))?;
        self.out.write_all(b"\n").map_err(err(&self.path))
    }

    /// Pushes buffered lines to the OS.
    pub fn flush(&mut self) -> Result<(), ReportError> {
        self.out.flush().map_err(err(&self.path))
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
}
