//! The job queue for platform engineers: the jobs page and its JSON API (`/api/v1/jobs`), retry
//! and cancel, and the Prometheus metrics.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::audit::Actor;
use crate::environments::queries::{self, JobEnvironment};
use crate::http::error::{AppError, FieldError};
use crate::http::extract::{Allowed, ControlJobs, Ctx, ViewJobs};
use crate::http::flash::{Flash, done};
use crate::http::paging::PAGE_SIZE;
use crate::http::paging::{Page, parse_limit};
use crate::http::views::{Shell, render};
use crate::jobs::queue::{self, ControlError, JobState, JobView, StepView};
use crate::jobs::{control, metrics};

/// A job with its steps (`GET /api/v1/jobs/{id}`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobView,
    pub steps: Vec<StepView>,
}

/// A job put back in the queue.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RetriedJob {
    pub id: i64,
    pub state: JobState,
}

/// A job asked to stop: `cancelled`, or `running` until it stops between steps.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CancelledJob {
    pub id: i64,
    pub state: JobState,
    pub cancel_requested: bool,
}

/// One event of `GET /jobs/{id}/events`: the job and its steps, or `{"job": null}` once it is
/// gone.
#[derive(Serialize)]
struct JobProgress {
    job: Option<JobView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<StepView>>,
}

impl From<ControlError> for AppError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound => AppError::NotFound,
            ControlError::WrongState(state) => {
                AppError::Conflict(format!("The job is {state}, so this is not possible."))
            }
            ControlError::Db(e) => AppError::from(e),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct JobsQuery {
    state: Option<String>,
    kind: Option<String>,
    before: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The `state` filter: one of the job states, or none.
fn state_filter(value: Option<&str>) -> Result<Option<JobState>, AppError> {
    value
        .map(|v| {
            JobState::parse(v).ok_or_else(|| {
                AppError::Validation(vec![FieldError {
                    field: "state".into(),
                    message: "Choose one of available, running, retryable, completed, cancelled or discarded.".into(),
                }])
            })
        })
        .transpose()
}

fn cursor(field: &str, value: Option<&str>) -> Result<Option<i64>, AppError> {
    value
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                AppError::Validation(vec![FieldError {
                    field: field.into(),
                    message: "Use the `next` value of the previous page.".into(),
                }])
            })
        })
        .transpose()
}

fn parse_id(id: &str) -> Result<i64, AppError> {
    id.parse().map_err(|_| AppError::NotFound)
}

#[derive(Template)]
#[template(path = "jobs.html")]
pub struct JobsPage {
    pub shell: Shell,
    pub jobs: Vec<(JobView, Option<JobEnvironment>)>,
    pub depth: queue::Depth,
    pub state: String,
    pub kind: String,
    pub next: Option<i64>,
}

pub async fn jobs_page(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<ViewJobs>,
    Query(query): Query<JobsQuery>,
) -> Result<Html<String>, AppError> {
    let before = cursor("before", non_empty(&query.before))?;
    let mut jobs = queue::list(
        &state.pool,
        state_filter(non_empty(&query.state))?,
        non_empty(&query.kind),
        before,
        PAGE_SIZE + 1,
    )
    .await?;
    let next = (jobs.len() as i64 > PAGE_SIZE).then(|| {
        jobs.truncate(PAGE_SIZE as usize);
        jobs.last().map_or(0, |j| j.id)
    });
    render(&JobsPage {
        shell: ctx.shell(&state, "jobs", "Jobs"),
        jobs: queries::with_environments(&state.pool, jobs).await?,
        depth: queue::depth(&state.pool).await?,
        state: query.state.unwrap_or_default(),
        kind: query.kind.unwrap_or_default(),
        next,
    })
}

#[derive(Template)]
#[template(path = "job.html")]
pub struct JobPage {
    pub shell: Shell,
    pub job: JobView,
    pub environment: Option<JobEnvironment>,
    pub steps: Vec<StepView>,
    pub can_control: bool,
}

