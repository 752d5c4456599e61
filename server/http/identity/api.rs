//! The caller, in the JSON API.

use axum::Json;
use serde_json::{Value, json};

use crate::http::extract::Authenticated;

/// `GET /api/v1/me`: the caller.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "identity",
    responses((status = 200, description = "The caller: id, email, name and the roles in force for this call", body = serde_json::Value), (status = 401, description = "Not signed in", body = crate::http::error::Problem))
)]
pub async fn me(Authenticated(principal): Authenticated) -> Json<Value> {
    Json(json!({
        "id": principal.user.id,
        "email": principal.user.email,
        "name": principal.user.name,
        // The roles in force for this call: an API token's scope narrows them.
        "roles": principal.roles,
    }))
}
