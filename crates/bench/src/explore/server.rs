//! A server stood up for a treatment and torn down after it: the command template filled in,
//! started by `sh -c` in its own process group (so teardown reaches every process it forks),
//! polled until it answers, and stopped with SIGTERM to the group, then SIGKILL after a grace
//! period. A server that is dropped without a teardown (an error path, a panic) is killed.
#![allow(unsafe_code)]

use crate::error::BenchError;
use inferbench_core::explore::{level_text, Levels, ServerTemplate};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A level as one shell word: plain words as they are, anything else single-quoted.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._/:=+-,@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The placeholders (`{name}`) of a template, in order.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('}') else { break };
        let name = &after[..j];
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            out.push(name.to_owned());
        }
        rest = &after[j + 1..];
    }
    out
}

/// Fills a template: `{port}`, `{inferbench}` (this executable) and each server factor's level
/// (shell-quoted). Every placeholder
/// must be one of them, so a typo is an error, not a literal `{max_num_seq}` handed to a server.
pub fn fill(template: &str, levels: &Levels, port: u16) -> Result<String, BenchError> {
    let mut out = template.to_owned();
    for name in placeholders(template) {
        let value = if name == "port" {
            port.to_string()
        } else if name == "inferbench" {
            // This very binary, so configs need not assume it is on PATH.
            let exe = std::env::current_exe().map_err(|e| BenchError::failed(format!("cannot find this executable: {e}")))?;
            shell_quote(&exe.display().to_string())
        } else if let Some(v) = levels.get(&name) {
            shell_quote(&level_text(v))
        } else {
            return Err(BenchError::invalid(format!(
                "server.command: '{{{name}}}' is neither {{port}}, {{inferbench}} nor a server factor ({})",
                if levels.is_empty() { "there are none".to_owned() } else { levels.keys().cloned().collect::<Vec<_>>().join(", ") }
            )));
        };
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    Ok(out)
}

/// A loopback port nobody listens on now.
pub fn free_port() -> Result<u16, BenchError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| BenchError::failed(format!("cannot find a free port: {e}")))?;
    l.local_addr().map(|a| a.port()).map_err(|e| BenchError::failed(format!("cannot find a free port: {e}")))
}

/// Splits a URL into its base (`scheme://host:port`) and path.
fn split_url(url: &str) -> (String, String) {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(j) => (url[..after + j].to_owned(), url[after + j..].to_owned()),
        None => (url.to_owned(), "/".to_owned()),
    }
}

/// Why a server is not serving.
#[derive(Debug)]
pub enum NotServing {
    /// It kept running but never answered in time.
    NotReady(String),
    /// It exited.
    Exited(String),
    /// The shell could not find or run the program (exit 127 or 126): no level will do better.
    NoProgram(String),
    /// Ctrl-C while waiting.
    Interrupted,
}

/// A running server.
pub struct ServerProcess {
    child: Child,
    /// The filled-in command.
    pub command: String,
    /// Where benchmarks send requests.
    pub base_url: String,
    /// The readiness URL.
    pub ready_url: String,
    /// The log file.
    pub log: PathBuf,
    grace: Duration,
    stopped: bool,
}

