//! Charts as inline SVG, drawn on the server side so a report is one file that opens offline,
//! prints, and can be checked in a browser's DOM (axis labels are `<text>`, marks have classes).
//! Written here rather than taken from a plotting crate: the maintained ones need a font library
//! to lay out text, which the browser does better and for free.

use std::fmt::Write as _;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Joined points.
    Line,
    /// A step function (CDFs, in-flight counts).
    Step,
    /// Dots (scatter, a per-request timeline).
    Points,
    /// Vertical bars centred on x, `bar_width` wide (histograms).
    Bars,
}

/// One series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// How it is drawn.
    pub kind: Kind,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
    /// Bar width in x units (bars only).
    pub bar_width: f64,
}

impl Series {
    /// A series of `kind`.
    pub fn new(name: &str, kind: Kind, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.to_owned(), kind, points, bar_width: 0.0 }
    }
}

/// A vertical or horizontal marker line with a label (`class` lets a test find it).
#[derive(Debug, Clone)]
pub struct Mark {
    /// True for a vertical line at x, false for a horizontal one at y.
    pub vertical: bool,
    /// Where.
    pub at: f64,
    /// The label beside it.
    pub label: String,
    /// The element's class (`knee`, `slo-limit`, ...).
    pub class: String,
}

/// A chart: axes, series, marks.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The element id.
    pub id: String,
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Series, drawn in order.
    pub series: Vec<Series>,
    /// Marker lines.
    pub marks: Vec<Mark>,
    /// Start the y axis at zero.
    pub y_from_zero: bool,
    /// A note under the chart (sampling, binning).
    pub note: Option<String>,
}

const W: f64 = 720.0;
const H: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/// About `n` round tick values covering [lo, hi].
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    (0..=n * 3).map(|i| first + i as f64 * step).take_while(|v| *v <= hi + step * 1e-9).collect()
}

