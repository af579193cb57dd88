//! Turning summaries into what people and scripts read: the console block, JSON, CSV and the
//! per-request JSONL stream. Every file but the live JSONL is replaced atomically.

pub mod console;
pub mod files;
pub mod table;

pub use console::{render_summary, ConsoleOptions};
pub use files::{write_atomic, write_csv_summary, write_json, RecordWriter, ReportError};
pub use table::{categories_table, runs_table, sweep_table, text_table};
