//! The Define phase in the browser: platforms, scope, blueprint revisions (structured form, raw
//! YAML, review with diff) and the backlog. Plain forms, POST-redirect-GET; errors re-render the
//! form with each message beside its field.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use super::blueprint_form::{self, Section};
use super::define_api::{backlog_export, export, visible_revision};
use super::error::AppError;
use super::extract::{
    Allowed, CreatePlatform, Ctx, FormFields, OnPlatform, PlatformEditor, PlatformPlanner,
    PlatformViewer, UsePortal, authorize,
};
use super::pages::{Shell, render};
use crate::auth::{Action, Subject, UserId};
use crate::define::DefineError;
use crate::define::backlog::{self, Direction, Generation, Item, ItemInput};
use crate::define::blueprint::Blueprint;
use crate::define::diff::{Change, diff};
use crate::define::platforms::{self, Member, NewPlatform, Platform};
use crate::define::revisions::{self, Review, Revision, RevisionError, Verdict};
use crate::define::scope::{self, Complexity, ConnectedService, Scope, Timebox};
use crate::validation::FieldErrors;

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn with_status(status: StatusCode, html: Html<String>) -> Response {
    (status, html).into_response()
}

// ---------------------------------------------------------------------------------------------
// Platforms

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
        Ok(platform) => Ok(see_other(&format!("/platforms/{}", platform.slug))),
        Err(DefineError::Invalid(errors)) => {
            let kept = NewPlatformForm {
                slug: form.get("slug").to_owned(),
                name: form.get("name").to_owned(),
                description: form.get("description").to_owned(),
                owner_team: form.get("owner_team").to_owned(),
            };
            Ok(with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&platforms_view(&state, &ctx, kept, errors, false).await?)?,
            ))
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
}

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
        can_trigger_devops: on.can(Action::TriggerDevops),
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
    match platforms::add_member_by_email(
        &state.pool,
        on.platform(),
        form.get("email"),
        &on.principal,
    )
    .await
    {
        Ok(()) => Ok(see_other(&format!("/platforms/{}", on.platform().slug))),
        Err(DefineError::Invalid(errors)) => {
            let message = errors.get("email").map(str::to_owned);
            Ok(with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&platform_view(&state, &ctx, &on, message).await?)?,
            ))
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
    Ok(see_other(&format!("/platforms/{}", on.platform().slug)))
}

pub async fn platform_archive(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
) -> Result<Response, AppError> {
    platforms::archive(&state.pool, on.platform(), &on.principal).await?;
    Ok(see_other("/platforms"))
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
    pub saved: bool,
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
        saved: false,
    }
}

#[derive(Deserialize, Default)]
pub struct SavedQuery {
    saved: Option<String>,
}

pub async fn scope_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformPlanner>,
    Query(query): Query<SavedQuery>,
) -> Result<Html<String>, AppError> {
    let scope = scope::load(&state.pool, on.platform().id).await?;
    let mut page = scope_view(&state, &ctx, &on, scope.as_ref());
    page.saved = query.saved.is_some();
    render(&page)
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
        Ok(()) => Ok(see_other(&format!(
            "/platforms/{}/scope?saved=1",
            on.platform().slug
        ))),
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
            Ok(with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&page)?,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Blueprint revisions

#[derive(Template)]
#[template(path = "blueprints.html")]
pub struct BlueprintsPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub can_edit: bool,
    pub revisions: Vec<Revision>,
    pub yaml: String,
    pub errors: FieldErrors,
}

async fn blueprints_view<P>(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<P>,
) -> Result<BlueprintsPage, AppError> {
    let can_plan = on.can(Action::ViewPlanning);
    Ok(BlueprintsPage {
        shell: ctx.shell(
            state,
            "platforms",
            &format!("Blueprint · {}", on.platform().name),
        ),
        platform: on.platform().clone(),
        tab: "blueprint",
        can_plan,
        can_edit: on.can(Action::EditPlatform),
        revisions: revisions::list(&state.pool, on.platform().id, !can_plan).await?,
        yaml: String::new(),
        errors: FieldErrors::default(),
    })
}

pub async fn blueprints_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformViewer>,
) -> Result<Html<String>, AppError> {
    render(&blueprints_view(&state, &ctx, &on).await?)
}

