//! One HTTP connection pool, and the measurement of one request from send to last byte.

use crate::backend::RequestTemplate;
use crate::http1::{ConnPool, HttpError, Timeouts};
use crate::sse::SseParser;
use crate::transport::{Dialer, ProxyEnv, TlsOptions};
use http::Uri;
use inferbench_core::record::TokenCount;
use inferbench_core::{FailureKind, Outcome, RequestRecord, TokenSource};
use inferbench_data::{Prompt, Tokenizer};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The TLS or proxy settings cannot be used (a bad `--ca-cert`, a bad proxy URL).
    #[error("{0}")]
    Transport(String),
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

/// A URL with any user name and password replaced by `***`, for anything that is stored or
/// printed (`http://user:pw@host:8000` → `http://***@host:8000`).
pub fn redact_url(url: &str) -> String {
    match split_userinfo(url) {
        Some((scheme, _, rest)) => format!("{scheme}://***@{rest}"),
        None => url.to_owned(),
    }
}

/// The URL without its user info, and whether it had any.
fn strip_userinfo(url: &str) -> (String, bool) {
    match split_userinfo(url) {
        Some((scheme, _, rest)) => (format!("{scheme}://{rest}"), true),
        None => (url.to_owned(), false),
    }
}

/// `(scheme, userinfo, rest)` when the authority has a `user[:password]@` part.
fn split_userinfo(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, after) = url.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let at = after[..end].rfind('@')?;
    Some((scheme, &after[..at], &after[at + 1..]))
}

/// Everything needed to send benchmark requests to one server.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// Base URL, without a trailing slash.
    pub base_url: String,
    /// Full URI of the generation endpoint.
    pub uri: Uri,
    /// `host:port` to connect to.
    pub authority: String,
    /// Path and query prefix of the base URL (e.g. `/proxy` in `http://h/proxy`).
    pub base_path: String,
    /// The `Authorization` header value (kept in memory only; never printed).
    auth: Option<Secret>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Connect and mid-answer idle timeouts.
    pub timeouts: Timeouts,
    /// `Host` header value: the host, with the port unless it is the scheme's default.
    host_header: String,
    /// How connections are opened (proxy, TLS).
    dialer: Dialer,
}

impl HttpTarget {
    /// Validates the URL and key; connections go straight to the server, with the default TLS
    /// roots for `https://`.
    pub fn new(base_url: &str, endpoint: &str, api_key: Option<&str>, timeout: Duration) -> Result<Self, ClientError> {
        Self::with_transport(base_url, endpoint, api_key, timeout, &TlsOptions::default(), &ProxyEnv::default())
    }

