//! Blueprint roll-outs in the browser (`/platforms/{slug}/rollouts`: what the approved revision
//! changes per environment and the form that starts a roll-out; `/platforms/{slug}/rollouts/{id}`:
//! its waves and the actions) and in the JSON API (`/api/v1/platforms/{slug}/rollouts…`), both
//! through `crate::maintain::rollout`. Rolling out is the platform team's
//! (`Action::RollOutBlueprint`); the use case then applies each wave's approval policy.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::app::AppState;
use crate::environments::EnvironmentError;
use crate::http::error::{AppError, FieldErrors};
use crate::http::extract::{Ctx, FormFields, OnPlatform, PlatformRollout};
use crate::http::flash::{Flash, done};
use crate::http::json::{TypedJson, from_slice};
use crate::http::views::{Shell, render, unprocessable};
use crate::maintain::rollout::{self, Overview, Rollout, RolloutState, TargetState};

/// The body of `POST /api/v1/platforms/{slug}/rollouts`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutBody {
    /// The platform's approved revision.
    revision: Option<i32>,
    /// The waves, in order: each a list of environment ids.
    waves: Vec<Vec<Uuid>>,
}

/// The body of `POST …/rollouts/{id}/skip`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkipBody {
    environment_id: Option<Uuid>,
}

/// The body of `POST …/rollouts/{id}/approve` (optional).
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaveApproveBody {
    comment: Option<String>,
}

