//! Environments in the browser: the request form (with cost estimate, plan preview and a live
//! name check), the request's page with its timeline and actions, the approvals dashboard with
//! bulk decisions, "my environments", notifications and the platform's webhook. Plain forms and
//! POST-redirect-GET; JavaScript only enhances (live name check, live preview).

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::environments_api::{self, ListQuery, approved_blueprint};
use super::error::AppError;
use super::extract::{
    Allowed, Ctx, DevopsTrigger, FormFields, OnEnvironment, OnPlatform, PlatformEditor,
    PlatformRequester, UsePortal, ViewApprovals,
};
use super::pages::{Shell, render};
use crate::auth::{Action, Role};
use crate::define::blueprint::{EnvironmentType, Lifecycle};
use crate::define::platforms::Platform;
use crate::environments::lifecycle::{self, Decided, Decision};
use crate::environments::notify::{self, Notification, Webhook};
use crate::environments::pricing::{CostLine, Micros};
use crate::environments::queries::{self, ApprovalView, Detail, Summary, TimelineEntry, View};
use crate::environments::request::{self, CheckedRequest, RawRequest};
use crate::environments::{EnvState, EnvironmentError, EnvironmentId};
use crate::jobs::queue::StepView;
use crate::provision::plan::PlanStep;
use crate::validation::FieldErrors;

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn unprocessable(html: Html<String>) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, html).into_response()
}

/// "3 d 4 h", "2 h 5 min", "4 min": how long, for ages and countdowns.
pub fn human_duration(d: chrono::Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, (minutes / 60) % 24, minutes % 60);
    if days > 0 {
        format!("{days} d {hours} h")
    } else if hours > 0 {
        format!("{hours} h {mins} min")
    } else {
        format!("{mins} min")
    }
}

// ---------------------------------------------------------------------------------------------
// The request form

/// The values of the form, as typed.
#[derive(Debug, Clone, Default)]
pub struct RequestForm {
    pub environment_type: String,
    pub name: String,
    pub purpose: String,
    pub ttl_hours: String,
    pub instance_type: String,
    pub min_nodes: String,
    pub max_nodes: String,
    pub data_services: Vec<String>,
}

impl RequestForm {
    /// A fresh form for `ty`: the type's defaults.
    fn defaults(ty: &EnvironmentType) -> RequestForm {
        RequestForm {
            environment_type: ty.name.clone(),
            ttl_hours: ty
                .ttl
                .as_ref()
                .map(|t| t.default_hours.to_string())
                .unwrap_or_default(),
            instance_type: ty.node_group.instance_types[0].clone(),
            min_nodes: ty.node_group.min_size.to_string(),
            max_nodes: ty.node_group.max_size.to_string(),
            data_services: ty.data_services.clone(),
            ..RequestForm::default()
        }
    }

    fn from_fields(form: &FormFields) -> RequestForm {
        RequestForm {
            environment_type: form.get("environment_type").to_owned(),
            name: form.get("name").trim().to_owned(),
            purpose: form.get("purpose").to_owned(),
            ttl_hours: form.get("ttl_hours").to_owned(),
            instance_type: form.get("parameters.instance_type").to_owned(),
            min_nodes: form.get("parameters.min_nodes").to_owned(),
            max_nodes: form.get("parameters.max_nodes").to_owned(),
            data_services: form
                .all("parameters.data_services")
                .map(str::to_owned)
                .collect(),
        }
    }

    fn raw(&self) -> RawRequest {
        let given = |s: &str| Some(s.to_owned()).filter(|s| !s.trim().is_empty());
        RawRequest {
            environment_type: self.environment_type.clone(),
            name: self.name.clone(),
            purpose: self.purpose.clone(),
            ttl_hours: given(&self.ttl_hours),
            instance_type: given(&self.instance_type),
            min_nodes: given(&self.min_nodes),
            max_nodes: given(&self.max_nodes),
            // The form always lists the checkboxes: none ticked means none wanted.
            data_services: Some(self.data_services.clone()),
        }
    }
}

