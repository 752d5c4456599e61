//! The account pools of ephemeral environments for the platform team: the page and
//! `GET /api/v1/account-pool`, both reading `provision::pool`.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::Html;
use serde::Deserialize;

use crate::app::AppState;
use crate::http::error::{AppError, FieldError};
use crate::http::extract::{Allowed, Ctx, ViewAccountPool};
use crate::http::paging::{Page, non_empty, page, parse_limit};
use crate::http::views::{Shell, render};
use crate::provision::pool::{self, PoolState, PoolSummary, PooledAccount};

#[derive(Deserialize, Default)]
pub struct PoolQuery {
    state: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

fn state_filter(query: &PoolQuery) -> Result<Option<PoolState>, AppError> {
    non_empty(&query.state)
        .map(|v| {
            PoolState::parse(&v).ok_or_else(|| {
                AppError::Validation(vec![FieldError {
                    field: "state".into(),
                    message: "Choose one of available, leased, cleaning or quarantined.".into(),
                }])
            })
        })
        .transpose()
}

#[derive(Template)]
#[template(path = "account_pool.html")]
pub struct AccountPoolPage {
    pub shell: Shell,
    pub pools: Vec<PoolSummary>,
    pub accounts: Vec<PooledAccount>,
    pub state: String,
}

/// Every pool and its accounts (fifty at most a pool, so one page).
pub async fn account_pool_page(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<ViewAccountPool>,
    Query(query): Query<PoolQuery>,
) -> Result<Html<String>, AppError> {
    let filter = state_filter(&query)?;
    render(&AccountPoolPage {
        shell: ctx.shell(&state, "account-pool", "Account pool"),
        pools: pool::summaries(&state.pool).await?,
        accounts: pool::list(&state.pool, filter).await?,
        state: filter.map(|s| s.to_string()).unwrap_or_default(),
    })
}

/// `GET /api/v1/account-pool?state=&limit=&after=`: by platform, oldest account first.
#[utoipa::path(
    get,
    path = "/api/v1/account-pool",
    tag = "accounts",
    params(("state" = Option<String>, Query, description = "available, leased, cleaning or quarantined"), ("limit" = Option<String>, Query, description = "Items per page, 1 to 200 (default 50)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses((status = 200, description = "Pooled accounts", body = Page<PooledAccount>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn api_account_pool(
    State(state): State<AppState>,
    _: Allowed<ViewAccountPool>,
    Query(query): Query<PoolQuery>,
) -> Result<Json<Page<PooledAccount>>, AppError> {
    let limit = parse_limit(query.limit.as_deref())?;
    let accounts = pool::list(&state.pool, state_filter(&query)?).await?;
    let (items, next) = page(
        accounts,
        |a| a.account_id.clone(),
        limit,
        non_empty(&query.after).as_deref(),
    )?;
    Ok(Json(Page { items, next }))
}
