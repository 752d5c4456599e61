//! The Backstage catalog export (`exploit::catalog`): `GET /api/v1/catalog/entities` (JSON) and
//! `GET /api/v1/catalog-info.yaml` (a file for a Backstage `url` location, fetched with an API
//! token in the `Authorization` header).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::exploit::catalog::{self, Entity};
use crate::http::error::AppError;
use crate::http::extract::{Allowed, ViewCatalog};
use crate::http::paging::Page;

#[utoipa::path(
    get,
    path = "/api/v1/catalog/entities",
    tag = "catalog",
    responses((status = 200, description = "Every entity, in one page (what runs: ready environments only)", body = Page<Entity>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem))
)]
pub async fn api_entities(
    State(state): State<AppState>,
    _: Allowed<ViewCatalog>,
) -> Result<Json<Page<Entity>>, AppError> {
    let items = catalog::entities(&state.pool, &state.public_url).await?;
    Ok(Json(Page { items, next: None }))
}

#[utoipa::path(
    get,
    path = "/api/v1/catalog-info.yaml",
    tag = "catalog",
    responses((status = 200, description = "Every entity as YAML documents (empty when there are none)", content_type = "application/yaml"), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem))
)]
pub async fn api_catalog_info(
    State(state): State<AppState>,
    _: Allowed<ViewCatalog>,
) -> Result<Response, AppError> {
    let entities = catalog::entities(&state.pool, &state.public_url).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/yaml")],
        catalog::to_yaml(&entities),
    )
        .into_response())
}
