//! An environment's drift in the browser (`/environments/{id}/drift`: what differs from its
//! plan, check now, reconcile, accept with a reason) and in the JSON API
//! (`/api/v1/environments/{id}/drift`, `…/drift/check`, `…/drift/accept`, `…/reconcile`), both
//! through `crate::maintain::drift`. The platform team's: `Action::MaintainEnvironment`.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, Response};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::Action;
use crate::environments::EnvironmentError;
use crate::http::error::{AppError, FieldErrors};
use crate::http::extract::{Ctx, FormFields, OnEnvironment};
use crate::http::flash::{Flash, done};
use crate::http::json::TypedJson;
use crate::http::views::{Shell, render, unprocessable};
use crate::maintain::drift::{self, DriftReport};

/// The body of `POST /api/v1/environments/{id}/drift/accept`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// Why the differences stay (1 to 500 characters).
    reason: String,
}

/// A maintenance job started for the environment.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Started {
    pub job_id: i64,
}

/// What an acceptance recorded.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AcceptedCount {
    pub accepted: u64,
}

#[utoipa::path(
    get,
    path = "/api/v1/environments/{id}/drift",
    tag = "maintain",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    responses((status = 200, description = "What the last check found that nobody accepted (`items: null` until one has run), what was accepted, and the last check and reconcile jobs", body = DriftReport), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn api_drift(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<Json<DriftReport>, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    Ok(Json(drift::report(&state.pool, on.id()).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/drift/check",
    tag = "maintain",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    responses((status = 202, description = "A drift check job is queued", body = Started), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Not ready, or a check is running already", body = crate::http::error::Problem))
)]
pub async fn api_check(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<(StatusCode, Json<Started>), AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let job_id = drift::check_now(&state.pool, on.id()).await?;
    Ok((StatusCode::ACCEPTED, Json(Started { job_id })))
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/reconcile",
    tag = "maintain",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    responses((status = 202, description = "A reconcile job is queued: the node group's sizes and every Kubernetes object are set back to the plan, then drift is checked again", body = Started), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Not ready, or being reconciled already", body = crate::http::error::Problem))
)]
pub async fn api_reconcile(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<(StatusCode, Json<Started>), AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let job_id = drift::reconcile(&state.pool, on.id(), &on.principal, &state.public_url).await?;
    Ok((StatusCode::ACCEPTED, Json(Started { job_id })))
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/drift/accept",
    tag = "maintain",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    request_body = AcceptBody,
    responses((status = 200, description = "Every difference nobody had accepted is accepted with the reason", body = AcceptedCount), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Not ready, or no drift to accept", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn api_accept(
    State(state): State<AppState>,
    on: OnEnvironment,
    TypedJson(body): TypedJson<AcceptBody>,
) -> Result<Json<AcceptedCount>, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let accepted = drift::accept(
        &state.pool,
        on.id(),
        &on.principal,
        &body.reason,
        &state.public_url,
    )
    .await?;
    Ok(Json(AcceptedCount { accepted }))
}

// ---------------------------------------------------------------------------------------------
// Pages

#[derive(Template)]
#[template(path = "drift.html")]
pub struct DriftPage {
    pub shell: Shell,
    pub env: crate::environments::queries::Detail,
    pub report: DriftReport,
    pub reason: String,
    pub errors: FieldErrors,
}

impl DriftPage {
    fn ready(&self) -> bool {
        self.env.summary.state() == crate::environments::EnvState::Ready
    }
}

async fn drift_view(
    state: &AppState,
    ctx: &Ctx,
    on: &OnEnvironment,
    reason: String,
    errors: FieldErrors,
) -> Result<DriftPage, AppError> {
    Ok(DriftPage {
        shell: ctx.shell(
            state,
            "environments",
            &format!("Drift · {}", on.environment.summary.name),
        ),
        env: on.environment.clone(),
        report: drift::report(&state.pool, on.id()).await?,
        reason,
        errors,
    })
}

pub async fn drift_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Html<String>, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    render(&drift_view(&state, &ctx, &on, String::new(), FieldErrors::default()).await?)
}

/// Back to the drift page saying `flash`, or the page again with the error beside its field.
async fn after<T>(
    state: &AppState,
    ctx: &Ctx,
    on: &OnEnvironment,
    outcome: Result<T, EnvironmentError>,
    reason: &str,
    flash: Flash,
) -> Result<Response, AppError> {
    match outcome.map_err(AppError::from) {
        Ok(_) => Ok(done(&format!("/environments/{}/drift", on.id()), flash)),
        Err(AppError::Validation(errors)) => {
            let page = drift_view(state, ctx, on, reason.to_owned(), FieldErrors(errors));
            Ok(unprocessable(render(&page.await?)?))
        }
        Err(e) => Err(e),
    }
}

pub async fn check(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Response, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let outcome = drift::check_now(&state.pool, on.id()).await;
    after(&state, &ctx, &on, outcome, "", Flash::DriftCheckStarted).await
}

pub async fn reconcile(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Response, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let outcome = drift::reconcile(&state.pool, on.id(), &on.principal, &state.public_url).await;
    after(&state, &ctx, &on, outcome, "", Flash::ReconcileStarted).await
}

pub async fn accept(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
    form: FormFields,
) -> Result<Response, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let reason = form.get("reason");
    let outcome = drift::accept(
        &state.pool,
        on.id(),
        &on.principal,
        reason,
        &state.public_url,
    )
    .await;
    after(&state, &ctx, &on, outcome, reason, Flash::DriftAccepted).await
}
