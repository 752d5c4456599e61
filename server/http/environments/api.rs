//! Environments in the JSON API (`/api/v1/...environments...`), as API.md lays it out: a request
//! is an environment in its first states.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::{Action, Principal, Role};
use crate::environments::EnvState;
use crate::environments::lifecycle::Decision;
use crate::environments::queries::{self, Detail, Filter, View};
use crate::environments::request::RawRequest;
use crate::http::environments::json::{
    ApproveBody, DecisionOutcome, DryRunView, EnvironmentDetail, EnvironmentJob,
    EnvironmentOutcome, EnvironmentSummary, ExtendBody, NewRequestBody, Outcome, RejectBody,
    Started,
};
use crate::http::error::AppError;
use crate::http::extract::{
    Authenticated, DevopsTrigger, OnEnvironment, OnPlatform, PlatformRequester,
};
use crate::http::json::{TypedJson, field_error, from_slice};
use crate::http::paging::{Page, parse_limit};
use crate::http::paging::{non_empty, parse_cursor};

/// `POST /api/v1/platforms/{slug}/environments`: a request. `?dry_run=true` checks it and
/// returns the estimate and plan without storing anything.
#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/environments",
    tag = "environments",
    params(("slug" = String, Path, description = "The platform's short name"), ("dry_run" = Option<bool>, Query, description = "Check the request and return its estimate and plan without storing it")),
    request_body = NewRequestBody,
    responses((status = 201, description = "The request", body = EnvironmentDetail), (status = 200, description = "The dry run: estimate and plan", body = DryRunView), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn create(
    State(state): State<AppState>,
    on: OnPlatform<PlatformRequester>,
    Query(query): Query<DryRun>,
    TypedJson(body): TypedJson<NewRequestBody>,
) -> Result<Response, AppError> {
    let raw = RawRequest::from(body);
    let environments = state.environments();
    let checked = environments
        .check_request(on.platform(), &on.principal, &raw)
        .await?;
    if query.dry_run.unwrap_or(false) {
        return Ok(Json(DryRunView::from(&checked)).into_response());
    }
    let id = environments
        .submit(on.platform(), &on.principal, &checked)
        .await?;
    let detail = detail(&state, &load(&state, id).await?).await?;
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}

#[derive(Deserialize)]
pub struct DryRun {
    dry_run: Option<bool>,
}

async fn load(
    state: &AppState,
    id: crate::environments::EnvironmentId,
) -> Result<Detail, AppError> {
    queries::get(&state.pool, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// An environment with its approvals, timeline and job, as the API returns it.
pub async fn detail(state: &AppState, d: &Detail) -> Result<EnvironmentDetail, AppError> {
    let id = crate::environments::EnvironmentId(d.summary.id);
    let plan = queries::plan(&state.pool, id).await?;
    let approvals = queries::approvals(&state.pool, id).await?;
    let timeline = queries::timeline(&state.pool, id).await?;
    let job = match d.summary.job_id {
        Some(job_id) => crate::jobs::queue::get(&state.pool, job_id)
            .await?
            .map(|(job, steps)| EnvironmentJob::new(job, steps)),
        None => None,
    };
    Ok(EnvironmentDetail::new(d, plan, approvals, timeline, job))
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    pub view: Option<String>,
    pub state: Option<String>,
    pub platform: Option<String>,
    #[serde(rename = "type")]
    pub environment_type: Option<String>,
    pub requester: Option<String>,
    pub q: Option<String>,
    pub mine: Option<bool>,
    pub limit: Option<String>,
    pub after: Option<String>,
}

/// The filter of a list query. Developers see only their own environments; the platform team
/// sees all.
pub fn filter(query: &ListQuery, principal: &Principal) -> Result<Filter, AppError> {
    let view = match non_empty(&query.view) {
        None => View::All,
        Some(v) => View::parse(&v)
            .ok_or_else(|| field_error("view", "Use pending, decided, in_flight or all."))?,
    };
    let state = match non_empty(&query.state) {
        None => None,
        Some(s) => Some(EnvState::parse(&s).ok_or_else(|| {
            field_error(
                "state",
                "Use one of submitted, approved, rejected, cancelled, expired, provisioning, ready, failed, tearing_down, torn_down.",
            )
        })?),
    };
    let team = principal.has(Role::PlatformEngineer) || principal.has(Role::Admin);
    Ok(Filter {
        view,
        platform: non_empty(&query.platform),
        environment_type: non_empty(&query.environment_type),
        requester: non_empty(&query.requester),
        state,
        search: non_empty(&query.q),
        requested_by: query.mine.unwrap_or(false).then_some(principal.user.id.0),
        visible_to: (!team).then_some(principal.user.id.0),
    })
}

/// One page of a list, and the cursor of the next.
pub async fn page(
    state: &AppState,
    filter: &Filter,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<queries::Summary>, Option<String>), AppError> {
    let mut rows = queries::list(&state.pool, filter, parse_cursor(after)?, limit + 1).await?;
    let next = (rows.len() as i64 > limit).then(|| {
        rows.truncate(limit as usize);
        rows.last()
            .map(|r| r.cursor(filter.view))
            .unwrap_or_default()
    });
    Ok((rows, next))
}

/// `GET /api/v1/environments`.
#[utoipa::path(
    get,
    path = "/api/v1/environments",
    tag = "environments",
    params(("view" = Option<String>, Query, description = "pending, decided, in_flight or all"), ("state" = Option<String>, Query), ("platform" = Option<String>, Query), ("type" = Option<String>, Query), ("requester" = Option<String>, Query), ("q" = Option<String>, Query, description = "Search in name and purpose"), ("mine" = Option<bool>, Query), ("limit" = Option<String>, Query, description = "Items per page, 1 to 200 (default 50)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses((status = 200, description = "Environments", body = Page<EnvironmentSummary>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<EnvironmentSummary>>, AppError> {
    let limit = parse_limit(query.limit.as_deref())?;
    let filter = filter(&query, &principal)?;
    let (rows, next) = page(&state, &filter, query.after.as_deref(), limit).await?;
    let items = rows.iter().map(EnvironmentSummary::from).collect();
    Ok(Json(Page { items, next }))
}

#[utoipa::path(
    get,
    path = "/api/v1/environments/{id}",
    tag = "environments",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    responses((status = 200, description = "The environment with its approvals, timeline, outputs and job", body = EnvironmentDetail), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn get(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<Json<EnvironmentDetail>, AppError> {
    Ok(Json(detail(&state, &on.environment).await?))
}

#[derive(Deserialize)]
pub struct PlanQuery {
    format: Option<String>,
}

/// The dry-run plan, as JSON or (`?format=yaml`) YAML.
#[utoipa::path(
    get,
    path = "/api/v1/environments/{id}/plan",
    tag = "environments",
    params(("id" = uuid::Uuid, Path, description = "The environment's id"), ("format" = Option<String>, Query, description = "`json` (default) or `yaml`")),
    responses((status = 200, description = "The plan: `[{step, action, resource, details}]`, or its YAML", body = Vec<Object>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn plan(
    State(state): State<AppState>,
    on: OnEnvironment,
    Query(query): Query<PlanQuery>,
) -> Result<Response, AppError> {
    let yaml = match query.format.as_deref() {
        None | Some("json") => false,
        Some("yaml") => true,
        Some(_) => return Err(field_error("format", "Use `json` or `yaml`.")),
    };
    let plan = queries::plan(&state.pool, on.id()).await?;
    if !yaml {
        return Ok(Json(plan).into_response());
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/yaml; charset=utf-8",
        )],
        crate::provision::plan::to_yaml(&plan),
    )
        .into_response())
}

async fn decided(
    state: &AppState,
    on: &OnEnvironment,
    outcome: Outcome,
) -> Result<Json<EnvironmentOutcome>, AppError> {
    let environment = detail(state, &load(state, on.id()).await?).await?;
    Ok(Json(EnvironmentOutcome {
        environment,
        outcome,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/approve",
    tag = "environments",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    request_body(content = Option<ApproveBody>, description = "Optional: an empty body approves without a comment"),
    responses((status = 200, description = "The environment and the outcome", body = EnvironmentOutcome), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn approve(
    State(state): State<AppState>,
    on: OnEnvironment,
    body: axum::body::Bytes,
) -> Result<Json<EnvironmentOutcome>, AppError> {
    // The body is optional here: approving needs no words.
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveBody::default()
    } else {
        from_slice::<Option<ApproveBody>>(&body)?.unwrap_or_default()
    };
    let comment = body.comment.unwrap_or_default();
    on.authorize(Action::DecideEnvironment)?;
    let outcome = state
        .environments()
        .decide(on.id(), &on.principal, Decision::Approve, &comment)
        .await?;
    decided(&state, &on, Outcome::Decision(outcome.into())).await
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/reject",
    tag = "environments",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    request_body = RejectBody,
    responses((status = 200, description = "The environment and the outcome", body = EnvironmentOutcome), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn reject(
    State(state): State<AppState>,
    on: OnEnvironment,
    TypedJson(body): TypedJson<RejectBody>,
) -> Result<Json<EnvironmentOutcome>, AppError> {
    let reason = body.reason.unwrap_or_default();
    on.authorize(Action::DecideEnvironment)?;
    let outcome = state
        .environments()
        .decide(on.id(), &on.principal, Decision::Reject, &reason)
        .await?;
    decided(&state, &on, Outcome::Decision(outcome.into())).await
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/cancel",
    tag = "environments",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    responses((status = 200, description = "The environment, cancelled", body = EnvironmentOutcome), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem))
)]
pub async fn cancel(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<Json<EnvironmentOutcome>, AppError> {
    on.authorize(Action::CancelRequest)?;
    state.environments().cancel(on.id(), &on.principal).await?;
    decided(&state, &on, Outcome::Decision(DecisionOutcome::Cancelled)).await
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/extend",
    tag = "environments",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    request_body = ExtendBody,
    responses((status = 200, description = "The environment and whether the extension is done or awaits approval", body = EnvironmentOutcome), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn extend(
    State(state): State<AppState>,
    on: OnEnvironment,
    TypedJson(body): TypedJson<ExtendBody>,
) -> Result<Json<EnvironmentOutcome>, AppError> {
    let ttl = body.ttl_hours();
    on.authorize(Action::ChangeEnvironment)?;
    let outcome = state
        .environments()
        .extend(on.id(), &on.principal, &ttl)
        .await?;
    let outcome = Outcome::Extension {
        extension: outcome.into(),
    };
    decided(&state, &on, outcome).await
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/teardown",
    tag = "environments",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    responses((status = 200, description = "The environment, tearing down", body = EnvironmentOutcome), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem))
)]
pub async fn teardown(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<Json<EnvironmentOutcome>, AppError> {
    on.authorize(Action::ChangeEnvironment)?;
    state
        .environments()
        .teardown(on.id(), &on.principal)
        .await?;
    let outcome = Outcome::Teardown {
        teardown: Started::Started,
    };
    decided(&state, &on, outcome).await
}

#[utoipa::path(
    post,
    path = "/api/v1/environments/{id}/retry",
    tag = "environments",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    responses((status = 200, description = "The environment, provisioning again from the failed step", body = EnvironmentOutcome), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem))
)]
pub async fn retry(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<Json<EnvironmentOutcome>, AppError> {
    on.authorize(Action::ChangeEnvironment)?;
    state.environments().retry(on.id(), &on.principal).await?;
    let outcome = Outcome::Retry {
        retry: Started::Started,
    };
    decided(&state, &on, outcome).await
}

/// `POST /api/v1/platforms/{slug}/devops-environment`: the manual trigger.
#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/devops-environment",
    tag = "environments",
    params(("slug" = String, Path, description = "The platform's short name")),
    responses((status = 201, description = "The DevOps environment", body = EnvironmentDetail), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem))
)]
pub async fn devops_environment(
    State(state): State<AppState>,
    on: OnPlatform<DevopsTrigger>,
) -> Result<Response, AppError> {
    let id = state
        .environments()
        .start_devops(on.platform(), &on.principal)
        .await?;
    let detail = detail(&state, &load(&state, id).await?).await?;
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}

/// `GET /api/v1/environments/{id}/events`: Server-Sent Events (`progress`) with the environment
/// as `GET /api/v1/environments/{id}` returns it, first as it is, then at every change of it or
/// of its job's steps, until it is finished (rejected, cancelled, expired or torn down). The
/// request page follows it; without JavaScript a reload shows the same.
#[utoipa::path(
    get,
    path = "/api/v1/environments/{id}/events",
    tag = "environments",
    params(("id" = uuid::Uuid, Path, description = "The environment's id")),
    responses((status = 200, description = "Server-Sent Events (`progress`), each the environment as `GET /environments/{id}` returns it"), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn events(State(state): State<AppState>, on: OnEnvironment) -> Response {
    use crate::jobs::progress::Change;
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::stream;

    let id = on.id();
    // Subscribed before the first snapshot, so no change between the two is missed.
    let updates = state.progress.subscribe();
    let events = stream::unfold(
        (state, updates, None::<Option<i64>>, false),
        move |(state, mut updates, job, finished)| async move {
            if finished {
                return None;
            }
            if let Some(job) = job {
                loop {
                    match updates.recv().await {
                        Ok(Change::Environment(changed)) if changed == id.0 => break,
                        Ok(Change::Job(changed)) if Some(changed) == job => break,
                        Ok(_) => continue,
                        // Fell behind: send a fresh snapshot anyway.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
            let detail = queries::get(&state.pool, id).await.ok().flatten();
            let (data, job, done) = match &detail {
                Some(d) => match self::detail(&state, d).await {
                    Ok(view) => (
                        Some(view),
                        d.summary.job_id,
                        d.summary.state().is_finished(),
                    ),
                    Err(_) => (None, None, true),
                },
                None => (None, None, true),
            };
            // `null` once it is gone (or cannot be read), and the stream ends.
            let data = serde_json::to_string(&data).expect("an environment serialises");
            let event = Event::default().event("progress").data(data);
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (state, updates, Some(job), done),
            ))
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
