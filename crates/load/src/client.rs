//! One HTTP connection pool, and the measurement of one request from send to last byte.

use crate::backend::RequestTemplate;
use crate::sse::SseParser;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use inferbench_core::{FailureKind, Outcome, RequestRecord, TokenSource};
use inferbench_data::{Prompt, Tokenizer};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Why the client could not be set up or a pre-flight check failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not a usable `http://` URL.
    #[error("invalid URL '{url}': {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The API key has characters an HTTP header cannot carry.
    #[error("the API key contains characters that cannot be sent in an HTTP header")]
    BadApiKey,
    /// The server could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The connection error.
        reason: String,
    },
    /// The server answered with an unexpected status.
    #[error("{url} answered HTTP {status}{hint}: {body}")]
    Status {
        /// The URL tried.
        url: String,
        /// The status.
        status: u16,
        /// A hint for common statuses.
        hint: &'static str,
        /// The start of the body.
        body: String,
    },
    /// The model is not served there.
    #[error("model '{model}' is not served by {url} (it serves: {available})")]
    UnknownModel {
        /// The model asked for.
        model: String,
        /// The server.
        url: String,
        /// What it serves.
        available: String,
    },
    /// The server's answer could not be understood.
    #[error("{url} sent an answer that is not what an OpenAI-compatible server sends: {reason}")]
    BadAnswer {
        /// The URL tried.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// Everything needed to send benchmark requests to one server.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// Base URL, without a trailing slash.
    pub base_url: String,
    /// Full URI of the generation endpoint.
    pub uri: Uri,
    /// Pre-built `Authorization` header.
    pub auth: Option<HeaderValue>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl HttpTarget {
    /// Validates the URL and key. Only `http://` is supported (benchmark targets are usually
    /// reached without TLS; a TLS stack would double the client's build and per-byte cost).
    pub fn new(base_url: &str, endpoint: &str, api_key: Option<&str>, timeout: Duration) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_owned();
        let bad = |reason: &str| ClientError::BadUrl { url: base_url.to_owned(), reason: reason.to_owned() };
        let parsed: Uri = base.parse().map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        match parsed.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(bad("https is not supported yet; use an http:// URL (e.g. through a local proxy)")),
            _ => return Err(bad("expected http://HOST:PORT")),
        }
        if parsed.host().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let endpoint = if endpoint.starts_with('/') { endpoint.to_owned() } else { format!("/{endpoint}") };
        let uri = format!("{base}{endpoint}").parse().map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        let auth = api_key
            .filter(|k| !k.is_empty())
            .map(|k| HeaderValue::from_str(&format!("Bearer {k}")).map_err(|_| ClientError::BadApiKey))
            .transpose()?
            .map(|mut h| {
                h.set_sensitive(true);
                h
            });
        Ok(Self { base_url: base, uri, auth, timeout })
    }
}

/// The pooled HTTP/1.1 client all requests share.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Builds the shared client: unlimited idle connections (one per concurrent stream), no Nagle.
pub fn http_client() -> HttpClient {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(usize::MAX).pool_idle_timeout(Duration::from_secs(90)).build(conn)
}

/// GETs a path with the target's auth, returning status and body (bounded to 1 MiB).
pub async fn get(client: &HttpClient, target: &HttpTarget, path: &str) -> Result<(StatusCode, Bytes), ClientError> {
    let url = format!("{}{path}", target.base_url);
    let mut req = Request::builder().method(Method::GET).uri(&url);
    if let Some(a) = &target.auth {
        req = req.header(AUTHORIZATION, a.clone());
    }
    let req = req.body(Full::new(Bytes::new())).map_err(|e| ClientError::BadUrl { url: url.clone(), reason: e.to_string() })?;
    let unreachable = |e: &dyn std::fmt::Display| ClientError::Unreachable { url: url.clone(), reason: e.to_string() };
    let resp = tokio::time::timeout(target.timeout.min(Duration::from_secs(30)), client.request(req))
        .await
        .map_err(|_| unreachable(&"timed out"))?
        .map_err(|e| unreachable(&error_chain(&e)))?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), 1 << 20).collect().await.map_err(|e| unreachable(&e))?.to_bytes();
    Ok((status, body))
}

