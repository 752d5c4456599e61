//! The Define phase in the JSON API (`/api/v1/platforms/...`), as API.md lays it out. The same
//! domain functions as the pages, so the same validation and errors.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::api::{PageQuery, page, parse_limit};
use super::error::{AppError, FieldError, FieldErrors};
use super::extract::{
    Allowed, Authenticated, CreatePlatform, OnPlatform, PlatformEditor, PlatformPlanner,
    PlatformViewer, authorize,
};
use crate::auth::{Action, Subject};
use crate::define::backlog::{self, Direction, ItemInput, Placement};
use crate::define::blueprint::{Blueprint, Lifecycle};
use crate::define::diff::diff;
use crate::define::platforms::{self, NewPlatform, Platform};
use crate::define::revisions::{self, Revision, RevisionState, Verdict};
use crate::define::scope::{self, Scope};

/// A JSON body read leniently, so a malformed document becomes a problem with a field path
/// instead of the extractor's plain rejection.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBody {
    type Rejection = AppError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|_| AppError::PayloadTooLarge)?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            AppError::Validation(vec![FieldError {
                field: String::new(),
                message: format!("The body is not valid JSON: {e}."),
            }])
        })
    }
}

fn field_error(field: &str, message: impl Into<String>) -> AppError {
    AppError::Validation(vec![FieldError {
        field: field.to_owned(),
        message: message.into(),
    }])
}

fn str_field<'a>(body: &'a Value, field: &str) -> &'a str {
    body.get(field).and_then(Value::as_str).unwrap_or("")
}

fn platform_json(p: &Platform) -> Value {
    json!({
        "slug": p.slug,
        "name": p.name,
        "description": p.description,
        "owner_team": p.owner_team,
        "created_at": p.created_at,
        "archived": p.archived_at.is_some(),
    })
}

