//! The JSON API (`/api/v1`): what this capability adds to the contract of API.md.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::admin::audit_events;
use super::error::{AppError, FieldError};
use super::extract::{Allowed, Authenticated, ViewAudit};
use crate::audit::{self, AuditEvent};

/// `GET /api/v1/me`: the caller.
pub async fn me(Authenticated(principal): Authenticated) -> Json<Value> {
    Json(json!({
        "id": principal.user.id,
        "email": principal.user.email,
        "name": principal.user.name,
        // The roles in force for this call: an API token's scope narrows them.
        "roles": principal.roles,
    }))
}

/// Paging as API.md sets it: `limit` (default 50, max 200) and `after`.
#[derive(Deserialize)]
pub struct AuditQuery {
    subject: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

#[derive(Serialize)]
pub struct Page<T> {
    items: Vec<T>,
    next: Option<String>,
}

pub fn parse_limit(limit: Option<&str>) -> Result<i64, AppError> {
    match limit {
        None => Ok(50),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| {
                AppError::Validation(vec![FieldError {
                    field: "limit".into(),
                    message: "Use a whole number from 1 to 200.".into(),
                }])
            }),
    }
}

/// One page of a bounded list (platforms, revisions, backlog items: hundreds at most, read
/// whole): up to `limit` items after the one whose key is `after`, and the key to continue from.
pub fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    limit: i64,
    after: Option<&str>,
) -> Result<(Vec<T>, Option<String>), AppError> {
    let start = match after {
        None => 0,
        Some(cursor) => {
            items.iter().position(|item| key(item) == cursor).ok_or_else(|| {
                AppError::Validation(vec![FieldError {
                    field: "after".into(),
                    message: "Not a cursor of this list (or its item is gone); start again without `after`.".into(),
                }])
            })? + 1
        }
    };
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    let next = (rest.len() as i64 > limit).then(|| {
        rest.truncate(limit as usize);
        rest.last().map(&key).unwrap_or_default()
    });
    Ok((rest, next))
}

#[derive(Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub after: Option<String>,
}

/// `GET /api/v1/audit?subject=&actor=&action=`: audit events, newest first.
pub async fn audit(
    State(state): State<AppState>,
    _: Allowed<ViewAudit>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Page<AuditEvent>>, AppError> {
    let limit = parse_limit(query.limit.as_deref())?;
    let filter = audit::Filter {
        subject: query.subject,
        actor: query.actor,
        action: query.action,
    };
    let (items, next) =
        audit_events(&state, &filter, query.after.as_deref(), "after", limit).await?;
    Ok(Json(Page { items, next }))
}
