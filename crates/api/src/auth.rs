//! The bearer token: every API route but `/health` (and the dashboard's static files, which hold
//! no data) needs it when one is set. Compared in constant time, so the answer's timing says
//! nothing about how much of a guess was right.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// True when `header` carries `Bearer <token>`.
pub fn allowed(token: &str, header: Option<&str>) -> bool {
    let given = header.and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
    bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

/// The middleware.
pub async fn require(State(token): State<Arc<Option<String>>>, req: Request, next: Next) -> Response {
    let Some(token) = token.as_deref() else { return next.run(req).await };
    let path = req.uri().path();
    let public = path == "/health" || !path.starts_with("/api/");
    if public || allowed(token, req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())) {
        return next.run(req).await;
    }
    let body = axum::Json(serde_json::json!({"error": "missing or wrong token: send Authorization: Bearer <token>"}));
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn only_the_exact_token_passes() {
        assert!(allowed("s3cret", Some("Bearer s3cret")));
        for bad in [None, Some("s3cret"), Some("Bearer s3cre"), Some("Bearer s3cret2"), Some("bearer s3cret"), Some("Bearer ")] {
            assert!(!allowed("s3cret", bad), "{bad:?}");
        }
    }
}