/// New revision from the template (`from_template`), or an imported YAML document (`yaml`).
pub async fn blueprint_create(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
    form: FormFields,
) -> Result<Response, AppError> {
    let platform = on.platform();
    let latest = revisions::list(&state.pool, platform.id, false)
        .await?
        .first()
        .map(|r| r.number);
    let document = if form.get("from_template").is_empty() {
        match Blueprint::from_yaml(form.get("yaml")) {
            Ok(document) => document,
            Err(errors) => {
                let mut page = blueprints_view(&state, &ctx, &on).await?;
                page.yaml = form.get("yaml").to_owned();
                page.errors = errors;
                return Ok(with_status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    render(&page)?,
                ));
            }
        }
    } else {
        let scope = scope::load(&state.pool, platform.id).await?;
        Blueprint::from_template(&platform.slug, scope.as_ref())
    };
    match revisions::save(&state.pool, platform, &on.principal, latest, &document).await {
        Ok(revision) => Ok(see_other(&format!(
            "/platforms/{}/blueprints/{}",
            platform.slug, revision.number
        ))),
        Err(RevisionError::Invalid(errors)) => {
            let mut page = blueprints_view(&state, &ctx, &on).await?;
            page.yaml = form.get("yaml").to_owned();
            page.errors = errors;
            Ok(with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&page)?,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "revision.html")]
pub struct RevisionPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub can_edit: bool,
    pub can_review: bool,
    pub revision: Revision,
    pub reviews: Vec<Review>,
    pub against: Option<i32>,
    pub changes: Vec<ChangeRow>,
    pub errors: FieldErrors,
}

/// A change, its values shown as compact JSON.
pub struct ChangeRow {
    pub path: String,
    pub before: String,
    pub after: String,
}

pub fn change_rows(changes: Vec<Change>) -> Vec<ChangeRow> {
    let show = |v: Option<Value>| v.map_or_else(|| "—".to_owned(), |v| v.to_string());
    changes
        .into_iter()
        .map(|c| ChangeRow {
            path: c.path,
            before: show(c.before),
            after: show(c.after),
        })
        .collect()
}

async fn revision_view<P>(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<P>,
    revision: Revision,
    errors: FieldErrors,
) -> Result<RevisionPage, AppError> {
    let platform = on.platform().clone();
    let can_plan = on.can(Action::ViewPlanning);
    // The review page compares with the approved revision; the approved one (or a draft before
    // any approval) with the revision it was edited from.
    let approved = revisions::approved(&state.pool, platform.id).await?;
    let against = match approved {
        Some(a) if a.number != revision.number => Some(a),
        _ => match revision.base_number {
            Some(base) => revisions::get(&state.pool, platform.id, base).await?,
            None => None,
        },
    };
    let changes = against
        .as_ref()
        .map(|a| change_rows(diff(&a.document.to_json(), &revision.document.to_json())))
        .unwrap_or_default();
    let can_review = crate::auth::can(
        &on.principal,
        Action::ReviewBlueprint,
        Subject::Revision {
            member: on.access.is_member,
            author: revisions::author_of(&revision),
        },
    );
    Ok(RevisionPage {
        shell: ctx.shell(
            state,
            "platforms",
            &format!("Blueprint revision {} · {}", revision.number, platform.name),
        ),
        reviews: if can_plan {
            revisions::reviews(&state.pool, platform.id, revision.number).await?
        } else {
            Vec::new()
        },
        platform,
        tab: "blueprint",
        can_plan,
        can_edit: on.can(Action::EditPlatform),
        can_review,
        against: against.map(|a| a.number),
        changes,
        revision,
        errors,
    })
}

#[derive(Deserialize, Default)]
pub struct FormatQuery {
    format: Option<String>,
}

pub async fn revision_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformViewer>,
    Path((_, number)): Path<(String, i32)>,
    Query(query): Query<FormatQuery>,
) -> Result<Response, AppError> {
    let revision = visible_revision(&state, &on, number).await?;
    if query.format.is_some() {
        return export(on.platform(), &revision, query.format.as_deref());
    }
    Ok(
        render(&revision_view(&state, &ctx, &on, revision, FieldErrors::default()).await?)?
            .into_response(),
    )
}

