//! A platform's teams in the browser (`/platforms/{slug}/teams`) and in the JSON API
//! (`/api/v1/platforms/{slug}/teams`), both through `crate::teams`.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Action;
use crate::define::platforms::Platform;
use crate::http::error::{AppError, FieldErrors};
use crate::http::extract::{Ctx, FormFields, OnPlatform, PlatformEditor, PlatformViewer};
use crate::http::flash::{Flash, done};
use crate::http::json::TypedJson;
use crate::http::paging::Page;
use crate::http::views::{Shell, render, unprocessable};
use crate::teams::{self, MemberRef, NewTeam, Person, Team, TeamChange};

// ---------------------------------------------------------------------------------------------
// JSON API

/// The body of `POST …/teams`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTeamBody {
    name: String,
    #[serde(default)]
    members: Vec<Uuid>,
    aws_role_arn: Option<String>,
    oidc_group: Option<String>,
    /// Default: one namespace named after the team.
    #[serde(default)]
    namespaces: Vec<String>,
}

/// A field that may be absent (left as it is) or `null` (cleared).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The body of `PATCH …/teams/{name}`: the fields to change (`null` clears the role or group).
/// The name cannot change: it names the team's Kubernetes group in every cluster.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamPatch {
    members: Option<Vec<Uuid>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    aws_role_arn: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    oidc_group: Option<Option<String>>,
    namespaces: Option<Vec<String>>,
}

