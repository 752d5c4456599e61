//! Notifications in the JSON API.

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::environments::notify;
use crate::http::environments::api::ListQuery;
use crate::http::error::AppError;
use crate::http::extract::Authenticated;
use crate::http::paging::non_empty;
use crate::http::paging::parse_limit;

/// `GET /api/v1/notifications`: the caller's newest notifications and the unread count.
#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "notifications",
    params(("limit" = Option<String>, Query, description = "Items per page, 1 to 200 (default 50)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses((status = 200, description = "`{items, next, unread}`", body = serde_json::Value), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn notifications(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = parse_limit(query.limit.as_deref())?;
    let before = match non_empty(&query.after) {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| crate::http::paging::bad_cursor("after"))?,
        ),
    };
    let user = principal.user.id.0;
    let mut items = notify::inbox(&state.pool, user, before, limit + 1).await?;
    let next = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        items.last().map(|n| n.id.to_string()).unwrap_or_default()
    });
    let unread = notify::unread_count(&state.pool, user).await?;
    Ok(Json(
        json!({ "items": items, "next": next, "unread": unread }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/notifications/read",
    tag = "notifications",
    responses((status = 200, description = "`{marked_read}`", body = serde_json::Value), (status = 401, description = "Not signed in", body = crate::http::error::Problem))
)]
pub async fn notifications_read(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Value>, AppError> {
    let marked = notify::mark_all_read(&state.pool, principal.user.id.0).await?;
    Ok(Json(json!({ "marked_read": marked })))
}
