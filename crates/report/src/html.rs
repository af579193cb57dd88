//! HTML reports: one self-contained file per result (inline CSS and SVG, nothing fetched), readable
//! on screen and on paper. A run's charts come from its records file, streamed through
//! [`RunData`] so a million-request run is drawn from binned and evenly sampled data (the page
//! says which); the figures in its tables are the saved summary's, exact.

use crate::svg::{esc, fmt_tick, heatmap, Chart, Kind, Series};
use inferbench_core::capacity::{CapacityPlan, PlanChoice};
use inferbench_core::comparison::CompareResult;
use inferbench_core::engine_bench::EngineResult;
use inferbench_core::sweep::SweepResult;
use inferbench_core::{BenchmarkResult, MetricName, RequestRecord, SavedResult, Summary};
use std::fmt::Write as _;

/// Values kept per distribution; past it, every k-th request's values are kept (k doubling).
pub const MAX_VALUES: usize = 200_000;
/// Requests drawn on the timeline.
pub const MAX_TIMELINE: usize = 2_000;
/// Time bins of the over-time charts.
pub const MAX_BINS: usize = 600;

/// What a run's charts need, gathered from its records one at a time.
#[derive(Debug)]
pub struct RunData {
    stride: u64,
    values: [Vec<f64>; 4],
    timeline: Vec<[f64; 5]>,
    timeline_stride: u64,
    bin_s: f64,
    tokens: Vec<f64>,
    in_flight: Vec<f64>,
    /// Records read.
    pub records: u64,
}

impl RunData {
    /// Ready for a run `duration_s` long.
    pub fn new(duration_s: f64) -> Self {
        let bin_s = (duration_s / MAX_BINS as f64).max(1.0);
        Self {
            stride: 1,
            values: Default::default(),
            timeline: Vec::new(),
            timeline_stride: 1,
            bin_s,
            tokens: Vec::new(),
            in_flight: Vec::new(),
            records: 0,
        }
    }

    fn bin(&mut self, t_s: f64, which: bool) -> Option<&mut f64> {
        let i = (t_s / self.bin_s).floor();
        if !(0.0..(MAX_BINS * 4) as f64).contains(&i) {
            return None;
        }
        let i = i as usize;
        let v = if which { &mut self.tokens } else { &mut self.in_flight };
        if v.len() <= i {
            v.resize(i + 1, 0.0);
        }
        Some(&mut v[i])
    }

    /// Takes one record.
    pub fn add(&mut self, r: &RequestRecord) {
        self.records += 1;
        let s = |ns: u64| ns as f64 / 1e9;
        // Requests in flight: each request's overlap with each bin, over the bin's length.
        // (By bin index: stepping a float time from edge to edge can stall on a rounded edge.)
        let (a, b) = (s(r.start_ns()), s(r.end_ns.max(r.start_ns())));
        let (first, last) = ((a / self.bin_s).floor() as i64, (b / self.bin_s).floor() as i64);
        for i in first.max(0)..=last.min((MAX_BINS * 4) as i64) {
            let (lo, hi) = (i as f64 * self.bin_s, (i + 1) as f64 * self.bin_s);
            let w = (b.min(hi) - a.max(lo)) / self.bin_s;
            if w > 0.0 {
                if let Some(x) = self.bin(lo + self.bin_s / 2.0, false) {
                    *x += w;
                }
            }
        }
        if r.is_success() {
            // Output tokens where their chunks arrived, shared evenly among the chunks.
            if let Some(first) = r.first_token_ns {
                let per = r.output_tokens as f64 / (r.itl_ns.len() + 1) as f64;
                let mut at = first;
                if let Some(x) = self.bin(s(at), true) {
                    *x += per;
                }
                for g in &r.itl_ns {
                    at += g;
                    if let Some(x) = self.bin(s(at), true) {
                        *x += per;
                    }
                }
            }
            if r.id % self.stride == 0 {
                let vals = [r.ttft_ms(), r.tpot_ms(), None, Some(r.e2el_ms())];
                for (k, v) in vals.into_iter().enumerate() {
                    if let Some(v) = v {
                        self.values[k].push(v);
                    }
                }
                self.values[2].extend(r.itl_ns.iter().map(|&n| n as f64 / 1e6));
                if self.values.iter().any(|v| v.len() > MAX_VALUES) {
                    self.stride *= 2;
                    // Keeping every other value of what was kept keeps the sample even.
                    for v in &mut self.values {
                        let mut i = 0;
                        v.retain(|_| {
                            i += 1;
                            i % 2 == 1
                        });
                    }
                }
            }
        }
        if r.id % self.timeline_stride == 0 {
            let f = r.first_token_ns.map_or(f64::NAN, s);
            self.timeline.push([r.id as f64, s(r.scheduled_ns), s(r.sent_ns), f, s(r.end_ns)]);
            if self.timeline.len() > MAX_TIMELINE {
                self.timeline_stride *= 2;
                let st = self.timeline_stride as f64;
                self.timeline.retain(|p| p[0] % st == 0.0);
            }
        }
    }
}