pub async fn create_platform(
    State(state): State<AppState>,
    allowed: Allowed<CreatePlatform>,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let new = NewPlatform {
        slug: str_field(&body, "slug"),
        name: str_field(&body, "name"),
        description: str_field(&body, "description"),
        owner_team: body
            .get("owner_team")
            .and_then(Value::as_str)
            .unwrap_or(str_field(&body, "name")),
    };
    let platform = platforms::create(&state.pool, &new, allowed.principal()).await?;
    Ok((StatusCode::CREATED, Json(platform_json(&platform))).into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    archived: Option<bool>,
    limit: Option<String>,
    after: Option<String>,
}

/// `?archived=true` includes archived platforms.
pub async fn list_platforms(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, AppError> {
    authorize(
        &principal,
        Action::ViewPlatform,
        Subject::Platform { member: false },
    )?;
    let all = platforms::list(&state.pool, query.archived.unwrap_or(false)).await?;
    let limit = parse_limit(query.limit.as_deref())?;
    let (items, next) = page(all, |p| p.slug.clone(), limit, query.after.as_deref())?;
    let items: Vec<Value> = items.iter().map(platform_json).collect();
    Ok(Json(json!({ "items": items, "next": next })))
}

pub async fn get_platform(on: OnPlatform<PlatformViewer>) -> Json<Value> {
    Json(platform_json(on.platform()))
}

pub async fn get_scope(
    State(state): State<AppState>,
    on: OnPlatform<PlatformPlanner>,
) -> Result<Json<Value>, AppError> {
    let scope = scope::load(&state.pool, on.platform().id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut value = serde_json::to_value(&scope).map_err(anyhow::Error::from)?;
    value["timebox"] =
        serde_json::to_value(scope.timebox(state.clock.today())).map_err(anyhow::Error::from)?;
    Ok(Json(value))
}

pub async fn put_scope(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, AppError> {
    let scope = Scope::from_json(body).map_err(|e| AppError::Validation(e.0))?;
    scope::save(&state.pool, on.platform(), &scope, &on.principal).await?;
    let mut value = serde_json::to_value(&scope).map_err(anyhow::Error::from)?;
    value["timebox"] =
        serde_json::to_value(scope.timebox(state.clock.today())).map_err(anyhow::Error::from)?;
    Ok(Json(value))
}

fn revision_json(r: &Revision) -> Value {
    json!({
        "number": r.number,
        "state": r.state,
        "author": r.author,
        "base_revision": r.base_number,
        "created_at": r.created_at,
        "submitted_at": r.submitted_at,
        "approved_at": r.approved_at,
        "approved_by": r.approved_by,
        "document": r.document.to_json(),
    })
}

/// The revision if the caller may see it: approved and superseded ones for everyone who sees
/// the platform, drafts and revisions in review only for its planners (404 for the others).
pub async fn visible_revision<P>(
    state: &AppState,
    on: &OnPlatform<P>,
    number: i32,
) -> Result<Revision, AppError> {
    let revision = revisions::get(&state.pool, on.platform().id, number)
        .await?
        .ok_or(AppError::NotFound)?;
    let published = matches!(
        revision.state,
        RevisionState::Approved | RevisionState::Superseded
    );
    if published || on.can(Action::ViewPlanning) {
        Ok(revision)
    } else {
        Err(AppError::NotFound)
    }
}

pub async fn create_revision(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let platform = on.platform();
    let (base, document) = if body.get("from_template").and_then(Value::as_bool) == Some(true) {
        let scope = scope::load(&state.pool, platform.id).await?;
        let latest = revisions::list(&state.pool, platform.id, false)
            .await?
            .first()
            .map(|r| r.number);
        (
            latest,
            Blueprint::from_template(&platform.slug, scope.as_ref()),
        )
    } else {
        let base =
            match body.get("base_revision") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(
                    || {
                        field_error(
                            "base_revision",
                            "Use the number of the revision you edited.",
                        )
                    },
                )?),
            };
        let document = body.get("document").cloned().ok_or_else(|| {
            field_error(
                "document",
                "Send the blueprint as `document`, or `from_template: true`.",
            )
        })?;
        let document = Blueprint::from_json(document).map_err(|e| {
            AppError::Validation(
                e.0.into_iter()
                    .map(|f| FieldError {
                        field: if f.field.is_empty() {
                            "document".into()
                        } else {
                            format!("document.{}", f.field)
                        },
                        message: f.message,
                    })
                    .collect(),
            )
        })?;
        (base, document)
    };
    let revision = revisions::save(&state.pool, platform, &on.principal, base, &document).await?;
    Ok((StatusCode::CREATED, Json(revision_json(&revision))).into_response())
}

pub async fn list_revisions(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, AppError> {
    let approved_only = !on.can(Action::ViewPlanning);
    let all = revisions::list(&state.pool, on.platform().id, approved_only).await?;
    let limit = parse_limit(query.limit.as_deref())?;
    let (items, next) = page(all, |r| r.number.to_string(), limit, query.after.as_deref())?;
    let items: Vec<Value> = items
        .iter()
        .map(|r| {
            let mut v = revision_json(r);
            v.as_object_mut().map(|o| o.remove("document"));
            v
        })
        .collect();
    Ok(Json(json!({ "items": items, "next": next })))
}

#[derive(Deserialize)]
pub struct FormatQuery {
    format: Option<String>,
}

/// One revision as JSON, or exported with `?format=yaml|markdown`.
pub async fn get_revision(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
    Path((_, number)): Path<(String, i32)>,
    Query(query): Query<FormatQuery>,
) -> Result<Response, AppError> {
    let revision = visible_revision(&state, &on, number).await?;
    export(on.platform(), &revision, query.format.as_deref())
}

/// The revision in the requested format: JSON (default), `yaml` or `markdown`.
pub fn export(
    platform: &Platform,
    revision: &Revision,
    format: Option<&str>,
) -> Result<Response, AppError> {
    let file = |ext: &str| {
        format!(
            "attachment; filename=\"{}-blueprint-{}.{ext}\"",
            platform.slug, revision.number
        )
    };
    match format {
        None | Some("json") => Ok(Json(revision_json(revision)).into_response()),
        Some("yaml") => Ok((
            [
                (
                    header::CONTENT_TYPE,
                    "application/yaml; charset=utf-8".to_owned(),
                ),
                (header::CONTENT_DISPOSITION, file("yaml")),
            ],
            revision.document.to_yaml(),
        )
            .into_response()),
        Some("markdown") => Ok((
            [
                (
                    header::CONTENT_TYPE,
                    "text/markdown; charset=utf-8".to_owned(),
                ),
                (header::CONTENT_DISPOSITION, file("md")),
            ],
            revision
                .document
                .to_markdown(&platform.name, revision.number, revision.state.as_str()),
        )
            .into_response()),
        Some(_) => Err(field_error("format", "Use json, yaml or markdown.")),
    }
}

pub async fn submit_revision(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    Path((_, number)): Path<(String, i32)>,
) -> Result<Json<Value>, AppError> {
    revisions::submit(&state.pool, on.platform(), number, &on.principal).await?;
    let revision = visible_revision(&state, &on, number).await?;
    Ok(Json(revision_json(&revision)))
}

pub async fn review_revision(
    State(state): State<AppState>,
    on: OnPlatform<PlatformPlanner>,
    Path((_, number)): Path<(String, i32)>,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let revision = visible_revision(&state, &on, number).await?;
    let verdict = Verdict::parse(str_field(&body, "verdict"))
        .ok_or_else(|| field_error("verdict", "Use approve, request_changes or comment."))?;
    authorize(
        &on.principal,
        Action::ReviewBlueprint,
        Subject::Revision {
            member: on.access.is_member,
            author: revisions::author_of(&revision),
        },
    )?;
    revisions::review(
        &state.pool,
        on.platform(),
        number,
        &on.principal,
        verdict,
        str_field(&body, "comment"),
    )
    .await?;
    let revision = visible_revision(&state, &on, number).await?;
    Ok((StatusCode::CREATED, Json(revision_json(&revision))).into_response())
}

#[derive(Deserialize)]
pub struct DiffQuery {
    against: Option<String>,
}

pub async fn diff_revisions(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
    Path((_, number)): Path<(String, i32)>,
    Query(query): Query<DiffQuery>,
) -> Result<Json<Value>, AppError> {
    let against: i32 = query
        .against
        .as_deref()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| {
            field_error(
                "against",
                "Give the revision number to compare with, e.g. ?against=1.",
            )
        })?;
    let new = visible_revision(&state, &on, number).await?;
    let old = visible_revision(&state, &on, against).await?;
    let changes = diff(&old.document.to_json(), &new.document.to_json());
    Ok(Json(
        json!({ "from": against, "to": number, "changes": changes }),
    ))
}

pub async fn environment_types(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
) -> Result<Json<Value>, AppError> {
    let approved = revisions::approved(&state.pool, on.platform().id).await?;
    let items: Vec<Value> = approved
        .iter()
        .flat_map(|r| r.document.environment_types.iter())
        .map(|e| {
            json!({
                "name": e.name,
                "lifecycle": e.lifecycle,
                "default_ttl_hours": e.ttl.as_ref().map(|t| t.default_hours),
                "max_ttl_hours": e.ttl.as_ref().map(|t| t.max_hours),
                "approvals_required": e.approval.approvals_required,
                "approvers": e.approval.approvers,
                "sla_hours": e.approval.sla_hours,
                "expire_after_hours": e.approval.expire_after_hours,
                "auto_approve_below_monthly_usd": e.approval.auto_approve_below_monthly_usd,
                "kubernetes_version": e.kubernetes_version,
                "instance_types": e.node_group.instance_types,
                "min_nodes": e.node_group.min_size,
                "max_nodes": e.node_group.max_size,
                "data_services": e.data_services,
                "requesters": e.requesters,
                "ephemeral": e.lifecycle == Lifecycle::Ephemeral,
            })
        })
        .collect();
    Ok(Json(
        json!({ "items": items, "blueprint_revision": approved.map(|r| r.number) }),
    ))
}

pub async fn generate_backlog(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
) -> Result<Json<Value>, AppError> {
    let approved = revisions::approved(&state.pool, on.platform().id)
        .await?
        .ok_or_else(|| {
            AppError::Conflict(
                "The platform has no approved blueprint yet: approve one first.".into(),
            )
        })?;
    let report = backlog::generate(
        &state.pool,
        on.platform(),
        &approved.document,
        &on.principal,
    )
    .await?;
    let items = backlog::list(&state.pool, on.platform().id, &backlog::Filter::default()).await?;
    Ok(Json(
        json!({ "generation": report, "items": items, "next": null }),
    ))
}

#[derive(Deserialize)]
pub struct BacklogQuery {
    phase: Option<String>,
    status: Option<String>,
    assignee: Option<String>,
    format: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

pub async fn list_backlog(
    State(state): State<AppState>,
    on: OnPlatform<PlatformPlanner>,
    Query(query): Query<BacklogQuery>,
) -> Result<Response, AppError> {
    let filter = backlog::Filter {
        phase: query.phase.filter(|p| !p.is_empty()),
        status: query.status.filter(|s| !s.is_empty()),
        assignee: query.assignee.filter(|a| !a.is_empty()),
    };
    let items = backlog::list(&state.pool, on.platform().id, &filter).await?;
    if query.format.is_some() {
        return backlog_export(on.platform(), &items, query.format.as_deref());
    }
    // JSON pages: `limit` (default 50, max 200) and `after`.
    let limit = parse_limit(query.limit.as_deref())?;
    let (items, next) = page(items, |i| i.id.to_string(), limit, query.after.as_deref())?;
    Ok(Json(json!({ "items": items, "next": next })).into_response())
}

/// The backlog as JSON (default), `csv` or `markdown`.
pub fn backlog_export(
    platform: &Platform,
    items: &[backlog::Item],
    format: Option<&str>,
) -> Result<Response, AppError> {
    let file = |ext: &str| format!("attachment; filename=\"{}-backlog.{ext}\"", platform.slug);
    match format {
        None | Some("json") => Ok(Json(json!({ "items": items, "next": null })).into_response()),
        Some("csv") => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, file("csv")),
            ],
            backlog::to_csv(items),
        )
            .into_response()),
        Some("markdown") => Ok((
            [
                (
                    header::CONTENT_TYPE,
                    "text/markdown; charset=utf-8".to_owned(),
                ),
                (header::CONTENT_DISPOSITION, file("md")),
            ],
            backlog::to_markdown(platform, items),
        )
            .into_response()),
        Some(_) => Err(field_error("format", "Use json, csv or markdown.")),
    }
}

