//! An environment's hand-over to a team: `GET /environments/{id}/handover` (the page, with the
//! kubeconfig to download and copy), `GET /api/v1/environments/{id}/handover` (JSON, or
//! `?format=markdown`), both through `exploit::handover`.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Action;
use crate::environments::EnvState;
use crate::exploit::ExploitError;
use crate::exploit::handover::{self, Handover, Reader};
use crate::http::error::AppError;
use crate::http::extract::{Ctx, OnEnvironment};
use crate::http::json::field_error;
use crate::http::views::{Shell, download, render};

#[derive(Deserialize)]
pub struct HandoverQuery {
    team: Option<String>,
    format: Option<String>,
}

async fn load(
    state: &AppState,
    on: &OnEnvironment,
    team: Option<&str>,
) -> Result<Handover, ExploitError> {
    let reader = Reader {
        user: on.principal.user.id,
        administers: on.can(Action::AdministerCluster),
    };
    let team = team.map(str::trim).filter(|t| !t.is_empty());
    handover::handover(&state.pool, &on.environment, &reader, team).await
}

#[utoipa::path(
    get,
    path = "/api/v1/environments/{id}/handover",
    tag = "environments",
    params(("id" = uuid::Uuid, Path, description = "The environment's id"), ("team" = Option<String>, Query, description = "Which of the caller's teams (default: their first in the environment)"), ("format" = Option<String>, Query, description = "`markdown` for a Markdown document")),
    responses((status = 200, description = "The hand-over for the caller's team", body = Handover), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, not visible to the caller, or torn down", body = crate::http::error::Problem), (status = 409, description = "Not ready yet", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn api_handover(
    State(state): State<AppState>,
    on: OnEnvironment,
    Query(query): Query<HandoverQuery>,
) -> Result<Response, AppError> {
    let h = load(&state, &on, query.team.as_deref()).await?;
    match query.format.as_deref() {
        None | Some("" | "json") => Ok(Json(h).into_response()),
        Some("markdown") => Ok(download(
            "text/markdown; charset=utf-8",
            &format!("{}-{}-handover.md", h.platform, h.environment),
            handover::markdown(&h),
        )),
        Some(_) => Err(field_error("format", "Use json or markdown.")),
    }
}

#[derive(Template)]
#[template(path = "handover.html")]
pub struct HandoverPage {
    pub shell: Shell,
    pub env: crate::environments::queries::Detail,
    pub handover: Option<Handover>,
    /// Why there is none (not ready yet, torn down).
    pub absent: Option<String>,
    /// Of a torn-down environment: the teams it was built for and the namespaces it had.
    pub record: Option<(Vec<String>, Vec<String>)>,
}

pub async fn handover_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
    Query(query): Query<HandoverQuery>,
) -> Result<Response, AppError> {
    let title = format!("Hand-over · {}", on.environment.summary.name);
    let (handover, absent, record) = match load(&state, &on, query.team.as_deref()).await {
        Ok(h) => (Some(h), None, None),
        Err(ExploitError::NotFound) if on.environment.summary.state == EnvState::TornDown => {
            let teams = crate::teams::of_environment(&state.pool, on.environment.summary.id)
                .await?
                .into_iter()
                .map(|t| t.name)
                .collect();
            let namespaces = on.environment.outputs["namespaces"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect();
            (
                None,
                Some("It was torn down: nothing of it is left to hand over.".to_owned()),
                Some((teams, namespaces)),
            )
        }
        Err(ExploitError::NotReady(state)) => (
            None,
            Some(format!(
                "It is {}: the hand-over is here once it is ready.",
                state.label().to_lowercase()
            )),
            None,
        ),
        Err(e) => return Err(e.into()),
    };
    Ok(render(&HandoverPage {
        shell: ctx.shell(&state, "environments", &title),
        env: on.environment,
        handover,
        absent,
        record,
    })?
    .into_response())
}

/// `GET /environments/{id}/handover/kubeconfig`: the team's kubeconfig as a file.
pub async fn kubeconfig_download(
    State(state): State<AppState>,
    on: OnEnvironment,
    Query(query): Query<HandoverQuery>,
) -> Result<Response, AppError> {
    let h = load(&state, &on, query.team.as_deref()).await?;
    let whom = h.team.clone().unwrap_or_else(|| "platform".to_owned());
    Ok(download(
        "application/yaml",
        &format!("{}-{}-{whom}.kubeconfig", h.platform, h.environment),
        h.kubeconfig,
    ))
}
