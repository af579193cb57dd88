//! JSON Schemas of every saved file, generated from the types themselves, so the files in
//! `docs/schema/` cannot drift from what the code writes (a test regenerates and compares them).

use crate::result::ResultKind;
use serde_json::Value;

/// The schema of one kind of result file.
pub fn result_schema(kind: ResultKind) -> Value {
    let s = match kind {
        ResultKind::Run => schemars::schema_for!(crate::result::BenchmarkResult),
        ResultKind::Sweep => schemars::schema_for!(crate::sweep::SweepResult),
        ResultKind::Engine => schemars::schema_for!(crate::engine_bench::EngineResult),
        ResultKind::Compare => schemars::schema_for!(crate::comparison::CompareResult),
        ResultKind::Plan => schemars::schema_for!(crate::capacity::CapacityPlan),
    };
    s.to_value()
}

/// The schema of one line of a `.records.jsonl` file.
pub fn record_schema() -> Value {
    schemars::schema_for!(crate::record::RequestRecord).to_value()
}

/// Every schema with the file name it is kept under in `docs/schema/`.
pub fn all() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> =
        ResultKind::ALL.into_iter().map(|k| (format!("{}.schema.json", k.name()), result_schema(k))).collect();
    out.push(("record.schema.json".into(), record_schema()));
    // `inferbench explore`'s explore.json (not a saved result kind: no header of its own).
    let explore = serde_json::to_value(schemars::schema_for!(crate::explore::ExploreResult)).unwrap_or_default();
    out.push(("explore.schema.json".into(), explore));
    out
}

/// A schema as written to disk: pretty JSON with a trailing newline.
pub fn to_file_text(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}