pub async fn job_page(
    State(state): State<AppState>,
    ctx: Ctx,
    allowed: Allowed<ViewJobs>,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    let (job, steps) = queue::get(&state.pool, parse_id(&id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    let can_control = crate::auth::can(
        allowed.principal(),
        crate::auth::Action::ControlJobs,
        crate::auth::Subject::Portal,
    );
    let (job, environment) = queries::with_environments(&state.pool, vec![job])
        .await?
        .pop()
        .expect("one job in, one out");
    render(&JobPage {
        shell: ctx.shell(&state, "jobs", &format!("Job {}", job.id)),
        job,
        environment,
        steps,
        can_control,
    })
}

pub async fn job_retry(
    State(state): State<AppState>,
    allowed: Allowed<ControlJobs>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    control::retry(&state.pool, id, &Actor::from(allowed.principal())).await?;
    Ok(done(&format!("/jobs/{id}"), Flash::JobRetried))
}

pub async fn job_cancel(
    State(state): State<AppState>,
    allowed: Allowed<ControlJobs>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    control::cancel(&state.pool, id, &Actor::from(allowed.principal())).await?;
    Ok(done(&format!("/jobs/{id}"), Flash::JobCancelRequested))
}

/// `GET /api/v1/jobs?state=&kind=&limit=&after=`: newest first.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "jobs",
    params(("state" = Option<String>, Query), ("kind" = Option<String>, Query), ("before" = Option<String>, Query, description = "The jobs page's older-page cursor"), ("limit" = Option<String>, Query, description = "Items per page, 1 to 200 (default 50)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses((status = 200, description = "Jobs, newest first", body = Page<JobView>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn api_jobs(
    State(state): State<AppState>,
    _: Allowed<ViewJobs>,
    Query(query): Query<JobsQuery>,
) -> Result<Json<Page<JobView>>, AppError> {
    let limit = parse_limit(query.limit.as_deref())?;
    let after = cursor("after", non_empty(&query.after))?;
    let mut jobs = queue::list(
        &state.pool,
        state_filter(non_empty(&query.state))?,
        non_empty(&query.kind),
        after,
        limit + 1,
    )
    .await?;
    let next = (jobs.len() as i64 > limit).then(|| {
        jobs.truncate(limit as usize);
        jobs.last().map_or(String::new(), |j| j.id.to_string())
    });
    Ok(Json(Page { items: jobs, next }))
}

#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The job with its attempts and steps", body = JobDetail), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn api_job(
    State(state): State<AppState>,
    _: Allowed<ViewJobs>,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, AppError> {
    let (job, steps) = queue::get(&state.pool, parse_id(&id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(JobDetail { job, steps }))
}

#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/retry",
    tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The job, available again", body = RetriedJob), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem))
)]
pub async fn api_retry(
    State(state): State<AppState>,
    allowed: Allowed<ControlJobs>,
    Path(id): Path<String>,
) -> Result<Json<RetriedJob>, AppError> {
    let id = parse_id(&id)?;
    control::retry(&state.pool, id, &Actor::from(allowed.principal())).await?;
    Ok(Json(RetriedJob {
        id,
        state: JobState::Available,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "The job, cancelled (or asked to stop)", body = CancelledJob), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem))
)]
pub async fn api_cancel(
    State(state): State<AppState>,
    allowed: Allowed<ControlJobs>,
    Path(id): Path<String>,
) -> Result<Json<CancelledJob>, AppError> {
    let id = parse_id(&id)?;
    let new_state = control::cancel(&state.pool, id, &Actor::from(allowed.principal())).await?;
    // A running job stops between steps: `running` with `cancel_requested` until it does.
    Ok(Json(CancelledJob {
        id,
        state: new_state,
        cancel_requested: true,
    }))
}

/// `GET /metrics`: Prometheus text format. Unauthenticated, like the probes; it holds counts,
/// never names or payloads.
pub async fn metrics_endpoint(State(state): State<AppState>) -> Result<Response, AppError> {
    let depth = queue::depth(&state.pool).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&depth),
    )
        .into_response())
}

/// `GET /jobs/{id}/events`: Server-Sent Events with the job and its steps, first as they are,
/// then at every change, until the job is finished. The page updates itself from them; without
/// JavaScript a reload shows the same.
pub async fn job_events(
    State(state): State<AppState>,
    _: Allowed<ViewJobs>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::stream;

    let id = parse_id(&id)?;
    queue::get(&state.pool, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let updates = state.progress.subscribe();
    // Subscribed before the first snapshot, so no change between the two is missed.
    let events = stream::unfold(
        (state.pool.clone(), updates, true, false),
        move |(pool, mut updates, first, finished)| async move {
            if finished {
                return None;
            }
            if !first {
                loop {
                    match updates.recv().await {
                        Ok(crate::jobs::progress::Change::Job(changed)) if changed == id => break,
                        Ok(_) => continue,
                        // Fell behind: send a fresh snapshot anyway.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
            let snapshot = queue::get(&pool, id).await.ok().flatten();
            let (data, done) = match snapshot {
                Some((job, steps)) => {
                    let done = job.state.is_finished();
                    let data = JobProgress {
                        job: Some(job),
                        steps: Some(steps),
                    };
                    (data, done)
                }
                None => (
                    JobProgress {
                        job: None,
                        steps: None,
                    },
                    true,
                ),
            };
            let data = serde_json::to_string(&data).expect("a job serialises");
            let event = Event::default().event("progress").data(data);
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (pool, updates, false, done),
            ))
        },
    );
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
