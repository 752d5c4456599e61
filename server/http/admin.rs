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
use super::extract::{Allowed, Ctx, FormFields, ManageCloud, ManageUsers, ViewAudit};
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

// ---------------------------------------------------------------------------------------------
// The cloud connection

/// The cloud connection: what the configuration says, and a live check of the credentials.
#[derive(Template)]
#[template(path = "cloud.html")]
pub struct CloudPage {
    pub shell: Shell,
    pub settings: Vec<(&'static str, String)>,
    /// The outcome of "Test connection": the identity, or why it failed.
    pub test: Option<Result<crate::provision::cloud::Identity, String>>,
}

fn cloud_settings(state: &AppState) -> Vec<(&'static str, String)> {
    use crate::config::CloudMode;
    let config = &state.config;
    let aws = &config.aws;
    let or =
        |value: &Option<String>, default: &str| value.clone().unwrap_or_else(|| default.to_owned());
    let mut rows = vec![(
        "Provider (SLIPWAY_CLOUD)",
        match config.cloud {
            CloudMode::Simulated => "simulated: no real resources are created".to_owned(),
            CloudMode::Aws => "aws".to_owned(),
        },
    )];
    if let crate::provision::Cloud::Aws(cloud) = &state.cloud {
        rows.push(("Region (AWS_REGION)", or(&cloud.region(), "us-east-1")));
    }
    rows.extend([
        ("Credentials", "the standard AWS chain: environment, profile (AWS_PROFILE), web identity, instance role".to_owned()),
        ("Endpoint (AWS_ENDPOINT_URL)", std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into())),
        ("Assumed role (aws_role_arn)", or(&aws.role_arn, "none: the chain's own identity")),
        ("Organisational unit for new accounts (aws_organizational_unit)", or(&aws.organizational_unit, "the organisation's root")),
        ("Access role in member accounts (aws_member_role_name)", aws.member_role_name.clone()),
        ("EKS cluster role (aws_cluster_role_name)", aws.cluster_role_name.clone()),
        ("EKS node role (aws_node_role_name)", aws.node_role_name.clone()),
        ("Account e-mail domain (account_email_domain)", config.account_email_domain.clone()),
        ("Kubernetes endpoint override (kube_endpoint_override)", or(&aws.kube_endpoint_override, "none: each cluster's own endpoint")),
        (
            "Kubeconfig (kubeconfig)",
            aws.kubeconfig
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none: EKS tokens of the member account's role".into()),
        ),
    ]);
    rows
}

pub async fn cloud_page(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<ManageCloud>,
) -> Result<Html<String>, AppError> {
    render(&CloudPage {
        shell: ctx.shell(&state, "cloud", "Cloud connection"),
        settings: cloud_settings(&state),
        test: None,
    })
}

/// "Test connection": STS GetCallerIdentity with the configured credentials.
pub async fn cloud_test(
    State(state): State<AppState>,
    ctx: Ctx,
    allowed: Allowed<ManageCloud>,
) -> Result<Html<String>, AppError> {
    let test = state.cloud.identity().await.map_err(|e| e.to_string());
    audit::record(
        &state.pool,
        &Actor::from(allowed.principal()),
        "cloud.test",
        "cloud",
        serde_json::json!({ "ok": test.is_ok() }),
    )
    .await?;
    render(&CloudPage {
        shell: ctx.shell(&state, "cloud", "Cloud connection"),
        settings: cloud_settings(&state),
        test: Some(test),
    })
}