impl ServerProcess {
    /// Starts the template with these levels, its output going to `log`.
    pub fn start(t: &ServerTemplate, levels: &Levels, log: &Path) -> Result<Self, BenchError> {
        let port = free_port()?;
        let command = fill(&t.command, levels, port)?;
        let base_url = match &t.base_url {
            Some(u) => fill(u, levels, port)?.trim_end_matches('/').to_owned(),
            None => format!("http://127.0.0.1:{port}"),
        };
        let ready_url = match &t.ready_url {
            Some(u) => fill(u, levels, port)?,
            None => format!("{base_url}/v1/models"),
        };
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| BenchError::failed(format!("cannot create {}: {e}", dir.display())))?;
        }
        let out = File::create(log).map_err(|e| BenchError::failed(format!("cannot create the server log {}: {e}", log.display())))?;
        let err = out.try_clone().map_err(|e| BenchError::failed(format!("server log {}: {e}", log.display())))?;
        let mut cmd = Command::new("sh");
        // `exec` makes a simple command the group leader itself, so its PID is the one we hold;
        // a compound one (`sleep 5 && vllm serve ...`) stays under the shell, and the group
        // signal reaches it all the same.
        let compound = ["&&", "||", ";", "|", "\n", "&"].iter().any(|op| command.contains(op));
        let line = if compound { command.clone() } else { format!("exec {command}") };
        cmd.arg("-c").arg(line).stdin(Stdio::null()).stdout(out).stderr(err).envs(&t.env).process_group(0);
        if let Some(dir) = &t.cwd {
            cmd.current_dir(dir);
        }
        // SAFETY: prctl is async-signal-safe; it asks the kernel to SIGTERM the server if this
        // process dies without tearing it down (a SIGKILLed explorer leaves no server behind).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| BenchError::failed(format!("cannot start the server '{command}': {e}")))?;
        tracing::info!(pid = child.id(), %command, "server started");
        Ok(Self {
            child,
            command,
            base_url,
            ready_url,
            log: log.to_owned(),
            grace: Duration::from_secs_f64(t.grace_s.max(0.0)),
            stopped: false,
        })
    }

    /// The server's process id (and process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("cannot wait for it: {e}")),
        }
    }

    /// Polls the readiness URL until it answers 2xx, the server exits, `timeout` passes or
    /// `cancel` fires.
    pub async fn wait_ready(&mut self, timeout: Duration, cancel: &CancellationToken) -> Result<Duration, NotServing> {
        let t0 = Instant::now();
        let (base, path) = split_url(&self.ready_url);
        let target = inferbench_load::HttpTarget::new(&base, &path, None, Duration::from_secs(2))
            .map_err(|e| NotServing::NotReady(format!("readiness URL {}: {e}", self.ready_url)))?;
        let client = inferbench_load::client::http_client(&target);
        loop {
            if let Some(how) = self.exited() {
                let code = self.child.try_wait().ok().flatten().and_then(|s| s.code());
                if matches!(code, Some(126 | 127)) {
                    let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
                    let last = tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
                    return Err(NotServing::NoProgram(format!("server.command could not be run ({how}): {last}")));
                }
                return Err(NotServing::Exited(format!("the server exited ({how}) before it was ready; see {}", self.log.display())));
            }
            let last = match inferbench_load::client::get(&client, &target, &path).await {
                Ok((code, _)) if (200..300).contains(&code) => return Ok(t0.elapsed()),
                Ok((code, _)) => format!("HTTP {code}"),
                Err(e) => e.to_string(),
            };
            if t0.elapsed() >= timeout {
                return Err(NotServing::NotReady(format!(
                    "the server did not answer {} within {:.0} s (last: {last}); see {}",
                    self.ready_url,
                    timeout.as_secs_f64(),
                    self.log.display()
                )));
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = cancel.cancelled() => return Err(NotServing::Interrupted),
            }
        }
    }

    /// SIGTERM to the group, SIGKILL after the grace period; waits until the leader is reaped
    /// and the group is empty. Returns how it ended.
    pub async fn stop(mut self) -> String {
        self.stopped = true;
        let pgid = self.child.id() as libc::pid_t;
        signal_group(pgid, libc::SIGTERM);
        let t0 = Instant::now();
        let mut how = None;
        while t0.elapsed() < self.grace {
            if how.is_none() {
                how = self.exited();
            }
            if how.is_some() && !group_alive(pgid) {
                tracing::info!(pid = pgid, "server stopped");
                return format!("stopped by SIGTERM ({})", how.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        signal_group(pgid, libc::SIGKILL);
        let _ = self.child.wait();
        tracing::warn!(pid = pgid, "server killed after the grace period");
        format!("killed after {:.0} s of SIGTERM", self.grace.as_secs_f64())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if !self.stopped {
            signal_group(self.child.id() as libc::pid_t, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn signal_group(pgid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill with a negative pid signals the group we created; it touches no memory.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Whether any process of the group is alive (signal 0 checks without sending).
fn group_alive(pgid: libc::pid_t) -> bool {
    // SAFETY: as above.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// Whether a process id is alive and not a zombie (for tests and checks).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_fill_and_refuse_typos() {
        let levels: Levels = [("max_num_seqs".to_owned(), json!(8)), ("model".to_owned(), json!("a b's.gguf"))].into();
        let s = fill("serve --model {model} --max-num-seqs {max_num_seqs} --port {port}", &levels, 9000).unwrap();
        assert_eq!(s, r"serve --model 'a b'\''s.gguf' --max-num-seqs 8 --port 9000");
        let e = fill("serve --max-num-seqs {max_num_seq}", &levels, 1).unwrap_err().to_string();
        assert!(e.contains("'{max_num_seq}' is neither {port}, {inferbench} nor a server factor (max_num_seqs, model)"), "{e}");
        // Braces that are not placeholders (JSON in an argument) are left alone.
        assert_eq!(placeholders(r#"x --extra '{"a": 1}' {port}"#), vec!["port"]);
    }

    #[test]
    fn urls_split_into_base_and_path() {
        assert_eq!(split_url("http://127.0.0.1:8000/health"), ("http://127.0.0.1:8000".into(), "/health".into()));
        assert_eq!(split_url("http://h:1"), ("http://h:1".into(), "/".into()));
    }
}
