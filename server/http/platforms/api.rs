//! Platforms, their members and their technical scope in the JSON API (`/api/v1/platforms`).

use crate::http::json::{TypedJson, field_error};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::UserId;
use crate::auth::{Action, Subject};
use crate::define::platforms::{self, Member, NewMember, NewPlatform, Platform};
use crate::define::scope::{self, Scope, Timebox};
use crate::http::error::AppError;
use crate::http::extract::{
    Allowed, Authenticated, CreatePlatform, OnPlatform, PlatformEditor, PlatformPlanner,
    PlatformViewer, authorize,
};
use crate::http::paging::{Page, page, parse_limit};

/// A platform as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlatformView {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub owner_team: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub archived: bool,
}

impl From<&Platform> for PlatformView {
    fn from(p: &Platform) -> Self {
        PlatformView {
            slug: p.slug.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            owner_team: p.owner_team.clone(),
            created_at: p.created_at,
            archived: p.archived_at.is_some(),
        }
    }
}

/// The body of `POST /api/v1/platforms`; the owner team defaults to the name.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewPlatformBody {
    slug: Option<String>,
    name: Option<String>,
    description: Option<String>,
    owner_team: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/platforms",
    tag = "platforms",
    request_body = NewPlatformBody,
    responses((status = 201, description = "The platform", body = PlatformView), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn create_platform(
    State(state): State<AppState>,
    allowed: Allowed<CreatePlatform>,
    TypedJson(body): TypedJson<NewPlatformBody>,
) -> Result<(StatusCode, Json<PlatformView>), AppError> {
    let name = body.name.as_deref().unwrap_or_default();
    let new = NewPlatform {
        slug: body.slug.as_deref().unwrap_or_default(),
        name,
        description: body.description.as_deref().unwrap_or_default(),
        owner_team: body.owner_team.as_deref().unwrap_or(name),
    };
    let platform = platforms::create(&state.pool, &new, allowed.principal()).await?;
    Ok((StatusCode::CREATED, Json(PlatformView::from(&platform))))
}

#[derive(Deserialize)]
pub struct ListQuery {
    archived: Option<bool>,
    limit: Option<String>,
    after: Option<String>,
}

/// `?archived=true` includes archived platforms.
#[utoipa::path(
    get,
    path = "/api/v1/platforms",
    tag = "platforms",
    params(("archived" = Option<bool>, Query, description = "Include archived platforms"), ("limit" = Option<String>, Query, description = "Items per page, 1 to 200 (default 50)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses((status = 200, description = "Platforms", body = Page<PlatformView>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn list_platforms(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<PlatformView>>, AppError> {
    authorize(
        &principal,
        Action::ViewPlatform,
        Subject::Platform { member: false },
    )?;
    let all = platforms::list(&state.pool, query.archived.unwrap_or(false)).await?;
    let limit = parse_limit(query.limit.as_deref())?;
    let (items, next) = page(all, |p| p.slug.clone(), limit, query.after.as_deref())?;
    let items = items.iter().map(PlatformView::from).collect();
    Ok(Json(Page { items, next }))
}

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}",
    tag = "platforms",
    params(("slug" = String, Path, description = "The platform's short name")),
    responses((status = 200, description = "The platform", body = PlatformView), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn get_platform(on: OnPlatform<PlatformViewer>) -> Json<PlatformView> {
    Json(PlatformView::from(on.platform()))
}

/// The technical scope with its Define timebox as of today.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ScopeView {
    #[serde(flatten)]
    pub scope: Scope,
    pub timebox: Timebox,
}

impl ScopeView {
    fn new(scope: Scope, state: &AppState) -> Self {
        ScopeView {
            timebox: scope.timebox(state.clock.today()),
            scope,
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/scope",
    tag = "platforms",
    params(("slug" = String, Path, description = "The platform's short name")),
    responses((status = 200, description = "The technical scope with its timebox", body = ScopeView), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn get_scope(
    State(state): State<AppState>,
    on: OnPlatform<PlatformPlanner>,
) -> Result<Json<ScopeView>, AppError> {
    let scope = scope::load(&state.pool, on.platform().id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(ScopeView::new(scope, &state)))
}

#[utoipa::path(
    put,
    path = "/api/v1/platforms/{slug}/scope",
    tag = "platforms",
    params(("slug" = String, Path, description = "The platform's short name")),
    request_body = Scope,
    responses((status = 200, description = "The saved scope", body = ScopeView), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn put_scope(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    TypedJson(scope): TypedJson<Scope>,
) -> Result<Json<ScopeView>, AppError> {
    scope::save(&state.pool, on.platform(), &scope, &on.principal).await?;
    Ok(Json(ScopeView::new(scope, &state)))
}

/// `GET /api/v1/platforms/{slug}/members`: who may edit, review and approve for the platform.
#[utoipa::path(
    get,
    path = "/api/v1/platforms/{slug}/members",
    tag = "platforms",
    params(("slug" = String, Path, description = "The platform's short name")),
    responses((status = 200, description = "The members", body = Page<Member>), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn list_members(
    State(state): State<AppState>,
    on: OnPlatform<PlatformViewer>,
) -> Result<Json<Page<Member>>, AppError> {
    let items = platforms::members(&state.pool, on.platform().id).await?;
    Ok(Json(Page { items, next: None }))
}

/// The body of `POST …/members`: the user by e-mail address or by id, exactly one of them.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    email: Option<String>,
    user_id: Option<uuid::Uuid>,
}

/// `POST /api/v1/platforms/{slug}/members`: 201 with the new member, 200 when they already
/// were one.
#[utoipa::path(
    post,
    path = "/api/v1/platforms/{slug}/members",
    tag = "platforms",
    params(("slug" = String, Path, description = "The platform's short name")),
    request_body = AddMember,
    responses((status = 201, description = "Added", body = crate::define::platforms::Member), (status = 200, description = "Already a member", body = crate::define::platforms::Member), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn add_member(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    TypedJson(body): TypedJson<AddMember>,
) -> Result<(StatusCode, Json<Member>), AppError> {
    let who = match (&body.email, body.user_id) {
        (Some(email), None) => NewMember::Email(email),
        (None, Some(id)) => NewMember::Id(UserId(id)),
        _ => return Err(field_error("", "Give either `email` or `user_id`.")),
    };
    let (member, added) =
        platforms::add_member_as(&state.pool, on.platform(), who, &on.principal).await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(member)))
}

/// `DELETE /api/v1/platforms/{slug}/members/{user_id}`: 204; 404 when they are not a member.
#[utoipa::path(
    delete,
    path = "/api/v1/platforms/{slug}/members/{user_id}",
    tag = "platforms",
    params(("slug" = String, Path, description = "The platform's short name"), ("user_id" = uuid::Uuid, Path, description = "The member's user id")),
    responses((status = 204, description = "Removed"), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 404, description = "Not found, or not visible to the caller", body = crate::http::error::Problem))
)]
pub async fn remove_member(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
    Path((_, user)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let user = uuid::Uuid::parse_str(&user).map_err(|_| AppError::NotFound)?;
    if !platforms::remove_member_by_id(&state.pool, on.platform(), UserId(user), &on.principal)
        .await?
    {
        return Err(AppError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}
