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
    match claim(&state, user, &key, &path, &hash).await {
        Ok(Claim::First) => {}
        Ok(Claim::Replay(response)) => return response,
        Ok(Claim::Refused(error)) => return error.into_response(),
        Err(e) => return AppError::from(e).into_response(),
    }

    let response = next.run(request).await;
    if !response.status().is_success() {
        let _ = forget(&state, user, &key).await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_KEPT_BYTES).await else {
        let _ = forget(&state, user, &key).await;
        return AppError::Internal(anyhow::anyhow!(
            "a response too large to keep for Idempotency-Key"
        ))
        .into_response();
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Err(e) = sqlx::query(
        "UPDATE idempotency_key SET status = $3, content_type = $4, body = $5 WHERE user_id = $1 AND key = $2",
    )
    .bind(user)
    .bind(&key)
    .bind(parts.status.as_u16() as i16)
    .bind(content_type)
    .bind(bytes.as_ref())
    .execute(&state.pool)
    .await
    {
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

enum Claim {
    First,
    Replay(Response),
    Refused(AppError),
}

async fn claim(
    state: &AppState,
    user: uuid::Uuid,
    key: &str,
    path: &str,
    hash: &[u8],
) -> Result<Claim, sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_key WHERE created_at < now() - interval '24 hours'")
        .execute(&state.pool)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_key (user_id, key, method, path, request_hash)
         VALUES ($1, $2, 'POST', $3, $4)
         ON CONFLICT (user_id, key) DO NOTHING",
    )
    .bind(user)
    .bind(key)
    .bind(path)
    .bind(hash)
    .execute(&state.pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::First);
    }
    #[derive(sqlx::FromRow)]
    struct Kept {
        path: String,
        request_hash: Option<Vec<u8>>,
        status: Option<i16>,
        content_type: Option<String>,
        body: Option<Vec<u8>>,
    }
    let kept: Option<Kept> = sqlx::query_as(
        "SELECT path, request_hash, status, content_type, body FROM idempotency_key
         WHERE user_id = $1 AND key = $2",
    )
    .bind(user)
    .bind(key)
    .fetch_optional(&state.pool)
    .await?;
    Ok(match kept {
        // Deleted meanwhile (the first call failed): treat as new next time.
        None => Claim::Refused(AppError::Conflict(
            "A request with this Idempotency-Key just failed; send it again.".into(),
        )),
        Some(kept) if kept.path != path => Claim::Refused(AppError::Validation(vec![FieldError {
            field: "Idempotency-Key".into(),
            message: format!(
                "This key was used for another request ({}); use a new key for each request.",
                kept.path
            ),
        }])),
        // Rows kept before hashes were recorded are at most a day old and matched by path.
        Some(kept)
            if kept
                .request_hash
                .as_ref()
                .is_some_and(|h| h.as_slice() != hash) =>
        {
            Claim::Refused(AppError::Validation(vec![FieldError {
                field: "Idempotency-Key".into(),
                message: "This key was used for a different request (another method, query or \
                          body): a retry must repeat the first request exactly. Use a new key \
                          for each request."
                    .into(),
            }]))
        }
        Some(Kept { status: None, .. }) => Claim::Refused(AppError::Conflict(
            "The first request with this Idempotency-Key is still running; retry in a moment."
                .into(),
        )),
        Some(Kept {
            status: Some(status),
            content_type,
            body,
            ..
        }) => {
            let mut response = (
                StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK),
                body.unwrap_or_default(),
            )
                .into_response();
            if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            response
                .headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            Claim::Replay(response)
        }
    })
}

async fn forget(state: &AppState, user: uuid::Uuid, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_key WHERE user_id = $1 AND key = $2 AND status IS NULL")
        .bind(user)
        .bind(key)
        .execute(&state.pool)
        .await?;
    Ok(())
}