pub async fn revision_submit(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    Path((_, number)): Path<(String, i32)>,
) -> Result<Response, AppError> {
    revisions::submit(&state.pool, on.platform(), number, &on.principal).await?;
    Ok(see_other(&format!(
        "/platforms/{}/blueprints/{number}",
        on.platform().slug
    )))
}

pub async fn revision_review(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformPlanner>,
    Path((_, number)): Path<(String, i32)>,
    form: FormFields,
) -> Result<Response, AppError> {
    let revision = visible_revision(&state, &on, number).await?;
    authorize(
        &on.principal,
        Action::ReviewBlueprint,
        Subject::Revision {
            member: on.access.is_member,
            author: revisions::author_of(&revision),
        },
    )?;
    let Some(verdict) = Verdict::parse(form.get("verdict")) else {
        let mut errors = FieldErrors::default();
        errors.add("verdict", "Choose approve, request changes or comment.");
        return Ok(with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&revision_view(&state, &ctx, &on, revision, errors).await?)?,
        ));
    };
    match revisions::review(
        &state.pool,
        on.platform(),
        number,
        &on.principal,
        verdict,
        form.get("comment"),
    )
    .await
    {
        Ok(()) => Ok(see_other(&format!(
            "/platforms/{}/blueprints/{number}",
            on.platform().slug
        ))),
        Err(RevisionError::Invalid(errors)) => Ok(with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&revision_view(&state, &ctx, &on, revision, errors).await?)?,
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "revision_edit.html")]
pub struct RevisionEditPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub can_edit: bool,
    pub base: i32,
    pub sections: Vec<Section>,
    pub yaml: String,
    pub raw: bool,
    pub errors: FieldErrors,
    pub stale: Option<(i32, Vec<ChangeRow>)>,
}

/// The edit page; `yaml` is the text of the raw editor, `None` for the structured form.
fn edit_page<P>(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<P>,
    base: i32,
    doc: &Value,
    yaml: Option<String>,
    errors: FieldErrors,
) -> RevisionEditPage {
    RevisionEditPage {
        shell: ctx.shell(
            state,
            "platforms",
            &format!("Edit blueprint · {}", on.platform().name),
        ),
        platform: on.platform().clone(),
        tab: "blueprint",
        can_plan: true,
        can_edit: true,
        base,
        sections: blueprint_form::sections(doc, &errors),
        raw: yaml.is_some(),
        yaml: yaml.unwrap_or_default(),
        errors,
        stale: None,
    }
}

#[derive(Deserialize, Default)]
pub struct EditQuery {
    raw: Option<String>,
}

pub async fn revision_edit_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
    Path((_, number)): Path<(String, i32)>,
    Query(query): Query<EditQuery>,
) -> Result<Html<String>, AppError> {
    let revision = visible_revision(&state, &on, number).await?;
    let doc = revision.document.to_json();
    render(&edit_page(
        &state,
        &ctx,
        &on,
        number,
        &doc,
        query.raw.map(|_| revision.document.to_yaml()),
        FieldErrors::default(),
    ))
}