/// Item fields from a JSON body; `current` fills what a PATCH leaves out. Every field of the
/// wrong type is named at once.
fn item_input(body: &Value, current: Option<&backlog::Item>) -> Result<ItemInput, AppError> {
    let mut errors = FieldErrors::default();
    let mut text = |field: &str, fallback: Option<String>| -> String {
        match body.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) => String::new(),
            None => fallback.unwrap_or_default(),
            Some(_) => {
                errors.add(field, "Give a string.");
                String::new()
            }
        }
    };
    let title = text("title", current.map(|c| c.title.clone()));
    let description = text("description", current.map(|c| c.description.clone()));
    let phase = text(
        "phase",
        current.map(|c| c.phase.clone()).or(Some("deliver".into())),
    );
    let status = text(
        "status",
        current.map(|c| c.status.clone()).or(Some("todo".into())),
    );
    let assignee = text("assignee", current.and_then(|c| c.assignee.clone()));
    let depends_on = match body.get("depends_on") {
        None => current.map(|c| c.depends_on.clone()).unwrap_or_default(),
        Some(Value::Array(ids)) => {
            let mut parsed = Vec::new();
            for (i, v) in ids.iter().enumerate() {
                match v.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                    Some(id) => parsed.push(id),
                    None => errors.add(
                        &format!("depends_on[{i}]"),
                        "Use the id of an item of this backlog.",
                    ),
                }
            }
            parsed
        }
        Some(_) => {
            errors.add("depends_on", "Use a list of item ids.");
            Vec::new()
        }
    };
    let estimate = match body.get("estimate_days") {
        None => current.and_then(|c| c.estimate_days).map(|d| d.to_string()),
        Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            errors.add("estimate_days", "Use a number of days, e.g. 2.5.");
            None
        }
    };
    if !errors.is_empty() {
        return Err(AppError::Validation(errors.0));
    }
    Ok(ItemInput {
        title,
        description,
        phase,
        status,
        estimate_days: estimate,
        assignee,
        depends_on,
    })
}