const CSS: &str =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1000px;color:#222;padding:0 16px}\
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}\
.meta{color:#555}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}\
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}figure{margin:12px 0;break-inside:avoid}\
figcaption{color:#666;font-size:12px}svg text{font-size:11px;fill:#333}svg .title{font-size:13px;font-weight:600}\
svg .axis-label{font-size:12px}svg .grid{stroke:#eee}svg .frame{fill:none;stroke:#999}\
svg .mark line{stroke:#d62728;stroke-dasharray:5 3;stroke-width:1.5}svg .mark text{fill:#d62728;font-weight:600}\
svg .mark.slo-limit line{stroke:#2ca02c}svg .mark.slo-limit text{fill:#2ca02c}.good{color:#2a7a2a}.bad{color:#b22}\
.pair{display:flex;gap:12px;flex-wrap:wrap}.pair figure{flex:1 1 440px;margin:6px 0}.pair svg{width:100%;height:auto}\
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}\
@media print{body{max-width:none;margin:0}h2{break-after:avoid}svg{max-width:100%;height:auto}}";

fn page(title: &str, meta: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{CSS}</style></head><body><h1>{}</h1><p class=\"meta\">{}</p>{body}\
         <p class=\"meta\">Written by inferbench {}; self-contained, nothing is fetched.</p></body></html>\n",
        esc(title),
        esc(title),
        meta,
        env!("CARGO_PKG_VERSION")
    )
}

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut o = String::from("<table><tr>");
    for h in head {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    o.push_str("</tr>");
    for r in rows {
        o.push_str("<tr>");
        for c in r {
            let _ = write!(o, "<td>{c}</td>");
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
    o
}

fn f2(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "n/a".into()
    }
}

/// Histogram bins (centre, count) and a CDF of `v` (sorted in place); the tail above p99.5 goes
/// into the last bin.
/// A metric's name, and the baseline's and the candidate's values of it.
pub type PairedSamples = (String, Vec<f64>, Vec<f64>);

/// Points of a chart.
type Points = Vec<(f64, f64)>;

fn distribution(v: &mut [f64]) -> (Points, Points, f64) {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (Vec::new(), Vec::new(), 0.0);
    }
    let lo = v[0];
    let hi = v[((v.len() - 1) as f64 * 0.995) as usize].max(lo + 1e-9);
    let n = 40;
    let w = (hi - lo) / n as f64;
    let mut counts = vec![0.0; n];
    for &x in v.iter() {
        let i = (((x - lo) / w) as usize).min(n - 1);
        counts[i] += 1.0;
    }
    let bars = counts.iter().enumerate().map(|(i, c)| (lo + w * (i as f64 + 0.5), *c)).collect();
    let step = (v.len() / 400).max(1);
    let mut cdf: Vec<(f64, f64)> = v.iter().enumerate().step_by(step).map(|(i, x)| (*x, (i + 1) as f64 / v.len() as f64)).collect();
    cdf.push((v[v.len() - 1], 1.0));
    (bars, cdf, w)
}

fn summary_table(s: &Summary) -> String {
    let mut rows = vec![
        vec!["Successful requests".into(), s.completed.to_string()],
        vec!["Failed requests".into(), s.failed.to_string()],
        vec!["Duration (s)".into(), f2(s.duration_s)],
        vec!["Request throughput (req/s)".into(), f2(s.request_throughput)],
        vec!["Output token throughput (tok/s)".into(), f2(s.output_throughput)],
        vec!["Total token throughput (tok/s)".into(), f2(s.total_token_throughput)],
        vec!["Input / output tokens".into(), format!("{} / {}", s.total_input_tokens, s.total_output_tokens)],
    ];
    if let Some(g) = s.request_goodput {
        rows.push(vec!["Request goodput (req/s)".into(), f2(g)]);
    }
    let mut o = table(&["", "value"], &rows);
    let mut lat = Vec::new();
    for (m, name) in [(MetricName::Ttft, "TTFT"), (MetricName::Tpot, "TPOT"), (MetricName::Itl, "ITL"), (MetricName::E2el, "E2EL")] {
        let d = s.metric(m);
        let p = |q: f64| d.percentile(q).map_or("n/a".into(), f2);
        lat.push(vec![name.into(), d.count.to_string(), f2(d.mean), f2(d.median), p(90.0), p(99.0), f2(d.max)]);
    }
    o.push_str(&table(&["latency (ms)", "count", "mean", "median", "p90", "p99", "max"], &lat));
    o
}

/// A run's page; `data` from its records (None: the summary alone), `series` its time-series
/// lines.
pub fn run(r: &BenchmarkResult, data: Option<RunData>, series: &[serde_json::Value]) -> String {
    let s = &r.summary;
    let mut b = String::new();
    b.push_str("<h2>Summary</h2>");
    b.push_str(&summary_table(s));
    match data {
        None => b.push_str("<p>No records file beside the result: distributions and timelines are not drawn.</p>"),
        Some(mut d) => {
            let sampled = if d.stride > 1 { format!("; every {}th request's values (sampled evenly)", d.stride) } else { String::new() };
            b.push_str("<h2>Latency distributions</h2>");
            let names = [("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2el", "E2EL")];
            for (k, (id, name)) in names.iter().enumerate() {
                let (bars, cdf, w) = distribution(&mut d.values[k]);
                if bars.is_empty() {
                    continue;
                }
                let n = d.values[k].len();
                let mut hist = Chart::new(&format!("hist-{id}"), &format!("{name} histogram"), &format!("{name} (ms)"), "requests")
                    .with(Series { bar_width: w, ..Series::new(name, Kind::Bars, bars) });
                hist.note = Some(format!("{n} values in 40 bins; values above the 99.5th percentile are in the last bin{sampled}"));
                let cdf = Chart::new(&format!("cdf-{id}"), &format!("{name} CDF"), &format!("{name} (ms)"), "fraction of requests")
                    .with(Series::new(name, Kind::Step, cdf));
                b.push_str("<div class=\"pair\">");
                b.push_str(&hist.render());
                b.push_str(&cdf.render());
                b.push_str("</div>");
            }
            b.push_str("<h2>Over time</h2>");
            let bin = d.bin_s;
            let tput: Vec<(f64, f64)> = d.tokens.iter().enumerate().map(|(i, t)| ((i as f64 + 0.5) * bin, t / bin)).collect();
            let inflight: Vec<(f64, f64)> = d.in_flight.iter().enumerate().map(|(i, v)| (i as f64 * bin, *v)).collect();
            let mut c = Chart::new("throughput-over-time", "Output throughput over time", "time (s)", "tokens/s").with(Series::new(
                "output tokens/s",
                Kind::Line,
                tput,
            ));
            c.note = Some(format!("tokens counted where their chunks arrived, in {bin:.0}-second bins"));
            b.push_str(&c.render());
            b.push_str(
                &Chart::new("in-flight-over-time", "Requests in flight", "time (s)", "requests (mean over the bin)")
                    .with(Series::new("in flight", Kind::Step, inflight))
                    .render(),
            );
            let pick = |j: usize| d.timeline.iter().map(|p| (p[j], p[0])).collect::<Vec<_>>();
            let mut tl = Chart::new("timeline", "Per-request timeline", "time (s)", "request id")
                .with(Series::new("scheduled", Kind::Points, pick(1)))
                .with(Series::new("sent", Kind::Points, pick(2)))
                .with(Series::new("first token", Kind::Points, pick(3)))
                .with(Series::new("end", Kind::Points, pick(4)));
            tl.note = Some(if d.timeline_stride > 1 {
                format!("{} of {} requests drawn (every {}th by id)", d.timeline.len(), d.records, d.timeline_stride)
            } else {
                format!("all {} requests", d.records)
            });
            b.push_str(&tl.render());
        }
    }
    if !s.categories.is_empty() {
        b.push_str("<h2>Per category</h2>");
        let rows: Vec<Vec<String>> = s
            .categories
            .iter()
            .map(|(k, c)| {
                let m = |x| c.metric(x).mean;
                vec![
                    esc(k),
                    format!("{}/{}", c.completed, c.failed),
                    f2(m(MetricName::Ttft)),
                    f2(m(MetricName::Tpot)),
                    f2(m(MetricName::E2el)),
                ]
            })
            .collect();
        b.push_str(&table(&["category", "ok/failed", "TTFT mean (ms)", "TPOT mean (ms)", "E2EL mean (ms)"], &rows));
    }
    b.push_str(&monitor_charts(series));
    let meta = format!(
        "{} · {} · {} · {} requests · {}",
        esc(&r.spec.model),
        esc(&r.spec.backend),
        esc(&r.spec.base_url),
        s.completed + s.failed,
        esc(&r.header.started)
    );
    page("Serving run", &meta, &b)
}

/// Charts of the monitors' time series: server, GPU, host, the client's own.
fn monitor_charts(series: &[serde_json::Value]) -> String {
    if series.is_empty() {
        return String::new();
    }
    let pts = |source: &str, key: &str, device: Option<u64>| -> Vec<(f64, f64)> {
        series
            .iter()
            .filter(|l| l["source"] == source && device.is_none_or(|d| l["device"].as_u64() == Some(d)))
            .filter_map(|l| Some((l["t"].as_f64()?, l[key].as_f64()?)))
            .collect()
    };
    let mut b = String::from("<h2>Monitors</h2>");
    let mut any = false;
    let mut add = |c: Chart| {
        if c.series.iter().any(|s| !s.points.is_empty()) {
            b.push_str(&c.render());
            any = true;
        }
    };
    add(Chart::new("server-queue", "Server: running and waiting", "time (s)", "requests")
        .with(Series::new("running", Kind::Line, pts("server", "running", None)))
        .with(Series::new("waiting", Kind::Line, pts("server", "waiting", None))));
    add(Chart::new("server-kv", "Server: KV-cache usage", "time (s)", "fraction").with(Series::new(
        "kv_cache_usage",
        Kind::Line,
        pts("server", "kv_cache_usage", None),
    )));
    let devices: std::collections::BTreeSet<u64> =
        series.iter().filter(|l| l["source"] == "gpu").filter_map(|l| l["device"].as_u64()).collect();
    let mut gpu = Chart::new("gpu-power", "GPU power", "time (s)", "W");
    for d in &devices {
        gpu = gpu.with(Series::new(&format!("GPU {d}"), Kind::Line, pts("gpu", "power_w", Some(*d))));
    }
    add(gpu);
    add(Chart::new("host-cpu", "Host CPU busy", "time (s)", "%")
        .with(Series::new("machine", Kind::Line, pts("host", "cpu_pct", None)))
        .with(Series::new("server process", Kind::Line, pts("host", "server_cpu_pct", None))));
    add(Chart::new("client-throughput", "Client: output throughput per tick", "time (s)", "tokens/s").with(Series::new(
        "output_throughput",
        Kind::Line,
        pts("client", "output_throughput", None),
    )));
    if any {
        b
    } else {
        String::new()
    }
}

/// A sweep's page: throughput against latency with the knee and the SLO limit marked.
pub fn sweep(r: &SweepResult) -> String {
    let dim = r.dimension();
    let pts = |f: &dyn Fn(&inferbench_core::sweep::StepStats) -> f64| -> Vec<(f64, f64)> {
        r.steps.iter().map(|s| (s.stats.output_throughput.mean, f(&s.stats))).collect()
    };
    let at = |load: Option<f64>| load.and_then(|l| r.steps.iter().find(|s| s.load == l)).map(|s| s.stats.output_throughput.mean);
    let mut c = Chart::new("sweep-latency", "Latency against throughput", "output throughput (tokens/s)", "median latency (ms)")
        .with(Series::new("TTFT median", Kind::Line, pts(&|s| s.ttft_median_ms.mean)))
        .with(Series::new("TPOT median", Kind::Line, pts(&|s| s.tpot_median_ms.mean)));
    if let Some(x) = at(r.knee) {
        c = c.mark(true, x, &format!("knee ({} {})", dim_name(dim), fmt_tick(r.knee.unwrap_or(0.0))), "knee");
    }
    if let Some(x) = at(r.slo_limit) {
        c = c.mark(true, x, &format!("SLO limit ({} {})", dim_name(dim), fmt_tick(r.slo_limit.unwrap_or(0.0))), "slo-limit");
    }
    let load: Vec<(f64, f64)> = r.steps.iter().map(|s| (s.load, s.stats.output_throughput.mean)).collect();
    let mut lc = Chart::new("sweep-throughput", "Throughput against load", dim_name(dim), "output throughput (tokens/s)")
        .with(Series::new("output tokens/s", Kind::Line, load));
    let by_load = |f: &dyn Fn(&inferbench_core::sweep::StepStats) -> f64| -> Vec<(f64, f64)> {
        r.steps.iter().map(|s| (s.load, f(&s.stats))).collect()
    };
    let mut ll = Chart::new("sweep-latency-load", "Latency against load", dim_name(dim), "median latency (ms)")
        .with(Series::new("TTFT median", Kind::Line, by_load(&|s| s.ttft_median_ms.mean)))
        .with(Series::new("TPOT median", Kind::Line, by_load(&|s| s.tpot_median_ms.mean)));
    if let Some(k) = r.knee {
        lc = lc.mark(true, k, "knee", "knee");
        ll = ll.mark(true, k, "knee", "knee");
    }
    if let Some(l) = r.slo_limit {
        ll = ll.mark(true, l, "SLO limit", "slo-limit");
    }
    let rows: Vec<Vec<String>> = r
        .steps
        .iter()
        .map(|s| {
            let e = |x: &inferbench_core::sweep::Estimate| format!("{} ± {}", f2(x.mean), f2(x.ci95));
            vec![
                fmt_tick(s.load),
                s.runs.len().to_string(),
                e(&s.stats.request_throughput),
                e(&s.stats.output_throughput),
                e(&s.stats.ttft_median_ms),
                e(&s.stats.tpot_median_ms),
                format!("{:.1} %", s.stats.success_rate.mean * 100.0),
                if s.slo.iter().all(|c| c.met) { "pass".into() } else { "<span class=\"bad\">fail</span>".into() },
            ]
        })
        .collect();
    let mut b = String::new();
    b.push_str(&c.render());
    b.push_str("<div class=\"pair\">");
    b.push_str(&lc.render());
    b.push_str(&ll.render());
    b.push_str("</div><h2>Steps</h2>");
    b.push_str(&table(&[dim_name(dim), "runs", "req/s", "output tok/s", "TTFT median (ms)", "TPOT median (ms)", "success", "SLOs"], &rows));
    if let Some(why) = &r.stopped {
        let _ = write!(b, "<p>Stopped early: {}</p>", esc(why));
    }
    let model = if r.sweep.run.model.is_empty() { "the server's model" } else { r.sweep.run.model.as_str() };
    let meta = format!("{} · {} · {} steps · {}", esc(model), esc(&r.sweep.run.base_url), r.steps.len(), esc(&r.header.started));
    page("Sweep", &meta, &b)
}

fn dim_name(d: inferbench_core::sweep::Dimension) -> &'static str {
    match d {
        inferbench_core::sweep::Dimension::Concurrency => "concurrency",
        inferbench_core::sweep::Dimension::Rate => "request rate (req/s)",
    }
}

/// A comparison's page; `cdfs`: per metric name, the baseline's and the candidate's values, when
/// both records files were found.
pub fn compare(r: &CompareResult, cdfs: &[PairedSamples]) -> String {
    let mut b = String::new();
    for (name, base, cand) in cdfs {
        let cdf = |v: &[f64]| {
            let mut v = v.to_vec();
            distribution(&mut v).1
        };
        b.push_str(
            &Chart::new(
                &format!("cdf-{name}"),
                &format!("{name}: baseline and candidate"),
                &format!("{name} (ms)"),
                "fraction of requests",
            )
            .with(Series::new("baseline", Kind::Step, cdf(base)))
            .with(Series::new("candidate", Kind::Step, cdf(cand)))
            .render(),
        );
    }
    let bars: Vec<(f64, f64)> = r.rows.iter().enumerate().map(|(i, row)| ((i + 1) as f64, (row.speedup() - 1.0) * 100.0)).collect();
    let mut c = Chart::new("speedups", "Candidate against baseline, by row", "row (see the table)", "better (+) or worse (−), %")
        .with(Series { bar_width: 0.7, ..Series::new("speedup − 1", Kind::Bars, bars) });
    c.y_from_zero = true;
    b.push_str(&c.render());
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let v = row.verdict(r.alpha);
            let class = if v.contains("better") {
                "good"
            } else if v.contains("worse") {
                "bad"
            } else {
                ""
            };
            vec![
                (i + 1).to_string(),
                esc(&row.group),
                esc(&row.metric),
                f2(row.baseline),
                f2(row.candidate),
                format!("{:+.1} %", row.change() * 100.0),
                format!("{:.3}x", row.speedup()),
                inferbench_core::comparison::fmt_p(row.p),
                format!("<span class=\"{class}\">{}</span>", esc(v)),
            ]
        })
        .collect();
    b.push_str("<h2>Side by side</h2>");
    b.push_str(&table(&["#", "group", "metric", "baseline", "candidate", "change", "speedup", "p", "verdict"], &rows));
    for n in &r.notes {
        let _ = write!(b, "<p>{}</p>", esc(n));
    }
    if let Some(g) = &r.gate {
        let _ = write!(
            b,
            "<p><b>Gate</b> ({} beyond {:.1} %): {}</p>",
            esc(&g.metric),
            g.threshold * 100.0,
            if g.passed() { "passed" } else { "FAILED" }
        );
    }
    let meta = format!("baseline {} · candidate {} · α = {}", esc(&r.baseline), esc(&r.candidate), r.alpha);
    page("Comparison", &meta, &b)
}

