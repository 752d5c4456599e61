//! Probes for orchestrators: `/healthz` says the process answers, `/readyz` that it can do its
//! work (database reachable, schema fully migrated). Both are cheap and unauthenticated.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::app::AppState;
use crate::db;

/// The answer of `GET /healthz`: `{"status": "ok"}` whenever the process answers.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Liveness {
    Ok,
}

/// The answer of `GET /readyz`: `ready` (200) with the schema version, or `not_ready` (503)
/// with the reason.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Readiness {
    Ready { schema_version: i64 },
    NotReady { reason: &'static str },
}

pub async fn healthz() -> Json<Liveness> {
    Json(Liveness::Ok)
}

/// How long `/readyz` waits for the database before it answers "unreachable".
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let not_ready = |reason| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness::NotReady { reason }),
        )
    };
    // An unreachable database would hold the probe for the pool's acquire timeout (10 s);
    // probes give up sooner than that, so the answer comes within READY_WITHIN.
    let checked = tokio::time::timeout(READY_WITHIN, db::is_ready(&state.pool)).await;
    match checked.unwrap_or(Err(sqlx::Error::PoolTimedOut)) {
        Ok(true) => (
            StatusCode::OK,
            Json(Readiness::Ready {
                schema_version: db::latest_known_version(),
            }),
        ),
        Ok(false) => not_ready("database migrations are not applied"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            not_ready("database unreachable")
        }
    }
}
