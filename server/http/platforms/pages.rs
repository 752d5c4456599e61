//! Platforms, their members and their technical scope in the browser.

use crate::http::flash::{Flash, done};
use crate::http::views::unprocessable;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Action, Subject, UserId};
use crate::define::DefineError;
use crate::define::platforms::{self, Member, NewPlatform, Platform};
use crate::define::revisions::{self, Revision};
use crate::define::scope::{self, Complexity, ConnectedService, Scope, Timebox};
use crate::http::error::AppError;
use crate::http::extract::{
    Allowed, CreatePlatform, Ctx, FormFields, OnPlatform, PlatformEditor, PlatformPlanner,
    PlatformViewer, UsePortal,
};
use crate::http::views::{Shell, render};
use crate::validation::FieldErrors;

#[derive(Template)]
#[template(path = "platforms.html")]
pub struct PlatformsPage {
    pub shell: Shell,
    pub platforms: Vec<Platform>,
    /// Archived platforms are listed too.
    pub archived: bool,
    pub can_create: bool,
    pub form: NewPlatformForm,
    pub errors: FieldErrors,
}

#[derive(Default)]
pub struct NewPlatformForm {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub owner_team: String,
}

async fn platforms_view(
    state: &AppState,
    ctx: &Ctx,
    form: NewPlatformForm,
    errors: FieldErrors,
    archived: bool,
) -> Result<PlatformsPage, AppError> {
    let can_create = ctx
        .principal
        .as_ref()
        .is_some_and(|p| crate::auth::can(p, Action::CreatePlatform, Subject::Portal));
    Ok(PlatformsPage {
        shell: ctx.shell(state, "platforms", "Platforms"),
        platforms: platforms::list(&state.pool, archived).await?,
        archived,
        can_create,
        form,
        errors,
    })
}

#[derive(Deserialize, Default)]
pub struct ArchivedQuery {
    archived: Option<String>,
}

pub async fn platforms_page(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<UsePortal>,
    Query(query): Query<ArchivedQuery>,
) -> Result<Html<String>, AppError> {
    render(
        &platforms_view(
            &state,
            &ctx,
            NewPlatformForm::default(),
            FieldErrors::default(),
            query.archived.is_some(),
        )
        .await?,
    )
}

pub async fn platform_create(
    State(state): State<AppState>,
    ctx: Ctx,
    allowed: Allowed<CreatePlatform>,
    form: FormFields,
) -> Result<Response, AppError> {
    let new = NewPlatform {
        slug: form.get("slug").trim(),
        name: form.get("name"),
        description: form.get("description"),
        owner_team: form.get("owner_team"),
    };
    match platforms::create(&state.pool, &new, allowed.principal()).await {
        Ok(platform) => Ok(done(
            &format!("/platforms/{}", platform.slug),
            Flash::PlatformCreated,
        )),
        Err(DefineError::Invalid(errors)) => {
            let kept = NewPlatformForm {
                slug: form.get("slug").to_owned(),
                name: form.get("name").to_owned(),
                description: form.get("description").to_owned(),
                owner_team: form.get("owner_team").to_owned(),
            };
            Ok(unprocessable(render(
                &platforms_view(&state, &ctx, kept, errors, false).await?,
            )?))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "platform.html")]
pub struct PlatformPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub can_edit: bool,
    pub members: Vec<Member>,
    pub timebox: Option<Timebox>,
    pub approved: Option<Revision>,
    pub member_error: Option<String>,
    /// The live DevOps environment, and whether the caller may start one.
    pub devops: Option<(uuid::Uuid, crate::environments::EnvState)>,
    pub can_trigger_devops: bool,
    /// The platform's newest environments.
    pub environments: Vec<crate::environments::queries::Summary>,
    /// This month's spend beside the estimate.
    pub cost: crate::maintain::cost::PlatformCost,
}

/// How many of its environments the platform page lists (the dashboard has them all).
pub const ENVIRONMENTS_SHOWN: i64 = 10;

async fn platform_view<P>(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<P>,
    member_error: Option<String>,
) -> Result<PlatformPage, AppError> {
    let platform = on.platform().clone();
    let can_plan = on.can(Action::ViewPlanning);
    let timebox = if can_plan {
        scope::load(&state.pool, platform.id)
            .await?
            .map(|s| s.timebox(state.clock.today()))
    } else {
        None
    };
    Ok(PlatformPage {
        shell: ctx.shell(state, "platforms", &platform.name),
        members: platforms::members(&state.pool, platform.id).await?,
        approved: revisions::approved(&state.pool, platform.id).await?,
        platform,
        tab: "overview",
        can_plan,
        can_edit: on.can(Action::EditPlatform),
        devops: crate::environments::queries::devops(&state.pool, on.platform().id).await?,
        environments: crate::environments::queries::list(
            &state.pool,
            &crate::environments::queries::Filter {
                view: crate::environments::queries::View::All,
                platform: Some(on.platform().slug.clone()),
                ..Default::default()
            },
            None,
            ENVIRONMENTS_SHOWN,
        )
        .await?,
        can_trigger_devops: on.can(Action::TriggerDevops),
        cost: crate::maintain::cost::platform(&state.pool, on.platform().id, state.clock.today())
            .await?,
        timebox,
        member_error,
    })
}

pub async fn platform_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformViewer>,
) -> Result<Html<String>, AppError> {
    render(&platform_view(&state, &ctx, &on, None).await?)
}

