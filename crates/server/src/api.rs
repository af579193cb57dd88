//! The OpenAI-compatible HTTP front: completions, chat completions (streamed or not), models,
//! health and Prometheus metrics, over any [`Generator`].

use crate::generator::{Fault, GenError, GenEvent, GenRequest, Generator};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

struct AppState {
    gen: Arc<dyn Generator>,
    next_id: AtomicU64,
}

/// Builds the router serving `gen`. With `api_key`, the `/v1` routes demand
/// `Authorization: Bearer <key>` (as vLLM's `--api-key` does); health and metrics stay open.
pub fn router(gen: Arc<dyn Generator>, api_key: Option<String>) -> Router {
    let state = Arc::new(AppState { gen, next_id: AtomicU64::new(0) });
    let v1 = Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/reset_prefix_cache", post(reset_prefix_cache))
        .route("/generate", post(tgi_generate))
        .route("/generate_stream", post(tgi_generate_stream));
    let v1 = match api_key {
        Some(key) => {
            let expected = Arc::new(format!("Bearer {key}"));
            v1.layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
                let expected = expected.clone();
                async move {
                    let ok = req.headers().get(header::AUTHORIZATION).is_some_and(|v| v.as_bytes() == expected.as_bytes());
                    if ok {
                        next.run(req).await
                    } else {
                        error(401, "authentication_error", "invalid or missing API key")
                    }
                }
            }))
        }
        None => v1,
    };
    v1.route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .fallback(|uri: axum::http::Uri| async move { error(404, "not_found_error", format!("no route {}", uri.path())) })
        .method_not_allowed_fallback(|m: axum::http::Method, uri: axum::http::Uri| async move {
            error(405, "invalid_request_error", format!("method {m} is not allowed on {}", uri.path()))
        })
        .with_state(state)
}

/// Prompts longer than this are prepared off the async worker threads.
const BLOCKING_PROMPT_BYTES: usize = 64 * 1024;

/// vLLM's parameter checks: every violation is a 400 naming the field.
fn check_params(p: &CommonParams, max_tokens: u32) -> Result<(), String> {
    if max_tokens == 0 {
        return Err("max_tokens must be at least 1".into());
    }
    if let Some(t) = p.temperature.filter(|t| !(t.is_finite() && *t >= 0.0)) {
        return Err(format!("temperature must be non-negative, got {t}"));
    }
    if let Some(t) = p.top_p.filter(|t| !(t.is_finite() && *t > 0.0 && *t <= 1.0)) {
        return Err(format!("top_p must be in (0, 1], got {t}"));
    }
    if let Some(k) = p.top_k.filter(|k| *k < -1) {
        return Err(format!("top_k must be -1 (disable) or at least 0, got {k}"));
    }
    if let Some(m) = p.min_tokens.filter(|m| *m > max_tokens) {
        return Err(format!("min_tokens must be less than or equal to max_tokens={max_tokens}, got {m}"));
    }
    Ok(())
}

/// A body that could not be read as the request: 413 when it is too large, else 400 (as vLLM).
fn rejected(e: &JsonRejection) -> Response {
    let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE { 413 } else { 400 };
    error(status, "invalid_request_error", e.body_text())
}

/// An error answer: one status, one JSON body with a stable `type`.
fn error(status: u16, kind: &str, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"message": message.into(), "type": kind, "code": status.as_u16()}});
    (status, Json(body)).into_response()
}

impl IntoResponse for GenError {
    fn into_response(self) -> Response {
        error(self.status(), self.error_type(), self.to_string())
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PromptInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct CommonParams {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    min_tokens: Option<u32>,
    #[serde(default)]
    ignore_eos: bool,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    top_k: Option<i64>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<StopInput>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StopInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct CompletionRequest {
    prompt: PromptInput,
    #[serde(flatten)]
    common: CommonParams,
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: serde_json::Value,
}

#[derive(Deserialize)]
struct ChatRequest {
    messages: Vec<ChatMessage>,
    #[serde(flatten)]
    common: CommonParams,
}

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Completion,
    Chat,
}

async fn completions(State(s): State<Arc<AppState>>, body: Result<Json<CompletionRequest>, JsonRejection>) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return rejected(&e),
    };
    let prompt = match req.prompt {
        PromptInput::One(p) => p,
        PromptInput::Many(mut v) if v.len() == 1 => v.remove(0),
        PromptInput::Many(_) => return error(400, "invalid_request_error", "only one prompt per request is supported"),
    };
    respond(&s, Api::Completion, prompt, None, req.common).await
}