/// Saves the structured form (or, with `yaml`, the raw document) as a new revision on top of
/// the edited one; a stale base is refused with what changed meanwhile, nothing overwritten.
pub async fn revision_edit_save(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
    Path((_, number)): Path<(String, i32)>,
    form: FormFields,
) -> Result<Response, AppError> {
    let base = visible_revision(&state, &on, number).await?;
    let raw = form.get("mode") == "yaml";
    let (doc, parsed) = if raw {
        let parsed = Blueprint::from_yaml(form.get("yaml"));
        (base.document.to_json(), parsed)
    } else {
        blueprint_form::apply(&base.document, &form)
    };
    let yaml = raw.then(|| form.get("yaml").to_owned());
    let document = match parsed {
        Ok(document) => document,
        Err(errors) => {
            let page = edit_page(&state, &ctx, &on, number, &doc, yaml, errors);
            return Ok(with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&page)?,
            ));
        }
    };
    match revisions::save(
        &state.pool,
        on.platform(),
        &on.principal,
        Some(number),
        &document,
    )
    .await
    {
        Ok(revision) => Ok(see_other(&format!(
            "/platforms/{}/blueprints/{}",
            on.platform().slug,
            revision.number
        ))),
        Err(RevisionError::Stale {
            latest, changes, ..
        }) => {
            let mut page = edit_page(
                &state,
                &ctx,
                &on,
                number,
                &document.to_json(),
                yaml.clone(),
                FieldErrors::default(),
            );
            page.stale = Some((latest, change_rows(changes)));
            Ok(with_status(StatusCode::CONFLICT, render(&page)?))
        }
        Err(RevisionError::Invalid(errors)) => {
            let page = edit_page(
                &state,
                &ctx,
                &on,
                number,
                &document.to_json(),
                yaml.clone(),
                errors,
            );
            Ok(with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&page)?,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Backlog

#[derive(Template)]
#[template(path = "backlog.html")]
pub struct BacklogPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub can_edit: bool,
    pub items: Vec<Item>,
    pub titles: std::collections::HashMap<Uuid, String>,
    pub progress: Vec<(&'static str, usize, usize)>,
    pub phase: String,
    pub status: String,
    pub assignee: String,
    pub has_approved: bool,
    pub generation: Option<Generation>,
    pub form: ItemInput,
    pub errors: FieldErrors,
    pub phases: [&'static str; 4],
    pub statuses: [&'static str; 5],
}

#[derive(Deserialize, Default)]
pub struct BacklogQuery {
    phase: Option<String>,
    status: Option<String>,
    assignee: Option<String>,
    format: Option<String>,
}

impl BacklogPage {
    pub fn depends_on(&self, item: &Item) -> String {
        item.depends_on
            .iter()
            .filter_map(|d| self.titles.get(d).map(String::as_str))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn backlog_view<P>(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<P>,
    query: &BacklogQuery,
) -> Result<BacklogPage, AppError> {
    let platform = on.platform().clone();
    let filter = backlog::Filter {
        phase: query.phase.clone().filter(|p| !p.is_empty()),
        status: query.status.clone().filter(|s| !s.is_empty()),
        assignee: query.assignee.clone().filter(|a| !a.is_empty()),
    };
    let all = backlog::list(&state.pool, platform.id, &backlog::Filter::default()).await?;
    let items = if filter.phase.is_none() && filter.status.is_none() && filter.assignee.is_none() {
        all.clone()
    } else {
        backlog::list(&state.pool, platform.id, &filter).await?
    };
    Ok(BacklogPage {
        shell: ctx.shell(state, "platforms", &format!("Backlog · {}", platform.name)),
        has_approved: revisions::approved(&state.pool, platform.id)
            .await?
            .is_some(),
        titles: all.iter().map(|i| (i.id, i.title.clone())).collect(),
        progress: backlog::progress(&all),
        platform,
        tab: "backlog",
        can_plan: true,
        can_edit: on.can(Action::EditPlatform),
        items,
        phase: query.phase.clone().unwrap_or_default(),
        status: query.status.clone().unwrap_or_default(),
        assignee: query.assignee.clone().unwrap_or_default(),
        generation: None,
        form: ItemInput {
            phase: "deliver".into(),
            status: "todo".into(),
            ..ItemInput::default()
        },
        errors: FieldErrors::default(),
        phases: backlog::PHASES,
        statuses: backlog::STATUSES,
    })
}

pub async fn backlog_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformPlanner>,
    Query(query): Query<BacklogQuery>,
) -> Result<Response, AppError> {
    let page = backlog_view(&state, &ctx, &on, &query).await?;
    if query.format.is_some() {
        return backlog_export(on.platform(), &page.items, query.format.as_deref());
    }
    Ok(render(&page)?.into_response())
}

pub async fn backlog_generate(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
) -> Result<Response, AppError> {
    let approved = revisions::approved(&state.pool, on.platform().id)
        .await?
        .ok_or_else(|| {
            AppError::Conflict(
                "The platform has no approved blueprint yet: approve one first.".into(),
            )
        })?;
    let generation = backlog::generate(
        &state.pool,
        on.platform(),
        &approved.document,
        &on.principal,
    )
    .await?;
    let mut page = backlog_view(&state, &ctx, &on, &BacklogQuery::default()).await?;
    page.generation = Some(generation);
    Ok(render(&page)?.into_response())
}

fn item_form(form: &FormFields) -> ItemInput {
    ItemInput {
        title: form.get("title").to_owned(),
        description: form.get("description").to_owned(),
        phase: form.get("phase").to_owned(),
        status: form.get("status").to_owned(),
        estimate_days: Some(form.get("estimate_days").to_owned()),
        assignee: form.get("assignee").to_owned(),
        depends_on: form
            .all("depends_on")
            .filter_map(|d| Uuid::parse_str(d).ok())
            .collect(),
    }
}

pub async fn backlog_add(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
    form: FormFields,
) -> Result<Response, AppError> {
    let input = item_form(&form);
    match backlog::create(&state.pool, on.platform(), &input, &on.principal).await {
        Ok(_) => Ok(see_other(&format!(
            "/platforms/{}/backlog",
            on.platform().slug
        ))),
        Err(backlog::BacklogError::Invalid(errors)) => {
            let mut page = backlog_view(&state, &ctx, &on, &BacklogQuery::default()).await?;
            page.form = input;
            page.errors = errors;
            Ok(with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&page)?,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn backlog_move(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    Path((_, id)): Path<(String, String)>,
    form: FormFields,
) -> Result<Response, AppError> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    // `position` comes from drag-and-drop (app.js); the buttons send `direction`.
    if let Ok(position) = form.get("position").parse::<usize>() {
        backlog::move_to(&state.pool, on.platform(), id, position, &on.principal).await?;
    } else {
        let direction = if form.get("direction") == "down" {
            Direction::Down
        } else {
            Direction::Up
        };
        backlog::move_item(&state.pool, on.platform(), id, direction, &on.principal).await?;
    }
    Ok(see_other(&format!(
        "/platforms/{}/backlog#item-{id}",
        on.platform().slug
    )))
}

#[derive(Template)]
#[template(path = "backlog_item.html")]
pub struct BacklogItemPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub can_edit: bool,
    pub item: Item,
    pub form: ItemInput,
    pub others: Vec<Item>,
    pub errors: FieldErrors,
    pub phases: [&'static str; 4],
    pub statuses: [&'static str; 5],
}

impl BacklogItemPage {
    pub fn depends(&self, id: &Uuid) -> bool {
        self.form.depends_on.contains(id)
    }
}

async fn item_view<P>(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<P>,
    id: Uuid,
    form: Option<ItemInput>,
    errors: FieldErrors,
) -> Result<BacklogItemPage, AppError> {
    let item = backlog::get(&state.pool, on.platform().id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let others = backlog::list(&state.pool, on.platform().id, &backlog::Filter::default())
        .await?
        .into_iter()
        .filter(|i| i.id != id)
        .collect();
    let form = form.unwrap_or_else(|| ItemInput {
        title: item.title.clone(),
        description: item.description.clone(),
        phase: item.phase.clone(),
        status: item.status.clone(),
        estimate_days: item.estimate_days.map(|d| d.to_string()),
        assignee: item.assignee.clone().unwrap_or_default(),
        depends_on: item.depends_on.clone(),
    });
    Ok(BacklogItemPage {
        shell: ctx.shell(
            state,
            "platforms",
            &format!("{} · {}", item.title, on.platform().name),
        ),
        platform: on.platform().clone(),
        tab: "backlog",
        can_plan: true,
        can_edit: on.can(Action::EditPlatform),
        item,
        form,
        others,
        errors,
        phases: backlog::PHASES,
        statuses: backlog::STATUSES,
    })
}

pub async fn backlog_item_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformPlanner>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Html<String>, AppError> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    render(&item_view(&state, &ctx, &on, id, None, FieldErrors::default()).await?)
}

pub async fn backlog_item_save(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
    Path((_, id)): Path<(String, String)>,
    form: FormFields,
) -> Result<Response, AppError> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    let input = item_form(&form);
    match backlog::update(&state.pool, on.platform(), id, &input, &on.principal).await {
        Ok(_) => Ok(see_other(&format!(
            "/platforms/{}/backlog#item-{id}",
            on.platform().slug
        ))),
        Err(backlog::BacklogError::Invalid(errors)) => Ok(with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&item_view(&state, &ctx, &on, id, Some(input), errors).await?)?,
        )),
        Err(e) => Err(e.into()),
    }
}

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
