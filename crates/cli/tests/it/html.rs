//! HTML reports opened in a real browser (Debian's `chromium`, headless; `.ci/run` installs it):
//! a run, a sweep and a comparison each get their charts (SVG with axis labels, the sweep's knee
//! marked), the page logs no console error, and a screenshot of each is kept under
//! `target/test-artefacts/`. Text, Markdown and CSV of each kind are checked by `report`.

use crate::harness::{run, Sim, BIN};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser, or `None` (then the test says so and passes only when CI did not ask for it).
pub(crate) fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
}

pub(crate) fn artefacts() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artefacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Opens `page` headless: its DOM after load, and the console errors the browser logged.
fn open(browser: &str, page: &Path, shot: &str) -> (String, Vec<String>) {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let common = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"];
    let dom = Command::new(browser).args(common).arg("--dump-dom").arg(&url).output().unwrap();
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let png = artefacts().join(shot);
    let s = Command::new(browser)
        .args(common)
        .args(["--window-size=1100,2400"])
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(png.metadata().is_ok_and(|m| m.len() > 10_000), "a screenshot was taken: {}", String::from_utf8_lossy(&s.stderr));
    let log = format!("{}{}", String::from_utf8_lossy(&dom.stderr), String::from_utf8_lossy(&s.stderr));
    let errors = log
        .lines()
        .filter(|l| {
            (l.contains(":CONSOLE") && (l.contains("ERROR") || l.contains("rror")))
                || l.contains("Uncaught")
                || l.contains("Failed to load resource")
        })
        .map(str::to_owned)
        .collect();
    (String::from_utf8_lossy(&dom.stdout).into_owned(), errors)
}

pub(crate) fn browser_or_skip() -> Option<&'static str> {
    let b = chromium();
    if b.is_none() {
        assert!(
            std::env::var_os("INFERBENCH_REQUIRE_BROWSER").is_none(),
            "chromium is required here (INFERBENCH_REQUIRE_BROWSER) but not installed"
        );
        eprintln!("SKIPPED: no chromium on this machine (apt install chromium; .ci/run installs it)");
    }
    b
}

/// The console check can fail: a page that logs an error is caught.
#[test]
fn a_console_error_is_caught() {
    let Some(b) = browser_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.html");
    std::fs::write(&p, "<!DOCTYPE html><html><body><p>x</p><script>console.error('planted error')</script></body></html>").unwrap();
    let (_, errors) = open(b, &p, "console-error-check.png");
    assert!(errors.iter().any(|e| e.contains("planted error")), "{errors:?}");
}