fn ids(members: Vec<Uuid>) -> Vec<MemberRef> {
    members.into_iter().map(MemberRef::Id).collect()
}

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/teams",
    tag = "teams",
    params(("slug" = String, Path, description = "The platform's short name")),
    responses((status = 200, description = "The platform's teams, by name", body = Page<Team>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn api_list(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
) -> Result<Json<Page<Team>>, AppError> {
    let items = teams::list(&state.pool, on.platform().id).await?;
    Ok(Json(Page { items, next: None }))
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/teams",
    tag = "teams",
    params(("slug" = String, Path, description = "The platform's short name")),
    request_body = NewTeamBody,
    responses((status = 201, description = "The new team", body = Team), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn api_create(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    TypedJson(body): TypedJson<NewTeamBody>,
) -> Result<(StatusCode, Json<Team>), AppError> {
    let new = NewTeam {
        name: body.name,
        members: ids(body.members),
        aws_role_arn: body.aws_role_arn,
        oidc_group: body.oidc_group,
        namespaces: body.namespaces,
    };
    let team = teams::create(&state.pool, on.platform(), new, &on.principal).await?;
    Ok((StatusCode::CREATED, Json(team)))
}

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/teams/{name}",
    tag = "teams",
    params(("slug" = String, Path, description = "The platform's short name"), ("name" = String, Path, description = "The team's name")),
    responses((status = 200, description = "The team", body = Team), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn api_get(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<Team>, AppError> {
    Ok(Json(
        teams::find(&state.pool, on.platform().id, &name).await?,
    ))
}

#[utoipa::path(
    patch,
    path = "/api/v1/platforms/{slug}/teams/{name}",
    tag = "teams",
    params(("slug" = String, Path, description = "The platform's short name"), ("name" = String, Path, description = "The team's name")),
    request_body = TeamPatch,
    responses((status = 200, description = "The changed team", body = Team), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn api_update(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    Path((_, name)): Path<(String, String)>,
    TypedJson(body): TypedJson<TeamPatch>,
) -> Result<Json<Team>, AppError> {
    let change = TeamChange {
        members: body.members.map(ids),
        aws_role_arn: body.aws_role_arn,
        oidc_group: body.oidc_group,
        namespaces: body.namespaces,
    };
    let team = teams::update(&state.pool, on.platform(), &name, change, &on.principal).await?;
    Ok(Json(team))
}

#[utoipa::path(
    delete,
    path = "/api/v1/platforms/{slug}/teams/{name}",
    tag = "teams",
    params(("slug" = String, Path, description = "The platform's short name"), ("name" = String, Path, description = "The team's name")),
    responses((status = 204, description = "Deleted"), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 409, description = "A live environment was built for the team", body = crate::http::error::Problem))
)]
pub async fn api_delete(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    Path((_, name)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    teams::delete(&state.pool, on.platform(), &name, &on.principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Pages

/// A team with its members' names, for the pages.
pub struct TeamRow {
    pub team: Team,
    pub members: Vec<Person>,
    pub from_group: Vec<Person>,
}

/// What the team form holds, as typed (shown again beside its errors).
#[derive(Default)]
pub struct TeamForm {
    pub name: String,
    /// E-mail addresses, one per line.
    pub members: String,
    pub aws_role_arn: String,
    pub oidc_group: String,
    /// Separated by spaces or commas.
    pub namespaces: String,
}

impl TeamForm {
    fn read(form: &FormFields) -> TeamForm {
        TeamForm {
            name: form.get("name").to_owned(),
            members: form.get("members").to_owned(),
            aws_role_arn: form.get("aws_role_arn").to_owned(),
            oidc_group: form.get("oidc_group").to_owned(),
            namespaces: form.get("namespaces").to_owned(),
        }
    }

    fn of(row: &TeamRow) -> TeamForm {
        TeamForm {
            name: row.team.name.clone(),
            members: row
                .members
                .iter()
                .map(|p| p.email.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            aws_role_arn: row.team.aws_role_arn.clone().unwrap_or_default(),
            oidc_group: row.team.oidc_group.clone().unwrap_or_default(),
            namespaces: row.team.namespaces.join(", "),
        }
    }

    fn members(&self) -> Vec<MemberRef> {
        self.members
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| MemberRef::Email(l.to_owned()))
            .collect()
    }

    fn namespaces(&self) -> Vec<String> {
        self.namespaces
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A field error of `members[i]` or `namespaces[i]` is shown beside the whole box.
fn for_form(errors: FieldErrors) -> FieldErrors {
    let mut out = FieldErrors::default();
    for e in errors.0 {
        let field = e.field.split('[').next().unwrap_or_default().to_owned();
        out.add(&field, e.message);
    }
    out
}

/// The teams with their members' names, read in one query for all of them.
async fn rows(state: &AppState, list: Vec<Team>) -> Result<Vec<TeamRow>, AppError> {
    let ids: Vec<uuid::Uuid> = list
        .iter()
        .flat_map(|t| t.members.iter().chain(&t.members_from_group).copied())
        .collect();
    let people = teams::people(&state.pool, &ids).await?;
    let named = |ids: &[uuid::Uuid]| -> Vec<Person> {
        people
            .iter()
            .filter(|p| ids.contains(&p.id))
            .cloned()
            .collect()
    };
    Ok(list
        .into_iter()
        .map(|team| TeamRow {
            members: named(&team.members),
            from_group: named(&team.members_from_group),
            team,
        })
        .collect())
}

#[derive(Template)]
#[template(path = "teams.html")]
pub struct TeamsPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub can_edit: bool,
    pub namespaces_per_team: bool,
    pub teams: Vec<TeamRow>,
    pub form: TeamForm,
    pub errors: FieldErrors,
}

async fn teams_view<P>(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<P>,
    form: TeamForm,
    errors: FieldErrors,
) -> Result<TeamsPage, AppError> {
    let platform = on.platform().clone();
    let namespaces_per_team = crate::define::revisions::approved(&state.pool, platform.id)
        .await?
        .is_some_and(|r| r.document.security.namespaces_per_team);
    Ok(TeamsPage {
        shell: ctx.shell(state, "platforms", &format!("Teams · {}", platform.name)),
        teams: rows(state, teams::list(&state.pool, platform.id).await?).await?,
        platform,
        tab: "teams",
        can_plan: on.can(Action::ViewPlanning),
        can_edit: on.can(Action::EditPlatform),
        namespaces_per_team,
        form,
        errors,
    })
}

pub async fn teams_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformViewer>,
) -> Result<Html<String>, AppError> {
    render(
        &teams_view(
            &state,
            &ctx,
            &on,
            TeamForm::default(),
            FieldErrors::default(),
        )
        .await?,
    )
}

pub async fn team_create(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
    form: FormFields,
) -> Result<Response, AppError> {
    let typed = TeamForm::read(&form);
    let new = NewTeam {
        name: typed.name.clone(),
        members: typed.members(),
        aws_role_arn: Some(typed.aws_role_arn.clone()),
        oidc_group: Some(typed.oidc_group.clone()),
        namespaces: typed.namespaces(),
    };
    match teams::create(&state.pool, on.platform(), new, &on.principal).await {
        Ok(team) => Ok(done(
            &format!("/platforms/{}/teams/{}", on.platform().slug, team.name),
            Flash::TeamCreated,
        )),
        Err(teams::TeamError::Invalid(errors)) => Ok(unprocessable(render(
            &teams_view(&state, &ctx, &on, typed, for_form(errors)).await?,
        )?)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "team.html")]
pub struct TeamPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub can_edit: bool,
    pub row: TeamRow,
    pub form: TeamForm,
    pub errors: FieldErrors,
}

async fn team_view<P>(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<P>,
    name: &str,
    form: Option<TeamForm>,
    errors: FieldErrors,
) -> Result<TeamPage, AppError> {
    let platform = on.platform().clone();
    let team = teams::find(&state.pool, platform.id, name).await?;
    let row = rows(state, vec![team]).await?.remove(0);
    Ok(TeamPage {
        shell: ctx.shell(
            state,
            "platforms",
            &format!("Team {name} · {}", platform.name),
        ),
        platform,
        tab: "teams",
        can_plan: on.can(Action::ViewPlanning),
        can_edit: on.can(Action::EditPlatform),
        form: form.unwrap_or_else(|| TeamForm::of(&row)),
        row,
        errors,
    })
}

pub async fn team_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformViewer>,
    Path((_, name)): Path<(String, String)>,
) -> Result<Html<String>, AppError> {
    render(&team_view(&state, &ctx, &on, &name, None, FieldErrors::default()).await?)
}

pub async fn team_save(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
    Path((_, name)): Path<(String, String)>,
    form: FormFields,
) -> Result<Response, AppError> {
    let typed = TeamForm::read(&form);
    let change = TeamChange {
        members: Some(typed.members()),
        aws_role_arn: Some(Some(typed.aws_role_arn.clone())),
        oidc_group: Some(Some(typed.oidc_group.clone())),
        namespaces: Some(typed.namespaces()),
    };
    match teams::update(&state.pool, on.platform(), &name, change, &on.principal).await {
        Ok(_) => Ok(done(
            &format!("/platforms/{}/teams/{name}", on.platform().slug),
            Flash::TeamSaved,
        )),
        Err(teams::TeamError::Invalid(errors)) => {
            let page = team_view(&state, &ctx, &on, &name, Some(typed), for_form(errors));
            Ok(unprocessable(render(&page.await?)?))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn team_delete(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, AppError> {
    teams::delete(&state.pool, on.platform(), &name, &on.principal).await?;
    Ok(done(
        &format!("/platforms/{}/teams", on.platform().slug),
        Flash::TeamDeleted,
    )
    .into_response())
}