pub async fn member_add(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
    form: FormFields,
) -> Result<Response, AppError> {
    let who = platforms::NewMember::Email(form.get("email"));
    match platforms::add_member_as(&state.pool, on.platform(), who, &on.principal).await {
        Ok(_) => Ok(done(
            &format!("/platforms/{}", on.platform().slug),
            Flash::MemberAdded,
        )),
        Err(DefineError::Invalid(errors)) => {
            let message = errors.get("email").map(str::to_owned);
            Ok(unprocessable(render(
                &platform_view(&state, &ctx, &on, message).await?,
            )?))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn member_remove(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    Path((_, user)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let user = Uuid::parse_str(&user).map_err(|_| AppError::NotFound)?;
    if !platforms::remove_member_by_id(&state.pool, on.platform(), UserId(user), &on.principal)
        .await?
    {
        return Err(AppError::NotFound);
    }
    Ok(done(
        &format!("/platforms/{}", on.platform().slug),
        Flash::MemberRemoved,
    ))
}

pub async fn platform_archive(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
) -> Result<Response, AppError> {
    platforms::archive(&state.pool, on.platform(), &on.principal).await?;
    Ok(done("/platforms", Flash::PlatformArchived))
}

// ---------------------------------------------------------------------------------------------
// Scope

#[derive(Template)]
#[template(path = "scope.html")]
pub struct ScopePage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub can_edit: bool,
    pub goals: String,
    pub regions: String,
    pub services: String,
    pub security: String,
    pub complexity: String,
    pub started: String,
    pub timebox: Option<Timebox>,
    pub errors: FieldErrors,
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `name | kind | endpoint | notes`, one service per line.
fn services_text(services: &[ConnectedService]) -> String {
    services
        .iter()
        .map(|s| format!("{} | {} | {} | {}", s.name, s.kind, s.endpoint, s.notes))
        .collect::<Vec<_>>()
        .join("\n")
}

fn scope_view<P>(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<P>,
    scope: Option<&Scope>,
) -> ScopePage {
    ScopePage {
        shell: ctx.shell(
            state,
            "platforms",
            &format!("Scope · {}", on.platform().name),
        ),
        platform: on.platform().clone(),
        tab: "scope",
        can_plan: true,
        can_edit: on.can(Action::EditPlatform),
        goals: scope.map(|s| s.goals.join("\n")).unwrap_or_default(),
        regions: scope.map(|s| s.regions.join(", ")).unwrap_or_default(),
        services: scope
            .map(|s| services_text(&s.connected_services))
            .unwrap_or_default(),
        security: scope.map(|s| s.security.join("\n")).unwrap_or_default(),
        complexity: scope
            .map_or("standard", |s| {
                if s.complexity == Complexity::Novel {
                    "novel"
                } else {
                    "standard"
                }
            })
            .to_owned(),
        started: scope
            .map(|s| s.define_started_on.to_string())
            .unwrap_or_else(|| state.clock.today().to_string()),
        timebox: scope.map(|s| s.timebox(state.clock.today())),
        errors: FieldErrors::default(),
    }
}

pub async fn scope_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformPlanner>,
) -> Result<Html<String>, AppError> {
    let scope = scope::load(&state.pool, on.platform().id).await?;
    render(&scope_view(&state, &ctx, &on, scope.as_ref()))
}

pub async fn scope_save(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
    form: FormFields,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let started =
        match chrono::NaiveDate::parse_from_str(form.get("define_started_on").trim(), "%Y-%m-%d") {
            Ok(date) => Some(date),
            Err(_) => {
                errors.add("define_started_on", "Use a date such as 2026-11-02.");
                None
            }
        };
    let connected_services = lines(form.get("connected_services"))
        .into_iter()
        .map(|line| {
            let mut parts = line.split('|').map(str::trim);
            ConnectedService {
                name: parts.next().unwrap_or_default().to_owned(),
                kind: parts.next().unwrap_or_default().to_owned(),
                endpoint: parts.next().unwrap_or_default().to_owned(),
                notes: parts.collect::<Vec<_>>().join(" | "),
            }
        })
        .collect();
    let complexity = match form.get("complexity") {
        "novel" => Complexity::Novel,
        "standard" => Complexity::Standard,
        _ => {
            errors.add("complexity", "Choose standard or novel.");
            Complexity::Standard
        }
    };
    let scope = Scope {
        goals: lines(form.get("goals")),
        cloud: form.get("cloud").to_owned(),
        regions: form
            .get("regions")
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        connected_services,
        security: lines(form.get("security")),
        complexity,
        define_started_on: started.unwrap_or_else(|| state.clock.today()),
    };
    let result = match errors.into_result() {
        Ok(()) => scope::save(&state.pool, on.platform(), &scope, &on.principal).await,
        Err(errors) => Err(DefineError::Invalid(errors)),
    };
    match result {
        Ok(()) => Ok(done(
            &format!("/platforms/{}/scope", on.platform().slug),
            Flash::ScopeSaved,
        )),
        Err(DefineError::Invalid(errors)) => {
            let mut page = scope_view(&state, &ctx, &on, None);
            page.goals = form.get("goals").to_owned();
            page.regions = form.get("regions").to_owned();
            page.services = form.get("connected_services").to_owned();
            page.security = form.get("security").to_owned();
            page.complexity = form.get("complexity").to_owned();
            page.started = form.get("define_started_on").to_owned();
            page.timebox = None;
            // Connected-service errors name the line: `connected_services[2].name` → line 3.
            page.errors = errors;
            Ok(unprocessable(render(&page)?))
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    #[test]
    fn services_text_round_trips_through_lines() {
        let text = super::services_text(&[crate::define::scope::ConnectedService {
            name: "Ledger".into(),
            kind: "REST".into(),
            endpoint: "https://ledger.internal".into(),
            notes: "mTLS".into(),
        }]);
        assert_eq!(text, "Ledger | REST | https://ledger.internal | mTLS");
        assert_eq!(super::lines("a\n\n b \n"), ["a", "b"]);
    }
}
