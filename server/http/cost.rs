//! What an environment really costs, in the JSON API (`GET /api/v1/environments/{id}/cost`);
//! its page shows the same (`http::environments::pages`), both through `maintain::cost`.

use axum::Json;
use axum::extract::State;

use crate::app::AppState;
use crate::http::error::AppError;
use crate::http::extract::OnEnvironment;
use crate::maintain::cost::{self, CostReport};

#[utoipa::path(
    get,
    path = "/api/v1/environments/{id}/cost",
    tag = "maintain",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    responses((status = 200, description = "This month's spend (`null` until the bill has been read) beside the estimate and the budget, and each day read with the estimate's error", body = CostReport), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn api_cost(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<Json<CostReport>, AppError> {
    Ok(Json(
        cost::report(&state.pool, on.id(), state.clock.today()).await?,
    ))
}
