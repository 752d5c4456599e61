//! A platform's onboarded services in the browser (`/platforms/{slug}/services`) and in the
//! JSON API (`/api/v1/platforms/{slug}/services`), both through `crate::exploit::services`.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Action;
use crate::define::platforms::Platform;
use crate::exploit::ExploitError;
use crate::exploit::services::{self, Destination, NewService, Service};
use crate::http::error::{AppError, FieldErrors};
use crate::http::extract::{Ctx, FormFields, OnPlatform, PlatformViewer};
use crate::http::flash::{Flash, done};
use crate::http::json::TypedJson;
use crate::http::paging::Page;
use crate::http::views::{Shell, render, unprocessable};

/// The body of `POST …/services`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServiceBody {
    name: String,
    /// The team that owns it (its name).
    team: String,
    /// Ready environments built for the team.
    environments: Vec<Uuid>,
}

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/services",
    tag = "services",
    params(("slug" = String, Path, description = "The platform's short name")),
    responses((status = 200, description = "The platform's services, by name", body = Page<Service>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn api_list(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
) -> Result<Json<Page<Service>>, AppError> {
    let items = services::list(&state.pool, on.platform().id).await?;
    Ok(Json(Page { items, next: None }))
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/services",
    tag = "services",
    params(("slug" = String, Path, description = "The platform's short name")),
    request_body = NewServiceBody,
    responses((status = 202, description = "Registered; its onboarding job runs (`state: onboarding`)", body = Service), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn api_create(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
    TypedJson(body): TypedJson<NewServiceBody>,
) -> Result<(StatusCode, Json<Service>), AppError> {
    let new = NewService {
        name: body.name,
        team: body.team,
        environments: body.environments,
    };
    let service = services::onboard(&state.pool, on.platform(), new, &on.principal).await?;
    Ok((StatusCode::ACCEPTED, Json(service)))
}

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/services/{name}",
    tag = "services",
    params(("slug" = String, Path, description = "The platform's short name"), ("name" = String, Path, description = "The service's name")),
    responses((status = 200, description = "The service", body = Service), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn api_get(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<Service>, AppError> {
    Ok(Json(
        services::find(&state.pool, on.platform().id, &name).await?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Pages

/// What the onboarding form holds, as typed (shown again beside its errors).
#[derive(Default)]
pub struct ServiceForm {
    pub name: String,
    pub team: String,
    pub environments: Vec<String>,
}

#[derive(Template)]
#[template(path = "services.html")]
pub struct ServicesPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub services: Vec<Service>,
    pub teams: Vec<String>,
    pub destinations: Vec<Destination>,
    pub form: ServiceForm,
    pub errors: FieldErrors,
}

async fn services_view(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<PlatformViewer>,
    form: ServiceForm,
    errors: FieldErrors,
) -> Result<ServicesPage, AppError> {
    let platform = on.platform().clone();
    let teams = crate::teams::list(&state.pool, platform.id)
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    Ok(ServicesPage {
        shell: ctx.shell(state, "platforms", &format!("Services · {}", platform.name)),
        services: services::list(&state.pool, platform.id).await?,
        destinations: services::destinations(&state.pool, platform.id).await?,
        teams,
        platform,
        tab: "services",
        can_plan: on.can(Action::ViewPlanning),
        form,
        errors,
    })
}

pub async fn services_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformViewer>,
) -> Result<Html<String>, AppError> {
    let page = services_view(
        &state,
        &ctx,
        &on,
        ServiceForm::default(),
        FieldErrors::default(),
    );
    render(&page.await?)
}

pub async fn service_create(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformViewer>,
    form: FormFields,
) -> Result<Response, AppError> {
    let typed = ServiceForm {
        name: form.get("name").to_owned(),
        team: form.get("team").to_owned(),
        environments: form.all("environments").map(str::to_owned).collect(),
    };
    let mut errors = FieldErrors::default();
    let environments: Vec<Uuid> = typed
        .environments
        .iter()
        .filter_map(|id| match id.parse() {
            Ok(id) => Some(id),
            Err(_) => {
                errors.add("environments", "Choose environments from the list.");
                None
            }
        })
        .collect();
    let outcome = match errors.into_result() {
        Err(errors) => Err(ExploitError::Invalid(errors)),
        Ok(()) => {
            let new = NewService {
                name: typed.name.clone(),
                team: typed.team.clone(),
                environments,
            };
            services::onboard(&state.pool, on.platform(), new, &on.principal).await
        }
    };
    match outcome {
        Ok(service) => Ok(done(
            &format!(
                "/platforms/{}/services/{}",
                on.platform().slug,
                service.name
            ),
            Flash::ServiceOnboarding,
        )),
        Err(ExploitError::Invalid(errors)) => {
            // `environments[i]` is shown beside the whole list.
            let mut beside = FieldErrors::default();
            for e in errors.0 {
                beside.add(e.field.split('[').next().unwrap_or_default(), e.message);
            }
            let page = services_view(&state, &ctx, &on, typed, beside);
            Ok(unprocessable(render(&page.await?)?))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "service.html")]
pub struct ServicePage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub service: Service,
    /// The names of its environments, beside their ids.
    pub environments: Vec<(Uuid, String)>,
}

pub async fn service_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformViewer>,
    Path((_, name)): Path<(String, String)>,
) -> Result<Html<String>, AppError> {
    let platform = on.platform().clone();
    let service = services::find(&state.pool, platform.id, &name).await?;
    let environments = services::environment_names(&state.pool, &service.environments).await?;
    render(&ServicePage {
        shell: ctx.shell(
            &state,
            "platforms",
            &format!("Service {name} · {}", platform.name),
        ),
        platform,
        tab: "services",
        can_plan: on.can(Action::ViewPlanning),
        service,
        environments,
    })
}
