//! Environments in the JSON API (`/api/v1/...environments...`), as API.md lays it out: a request
//! is an environment in its first states. The same domain functions as the pages, so the same
//! validation, policy and errors.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::parse_limit;
use super::define_api::JsonBody;
use super::error::{AppError, FieldError};
use super::extract::{Authenticated, DevopsTrigger, OnEnvironment, OnPlatform, PlatformRequester};
use crate::auth::{Action, Principal, Role};
use crate::define::revisions;
use crate::environments::lifecycle::{self, Decided, Decision, Extended};
use crate::environments::queries::{self, Detail, Filter, View};
use crate::environments::request::{self, CheckedRequest, RawRequest};
use crate::environments::{EnvState, notify};

fn invalid(field: &str, message: &str) -> AppError {
    AppError::Validation(vec![FieldError {
        field: field.to_owned(),
        message: message.to_owned(),
    }])
}

/// A JSON value given where text or a number is expected, as the text the checks read.
fn scalar(body: &Value, pointer: &str, field: &str) -> Result<Option<String>, AppError> {
    match body.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(invalid(field, "Give a string or a number.")),
    }
}

/// Reads a request body into the fields the checks take; wrong JSON types are field errors.
pub fn raw_request(body: &Value) -> Result<RawRequest, AppError> {
    if !body.is_object() {
        return Err(invalid("", "Send a JSON object."));
    }
    let text = |field: &str| -> Result<String, AppError> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(invalid(field, "Give a string.")),
        }
    };
    if let Some(p) = body.get("parameters")
        && !p.is_object()
        && !p.is_null()
    {
        return Err(invalid("parameters", "Give an object."));
    }
    let data_services = match body.pointer("/parameters/data_services") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid("parameters.data_services", "Give a list of names."))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => {
            return Err(invalid("parameters.data_services", "Give a list of names."));
        }
    };
    Ok(RawRequest {
        environment_type: text("environment_type")?,
        name: text("name")?,
        purpose: text("purpose")?,
        ttl_hours: scalar(body, "/ttl_hours", "ttl_hours")?,
        instance_type: scalar(
            body,
            "/parameters/instance_type",
            "parameters.instance_type",
        )?,
        min_nodes: scalar(body, "/parameters/min_nodes", "parameters.min_nodes")?,
        max_nodes: scalar(body, "/parameters/max_nodes", "parameters.max_nodes")?,
        data_services,
    })
}

/// The approved blueprint requests are made against, or 409 when there is none.
pub async fn approved_blueprint(
    state: &AppState,
    platform: &crate::define::platforms::Platform,
) -> Result<revisions::Revision, AppError> {
    revisions::approved(&state.pool, platform.id)
        .await?
        .ok_or_else(|| {
            AppError::Conflict(format!(
                "{} has no approved blueprint yet, so it offers no environment types.",
                platform.name
            ))
        })
}

pub fn checked_json(c: &CheckedRequest) -> Value {
    json!({
        "environment_type": c.environment_type.name,
        "name": c.name,
        "ttl_hours": c.ttl_hours,
        "parameters": c.parameters,
        "cost_estimate": c.estimate.to_json(c.ttl_hours),
        "plan": c.plan,
        "auto_approved": c.auto_approved(),
    })
}

