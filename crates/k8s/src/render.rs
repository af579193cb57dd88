//! The manifests of a sharded run, built from the official Kubernetes API types (`k8s-openapi`),
//! so every field name is the API's own: a ConfigMap holding the spec, a claim for the shared
//! results volume, an Indexed Job whose pod `I` runs shard `I/N`, and a merge Job that waits for
//! every shard's result.

use crate::K8sError;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SecretKeySelector,
    SecurityContext, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// Where the spec's ConfigMap is mounted in the pods.
pub const CONFIG_DIR: &str = "/config";
/// Where the shared results volume is mounted in the pods.
pub const RESULTS_DIR: &str = "/results";
/// The variable through which the API key reaches the pods (what `inferbench run` reads).
pub const API_KEY_ENV: &str = "OPENAI_API_KEY";
/// How long the merge Job waits for the shards, in seconds.
pub const MERGE_WAIT_S: u64 = 86_400;

/// What to render.
#[derive(Debug, Clone)]
pub struct RenderSpec {
    /// Object name (and prefix).
    pub name: String,
    /// Namespace of every object.
    pub namespace: String,
    /// Container image with `inferbench` on its PATH.
    pub image: String,
    /// Number of shards (pods).
    pub shards: u64,
    /// The run spec, as `inferbench run --spec` reads it.
    pub spec_json: String,
    /// Run options that are not part of the spec (labels, monitors), passed to every shard.
    pub run_args: Vec<String>,
    /// When the shards start measuring (RFC 3339).
    pub start_at: String,
    /// The Secret (name, key) holding the target's API key.
    pub api_key_secret: Option<(String, String)>,
    /// An existing claim to use, or `None` to render one.
    pub pvc: Option<String>,
    /// The rendered claim's size.
    pub storage: String,
    /// The rendered claim's storage class.
    pub storage_class: Option<String>,
    /// CPU per shard pod.
    pub cpu: String,
    /// Memory per shard pod.
    pub memory: String,
}

/// One manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// File name in the rendered directory.
    pub file: String,
    /// Its YAML.
    pub yaml: String,
}

fn meta(spec: &RenderSpec, name: String, component: &str) -> ObjectMeta {
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "inferbench".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), spec.name.clone()),
        ("app.kubernetes.io/component".to_owned(), component.to_owned()),
    ]);
    ObjectMeta { name: Some(name), namespace: Some(spec.namespace.clone()), labels: Some(labels), ..ObjectMeta::default() }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 52 // room for the "-shards" suffix and the pod's index within 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The manifests, in the order they are applied.
