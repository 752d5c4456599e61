//! Administration pages: users (invite, roles) and the audit log.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::AppState;
use super::account::parse_user_id;
use super::error::AppError;
use super::extract::{Allowed, Ctx, FormFields, ManageUsers, ViewAudit};
use super::pages::{Shell, render};
use crate::audit::{self, Actor, AuditEvent};
use crate::auth::accounts::{self, AccountError};
use crate::auth::users::{self, RoleChangeError};
use crate::auth::{Role, RoleSet, User};
use crate::validation::FieldErrors;

pub const PAGE_SIZE: i64 = 50;

/// Keyset cursors: `<microseconds since the epoch>_<id>`, opaque to users.
pub fn encode_cursor(at: DateTime<Utc>, id: impl std::fmt::Display) -> String {
    format!("{}_{id}", at.timestamp_micros())
}

pub fn decode_cursor<T: std::str::FromStr>(cursor: &str) -> Option<(DateTime<Utc>, T)> {
    let (micros, id) = cursor.split_once('_')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((at, id.parse().ok()?))
}

#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub shell: Shell,
    pub users: Vec<User>,
    pub next: Option<String>,
    pub all_roles: [Role; 3],
    pub invite_link: Option<(String, String)>,
    pub form_email: String,
    pub form_name: String,
    pub errors: FieldErrors,
    pub notice: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    after: Option<String>,
}

async fn users_view(
    state: &AppState,
    ctx: &Ctx,
    after: Option<&str>,
) -> Result<UsersPage, AppError> {
    let cursor = match after {
        Some(c) => Some(decode_cursor::<uuid::Uuid>(c).ok_or_else(|| bad_cursor("after"))?),
        None => None,
    };
    let mut users = users::list(&state.pool, cursor, PAGE_SIZE + 1).await?;
    let next = (users.len() as i64 > PAGE_SIZE).then(|| {
        users.truncate(PAGE_SIZE as usize);
        let last = users.last().expect("a full page has a last row");
        encode_cursor(last.created_at, last.id)
    });
    Ok(UsersPage {
        shell: ctx.shell(state, "users", "Users"),
        users,
        next,
        all_roles: Role::ALL,
        invite_link: None,
        form_email: String::new(),
        form_name: String::new(),
        errors: FieldErrors::default(),
        notice: None,
    })
}

pub async fn users_page(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<ManageUsers>,
    Query(query): Query<PageQuery>,
) -> Result<Html<String>, AppError> {
    render(&users_view(&state, &ctx, query.after.as_deref()).await?)
}

pub async fn user_invite(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Allowed<ManageUsers>,
    form: FormFields,
) -> Result<Response, AppError> {
    let roles: RoleSet = form.all("roles").filter_map(Role::parse).collect();
    let result = accounts::invite(
        &state.pool,
        &Actor::from(admin.principal()),
        form.get("email"),
        form.get("name"),
        &roles,
    )
    .await;
    let mut page = users_view(&state, &ctx, None).await?;
    let status = match result {
        Ok((_, token)) => {
            page.invite_link = Some((
                form.get("email").trim().to_owned(),
                format!("{}/invite/{token}", state.public_url),
            ));
            StatusCode::CREATED
        }
        Err(AccountError::Invalid(errors)) => {
            page.errors = errors;
            page.form_email = form.get("email").to_owned();
            page.form_name = form.get("name").to_owned();
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(e) => return Err(e.into()),
    };
    // The link is shown once; do not let it linger in caches.
    Ok((
        status,
        [(header::CACHE_CONTROL, "no-store")],
        render(&page)?,
    )
        .into_response())
}

pub async fn user_roles(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Allowed<ManageUsers>,
    Path(id): Path<String>,
    form: FormFields,
) -> Result<Response, AppError> {
    let id = parse_user_id(&id)?;
    let roles: RoleSet = form.all("roles").filter_map(Role::parse).collect();
    match accounts::change_roles(&state.pool, admin.principal(), id, &roles).await {
        Ok(()) => Ok(Redirect::to("/admin/users").into_response()),
        Err(RoleChangeError::NotFound) => Err(AppError::NotFound),
        Err(e @ (RoleChangeError::LastAdmin | RoleChangeError::SsoManaged)) => {
            let mut page = users_view(&state, &ctx, None).await?;
            page.notice = Some(format!("Roles not changed: {e}."));
            Ok((StatusCode::CONFLICT, render(&page)?).into_response())
        }
        Err(RoleChangeError::Db(e)) => Err(e.into()),
    }
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

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
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

pub fn bad_cursor(field: &str) -> AppError {
    AppError::Validation(vec![crate::validation::FieldError {
        field: field.to_owned(),
        message: "Not a cursor from this list; use the `next` value of the previous page.".into(),
    }])
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
