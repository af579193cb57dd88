//! Everything people and scripts read, and nothing else: the console block, tables and reports of
//! every kind in text, Markdown, CSV and JSON (one writer per format behind [`format::Writer`]),
//! and the result files. Every file but the live JSONL is replaced atomically.

pub mod console;
pub mod csv;
pub mod files;
pub mod format;
pub mod html;
pub mod llama_bench;
pub mod llmd;
pub mod markdown;
pub mod svg;
pub mod table;
pub mod text;

pub use console::{render_summary, ConsoleOptions};
pub use files::{write_atomic, write_csv_summary, write_json, RecordWriter, ReportError};
pub use format::{writer, Format, Writer};
pub use table::{categories_table, runs_table, sweep_table, text_table};