pub fn render(spec: &RenderSpec) -> Result<Vec<Manifest>, K8sError> {
    if spec.shards == 0 || spec.shards > 10_000 {
        return Err(K8sError::Invalid(format!("invalid --shards {}: from 1 to 10000", spec.shards)));
    }
    for (flag, v) in [("--name", &spec.name), ("--namespace", &spec.namespace)] {
        if !is_dns_label(v) {
            return Err(K8sError::Invalid(format!(
                "invalid {flag} '{v}': lower-case letters, digits and '-', at most 52 characters (a Kubernetes DNS label)"
            )));
        }
    }
    if spec.image.trim().is_empty() {
        return Err(K8sError::Invalid("--image is empty".into()));
    }
    let q = |flag: &str, v: &str| -> Result<Quantity, K8sError> {
        let ok = !v.is_empty()
            && v.chars().next().is_some_and(|c| c.is_ascii_digit())
            && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
        if ok {
            Ok(Quantity(v.to_owned()))
        } else {
            Err(K8sError::Invalid(format!("invalid {flag} '{v}': a Kubernetes quantity such as 2, 500m, 2Gi")))
        }
    };
    let (cpu, memory, storage) = (q("--cpu", &spec.cpu)?, q("--memory", &spec.memory)?, q("--storage", &spec.storage)?);
    let n = spec.shards;
    let claim = spec.pvc.clone().unwrap_or_else(|| format!("{}-results", spec.name));
    let config_map = ConfigMap {
        metadata: meta(spec, format!("{}-spec", spec.name), "spec"),
        data: Some(BTreeMap::from([("spec.json".to_owned(), spec.spec_json.clone())])),
        ..ConfigMap::default()
    };
    let results_volume = Volume {
        name: "results".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name: claim.clone(), read_only: None }),
        ..Volume::default()
    };
    let config_volume = Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource { name: format!("{}-spec", spec.name), ..ConfigMapVolumeSource::default() }),
        ..Volume::default()
    };
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    };
    let security = SecurityContext {
        allow_privilege_escalation: Some(false),
        run_as_non_root: Some(true),
        run_as_user: Some(65_532),
        ..SecurityContext::default()
    };
    let mut env = vec![EnvVar { name: "RUST_LOG".into(), value: Some("info".into()), ..EnvVar::default() }];
    if let Some((secret, key)) = &spec.api_key_secret {
        env.push(EnvVar {
            name: API_KEY_ENV.into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector { name: secret.clone(), key: key.clone(), optional: Some(false) }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    let mut shard_args: Vec<String> = [
        "run",
        "--spec",
        &format!("{CONFIG_DIR}/spec.json"),
        "--shard",
        &format!("$(JOB_COMPLETION_INDEX)/{n}"),
        "--start-at",
        &spec.start_at,
        "--result-dir",
        RESULTS_DIR,
        "--result-filename",
        "shard-$(JOB_COMPLETION_INDEX)",
        "--no-store",
        "--disable-tqdm",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    shard_args.extend(spec.run_args.iter().cloned());
    let limits = BTreeMap::from([("cpu".to_owned(), cpu), ("memory".to_owned(), memory)]);
    let shard_container = Container {
        name: "shard".into(),
        image: Some(spec.image.clone()),
        command: Some(vec!["inferbench".into()]),
        args: Some(shard_args),
        env: Some(env),
        resources: Some(ResourceRequirements { requests: Some(limits.clone()), limits: Some(limits), ..ResourceRequirements::default() }),
        volume_mounts: Some(vec![mount("config", CONFIG_DIR, true), mount("results", RESULTS_DIR, false)]),
        security_context: Some(security.clone()),
        ..Container::default()
    };
    let pod = |container: Container, volumes: Vec<Volume>, component: &str| PodTemplateSpec {
        metadata: Some(meta(spec, String::new(), component)).map(|mut m| {
            m.name = None;
            m.namespace = None;
            m
        }),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            // The results volume is written by the image's non-root user.
            security_context: Some(PodSecurityContext { fs_group: Some(65_532), ..PodSecurityContext::default() }),
            containers: vec![container],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
    };
    let shards = Job {
        metadata: meta(spec, format!("{}-shards", spec.name), "shard"),
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(n as i32),
            parallelism: Some(n as i32),
            // A retried shard would start after --start-at and skew the merged window: a failed
            // shard fails the run, and the merge names it.
            backoff_limit: Some(0),
            template: pod(shard_container, vec![config_volume, results_volume.clone()], "shard"),
            ..JobSpec::default()
        }),
        ..Job::default()
    };
    let merge_container = Container {
        name: "merge".into(),
        image: Some(spec.image.clone()),
        command: Some(vec!["inferbench".into()]),
        args: Some(
            [
                "merge",
                RESULTS_DIR,
                "--wait",
                &MERGE_WAIT_S.to_string(),
                "--output",
                &format!("{RESULTS_DIR}/merged.json"),
                "--html",
                "--no-store",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        ),
        volume_mounts: Some(vec![mount("results", RESULTS_DIR, false)]),
        security_context: Some(security),
        ..Container::default()
    };
    let merge = Job {
        metadata: meta(spec, format!("{}-merge", spec.name), "merge"),
        spec: Some(JobSpec { backoff_limit: Some(0), template: pod(merge_container, vec![results_volume], "merge"), ..JobSpec::default() }),
        ..Job::default()
    };
    let mut out = vec![Manifest { file: "00-spec-configmap.yaml".into(), yaml: to_yaml(&config_map)? }];
    if spec.pvc.is_none() {
        let pvc = PersistentVolumeClaim {
            metadata: meta(spec, claim, "results"),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteMany".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_owned(), storage)])),
                    ..VolumeResourceRequirements::default()
                }),
                storage_class_name: spec.storage_class.clone(),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        };
        out.push(Manifest { file: "01-results-pvc.yaml".into(), yaml: to_yaml(&pvc)? });
    }
    out.push(Manifest { file: "02-shards-job.yaml".into(), yaml: to_yaml(&shards)? });
    out.push(Manifest { file: "03-merge-job.yaml".into(), yaml: to_yaml(&merge)? });
    let kustomization = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": out.iter().map(|m| m.file.clone()).collect::<Vec<_>>(),
    });
    out.push(Manifest { file: "kustomization.yaml".into(), yaml: to_yaml(&kustomization)? });
    Ok(out)
}

fn to_yaml<T: serde::Serialize>(v: &T) -> Result<String, K8sError> {
    serde_yaml::to_string(v).map_err(|e| K8sError::Invalid(format!("cannot write YAML: {e}")))
}