#[test]
fn run_sweep_and_compare_reports_render_in_a_browser() {
    let Some(b) = browser_or_skip() else { return };
    let _machine = crate::harness::machine_alone();
    // A run with its records and time series.
    let sim = Sim::start(&["--max-num-seqs", "4", "--itl-ms", "4", "--ttft-ms", "10"]);
    let base = run(
        &sim.url,
        &["--num-prompts", "80", "--max-concurrency", "4", "--random-output-len", "24", "--metrics-interval", "0.2", "--html"],
    );
    base.assert_ok();
    let html = base.file("html");
    let (dom, errors) = open(b, &html, "run.png");
    assert!(errors.is_empty(), "console errors: {errors:?}");
    for id in ["hist-ttft", "cdf-ttft", "hist-itl", "cdf-e2el", "throughput-over-time", "in-flight-over-time", "timeline", "server-queue"] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "chart {id} missing");
    }
    for label in ["TTFT (ms)", "fraction of requests", "time (s)", "tokens/s", "request id"] {
        assert!(dom.contains(&format!(">{label}</text>")), "axis label {label} missing");
    }
    assert!(dom.matches("<svg").count() >= 10);
    let size = html.metadata().unwrap().len();
    assert!(size < 2 << 20, "{size} bytes");

    // A candidate 30 % slower, compared with the HTML beside the comparison.
    drop(sim);
    let slow = Sim::start(&["--max-num-seqs", "4", "--itl-ms", "5.2", "--ttft-ms", "13"]);
    let cand = run(&slow.url, &["--num-prompts", "80", "--max-concurrency", "4", "--random-output-len", "24"]);
    cand.assert_ok();
    let cmp_json = base.dir.path().join("cmp.json");
    let o = Command::new(BIN)
        .arg("compare")
        .arg(base.file("json"))
        .arg(cand.file("json"))
        .arg("--output")
        .arg(&cmp_json)
        .arg("--html")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (dom, errors) = open(b, &cmp_json.with_extension("html"), "compare.png");
    assert!(errors.is_empty(), "console errors: {errors:?}");
    for id in ["cdf-TTFT", "cdf-E2EL", "speedups"] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "chart {id} missing");
    }
    assert!(dom.contains("data-name=\"baseline\"") && dom.contains("data-name=\"candidate\""));
    assert!(dom.contains("worse"), "the slower candidate is called worse");

    // A sweep whose knee is at c=4 (four sequences at most).
    drop(slow);
    let sim = Sim::start(&["--max-num-seqs", "4", "--itl-ms", "4", "--ttft-ms", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args([
            "sweep",
            "--base-url",
            &sim.url,
            "--backend",
            "vllm",
            "--disable-tqdm",
            "--random-input-len",
            "32",
            "--random-output-len",
            "16",
        ])
        .args([
            "--concurrencies",
            "1,2,4,8,16",
            "--num-prompts",
            "32",
            "--slo",
            "ttft:p50:40",
            "--html",
            "--result-filename",
            "s",
            "--result-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sweep: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.sweep.json")).unwrap()).unwrap();
    assert_eq!(sweep["knee"], 4.0, "{}", String::from_utf8_lossy(&o.stdout));
    let (dom, errors) = open(b, &dir.path().join("s.sweep.html"), "sweep.png");
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert!(dom.contains("id=\"sweep-latency\"") && dom.contains("id=\"sweep-throughput\""));
    assert!(dom.contains("class=\"mark knee\"") && dom.contains("knee (concurrency 4)"), "the knee is marked");
    assert!(dom.contains(">output throughput (tokens/s)</text>"));

    // A plan from the sweep; then every kind in every text format through `report`.
    let plan = dir.path().join("plan.json");
    let o = Command::new(BIN)
        .arg("plan")
        .arg(dir.path().join("s.sweep.json"))
        .args(["--slo", "ttft:p50:40", "--target-rate", "100", "--price-per-hour", "2", "--output"])
        .arg(&plan)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = |f: &Path, fmt: &str| {
        let o = Command::new(BIN)
            .arg("report")
            .arg(f)
            .args(["--format", fmt, "-o"])
            .arg(dir.path().join(format!("out.{fmt}")))
            .output()
            .unwrap();
        assert!(o.status.success(), "{} {fmt}: {}", f.display(), String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(dir.path().join(format!("out.{fmt}"))).unwrap()
    };
    let sweep_file = dir.path().join("s.sweep.json");
    for (file, text_has, csv_head) in [
        (&sweep_file, "Knee: c=4", "load,runs,request_throughput"),
        (&cmp_json, "TTFT median", "group,key,metric"),
        (&plan, "replicas", "slos,load_per_replica"),
    ] {
        assert!(report(file, "text").contains(text_has), "{}", file.display());
        let md = report(file, "md");
        assert!(md.contains(text_has) && (md.contains("|") || md.contains("```")), "{md}");
        let csv = report(file, "csv");
        assert!(csv.starts_with(csv_head) && csv.lines().count() >= 2, "{csv}");
        let page = report(file, "html");
        assert!(page.contains("<svg") && page.contains("</html>"), "{}", file.display());
    }
    let row = report(&plan, "csv").lines().nth(1).unwrap().to_owned();
    let replicas: u64 = row.split(',').nth(2).unwrap().parse().unwrap_or_else(|_| panic!("{row}"));
    assert!(replicas >= 2, "100 req/s on replicas that hold about 54 each: {row}");
}

/// `inferbench report` renders every kind in every format; a file of an unknown kind or schema
/// version is one clear line naming it.
#[test]
fn report_renders_each_kind_and_refuses_what_it_cannot_read() {
    let _machine = crate::harness::machine_shared();
    let sim = Sim::start(&["--ttft-ms", "2", "--itl-ms", "1"]);
    let r = run(&sim.url, &["--num-prompts", "20", "--max-concurrency", "2", "--random-output-len", "8"]);
    let json = r.assert_ok().file("json");
    let report = |args: &[&str]| Command::new(BIN).arg("report").args(args).output().unwrap();
    let text = report(&[json.to_str().unwrap()]);
    assert!(text.status.success() && String::from_utf8_lossy(&text.stdout).contains("Serving Benchmark Result"));
    let md = String::from_utf8_lossy(&report(&[json.to_str().unwrap(), "--format", "md"]).stdout).into_owned();
    assert!(md.contains("| ") && md.contains("---"), "{md}");
    let csv = String::from_utf8_lossy(&report(&[json.to_str().unwrap(), "--format", "csv"]).stdout).into_owned();
    assert!(csv.lines().count() >= 2 && csv.lines().next().unwrap().contains(','), "{csv}");
    let js: serde_json::Value = serde_json::from_slice(&report(&[json.to_str().unwrap(), "--format", "json"]).stdout).unwrap();
    assert_eq!(js["completed"], 20);
    let out = r.dir.path().join("page.html");
    let h = report(&[json.to_str().unwrap(), "--format", "html", "-o", out.to_str().unwrap()]);
    assert!(h.status.success());
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(
        page.starts_with("<!DOCTYPE html>")
            && page.contains("id=\"cdf-ttft\"")
            && !page.contains("http://cdn")
            && !page.contains("<script src")
    );
    // Unknown kind, newer schema.
    let bad = r.dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"schema_version": 2, "kind": "spaceship"}"#).unwrap();
    let o = report(&[bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.lines().count() == 1 && err.contains("bad.json"), "{err}");
    std::fs::write(&bad, r#"{"schema_version": 99, "kind": "run"}"#).unwrap();
    let o = report(&[bad.to_str().unwrap(), "--format", "html"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(2) && err.contains("bad.json") && err.contains("99"), "{err}");
    let o = report(&[json.to_str().unwrap(), "--format", "pdf"]);
    assert_eq!(o.status.code(), Some(2));
}