    /// Validates the URL and key, and prepares connections: through the proxy `proxies` names for
    /// this host (if any), with TLS checked as `tls` says for `https://`.
    pub fn with_transport(
        base_url: &str,
        endpoint: &str,
        api_key: Option<&str>,
        timeout: Duration,
        tls: &TlsOptions,
        proxies: &ProxyEnv,
    ) -> Result<Self, ClientError> {
        let redacted = redact_url(base_url);
        let bad = |reason: &str| ClientError::BadUrl { url: redacted.clone(), reason: reason.to_owned() };
        let (base, userinfo) = strip_userinfo(base_url.trim_end_matches('/'));
        if userinfo {
            // Credentials in the URL are not sent (use --api-key); they are never stored either.
            tracing::warn!("ignoring the user name and password in the base URL; use --api-key for a bearer token");
        }
        let parsed: Uri = base.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let (scheme, default_port) = match parsed.scheme_str() {
            Some("http") => ("http", 80),
            Some("https") => ("https", 443),
            _ => return Err(bad("expected http://HOST:PORT or https://HOST")),
        };
        if parsed.host().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let endpoint = if endpoint.starts_with('/') { endpoint.to_owned() } else { format!("/{endpoint}") };
        let uri = format!("{base}{endpoint}").parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let auth = match api_key.filter(|k| !k.is_empty()) {
            Some(k) if k.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) => Some(Secret(format!("Bearer {k}"))),
            Some(_) => return Err(ClientError::BadApiKey),
            None => None,
        };
        let host = parsed.host().unwrap_or_default();
        // The URI type drops a port it cannot hold, so read the text: 99999 must not become 80.
        let auth_text = parsed.authority().map_or("", |a| a.as_str());
        let port_text = if auth_text.ends_with(']') { None } else { auth_text.rsplit_once(':').map(|(_, p)| p) };
        let port = match port_text {
            None | Some("") => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(bad(&format!("port {p} is not a valid port (1-65535)"))),
            },
        };
        let authority = format!("{host}:{port}");
        let host_header = if port == default_port { host.to_owned() } else { authority.clone() };
        let base_path = parsed.path().trim_end_matches('/').to_owned();
        let dialer = Dialer::new(scheme, host, port, tls, proxies).map_err(ClientError::Transport)?;
        if let Some(p) = dialer.proxy_shown() {
            tracing::info!(proxy = p, "connecting through the environment's proxy");
        }
        Ok(Self { base_url: base, uri, authority, base_path, auth, timeout, timeouts: Timeouts::default(), host_header, dialer })
    }

    /// Sets the connect and idle timeouts (`--connect-timeout`, `--idle-timeout`).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The start of every request's head up to the `Content-Length` value.
    fn head_prefix(&self, method: &str, path_and_query: &str) -> String {
        let mut h = match self.dialer.forward_proxy_auth() {
            // An http:// target through a proxy: the request line names the whole URL.
            Some(proxy_auth) => {
                let mut h = format!("{method} http://{}{path_and_query} HTTP/1.1\r\n", self.host_header);
                if let Some(a) = proxy_auth {
                    h.push_str(&format!("Proxy-Authorization: {a}\r\n"));
                }
                h
            }
            None => format!("{method} {path_and_query} HTTP/1.1\r\n"),
        };
        h.push_str(&format!("Host: {}\r\nAccept: */*\r\n", self.host_header));
        if let Some(a) = &self.auth {
            h.push_str("Authorization: ");
            h.push_str(&a.0);
            h.push_str("\r\n");
        }
        h.push_str("Content-Type: application/json\r\n");
        h
    }
}

/// A credential: usable, but `Debug` never shows it, so no log line can leak it.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Serialises a request: the prepared head prefix, the request id header, the length, and the body.
fn request_bytes(prefix: &str, request_id: Option<std::fmt::Arguments<'_>>, body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut r = Vec::with_capacity(prefix.len() + body.len() + 80);
    r.extend_from_slice(prefix.as_bytes());
    if let Some(id) = request_id {
        let _ = write!(r, "X-Request-Id: {id}\r\n");
    }
    r.extend_from_slice(b"Content-Length: ");
    r.extend_from_slice(body.len().to_string().as_bytes());
    r.extend_from_slice(b"\r\n\r\n");
    r.extend_from_slice(body);
    r
}

/// The connections all requests of a run share: one pool for the target's host.
pub type HttpClient = ConnPool;

/// Builds the shared connection pool for `target`.
pub fn http_client(target: &HttpTarget) -> HttpClient {
    ConnPool::with_dialer(target.dialer.clone()).with_timeouts(target.timeouts)
}

/// GETs a path under the base URL with the target's auth, returning status and body (bounded
/// to 1 MiB).
pub async fn get(client: &HttpClient, target: &HttpTarget, path: &str) -> Result<(u16, Vec<u8>), ClientError> {
    call(client, target, "GET", path, b"").await
}

/// POSTs a JSON body to a path under the base URL with the target's auth, returning status and
/// body (bounded to 1 MiB).
pub async fn post_json(
    client: &HttpClient,
    target: &HttpTarget,
    path: &str,
    body: &serde_json::Value,
) -> Result<(u16, Vec<u8>), ClientError> {
    call(client, target, "POST", path, body.to_string().as_bytes()).await
}

async fn call(client: &HttpClient, target: &HttpTarget, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), ClientError> {
    let url = format!("{}{path}", target.base_url);
    let unreachable = |e: &dyn std::fmt::Display| ClientError::Unreachable { url: url.clone(), reason: e.to_string() };
    let request = request_bytes(&target.head_prefix(method, &format!("{}{path}", target.base_path)), None, body);
    let exchange = async {
        let (mut conn, head) = client.exchange(&request, &mut None).await.map_err(|e| unreachable(&e))?;
        let mut body = Vec::new();
        let read = conn
            .read_body(&head, |d, _| {
                body.extend_from_slice(d);
                if body.len() > 1 << 20 {
                    Err("the answer is larger than 1 MiB")
                } else {
                    Ok(())
                }
            })
            .await
            .map_err(|e| unreachable(&e))?;
        read.map_err(|e| unreachable(&e))?;
        client.put(conn, &head);
        Ok((head.status, body))
    };
    tokio::time::timeout(target.timeout.min(Duration::from_secs(30)), exchange).await.map_err(|_| unreachable(&"timed out"))?
}

