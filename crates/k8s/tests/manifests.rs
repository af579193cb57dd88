//! The rendered manifests against the official Kubernetes API types (k8s-openapi, pinned): every
//! document deserialises into its type, and serialising it back gives the same document, so no
//! field name is misspelt or unknown (an unknown field would be dropped and the comparison fail).

use inferbench_k8s::{render, RenderSpec};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use serde_json::Value;
use std::path::Path;

fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(yaml: &str, what: &str) -> T {
    let raw: Value = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{what}: {e}"));
    let typed: T = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{what} is not a valid object: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(back, raw, "{what}: a field is unknown to the API types");
    typed
}

fn check_dir(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let what = p.display().to_string();
        let kind: Value = serde_yaml::from_str(&text).unwrap();
        match kind["kind"].as_str().unwrap() {
            "ConfigMap" => drop(roundtrip::<ConfigMap>(&text, &what)),
            "PersistentVolumeClaim" => drop(roundtrip::<PersistentVolumeClaim>(&text, &what)),
            "Job" => drop(roundtrip::<Job>(&text, &what)),
            "Kustomization" => continue,
            k => panic!("{what}: unexpected kind {k}"),
        }
        n += 1;
    }
    n
}

#[test]
fn the_shipped_base_deserialises_into_the_official_types() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s");
    assert_eq!(check_dir(&base), 4);
}

fn spec() -> RenderSpec {
    RenderSpec {
        name: "bench".into(),
        namespace: "perf".into(),
        image: "registry.example/inferbench:0.1".into(),
        shards: 3,
        spec_json: r#"{"base_url":"http://vllm:8000"}"#.into(),
        run_args: vec!["--label".into(), "a=b".into()],
        start_at: "2026-12-03T18:00:00Z".into(),
        api_key_secret: Some(("vllm-key".into(), "token".into())),
        pvc: None,
        storage: "5Gi".into(),
        storage_class: Some("nfs".into()),
        cpu: "4".into(),
        memory: "1Gi".into(),
    }
}

#[test]
fn the_shards_are_an_indexed_job_and_the_key_comes_from_the_secret_by_reference() {
    let out = render(&spec()).unwrap();
    let job: Job = roundtrip(&out.iter().find(|m| m.file == "02-shards-job.yaml").unwrap().yaml, "shards");
    let js = job.spec.unwrap();
    assert_eq!((js.completion_mode.as_deref(), js.completions, js.parallelism), (Some("Indexed"), Some(3), Some(3)));
    let c = &js.template.spec.unwrap().containers[0];
    let args = c.args.clone().unwrap();
    let at = |f: &str| args[args.iter().position(|a| a == f).unwrap() + 1].clone();
    assert_eq!(at("--shard"), "$(JOB_COMPLETION_INDEX)/3");
    assert_eq!(at("--spec"), "/config/spec.json");
    let key = c.env.as_ref().unwrap().iter().find(|e| e.name == "OPENAI_API_KEY").unwrap();
    assert!(key.value.is_none(), "the key is never inlined");
    let r = key.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!((r.name.as_str(), r.key.as_str()), ("vllm-key", "token"));
    let cm: ConfigMap = roundtrip(&out[0].yaml, "configmap");
    assert_eq!(cm.data.unwrap()["spec.json"], r#"{"base_url":"http://vllm:8000"}"#);
    let pvc: PersistentVolumeClaim = roundtrip(&out[1].yaml, "pvc");
    assert_eq!(pvc.spec.unwrap().access_modes.unwrap(), ["ReadWriteMany"]);
    let merge: Job = roundtrip(&out[3].yaml, "merge");
    let margs = merge.spec.unwrap().template.spec.unwrap().containers[0].args.clone().unwrap();
    assert_eq!(margs[..4], ["merge", "/results", "--wait", "86400"]);
}

#[test]
fn bad_settings_are_refused_with_the_flag() {
    for (change, want) in [
        (RenderSpec { shards: 0, ..spec() }, "--shards"),
        (RenderSpec { name: "Bad_Name".into(), ..spec() }, "--name"),
        (RenderSpec { cpu: "lots".into(), ..spec() }, "--cpu"),
        (RenderSpec { image: " ".into(), ..spec() }, "--image"),
    ] {
        let e = render(&change).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}