/// Confirms the server is up and serves `model`; returns the model to use (the first served one
/// when none was asked for). Servers without `/v1/models` are accepted when a model is given.
pub async fn preflight(client: &HttpClient, target: &HttpTarget, model: Option<&str>) -> Result<String, ClientError> {
    let url = format!("{}/v1/models", target.base_url);
    let (status, body) = get(client, target, "/v1/models").await?;
    let text = || String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned();
    if status == StatusCode::NOT_FOUND {
        if let Some(m) = model {
            tracing::warn!("{url} is not available (404); trusting --model {m}");
            return Ok(m.to_owned());
        }
    }
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 => " (the API key was rejected: check --api-key or OPENAI_API_KEY)",
            404 => " (no /v1/models here: pass --model)",
            _ => "",
        };
        return Err(ClientError::Status { url, status: status.as_u16(), hint, body: text() });
    }
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer { url: url.clone(), reason: e.to_string() })?;
    let ids: Vec<String> =
        v["data"].as_array().map(|a| a.iter().filter_map(|m| m["id"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
    match model {
        Some(m) if ids.iter().any(|id| id == m) => Ok(m.to_owned()),
        Some(m) => Err(ClientError::UnknownModel { model: m.to_owned(), url, available: ids.join(", ") }),
        None => ids.into_iter().next().ok_or(ClientError::BadAnswer { url, reason: "it serves no models".into() }),
    }
}

/// The instants of one request that the scheduler decided, relative to the run's epoch.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// Request index.
    pub id: u64,
    /// Scheduled send, ns since epoch.
    pub scheduled_ns: u64,
    /// Concurrency gate passed, ns since epoch.
    pub gate_ns: u64,
}

/// Shared, read-only state of a run's requests.
#[derive(Debug)]
pub struct Requester {
    /// The pooled client.
    pub client: HttpClient,
    /// Where to send.
    pub target: HttpTarget,
    /// How to build bodies and read chunks.
    pub template: RequestTemplate,
    /// Counts tokens when the server does not.
    pub tokenizer: Tokenizer,
    /// Keep generated text in records.
    pub keep_text: bool,
}

struct Progress {
    first_token: Option<Instant>,
    last_chunk: Option<Instant>,
    itl_ns: Vec<u64>,
    text: String,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl Requester {
    /// Sends one prompt and measures it. Never fails: every outcome becomes a record.
    pub async fn send(&self, slot: Slot, prompt: &Prompt, epoch: Instant, cancel: &CancellationToken) -> RequestRecord {
        let ns = |t: Instant| t.saturating_duration_since(epoch).as_nanos() as u64;
        let body = self.template.body(&prompt.text, prompt.output_tokens);
        let mut p = Progress {
            first_token: None,
            last_chunk: None,
            itl_ns: Vec::with_capacity(prompt.output_tokens as usize),
            text: String::new(),
            prompt_tokens: None,
            completion_tokens: None,
        };
        let sent = Instant::now();
        let result = tokio::select! {
            r = tokio::time::timeout(self.target.timeout, self.exchange(body, &mut p)) => match r {
                Ok(r) => r,
                Err(_) => Err((FailureKind::Timeout, format!("no complete answer within {:?}", self.target.timeout))),
            },
            _ = cancel.cancelled() => Err((FailureKind::Cancelled, "run interrupted".into())),
        };
        let end = Instant::now();
        if !self.template.stream() && p.first_token.is_some() {
            // Non-streamed: the first token is seen with the last byte (vLLM's convention).
            p.first_token = Some(end);
        }
        let (token_source, output_tokens) = match p.completion_tokens {
            Some(n) => (TokenSource::Server, n),
            None if p.first_token.is_some() => (TokenSource::Tokenizer, self.tokenizer.count(&p.text) as u64),
            None => (TokenSource::None, 0),
        };
        let outcome = match result {
            Ok(()) => Outcome::Success,
            Err((failure, message)) => Outcome::Failed { failure, message },
        };
        RequestRecord {
            id: slot.id,
            scheduled_ns: slot.scheduled_ns,
            gate_ns: slot.gate_ns,
            sent_ns: ns(sent),
            first_token_ns: p.first_token.map(ns),
            end_ns: ns(end),
            itl_ns: p.itl_ns,
            input_tokens: p.prompt_tokens.unwrap_or(prompt.input_tokens as u64),
            output_tokens,
            token_source,
            outcome,
            category: prompt.category.clone(),
            generated_text: self.keep_text.then_some(p.text),
        }
    }

    async fn exchange(&self, body: Vec<u8>, p: &mut Progress) -> Result<(), (FailureKind, String)> {
        let mut req = Request::builder().method(Method::POST).uri(self.target.uri.clone()).header(CONTENT_TYPE, "application/json");
        if let Some(a) = &self.target.auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| (FailureKind::Connection, e.to_string()))?;
        let resp = self.client.request(req).await.map_err(|e| (FailureKind::Connection, error_chain(&e)))?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = http_body_util::Limited::new(body, 64 << 10).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            return Err((FailureKind::Http { status: status.as_u16() }, error_message(&bytes)));
        }
        let backend = self.template.backend();
        if !self.template.stream() {
            let bytes = body.collect().await.map_err(|e| (FailureKind::Stream, error_chain(&e)))?.to_bytes();
            let now = Instant::now();
            let c = backend.parse_chunk(&bytes).map_err(|e| (FailureKind::Stream, e.to_string()))?;
            if let Some(e) = c.error {
                return Err((FailureKind::Stream, e));
            }
            p.first_token = Some(now);
            p.text.push_str(&c.text);
            p.prompt_tokens = c.prompt_tokens;
            p.completion_tokens = c.completion_tokens;
            return Ok(());
        }
        let mut sse = SseParser::new();
        let mut done = false;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| (FailureKind::Stream, format!("stream broke: {}", error_chain(&e))))?;
            let Some(data) = frame.data_ref() else { continue };
            let now = Instant::now();
            sse.feed(data, |payload| {
                if done {
                    return Ok(());
                }
                if payload == b"[DONE]" {
                    done = true;
                    return Ok(());
                }
                let c = backend.parse_chunk(payload).map_err(|e| (FailureKind::Stream, e.to_string()))?;
                if let Some(e) = c.error {
                    return Err((FailureKind::Stream, format!("server error mid-stream: {e}")));
                }
                if !c.text.is_empty() {
                    match p.last_chunk {
                        None => p.first_token = Some(now),
                        Some(last) => p.itl_ns.push(now.duration_since(last).as_nanos() as u64),
                    }
                    p.last_chunk = Some(now);
                    p.text.push_str(&c.text);
                }
                p.prompt_tokens = c.prompt_tokens.or(p.prompt_tokens);
                p.completion_tokens = c.completion_tokens.or(p.completion_tokens);
                done |= c.done;
                Ok(())
            })?;
        }
        if !done {
            let why = if sse.has_partial() { "stream ended inside an event" } else { "stream ended without [DONE]" };
            return Err((FailureKind::Stream, why.into()));
        }
        Ok(())
    }
}