/// What the pre-flight check learnt of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The model to request: the one asked for, or the first served.
    pub model: String,
    /// The tokenizer the server names for that model (our servers' `tokenizer` field), if any.
    pub tokenizer: Option<String>,
}

/// Confirms the server is up and serves `model`; returns the model to use (the first served one
/// when none was asked for) and the tokenizer the server names for it. Servers without
/// `/v1/models` are accepted when a model is given.
pub async fn preflight(client: &HttpClient, target: &HttpTarget, model: Option<&str>) -> Result<ServerInfo, ClientError> {
    let url = format!("{}/v1/models", target.base_url);
    let (status, body) = get(client, target, "/v1/models").await?;
    let text = || String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned();
    if status == 404 {
        if let Some(m) = model {
            tracing::warn!("{url} is not available (404); trusting --model {m}");
            return Ok(ServerInfo { model: m.to_owned(), tokenizer: None });
        }
    }
    if !(200..300).contains(&status) {
        let hint = match status {
            401 | 403 => " (the API key was rejected: check --api-key or OPENAI_API_KEY)",
            404 => " (no /v1/models here: pass --model)",
            _ => "",
        };
        return Err(ClientError::Status { url, status, hint, body: text() });
    }
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer { url: url.clone(), reason: e.to_string() })?;
    let served: Vec<(String, Option<String>)> = v["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| Some((m["id"].as_str()?.to_owned(), m["tokenizer"].as_str().map(str::to_owned)))).collect())
        .unwrap_or_default();
    let found = match model {
        Some(m) => served.iter().find(|(id, _)| id == m).cloned().ok_or_else(|| ClientError::UnknownModel {
            model: m.to_owned(),
            url: url.clone(),
            available: served.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(", "),
        })?,
        None => served.into_iter().next().ok_or(ClientError::BadAnswer { url, reason: "it serves no models".into() })?,
    };
    Ok(ServerInfo { model: found.0, tokenizer: found.1 })
}

/// The server's own prompt-token count of `texts`, together, from vLLM's `POST /tokenize`, or
/// `None` when it has no such route (or answers anything unexpected): a check, never a
/// requirement.
pub async fn server_token_count(client: &HttpClient, target: &HttpTarget, model: &str, texts: &[&str]) -> Option<u64> {
    let mut total = 0;
    // vLLM's form first; llama.cpp's server reads `content` and answers vLLM's form with no
    // tokens (and no `count`), so an empty answer to a non-empty text switches to its form.
    let mut llama_form = false;
    for t in texts {
        loop {
            let body = if llama_form {
                serde_json::json!({"content": t, "add_special": false})
            } else {
                serde_json::json!({"model": model, "prompt": t, "add_special_tokens": false})
            };
            let (status, answer) = post_json(client, target, "/tokenize", &body).await.ok()?;
            if status != 200 {
                tracing::debug!(status, "no usable /tokenize on the server; prompt lengths are not cross-checked");
                return None;
            }
            let v: serde_json::Value = serde_json::from_slice(&answer).ok()?;
            let n = v["count"].as_u64().or_else(|| v["tokens"].as_array().map(|a| a.len() as u64))?;
            if n == 0 && !t.is_empty() && v.get("count").is_none() {
                if llama_form {
                    tracing::debug!("/tokenize counts no tokens in either form; prompt lengths are not cross-checked");
                    return None;
                }
                llama_form = true;
                continue;
            }
            total += n;
            break;
        }
    }
    Some(total)
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
    /// A warm-up request (not measured; its request id says so).
    pub warmup: bool,
}

impl Slot {
    /// A measured request's slot.
    pub fn new(id: u64, scheduled_ns: u64, gate_ns: u64) -> Self {
        Self { id, scheduled_ns, gate_ns, warmup: false }
    }
}