/// A tick label: short, without float noise.
pub fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{}", (v * 100.0).round() / 100.0)
    } else {
        format!("{}", (v * 10000.0).round() / 10000.0)
    }
}

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Chart {
    /// An empty chart.
    pub fn new(id: &str, title: &str, x_label: &str, y_label: &str) -> Self {
        Self {
            id: id.to_owned(),
            title: title.to_owned(),
            x_label: x_label.to_owned(),
            y_label: y_label.to_owned(),
            series: Vec::new(),
            marks: Vec::new(),
            y_from_zero: true,
            note: None,
        }
    }

    /// Adds a series.
    pub fn with(mut self, s: Series) -> Self {
        self.series.push(s);
        self
    }

    /// Adds a marker line.
    pub fn mark(mut self, vertical: bool, at: f64, label: &str, class: &str) -> Self {
        self.marks.push(Mark { vertical, at, label: label.to_owned(), class: class.to_owned() });
        self
    }

    fn bounds(&self) -> (f64, f64, f64, f64) {
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for s in &self.series {
            for &(x, y) in &s.points {
                if x.is_finite() && y.is_finite() {
                    let half = s.bar_width / 2.0;
                    x0 = x0.min(x - half);
                    x1 = x1.max(x + half);
                    y0 = y0.min(y);
                    y1 = y1.max(y);
                }
            }
        }
        for m in &self.marks {
            if m.vertical {
                x0 = x0.min(m.at);
                x1 = x1.max(m.at);
            } else {
                y0 = y0.min(m.at);
                y1 = y1.max(m.at);
            }
        }
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if !y0.is_finite() {
            (y0, y1) = (0.0, 1.0);
        }
        if self.y_from_zero {
            y0 = y0.min(0.0);
            y1 = y1.max(0.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        (x0, x1, y0, y1 + (y1 - y0) * 0.05)
    }

    /// The chart as an SVG inside a `<figure>`.
    pub fn render(&self) -> String {
        let (x0, x1, y0, y1) = self.bounds();
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
        let py = |y: f64| H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);
        let mut o = String::new();
        let _ = write!(
            o,
            "<figure class=\"chart\" id=\"{}\"><svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">",
            esc(&self.id),
            esc(&self.title)
        );
        let _ = write!(o, "<text class=\"title\" x=\"{}\" y=\"18\" text-anchor=\"middle\">{}</text>", W / 2.0, esc(&self.title));
        // Grid and ticks.
        let _ = write!(o, "<g class=\"axis x-axis\">");
        for t in ticks(x0, x1, 6) {
            let x = px(t);
            let _ = write!(
                o,
                "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                H - BOTTOM,
                H - BOTTOM + 16.0,
                fmt_tick(t)
            );
        }
        let _ = write!(
            o,
            "<text class=\"axis-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text></g>",
            LEFT + (W - LEFT - RIGHT) / 2.0,
            H - 12.0,
            esc(&self.x_label)
        );
        let _ = write!(o, "<g class=\"axis y-axis\">");
        for t in ticks(y0, y1, 5) {
            let y = py(t);
            let _ = write!(
                o,
                "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                fmt_tick(t)
            );
        }
        let _ = write!(
            o,
            "<text class=\"axis-label\" transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text></g>",
            TOP + (H - TOP - BOTTOM) / 2.0,
            esc(&self.y_label)
        );
        let _ = write!(
            o,
            "<rect class=\"frame\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\"/>",
            W - LEFT - RIGHT,
            H - TOP - BOTTOM
        );
        for (i, s) in self.series.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
            let _ = write!(o, "<g class=\"series\" data-name=\"{}\">", esc(&s.name));
            match s.kind {
                Kind::Line | Kind::Step => {
                    let mut d = String::new();
                    for (j, &(x, y)) in pts.iter().enumerate() {
                        if j == 0 {
                            let _ = write!(d, "M{:.1},{:.1}", px(x), py(y));
                        } else if s.kind == Kind::Step {
                            let _ = write!(d, "H{:.1}V{:.1}", px(x), py(y));
                        } else {
                            let _ = write!(d, "L{:.1},{:.1}", px(x), py(y));
                        }
                    }
                    let _ = write!(o, "<path d=\"{d}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.6\"/>");
                    if pts.len() <= 40 && s.kind == Kind::Line {
                        for &(x, y) in &pts {
                            let _ = write!(
                                o,
                                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"><title>{}: {}, {}</title></circle>",
                                px(x),
                                py(y),
                                esc(&s.name),
                                fmt_tick(x),
                                fmt_tick(y)
                            );
                        }
                    }
                }
                Kind::Points => {
                    for &(x, y) in &pts {
                        let _ = write!(o, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.5\" fill=\"{c}\" fill-opacity=\"0.6\"/>", px(x), py(y));
                    }
                }
                Kind::Bars => {
                    let half = s.bar_width / 2.0;
                    for &(x, y) in &pts {
                        let (a, b) = (px(x - half), px(x + half));
                        // Bars grow from zero (or the axis' floor): up when positive, down when negative.
                        let zero = py(0.0f64.clamp(y0, y1));
                        let (top, base) = if py(y) <= zero { (py(y), zero) } else { (zero, py(y)) };
                        let _ = write!(
                            o,
                            "<rect x=\"{a:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{c}\" fill-opacity=\"0.75\"><title>{}: {}</title></rect>",
                            (b - a - 0.5).max(0.5),
                            (base - top).max(0.0),
                            fmt_tick(x),
                            fmt_tick(y)
                        );
                    }
                }
            }
            let _ = write!(o, "</g>");
        }
        for (k, m) in self.marks.iter().enumerate() {
            // Labels of marks that fall together are stacked, not overprinted.
            // Near the right edge a vertical mark's label goes on its left.
            let anchor = if m.vertical && px(m.at) > W - RIGHT - 120.0 { "end" } else { "start" };
            let (a, b, tx, ty) = if m.vertical {
                let x = px(m.at);
                let tx = if anchor == "end" { x - 4.0 } else { x + 4.0 };
                ((x, TOP), (x, H - BOTTOM), tx, TOP + 12.0 + 14.0 * k as f64)
            } else {
                let y = py(m.at);
                ((LEFT, y), (W - RIGHT, y), LEFT + 6.0, y - 4.0)
            };
            let _ = write!(
                o,
                "<g class=\"mark {}\"><line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/><text x=\"{tx:.1}\" y=\"{ty:.1}\" text-anchor=\"{anchor}\">{}</text></g>",
                esc(&m.class),
                a.0,
                a.1,
                b.0,
                b.1,
                esc(&m.label)
            );
        }
        if self.series.len() > 1 {
            let _ = write!(o, "<g class=\"legend\">");
            for (i, s) in self.series.iter().enumerate() {
                let y = TOP + 8.0 + i as f64 * 14.0;
                let _ = write!(
                    o,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                    W - RIGHT - 150.0,
                    y - 9.0,
                    COLOURS[i % COLOURS.len()],
                    W - RIGHT - 136.0,
                    y,
                    esc(&s.name)
                );
            }
            let _ = write!(o, "</g>");
        }
        let _ = write!(o, "</svg>");
        if let Some(n) = &self.note {
            let _ = write!(o, "<figcaption>{}</figcaption>", esc(n));
        }
        o.push_str("</figure>");
        o
    }
}

