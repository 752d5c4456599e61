//! The audit log: the admins' page and `GET /api/v1/audit`.

use crate::http::paging::{
    PAGE_SIZE, Page, bad_cursor, decode_cursor, encode_cursor, non_empty, parse_limit,
};
use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::Html;
use serde::Deserialize;

use crate::app::AppState;
use crate::audit::{self, AuditEvent};
use crate::http::error::AppError;
use crate::http::extract::{Allowed, Ctx, ViewAudit};
use crate::http::views::{Shell, render};

/// Paging as API.md sets it: `limit` (default 50, max 200) and `after`.
#[derive(Deserialize)]
pub struct ApiAuditQuery {
    subject: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// `GET /api/v1/audit?subject=&actor=&action=`: audit events, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "admin",
    params(("subject" = Option<String>, Query, description = "An object as `kind:id` or its id alone"), ("actor" = Option<String>, Query), ("action" = Option<String>, Query, description = "An action, or a prefix ending in `.`"), ("limit" = Option<String>, Query, description = "Items per page, 1 to 200 (default 50)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses((status = 200, description = "Audit events, newest first", body = crate::http::paging::Page<crate::audit::AuditEvent>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn audit(
    State(state): State<AppState>,
    _: Allowed<ViewAudit>,
    Query(query): Query<ApiAuditQuery>,
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

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub shell: Shell,
    pub events: Vec<AuditEvent>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub next: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    subject: Option<String>,
    before: Option<String>,
}

/// One page of audit events and the cursor of the next, for the page and the API.
/// `cursor_field` names the parameter a bad cursor came in.
pub async fn audit_events(
    state: &AppState,
    filter: &audit::Filter,
    cursor: Option<&str>,
    cursor_field: &str,
    limit: i64,
) -> Result<(Vec<AuditEvent>, Option<String>), AppError> {
    let cursor = match cursor {
        Some(c) => Some(decode_cursor::<i64>(c).ok_or_else(|| bad_cursor(cursor_field))?),
        None => None,
    };
    let mut events = audit::list(&state.pool, filter, cursor, limit + 1).await?;
    let next = (events.len() as i64 > limit).then(|| {
        events.truncate(limit as usize);
        let last = events.last().expect("a full page has a last row");
        encode_cursor(last.at, last.id)
    });
    Ok((events, next))
}

pub async fn audit_page(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<ViewAudit>,
    Query(query): Query<AuditQuery>,
) -> Result<Html<String>, AppError> {
    let filter = audit::Filter {
        subject: non_empty(&query.subject),
        actor: non_empty(&query.actor),
        action: non_empty(&query.action),
    };
    let before = non_empty(&query.before);
    let (events, next) =
        audit_events(&state, &filter, before.as_deref(), "before", PAGE_SIZE).await?;
    render(&AuditPage {
        shell: ctx.shell(&state, "audit", "Audit log"),
        events,
        actor: filter.actor.unwrap_or_default(),
        action: filter.action.unwrap_or_default(),
        subject: filter.subject.unwrap_or_default(),
        next,
    })
}

// ---------------------------------------------------------------------------------------------
