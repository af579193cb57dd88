//! The JSON Schemas in `docs/schema/` are generated from the result types. This test regenerates
//! them and fails when a type changed without its schema being regenerated
//! (`scripts/gen-schemas`, or `INFERBENCH_BLESS=1 cargo test -p inferbench-core --test schema`).

use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema"))
}

#[test]
fn schemas_in_docs_match_the_types() {
    let bless = std::env::var_os("INFERBENCH_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in inferbench_core::schema::all() {
        let path = dir().join(&name);
        let want = inferbench_core::schema::to_file_text(&schema);
        if bless {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            _ => stale.push(name),
        }
    }
    assert!(stale.is_empty(), "docs/schema is stale for {stale:?}: run scripts/gen-schemas");
}

#[test]
fn every_kind_has_a_schema_naming_its_header_fields() {
    for kind in inferbench_core::ResultKind::ALL {
        let s = inferbench_core::schema::result_schema(kind).to_string();
        for field in ["schema_version", "kind", "tool", "date", "labels"] {
            assert!(s.contains(&format!("\"{field}\"")), "{kind:?} schema lacks {field}");
        }
    }
}
