//! Runs rendered manifests here: every pod of every Job becomes a local process with the
//! environment Kubernetes would give it (`JOB_COMPLETION_INDEX` for an Indexed Job's pods, the
//! container's env, `$(VAR)` expanded in its command line as the kubelet does), its volumes as
//! directories under a work directory (a ConfigMap's keys as files, a claim as a shared
//! directory), and its output in a log file. All Jobs start together, as `kubectl apply` would
//! start them.

use crate::K8sError;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// How to run the manifests locally.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Where volumes and logs go.
    pub work: PathBuf,
    /// The binary that stands for the image's `inferbench`.
    pub exe: PathBuf,
    /// A value that replaces every `--start-at` argument (the rendered time may have passed).
    pub start_at: Option<String>,
}

/// How one pod ended.
#[derive(Debug, Clone)]
pub struct PodOutcome {
    /// `<job>-<index>`, as Kubernetes names an Indexed Job's pods (without the random suffix).
    pub pod: String,
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

/// The objects of a rendered directory.
#[derive(Debug, Default)]
struct Objects {
    config_maps: Vec<ConfigMap>,
    claims: Vec<PersistentVolumeClaim>,
    jobs: Vec<Job>,
}

fn read_dir(dir: &Path) -> Result<Objects, K8sError> {
    let io = |e: std::io::Error| K8sError::Io(format!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| p.file_stem().is_some_and(|s| s != "kustomization"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(K8sError::Invalid(format!("{} holds no manifests (*.yaml): render them with `inferbench k8s render`", dir.display())));
    }
    let mut out = Objects::default();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| K8sError::Io(format!("cannot read {}: {e}", f.display())))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let bad = |e: serde_yaml::Error| K8sError::Invalid(format!("{}: {e}", f.display()));
            let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).map_err(bad)?;
            if v.is_null() {
                continue;
            }
            let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("").to_owned();
            match kind.as_str() {
                "ConfigMap" => out.config_maps.push(serde_yaml::from_value(v).map_err(bad)?),
                "PersistentVolumeClaim" => out.claims.push(serde_yaml::from_value(v).map_err(bad)?),
                "Job" => out.jobs.push(serde_yaml::from_value(v).map_err(bad)?),
                k => {
                    return Err(K8sError::Invalid(format!(
                        "{}: a {} cannot run locally (ConfigMaps, PersistentVolumeClaims and Jobs can)",
                        f.display(),
                        if k.is_empty() { "document without a kind" } else { k }
                    )))
                }
            }
        }
    }
    if out.jobs.is_empty() {
        return Err(K8sError::Invalid(format!("{} holds no Job", dir.display())));
    }
    Ok(out)
}

