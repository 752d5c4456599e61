//! `Idempotency-Key` (API.md): a retried creating call with the same key returns the first
//! result instead of creating again. Keys are per caller, kept for 24 hours; only successful
//! results are kept (a failed call can be retried with the same key and runs again). A retry
//! is the same request: method, path, query and body (a SHA-256 of them is kept with the key);
//! the same key with another request is refused (422), never answered with the first result.
//! Dry runs (`?dry_run=true`) create nothing, so they neither use nor keep a key.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::http::auth::RequestAuth;
use crate::http::error::{AppError, FieldError, is_api_path};
use crate::idempotency::{self, Claim, Kept, Refusal};

pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a response that repeats the first result.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// Results larger than this are not kept (the call still succeeds).
const MAX_KEPT_BYTES: usize = 1024 * 1024;

pub async fn idempotency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let user = request
        .extensions()
        .get::<RequestAuth>()
        .and_then(|a| a.principal.as_ref())
        .map(|p| p.user.id.0);
    let (Some(key), Some(user)) = (key, user) else {
        return next.run(request).await;
    };
    if request.method() != Method::POST || !is_api_path(request.uri().path()) {
        return next.run(request).await;
    }
    if key.is_empty() || key.len() > 200 {
        return AppError::Validation(vec![FieldError {
            field: "Idempotency-Key".into(),
            message: "Use a key of 1 to 200 characters, e.g. a UUID.".into(),
        }])
        .into_response();
    }
    if is_dry_run(request.uri().query()) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, crate::app::router::BODY_LIMIT_BYTES).await else {
        return AppError::PayloadTooLarge.into_response();
    };
    let hash = request_hash(&parts.method, &path, parts.uri.query(), &body);
    let request = Request::from_parts(parts, Body::from(body));
    match idempotency::claim(&state.pool, user, &key, &path, &hash).await {
        Ok(Claim::First) => {}
        Ok(Claim::Replay(kept)) => return replay(kept),
        Ok(Claim::Refused(refusal)) => return refused(refusal).into_response(),
        Err(e) => return AppError::from(e).into_response(),
    }

    let response = next.run(request).await;
    if !response.status().is_success() {
        let _ = idempotency::forget(&state.pool, user, &key).await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_KEPT_BYTES).await else {
        let _ = idempotency::forget(&state.pool, user, &key).await;
        return AppError::Internal(anyhow::anyhow!(
            "a response too large to keep for Idempotency-Key"
        ))
        .into_response();
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let status = parts.status.as_u16() as i16;
    if let Err(e) = idempotency::keep(&state.pool, user, &key, status, content_type, &bytes).await {
        tracing::warn!(error = %e, "keeping an idempotent result failed; a retry would run again");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Whether the query asks for a dry run (`dry_run`, unless `false`: anything else that is not
/// `true` fails in the handler, and failures keep nothing).
fn is_dry_run(query: Option<&str>) -> bool {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(name, value)| name == "dry_run" && value != "false")
}

/// What makes two requests the same: method, path, query and body, each length-prefixed so no
/// two different requests run together into the same bytes.
fn request_hash(method: &Method, path: &str, query: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in [
        method.as_str().as_bytes(),
        path.as_bytes(),
        query.unwrap_or("").as_bytes(),
        body,
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

/// The first result again, marked as a replay.
fn replay(kept: Kept) -> Response {
    let mut response = (
        StatusCode::from_u16(kept.status as u16).unwrap_or(StatusCode::OK),
        kept.body,
    )
        .into_response();
    if let Some(ct) = kept
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// Why a request with a used key does not run.
fn refused(refusal: Refusal) -> AppError {
    let key_error = |message: String| {
        AppError::Validation(vec![FieldError {
            field: "Idempotency-Key".into(),
            message,
        }])
    };
    match refusal {
        Refusal::OtherPath(path) => key_error(format!(
            "This key was used for another request ({path}); use a new key for each request."
        )),
        Refusal::OtherRequest => key_error(
            "This key was used for a different request (another method, query or body): a \
             retry must repeat the first request exactly. Use a new key for each request."
                .into(),
        ),
        Refusal::Running => AppError::Conflict(
            "The first request with this Idempotency-Key is still running; retry in a moment."
                .into(),
        ),
        Refusal::JustFailed => AppError::Conflict(
            "A request with this Idempotency-Key just failed; send it again.".into(),
        ),
    }
}