/// The message of a server's JSON error body, or the body's start.
fn error_message(body: &[u8]) -> String {
    let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let msg = v.as_ref().and_then(|v| {
        v["error"]["message"].as_str().or(v["message"].as_str()).or(v["error"].as_str()).or(v["detail"].as_str()).map(str::to_owned)
    });
    msg.unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned())
}

/// An error and its sources on one line ("connection refused" hides behind hyper's outer error).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_validated() {
        let t = |u: &str| HttpTarget::new(u, "/v1/completions", None, Duration::from_secs(1));
        assert_eq!(t("http://127.0.0.1:8000/").unwrap().uri, "http://127.0.0.1:8000/v1/completions");
        assert!(t("localhost:8000").unwrap_err().to_string().contains("invalid URL 'localhost:8000'"));
        assert!(t("https://x").unwrap_err().to_string().contains("https is not supported"));
        assert!(t("http://").is_err());
        assert!(HttpTarget::new("http://h", "/x", Some("bad\nkey"), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn error_bodies_are_summarised() {
        assert_eq!(error_message(br#"{"error":{"message":"no such model"}}"#), "no such model");
        assert_eq!(error_message(br#"{"object":"error","message":"too long"}"#), "too long");
        assert_eq!(error_message(b"plain text"), "plain text");
    }
}
