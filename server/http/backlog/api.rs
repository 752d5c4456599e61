//! The implementation-plan backlog in the JSON API.

use crate::http::json::{JsonBody, field_error};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::AppState;
use crate::define::backlog::{self, Direction, ItemInput};
use crate::define::platforms::Platform;
use crate::define::revisions::{self};
use crate::http::error::AppError;
use crate::http::extract::{OnPlatform, PlatformEditor, PlatformPlanner};
use crate::http::paging::{page, parse_limit};

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/backlog/generate",
    tag = "backlog",
    params(("slug" = String, Path, description = "The platform's short name")),
    responses((status = 200, description = "The backlog, (re)generated from the approved blueprint", body = serde_json::Value), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem))
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/backlog",
    tag = "backlog",
    params(("slug" = String, Path, description = "The platform's short name"), ("status" = Option<String>, Query), ("phase" = Option<String>, Query), ("assignee" = Option<String>, Query), ("format" = Option<String>, Query, description = "`csv` or `markdown` exports the backlog"), ("limit" = Option<String>, Query, description = "Items per page, 1 to 200 (default 50)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses((status = 200, description = "Backlog items in rank order: `{items, next}`", body = serde_json::Value), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
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

/// Item fields from a JSON body; `current` fills what a PATCH leaves out.
fn item_input(body: &Value, current: Option<&backlog::Item>) -> Result<ItemInput, AppError> {
    let text = |field: &str, fallback: Option<String>| -> String {
        match body.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) => String::new(),
            _ => fallback.unwrap_or_default(),
        }
    };
    let depends_on = match body.get("depends_on") {
        None => current.map(|c| c.depends_on.clone()).unwrap_or_default(),
        Some(Value::Array(ids)) => ids
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| {
                        field_error(
                            &format!("depends_on[{i}]"),
                            "Use the id of an item of this backlog.",
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(field_error("depends_on", "Use a list of item ids.")),
    };
    let estimate = match body.get("estimate_days") {
        None => current.and_then(|c| c.estimate_days).map(|d| d.to_string()),
        Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(field_error(
                "estimate_days",
                "Use a number of days, e.g. 2.5.",
            ));
        }
    };
    Ok(ItemInput {
        title: text("title", current.map(|c| c.title.clone())),
        description: text("description", current.map(|c| c.description.clone())),
        phase: text(
            "phase",
            current.map(|c| c.phase.clone()).or(Some("deliver".into())),
        ),
        status: text(
            "status",
            current.map(|c| c.status.clone()).or(Some("todo".into())),
        ),
        estimate_days: estimate,
        assignee: text("assignee", current.and_then(|c| c.assignee.clone())),
        depends_on,
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/backlog",
    tag = "backlog",
    params(("slug" = String, Path, description = "The platform's short name")),
    request_body = serde_json::Value,
    responses((status = 201, description = "The new item", body = serde_json::Value), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
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
    responses((status = 200, description = "The item", body = serde_json::Value), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
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
    let input = item_input(&body, Some(&current))?;
    let mut item = backlog::update(&state.pool, on.platform(), id, &input, &on.principal).await?;
    if let Some(position) = body.get("position") {
        let position = position.as_u64().ok_or_else(|| {
            field_error("position", "Use the new place in the backlog, 0 for first.")
        })?;
        backlog::move_to(
            &state.pool,
            on.platform(),
            id,
            position as usize,
            &on.principal,
        )
        .await?;
        item = backlog::get(&state.pool, on.platform().id, id)
            .await?
            .ok_or(AppError::NotFound)?;
    } else if let Some(direction) = body.get("move").and_then(Value::as_str) {
        let direction = match direction {
            "up" => Direction::Up,
            "down" => Direction::Down,
            _ => return Err(field_error("move", "Use up or down.")),
        };
        backlog::move_item(&state.pool, on.platform(), id, direction, &on.principal).await?;
        item = backlog::get(&state.pool, on.platform().id, id)
            .await?
            .ok_or(AppError::NotFound)?;
    }
    Ok(Json(item))
}
