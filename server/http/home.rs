//! The pages of the foundation: the overview and the system status.

use crate::http::views::{Shell, render};
use askama::Template;
use axum::extract::State;
use axum::response::Html;

use crate::app::AppState;
use crate::app::config::CloudMode;
use crate::db;
use crate::http::error::AppError;
use crate::http::extract::{Allowed, Ctx, UsePortal};

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub shell: Shell,
    /// Whose next steps to show: an admin's, a platform engineer's, a developer's.
    pub admin: bool,
    pub engineer: bool,
}

pub async fn overview(
    State(state): State<AppState>,
    ctx: Ctx,
    allowed: Allowed<UsePortal>,
) -> Result<Html<String>, AppError> {
    let principal = allowed.principal();
    render(&OverviewPage {
        shell: ctx.shell(&state, "overview", "Overview"),
        admin: principal.has(crate::auth::Role::Admin),
        engineer: principal.has(crate::auth::Role::PlatformEngineer),
    })
}

#[derive(Template)]
#[template(path = "status.html")]
pub struct StatusPage {
    pub shell: Shell,
    pub database: String,
    pub schema_applied: Option<i64>,
    pub schema_known: i64,
    pub cloud: &'static str,
    pub started_at: String,
}

pub async fn status(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<UsePortal>,
) -> Result<Html<String>, AppError> {
    let schema_applied = db::applied_version(&state.pool).await?;
    render(&StatusPage {
        shell: ctx.shell(&state, "status", "System status"),
        database: if state.embedded_db {
            format!(
                "Embedded PostgreSQL in {}",
                state.config.embedded_postgres_dir().display()
            )
        } else {
            "External PostgreSQL (DATABASE_URL)".to_owned()
        },
        schema_applied,
        schema_known: db::latest_known_version(),
        cloud: match state.config.cloud {
            CloudMode::Simulated => "Simulated (no real cloud resources are created)",
            CloudMode::Aws => "AWS (Organizations, STS, EKS)",
        },
        started_at: state.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    })
}
