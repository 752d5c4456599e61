//! The implementation-plan backlog in the JSON API.

use crate::http::json::{TypedJson, field_error};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::app::AppState;
use crate::define::backlog::{self, Direction, Generation, Item, ItemInput, Placement};
use crate::define::platforms::Platform;
use crate::http::error::AppError;
use crate::http::extract::{OnPlatform, PlatformEditor, PlatformPlanner};
use crate::http::paging::{Page, page, parse_limit};
use crate::http::views::download;

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
    let file = |ext: &str| format!("{}-backlog.{ext}", platform.slug);
    match format {
        None | Some("json") => Ok(Json(Page {
            items: items.to_vec(),
            next: None,
        })
        .into_response()),
        Some("csv") => Ok(download(
            "text/csv; charset=utf-8",
            &file("csv"),
            backlog::to_csv(items),
        )),
        Some("markdown") => Ok(download(
            "text/markdown; charset=utf-8",
            &file("md"),
            backlog::to_markdown(platform, items),
        )),
        Some(_) => Err(field_error("format", "Use json, csv or markdown.")),
    }
}

/// The body of `POST …/backlog` and `PATCH …/backlog/{id}`. A PATCH changes the fields it
/// names and keeps the others; `null` clears a field. `position` and `move` place the item, on a
/// PATCH only (a new item goes to the bottom).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    /// `define`, `deliver` (a new item's default), `exploit` or `maintain`.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    phase: Option<Option<String>>,
    /// `todo` (a new item's default), `doing`, `blocked`, `done` or `obsolete`.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    status: Option<Option<String>>,
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<f64>)]
    estimate_days: Option<Option<f64>>,
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    assignee: Option<Option<String>>,
    /// Ids of items of this backlog.
    depends_on: Option<Vec<Uuid>>,
    /// The new place in rank order, 0 for first.
    position: Option<usize>,
    /// One place `up` or `down`.
    #[serde(rename = "move")]
    direction: Option<Direction>,
}

/// A field that is given, `null` included: absent is `None` (the field's default), `null` is
/// `Some(None)`.
fn given<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A given text field, `null` as empty; `kept` where the body leaves it out.
fn text(given: Option<Option<String>>, kept: Option<String>) -> String {
    match given {
        Some(value) => value.unwrap_or_default(),
        None => kept.unwrap_or_default(),
    }
}

impl ItemBody {
    /// A new item's fields; placing it is refused (it goes to the bottom).
    fn into_new_item(self) -> Result<ItemInput, AppError> {
        if self.position.is_some() || self.direction.is_some() {
            let field = if self.position.is_some() {
                "position"
            } else {
                "move"
            };
            return Err(field_error(
                field,
                "A new item goes to the bottom of the backlog; place it with a PATCH.",
            ));
        }
        Ok(self.into_input(None))
    }

    /// The changed item's fields and where to put it, checked before anything is written: a
    /// bad placement must not leave a changed title behind.
    fn into_change(self, current: &Item) -> Result<(ItemInput, Option<Placement>), AppError> {
        let placement = match (self.position, self.direction) {
            (Some(_), Some(_)) => {
                return Err(field_error(
                    "move",
                    "Give either `position` or `move`, not both.",
                ));
            }
            (Some(position), None) => Some(Placement::Position(position)),
            (None, Some(direction)) => Some(Placement::Move(direction)),
            (None, None) => None,
        };
        Ok((self.into_input(Some(current)), placement))
    }

    /// The fields, `current` filling what the body leaves out (a new item: the defaults).
    fn into_input(self, current: Option<&Item>) -> ItemInput {
        ItemInput {
            title: text(self.title, current.map(|c| c.title.clone())),
            description: text(self.description, current.map(|c| c.description.clone())),
            phase: text(
                self.phase,
                Some(current.map_or_else(|| "deliver".into(), |c| c.phase.clone())),
            ),
            status: text(
                self.status,
                Some(current.map_or_else(|| "todo".into(), |c| c.status.clone())),
            ),
            estimate_days: self
                .estimate_days
                .unwrap_or_else(|| current.and_then(|c| c.estimate_days))
                .map(|days| days.to_string()),
            assignee: text(self.assignee, current.and_then(|c| c.assignee.clone())),
            depends_on: self
                .depends_on
                .or_else(|| current.map(|c| c.depends_on.clone()))
                .unwrap_or_default(),
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/backlog",
    tag = "backlog",
    params(("slug" = String, Path, description = "The platform's short name")),
    request_body = ItemBody,
    responses((status = 201, description = "The new item", body = Item), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn create_item(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    TypedJson(body): TypedJson<ItemBody>,
) -> Result<Response, AppError> {
    let input = body.into_new_item()?;
    let item = backlog::create(&state.pool, on.platform(), &input, &on.principal).await?;
    Ok((StatusCode::CREATED, Json(item)).into_response())
}

#[utoipa::path(
    patch,
    path = "/api/v1/platforms/{slug}/backlog/{id}",
    tag = "backlog",
    params(("slug" = String, Path, description = "The platform's short name"), ("id" = uuid::Uuid, Path, description = "The backlog item's id")),
    request_body = ItemBody,
    responses((status = 200, description = "The item", body = Item), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn patch_item(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    Path((_, id)): Path<(String, String)>,
    TypedJson(body): TypedJson<ItemBody>,
) -> Result<Json<backlog::Item>, AppError> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    let current = backlog::get(&state.pool, on.platform().id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let (input, placement) = body.into_change(&current)?;
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