/// `POST /api/v1/platforms/{slug}/environments`: a request. `?dry_run=true` checks it and
/// returns the estimate and plan without storing anything.
pub async fn create(
    State(state): State<AppState>,
    on: OnPlatform<PlatformRequester>,
    Query(query): Query<DryRun>,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let raw = raw_request(&body)?;
    let approved = approved_blueprint(&state, on.platform()).await?;
    let checked = request::check(
        &state.pool,
        on.platform(),
        &approved,
        &on.principal,
        &raw,
        &state.config.account_email_domain,
    )
    .await?;
    if query.dry_run.unwrap_or(false) {
        return Ok(Json(checked_json(&checked)).into_response());
    }
    let (id, _) = lifecycle::submit(
        &state.pool,
        on.platform(),
        &on.principal,
        &checked,
        state.clock.now(),
        &state.public_url,
    )
    .await?;
    let detail = detail_json(&state, &load(&state, id).await?).await?;
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
pub async fn detail_json(state: &AppState, d: &Detail) -> Result<Value, AppError> {
    let id = crate::environments::EnvironmentId(d.summary.id);
    let approvals = queries::approvals(&state.pool, id).await?;
    let timeline = queries::timeline(&state.pool, id).await?;
    let job = match d.summary.job_id {
        Some(job_id) => crate::jobs::queue::get(&state.pool, job_id)
            .await?
            .map(|(job, steps)| json!({ "id": job.id, "state": job.state, "kind": job.kind, "steps": steps })),
        None => None,
    };
    let mut value = d.summary.to_json();
    let object = value.as_object_mut().expect("summaries are objects");
    object.insert("purpose".into(), d.purpose.clone().into());
    object.insert("parameters".into(), json!(d.parameters));
    object.insert("plan".into(), json!(d.plan));
    object.insert("outputs".into(), d.outputs.clone());
    object.insert("blueprint_revision".into(), d.blueprint_number.into());
    object.insert("approver_roles".into(), json!(d.approver_roles));
    object.insert("max_ttl_hours".into(), json!(d.max_ttl_hours));
    object.insert("pending_until".into(), json!(d.pending_until));
    object.insert("ready_at".into(), json!(d.ready_at));
    object.insert("approvals".into(), json!(approvals));
    object.insert("timeline".into(), json!(timeline));
    object.insert("job".into(), job.unwrap_or(Value::Null));
    Ok(value)
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

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The filter of a list query. Developers see only their own environments; the platform team
/// sees all.
pub fn filter(query: &ListQuery, principal: &Principal) -> Result<Filter, AppError> {
    let view = match non_empty(&query.view) {
        None => View::All,
        Some(v) => View::parse(&v)
            .ok_or_else(|| invalid("view", "Use pending, decided, in_flight or all."))?,
    };
    let state = match non_empty(&query.state) {
        None => None,
        Some(s) => Some(EnvState::parse(&s).ok_or_else(|| {
            invalid(
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
        requested_by: (!team || query.mine.unwrap_or(false)).then_some(principal.user.id.0),
    })
}

pub fn parse_cursor(
    after: Option<&str>,
) -> Result<Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>, AppError> {
    match after.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(c) => super::admin::decode_cursor(c)
            .map(Some)
            .ok_or_else(|| super::admin::bad_cursor("after")),
    }
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
pub async fn list(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = parse_limit(query.limit.as_deref())?;
    let filter = filter(&query, &principal)?;
    let (rows, next) = page(&state, &filter, query.after.as_deref(), limit).await?;
    let items: Vec<Value> = rows.iter().map(queries::Summary::to_json).collect();
    Ok(Json(json!({ "items": items, "next": next })))
}

pub async fn get(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<Json<Value>, AppError> {
    Ok(Json(detail_json(&state, &on.environment).await?))
}

#[derive(Deserialize)]
pub struct PlanQuery {
    format: Option<String>,
}

/// The dry-run plan, as JSON or (`?format=yaml`) YAML.
pub async fn plan(on: OnEnvironment, Query(query): Query<PlanQuery>) -> Result<Response, AppError> {
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(json!(on.environment.plan)).into_response()),
        Some("yaml") => Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "application/yaml; charset=utf-8",
            )],
            crate::provision::plan::to_yaml(&on.environment.plan),
        )
            .into_response()),
        Some(_) => Err(invalid("format", "Use `json` or `yaml`.")),
    }
}

fn text_field(body: &Value, field: &str) -> Result<String, AppError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(invalid(field, "Give a string.")),
    }
}

