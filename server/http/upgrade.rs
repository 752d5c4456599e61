//! Kubernetes upgrades of an environment's cluster in the browser (`/environments/{id}/upgrade`:
//! the preview, the request, the decisions, retry) and in the JSON API
//! (`/api/v1/environments/{id}/upgrade`, `…/upgrade/approve`, `…/upgrade/reject`,
//! `…/upgrade/cancel`, `…/upgrade/retry`), both through `crate::maintain::upgrade`. Asking and deciding are the
//! platform team's (`Action::MaintainEnvironment`); the use case then applies the
//! environment's approval policy (its approver roles, never the requester's own decision).

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Action;
use crate::environments::EnvironmentError;
use crate::environments::lifecycle::Decision;
use crate::http::error::{AppError, FieldErrors};
use crate::http::extract::{Ctx, FormFields, OnEnvironment};
use crate::http::flash::{Flash, done};
use crate::http::json::{TypedJson, from_slice};
use crate::http::views::{Shell, render, unprocessable};
use crate::maintain::currency::Calendar;
use crate::maintain::upgrade::{self, Preview, Upgrade, UpgradeState};

/// The body of `POST /api/v1/environments/{id}/upgrade`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeBody {
    /// The next minor version after the cluster's (`1.35` for a cluster on 1.34).
    kubernetes_version: String,
}

/// The body of `POST …/upgrade/approve` (optional).
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeApproveBody {
    comment: Option<String>,
}

