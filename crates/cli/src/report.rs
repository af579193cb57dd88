//! `inferbench report`: saved results re-rendered in any format, HTML with charts included.

use crate::args::ReportArgs;
use crate::usage;
use anyhow::{Context, Result};
use inferbench_report::Format;
use std::path::{Path, PathBuf};

/// Renders one saved file in `format`.
pub fn render(path: &Path, format: Format) -> Result<String> {
    let r = inferbench_bench::saved::read(path)?;
    Ok(match format {
        Format::Html => inferbench_bench::html::render(path, &r)?,
        f => inferbench_report::writer(f).render(&r).map_err(|e| usage(format!("{}: {e}", path.display())))?,
    })
}

/// Writes `path`'s HTML beside it (`x.json` → `x.html`); returns where.
pub fn html_beside(path: &Path) -> Result<PathBuf> {
    let out = inferbench_bench::html::path_beside(path);
    let page = render(path, Format::Html)?;
    inferbench_report::write_atomic(&out, page.as_bytes()).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}

fn ext(f: Format) -> &'static str {
    match f {
        Format::Text => "txt",
        Format::Markdown => "md",
        Format::Csv => "csv",
        Format::Json => "json",
        Format::Html => "html",
    }
}

/// Runs `inferbench report`.
pub fn run(a: &ReportArgs) -> Result<()> {
    let format: Format = a.format.parse().map_err(|e: String| usage(format!("invalid --format '{}': {e}", a.format)))?;
    let many = a.files.len() > 1;
    if let Some(dir) = a.output.as_ref().filter(|_| many) {
        std::fs::create_dir_all(dir).with_context(|| format!("--output: cannot create {}", dir.display()))?;
    }
    for path in &a.files {
        let target = match &a.output {
            Some(o) if many => {
                let stem = path.file_stem().map_or_else(|| "result".into(), |s| s.to_string_lossy().into_owned());
                Some(o.join(format!("{stem}.{}", ext(format))))
            }
            Some(o) => Some(o.clone()),
            None if format == Format::Html => Some(inferbench_bench::html::path_beside(path)),
            None => None,
        };
        if target.as_deref() == Some(path.as_path()) {
            return Err(usage(format!("--output {}: that is the input file", path.display())));
        }
        let doc = render(path, format)?;
        match target {
            Some(t) => {
                inferbench_report::write_atomic(&t, doc.as_bytes()).with_context(|| format!("cannot write {}", t.display()))?;
                outln!("wrote {}", t.display());
            }
            None => out!("{doc}"),
        }
    }
    Ok(())
}