/// The roll-out `{id}` segment; anything but a UUID names no roll-out.
fn rollout_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/rollouts",
    tag = "maintain",
    params(("slug" = String, Path, description = "The platform's slug")),
    responses((status = 200, description = "The approved revision, what it changes on each ready environment (and why a roll-out cannot bring it, if so), the open roll-out and the last ones", body = Overview), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "No such platform", body = crate::http::error::Problem))
)]
pub async fn api_overview(
    State(state): State<AppState>,
    on: OnPlatform<PlatformRollout>,
) -> Result<Json<Overview>, AppError> {
    Ok(Json(rollout::overview(&state.pool, on.platform()).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/rollouts",
    tag = "maintain",
    params(("slug" = String, Path, description = "The platform's slug")),
    request_body = RolloutBody,
    responses((status = 201, description = "The roll-out: its first wave awaits its approvals", body = Rollout), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "No such platform", body = crate::http::error::Problem), (status = 409, description = "A roll-out of the platform is open already", body = crate::http::error::Problem), (status = 422, description = "Not the approved revision, or an environment a roll-out cannot reach (`waves[w][i]`)", body = crate::http::error::Problem))
)]
pub async fn api_start(
    State(state): State<AppState>,
    on: OnPlatform<PlatformRollout>,
    TypedJson(body): TypedJson<RolloutBody>,
) -> Result<(StatusCode, Json<Rollout>), AppError> {
    let rollout = rollout::start(
        &state.pool,
        on.platform(),
        &on.principal,
        body.revision,
        &body.waves,
        &state.public_url,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(rollout)))
}

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/rollouts/{id}",
    tag = "maintain",
    params(("slug" = String, Path, description = "The platform's slug"), ("id" = Uuid, Path, description = "The roll-out's id")),
    responses((status = 200, description = "The roll-out: its state and each wave's environments with their state and plan", body = Rollout), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "No such platform or roll-out", body = crate::http::error::Problem))
)]
pub async fn api_get(
    State(state): State<AppState>,
    on: OnPlatform<PlatformRollout>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Rollout>, AppError> {
    Ok(Json(
        rollout::get(&state.pool, on.platform().id, rollout_id(&id)?).await?,
    ))
}

/// What the actions on a roll-out do, for the API and the pages alike.
#[derive(Debug, Clone, Copy)]
enum Act {
    Approve,
    Pause,
    Resume,
    Skip,
    RollBack,
}

async fn act(
    state: &AppState,
    on: &OnPlatform<PlatformRollout>,
    id: Uuid,
    act: Act,
    comment: &str,
    environment: Option<Uuid>,
) -> Result<Rollout, EnvironmentError> {
    let (db, platform, by, url) = (
        &state.pool,
        on.platform(),
        &on.principal,
        &*state.public_url,
    );
    match act {
        Act::Approve => rollout::approve(db, platform, id, by, comment, url).await,
        Act::Pause => rollout::pause(db, platform, id, by).await,
        Act::Resume => rollout::resume(db, platform, id, by, url).await,
        Act::Skip => rollout::skip(db, platform, id, environment, by, url).await,
        Act::RollBack => rollout::roll_back(db, platform, id, by, url).await,
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/rollouts/{id}/approve",
    tag = "maintain",
    params(("slug" = String, Path, description = "The platform's slug"), ("id" = Uuid, Path, description = "The roll-out's id")),
    request_body(content = Option<WaveApproveBody>, description = "Optional: an empty body approves without a comment"),
    responses((status = 200, description = "The roll-out; its current wave runs once the approvals it needs are in", body = Rollout), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "The caller started the roll-out, or lacks an approver role of the wave's environments", body = crate::http::error::Problem), (status = 404, description = "No such platform or roll-out", body = crate::http::error::Problem), (status = 409, description = "No wave awaits approval, or the caller approved it already", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn api_approve(
    State(state): State<AppState>,
    on: OnPlatform<PlatformRollout>,
    Path((_, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Rollout>, AppError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        WaveApproveBody::default()
    } else {
        from_slice::<Option<WaveApproveBody>>(&body)?.unwrap_or_default()
    };
    let comment = body.comment.unwrap_or_default();
    let id = rollout_id(&id)?;
    Ok(Json(
        act(&state, &on, id, Act::Approve, &comment, None).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/rollouts/{id}/pause",
    tag = "maintain",
    params(("slug" = String, Path, description = "The platform's slug"), ("id" = Uuid, Path, description = "The roll-out's id")),
    responses((status = 200, description = "The roll-out, paused: nothing new starts; running jobs finish", body = Rollout), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "No such platform or roll-out", body = crate::http::error::Problem), (status = 409, description = "Not awaiting approval or running", body = crate::http::error::Problem))
)]
pub async fn api_pause(
    State(state): State<AppState>,
    on: OnPlatform<PlatformRollout>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Rollout>, AppError> {
    let id = rollout_id(&id)?;
    Ok(Json(act(&state, &on, id, Act::Pause, "", None).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/rollouts/{id}/resume",
    tag = "maintain",
    params(("slug" = String, Path, description = "The platform's slug"), ("id" = Uuid, Path, description = "The roll-out's id")),
    responses((status = 200, description = "The roll-out, going on: failed environments run again (while rolling back: their roll-back)", body = Rollout), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "No such platform or roll-out", body = crate::http::error::Problem), (status = 409, description = "Not paused (or rolling back with a failure)", body = crate::http::error::Problem))
)]
pub async fn api_resume(
    State(state): State<AppState>,
    on: OnPlatform<PlatformRollout>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Rollout>, AppError> {
    let id = rollout_id(&id)?;
    Ok(Json(act(&state, &on, id, Act::Resume, "", None).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/rollouts/{id}/skip",
    tag = "maintain",
    params(("slug" = String, Path, description = "The platform's slug"), ("id" = Uuid, Path, description = "The roll-out's id")),
    request_body = SkipBody,
    responses((status = 200, description = "The roll-out without that environment, which stays on (or gets back) its revision", body = Rollout), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "No such platform or roll-out", body = crate::http::error::Problem), (status = 409, description = "The environment is not pending or failed, or the roll-out has ended", body = crate::http::error::Problem), (status = 422, description = "No environment, or one not in the roll-out (`environment_id`)", body = crate::http::error::Problem))
)]
pub async fn api_skip(
    State(state): State<AppState>,
    on: OnPlatform<PlatformRollout>,
    Path((_, id)): Path<(String, String)>,
    TypedJson(body): TypedJson<SkipBody>,
) -> Result<Json<Rollout>, AppError> {
    let id = rollout_id(&id)?;
    Ok(Json(
        act(&state, &on, id, Act::Skip, "", body.environment_id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/rollouts/{id}/rollback",
    tag = "maintain",
    params(("slug" = String, Path, description = "The platform's slug"), ("id" = Uuid, Path, description = "The roll-out's id")),
    responses((status = 200, description = "The roll-out, rolling back: each environment it reached gets its previous revision's plan again", body = Rollout), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "No such platform or roll-out", body = crate::http::error::Problem), (status = 409, description = "An environment's job is running, or it was rolled back already", body = crate::http::error::Problem))
)]
pub async fn api_roll_back(
    State(state): State<AppState>,
    on: OnPlatform<PlatformRollout>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Rollout>, AppError> {
    let id = rollout_id(&id)?;
    Ok(Json(act(&state, &on, id, Act::RollBack, "", None).await?))
}

// ---------------------------------------------------------------------------------------------
// Pages

#[derive(Template)]
#[template(path = "rollouts.html")]
pub struct RolloutsPage {
    pub shell: Shell,
    pub platform: crate::define::platforms::Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub overview: Overview,
    /// The wave chosen per environment when the form was refused (1-based; 0: not included).
    pub chosen: Vec<(Uuid, usize)>,
    pub errors: FieldErrors,
}

impl RolloutsPage {
    /// How many waves the form offers.
    fn wave_choices(&self) -> Vec<usize> {
        (1..=self
            .overview
            .environments
            .len()
            .clamp(1, rollout::MAX_WAVES))
            .collect()
    }

    fn chosen_wave(&self, id: &Uuid) -> usize {
        self.chosen
            .iter()
            .find(|(e, _)| e == id)
            .map_or(0, |(_, w)| *w)
    }

    /// Whether `env` runs the approved revision already.
    fn is_current(&self, env: &rollout::Candidate) -> bool {
        Some(env.revision) == self.overview.revision
    }

    fn field(id: &Uuid) -> String {
        format!("wave_{id}")
    }

    /// Errors no field of the form shows: the waves as a whole, or an environment the page
    /// does not list (no longer ready, or never on the platform).
    fn general_errors(&self) -> Vec<&str> {
        self.errors
            .0
            .iter()
            .filter(|e| {
                e.field != "revision"
                    && !self
                        .overview
                        .environments
                        .iter()
                        .any(|c| Self::field(&c.id) == e.field)
            })
            .map(|e| e.message.as_str())
            .collect()
    }
}

async fn rollouts_view(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<PlatformRollout>,
    chosen: Vec<(Uuid, usize)>,
    errors: FieldErrors,
) -> Result<RolloutsPage, AppError> {
    let platform = on.platform().clone();
    Ok(RolloutsPage {
        shell: ctx.shell(
            state,
            "platforms",
            &format!("Roll-outs · {}", platform.name),
        ),
        overview: rollout::overview(&state.pool, &platform).await?,
        platform,
        tab: "maintain",
        can_plan: true,
        chosen,
        errors,
    })
}

pub async fn rollouts_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformRollout>,
) -> Result<Html<String>, AppError> {
    render(&rollouts_view(&state, &ctx, &on, Vec::new(), FieldErrors::default()).await?)
}

/// The start form: each environment's `wave_{id}` field names its wave (1-based, empty: not in
/// the roll-out); the use case checks the ids. Errors of `waves[w][i]` are shown beside that
/// environment's field.
pub async fn start(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformRollout>,
    form: FormFields,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let mut chosen = Vec::new();
    let mut waves: Vec<Vec<Uuid>> = Vec::new();
    for (id, raw) in form.starting_with("wave_") {
        let Ok(id) = Uuid::parse_str(id) else {
            errors.add(
                "waves",
                "The form names an environment that does not exist.",
            );
            continue;
        };
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        match raw.parse::<usize>() {
            Ok(w) if (1..=rollout::MAX_WAVES).contains(&w) => {
                chosen.push((id, w));
                if waves.len() < w {
                    waves.resize(w, Vec::new());
                }
                waves[w - 1].push(id);
            }
            _ => errors.add(&RolloutsPage::field(&id), "Choose a wave from the list."),
        }
    }
    // Waves left empty by the choice close up: "1 and 3" means two waves.
    waves.retain(|w| !w.is_empty());
    let revision = form.get("revision").trim().parse::<i32>().ok();
    let outcome = if errors.is_empty() {
        rollout::start(
            &state.pool,
            on.platform(),
            &on.principal,
            revision,
            &waves,
            &state.public_url,
        )
        .await
        .map_err(AppError::from)
    } else {
        Err(AppError::Validation(errors.0))
    };
    match outcome {
        Ok(r) => Ok(done(
            &format!("/platforms/{}/rollouts/{}", on.platform().slug, r.id),
            Flash::RolloutStarted,
        )),
        Err(AppError::Validation(found)) => {
            // `waves[w][i]` is the field of the environment placed there.
            let errors = FieldErrors(
                found
                    .into_iter()
                    .map(|mut e| {
                        if let Some(env) = place(&e.field).and_then(|(w, i)| waves.get(w)?.get(i)) {
                            e.field = RolloutsPage::field(env);
                        }
                        e
                    })
                    .collect(),
            );
            let page = rollouts_view(&state, &ctx, &on, chosen, errors).await?;
            Ok(unprocessable(render(&page)?))
        }
        Err(e) => Err(e),
    }
}

/// `(w, i)` of a `waves[w][i]` field name.
fn place(field: &str) -> Option<(usize, usize)> {
    let rest = field.strip_prefix("waves[")?.strip_suffix(']')?;
    let (w, i) = rest.split_once("][")?;
    Some((w.parse().ok()?, i.parse().ok()?))
}

#[derive(Template)]
#[template(path = "rollout.html")]
pub struct RolloutPage {
    pub shell: Shell,
    pub platform: crate::define::platforms::Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub rollout: Rollout,
    pub user_id: Uuid,
    pub comment: String,
    pub errors: FieldErrors,
}

impl RolloutPage {
    fn awaiting(&self) -> bool {
        self.rollout.state == RolloutState::AwaitingApproval
    }

    fn can_pause(&self) -> bool {
        matches!(
            self.rollout.state,
            RolloutState::AwaitingApproval | RolloutState::Running
        )
    }

    fn can_resume(&self) -> bool {
        self.rollout.state == RolloutState::Paused
            || (self.rollout.state == RolloutState::RollingBack && self.rollout.error.is_some())
    }

    fn can_roll_back(&self) -> bool {
        !matches!(
            self.rollout.state,
            RolloutState::RollingBack | RolloutState::RolledBack
        )
    }

    fn skippable(&self, state: &TargetState) -> bool {
        self.rollout.state.is_open()
            && self.rollout.state != RolloutState::RollingBack
            && matches!(state, TargetState::Pending | TargetState::Failed)
    }
}

async fn rollout_view(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<PlatformRollout>,
    id: Uuid,
    comment: &str,
    errors: FieldErrors,
) -> Result<RolloutPage, AppError> {
    let platform = on.platform().clone();
    let rollout = rollout::get(&state.pool, platform.id, id).await?;
    Ok(RolloutPage {
        shell: ctx.shell(
            state,
            "platforms",
            &format!(
                "Roll-out of revision {} · {}",
                rollout.revision, platform.name
            ),
        ),
        platform,
        tab: "maintain",
        can_plan: true,
        rollout,
        user_id: on.principal.user.id.0,
        comment: comment.to_owned(),
        errors,
    })
}

pub async fn rollout_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformRollout>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Html<String>, AppError> {
    let id = rollout_id(&id)?;
    render(&rollout_view(&state, &ctx, &on, id, "", FieldErrors::default()).await?)
}

/// Runs `what` from a form on the roll-out page, then back to it saying what happened (or the
/// page again with the error beside its field).
async fn from_form(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<PlatformRollout>,
    id: &str,
    what: Act,
    form: &FormFields,
) -> Result<Response, AppError> {
    let id = rollout_id(id)?;
    let comment = form.get("comment");
    let environment = Uuid::parse_str(form.get("environment_id").trim()).ok();
    match act(state, on, id, what, comment, environment)
        .await
        .map_err(AppError::from)
    {
        Ok(_) => Ok(done(
            &format!("/platforms/{}/rollouts/{id}", on.platform().slug),
            match what {
                Act::Approve => Flash::WaveApproved,
                Act::Pause => Flash::RolloutPaused,
                Act::Resume => Flash::RolloutResumed,
                Act::Skip => Flash::RolloutSkipped,
                Act::RollBack => Flash::RollingBack,
            },
        )),
        Err(AppError::Validation(errors)) => {
            let page = rollout_view(state, ctx, on, id, comment, FieldErrors(errors)).await?;
            Ok(unprocessable(render(&page)?))
        }
        Err(e) => Err(e),
    }
}

macro_rules! form_action {
    ($($(#[$doc:meta])* $name:ident => $act:expr;)*) => {
        $(
            $(#[$doc])*
            pub async fn $name(
                State(state): State<AppState>,
                ctx: Ctx,
                on: OnPlatform<PlatformRollout>,
                Path((_, id)): Path<(String, String)>,
                form: FormFields,
            ) -> Result<Response, AppError> {
                from_form(&state, &ctx, &on, &id, $act, &form).await
            }
        )*
    };
}

form_action! {
    /// `POST /platforms/{slug}/rollouts/{id}/approve`.
    approve => Act::Approve;
    /// `POST /platforms/{slug}/rollouts/{id}/pause`.
    pause => Act::Pause;
    /// `POST /platforms/{slug}/rollouts/{id}/resume`.
    resume => Act::Resume;
    /// `POST /platforms/{slug}/rollouts/{id}/skip` (`environment_id`).
    skip => Act::Skip;
    /// `POST /platforms/{slug}/rollouts/{id}/rollback`.
    roll_back => Act::RollBack;
}

#[cfg(test)]
mod tests {
    use super::place;

    #[test]
    fn a_wave_field_names_its_place() {
        assert_eq!(place("waves[1][0]"), Some((1, 0)));
        assert_eq!(place("waves[1]"), None);
        assert_eq!(place("revision"), None);
    }
}
