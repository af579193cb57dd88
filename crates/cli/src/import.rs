//! `inferbench import --from TOOL FILE...`: another tool's results written as ours (the library's
//! `import` does the mapping), indexed in the store, and summarised with what was left out.

use crate::args::ImportArgs;
use crate::usage;
use anyhow::Result;
use inferbench_bench::import::{import, Tool};
use inferbench_core::SavedResult;
use inferbench_report::{render_summary, ConsoleOptions};

/// Runs `inferbench import`.
pub fn run(a: &ImportArgs) -> Result<()> {
    let tool: Tool = a.from.parse().map_err(|e: String| usage(format!("--from: {e}")))?;
    if a.output.is_some() && a.files.len() > 1 {
        return Err(usage("--output names one file: import one file with it, or use --result-dir for several"));
    }
    if a.benchmark == 0 {
        return Err(usage("--benchmark counts from 1"));
    }
    let labels = crate::labels(&a.label)?;
    let mut written = Vec::new();
    for f in &a.files {
        let mut r = import(tool, f, a.benchmark - 1)?;
        r.header.labels.extend(labels.clone());
        let out = match &a.output {
            Some(o) => o.clone(),
            None => {
                let stem = f.file_stem().map_or_else(|| "result".into(), |s| s.to_string_lossy().into_owned());
                a.result_dir.join(format!("imported-{}-{stem}.json", tool.name()))
            }
        };
        if out == *f {
            return Err(usage(format!("--output {}: that is the input file", out.display())));
        }
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        }
        let info = r.imported.clone().unwrap_or_default();
        let saved = SavedResult::Run(Box::new(r));
        inferbench_bench::saved::write(&out, &saved)?;
        if !a.quiet {
            if let SavedResult::Run(r) = &saved {
                out!("{}", render_summary(r, &ConsoleOptions::default()));
            }
            let how = if info.per_request { "recomputed from its per-request data" } else { "its summary figures" };
            let version = info.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
            outln!("Imported {} ({}{version}, {how}) -> {}", f.display(), tool.name(), out.display());
            for n in &info.notes {
                outln!("  note: {n}");
            }
            outln!("  not measured (left empty): {}", info.not_measured.join(", "));
        }
        written.push(out);
    }
    crate::store::record(&a.store, &written);
    Ok(())
}