async fn decided(
    state: &AppState,
    on: &OnEnvironment,
    outcome: Value,
) -> Result<Json<Value>, AppError> {
    let mut value = detail_json(state, &load(state, on.id()).await?).await?;
    value
        .as_object_mut()
        .expect("details are objects")
        .insert("outcome".into(), outcome);
    Ok(Json(value))
}

fn outcome_json(d: &Decided) -> Value {
    match d {
        Decided::Approved => json!({ "decision": "approved" }),
        Decided::Rejected => json!({ "decision": "rejected" }),
        Decided::Counted { have, need } => {
            json!({ "decision": "counted", "approvals": have, "required": need })
        }
    }
}

/// Approve or reject, for the API and the bulk action of the dashboard.
pub async fn decide(
    state: &AppState,
    on: &OnEnvironment,
    decision: Decision,
    comment: &str,
) -> Result<Decided, AppError> {
    if !on.can(Action::DecideEnvironment) {
        let summary = &on.environment.summary;
        return Err(AppError::ForbiddenBecause(
            if summary.requested_by == on.principal.user.id.0 {
                "You requested this environment: someone else must decide it.".to_owned()
            } else {
                format!(
                    "Only members of platform {} can approve or reject its environment \
                     requests; ask one of them to add you.",
                    summary.platform_slug
                )
            },
        ));
    }
    Ok(lifecycle::decide(
        &state.pool,
        on.id(),
        &on.principal,
        decision,
        comment,
        state.clock.now(),
        &state.public_url,
    )
    .await?)
}

pub async fn approve(
    State(state): State<AppState>,
    on: OnEnvironment,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AppError> {
    // The body is optional here: approving needs no words.
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| invalid("", &format!("The body is not valid JSON: {e}.")))?
    };
    let comment = text_field(&body, "comment")?;
    let outcome = decide(&state, &on, Decision::Approve, &comment).await?;
    decided(&state, &on, outcome_json(&outcome)).await
}

