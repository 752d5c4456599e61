//! Blueprint revisions, reviews, diffs and exports in the JSON API, and the environment types
//! the approved revision offers.

use crate::http::json::{TypedJson, field_error};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::{Action, Role};
use crate::define::blueprint::{Blueprint, EnvironmentType, Lifecycle};
use crate::define::diff::{Change, diff};
use crate::define::platforms::Platform;
use crate::define::revisions::{self, Revision, RevisionState, Verdict};
use crate::http::error::AppError;
use crate::http::extract::{OnPlatform, PlatformEditor, PlatformPlanner, PlatformViewer};
use crate::http::paging::{Page, PageQuery, page, parse_limit};
use crate::http::views::download;
use crate::maintain::currency::Calendar;

/// A blueprint revision as lists show it, without its document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RevisionSummary {
    pub number: i32,
    pub state: RevisionState,
    pub author: String,
    /// The revision this one was edited from.
    pub base_revision: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
}

impl From<&Revision> for RevisionSummary {
    fn from(r: &Revision) -> Self {
        RevisionSummary {
            number: r.number,
            state: r.state,
            author: r.author.clone(),
            base_revision: r.base_number,
            created_at: r.created_at,
            submitted_at: r.submitted_at,
            approved_at: r.approved_at,
            approved_by: r.approved_by.clone(),
        }
    }
}

/// A blueprint revision with its document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RevisionView {
    #[serde(flatten)]
    pub revision: RevisionSummary,
    /// The blueprint, as `POST …/blueprints` takes it (README: the blueprint format).
    #[schema(value_type = Object)]
    pub document: Blueprint,
    /// Kubernetes versions it pins that are out of EKS standard support today: warnings, the
    /// revision stays valid.
    pub warnings: Vec<crate::validation::FieldError>,
}

impl RevisionView {
    fn new(r: &Revision, calendar: &Calendar, today: chrono::NaiveDate) -> Self {
        RevisionView {
            revision: RevisionSummary::from(r),
            document: r.document.clone(),
            warnings: calendar.blueprint_warnings(&r.document, today),
        }
    }
}

/// What changed from one revision to another.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RevisionDiff {
    pub from: i32,
    pub to: i32,
    pub changes: Vec<Change>,
}

/// An environment type of the approved blueprint, as the request form offers it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnvironmentTypeView {
    pub name: String,
    pub lifecycle: Lifecycle,
    pub default_ttl_hours: Option<u32>,
    pub max_ttl_hours: Option<u32>,
    pub approvals_required: u32,
    pub approvers: Vec<Role>,
    pub sla_hours: u32,
    pub expire_after_hours: u32,
    pub auto_approve_below_monthly_usd: Option<u32>,
    /// What each environment of the type may spend in a month.
    pub budget_month_usd: Option<u32>,
    pub kubernetes_version: String,
    pub instance_types: Vec<String>,
    pub min_nodes: u32,
    pub max_nodes: u32,
    pub data_services: Vec<String>,
    pub requesters: Vec<Role>,
    pub ephemeral: bool,
}

impl From<&EnvironmentType> for EnvironmentTypeView {
    fn from(e: &EnvironmentType) -> Self {
        EnvironmentTypeView {
            name: e.name.clone(),
            lifecycle: e.lifecycle,
            default_ttl_hours: e.ttl.as_ref().map(|t| t.default_hours),
            max_ttl_hours: e.ttl.as_ref().map(|t| t.max_hours),
            approvals_required: e.approval.approvals_required,
            approvers: e.approval.approvers.clone(),
            sla_hours: e.approval.sla_hours,
            expire_after_hours: e.approval.expire_after_hours,
            auto_approve_below_monthly_usd: e.approval.auto_approve_below_monthly_usd,
            budget_month_usd: e.budget_month_usd,
            kubernetes_version: e.kubernetes_version.clone(),
            instance_types: e.node_group.instance_types.clone(),
            min_nodes: e.node_group.min_size,
            max_nodes: e.node_group.max_size,
            data_services: e.data_services.clone(),
            requesters: e.requesters.clone(),
            ephemeral: e.lifecycle == Lifecycle::Ephemeral,
        }
    }
}

/// The environment types the approved revision offers (none without one).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnvironmentTypes {
    pub items: Vec<EnvironmentTypeView>,
    pub blueprint_revision: Option<i32>,
}

