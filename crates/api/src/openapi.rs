//! The OpenAPI 3.0 document at `/api/openapi.json`: every route, and the spec schemas generated
//! from the same Rust types the parser uses (so the document cannot drift from what is accepted).

use inferbench_core::engine_bench::BenchConfig;
use inferbench_core::sweep::SweepSpec;
use inferbench_core::RunSpec;
use serde_json::{json, Value};

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$"}})
}

/// The document.
pub fn document() -> Value {
    let mut gen = schemars::generate::SchemaSettings::openapi3().into_generator();
    let run = gen.subschema_for::<RunSpec>();
    let sweep = gen.subschema_for::<SweepSpec>();
    let engine = gen.subschema_for::<BenchConfig>();
    let mut schemas = gen.take_definitions(true);
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string", "description": "One line naming the problem."},
            "field": {"type": "string", "description": "The request field refused, as a JSON path (spec.num_prompts)."}}}),
    );
    schemas.insert(
        "Submission".into(),
        json!({"type": "object", "required": ["kind"], "additionalProperties": false, "properties": {
            "kind": {"type": "string", "enum": ["run", "sweep", "engine"]},
            "spec": {"description": "The spec `--spec` reads, or any part of it over the defaults: a RunSpec (run), a SweepSpec (sweep) or a BenchConfig (engine).",
                     "oneOf": [run, sweep, engine]},
            "server": {"type": "string", "enum": ["simulator", "embedded"],
                       "description": "Start this server on a free loopback port for the benchmark (run, sweep); base_url is then not needed."},
            "model": {"type": "string", "description": "The embedded server's model: a known name or a GGUF path."},
            "api_key": {"type": "string", "description": "The target's API key: used, never stored, logged or returned."},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}),
    );
    schemas.insert(
        "SeedRequest".into(),
        json!({"type": "object", "required": ["model_name"], "properties": {
            "model_name": {"type": "string", "description": "A model from `inferbench model list` or a GGUF path."},
            "test_types": {"type": "array", "items": {"type": "string", "enum": ["latency", "memory", "throughput"]}}}}),
    );
    schemas.insert(
        "Created".into(),
        json!({"type": "object", "properties": {"id": {"type": "string"}, "status": {"type": "string"}, "url": {"type": "string"}, "events": {"type": "string"}}}),
    );
    schemas.insert(
        "Benchmark".into(),
        json!({"type": "object", "properties": {
            "id": {"type": "string"}, "kind": {"type": "string"},
            "status": {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled", "interrupted"]},
            "model": {"type": "string"}, "labels": {"type": "object"}, "created": {"type": "string"}, "started": {"type": "string"},
            "finished": {"type": "string"}, "error": {"type": "string"}, "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
            "progress": {"type": "object", "description": "The newest once-a-second snapshot, while it runs (as the events stream's progress event)."},
            "queue_position": {"type": "integer"}, "request": {"type": "object"},
            "result": {"type": "object", "description": "The typed result (a run, sweep or engine result file), once it has one."},
            "files": {"type": "object"}}}),
    );
    let created = json!({"201": {"description": "Queued.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Created"}}}},
                         "400": err("A field is refused; `field` names it."), "413": err("The body is larger than --max-body-bytes.")});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "inferbench API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Launch, queue, watch and compare LLM inference benchmarks. One runs at a time; the others wait in a queue kept in the results database. With --token, every route but /health needs Authorization: Bearer."},
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/health": {"get": {"summary": "Liveness (no token needed).", "security": [], "responses": {"200": {"description": "Up."}}}},
            "/api/benchmark": {"post": {"summary": "Seed 000's call: the engine benchmark of model_name with the default config, test_types picking sections.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SeedRequest"}}}},
                "responses": created}},
            "/api/v1/benchmarks": {
                "post": {"summary": "Queue a run, sweep or engine benchmark.",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Submission"}}}},
                    "responses": created},
                "get": {"summary": "Benchmarks, newest first.",
                    "parameters": [
                        {"name": "kind", "in": "query", "schema": {"type": "string", "enum": ["run", "sweep", "engine"]}},
                        {"name": "status", "in": "query", "schema": {"type": "string"}},
                        {"name": "model", "in": "query", "schema": {"type": "string"}},
                        {"name": "label", "in": "query", "description": "key=value; repeat for several", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 200}}],
                    "responses": {"200": {"description": "The list.", "content": {"application/json": {"schema": {"type": "object", "properties": {"benchmarks": {"type": "array", "items": {"$ref": "#/components/schemas/Benchmark"}}}}}}}}}},
            "/api/v1/benchmarks/{id}": {
                "parameters": [id_param()],
                "get": {"summary": "Status, progress and, once done, the typed result.",
                    "responses": {"200": {"description": "The benchmark.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Benchmark"}}}}, "404": err("No such benchmark."), "400": err("An invalid id.")}},
                "delete": {"summary": "Cancel: a queued one never runs; a running one stops sending, its requests in flight get 2 s, and what it measured is kept.",
                    "responses": {"200": {"description": "Cancelled (it was queued)."}, "202": {"description": "Cancelling (it was running)."}, "409": err("It has already ended.")}}},
            "/api/v1/benchmarks/{id}/events": {"parameters": [id_param()], "get": {
                "summary": "Server-sent events: `queued` while it waits; `progress` once a second (completed, failed, failures by kind, in flight, throughput, rolling TTFT and ITL percentiles); `note`; `step`; `end` (status), after which the stream closes. A finished benchmark's events are replayed.",
                "responses": {"200": {"description": "The stream.", "content": {"text/event-stream": {}}}}}},
            "/api/v1/benchmarks/{id}/{file}": {"parameters": [id_param(),
                {"name": "file", "in": "path", "required": true, "schema": {"type": "string", "enum": ["report.html", "result.json", "result.csv", "records.jsonl", "events.jsonl"]}}],
                "get": {"summary": "One of its files.", "responses": {"200": {"description": "The file."}, "404": err("Not written (yet).")}}},
            "/api/v1alpha1/benchmarks": {"post": {"summary": "Seed 002's versioned route: the same as POST /api/v1/benchmarks (GET, and /{id}, /{id}/events and /{id}/{file} too).",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Submission"}}}},
                "responses": created}},
            "/api/v1/compare": {"get": {"summary": "Compare two finished benchmarks (base, candidate): per-metric change and significance.",
                "parameters": [
                    {"name": "base", "in": "query", "required": true, "schema": {"type": "string"}},
                    {"name": "candidate", "in": "query", "required": true, "schema": {"type": "string"}},
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "html"]}},
                    {"name": "allow_different_workloads", "in": "query", "schema": {"type": "boolean"}}],
                "responses": {"200": {"description": "The comparison."}, "400": err("Not comparable (different workloads, kinds).")}}},
            "/api/v1/history": {"get": {"summary": "A metric over stored results of one workload, with regressions flagged.",
                "parameters": [
                    {"name": "metric", "in": "query", "required": true, "schema": {"type": "string"}},
                    {"name": "model", "in": "query", "schema": {"type": "string"}},
                    {"name": "label", "in": "query", "schema": {"type": "string"}},
                    {"name": "workload", "in": "query", "schema": {"type": "string"}},
                    {"name": "window", "in": "query", "schema": {"type": "integer", "minimum": 2}}],
                "responses": {"200": {"description": "The trend."}}}},
            "/api/v1/metrics": {"get": {"summary": "The metric names stored results have.", "responses": {"200": {"description": "Names."}}}},
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_reference_resolves() {
        let doc = super::document();
        let text = doc.to_string();
        let mut rest = text.as_str();
        let mut n = 0;
        let marker = "\"$ref\":\"#/components/schemas/";
        while let Some(i) = rest.find(marker) {
            rest = &rest[i + marker.len()..];
            let name = &rest[..rest.find('"').unwrap()];
            assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
            n += 1;
        }
        assert!(n > 10, "{n} references");
        assert!(doc["paths"]["/api/v1/benchmarks/{id}/events"]["get"].is_object());
    }
}
