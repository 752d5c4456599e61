//! The implementation-plan backlog in the JSON API.

use crate::http::json::{JsonBody, field_error};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::app::AppState;
use crate::define::backlog::{self, Direction, Generation, Item, ItemInput, Placement};
use crate::define::platforms::Platform;
use crate::http::error::{AppError, FieldErrors};
use crate::http::extract::{OnPlatform, PlatformEditor, PlatformPlanner};
use crate::http::paging::{Page, page, parse_limit};

/// What a (re)generation did, and the whole backlog after it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GeneratedBacklog {
    pub generation: Generation,
    pub items: Vec<Item>,
    /// Always null: the whole backlog is one page.
    pub next: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/backlog/generate",
    tag = "backlog",
    params(("slug" = String, Path, description = "The platform's short name")),
    responses((status = 200, description = "The backlog, (re)generated from the approved blueprint", body = GeneratedBacklog), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem))
)]
pub async fn generate_backlog(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
) -> Result<Json<GeneratedBacklog>, AppError> {
    let report = backlog::generate_from_approved(&state.pool, on.platform(), &on.principal).await?;
    let items = backlog::list(&state.pool, on.platform().id, &backlog::Filter::default()).await?;
    Ok(Json(GeneratedBacklog {
        generation: report,
        items,
        next: None,
    }))
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

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/backlog",
    tag = "backlog",
    params(("slug" = String, Path, description = "The platform's short name"), ("status" = Option<String>, Query), ("phase" = Option<String>, Query), ("assignee" = Option<String>, Query), ("format" = Option<String>, Query, description = "`csv` or `markdown` exports the backlog"), ("limit" = Option<String>, Query, description = "Items per page, 1 to 200 (default 50)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses((status = 200, description = "Backlog items in rank order, or their CSV or Markdown export", body = Page<Item>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
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
    Ok(Json(Page { items, next }).into_response())
}

/// The backlog as JSON (default), `csv` or `markdown`.
pub fn backlog_export(
    platform: &Platform,
    items: &[Item],
    format: Option<&str>,
) -> Result<Response, AppError> {
    let file = |ext: &str| format!("attachment; filename=\"{}-backlog.{ext}\"", platform.slug);
    match format {
        None | Some("json") => Ok(Json(Page {
            items: items.to_vec(),
            next: None,
        })
        .into_response()),
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

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/backlog",
    tag = "backlog",
    params(("slug" = String, Path, description = "The platform's short name")),
    request_body = serde_json::Value,
    responses((status = 201, description = "The new item", body = Item), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn create_item(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let input = item_input(&body, None)?;
    let item = backlog::create(&state.pool, on.platform(), &input, &on.principal).await?;
    Ok((StatusCode::CREATED, Json(item)).into_response())
}

#[utoipa::path(
    patch,
    path = "/api/v1/platforms/{slug}/backlog/{id}",
    tag = "backlog",
    params(("slug" = String, Path, description = "The platform's short name"), ("id" = uuid::Uuid, Path, description = "The backlog item's id")),
    request_body = serde_json::Value,
    responses((status = 200, description = "The item", body = Item), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
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