/// An engine benchmark's page: the latency grid as heat maps, and the section tables.
pub fn engine(r: &EngineResult) -> String {
    let meta = format!("{} · {} weights · {} threads · {}", esc(&r.model), esc(&r.weights), r.threads, esc(&r.header.started));
    if !r.llama_bench.is_empty() {
        // A llama-bench run: its table, with every repetition's t/s.
        let rows: Vec<Vec<String>> = r
            .llama_bench
            .iter()
            .map(|t| {
                let samples = t.samples_ts.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(", ");
                vec![esc(&t.name()), t.n_threads.to_string(), format!("{:.2} ± {:.2}", t.avg_ts, t.stddev_ts), samples]
            })
            .collect();
        let mut b = String::from("<h2>llama-bench's tests</h2>");
        b.push_str(&table(&["test", "threads", "t/s (mean ± sd)", "each repetition, t/s"], &rows));
        return page("Engine benchmark (llama-bench tests)", &meta, &b);
    }
    let mut ins: Vec<usize> = r.latency.iter().map(|c| c.input_tokens).collect();
    let mut outs: Vec<usize> = r.latency.iter().map(|c| c.output_tokens).collect();
    ins.sort_unstable();
    ins.dedup();
    outs.sort_unstable();
    outs.dedup();
    let grid = |f: &dyn Fn(&inferbench_core::engine_bench::LatencyCell) -> f64| -> Vec<Vec<f64>> {
        ins.iter()
            .map(|i| {
                outs.iter().map(|o| r.latency.iter().find(|c| c.input_tokens == *i && c.output_tokens == *o).map_or(f64::NAN, f)).collect()
            })
            .collect()
    };
    let rl: Vec<String> = ins.iter().map(|i| i.to_string()).collect();
    let cl: Vec<String> = outs.iter().map(|o| o.to_string()).collect();
    let mut b = String::from("<h2>Latency grid</h2>");
    b.push_str(&heatmap("heat-ttft", "TTFT mean (ms)", "input tokens", "output tokens", &rl, &cl, &grid(&|c| c.ttft_ms.mean)));
    b.push_str(&heatmap("heat-e2e", "End-to-end mean (ms)", "input tokens", "output tokens", &rl, &cl, &grid(&|c| c.e2e_ms.mean)));
    b.push_str(&heatmap("heat-decode", "Decode tokens/s", "input tokens", "output tokens", &rl, &cl, &grid(&|c| c.decode_tok_s.mean)));
    let kv = |m: &std::collections::BTreeMap<String, f64>| -> Vec<Vec<String>> { m.iter().map(|(k, v)| vec![esc(k), f2(*v)]).collect() };
    b.push_str("<h2>Throughput</h2>");
    b.push_str(&table(&["figure", "value"], &kv(&r.throughput)));
    b.push_str("<h2>Memory (MB)</h2>");
    b.push_str(&table(&["figure", "value"], &kv(&r.memory)));
    if !r.quantization.is_empty() || r.speculative.is_some() || r.comparison.is_some() || r.monitors.is_some() {
        // The text report's sections, as the console prints them.
        let text = crate::text::engine(r);
        let from =
            text.find("\nQuantization").or_else(|| text.find("\nSpeculative")).or_else(|| text.find("\nBaseline")).unwrap_or(text.len());
        b.push_str("<h2>Quantization, speculative decoding, variants, monitors</h2>");
        let _ = write!(b, "<pre>{}</pre>", esc(text[from..].trim()));
    }
    if !r.targets.is_empty() {
        let rows: Vec<Vec<String>> = r
            .targets
            .iter()
            .map(|t| {
                vec![esc(&t.key), f2(t.value), f2(t.limit), if t.pass { "pass".into() } else { "<span class=\"bad\">FAIL</span>".into() }]
            })
            .collect();
        b.push_str("<h2>Targets</h2>");
        b.push_str(&table(&["target", "value", "limit", ""], &rows));
    }
    page("Engine benchmark", &meta, &b)
}

