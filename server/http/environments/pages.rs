//! Environments in the browser: the request form (with cost estimate, plan preview and a live
//! name check) and the environment's page with its timeline and actions. Plain forms and
//! POST-redirect-GET; JavaScript only enhances.

use crate::http::flash::{Flash, done};
use crate::http::views::{human_duration, unprocessable};
use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::{Action, Role};
use crate::define::blueprint::{EnvironmentType, Lifecycle};
use crate::define::platforms::Platform;
use crate::environments::lifecycle::{self, Decided, Decision, Extended};
use crate::environments::pricing::{CostLine, Micros};
use crate::environments::queries::{self, ApprovalView, Detail, PlanLine, Summary, TimelineEntry};
use crate::environments::request::{self, CheckedRequest, RawRequest};
use crate::environments::{EnvState, EnvironmentError};
use crate::http::error::AppError;
use crate::http::extract::{
    Ctx, DevopsTrigger, FormFields, OnEnvironment, OnPlatform, PlatformRequester,
};
use crate::http::views::{Shell, render};
use crate::jobs::queue::StepView;
use crate::validation::FieldErrors;

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
    pub plan: Vec<PlanLine>,
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
            plan: c.plan.iter().map(PlanLine::from).collect(),
            auto_approved: c.auto_approved(),
            approvals_required: c.environment_type.approval.approvals_required,
        }
    }

    /// A line's share of the hourly total, in percent, for its bar.
    fn share(&self, line: &CostLine) -> f64 {
        let total: f64 = self.lines.iter().map(|l| l.hourly_usd).sum();
        if total > 0.0 {
            (line.hourly_usd / total * 100.0).clamp(0.0, 100.0)
        } else {
            0.0
        }
    }
}

