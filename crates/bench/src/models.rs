//! Resolving a model argument to a GGUF file: an existing path as it is, else a known name in
//! the cache, pulled (and verified) when missing.

use crate::error::BenchError;
use inferbench_engine::cache::{self, KnownModel, DEFAULT_MODEL, KNOWN};
use std::path::PathBuf;

/// What a pull reports while it runs.
#[derive(Debug)]
pub enum PullEvent<'a> {
    /// A known model is missing from the cache and is being pulled into `dir`.
    Start {
        /// The model.
        model: &'a KnownModel,
        /// The cache directory.
        dir: &'a std::path::Path,
    },
    /// Bytes so far, and the total when known.
    Progress {
        /// Bytes received.
        done: u64,
        /// Bytes expected.
        total: Option<u64>,
    },
    /// The file is in the cache, verified.
    Done {
        /// Where it came from (`huggingface`, `pypi`).
        source: &'a str,
        /// The URL it was fetched from.
        url: &'a str,
        /// Sources tried first that failed, with why.
        fell_back_from: &'a [String],
    },
}

/// `; the first sources failed (…)` for a pull that fell back, else nothing: a pull from the
/// second source must say so, or a user behind a firewall never learns why the hub was skipped.
pub fn fallback_text(fell_back_from: &[String]) -> String {
    if fell_back_from.is_empty() {
        String::new()
    } else {
        format!(", after falling back past {}", fell_back_from.join("; "))
    }
}

/// A known model by name (the default when `None`), or a message listing the known ones.
pub fn known(name: Option<&str>) -> Result<&'static KnownModel, BenchError> {
    let name = name.unwrap_or(DEFAULT_MODEL);
    cache::known(name).ok_or_else(|| {
        let names: Vec<&str> = KNOWN.iter().map(|m| m.name).collect();
        BenchError::invalid(format!("unknown model '{name}'; known models: {} (or pass a path to a .gguf file)", names.join(", ")))
    })
}

/// Resolves a model argument to its file and a served name, pulling a known model into the cache
/// when it is missing. `on_pull` hears about a pull; it is not called otherwise.
pub fn resolve(spec: Option<&str>, on_pull: &mut dyn FnMut(PullEvent<'_>)) -> Result<(PathBuf, String), BenchError> {
    if let Some(s) = spec {
        let p = PathBuf::from(s);
        if p.is_file() {
            let name = p.file_stem().map_or_else(|| s.to_owned(), |n| n.to_string_lossy().into_owned());
            return Ok((p, name));
        }
        if s.ends_with(".gguf") && cache::known(s).is_none() {
            return Err(BenchError::invalid(format!("model {s}: no such file")));
        }
    }
    let m = known(spec)?;
    let dir = cache::cache_dir();
    let path = dir.join(m.file);
    // A file of the right size is trusted here; `inferbench model verify` checks the hash.
    if std::fs::metadata(&path).is_ok_and(|md| md.len() == m.size) {
        return Ok((path, m.name.to_owned()));
    }
    on_pull(PullEvent::Start { model: m, dir: &dir });
    let (path, prov) = cache::pull(m, &dir, &mut |done, total| on_pull(PullEvent::Progress { done, total }))
        .map_err(|e| BenchError::failed(format!("pulling {}: {e}", m.name)))?;
    on_pull(PullEvent::Done { source: &prov.source, url: &prov.url, fell_back_from: &prov.fell_back_from });
    Ok((path, m.name.to_owned()))
}
