//! `Idempotency-Key` (API.md): a retried creating call with the same key returns the first
//! result instead of creating again. Keys are per caller, kept for 24 hours; only successful
//! results are kept (a failed call can be retried with the same key and runs again).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
    let path = request.uri().path().to_owned();
    match claim(&state, user, &key, &path).await {
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
) -> Result<Claim, sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_key WHERE created_at < now() - interval '24 hours'")
        .execute(&state.pool)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_key (user_id, key, method, path) VALUES ($1, $2, 'POST', $3)
         ON CONFLICT (user_id, key) DO NOTHING",
    )
    .bind(user)
    .bind(key)
    .bind(path)
    .execute(&state.pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::First);
    }
    #[derive(sqlx::FromRow)]
    struct Kept {
        path: String,
        status: Option<i16>,
        content_type: Option<String>,
        body: Option<Vec<u8>>,
    }
    let kept: Option<Kept> = sqlx::query_as(
        "SELECT path, status, content_type, body FROM idempotency_key WHERE user_id = $1 AND key = $2",
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