/// A capacity plan's page: replicas and cost under each SLO choice.
pub fn plan(r: &CapacityPlan) -> String {
    let choices: Vec<&PlanChoice> = std::iter::once(&r.plan).chain(&r.what_if).collect();
    let rows: Vec<Vec<String>> = choices
        .iter()
        .map(|c| {
            let p = c.plan.as_ref();
            vec![
                esc(&c.slos),
                c.load.map_or("none".into(), fmt_tick),
                p.map_or("n/a".into(), |p| p.replicas.to_string()),
                p.and_then(|p| p.cost.as_ref()).map_or("n/a".into(), |c| f2(c.per_hour)),
                p.and_then(|p| p.cost.as_ref()).map_or("n/a".into(), |c| f2(c.per_million_tokens)),
            ]
        })
        .collect();
    let bars: Vec<(f64, f64)> =
        choices.iter().enumerate().filter_map(|(i, c)| Some(((i + 1) as f64, c.plan.as_ref()?.replicas as f64))).collect();
    let mut b = Chart::new("replicas", "Replicas needed, by SLO choice (row number)", "choice", "replicas")
        .with(Series { bar_width: 0.6, ..Series::new("replicas", Kind::Bars, bars) })
        .render();
    b.push_str(&table(&["SLOs", "load per replica", "replicas", "cost / hour", "cost / 1M tokens"], &rows));
    b.push_str(&format!("<pre>{}</pre>", esc(&crate::text::plan(r))));
    page("Capacity plan", &format!("from {} · {}", esc(&r.sweep), esc(&r.header.started)), &b)
}

