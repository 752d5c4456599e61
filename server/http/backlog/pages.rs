//! The implementation-plan backlog in the browser.

use crate::http::flash::{Flash, done};
use crate::http::views::unprocessable;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Action;
use crate::define::backlog::{self, Direction, Item, ItemInput, Placement};
use crate::define::platforms::Platform;
use crate::define::revisions::{self};
use crate::http::backlog::api::backlog_export;
use crate::http::error::AppError;
use crate::http::extract::{Ctx, FormFields, OnPlatform, PlatformEditor, PlatformPlanner};
use crate::http::views::{Shell, render};
use crate::validation::FieldErrors;

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
    on: OnPlatform<PlatformEditor>,
) -> Result<Response, AppError> {
    let generation =
        backlog::generate_from_approved(&state.pool, on.platform(), &on.principal).await?;
    let count = |items: &[String]| u32::try_from(items.len()).unwrap_or(u32::MAX);
    Ok(done(
        &format!("/platforms/{}/backlog", on.platform().slug),
        Flash::BacklogGenerated {
            added: count(&generation.added),
            obsoleted: count(&generation.obsoleted),
            revived: count(&generation.revived),
            kept: u32::try_from(generation.kept).unwrap_or(u32::MAX),
        },
    ))
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
        Ok(_) => Ok(done(
            &format!("/platforms/{}/backlog", on.platform().slug),
            Flash::BacklogItemAdded,
        )),
        Err(crate::define::DefineError::Invalid(errors)) => {
            let mut page = backlog_view(&state, &ctx, &on, &BacklogQuery::default()).await?;
            page.form = input;
            page.errors = errors;
            Ok(unprocessable(render(&page)?))
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
    let placement = match form.get("position").parse::<usize>() {
        Ok(position) => Placement::Position(position),
        Err(_) if form.get("direction") == "down" => Placement::Move(Direction::Down),
        Err(_) => Placement::Move(Direction::Up),
    };
    backlog::place(&state.pool, on.platform(), id, placement, &on.principal).await?;
    Ok(done(
        &format!("/platforms/{}/backlog#item-{id}", on.platform().slug),
        Flash::BacklogItemMoved,
    ))
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
        Ok(_) => Ok(done(
            &format!("/platforms/{}/backlog#item-{id}", on.platform().slug),
            Flash::BacklogItemSaved,
        )),
        Err(crate::define::DefineError::Invalid(errors)) => Ok(unprocessable(render(
            &item_view(&state, &ctx, &on, id, Some(input), errors).await?,
        )?)),
        Err(e) => Err(e.into()),
    }
}