/// A plan grouped by its steps, in order, for the request preview and the environment's page.
pub fn plan_by_step(plan: &[PlanLine]) -> Vec<(&str, Vec<&PlanLine>)> {
    let mut groups: Vec<(&str, Vec<&PlanLine>)> = Vec::new();
    for line in plan {
        match groups.last_mut() {
            Some((name, lines)) if *name == line.step => lines.push(line),
            _ => groups.push((&line.step, vec![line])),
        }
    }
    groups
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
    if raw.name.trim().is_empty() || !crate::validation::is_dns_label(raw.name.trim()) {
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
    let environments = state.environments();
    let outcome = match environments
        .check_request(on.platform(), &on.principal, &form.raw())
        .await
    {
        Ok(checked) => {
            environments
                .submit(on.platform(), &on.principal, &checked)
                .await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(id) => Ok(done(
            &format!("/environments/{id}"),
            Flash::EnvironmentRequested,
        )),
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

/// What the live name check of the form says.
#[derive(Serialize)]
pub struct NameCheck {
    available: bool,
    message: String,
}

/// The live name check of the form.
pub async fn check_name(
    State(state): State<AppState>,
    on: OnPlatform<PlatformRequester>,
    Query(query): Query<NameQuery>,
) -> Result<Json<NameCheck>, AppError> {
    let name = query.name.unwrap_or_default();
    let name = name.trim();
    let verdict = if name.is_empty() {
        Err("Enter a name, e.g. checkout-perf.".to_owned())
    } else {
        request::name_available(&state.pool, on.platform(), name).await?
    };
    Ok(Json(match verdict {
        Ok(()) => NameCheck {
            available: true,
            message: format!("`{name}` is available."),
        },
        Err(message) => NameCheck {
            available: false,
            message,
        },
    }))
}

// ---------------------------------------------------------------------------------------------
// One environment

#[derive(Template)]
#[template(path = "environment.html")]
pub struct EnvironmentPage {
    pub shell: Shell,
    pub env: Detail,
    pub plan: Vec<PlanLine>,
    pub approvals: Vec<ApprovalView>,
    pub timeline: Vec<TimelineEntry>,
    pub steps: Vec<StepView>,
    pub can_decide: bool,
    pub can_cancel: bool,
    pub can_change: bool,
    /// May check, reconcile and accept its drift (the platform team).
    pub can_maintain: bool,
    /// What it really costs: this month, and each day read.
    pub cost: crate::maintain::cost::CostReport,
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

    fn awaiting(&self) -> bool {
        self.env.summary.awaiting_since.is_some()
    }

    fn ephemeral(&self) -> bool {
        self.env.summary.lifecycle == Lifecycle::Ephemeral
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

    /// How long a step took, or has taken so far.
    fn took(&self, step: &StepView) -> Option<String> {
        let started = step.started_at?;
        let length = step.finished_at.unwrap_or(self.now) - started;
        Some(if length.num_seconds() < 60 {
            format!("{} s", length.num_seconds().max(0))
        } else {
            human_duration(length)
        })
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
        Some(job) => crate::jobs::queue::steps(&state.pool, job).await?,
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
        plan: queries::plan_outline(&state.pool, id).await?,
        approvals: queries::approvals(&state.pool, id).await?,
        timeline: queries::timeline(&state.pool, id).await?,
        steps,
        can_decide: on.can(Action::DecideEnvironment)
            && on.environment.summary.awaiting_since.is_some()
            && lifecycle::holds_any(principal, &on.environment.approver_roles),
        can_cancel: on.can(Action::CancelRequest)
            && on.environment.summary.state() == EnvState::Submitted,
        can_change: on.can(Action::ChangeEnvironment),
        can_maintain: on.can(Action::MaintainEnvironment),
        cost: crate::maintain::cost::report(&state.pool, id, state.clock.today()).await?,
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

/// What the caller typed with an action, shown again beside an error.
#[derive(Default)]
struct Typed {
    reason: String,
    ttl: String,
}

/// Runs a use case on the environment (decide, cancel, extend, teardown, retry) once the policy
/// allows the caller `action` on it; then back to the environment's page, or the page again
/// with the error beside its field. `flash` says what the outcome was.
async fn act<T>(
    state: &AppState,
    ctx: &Ctx,
    on: &OnEnvironment,
    action: Action,
    use_case: impl std::future::Future<Output = Result<T, EnvironmentError>>,
    typed: Typed,
    flash: impl FnOnce(&T) -> Flash,
) -> Result<Response, AppError> {
    let result = match on.authorize(action) {
        Ok(()) => use_case.await.map_err(AppError::from),
        Err(refused) => Err(refused),
    };
    match result {
        Ok(outcome) => Ok(done(&format!("/environments/{}", on.id()), flash(&outcome))),
        Err(AppError::Validation(errors)) => {
            let page =
                environment_view(state, ctx, on, FieldErrors(errors), typed.reason, typed.ttl);
            Ok(unprocessable(render(&page.await?)?))
        }
        Err(e) => Err(e),
    }
}

pub async fn approve(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
    form: FormFields,
) -> Result<Response, AppError> {
    let environments = state.environments();
    let comment = form.get("comment");
    let decision = environments.decide(on.id(), &on.principal, Decision::Approve, comment);
    let action = Action::DecideEnvironment;
    act(
        &state,
        &ctx,
        &on,
        action,
        decision,
        Typed::default(),
        |d| match d {
            Decided::Counted { .. } => Flash::ApprovalCounted,
            _ => Flash::EnvironmentApproved,
        },
    )
    .await
}

pub async fn reject(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
    form: FormFields,
) -> Result<Response, AppError> {
    let reason = form.get("reason").to_owned();
    let environments = state.environments();
    let decision = environments.decide(on.id(), &on.principal, Decision::Reject, &reason);
    let typed = Typed {
        reason: reason.clone(),
        ..Typed::default()
    };
    act(
        &state,
        &ctx,
        &on,
        Action::DecideEnvironment,
        decision,
        typed,
        |_| Flash::EnvironmentRejected,
    )
    .await
}

pub async fn cancel(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Response, AppError> {
    let environments = state.environments();
    let cancel = environments.cancel(on.id(), &on.principal);
    act(
        &state,
        &ctx,
        &on,
        Action::CancelRequest,
        cancel,
        Typed::default(),
        |_| Flash::RequestCancelled,
    )
    .await
}

pub async fn extend(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
    form: FormFields,
) -> Result<Response, AppError> {
    let ttl = form.get("ttl_hours").to_owned();
    let environments = state.environments();
    let extend = environments.extend(on.id(), &on.principal, &ttl);
    let typed = Typed {
        ttl: ttl.clone(),
        ..Typed::default()
    };
    act(
        &state,
        &ctx,
        &on,
        Action::ChangeEnvironment,
        extend,
        typed,
        |x| match x {
            Extended::Done => Flash::TtlExtended,
            Extended::AwaitingApproval => Flash::ExtensionRequested,
        },
    )
    .await
}

pub async fn teardown(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Response, AppError> {
    let environments = state.environments();
    let teardown = environments.teardown(on.id(), &on.principal);
    act(
        &state,
        &ctx,
        &on,
        Action::ChangeEnvironment,
        teardown,
        Typed::default(),
        |_| Flash::TeardownStarted,
    )
    .await
}

/// "Retry from the failed step" on a failed environment.
pub async fn retry(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnEnvironment,
) -> Result<Response, AppError> {
    let environments = state.environments();
    let retry = environments.retry(on.id(), &on.principal);
    act(
        &state,
        &ctx,
        &on,
        Action::ChangeEnvironment,
        retry,
        Typed::default(),
        |_| Flash::RetryStarted,
    )
    .await
}

/// The platform page's "Create the DevOps environment" button.
pub async fn devops_environment(
    State(state): State<AppState>,
    on: OnPlatform<DevopsTrigger>,
) -> Result<Response, AppError> {
    let id = state
        .environments()
        .start_devops(on.platform(), &on.principal)
        .await?;
    Ok(done(&format!("/environments/{id}"), Flash::DevopsStarted))
}

// ---------------------------------------------------------------------------------------------
