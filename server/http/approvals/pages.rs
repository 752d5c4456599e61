//! The approvals dashboard (with bulk decisions) and "my environments".

use crate::http::views::{human_duration, unprocessable};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Action;
use crate::environments::lifecycle::{Decided, Decision};
use crate::environments::queries::{self, Summary, View};
use crate::environments::{EnvState, EnvironmentId};
use crate::http::environments::api::{self, ListQuery};
use crate::http::error::AppError;
use crate::http::extract::{Allowed, Ctx, FormFields, OnEnvironment, UsePortal, ViewApprovals};
use crate::http::views::{Shell, render};
use crate::validation::FieldErrors;

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

pub const DASHBOARD_PAGE: i64 = 50;

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
    let filter = api::filter(&query.list_query(view), principal);
    let (rows, next, errors) = match filter {
        Ok(filter) => match api::page(state, &filter, Some(&query.after), DASHBOARD_PAGE).await {
            Ok((rows, next)) => (rows, next, FieldErrors::default()),
            Err(AppError::Validation(e)) => (vec![], None, FieldErrors(e)),
            Err(e) => return Err(e),
        },
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
        let Some(on) = OnEnvironment::load(&state, principal.clone(), id).await? else {
            results.push((id.to_string(), "no such request".to_owned()));
            continue;
        };
        let name = format!(
            "{}/{}",
            on.environment.summary.platform_slug, on.environment.summary.name
        );
        let decided = match on.authorize(Action::DecideEnvironment) {
            Ok(()) => state
                .environments()
                .decide(id, principal, decision, &reason)
                .await
                .map_err(AppError::from),
            Err(refused) => Err(refused),
        };
        let text = match decided {
            Ok(Decided::Approved) => "approved".to_owned(),
            Ok(Decided::Rejected) => "rejected".to_owned(),
            Ok(Decided::Counted { have, need }) => format!("approval recorded ({have} of {need})"),
            Err(AppError::Validation(errors)) => errors
                .first()
                .map_or("invalid".to_owned(), |e| e.message.clone()),
            Err(AppError::ForbiddenBecause(why) | AppError::Conflict(why)) => why,
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
        visible_to: Some(allowed.principal().user.id.0),
        ..queries::Filter::default()
    };
    let (rows, next) = api::page(&state, &filter, query.after.as_deref(), DASHBOARD_PAGE).await?;
    render(&MyEnvironmentsPage {
        shell: ctx.shell(&state, "environments", "My environments"),
        rows,
        next,
        now: state.clock.now(),
    })
}

// ---------------------------------------------------------------------------------------------