/// Where a PATCH puts the item: `position` (0 for first) or `move` (`up`, `down`), not both.
fn placement(body: &Value) -> Result<Option<Placement>, FieldErrors> {
    let mut errors = FieldErrors::default();
    let position = body.get("position").map(|p| {
        p.as_u64().ok_or(()).map_err(|()| {
            errors.add("position", "Use the new place in the backlog, 0 for first.");
        })
    });
    let direction = body.get("move").map(|m| match m.as_str() {
        Some("up") => Ok(Direction::Up),
        Some("down") => Ok(Direction::Down),
        _ => {
            errors.add("move", "Use up or down.");
            Err(())
        }
    });
    if position.is_some() && direction.is_some() {
        errors.add("move", "Give either `position` or `move`, not both.");
    }
    errors.into_result()?;
    Ok(match (position, direction) {
        (Some(Ok(n)), _) => Some(Placement::Position(n.min(usize::MAX as u64) as usize)),
        (_, Some(Ok(d))) => Some(Placement::Move(d)),
        _ => None,
    })
}

pub async fn create_item(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let input = item_input(&body, None)?;
    let item = backlog::create(&state.pool, on.platform(), &input, &on.principal).await?;
    Ok((StatusCode::CREATED, Json(item)).into_response())
}

pub async fn patch_item(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    Path((_, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<backlog::Item>, AppError> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    let current = backlog::get(&state.pool, on.platform().id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    // The whole body is checked before anything is written: a bad `position` must not leave a
    // changed title behind.
    let (input, placement) = match (item_input(&body, Some(&current)), placement(&body)) {
        (Ok(input), Ok(placement)) => (input, placement),
        (Err(AppError::Validation(mut a)), Err(b)) => {
            a.extend(b.0);
            return Err(AppError::Validation(a));
        }
        (Err(e), _) => return Err(e),
        (_, Err(b)) => return Err(AppError::Validation(b.0)),
    };
    let item = backlog::update_and_place(
        &state.pool,
        on.platform(),
        id,
        &input,
        placement,
        &on.principal,
    )
    .await?;
    Ok(Json(item))
}