async fn chat(State(s): State<Arc<AppState>>, body: Result<Json<ChatRequest>, JsonRejection>) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return rejected(&e),
    };
    if req.messages.is_empty() {
        return error(400, "invalid_request_error", "messages must not be empty");
    }
    let mut prompt = String::new();
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let mut content = String::new();
        match &m.content {
            serde_json::Value::String(t) => content.push_str(t),
            serde_json::Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).for_each(|t| content.push_str(t)),
            // An assistant turn may carry no text (tool calls); anything else must have some.
            serde_json::Value::Null if m.role == "assistant" => {}
            _ => return error(400, "invalid_request_error", format!("messages[{i}].content must be a string or a list of text parts")),
        }
        prompt.push_str(&content);
        let role = if m.role.is_empty() { "user".to_owned() } else { m.role.clone() };
        messages.push(inferbench_data::prompt::ChatMessage { role, content });
    }
    respond(&s, Api::Chat, prompt, Some(messages), req.common).await
}

async fn respond(
    s: &AppState,
    api: Api,
    prompt: String,
    messages: Option<Vec<inferbench_data::prompt::ChatMessage>>,
    p: CommonParams,
) -> Response {
    let served = s.gen.model_name();
    if let Some(m) = p.model.as_deref().filter(|m| *m != served) {
        return error(404, "model_not_found", format!("the model '{m}' does not exist; this server serves '{served}'"));
    }
    let max_tokens = p.max_tokens.or(p.max_completion_tokens).unwrap_or(16);
    if let Err(m) = check_params(&p, max_tokens) {
        return error(400, "invalid_request_error", m);
    }
    let stop = match p.stop {
        None => Vec::new(),
        Some(StopInput::One(s)) => vec![s],
        Some(StopInput::Many(v)) => v,
    };
    let gen_req = GenRequest {
        prompt,
        messages,
        max_tokens,
        min_tokens: p.min_tokens.unwrap_or(0),
        ignore_eos: p.ignore_eos,
        temperature: p.temperature,
        top_p: p.top_p,
        top_k: p.top_k,
        seed: p.seed,
        stop,
    };
    // A long prompt is tokenized on the blocking pool, so the async workers (and `/health`)
    // stay responsive while it is counted.
    let generated = if gen_req.prompt.len() > BLOCKING_PROMPT_BYTES {
        let gen = s.gen.clone();
        match tokio::task::spawn_blocking(move || gen.generate(gen_req)).await {
            Ok(r) => r,
            Err(_) => return error(500, "internal_error", "the request could not be prepared"),
        }
    } else {
        s.gen.generate(gen_req)
    };
    let rx = match generated {
        Ok(rx) => rx,
        Err(e) => return e.into_response(),
    };
    let meta = ChunkMeta {
        id: format!("{}-{}", if api == Api::Chat { "chatcmpl" } else { "cmpl" }, s.next_id.fetch_add(1, Relaxed)),
        created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        model: served.to_owned(),
        api,
    };
    if p.stream {
        let include_usage = p.stream_options.unwrap_or_default().include_usage && s.gen.reports_usage();
        stream_response(meta, rx, include_usage)
    } else {
        whole_response(meta, rx, s.gen.reports_usage()).await
    }
}

struct ChunkMeta {
    id: String,
    created: u64,
    model: String,
    api: Api,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptDetails>,
}

/// OpenAI's `usage.prompt_tokens_details`, as vLLM fills it with prefix caching on.
#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u32,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<Delta<'a>>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

