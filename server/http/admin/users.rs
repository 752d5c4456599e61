//! Administration: users (invite, roles).

use crate::http::flash::{Flash, done};
use crate::http::paging::{PAGE_SIZE, bad_cursor, decode_cursor, encode_cursor};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::audit::Actor;
use crate::auth::accounts::{self, AccountError};
use crate::auth::users::{self, RoleChangeError};
use crate::auth::{Role, RoleSet, User};
use crate::http::error::AppError;
use crate::http::extract::{Allowed, Ctx, FormFields, ManageUsers};
use crate::http::identity::account::parse_user_id;
use crate::http::views::{Shell, render};
use crate::validation::FieldErrors;

#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub shell: Shell,
    pub users: Vec<User>,
    pub next: Option<String>,
    pub all_roles: [Role; 3],
    pub invite_link: Option<(String, String)>,
    pub form_email: String,
    pub form_name: String,
    pub errors: FieldErrors,
    pub notice: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    after: Option<String>,
}

async fn users_view(
    state: &AppState,
    ctx: &Ctx,
    after: Option<&str>,
) -> Result<UsersPage, AppError> {
    let cursor = match after {
        Some(c) => Some(decode_cursor::<uuid::Uuid>(c).ok_or_else(|| bad_cursor("after"))?),
        None => None,
    };
    let mut users = users::list(&state.pool, cursor, PAGE_SIZE + 1).await?;
    let next = (users.len() as i64 > PAGE_SIZE).then(|| {
        users.truncate(PAGE_SIZE as usize);
        let last = users.last().expect("a full page has a last row");
        encode_cursor(last.created_at, last.id)
    });
    Ok(UsersPage {
        shell: ctx.shell(state, "users", "Users"),
        users,
        next,
        all_roles: Role::ALL,
        invite_link: None,
        form_email: String::new(),
        form_name: String::new(),
        errors: FieldErrors::default(),
        notice: None,
    })
}

pub async fn users_page(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<ManageUsers>,
    Query(query): Query<PageQuery>,
) -> Result<Html<String>, AppError> {
    render(&users_view(&state, &ctx, query.after.as_deref()).await?)
}

pub async fn user_invite(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Allowed<ManageUsers>,
    form: FormFields,
) -> Result<Response, AppError> {
    let roles: RoleSet = form.all("roles").filter_map(Role::parse).collect();
    let result = accounts::invite(
        &state.pool,
        &Actor::from(admin.principal()),
        form.get("email"),
        form.get("name"),
        &roles,
    )
    .await;
    let mut page = users_view(&state, &ctx, None).await?;
    let status = match result {
        Ok((_, token)) => {
            page.invite_link = Some((
                form.get("email").trim().to_owned(),
                format!("{}/invite/{token}", state.public_url),
            ));
            StatusCode::CREATED
        }
        Err(AccountError::Invalid(errors)) => {
            page.errors = errors;
            page.form_email = form.get("email").to_owned();
            page.form_name = form.get("name").to_owned();
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(e) => return Err(e.into()),
    };
    // The link is shown once; do not let it linger in caches.
    Ok((
        status,
        [(header::CACHE_CONTROL, "no-store")],
        render(&page)?,
    )
        .into_response())
}

pub async fn user_roles(
    State(state): State<AppState>,
    ctx: Ctx,
    admin: Allowed<ManageUsers>,
    Path(id): Path<String>,
    form: FormFields,
) -> Result<Response, AppError> {
    let id = parse_user_id(&id)?;
    let roles: RoleSet = form.all("roles").filter_map(Role::parse).collect();
    match accounts::change_roles(&state.pool, admin.principal(), id, &roles).await {
        Ok(()) => Ok(done("/admin/users", Flash::RolesChanged)),
        Err(RoleChangeError::NotFound) => Err(AppError::NotFound),
        Err(e @ (RoleChangeError::LastAdmin | RoleChangeError::SsoManaged)) => {
            let mut page = users_view(&state, &ctx, None).await?;
            page.notice = Some(format!("Roles not changed: {e}."));
            Ok((StatusCode::CONFLICT, render(&page)?).into_response())
        }
        Err(RoleChangeError::Db(e)) => Err(e.into()),
    }
}
