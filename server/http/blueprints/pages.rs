//! Blueprint revisions in the browser: the structured form, raw YAML, review with diff.

use crate::http::flash::{Flash, done};
use crate::http::views::{unprocessable, with_status};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::app::AppState;
use crate::auth::Action;
use crate::define::DefineError;
use crate::define::blueprint::Blueprint;
use crate::define::diff::{Change, diff};
use crate::define::platforms::Platform;
use crate::define::revisions::{self, Review, Revision, Verdict};
use crate::http::blueprints::api::{export, visible_revision};
use crate::http::blueprints::form::{self, Section};
use crate::http::error::AppError;
use crate::http::extract::{
    Ctx, FormFields, OnPlatform, PlatformEditor, PlatformPlanner, PlatformViewer,
};
use crate::http::views::{Shell, render};
use crate::validation::FieldErrors;

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
    let saved = if form.get("from_template").is_empty() {
        match Blueprint::from_yaml(form.get("yaml")) {
            Ok(document) => {
                let latest = revisions::latest_number(&state.pool, platform.id).await?;
                revisions::save(&state.pool, platform, &on.principal, latest, &document).await
            }
            Err(errors) => Err(DefineError::Invalid(errors)),
        }
    } else {
        revisions::save_from_template(&state.pool, platform, &on.principal).await
    };
    match saved {
        Ok(revision) => Ok(done(
            &format!(
                "/platforms/{}/blueprints/{}",
                platform.slug, revision.number
            ),
            Flash::RevisionCreated,
        )),
        Err(DefineError::Invalid(errors)) => {
            let mut page = blueprints_view(&state, &ctx, &on).await?;
            page.yaml = form.get("yaml").to_owned();
            page.errors = errors;
            Ok(unprocessable(render(&page)?))
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
    /// Kubernetes versions out of EKS standard support today.
    pub warnings: Vec<crate::validation::FieldError>,
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
        on.revision_subject(&revision),
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
        warnings: crate::maintain::currency::Calendar::load(&state.pool)
            .await?
            .blueprint_warnings(&revision.document, state.clock.today()),
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
        return export(
            on.platform(),
            &revision,
            query.format.as_deref(),
            &crate::maintain::currency::Calendar::load(&state.pool).await?,
            state.clock.today(),
        );
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
    Ok(done(
        &format!("/platforms/{}/blueprints/{number}", on.platform().slug),
        Flash::RevisionSubmitted,
    ))
}

pub async fn revision_review(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformPlanner>,
    Path((_, number)): Path<(String, i32)>,
    form: FormFields,
) -> Result<Response, AppError> {
    let revision = visible_revision(&state, &on, number).await?;
    on.authorize(Action::ReviewBlueprint, on.revision_subject(&revision))?;
    let reviewed = match Verdict::parse(form.get("verdict")) {
        Some(verdict) => {
            let comment = form.get("comment");
            revisions::review(
                &state.pool,
                on.platform(),
                number,
                &on.principal,
                verdict,
                comment,
            )
            .await
        }
        None => {
            let mut errors = FieldErrors::default();
            errors.add("verdict", "Choose approve, request changes or comment.");
            Err(DefineError::Invalid(errors))
        }
    };
    match reviewed {
        Ok(()) => Ok(done(
            &format!("/platforms/{}/blueprints/{number}", on.platform().slug),
            Flash::ReviewRecorded,
        )),
        Err(DefineError::Invalid(errors)) => {
            let page = revision_view(&state, &ctx, &on, revision, errors).await?;
            Ok(unprocessable(render(&page)?))
        }
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
        sections: form::sections(doc, &errors),
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
        form::apply(&base.document, &form)
    };
    let yaml = raw.then(|| form.get("yaml").to_owned());
    let document = match parsed {
        Ok(document) => document,
        Err(errors) => {
            let page = edit_page(&state, &ctx, &on, number, &doc, yaml, errors);
            return Ok(unprocessable(render(&page)?));
        }
    };
    let saved = revisions::save(
        &state.pool,
        on.platform(),
        &on.principal,
        Some(number),
        &document,
    );
    // The form again, as submitted.
    let again = |errors| {
        let doc = document.to_json();
        edit_page(&state, &ctx, &on, number, &doc, yaml.clone(), errors)
    };
    match saved.await {
        Ok(revision) => Ok(done(
            &format!(
                "/platforms/{}/blueprints/{}",
                on.platform().slug,
                revision.number
            ),
            Flash::RevisionCreated,
        )),
        Err(DefineError::Stale {
            latest, changes, ..
        }) => {
            let mut page = again(FieldErrors::default());
            page.stale = Some((latest, change_rows(changes)));
            Ok(with_status(StatusCode::CONFLICT, render(&page)?))
        }
        Err(DefineError::Invalid(errors)) => Ok(unprocessable(render(&again(errors))?)),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