impl ChunkMeta {
    fn chunk(&self, text: Option<&str>, finish: Option<&str>, usage: Option<Usage>, with_choice: bool) -> String {
        let choice = match self.api {
            Api::Completion => ChoiceOut { index: 0, text: Some(text.unwrap_or("")), delta: None, finish_reason: finish },
            Api::Chat => ChoiceOut { index: 0, text: None, delta: Some(Delta { content: text }), finish_reason: finish },
        };
        let object = match self.api {
            Api::Completion => "text_completion",
            Api::Chat => "chat.completion.chunk",
        };
        let out = ChunkOut {
            id: &self.id,
            object,
            created: self.created,
            model: &self.model,
            choices: if with_choice { vec![choice] } else { Vec::new() },
            usage,
        };
        // Justified: a derived struct of strings and numbers, no maps, so no error path.
        #[allow(clippy::expect_used)]
        serde_json::to_string(&out).expect("chunks serialise")
    }
}

/// Marks a stream that must end abruptly (connection dropped without the final chunk).
#[derive(Debug)]
struct Disconnected;

impl std::fmt::Display for Disconnected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected disconnect")
    }
}

impl std::error::Error for Disconnected {}

fn stream_response(meta: ChunkMeta, rx: mpsc::Receiver<GenEvent>, include_usage: bool) -> Response {
    struct St {
        rx: Option<mpsc::Receiver<GenEvent>>,
        queue: VecDeque<Result<Event, Disconnected>>,
        meta: ChunkMeta,
        include_usage: bool,
    }
    let st = St { rx: Some(rx), queue: VecDeque::new(), meta, include_usage };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if let Some(item) = st.queue.pop_front() {
            return Some((item, st));
        }
        let rx = st.rx.as_mut()?;
        let meta = &st.meta;
        let item = match rx.recv().await {
            Some(GenEvent::Token(t)) => Ok(Event::default().data(meta.chunk(Some(&t), None, None, true))),
            Some(GenEvent::Fault(Fault::Malformed)) => Ok(Event::default().data("{\"choices\": [{\"text\": ")),
            Some(GenEvent::Fault(Fault::Disconnect)) | None => {
                st.rx = None;
                Err(Disconnected)
            }
            Some(GenEvent::Error(message)) => {
                st.rx = None;
                st.queue.push_back(Ok(Event::default().data("[DONE]")));
                Ok(Event::default().data(json!({"error": {"message": message, "type": "internal_error", "code": 500}}).to_string()))
            }
            Some(GenEvent::Finish { reason, prompt_tokens, completion_tokens, cached_tokens }) => {
                st.rx = None;
                if st.include_usage {
                    let usage = Usage {
                        prompt_tokens,
                        completion_tokens,
                        total_tokens: prompt_tokens + completion_tokens,
                        prompt_tokens_details: cached_tokens.map(|cached_tokens| PromptDetails { cached_tokens }),
                    };
                    st.queue.push_back(Ok(Event::default().data(meta.chunk(None, None, Some(usage), false))));
                }
                st.queue.push_back(Ok(Event::default().data("[DONE]")));
                Ok(Event::default().data(meta.chunk(None, Some(reason), None, true)))
            }
        };
        Some((item, st))
    });
    Sse::new(stream).into_response()
}

async fn whole_response(meta: ChunkMeta, mut rx: mpsc::Receiver<GenEvent>, report_usage: bool) -> Response {
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            GenEvent::Token(t) => text.push_str(&t),
            GenEvent::Fault(Fault::Malformed) => {
                return ([(header::CONTENT_TYPE, "application/json")], "{\"choices\": [{\"text\": ").into_response();
            }
            GenEvent::Fault(Fault::Disconnect) => break,
            GenEvent::Error(message) => return error(500, "internal_error", message),
            GenEvent::Finish { reason, prompt_tokens, completion_tokens, cached_tokens } => {
                let mut usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
                if let Some(c) = cached_tokens {
                    usage["prompt_tokens_details"] = json!({"cached_tokens": c});
                }
                let choice = match meta.api {
                    Api::Completion => json!({"index": 0, "text": text, "finish_reason": reason}),
                    Api::Chat => json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}),
                };
                let object = if meta.api == Api::Chat { "chat.completion" } else { "text_completion" };
                let mut body = json!({"id": meta.id, "object": object, "created": meta.created, "model": meta.model, "choices": [choice]});
                if report_usage {
                    body["usage"] = usage;
                }
                return Json(body).into_response();
            }
        }
    }
    error(500, "internal_error", "generation ended without finishing")
}