/// Shared, read-only state of a run's requests.
pub struct Requester {
    client: HttpClient,
    template: RequestTemplate,
    tokenizer: Tokenizer,
    keep_text: bool,
    timeout: Duration,
    /// Most bytes one SSE line or event, or a whole non-streamed body, may take.
    max_response_bytes: usize,
    /// Holds the `Authorization` header: deliberately left out of `Debug`.
    head_prefix: String,
    /// Requests between their send and end timestamps, and the most seen at once.
    in_flight: InFlight,
    /// Starts each request's `X-Request-Id` (vLLM's `--request-id-prefix`); `None` sends none.
    request_id_prefix: Option<String>,
    /// Count the tokens of every n-th request (by id) on the client too, when the server
    /// reported usage; `None` never.
    reconcile_every: Option<u64>,
}

/// Counts requests in flight as they are sent and end, so the run's peak concurrency costs two
/// atomic operations per request instead of a list of events that grows with the run.
#[derive(Debug, Default)]
struct InFlight {
    now: AtomicU64,
    peak: AtomicU64,
}

impl InFlight {
    fn enter(&self) -> InFlightGuard<'_> {
        let n = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(n, Ordering::Relaxed);
        InFlightGuard(self)
    }
}

/// Leaves the count when the request ends (or its future is dropped).
struct InFlightGuard<'a>(&'a InFlight);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Requests whose tokens are counted on both sides by default: one in 32 (by id).
pub const DEFAULT_RECONCILE_EVERY: u64 = 32;

/// The default bound on one line, event or non-streamed body: far past any real answer.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 << 20;

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requester").field("template", &self.template).field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

struct Progress {
    /// When the request's first byte was written, and whether its connection was already open.
    sent: Option<(Instant, bool)>,
    first_token: Option<Instant>,
    last_chunk: Option<Instant>,
    itl_ns: Vec<u64>,
    text: String,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    cached_tokens: Option<u64>,
}

impl Requester {
    /// Prepares requests to `target`: `tokenizer` counts tokens when the server does not,
    /// `keep_text` keeps generated text in records.
    pub fn new(client: HttpClient, target: &HttpTarget, template: RequestTemplate, tokenizer: Tokenizer, keep_text: bool) -> Self {
        let path = target.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let head_prefix = target.head_prefix("POST", path);
        Self {
            client,
            template,
            tokenizer,
            keep_text,
            timeout: target.timeout,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            head_prefix,
            in_flight: InFlight::default(),
            request_id_prefix: None,
            reconcile_every: Some(DEFAULT_RECONCILE_EVERY),
        }
    }

    /// Counts the tokens of every `n`-th request on the client as well as on the server (`0`:
    /// never). Encoding the whole answer costs about as much CPU as receiving it, so a sample.
    pub fn with_reconcile_every(mut self, n: u64) -> Self {
        self.reconcile_every = (n > 0).then_some(n);
        self
    }

    /// Sends `X-Request-Id: <prefix><id>` with each request (`<prefix><id>-<turn>` for later
    /// turns of a conversation, `<prefix>warmup-<id>` for warm-ups), as vLLM's benchmark does:
    /// server logs, traces and packet captures can then name the request a record describes.
    pub fn with_request_id_prefix(mut self, prefix: Option<String>) -> Self {
        self.request_id_prefix = prefix;
        self
    }

    /// Opens connections until `n` are idle, before the measured window (`--warmup-connections`).
    pub async fn warm_connections(&self, n: usize) -> Result<usize, HttpError> {
        self.client.warm(n).await
    }

    /// The most requests that were in flight at once (between their send and end timestamps)
    /// since the last [`Requester::reset_peak`].
    pub fn peak_in_flight(&self) -> u64 {
        self.in_flight.peak.load(Ordering::Relaxed)
    }

