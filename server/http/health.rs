//! Probes for orchestrators: `/healthz` says the process answers, `/readyz` that it can do its
//! work (database reachable, schema fully migrated). Both are cheap and unauthenticated.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::db;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match db::is_ready(&state.pool).await {
        Ok(true) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "schema_version": db::latest_known_version() })),
        ),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": "database migrations are not applied" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not_ready", "reason": "database unreachable" })),
            )
        }
    }
}