/// The body of `POST …/blueprints`: a revision from the built-in template, or an edited
/// document on top of the revision it was edited from.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRevisionBody {
    /// `true`: the built-in template, adapted to the platform's scope.
    #[serde(default)]
    from_template: bool,
    /// The revision `document` was edited from; a newer one saved meanwhile is a 409.
    base_revision: Option<i32>,
    /// The blueprint (README: the blueprint format), checked field by field.
    #[schema(value_type = Option<Object>)]
    document: Option<serde_json::Value>,
}

/// The body of `POST …/blueprints/{n}/reviews`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    verdict: Option<Verdict>,
    comment: Option<String>,
}

/// The revision if the caller may see it: approved and superseded ones for everyone who sees
/// the platform, drafts and revisions in review only for its planners (404 for the others).
pub async fn visible_revision<P>(
    state: &AppState,
    on: &OnPlatform<P>,
    number: i32,
) -> Result<Revision, AppError> {
    let revision = revisions::get(&state.pool, on.platform().id, number)
        .await?
        .ok_or(AppError::NotFound)?;
    let published = matches!(
        revision.state,
        RevisionState::Approved | RevisionState::Superseded
    );
    if published || on.can(Action::ViewPlanning) {
        Ok(revision)
    } else {
        Err(AppError::NotFound)
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/blueprints",
    tag = "blueprints",
    params(("slug" = String, Path, description = "The platform's short name")),
    request_body = NewRevisionBody,
    responses((status = 201, description = "The new revision", body = RevisionView), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn create_revision(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    TypedJson(body): TypedJson<NewRevisionBody>,
) -> Result<Response, AppError> {
    let platform = on.platform();
    let revision = match (body.from_template, body.document) {
        (true, None) if body.base_revision.is_none() => {
            revisions::save_from_template(&state.pool, platform, &on.principal).await?
        }
        (true, _) => {
            return Err(field_error(
                "from_template",
                "Give either `from_template: true` or `base_revision` and `document`, not both.",
            ));
        }
        (false, None) => {
            return Err(field_error(
                "document",
                "Send the blueprint as `document`, or `from_template: true`.",
            ));
        }
        (false, Some(document)) => {
            let document = Blueprint::from_json(document)
                .map_err(|e| AppError::Validation(e.within("document").0))?;
            let base = body.base_revision;
            revisions::save(&state.pool, platform, &on.principal, base, &document).await?
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(RevisionView::new(
            &revision,
            &Calendar::load(&state.pool).await?,
            state.clock.today(),
        )),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/blueprints",
    tag = "blueprints",
    params(("slug" = String, Path, description = "The platform's short name"), ("limit" = Option<String>, Query, description = "Items per page, 1 to 200 (default 50)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses((status = 200, description = "Revisions, without their documents", body = Page<RevisionSummary>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn list_revisions(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<RevisionSummary>>, AppError> {
    let approved_only = !on.can(Action::ViewPlanning);
    let all = revisions::list(&state.pool, on.platform().id, approved_only).await?;
    let limit = parse_limit(query.limit.as_deref())?;
    let (items, next) = page(all, |r| r.number.to_string(), limit, query.after.as_deref())?;
    let items = items.iter().map(RevisionSummary::from).collect();
    Ok(Json(Page { items, next }))
}

#[derive(Deserialize)]
pub struct FormatQuery {
    format: Option<String>,
}

/// One revision as JSON, or exported with `?format=yaml|markdown`.
#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/blueprints/{n}",
    tag = "blueprints",
    params(("slug" = String, Path, description = "The platform's short name"), ("n" = i32, Path, description = "The revision number"), ("format" = Option<String>, Query, description = "`yaml` or `markdown` exports the revision")),
    responses((status = 200, description = "The revision (JSON), or its YAML or Markdown export", body = RevisionView), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn get_revision(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
    Path((_, number)): Path<(String, i32)>,
    Query(query): Query<FormatQuery>,
) -> Result<Response, AppError> {
    let revision = visible_revision(&state, &on, number).await?;
    export(
        on.platform(),
        &revision,
        query.format.as_deref(),
        &Calendar::load(&state.pool).await?,
        state.clock.today(),
    )
}

/// The revision in the requested format: JSON (default), `yaml` or `markdown`.
pub fn export(
    platform: &Platform,
    revision: &Revision,
    format: Option<&str>,
    calendar: &Calendar,
    today: chrono::NaiveDate,
) -> Result<Response, AppError> {
    let file = |ext: &str| format!("{}-blueprint-{}.{ext}", platform.slug, revision.number);
    match format {
        None | Some("json") => {
            Ok(Json(RevisionView::new(revision, calendar, today)).into_response())
        }
        Some("yaml") => Ok(download(
            "application/yaml; charset=utf-8",
            &file("yaml"),
            revision.document.to_yaml(),
        )),
        Some("markdown") => Ok(download(
            "text/markdown; charset=utf-8",
            &file("md"),
            revision
                .document
                .to_markdown(&platform.name, revision.number, revision.state.as_str()),
        )),
        Some(_) => Err(field_error("format", "Use json, yaml or markdown.")),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/blueprints/{n}/submit",
    tag = "blueprints",
    params(("slug" = String, Path, description = "The platform's short name"), ("n" = i32, Path, description = "The revision number")),
    responses((status = 200, description = "The revision, now in review", body = RevisionView), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem))
)]
pub async fn submit_revision(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    Path((_, number)): Path<(String, i32)>,
) -> Result<Json<RevisionView>, AppError> {
    revisions::submit(&state.pool, on.platform(), number, &on.principal).await?;
    let revision = visible_revision(&state, &on, number).await?;
    Ok(Json(RevisionView::new(
        &revision,
        &Calendar::load(&state.pool).await?,
        state.clock.today(),
    )))
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/blueprints/{n}/reviews",
    tag = "blueprints",
    params(("slug" = String, Path, description = "The platform's short name"), ("n" = i32, Path, description = "The revision number")),
    request_body = ReviewBody,
    responses((status = 201, description = "The revision after the review", body = RevisionView), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "Wrong state for the action, or a stale revision", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn review_revision(
    State(state): State<AppState>,
    on: OnPlatform<PlatformPlanner>,
    Path((_, number)): Path<(String, i32)>,
    TypedJson(body): TypedJson<ReviewBody>,
) -> Result<Response, AppError> {
    let revision = visible_revision(&state, &on, number).await?;
    let verdict = body
        .verdict
        .ok_or_else(|| field_error("verdict", "Use approve, request_changes or comment."))?;
    on.authorize(Action::ReviewBlueprint, on.revision_subject(&revision))?;
    revisions::review(
        &state.pool,
        on.platform(),
        number,
        &on.principal,
        verdict,
        body.comment.as_deref().unwrap_or_default(),
    )
    .await?;
    let revision = visible_revision(&state, &on, number).await?;
    Ok((
        StatusCode::CREATED,
        Json(RevisionView::new(
            &revision,
            &Calendar::load(&state.pool).await?,
            state.clock.today(),
        )),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct DiffQuery {
    against: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/blueprints/{n}/diff",
    tag = "blueprints",
    params(("slug" = String, Path, description = "The platform's short name"), ("n" = i32, Path, description = "The revision number"), ("against" = Option<i32>, Query, description = "The revision to compare with (default: the previous one)")),
    responses((status = 200, description = "The changes, path by path", body = RevisionDiff), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn diff_revisions(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
    Path((_, number)): Path<(String, i32)>,
    Query(query): Query<DiffQuery>,
) -> Result<Json<RevisionDiff>, AppError> {
    let against: i32 = query
        .against
        .as_deref()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| {
            field_error(
                "against",
                "Give the revision number to compare with, e.g. ?against=1.",
            )
        })?;
    let new = visible_revision(&state, &on, number).await?;
    let old = visible_revision(&state, &on, against).await?;
    let changes = diff(&old.document.to_json(), &new.document.to_json());
    Ok(Json(RevisionDiff {
        from: against,
        to: number,
        changes,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/environment-types",
    tag = "blueprints",
    params(("slug" = String, Path, description = "The platform's short name")),
    responses((status = 200, description = "The environment types of the approved blueprint", body = EnvironmentTypes), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn environment_types(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
) -> Result<Json<EnvironmentTypes>, AppError> {
    let approved = revisions::approved(&state.pool, on.platform().id).await?;
    let items = approved
        .iter()
        .flat_map(|r| r.document.environment_types.iter())
        .map(EnvironmentTypeView::from)
        .collect();
    Ok(Json(EnvironmentTypes {
        items,
        blueprint_revision: approved.map(|r| r.number),
    }))
}