    /// Requests in flight now (sent, not yet ended).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.now.load(Ordering::Relaxed)
    }

    /// Starts a new peak from the requests in flight now (warm-up is over).
    pub fn reset_peak(&self) {
        self.in_flight.peak.store(self.in_flight.now.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Bounds what one line, event or non-streamed body may buffer; past it the request fails
    /// as `overflow`.
    pub fn with_max_response_bytes(mut self, n: usize) -> Self {
        self.max_response_bytes = n.max(1024);
        self
    }

    /// Sends one prompt and measures it. Never fails: every outcome becomes a record.
    pub async fn send(&self, slot: Slot, prompt: &Prompt, epoch: Instant, cancel: &CancellationToken) -> RequestRecord {
        self.send_with_text(slot, prompt, epoch, cancel).await.0
    }

    /// Counts a conversation's tokens the way [`Requester::send`] counts a prompt's (used for
    /// multi-turn history when the server reports no usage).
    pub fn count(&self, text: &str) -> u64 {
        self.tokenizer.count(text) as u64
    }

    /// Like [`Requester::send`], also returning the generated text (multi-turn sessions need
    /// it for the next turn's history).
    pub async fn send_with_text(&self, slot: Slot, prompt: &Prompt, epoch: Instant, cancel: &CancellationToken) -> (RequestRecord, String) {
        let ns = |t: Instant| t.saturating_duration_since(epoch).as_nanos() as u64;
        let body = self.template.body(&prompt.text, prompt.messages.as_deref(), prompt.output_tokens);
        let mut p = Progress {
            sent: None,
            first_token: None,
            last_chunk: None,
            itl_ns: Vec::with_capacity(prompt.output_tokens as usize),
            text: String::new(),
            prompt_tokens: None,
            completion_tokens: None,
            cached_tokens: None,
        };
        let start = Instant::now();
        let gauge = self.in_flight.enter();
        let request = match &self.request_id_prefix {
            Some(pre) if pre == UUID_REQUEST_IDS => {
                let id = request_id(pre, slot.id, prompt.turn, slot.warmup);
                request_bytes(&self.head_prefix, Some(format_args!("{id}")), &body)
            }
            // Formatted straight into the request: no String per request on the common path.
            Some(pre) => match (slot.warmup, prompt.turn) {
                (true, _) => request_bytes(&self.head_prefix, Some(format_args!("{pre}warmup-{}", slot.id)), &body),
                (false, Some(t)) if t > 0 => request_bytes(&self.head_prefix, Some(format_args!("{pre}{}-{t}", slot.id)), &body),
                (false, _) => request_bytes(&self.head_prefix, Some(format_args!("{pre}{}", slot.id)), &body),
            },
            None => request_bytes(&self.head_prefix, None, &body),
        };
        drop(body);
        let result = tokio::select! {
            r = tokio::time::timeout(self.timeout, self.exchange(request, &mut p)) => match r {
                Ok(r) => r,
                Err(_) => Err((FailureKind::Timeout, format!("no complete answer within {:?}", self.timeout))),
            },
            _ = cancel.cancelled() => Err((FailureKind::Cancelled, "run interrupted".into())),
        };
        let end = Instant::now();
        drop(gauge);
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
            Err((failure, message)) => {
                tracing::debug!(id = slot.id, kind = %failure.label(), %message, "request failed");
                Outcome::Failed { failure, message }
            }
        };
        // The server counted both sides: on a sample of requests, count them the client's way too
        // (the whole text at once, never chunk by chunk) so a tokenizer mismatch shows.
        let client_count = match (p.prompt_tokens, p.completion_tokens, self.reconcile_every, &outcome) {
            (Some(_), Some(_), Some(every), Outcome::Success) if slot.id % every == 0 && prompt.turn.unwrap_or(0) == 0 => {
                Some(TokenCount { input: u64::from(prompt.input_tokens), output: self.tokenizer.count(&p.text) as u64 })
            }
            _ => None,
        };
        let text = std::mem::take(&mut p.text);
        // A request that never reached the wire keeps its start as its send.
        let (sent, reused) = p.sent.map_or((start, None), |(t, r)| (t, Some(r)));
        let record = RequestRecord {
            id: slot.id,
            scheduled_ns: slot.scheduled_ns,
            gate_ns: slot.gate_ns,
            sent_ns: ns(sent),
            connect_ns: sent.saturating_duration_since(start).as_nanos() as u64,
            reused,
            first_token_ns: p.first_token.map(ns),
            end_ns: ns(end),
            itl_ns: p.itl_ns,
            input_tokens: p.prompt_tokens.unwrap_or(prompt.input_tokens as u64),
            output_tokens,
            token_source,
            cached_tokens: p.cached_tokens,
            client_count,
            requested_output_tokens: self.template.exact_lengths().then_some(u64::from(prompt.output_tokens)),
            outcome,
            category: prompt.category.clone(),
            turn: prompt.turn,
            generated_text: self.keep_text.then(|| text.clone()),
        };
        (record, text)
    }

    async fn exchange(&self, request: Vec<u8>, p: &mut Progress) -> Result<(), (FailureKind, String)> {
        let (mut conn, head) = self.client.exchange(&request, &mut p.sent).await.map_err(|e| match e {
            HttpError::ConnectTimeout(m) => (FailureKind::ConnectTimeout, m),
            e => (FailureKind::Connection, e.to_string()),
        })?;
        let broken = |e: HttpError| match e {
            HttpError::Idle(m) => (FailureKind::IdleTimeout, m),
            e => (FailureKind::Disconnect, format!("stream broke: {e}")),
        };
        let limit = self.max_response_bytes;
        let overflow =
            || (FailureKind::Overflow, format!("the response outgrew {limit} bytes in one line, event or body (--max-response-bytes)"));
        if !(200..300).contains(&head.status) {
            let mut bytes = Vec::new();
            let _ = conn
                .read_body(&head, |d, _| {
                    bytes.extend_from_slice(d);
                    if bytes.len() > 64 << 10 {
                        Err(())
                    } else {
                        Ok(())
                    }
                })
                .await;
            return Err((FailureKind::Http { status: head.status }, error_message(&bytes)));
        }
        let backend = self.template.backend();
        if !self.template.stream() {
            let mut bytes = Vec::new();
            let whole = conn
                .read_body::<()>(&head, |d, _| {
                    bytes.extend_from_slice(d);
                    if bytes.len() > limit {
                        Err(())
                    } else {
                        Ok(())
                    }
                })
                .await
                .map_err(broken)?;
            if whole.is_err() {
                return Err(overflow());
            }
            self.client.put(conn, &head);
            let c = backend.parse_chunk(&bytes).map_err(|e| (FailureKind::Malformed, e.to_string()))?;
            if let Some(e) = c.error {
                return Err((FailureKind::Stream, e));
            }
            p.first_token = Some(Instant::now());
            p.text.push_str(&c.text);
            p.prompt_tokens = c.prompt_tokens;
            p.completion_tokens = c.completion_tokens;
            p.cached_tokens = c.cached_tokens;
            return Ok(());
        }
        let mut sse = SseParser::with_limit(limit);
        let mut done = false;
        conn.read_body(&head, |data, now| {
            let r = sse.feed(data, |payload| {
                if done {
                    return Ok(());
                }
                if payload == b"[DONE]" {
                    done = true;
                    return Ok(());
                }
                let c = backend.parse_chunk(payload).map_err(|e| (FailureKind::Malformed, e.to_string()))?;
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
                p.cached_tokens = c.cached_tokens.or(p.cached_tokens);
                done |= c.done;
                Ok(())
            });
            if sse.overflowed() {
                return Err(overflow());
            }
            r
        })
        .await
        .map_err(broken)??;
        if !done {
            let why = if sse.has_partial() { "stream ended inside an event" } else { "stream ended without [DONE]" };
            return Err((FailureKind::Disconnect, why.into()));
        }
        self.client.put(conn, &head);
        Ok(())
    }
}

