//! The Maintain page of a platform and `GET /api/v1/platforms/{slug}/maintain`: every cluster
//! with its Kubernetes version's support status (`maintain`).

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::Html;

use crate::app::AppState;
use crate::define::platforms::Platform;
use crate::http::error::AppError;
use crate::http::extract::{Ctx, OnPlatform, PlatformPlanner};
use crate::http::paging::{PAGE_SIZE, Page, PageQuery, encode_cursor, parse_cursor, parse_limit};
use crate::http::views::{Shell, render};
use crate::maintain::{self, ClusterCurrency, currency};

/// Up to `limit` clusters after the cursor, and the cursor of the next page.
async fn page_of(
    state: &AppState,
    calendar: &currency::Calendar,
    on: &OnPlatform<PlatformPlanner>,
    limit: i64,
    after: Option<&str>,
) -> Result<(Vec<ClusterCurrency>, Option<String>), AppError> {
    let mut clusters = maintain::clusters(
        &state.pool,
        calendar,
        on.platform().id,
        state.clock.today(),
        limit + 1,
        parse_cursor(after)?,
    )
    .await?;
    let next = (clusters.len() as i64 > limit).then(|| {
        clusters.truncate(limit as usize);
        clusters
            .last()
            .map(|c| encode_cursor(c.created_at, c.environment_id))
            .unwrap_or_default()
    });
    Ok((clusters, next))
}

#[derive(Template)]
#[template(path = "maintain.html")]
pub struct MaintainPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub clusters: Vec<ClusterCurrency>,
    pub next: Option<String>,
    pub newest: Option<String>,
}

pub async fn maintain_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformPlanner>,
    Query(query): Query<PageQuery>,
) -> Result<Html<String>, AppError> {
    let calendar = currency::Calendar::load(&state.pool).await?;
    let (clusters, next) =
        page_of(&state, &calendar, &on, PAGE_SIZE, query.after.as_deref()).await?;
    let platform = on.platform().clone();
    render(&MaintainPage {
        shell: ctx.shell(
            &state,
            "platforms",
            &format!("Maintain · {}", platform.name),
        ),
        platform,
        tab: "maintain",
        can_plan: true,
        clusters,
        next,
        newest: calendar.newest_in_standard_support(state.clock.today()),
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/maintain",
    tag = "maintain",
    params(("slug" = String, Path, description = "The platform's short name"), ("limit" = Option<String>, Query, description = "Items per page, 1 to 200 (default 50)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses((status = 200, description = "The platform's clusters, oldest first, with their version's support", body = Page<ClusterCurrency>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn api_maintain(
    State(state): State<AppState>,
    on: OnPlatform<PlatformPlanner>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<ClusterCurrency>>, AppError> {
    let limit = parse_limit(query.limit.as_deref())?;
    let calendar = currency::Calendar::load(&state.pool).await?;
    let (items, next) = page_of(&state, &calendar, &on, limit, query.after.as_deref()).await?;
    Ok(Json(Page { items, next }))
}