/// What the requester sees before submitting.
pub struct Preview {
    pub hourly: String,
    pub monthly: String,
    pub max_monthly: String,
    pub ttl_total: Option<String>,
    pub lines: Vec<CostLine>,
    pub plan: Vec<PlanStep>,
    pub auto_approved: bool,
    pub approvals_required: u32,
}

impl Preview {
    fn of(c: &CheckedRequest) -> Preview {
        Preview {
            hourly: c.estimate.hourly.display(),
            monthly: c.estimate.monthly().display(),
            max_monthly: c.estimate.max_monthly().display(),
            ttl_total: c.ttl_hours.map(|h| c.estimate.over_hours(h).display()),
            lines: c.estimate.lines.clone(),
            plan: c.plan.clone(),
            auto_approved: c.auto_approved(),
            approvals_required: c.environment_type.approval.approvals_required,
        }
    }
}

#[derive(Template)]
#[template(path = "environment_new.html")]
pub struct RequestPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub types: Vec<EnvironmentType>,
    pub chosen: Option<EnvironmentType>,
    pub form: RequestForm,
    pub errors: FieldErrors,
    pub preview: Option<Preview>,
    pub blueprint_number: Option<i32>,
}

impl RequestPage {
    fn wants(&self, service: &str) -> bool {
        self.form.data_services.iter().any(|s| s == service)
    }

    fn ephemeral(&self) -> bool {
        self.chosen
            .as_ref()
            .is_some_and(|t| t.lifecycle == Lifecycle::Ephemeral)
    }
}

#[derive(Deserialize)]
pub struct TypeQuery {
    #[serde(rename = "type")]
    environment_type: Option<String>,
}

