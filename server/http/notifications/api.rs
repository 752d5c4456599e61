//! Notifications in the JSON API.

use axum::Json;
use axum::extract::{Query, State};
use serde::Serialize;

use crate::app::AppState;
use crate::http::environments::api::ListQuery;
use crate::http::error::AppError;
use crate::http::extract::Authenticated;
use crate::http::paging::non_empty;
use crate::http::paging::parse_limit;
use crate::inbox::{self, Notification};

/// The caller's inbox: a page of notifications, newest first, and how many are unread.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Inbox {
    pub items: Vec<Notification>,
    pub next: Option<String>,
    pub unread: i64,
}

/// What `POST /api/v1/notifications/read` did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MarkedRead {
    pub marked_read: u64,
}

/// `GET /api/v1/notifications`: the caller's newest notifications and the unread count.
#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "notifications",
    params(("limit" = Option<String>, Query, description = "Items per page, 1 to 200 (default 50)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses((status = 200, description = "The inbox", body = Inbox), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn notifications(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Inbox>, AppError> {
    let limit = parse_limit(query.limit.as_deref())?;
    let before = match non_empty(&query.after) {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| crate::http::paging::bad_cursor("after"))?,
        ),
    };
    let user = principal.user.id.0;
    let mut items = inbox::inbox(&state.pool, user, before, limit + 1).await?;
    let next = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        items.last().map(|n| n.id.to_string()).unwrap_or_default()
    });
    let unread = inbox::unread_count(&state.pool, user).await?;
    Ok(Json(Inbox {
        items,
        next,
        unread,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/notifications/read",
    tag = "notifications",
    responses((status = 200, description = "How many were marked read", body = MarkedRead), (status = 401, description = "Not signed in", body = crate::http::error::Problem))
)]
pub async fn notifications_read(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<MarkedRead>, AppError> {
    let marked = inbox::mark_all_read(&state.pool, principal.user.id.0).await?;
    Ok(Json(MarkedRead {
        marked_read: marked,
    }))
}
