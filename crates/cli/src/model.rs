//! `inferbench model`: the local model cache (pull, list, verify), and resolving `--model` to a
//! file, pulling the default model when it is missing.

use crate::args::ModelCmd;
use anyhow::{bail, Result};
use inferbench_engine::cache::{self as models, KnownModel, KNOWN};
use std::path::PathBuf;

fn known(name: Option<&str>) -> Result<&'static KnownModel> {
    Ok(inferbench_bench::models::known(name)?)
}

/// Pulls with a progress bar on stderr.
fn pull(m: &KnownModel) -> Result<(PathBuf, models::Provenance)> {
    let dir = models::cache_dir();
    let bar = crate::progress::byte_bar(m);
    let r = models::pull(m, &dir, &mut |done, total| crate::progress::advance(&bar, done, total));
    bar.finish_and_clear();
    Ok(r?)
}

/// Resolves `--model`, pulling a known model with a progress bar when it is missing.
pub fn resolve(spec: Option<&str>) -> Result<(PathBuf, String)> {
    Ok(inferbench_bench::models::resolve(spec, &mut crate::progress::pull_bar())?)
}

/// Runs `inferbench model ...`.
pub fn run(cmd: ModelCmd) -> Result<()> {
    let dir = models::cache_dir();
    match cmd {
        ModelCmd::Pull { name } => {
            let m = known(name.as_deref())?;
            let (path, prov) = pull(m)?;
            outln!("{} -> {}", m.name, path.display());
            outln!("  source: {}{}", prov.source, if prov.url.is_empty() { String::new() } else { format!(" ({})", prov.url) });
            outln!("  sha256: {} (verified)", prov.sha256);
            for f in &prov.fell_back_from {
                outln!("  fell back past {f}");
            }
            Ok(())
        }
        ModelCmd::List => {
            outln!("cache: {}", dir.display());
            let cached = models::list(&dir)?;
            for m in KNOWN {
                let have = cached.iter().find(|c| c.path.file_name().is_some_and(|f| f == m.file));
                let state = match have {
                    Some(c) => format!(
                        "cached, {:.1} MB, from {}",
                        c.size as f64 / 1e6,
                        c.provenance.as_ref().map_or("unknown source", |p| p.source.as_str())
                    ),
                    None => format!("not cached ({:.1} MB; `inferbench model pull {}`)", m.size as f64 / 1e6, m.name),
                };
                outln!("  {:<24} {}", m.name, state);
            }
            for c in cached.iter().filter(|c| !KNOWN.iter().any(|m| c.path.file_name().is_some_and(|f| f == m.file))) {
                outln!("  {:<24} cached, {:.1} MB, not a known model", c.name, c.size as f64 / 1e6);
            }
            Ok(())
        }
        ModelCmd::Verify { name } => {
            let targets: Vec<&KnownModel> = match name {
                Some(n) => vec![known(Some(&n))?],
                None => KNOWN.iter().filter(|m| dir.join(m.file).exists()).collect(),
            };
            if targets.is_empty() {
                outln!("no known model is cached in {}", dir.display());
                return Ok(());
            }
            let mut ok = true;
            for m in targets {
                match models::verify(m, &dir) {
                    Ok(p) => outln!("ok    {} ({})", m.name, p.display()),
                    Err(e) => {
                        ok = false;
                        outln!("FAIL  {}: {e}", m.name);
                    }
                }
            }
            if !ok {
                bail!("checksum verification failed");
            }
            Ok(())
        }
    }
}