/// A preview for a form that may still lack a name or purpose: those are filled in for the
/// estimate, which depends on neither.
async fn preview(
    state: &AppState,
    on: &OnPlatform<PlatformRequester>,
    approved: &crate::define::revisions::Revision,
    form: &RequestForm,
) -> Result<Option<Preview>, AppError> {
    let mut raw = form.raw();
    if raw.name.trim().is_empty() || !crate::define::blueprint::is_dns_label(raw.name.trim()) {
        raw.name = "new-environment".into();
    }
    if raw.purpose.trim().is_empty() {
        raw.purpose = "preview".into();
    }
    match request::check(
        &state.pool,
        on.platform(),
        approved,
        &on.principal,
        &raw,
        &state.config.account_email_domain,
    )
    .await
    {
        Ok(c) => Ok(Some(Preview::of(&c))),
        Err(EnvironmentError::Invalid(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn request_view(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<PlatformRequester>,
    form: Option<RequestForm>,
    chosen_type: Option<&str>,
    errors: FieldErrors,
) -> Result<RequestPage, AppError> {
    let approved = crate::define::revisions::approved(&state.pool, on.platform().id).await?;
    let types: Vec<EnvironmentType> = approved
        .as_ref()
        .map(|r| {
            request::requestable(&r.document, &on.principal)
                .into_iter()
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let chosen = chosen_type.and_then(|name| types.iter().find(|t| t.name == name).cloned());
    let form = match (form, &chosen) {
        (Some(form), _) => form,
        (None, Some(ty)) => RequestForm::defaults(ty),
        (None, None) => RequestForm::default(),
    };
    let preview = match (&approved, &chosen) {
        (Some(approved), Some(_)) => preview(state, on, approved, &form).await?,
        _ => None,
    };
    Ok(RequestPage {
        shell: ctx.shell(state, "platforms", "Request an environment"),
        platform: on.platform().clone(),
        tab: "environments",
        can_plan: on.can(Action::ViewPlanning),
        blueprint_number: approved.map(|r| r.number),
        types,
        chosen,
        form,
        errors,
        preview,
    })
}

pub async fn request_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformRequester>,
    Query(query): Query<TypeQuery>,
) -> Result<Html<String>, AppError> {
    let chosen = query.environment_type.filter(|t| !t.is_empty());
    render(
        &request_view(
            &state,
            &ctx,
            &on,
            None,
            chosen.as_deref(),
            FieldErrors::default(),
        )
        .await?,
    )
}

/// Submits the request, or (`intent=preview`) re-renders the form with the estimate and plan of
/// what was typed. Invalid input re-renders the form with each error beside its field.
pub async fn request_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformRequester>,
    fields: FormFields,
) -> Result<Response, AppError> {
    let form = RequestForm::from_fields(&fields);
    let chosen = form.environment_type.clone();
    if fields.get("intent") == "preview" {
        return Ok(render(
            &request_view(
                &state,
                &ctx,
                &on,
                Some(form),
                Some(&chosen),
                FieldErrors::default(),
            )
            .await?,
        )?
        .into_response());
    }
    let approved = approved_blueprint(&state, on.platform()).await?;
    let checked = request::check(
        &state.pool,
        on.platform(),
        &approved,
        &on.principal,
        &form.raw(),
        &state.config.account_email_domain,
    )
    .await;
    let outcome = match checked {
        Ok(checked) => {
            lifecycle::submit(
                &state.pool,
                on.platform(),
                &on.principal,
                &checked,
                state.clock.now(),
                &state.public_url,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok((id, _)) => Ok(see_other(&format!("/environments/{id}"))),
        Err(EnvironmentError::Invalid(errors)) => Ok(unprocessable(render(
            &request_view(&state, &ctx, &on, Some(form), Some(&chosen), errors).await?,
        )?)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct NameQuery {
    name: Option<String>,
}

/// The live name check of the form: `{available, message}`.
pub async fn check_name(
    State(state): State<AppState>,
    on: OnPlatform<PlatformRequester>,
    Query(query): Query<NameQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let name = query.name.unwrap_or_default();
    let name = name.trim();
    let verdict = if name.is_empty() {
        Err("Enter a name, e.g. checkout-perf.".to_owned())
    } else {
        request::name_available(&state.pool, on.platform(), name).await?
    };
    Ok(Json(match verdict {
        Ok(()) => json!({ "available": true, "message": format!("`{name}` is available.") }),
        Err(message) => json!({ "available": false, "message": message }),
    }))
}

// ---------------------------------------------------------------------------------------------
// One environment

#[derive(Template)]
#[template(path = "environment.html")]
pub struct EnvironmentPage {
    pub shell: Shell,
    pub env: Detail,
    pub approvals: Vec<ApprovalView>,
    pub timeline: Vec<TimelineEntry>,
    pub steps: Vec<StepView>,
    pub can_decide: bool,
    pub can_cancel: bool,
    pub can_change: bool,
    pub can_view_jobs: bool,
    /// The requester's other environments, for the platform team deciding.
    pub others: Vec<Summary>,
    pub errors: FieldErrors,
    pub reason: String,
    pub ttl: String,
    pub now: DateTime<Utc>,
}

impl EnvironmentPage {
    fn state(&self) -> EnvState {
        self.env.summary.state()
    }

    /// The hand-over facts recorded by provisioning, as (label, value) lines.
    fn outputs(&self) -> Vec<(&'static str, String)> {
        let o = &self.env.outputs;
        let text = |key: &str| o[key].as_str().map(str::to_owned);
        let list = |key: &str| {
            o[key].as_array().map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
        };
        let mut lines = vec![];
        let mut push = |label, value: Option<String>| {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                lines.push((label, v));
            }
        };
        push("Cloud", text("cloud"));
        push(
            "Account",
            text("account_id").map(|id| match text("account_name") {
                Some(name) => format!("{id} ({name})"),
                None => id,
            }),
        );
        push("Region", text("region"));
        push("Cluster", text("cluster_name"));
        push("API endpoint", text("cluster_endpoint"));
        push("Namespaces", list("namespaces"));
        if let Some(services) = o["data_service_endpoints"].as_object() {
            for (name, endpoint) in services {
                lines.push((
                    "Data service",
                    format!("{name}: {}", endpoint.as_str().unwrap_or("")),
                ));
            }
        }
        lines
    }

    fn kubeconfig(&self) -> Option<&str> {
        self.env.outputs["kubeconfig"].as_str()
    }

    fn plan_yaml(&self) -> String {
        crate::provision::plan::to_yaml(&self.env.plan)
    }

    fn awaiting(&self) -> bool {
        self.env.summary.awaiting_since.is_some()
    }

    fn ephemeral(&self) -> bool {
        self.env.summary.lifecycle == "ephemeral"
    }

    fn extendable(&self) -> bool {
        self.ephemeral()
            && self.env.summary.extension_hours.is_none()
            && matches!(
                self.state(),
                EnvState::Submitted | EnvState::Approved | EnvState::Provisioning | EnvState::Ready
            )
    }

    fn age(&self) -> String {
        human_duration(
            self.now
                - self
                    .env
                    .summary
                    .awaiting_since
                    .unwrap_or(self.env.summary.created_at),
        )
    }

    fn sla_breached(&self) -> bool {
        self.env.summary.sla_breached(self.now)
    }

    fn countdown(&self) -> Option<String> {
        self.env
            .summary
            .expires_at
            .map(|at| human_duration(at - self.now))
    }

    fn hourly(&self) -> String {
        Micros(self.env.summary.cost_hourly_micros).display()
    }
}

async fn environment_view(
    state: &AppState,
    ctx: &Ctx,
    on: &OnEnvironment,
    errors: FieldErrors,
    reason: String,
    ttl: String,
) -> Result<EnvironmentPage, AppError> {
    let id = on.id();
    let steps = match on.environment.summary.job_id {
        Some(job) => crate::jobs::queue::get(&state.pool, job)
            .await?
            .map(|(_, steps)| steps)
            .unwrap_or_default(),
        None => vec![],
    };
    let principal = &on.principal;
    let team = principal.has(Role::PlatformEngineer) || principal.has(Role::Admin);
    let others = if team {
        let filter = queries::Filter {
            requested_by: Some(on.environment.summary.requested_by),
            ..queries::Filter::default()
        };
        queries::list(&state.pool, &filter, None, 11)
            .await?
            .into_iter()
            .filter(|e| e.id != id.0)
            .take(10)
            .collect()
    } else {
        vec![]
    };
    Ok(EnvironmentPage {
        others,
        shell: ctx.shell(state, "environments", &on.environment.summary.name),
        approvals: queries::approvals(&state.pool, id).await?,
        timeline: queries::timeline(&state.pool, id).await?,
        steps,
        can_decide: on.can(Action::DecideEnvironment)
            && on.environment.summary.awaiting_since.is_some()
            && lifecycle::holds_any(principal, &on.environment.approver_roles),
        can_cancel: on.can(Action::CancelRequest)
            && on.environment.summary.state() == EnvState::Submitted,
        can_change: on.can(Action::ChangeEnvironment),
        can_view_jobs: team,
        env: on.environment.clone(),
        errors,
        reason,
        ttl,
        now: state.clock.now(),
    })
}

pub async fn environment_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Html<String>, AppError> {
    render(
        &environment_view(
            &state,
            &ctx,
            &on,
            FieldErrors::default(),
            String::new(),
            String::new(),
        )
        .await?,
    )
}

/// After an action: back to the page, or the page again with the error beside its field.
async fn after_action(
    state: &AppState,
    ctx: &Ctx,
    on: &OnEnvironment,
    result: Result<(), AppError>,
    reason: String,
    ttl: String,
) -> Result<Response, AppError> {
    match result {
        Ok(()) => Ok(see_other(&format!("/environments/{}", on.id()))),
        Err(AppError::Validation(errors)) => Ok(unprocessable(render(
            &environment_view(state, ctx, on, FieldErrors(errors), reason, ttl).await?,
        )?)),
        Err(e) => Err(e),
    }
}

pub async fn approve(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
    form: FormFields,
) -> Result<Response, AppError> {
    let result = environments_api::decide(&state, &on, Decision::Approve, form.get("comment"))
        .await
        .map(|_| ());
    after_action(&state, &ctx, &on, result, String::new(), String::new()).await
}

pub async fn reject(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
    form: FormFields,
) -> Result<Response, AppError> {
    let reason = form.get("reason").to_owned();
    let result = environments_api::decide(&state, &on, Decision::Reject, &reason)
        .await
        .map(|_| ());
    after_action(&state, &ctx, &on, result, reason, String::new()).await
}

pub async fn cancel(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Response, AppError> {
    let result = environments_api::cancel_request(&state, &on).await;
    after_action(&state, &ctx, &on, result, String::new(), String::new()).await
}

pub async fn extend(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
    form: FormFields,
) -> Result<Response, AppError> {
    let ttl = form.get("ttl_hours").to_owned();
    let result = environments_api::extend_ttl(&state, &on, &ttl)
        .await
        .map(|_| ());
    after_action(&state, &ctx, &on, result, String::new(), ttl).await
}

pub async fn teardown(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Response, AppError> {
    let result = environments_api::start_teardown(&state, &on).await;
    after_action(&state, &ctx, &on, result, String::new(), String::new()).await
}

/// "Retry from the failed step" on a failed environment.
pub async fn retry(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Response, AppError> {
    let result = environments_api::retry_failed(&state, &on).await;
    after_action(&state, &ctx, &on, result, String::new(), String::new()).await
}

/// The platform page's "Create the DevOps environment" button.
pub async fn devops_environment(
    State(state): State<AppState>,
    on: OnPlatform<DevopsTrigger>,
) -> Result<Response, AppError> {
    let id = environments_api::start_devops(&state, &on).await?;
    Ok(Redirect::to(&format!("/environments/{id}")).into_response())
}

// ---------------------------------------------------------------------------------------------
// The approvals dashboard and "my environments"

#[derive(Template)]
#[template(path = "approvals.html")]
pub struct ApprovalsPage {
    pub shell: Shell,
    pub tab: &'static str,
    pub rows: Vec<Summary>,
    pub next: Option<String>,
    pub query: FilterForm,
    pub states: [EnvState; 10],
    pub results: Vec<(String, String)>,
    pub errors: FieldErrors,
    pub now: DateTime<Utc>,
}

impl ApprovalsPage {
    fn age(&self, row: &Summary) -> String {
        human_duration(self.now - row.awaiting_since.unwrap_or(row.created_at))
    }

    fn breached(&self, row: &Summary) -> bool {
        row.sla_breached(self.now)
    }
}

/// The dashboard's filters as typed, kept in the form and in the paging links.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FilterForm {
    #[serde(default)]
    pub platform: String,
    #[serde(default, rename = "type")]
    pub environment_type: String,
    #[serde(default)]
    pub requester: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub after: String,
    #[serde(default)]
    pub tab: String,
}

impl FilterForm {
    /// The query string of these filters (without the cursor), for links.
    pub fn query_string(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("tab", &self.tab)
            .append_pair("platform", &self.platform)
            .append_pair("type", &self.environment_type)
            .append_pair("requester", &self.requester)
            .append_pair("state", &self.state)
            .append_pair("q", &self.q)
            .finish()
    }

    fn list_query(&self, view: View) -> ListQuery {
        ListQuery {
            view: Some(view.as_str().to_owned()),
            state: Some(self.state.clone()),
            platform: Some(self.platform.clone()),
            environment_type: Some(self.environment_type.clone()),
            requester: Some(self.requester.clone()),
            q: Some(self.q.clone()),
            ..ListQuery::default()
        }
    }
}

const DASHBOARD_PAGE: i64 = 50;

async fn approvals_view(
    state: &AppState,
    ctx: &Ctx,
    principal: &crate::auth::Principal,
    mut query: FilterForm,
    results: Vec<(String, String)>,
) -> Result<Response, AppError> {
    let (tab, view) = match query.tab.as_str() {
        "decided" => ("decided", View::Decided),
        "in_flight" => ("in_flight", View::InFlight),
        _ => ("pending", View::Pending),
    };
    query.tab = tab.to_owned();
    let filter = environments_api::filter(&query.list_query(view), principal);
    let (rows, next, errors) = match filter {
        Ok(filter) => {
            match environments_api::page(state, &filter, Some(&query.after), DASHBOARD_PAGE).await {
                Ok((rows, next)) => (rows, next, FieldErrors::default()),
                Err(AppError::Validation(e)) => (vec![], None, FieldErrors(e)),
                Err(e) => return Err(e),
            }
        }
        Err(AppError::Validation(e)) => (vec![], None, FieldErrors(e)),
        Err(e) => return Err(e),
    };
    let page = ApprovalsPage {
        shell: ctx.shell(state, "approvals", "Approvals"),
        tab,
        rows,
        next,
        query,
        states: EnvState::ALL,
        results,
        now: state.clock.now(),
        errors: errors.clone(),
    };
    let html = render(&page)?;
    Ok(if errors.is_empty() {
        html.into_response()
    } else {
        unprocessable(html)
    })
}

pub async fn approvals_page(
    State(state): State<AppState>,
    ctx: Ctx,
    allowed: Allowed<ViewApprovals>,
    Query(query): Query<FilterForm>,
) -> Result<Response, AppError> {
    approvals_view(&state, &ctx, allowed.principal(), query, vec![]).await
}

/// Approves or rejects the selected requests, each checked on its own (policy, self-approval,
/// state); the dashboard shows what happened to each.
pub async fn approvals_bulk(
    State(state): State<AppState>,
    ctx: Ctx,
    allowed: Allowed<ViewApprovals>,
    form: FormFields,
) -> Result<Response, AppError> {
    let principal = allowed.principal();
    let decision = match form.get("decision") {
        "approve" => Decision::Approve,
        "reject" => Decision::Reject,
        _ => {
            return Err(AppError::Validation(vec![crate::validation::FieldError {
                field: "decision".into(),
                message: "Choose approve or reject.".into(),
            }]));
        }
    };
    let reason = form.get("reason").to_owned();
    let mut results = Vec::new();
    let ids: Vec<&str> = form.all("ids").collect();
    if ids.is_empty() {
        results.push(("—".to_owned(), "Select at least one request.".to_owned()));
    }
    for id in ids.into_iter().take(200) {
        let Ok(id) = id.parse::<EnvironmentId>() else {
            results.push((id.to_owned(), "not a request id".to_owned()));
            continue;
        };
        let Some(environment) = queries::get(&state.pool, id).await? else {
            results.push((id.to_string(), "no such request".to_owned()));
            continue;
        };
        let name = format!(
            "{}/{}",
            environment.summary.platform_slug, environment.summary.name
        );
        let on = OnEnvironment::new(&state.pool, principal.clone(), environment).await?;
        let text = match environments_api::decide(&state, &on, decision, &reason).await {
            Ok(Decided::Approved) => "approved".to_owned(),
            Ok(Decided::Rejected) => "rejected".to_owned(),
            Ok(Decided::Counted { have, need }) => format!("approval recorded ({have} of {need})"),
            Err(AppError::Validation(errors)) => errors
                .first()
                .map_or("invalid".to_owned(), |e| e.message.clone()),
            Err(AppError::ForbiddenBecause(why) | AppError::Conflict(why)) => why,
            Err(AppError::Forbidden) => "you may not decide it".to_owned(),
            Err(e) => return Err(e),
        };
        results.push((name, text));
    }
    let query = FilterForm {
        tab: "pending".into(),
        ..FilterForm::default()
    };
    approvals_view(&state, &ctx, principal, query, results).await
}

#[derive(Template)]
#[template(path = "my_environments.html")]
pub struct MyEnvironmentsPage {
    pub shell: Shell,
    pub rows: Vec<Summary>,
    pub next: Option<String>,
    pub now: DateTime<Utc>,
}

impl MyEnvironmentsPage {
    fn countdown(&self, row: &Summary) -> Option<String> {
        row.expires_at.map(|at| human_duration(at - self.now))
    }
}

#[derive(Deserialize)]
pub struct AfterQuery {
    after: Option<String>,
}

pub async fn my_environments(
    State(state): State<AppState>,
    ctx: Ctx,
    allowed: Allowed<UsePortal>,
    Query(query): Query<AfterQuery>,
) -> Result<Html<String>, AppError> {
    let filter = queries::Filter {
        requested_by: Some(allowed.principal().user.id.0),
        ..queries::Filter::default()
    };
    let (rows, next) =
        environments_api::page(&state, &filter, query.after.as_deref(), DASHBOARD_PAGE).await?;
    render(&MyEnvironmentsPage {
        shell: ctx.shell(&state, "environments", "My environments"),
        rows,
        next,
        now: state.clock.now(),
    })
}

// ---------------------------------------------------------------------------------------------
// Notifications

#[derive(Template)]
#[template(path = "notifications.html")]
pub struct NotificationsPage {
    pub shell: Shell,
    pub items: Vec<Notification>,
    pub next: Option<i64>,
}

#[derive(Deserialize)]
pub struct BeforeQuery {
    before: Option<i64>,
}

pub async fn notifications_page(
    State(state): State<AppState>,
    ctx: Ctx,
    allowed: Allowed<UsePortal>,
    Query(query): Query<BeforeQuery>,
) -> Result<Html<String>, AppError> {
    let mut items = notify::inbox(
        &state.pool,
        allowed.principal().user.id.0,
        query.before,
        DASHBOARD_PAGE + 1,
    )
    .await?;
    let next = (items.len() as i64 > DASHBOARD_PAGE).then(|| {
        items.truncate(DASHBOARD_PAGE as usize);
        items.last().map(|n| n.id).unwrap_or_default()
    });
    render(&NotificationsPage {
        shell: ctx.shell(&state, "notifications", "Notifications"),
        items,
        next,
    })
}

pub async fn notifications_read(
    State(state): State<AppState>,
    allowed: Allowed<UsePortal>,
) -> Result<Response, AppError> {
    notify::mark_all_read(&state.pool, allowed.principal().user.id.0).await?;
    Ok(see_other("/notifications"))
}

// ---------------------------------------------------------------------------------------------
// The platform's webhook

#[derive(Template)]
#[template(path = "webhook.html")]
pub struct WebhookPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub webhook: Option<Webhook>,
    /// Shown once, right after it was made.
    pub secret: Option<String>,
    pub url: String,
    pub error: Option<String>,
}

async fn webhook_view(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<PlatformEditor>,
    secret: Option<String>,
    url: Option<String>,
    error: Option<String>,
) -> Result<WebhookPage, AppError> {
    let webhook = notify::webhook(&state.pool, on.platform().id).await?;
    Ok(WebhookPage {
        shell: ctx.shell(state, "platforms", "Webhook"),
        platform: on.platform().clone(),
        tab: "webhook",
        can_plan: on.can(Action::ViewPlanning),
        url: url.unwrap_or_else(|| webhook.as_ref().map(|w| w.url.clone()).unwrap_or_default()),
        webhook,
        secret,
        error,
    })
}

pub async fn webhook_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
) -> Result<Html<String>, AppError> {
    render(&webhook_view(&state, &ctx, &on, None, None, None).await?)
}

pub async fn webhook_save(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
    form: FormFields,
) -> Result<Response, AppError> {
    let url = form.get("url").trim().to_owned();
    if let Err(message) =
        notify::check_webhook_url(&url, &state.config.webhook_allowed_ranges).await
    {
        return Ok(unprocessable(render(
            &webhook_view(&state, &ctx, &on, None, Some(url), Some(message)).await?,
        )?));
    }
    let secret = notify::set_webhook(
        &state.pool,
        on.platform().id,
        &url,
        form.get("rotate") == "1",
        &on.principal,
    )
    .await?;
    // The page that shows a new secret is the answer to this POST: it is shown once, never
    // stored anywhere the browser could load again.
    Ok(render(&webhook_view(&state, &ctx, &on, secret, None, None).await?)?.into_response())
}

pub async fn webhook_delete(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
) -> Result<Response, AppError> {
    notify::delete_webhook(&state.pool, on.platform().id, &on.principal).await?;
    Ok(see_other(&format!(
        "/platforms/{}/webhook",
        on.platform().slug
    )))
}