/// An exploration's page: throughput against latency with the Pareto frontier, tokens/s per
/// user against per replica, each factor's main effect, the ranked table and the
/// recommendations.
pub fn explore(r: &inferbench_core::explore::ExploreResult) -> String {
    let a = &r.analysis;
    let m = |e: &inferbench_core::explore::Evaluated, k: &str| e.metrics.get(k).copied();
    let scatter = |x: &str, y: &str, feasible: bool| -> Vec<(f64, f64)> {
        a.evaluated.iter().filter(|e| e.feasible == feasible).filter_map(|e| Some((m(e, x)?, m(e, y)?))).collect()
    };
    let frontier = |keys: &[String], x: &str, y: &str| -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> =
            keys.iter().filter_map(|k| a.evaluated.iter().find(|e| &e.key == k)).filter_map(|e| Some((m(e, x)?, m(e, y)?))).collect();
        pts.sort_by(|p, q| p.0.total_cmp(&q.0));
        pts
    };
    let thr = "output_throughput_per_replica";
    let mut b = String::new();
    for (id, title, x, xl, keys) in [
        ("explore-tpot", "Throughput per replica against TPOT p99", "tpot_p99", "TPOT p99 (ms)", &a.pareto_tpot),
        ("explore-ttft", "Throughput per replica against TTFT p99", "ttft_p99", "TTFT p99 (ms)", &a.pareto_ttft),
        ("explore-user", "Tokens/s per user against tokens/s per replica", "tokens_per_s_per_user", "tokens/s per user", &a.pareto_user),
    ] {
        let c = Chart::new(id, title, xl, "output tokens/s per replica")
            .with(Series::new("meets the constraints", Kind::Points, scatter(x, thr, true)))
            .with(Series::new("breaks a constraint", Kind::Points, scatter(x, thr, false)))
            .with(Series::new("Pareto frontier", Kind::Step, frontier(keys, x, thr)));
        b.push_str(&c.render());
    }
    if !a.main_effects.is_empty() {
        b.push_str("<h2>Main effects</h2><div class=\"pair\">");
        for e in &a.main_effects {
            let pts: Vec<(f64, f64)> = e.levels.iter().enumerate().map(|(i, l)| (l.0.as_f64().unwrap_or((i + 1) as f64), l.1)).collect();
            let kind = if e.levels.iter().all(|l| l.0.is_number()) { Kind::Line } else { Kind::Bars };
            let series = Series { bar_width: 0.5, ..Series::new(&e.metric, kind, pts) };
            b.push_str(
                &Chart::new(&format!("effect-{}", e.factor), &format!("{} (range {})", e.factor, f2(e.range)), &e.factor, &e.metric)
                    .with(series)
                    .render(),
            );
        }
        b.push_str("</div>");
    }
    b.push_str("<h2>Recommendations</h2><ul>");
    for line in &a.recommendations {
        let _ = write!(b, "<li>{}</li>", esc(line));
    }
    b.push_str("</ul><h2>Treatments, best first</h2>");
    let rows: Vec<Vec<String>> = a
        .evaluated
        .iter()
        .map(|e| {
            let g = |k: &str| m(e, k).map_or("-".into(), f2);
            vec![
                esc(&e.key),
                g(thr),
                g("ttft_p99"),
                g("tpot_p99"),
                e.runs.to_string(),
                if e.feasible { "yes".into() } else { format!("<span class=\"bad\">{}</span>", esc(&e.violations.join("; "))) },
            ]
        })
        .collect();
    b.push_str(&table(&["treatment", "output tok/s per replica", "TTFT p99 (ms)", "TPOT p99 (ms)", "runs", "meets constraints"], &rows));
    let meta = format!(
        "{} design · {} treatments · best: {} · {}",
        r.config.design.name(),
        a.treatments_run,
        esc(a.best.as_deref().unwrap_or("none")),
        esc(&r.started)
    );
    page("Exploration", &meta, &b)
}