/// `$(VAR)` replaced by the variable's value when it is defined, `$$` by `$`, as the kubelet
/// expands a container's command and args.
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(j) if env.contains_key(&body[..j]) => {
                    out.push_str(&env[&body[..j]]);
                    rest = &body[j + 1..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Starts every pod of every Job in `dir` and waits for them all.
pub fn run_local(dir: &Path, opts: &LocalOptions) -> Result<Vec<PodOutcome>, K8sError> {
    let objects = read_dir(dir)?;
    let mk = |p: &Path| std::fs::create_dir_all(p).map_err(|e| K8sError::Io(format!("cannot create {}: {e}", p.display())));
    let logs = opts.work.join("logs");
    mk(&logs)?;
    // Volumes: a ConfigMap's keys become files, a claim a directory every pod shares.
    let mut config_dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    for cm in &objects.config_maps {
        let name = cm.metadata.name.clone().unwrap_or_default();
        let d = opts.work.join(format!("configmap-{name}"));
        mk(&d)?;
        for (k, v) in cm.data.iter().flatten() {
            if k.contains('/') || k == ".." {
                return Err(K8sError::Invalid(format!("ConfigMap {name}: key '{k}' is not a file name")));
            }
            std::fs::write(d.join(k), v).map_err(|e| K8sError::Io(format!("cannot write {}: {e}", d.join(k).display())))?;
        }
        config_dirs.insert(name, d);
    }
    let claim_dir = |claim: &str| opts.work.join(claim);
    for c in &objects.claims {
        mk(&claim_dir(c.metadata.name.as_deref().unwrap_or_default()))?;
    }
    let mut running: Vec<(String, Child, PathBuf)> = Vec::new();
    for job in &objects.jobs {
        let job_name = job.metadata.name.clone().unwrap_or_else(|| "job".into());
        let Some(spec) = &job.spec else { return Err(K8sError::Invalid(format!("Job {job_name} has no spec"))) };
        let pod = spec.template.spec.as_ref().ok_or_else(|| K8sError::Invalid(format!("Job {job_name} has no pod spec")))?;
        let [container] = pod.containers.as_slice() else {
            return Err(K8sError::Invalid(format!("Job {job_name}: run-local runs pods of one container")));
        };
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        let pods = if indexed { spec.completions.unwrap_or(1).max(0) as u64 } else { 1 };
        // Mount path → local directory.
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for m in container.volume_mounts.iter().flatten() {
            let vol = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == m.name)
                .ok_or_else(|| K8sError::Invalid(format!("Job {job_name}: volume '{}' is mounted but not defined", m.name)))?;
            let local = if let Some(cm) = &vol.config_map {
                config_dirs
                    .get(&cm.name)
                    .cloned()
                    .ok_or_else(|| K8sError::Invalid(format!("Job {job_name}: ConfigMap {} is not among the manifests", cm.name)))?
            } else if let Some(c) = &vol.persistent_volume_claim {
                let d = claim_dir(&c.claim_name);
                mk(&d)?;
                d
            } else if vol.empty_dir.is_some() {
                let d = opts.work.join(format!("emptydir-{job_name}-{}", m.name));
                mk(&d)?;
                d
            } else {
                return Err(K8sError::Invalid(format!("Job {job_name}: volume '{}' is of a kind run-local does not provide", m.name)));
            };
            mounts.push((m.mount_path.trim_end_matches('/').to_owned(), local));
        }
        for index in 0..pods {
            let mut env: BTreeMap<String, String> = BTreeMap::new();
            if indexed {
                env.insert("JOB_COMPLETION_INDEX".into(), index.to_string());
            }
            for e in container.env.iter().flatten() {
                if let Some(v) = &e.value {
                    let expanded = expand(v, &env);
                    env.insert(e.name.clone(), expanded);
                } else if e.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()).is_some() {
                    // A Secret cannot be read here: this machine's variable of the same name stands in.
                    if let Ok(v) = std::env::var(&e.name) {
                        env.insert(e.name.clone(), v);
                    }
                }
            }
            let mut argv: Vec<String> =
                container.command.iter().flatten().chain(container.args.iter().flatten()).map(|a| expand(a, &env)).collect();
            if argv.is_empty() {
                return Err(K8sError::Invalid(format!(
                    "Job {job_name}: the container has no command (the image's entrypoint is not known here)"
                )));
            }
            for a in &mut argv {
                if let Some((mp, local)) = mounts.iter().find(|(mp, _)| a == mp || a.starts_with(&format!("{mp}/"))) {
                    *a = format!("{}{}", local.display(), &a[mp.len()..]);
                }
            }
            if let Some(t) = &opts.start_at {
                if let Some(k) = argv.iter().position(|a| a == "--start-at") {
                    if k + 1 < argv.len() {
                        argv[k + 1].clone_from(t);
                    }
                }
            }
            let program = if argv[0] == "inferbench" { opts.exe.clone() } else { PathBuf::from(&argv[0]) };
            let name = if indexed { format!("{job_name}-{index}") } else { job_name.clone() };
            let log = logs.join(format!("{name}.log"));
            let out = std::fs::File::create(&log).map_err(|e| K8sError::Io(format!("cannot create {}: {e}", log.display())))?;
            let err = out.try_clone().map_err(|e| K8sError::Io(format!("{}: {e}", log.display())))?;
            tracing::info!(pod = %name, args = ?&argv[1..], "starting");
            let child = Command::new(&program)
                .args(&argv[1..])
                .envs(&env)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| K8sError::Io(format!("cannot start {} for pod {name}: {e}", program.display())))?;
            running.push((name, child, log));
        }
    }
    let mut outcomes = Vec::new();
    for (pod, mut child, log) in running {
        let status = child.wait().map_err(|e| K8sError::Io(format!("waiting for pod {pod}: {e}")))?;
        outcomes.push(PodOutcome { pod, code: status.code(), log });
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_the_kubelet() {
        let env = BTreeMap::from([("JOB_COMPLETION_INDEX".to_owned(), "3".to_owned())]);
        assert_eq!(expand("shard-$(JOB_COMPLETION_INDEX)/4", &env), "shard-3/4");
        assert_eq!(expand("$(UNDEFINED) $$(JOB_COMPLETION_INDEX) $", &env), "$(UNDEFINED) $(JOB_COMPLETION_INDEX) $");
    }
}