/// The message of a server's JSON error body, or the body's start.
fn error_message(body: &[u8]) -> String {
    let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let msg = v.as_ref().and_then(|v| {
        v["error"]["message"].as_str().or(v["message"].as_str()).or(v["error"].as_str()).or(v["detail"].as_str()).map(str::to_owned)
    });
    match msg {
        Some(m) => m,
        None if body.iter().all(u8::is_ascii_whitespace) => "(the answer had no body)".to_owned(),
        None => String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned(),
    }
}

/// The `--request-id-prefix` value that sends UUID-shaped ids instead of `PREFIX<id>`: some
/// servers (llama-cpp-python's) answer any other `X-Request-Id` with an empty HTTP 400.
pub const UUID_REQUEST_IDS: &str = "uuid";

/// The `X-Request-Id` of request `id` (turn `turn` of a session, or a warm-up request): `PREFIX<id>`,
/// `PREFIX<id>-<turn>`, `PREFIX warmup-<id>`; with [`UUID_REQUEST_IDS`], a version-4-shaped UUID
/// holding the same facts (`00000000-0000-4000-8TTT-IIIIIIIIIIII`, variant `b` for warm-up), so a
/// capture can still be paired with the records.
pub fn request_id(prefix: &str, id: u64, turn: Option<u32>, warmup: bool) -> String {
    let turn = turn.filter(|&t| t > 0);
    if prefix == UUID_REQUEST_IDS {
        let variant = if warmup { 0xb000 } else { 0x8000 } | (turn.unwrap_or(0) & 0x0fff) as u64;
        return format!("00000000-0000-4000-{variant:04x}-{:012x}", id & 0xffff_ffff_ffff);
    }
    match (warmup, turn) {
        (true, _) => format!("{prefix}warmup-{id}"),
        (false, Some(t)) => format!("{prefix}{id}-{t}"),
        (false, None) => format!("{prefix}{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_by_prefix_or_as_uuids() {
        assert_eq!(request_id("inferbench-", 7, None, false), "inferbench-7");
        assert_eq!(request_id("p", 7, Some(2), false), "p7-2");
        assert_eq!(request_id("p", 7, Some(0), false), "p7");
        assert_eq!(request_id("p", 7, None, true), "pwarmup-7");
        assert_eq!(request_id("uuid", 7, None, false), "00000000-0000-4000-8000-000000000007");
        assert_eq!(request_id("uuid", 0x1234, Some(3), false), "00000000-0000-4000-8003-000000001234");
        assert_eq!(request_id("uuid", 7, None, true), "00000000-0000-4000-b000-000000000007");
        assert_eq!(error_message(b""), "(the answer had no body)");
        assert_eq!(error_message(br#"{"detail":"no"}"#), "no");
    }

    #[test]
    fn urls_are_validated() {
        let t = |u: &str| HttpTarget::new(u, "/v1/completions", None, Duration::from_secs(1));
        assert_eq!(t("http://127.0.0.1:8000/").unwrap().uri, "http://127.0.0.1:8000/v1/completions");
        assert!(t("localhost:8000").unwrap_err().to_string().contains("invalid URL 'localhost:8000'"));
        assert_eq!(t("https://x").unwrap().authority, "x:443");
        assert!(t("ftp://x").unwrap_err().to_string().contains("expected http://HOST:PORT or https://HOST"));
        assert!(t("http://").is_err());
        assert!(HttpTarget::new("http://h", "/x", Some("bad\nkey"), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn bad_ports_are_refused_not_replaced_by_80() {
        let t = |u: &str| HttpTarget::new(u, "/v1/completions", None, Duration::from_secs(1));
        let e = t("http://127.0.0.1:99999").unwrap_err().to_string();
        assert!(e.contains("port 99999 is not a valid port"), "{e}");
        assert!(t("http://127.0.0.1:0").unwrap_err().to_string().contains("port 0"));
        assert_eq!(t("http://127.0.0.1").unwrap().authority, "127.0.0.1:80");
        assert_eq!(t("http://[::1]:8000").unwrap().authority, "[::1]:8000");
    }

    #[test]
    fn passwords_in_urls_are_redacted_and_not_sent() {
        assert_eq!(redact_url("http://user:pw@h:1/p"), "http://***@h:1/p");
        assert_eq!(redact_url("http://h:1/p@x"), "http://h:1/p@x", "an @ in the path is not user info");
        let t = HttpTarget::new("http://user:s3cret@127.0.0.1:8000", "/v1/completions", None, Duration::from_secs(1)).unwrap();
        assert_eq!(t.base_url, "http://127.0.0.1:8000");
        assert!(!format!("{t:?}").contains("s3cret"));
        let e = HttpTarget::new("http://user:s3cret@127.0.0.1:99999", "/x", None, Duration::from_secs(1)).unwrap_err().to_string();
        assert!(!e.contains("s3cret") && e.contains("***@"), "{e}");
    }

    #[test]
    fn api_keys_never_show_in_debug_output() {
        let t = HttpTarget::new("http://h:1", "/v1/completions", Some("sk-topsecret"), Duration::from_secs(1)).unwrap();
        assert!(t.head_prefix("POST", "/x").contains("Authorization: Bearer sk-topsecret\r\n"));
        assert!(!format!("{t:?}").contains("topsecret"));
        let tok = Tokenizer::by_name("gpt2").unwrap();
        let tmpl = RequestTemplate::new(crate::Backend::OpenAi, &Default::default());
        let r = Requester::new(http_client(&t), &t, tmpl, tok, false);
        assert!(!format!("{r:?}").contains("topsecret"));
    }

    #[test]
    fn error_bodies_are_summarised() {
        assert_eq!(error_message(br#"{"error":{"message":"no such model"}}"#), "no such model");
        assert_eq!(error_message(br#"{"object":"error","message":"too long"}"#), "too long");
        assert_eq!(error_message(b"plain text"), "plain text");
    }
}