/// Any saved result; a run without records gets its summary alone.
pub fn render(r: &SavedResult) -> String {
    match r {
        SavedResult::Run(x) => run(x, None, &[]),
        SavedResult::Sweep(x) => sweep(x),
        SavedResult::Engine(x) => engine(x),
        SavedResult::Compare(x) => compare(x, &[]),
        SavedResult::Plan(x) => plan(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, start_ms: u64, first_ms: u64, end_ms: u64, out: u64, itl_ms: &[u64]) -> RequestRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "scheduled_ns": start_ms * 1_000_000, "gate_ns": start_ms * 1_000_000, "sent_ns": start_ms * 1_000_000,
            "first_token_ns": first_ms * 1_000_000, "end_ns": end_ms * 1_000_000,
            "itl_ns": itl_ms.iter().map(|m| m * 1_000_000).collect::<Vec<_>>(), "input_tokens": 4, "output_tokens": out, "status": "success"
        }))
        .unwrap()
    }

    /// Hand-computed, 1-second bins: a request in flight from 0.5 s to 2.5 s is half of bin 0, all
    /// of bin 1 and half of bin 2; its 4 tokens arrive at 0.6, 1.1, 1.6 and 2.4 s.
    #[test]
    fn bins_by_overlap_and_by_chunk_time() {
        let mut d = RunData::new(3.0);
        d.add(&rec(0, 500, 600, 2500, 4, &[500, 500, 800]));
        assert_eq!(d.in_flight, vec![0.5, 1.0, 0.5]);
        assert_eq!(d.tokens, vec![1.0, 2.0, 1.0]);
        // A request ending exactly on bin edges never stalls the binning.
        let mut e = RunData::new(1000.0 * 600.0);
        e.add(&rec(1, 0, 1_000, 3_000_000, 1, &[]));
        assert!((e.in_flight.iter().sum::<f64>() - 3_000.0 / e.bin_s).abs() < 1e-6);
    }

    #[test]
    fn samples_stay_bounded_and_even() {
        let mut d = RunData::new(100.0);
        for i in 0..(MAX_VALUES as u64 * 3) {
            d.add(&rec(i, 0, 1, 2, 1, &[]));
        }
        assert!(d.values[3].len() <= MAX_VALUES && d.values[3].len() > MAX_VALUES / 2, "{}", d.values[3].len());
        assert!(d.stride >= 2 && d.timeline.len() <= MAX_TIMELINE && d.timeline_stride >= 256);
    }
}
