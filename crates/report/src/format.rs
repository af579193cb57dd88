//! One writer per output format behind one interface: adding a format (HTML, say) is one more
//! module implementing [`Writer`].

use crate::{console, csv, markdown, table, text};
use inferbench_core::SavedResult;

/// The formats every saved result can be rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text, as the commands print it.
    Text,
    /// Markdown tables.
    Markdown,
    /// CSV rows.
    Csv,
    /// The saved JSON.
    Json,
    /// One self-contained HTML page with charts.
    Html,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" | "txt" => Ok(Format::Text),
            "md" | "markdown" => Ok(Format::Markdown),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "html" => Ok(Format::Html),
            _ => Err(format!("unknown format '{s}' (text, md, csv, json, html)")),
        }
    }
}

/// Renders a saved result of any kind.
pub trait Writer {
    /// The rendered document; an error names what this format cannot show.
    fn render(&self, r: &SavedResult) -> Result<String, String>;
}

/// Plain text.
pub struct TextWriter;
/// Markdown.
pub struct MarkdownWriter;
/// CSV.
pub struct CsvWriter;
/// JSON.
pub struct JsonWriter;
/// HTML (a run's summary alone: its charts need the records beside it, which
/// `inferbench_bench::html` reads).
pub struct HtmlWriter;

impl Writer for HtmlWriter {
    fn render(&self, r: &SavedResult) -> Result<String, String> {
        Ok(crate::html::render(r))
    }
}

impl Writer for TextWriter {
    fn render(&self, r: &SavedResult) -> Result<String, String> {
        Ok(match r {
            SavedResult::Run(x) => console::render_summary(x, &console::ConsoleOptions::default()),
            SavedResult::Sweep(x) => format!("{}\n{}\n", table::sweep_table(x), text::sweep_conclusions(x)),
            SavedResult::Engine(x) => text::engine(x),
            SavedResult::Compare(x) => text::compare(x),
            SavedResult::Plan(x) => text::plan(x),
        })
    }
}

impl Writer for MarkdownWriter {
    fn render(&self, r: &SavedResult) -> Result<String, String> {
        match r {
            SavedResult::Run(x) => Ok(markdown::run(x)),
            SavedResult::Compare(x) => Ok(markdown::compare(x)),
            other => Ok(format!("```text\n{}```\n", TextWriter.render(other)?)),
        }
    }
}

impl Writer for CsvWriter {
    fn render(&self, r: &SavedResult) -> Result<String, String> {
        match r {
            SavedResult::Run(x) => csv::run(x),
            SavedResult::Engine(x) if !x.llama_bench.is_empty() => {
                Ok(crate::llama_bench::render(&x.llama_bench, "csv").unwrap_or_default())
            }
            SavedResult::Engine(x) => csv::engine_latency_csv(x),
            SavedResult::Sweep(x) => csv::sweep(x),
            SavedResult::Compare(x) => csv::compare(x),
            SavedResult::Plan(x) => csv::plan(x),
        }
    }
}

impl Writer for JsonWriter {
    fn render(&self, r: &SavedResult) -> Result<String, String> {
        serde_json::to_string_pretty(&r.to_json())
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| e.to_string())
    }
}

/// The writer for a format.
pub fn writer(f: Format) -> Box<dyn Writer> {
    match f {
        Format::Text => Box::new(TextWriter),
        Format::Markdown => Box::new(MarkdownWriter),
        Format::Csv => Box::new(CsvWriter),
        Format::Json => Box::new(JsonWriter),
        Format::Html => Box::new(HtmlWriter),
    }
}