#[derive(Deserialize, Default)]
struct TgiParams {
    #[serde(default)]
    max_new_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct TgiRequest {
    inputs: String,
    #[serde(default)]
    parameters: TgiParams,
}

/// Starts a generation for TGI's native API (`/generate`, `/generate_stream`).
fn tgi_start(s: &AppState, body: Result<Json<TgiRequest>, JsonRejection>) -> Result<mpsc::Receiver<GenEvent>, Box<Response>> {
    let Json(req) = body.map_err(|e| {
        let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE { 413 } else { 400 };
        Box::new(tgi_error(status, "validation", e.body_text()))
    })?;
    let max_tokens = req.parameters.max_new_tokens.unwrap_or(20).max(1);
    s.gen
        .generate(GenRequest { prompt: req.inputs, max_tokens, ..Default::default() })
        .map_err(|e| Box::new(tgi_error(e.status(), e.error_type(), e.to_string())))
}

/// TGI's error body: `{"error": ..., "error_type": ...}`.
fn tgi_error(status: u16, kind: &str, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(json!({"error": message.into(), "error_type": kind}))).into_response()
}

fn tgi_details(reason: &str, completion_tokens: u32) -> serde_json::Value {
    json!({"finish_reason": reason, "generated_tokens": completion_tokens, "seed": null})
}

async fn tgi_generate(State(s): State<Arc<AppState>>, body: Result<Json<TgiRequest>, JsonRejection>) -> Response {
    let mut rx = match tgi_start(&s, body) {
        Ok(rx) => rx,
        Err(r) => return *r,
    };
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            GenEvent::Token(t) => text.push_str(&t),
            GenEvent::Fault(_) => return tgi_error(500, "generation", "injected fault"),
            GenEvent::Error(message) => return tgi_error(500, "generation", message),
            GenEvent::Finish { reason, completion_tokens, .. } => {
                return Json(json!({"generated_text": text, "details": tgi_details(reason, completion_tokens)})).into_response();
            }
        }
    }
    tgi_error(500, "generation", "generation ended without finishing")
}

/// TGI streams one event per token; the last one also carries the whole text and details.
async fn tgi_generate_stream(State(s): State<Arc<AppState>>, body: Result<Json<TgiRequest>, JsonRejection>) -> Response {
    let rx = match tgi_start(&s, body) {
        Ok(rx) => rx,
        Err(r) => return *r,
    };
    struct St {
        rx: Option<mpsc::Receiver<GenEvent>>,
        held: Option<String>,
        text: String,
        index: u32,
    }
    let token = |index: u32, t: &str| json!({"id": index, "text": t, "logprob": 0.0, "special": false});
    let stream = futures_util::stream::unfold(St { rx: Some(rx), held: None, text: String::new(), index: 0 }, move |mut st| async move {
        loop {
            let rx = st.rx.as_mut()?;
            match rx.recv().await {
                Some(GenEvent::Token(t)) => {
                    st.text.push_str(&t);
                    let Some(prev) = st.held.replace(t) else { continue };
                    st.index += 1;
                    let ev = json!({"index": st.index, "token": token(st.index, &prev), "generated_text": null, "details": null});
                    return Some((Ok(Event::default().data(ev.to_string())), st));
                }
                Some(GenEvent::Fault(Fault::Malformed)) => return Some((Ok(Event::default().data("{\"token\": {")), st)),
                Some(GenEvent::Fault(Fault::Disconnect)) | None => {
                    st.rx = None;
                    return Some((Err(Disconnected), st));
                }
                Some(GenEvent::Error(message)) => {
                    st.rx = None;
                    return Some((Ok(Event::default().data(json!({"error": message, "error_type": "generation"}).to_string())), st));
                }
                Some(GenEvent::Finish { reason, completion_tokens, .. }) => {
                    st.rx = None;
                    st.index += 1;
                    let last = st.held.take().unwrap_or_default();
                    let ev = json!({
                        "index": st.index,
                        "token": token(st.index, &last),
                        "generated_text": st.text,
                        "details": tgi_details(reason, completion_tokens),
                    });
                    return Some((Ok(Event::default().data(ev.to_string())), st));
                }
            }
        }
    });
    Sse::new(stream).into_response()
}