/// The body of `POST …/upgrade/reject`; the reason is required.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRejectBody {
    reason: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/environments/{id}/upgrade",
    tag = "maintain",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    responses((status = 200, description = "The upgrade preview: the cluster's version and support, the next version, the job's steps, the approval policy, the open upgrade and the last ones", body = Preview), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn api_preview(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<Json<Preview>, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let calendar = Calendar::load(&state.pool).await?;
    Ok(Json(
        upgrade::preview(&state.pool, &calendar, on.id(), state.clock.today()).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/upgrade",
    tag = "maintain",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    request_body = UpgradeBody,
    responses((status = 202, description = "The upgrade: awaiting the environment's approvers, or running (`job_id`) when its type needs no approval", body = Upgrade), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Not ready, or an upgrade is open already", body = crate::http::error::Problem), (status = 422, description = "Not the next minor version, or not in the version calendar; `errors` names the field", body = crate::http::error::Problem))
)]
pub async fn api_request(
    State(state): State<AppState>,
    on: OnEnvironment,
    TypedJson(body): TypedJson<UpgradeBody>,
) -> Result<(StatusCode, Json<Upgrade>), AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let calendar = Calendar::load(&state.pool).await?;
    let upgrade = upgrade::request(
        &state.pool,
        &calendar,
        on.id(),
        &on.principal,
        &body.kubernetes_version,
        &state.public_url,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(upgrade)))
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/upgrade/approve",
    tag = "maintain",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    request_body(content = Option<UpgradeApproveBody>, description = "Optional: an empty body approves without a comment"),
    responses((status = 200, description = "The upgrade, running once the policy's approvals are in", body = Upgrade), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "The caller asked for it, or holds none of the approver roles", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "No upgrade awaits a decision, or the caller decided already", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn api_approve(
    State(state): State<AppState>,
    on: OnEnvironment,
    body: axum::body::Bytes,
) -> Result<Json<Upgrade>, AppError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        UpgradeApproveBody::default()
    } else {
        from_slice::<Option<UpgradeApproveBody>>(&body)?.unwrap_or_default()
    };
    on.authorize(Action::MaintainEnvironment)?;
    let comment = body.comment.unwrap_or_default();
    Ok(Json(
        decide(&state, &on, Decision::Approve, &comment).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/upgrade/reject",
    tag = "maintain",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    request_body = UpgradeRejectBody,
    responses((status = 200, description = "The upgrade, rejected", body = Upgrade), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "The caller asked for it, or holds none of the approver roles", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "No upgrade awaits a decision, or the caller decided already", body = crate::http::error::Problem), (status = 422, description = "No reason; `errors` names the field", body = crate::http::error::Problem))
)]
pub async fn api_reject(
    State(state): State<AppState>,
    on: OnEnvironment,
    TypedJson(body): TypedJson<UpgradeRejectBody>,
) -> Result<Json<Upgrade>, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let reason = body.reason.unwrap_or_default();
    Ok(Json(decide(&state, &on, Decision::Reject, &reason).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/upgrade/retry",
    tag = "maintain",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    responses((status = 202, description = "The failed upgrade, running again from where it stopped", body = Upgrade), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Not ready, or no failed upgrade", body = crate::http::error::Problem))
)]
pub async fn api_retry(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<(StatusCode, Json<Upgrade>), AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let upgrade = upgrade::retry(&state.pool, on.id(), &on.principal, &state.public_url).await?;
    Ok((StatusCode::ACCEPTED, Json(upgrade)))
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/upgrade/cancel",
    tag = "maintain",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    responses((status = 200, description = "The upgrade, withdrawn", body = Upgrade), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Someone else asked for it (its approvers reject it)", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "No upgrade awaits a decision", body = crate::http::error::Problem))
)]
pub async fn api_cancel(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<Json<Upgrade>, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    Ok(Json(
        upgrade::withdraw(&state.pool, on.id(), &on.principal, &state.public_url).await?,
    ))
}

async fn decide(
    state: &AppState,
    on: &OnEnvironment,
    decision: Decision,
    comment: &str,
) -> Result<Upgrade, EnvironmentError> {
    upgrade::decide(
        &state.pool,
        on.id(),
        &on.principal,
        decision,
        comment,
        &state.public_url,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Pages

#[derive(Template)]
#[template(path = "upgrade.html")]
pub struct UpgradePage {
    pub shell: Shell,
    pub env: crate::environments::queries::Detail,
    pub preview: Preview,
    /// What the forms held when one was refused.
    pub version: String,
    pub comment: String,
    pub reason: String,
    pub errors: FieldErrors,
    pub user_id: uuid::Uuid,
}

impl UpgradePage {
    fn ready(&self) -> bool {
        self.env.summary.state() == crate::environments::EnvState::Ready
    }

    fn awaiting(&self) -> Option<&Upgrade> {
        self.preview
            .open
            .as_ref()
            .filter(|u| u.state == UpgradeState::AwaitingApproval)
    }

    /// The last upgrade, when it failed (and can be retried).
    fn failed(&self) -> Option<&Upgrade> {
        self.preview
            .history
            .first()
            .filter(|u| u.state == UpgradeState::Failed)
    }
}

struct Held<'a> {
    version: &'a str,
    comment: &'a str,
    reason: &'a str,
}

const NOTHING_HELD: Held<'static> = Held {
    version: "",
    comment: "",
    reason: "",
};

async fn upgrade_view(
    state: &AppState,
    ctx: &Ctx,
    on: &OnEnvironment,
    held: Held<'_>,
    errors: FieldErrors,
) -> Result<UpgradePage, AppError> {
    let calendar = Calendar::load(&state.pool).await?;
    let preview = upgrade::preview(&state.pool, &calendar, on.id(), state.clock.today()).await?;
    Ok(UpgradePage {
        shell: ctx.shell(
            state,
            "environments",
            &format!("Upgrade · {}", on.environment.summary.name),
        ),
        env: on.environment.clone(),
        version: if held.version.is_empty() {
            preview.next_version.clone().unwrap_or_default()
        } else {
            held.version.to_owned()
        },
        preview,
        comment: held.comment.to_owned(),
        reason: held.reason.to_owned(),
        errors,
        user_id: on.principal.user.id.0,
    })
}

pub async fn upgrade_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Html<String>, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    render(&upgrade_view(&state, &ctx, &on, NOTHING_HELD, FieldErrors::default()).await?)
}

/// Back to the upgrade page saying what happened, or the page again with the error beside
/// its field.
async fn after(
    state: &AppState,
    ctx: &Ctx,
    on: &OnEnvironment,
    outcome: Result<Upgrade, EnvironmentError>,
    held: Held<'_>,
    flash: impl Fn(&Upgrade) -> Flash,
) -> Result<Response, AppError> {
    match outcome.map_err(AppError::from) {
        Ok(upgrade) => Ok(done(
            &format!("/environments/{}/upgrade", on.id()),
            flash(&upgrade),
        )),
        Err(AppError::Validation(errors)) => {
            let page = upgrade_view(state, ctx, on, held, FieldErrors(errors));
            Ok(unprocessable(render(&page.await?)?))
        }
        Err(e) => Err(e),
    }
}

fn started_or(flash: Flash) -> impl Fn(&Upgrade) -> Flash {
    move |u: &Upgrade| {
        if u.state == UpgradeState::Running {
            Flash::UpgradeStarted
        } else {
            flash
        }
    }
}

pub async fn request(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
    form: FormFields,
) -> Result<Response, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let version = form.get("kubernetes_version");
    let calendar = Calendar::load(&state.pool).await?;
    let outcome = upgrade::request(
        &state.pool,
        &calendar,
        on.id(),
        &on.principal,
        version,
        &state.public_url,
    )
    .await;
    let held = Held {
        version,
        ..NOTHING_HELD
    };
    after(
        &state,
        &ctx,
        &on,
        outcome,
        held,
        started_or(Flash::UpgradeRequested),
    )
    .await
}

pub async fn approve(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
    form: FormFields,
) -> Result<Response, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let comment = form.get("comment");
    let outcome = decide(&state, &on, Decision::Approve, comment).await;
    let held = Held {
        comment,
        ..NOTHING_HELD
    };
    after(
        &state,
        &ctx,
        &on,
        outcome,
        held,
        started_or(Flash::ApprovalCounted),
    )
    .await
}

pub async fn reject(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
    form: FormFields,
) -> Result<Response, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let reason = form.get("reason");
    let outcome = decide(&state, &on, Decision::Reject, reason).await;
    let held = Held {
        reason,
        ..NOTHING_HELD
    };
    after(&state, &ctx, &on, outcome, held, |_| Flash::UpgradeRejected).await
}

pub async fn cancel(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Response, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let outcome = upgrade::withdraw(&state.pool, on.id(), &on.principal, &state.public_url).await;
    after(&state, &ctx, &on, outcome, NOTHING_HELD, |_| {
        Flash::UpgradeWithdrawn
    })
    .await
}

pub async fn retry(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Response, AppError> {
    on.authorize(Action::MaintainEnvironment)?;
    let outcome = upgrade::retry(&state.pool, on.id(), &on.principal, &state.public_url).await;
    after(&state, &ctx, &on, outcome, NOTHING_HELD, |_| {
        Flash::UpgradeStarted
    })
    .await
}