pub async fn reject(
    State(state): State<AppState>,
    on: OnEnvironment,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, AppError> {
    let reason = text_field(&body, "reason")?;
    let outcome = decide(&state, &on, Decision::Reject, &reason).await?;
    decided(&state, &on, outcome_json(&outcome)).await
}

/// Cancels on the requester's request, for the API and the page.
pub async fn cancel_request(state: &AppState, on: &OnEnvironment) -> Result<(), AppError> {
    on.authorize(Action::CancelRequest).map_err(|_| {
        AppError::ForbiddenBecause("Only the requester can cancel a request.".into())
    })?;
    lifecycle::cancel(
        &state.pool,
        on.id(),
        &on.principal,
        state.clock.now(),
        &state.public_url,
    )
    .await?;
    Ok(())
}

pub async fn cancel(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<Json<Value>, AppError> {
    cancel_request(&state, &on).await?;
    decided(&state, &on, json!({ "decision": "cancelled" })).await
}

pub async fn extend(
    State(state): State<AppState>,
    on: OnEnvironment,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, AppError> {
    let ttl = scalar(&body, "/ttl_hours", "ttl_hours")?.unwrap_or_default();
    let outcome = extend_ttl(&state, &on, &ttl).await?;
    let outcome = match outcome {
        Extended::Done => json!({ "extension": "done" }),
        Extended::AwaitingApproval => json!({ "extension": "awaiting_approval" }),
    };
    decided(&state, &on, outcome).await
}

/// Extends the TTL on the caller's request, for the API and the page.
pub async fn extend_ttl(
    state: &AppState,
    on: &OnEnvironment,
    ttl_hours: &str,
) -> Result<Extended, AppError> {
    on.authorize(Action::ChangeEnvironment)?;
    Ok(lifecycle::extend(
        &state.pool,
        on.id(),
        &on.principal,
        ttl_hours,
        state.clock.now(),
        &state.public_url,
    )
    .await?)
}

/// Tears down on the caller's request, for the API and the page.
pub async fn start_teardown(state: &AppState, on: &OnEnvironment) -> Result<(), AppError> {
    on.authorize(Action::ChangeEnvironment)?;
    lifecycle::teardown(
        &state.pool,
        on.id(),
        &crate::audit::Actor::from(&on.principal),
        &format!("requested by {}", on.principal.user.name),
        &state.public_url,
    )
    .await?;
    Ok(())
}

pub async fn teardown(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<Json<Value>, AppError> {
    start_teardown(&state, &on).await?;
    decided(&state, &on, json!({ "teardown": "started" })).await
}

/// Retries a failed environment's job from its failed step (for the API and the page).
pub async fn retry_failed(state: &AppState, on: &OnEnvironment) -> Result<(), AppError> {
    on.authorize(Action::ChangeEnvironment)?;
    lifecycle::retry(
        &state.pool,
        on.id(),
        &crate::audit::Actor::from(&on.principal),
    )
    .await?;
    Ok(())
}

pub async fn retry(
    State(state): State<AppState>,
    on: OnEnvironment,
) -> Result<Json<Value>, AppError> {
    retry_failed(&state, &on).await?;
    decided(&state, &on, json!({ "retry": "started" })).await
}

/// Starts the platform's DevOps environment from its approved blueprint (API and page).
pub async fn start_devops(
    state: &AppState,
    on: &OnPlatform<DevopsTrigger>,
) -> Result<crate::environments::EnvironmentId, AppError> {
    let approved = approved_blueprint(state, on.platform()).await?;
    let (parameters, plan) = crate::provision::plan::build_devops(
        &on.platform().slug,
        &approved.document,
        &state.config.account_email_domain,
    );
    let devops = lifecycle::DevopsRequest {
        blueprint_number: approved.number,
        parameters,
        plan,
    };
    Ok(lifecycle::create_devops(
        &state.pool,
        on.platform(),
        &on.principal,
        &devops,
        state.clock.now(),
        &state.public_url,
    )
    .await?)
}

/// `POST /api/v1/platforms/{slug}/devops-environment`: the manual trigger.
pub async fn devops_environment(
    State(state): State<AppState>,
    on: OnPlatform<DevopsTrigger>,
) -> Result<Response, AppError> {
    let id = start_devops(&state, &on).await?;
    let detail = detail_json(&state, &load(&state, id).await?).await?;
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}

/// `GET /api/v1/notifications`: the caller's newest notifications and the unread count.
pub async fn notifications(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = parse_limit(query.limit.as_deref())?;
    let before = match non_empty(&query.after) {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| super::admin::bad_cursor("after"))?,
        ),
    };
    let user = principal.user.id.0;
    let mut items = notify::inbox(&state.pool, user, before, limit + 1).await?;
    let next = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        items.last().map(|n| n.id.to_string()).unwrap_or_default()
    });
    let unread = notify::unread_count(&state.pool, user).await?;
    Ok(Json(
        json!({ "items": items, "next": next, "unread": unread }),
    ))
}

pub async fn notifications_read(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Value>, AppError> {
    let marked = notify::mark_all_read(&state.pool, principal.user.id.0).await?;
    Ok(Json(json!({ "marked_read": marked })))
}

/// `GET /api/v1/environments/{id}/events`: Server-Sent Events (`progress`) with the environment
/// as `GET /api/v1/environments/{id}` returns it, first as it is, then at every change of it or
/// of its job's steps, until it is finished (rejected, cancelled, expired or torn down). The
/// request page follows it; without JavaScript a reload shows the same.
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
                Some(d) => match detail_json(&state, d).await {
                    Ok(value) => (value, d.summary.job_id, d.summary.state().is_finished()),
                    Err(_) => (Value::Null, None, true),
                },
                None => (Value::Null, None, true),
            };
            let event = Event::default().event("progress").data(data.to_string());
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