async fn models(State(s): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let mut m = json!({"id": s.gen.model_name(), "object": "model", "owned_by": "inferbench"});
    if let Some(t) = s.gen.tokenizer() {
        // Not an OpenAI field: names what `inferbench run --tokenizer` should load (a bundled
        // encoding or the model file), so the client counts as the server does.
        m["tokenizer"] = json!(t.name());
    }
    Json(json!({"object": "list", "data": [m]}))
}

#[derive(Deserialize)]
struct TokenizeRequest {
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    messages: Option<Vec<inferbench_data::prompt::ChatMessage>>,
    /// vLLM's flag; our tokenizers add no special tokens to plain text either way, and a chat
    /// template adds what it writes.
    #[serde(default)]
    #[allow(dead_code)]
    add_special_tokens: Option<bool>,
}

/// vLLM's `POST /tokenize`: `{"prompt": ...}` or `{"messages": [...]}` (through the chat
/// template) to `{"count", "tokens"}`. Tokenizing runs on the blocking pool.
async fn tokenize(State(s): State<Arc<AppState>>, body: Result<Json<TokenizeRequest>, JsonRejection>) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return rejected(&e),
    };
    let gen = s.gen.clone();
    // The error is (status, type, message), made into a response on the async side.
    let work = tokio::task::spawn_blocking(move || -> Result<Vec<u32>, (u16, &'static str, String)> {
        let Some(tok) = gen.tokenizer() else {
            return Err((404, "not_found_error", "this server has no tokenizer to expose".into()));
        };
        let text = match (req.prompt, req.messages) {
            (Some(p), None) => p,
            (None, Some(ms)) => match tok.chat_template() {
                Some(t) => {
                    t.render(&ms, true).map_err(|e| (400, "invalid_request_error", format!("cannot apply the chat template: {e}")))?
                }
                None => ms.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n"),
            },
            _ => return Err((400, "invalid_request_error", "give exactly one of prompt and messages".into())),
        };
        Ok(tok.encode(&text))
    });
    match work.await {
        Ok(Ok(tokens)) => Json(json!({"count": tokens.len(), "tokens": tokens})).into_response(),
        Ok(Err((status, kind, message))) => error(status, kind, message),
        Err(e) => error(500, "internal_error", e.to_string()),
    }
}

#[derive(Deserialize)]
struct DetokenizeRequest {
    tokens: Vec<u32>,
}

/// vLLM's `POST /detokenize`: `{"tokens": [...]}` to `{"prompt": text}`.
async fn detokenize(State(s): State<Arc<AppState>>, body: Result<Json<DetokenizeRequest>, JsonRejection>) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return rejected(&e),
    };
    let Some(tok) = s.gen.tokenizer() else {
        return error(404, "not_found_error", "this server has no tokenizer to expose");
    };
    match tok.decode(&req.tokens) {
        Ok(text) => Json(json!({"prompt": text})).into_response(),
        Err(e) => error(400, "invalid_request_error", e.to_string()),
    }
}

/// vLLM's `POST /reset_prefix_cache`: 200 once the cache is empty, 404 without a cache.
async fn reset_prefix_cache(State(s): State<Arc<AppState>>) -> Response {
    if s.gen.reset_prefix_cache() {
        Json(json!({"status": "ok"})).into_response()
    } else {
        error(404, "not_found", "this server has no prefix cache")
    }
}

async fn metrics(State(s): State<Arc<AppState>>) -> Result<Response, Infallible> {
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.gen.metrics_text()).into_response())
}
