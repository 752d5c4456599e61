//! The caller, in the JSON API.

use axum::Json;
use serde::Serialize;

use crate::auth::{Role, RoleSet};
use crate::http::extract::Authenticated;

/// The caller as `GET /api/v1/me` shows them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    pub id: uuid::Uuid,
    pub email: String,
    pub name: String,
    /// The roles in force for this call: an API token's scope narrows them.
    #[schema(value_type = Vec<Role>)]
    pub roles: RoleSet,
}

/// `GET /api/v1/me`: the caller.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "identity",
    responses((status = 200, description = "The caller: id, email, name and the roles in force for this call", body = Me), (status = 401, description = "Not signed in", body = crate::http::error::Problem))
)]
pub async fn me(Authenticated(principal): Authenticated) -> Json<Me> {
    Json(Me {
        id: principal.user.id.0,
        email: principal.user.email,
        name: principal.user.name,
        roles: principal.roles,
    })
}