/// A heat map: rows × columns of values, each cell shaded by its value and labelled with it.
pub fn heatmap(id: &str, title: &str, row_label: &str, col_label: &str, rows: &[String], cols: &[String], values: &[Vec<f64>]) -> String {
    let (lo, hi) =
        values.iter().flatten().filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let cell = (70.0, 28.0);
    let (left, top) = (110.0, 46.0);
    let w = left + cell.0 * cols.len() as f64 + 10.0;
    let h = top + cell.1 * rows.len() as f64 + 10.0;
    let mut o = format!(
        "<figure class=\"chart heatmap\" id=\"{}\"><svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">\
         <text class=\"title\" x=\"{}\" y=\"16\" text-anchor=\"middle\">{}</text>\
         <text class=\"axis-label\" x=\"{}\" y=\"34\" text-anchor=\"middle\">{}</text>\
         <text class=\"axis-label\" x=\"6\" y=\"{}\">{}</text>",
        esc(id),
        esc(title),
        w / 2.0,
        esc(title),
        left + cell.0 * cols.len() as f64 / 2.0,
        esc(col_label),
        top - 4.0,
        esc(row_label)
    );
    for (j, c) in cols.iter().enumerate() {
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            left + cell.0 * (j as f64 + 0.5),
            top - 4.0,
            esc(c)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + cell.1 * i as f64;
        let _ = write!(o, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", left - 6.0, y + cell.1 / 2.0 + 4.0, esc(r));
        for (j, v) in values.get(i).map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
            let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
            // Light yellow (fast) to dark red (slow).
            let (r8, g8, b8) = (255.0 - 75.0 * t, 240.0 - 190.0 * t, 200.0 - 170.0 * t);
            let x = left + cell.0 * j as f64;
            let ink = if t > 0.6 { "#fff" } else { "#000" };
            let _ = write!(
                o,
                "<rect class=\"cell\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{}\" height=\"{}\" fill=\"rgb({r8:.0},{g8:.0},{b8:.0})\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{ink}\">{}</text>",
                cell.0 - 1.0,
                cell.1 - 1.0,
                x + cell.0 / 2.0,
                y + cell.1 / 2.0 + 4.0,
                fmt_tick(*v)
            );
        }
    }
    o.push_str("</svg></figure>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.0, 1.0, 4), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        let t = ticks(13.0, 987.0, 6);
        assert!(t[0] >= 13.0 && *t.last().unwrap() <= 987.0 && t.len() >= 4, "{t:?}");
        assert_eq!(fmt_tick(2_500_000.0), "2.5M");
        assert_eq!(fmt_tick(0.1 + 0.2), "0.3");
    }

    #[test]
    fn a_chart_has_its_axes_series_and_marks() {
        let c = Chart::new("c1", "Throughput <vs> latency", "tok/s", "ms")
            .with(Series::new("p99", Kind::Line, vec![(1.0, 10.0), (2.0, 30.0)]))
            .mark(true, 1.5, "knee", "knee");
        let svg = c.render();
        assert!(svg.contains("<text class=\"axis-label\"") && svg.contains(">tok/s</text>") && svg.contains(">ms</text>"));
        assert!(svg.contains("Throughput &lt;vs&gt; latency"));
        assert!(svg.contains("<g class=\"mark knee\">"));
        assert!(svg.contains("<path d=\"M"));
    }
}
