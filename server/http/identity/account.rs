//! Signing in and out (password, first-run setup, invitations, single sign-on) and one's own
//! profile with API tokens. Thin handlers over `auth::accounts`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::accounts::{self, AccountError, NewAccount};
use crate::auth::links::{self, Purpose};
use crate::auth::tokens::ApiToken;
use crate::auth::{AuthMethod, Role, RoleSet, User, UserId, ratelimit, session, tokens, users};
use crate::http::auth::Cookies;
use crate::http::error::AppError;
use crate::http::extract::{Allowed, Authenticated, ClientIp, Ctx, FormFields, ManageOwnAccount};
use crate::http::flash::{Flash, done};
use crate::http::views::{Shell, render};
use crate::validation::FieldErrors;

/// Only paths on this site are followed after sign-in (no open redirect): a path that a
/// browser resolves against our origin, by the WHATWG URL rules, as a path of ours. Browsers
/// drop tabs and newlines from URLs and read `\` as `/`, so `/\t/evil.example` and
/// `/\evil.example` are `//evil.example`, another host: anything with a control character or
/// a backslash, or starting `//`, falls back to `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && n.len() <= 2000 =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A 303 to `location` that also sets the given cookies.
fn see_other(location: &str, cookies: Vec<axum::http::HeaderValue>) -> Response {
    let mut response = Redirect::to(location).into_response();
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// Starts a session for `user` (ending the browser's previous one) and goes to `next`.
async fn sign_in(
    state: &AppState,
    ctx: &Ctx,
    user: &User,
    headers: &HeaderMap,
    ip: Option<std::net::IpAddr>,
    next: &str,
) -> Result<Response, AppError> {
    let lifetimes = state.session_lifetimes();
    let token = session::start(
        &state.pool,
        user.id,
        lifetimes,
        ctx.session_cookie.as_deref(),
        user_agent(headers),
        ip,
    )
    .await?;
    let cookies = &state.cookies;
    Ok(see_other(
        next,
        vec![
            cookies.set(
                cookies.session_name(),
                &token,
                "/",
                Some(lifetimes.absolute.num_seconds()),
            ),
            cookies.clear(cookies.presession_name(), "/"),
        ],
    ))
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub shell: Shell,
    pub next: String,
    pub email: String,
    pub error: Option<String>,
    pub local_login: bool,
    pub sso: bool,
    pub needs_setup: bool,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

async fn login_form(
    state: &AppState,
    ctx: &Ctx,
    next: String,
    email: String,
    error: Option<String>,
) -> Result<LoginPage, AppError> {
    Ok(LoginPage {
        shell: ctx.shell(state, "", "Sign in"),
        next,
        email,
        error,
        local_login: state.config.local_login,
        sso: state.oidc.is_some(),
        needs_setup: users::count(&state.pool).await? == 0,
    })
}

pub async fn login_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<NextQuery>,
) -> Result<Response, AppError> {
    let next = safe_next(query.next.as_deref());
    if ctx.principal.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    Ok(render(&login_form(&state, &ctx, next, String::new(), None).await?)?.into_response())
}

pub async fn login_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: FormFields,
) -> Result<Response, AppError> {
    if !state.config.local_login {
        return Err(AppError::NotFound);
    }
    let next = safe_next(Some(form.get("next")));
    let email = form.get("email").trim().to_owned();
    match accounts::password_login(&state.pool, &email, form.get("password"), ip).await {
        Ok(user) => sign_in(&state, &ctx, &user, &headers, ip, &next).await,
        Err(AccountError::RateLimited) => {
            let message = format!(
                "Too many failed sign-ins for this account or from your network. Wait {} minutes, \
                 then try again, or ask an admin to send you a new password link.",
                ratelimit::WINDOW_MINUTES
            );
            let page = login_form(&state, &ctx, next, email, Some(message)).await?;
            Ok((StatusCode::TOO_MANY_REQUESTS, render(&page)?).into_response())
        }
        Err(AccountError::BadCredentials) => {
            let message = "Wrong e-mail or password.".to_owned();
            let page = login_form(&state, &ctx, next, email, Some(message)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// After signing out: to the sign-in page, without the session cookie.
fn to_sign_in(state: &AppState) -> Response {
    let cookies = &state.cookies;
    let mut response = see_other("/login", vec![cookies.clear(cookies.session_name(), "/")]);
    response.extensions_mut().insert(Flash::SignedOut);
    response
}

pub async fn logout(
    State(state): State<AppState>,
    Allowed(principal, ..): Allowed<ManageOwnAccount>,
) -> Result<Response, AppError> {
    accounts::sign_out(&state.pool, &principal).await?;
    Ok(to_sign_in(&state))
}

pub async fn logout_everywhere(
    State(state): State<AppState>,
    Allowed(principal, ..): Allowed<ManageOwnAccount>,
) -> Result<Response, AppError> {
    accounts::sign_out_everywhere(&state.pool, &principal).await?;
    Ok(to_sign_in(&state))
}

#[derive(Template)]
#[template(path = "account_form.html")]
pub struct AccountFormPage {
    pub shell: Shell,
    pub heading: String,
    pub intro: String,
    pub action: String,
    pub ask_email: bool,
    pub email: String,
    pub name: String,
    pub errors: FieldErrors,
}

fn account_form_response(page: AccountFormPage, status: StatusCode) -> Result<Response, AppError> {
    Ok((
        status,
        [(header::CACHE_CONTROL, "no-store")],
        render(&page)?,
    )
        .into_response())
}

pub async fn setup_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    if links::peek(&state.pool, &token).await? != Some(Purpose::Setup)
        || users::count(&state.pool).await? > 0
    {
        return Err(AppError::LinkInvalid);
    }
    account_form_response(
        setup_form(&state, &ctx, &token, "", "", FieldErrors::default()),
        StatusCode::OK,
    )
}

fn setup_form(
    state: &AppState,
    ctx: &Ctx,
    token: &str,
    email: &str,
    name: &str,
    errors: FieldErrors,
) -> AccountFormPage {
    AccountFormPage {
        shell: ctx.shell(state, "", "Set up Slipway"),
        heading: "Set up Slipway".into(),
        intro: "Create the first admin account. You can invite everyone else afterwards.".into(),
        action: format!("/setup/{token}"),
        ask_email: true,
        email: email.to_owned(),
        name: name.to_owned(),
        errors,
    }
}

pub async fn setup_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: FormFields,
) -> Result<Response, AppError> {
    let account = submitted_account(&form, form.get("email"));
    let created = accounts::complete_setup(&state.pool, &token, account).await;
    let (email, name) = (form.get("email"), form.get("name"));
    signed_in_or_form(&state, &ctx, &headers, ip, created, |errors| {
        setup_form(&state, &ctx, &token, email, name, errors)
    })
    .await
}

/// The account a setup or invitation form submits, `email` where the form does not ask for it.
fn submitted_account<'a>(form: &'a FormFields, email: &'a str) -> NewAccount<'a> {
    NewAccount {
        email,
        name: form.get("name"),
        password: form.get("password"),
        password_confirmation: form.get("password_confirmation"),
    }
}

/// After a setup or invitation form: signed in, or the form again (`form_again`) with each
/// error beside its field.
async fn signed_in_or_form(
    state: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    ip: Option<std::net::IpAddr>,
    created: Result<User, AccountError>,
    form_again: impl FnOnce(FieldErrors) -> AccountFormPage,
) -> Result<Response, AppError> {
    match created {
        Ok(user) => sign_in(state, ctx, &user, headers, ip, "/").await,
        Err(AccountError::Invalid(errors)) => {
            account_form_response(form_again(errors), StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(AccountError::LinkUnusable) => Err(AppError::LinkInvalid),
        Err(e) => Err(e.into()),
    }
}

async fn invited_user(state: &AppState, token: &str) -> Result<User, AppError> {
    match links::peek(&state.pool, token).await? {
        Some(Purpose::SetPassword(id)) => users::find(&state.pool, id)
            .await?
            .ok_or(AppError::LinkInvalid),
        _ => Err(AppError::LinkInvalid),
    }
}

fn invite_form(
    state: &AppState,
    ctx: &Ctx,
    token: &str,
    user: &User,
    name: &str,
    errors: FieldErrors,
) -> AccountFormPage {
    AccountFormPage {
        shell: ctx.shell(state, "", "Choose your password"),
        heading: "Choose your password".into(),
        intro: format!("Welcome to Slipway. Set the password for {}.", user.email),
        action: format!("/invite/{token}"),
        ask_email: false,
        email: user.email.clone(),
        name: name.to_owned(),
        errors,
    }
}

pub async fn invite_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let user = invited_user(&state, &token).await?;
    account_form_response(
        invite_form(
            &state,
            &ctx,
            &token,
            &user,
            &user.name,
            FieldErrors::default(),
        ),
        StatusCode::OK,
    )
}

pub async fn invite_submit(
    State(state): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: FormFields,
) -> Result<Response, AppError> {
    let user = invited_user(&state, &token).await?;
    let account = submitted_account(&form, &user.email);
    let created = accounts::accept_invite(&state.pool, &token, user.id, account).await;
    signed_in_or_form(&state, &ctx, &headers, ip, created, |errors| {
        invite_form(&state, &ctx, &token, &user, form.get("name"), errors)
    })
    .await
}

pub async fn oidc_start(
    State(state): State<AppState>,
    Query(query): Query<NextQuery>,
) -> Result<Response, AppError> {
    let oidc = state.oidc.as_ref().ok_or(AppError::NotFound)?;
    let next = safe_next(query.next.as_deref());
    let (url, browser_state) = oidc.begin(&state.pool, &next).await.map_err(|e| {
        tracing::warn!(error = %e, "single sign-on could not start");
        AppError::Upstream("Single sign-on is unavailable right now: the identity provider cannot be reached. Try again shortly.".into())
    })?;
    let cookie = state
        .cookies
        .set(Cookies::OIDC_STATE, &browser_state, "/auth/oidc", Some(600));
    Ok(see_other(&url, vec![cookie]))
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub async fn oidc_callback(
    State(state): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, AppError> {
    let oidc = state.oidc.as_ref().ok_or(AppError::NotFound)?;
    let browser_state = crate::http::auth::read_cookie(&headers, Cookies::OIDC_STATE);
    let outcome = match (&query.error, &query.code, &query.state) {
        (Some(error), _, _) => Err(format!(
            "The identity provider did not sign you in ({error})."
        )),
        (None, Some(code), Some(returned_state)) => {
            match oidc
                .complete(&state.pool, returned_state, browser_state, code)
                .await
            {
                Ok(identity) => match accounts::sso_login(&state.pool, &identity).await {
                    Ok(user) => Ok((user, identity.next_path)),
                    Err(AccountError::NoRoles) => Err(
                        "You signed in, but none of your groups gives a Slipway role. Ask your \
                         platform lead to add you to the right group."
                            .to_owned(),
                    ),
                    Err(e) => return Err(e.into()),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "single sign-on refused");
                    accounts::sso_refused(&state.pool, &e.to_string(), ip).await?;
                    Err(format!("Single sign-on failed: {e}."))
                }
            }
        }
        _ => Err("The identity provider's answer is incomplete; start again.".to_owned()),
    };
    let clear_state = state.cookies.clear(Cookies::OIDC_STATE, "/auth/oidc");
    match outcome {
        Ok((user, next)) => {
            let mut response = sign_in(&state, &ctx, &user, &headers, ip, &next).await?;
            response
                .headers_mut()
                .append(header::SET_COOKIE, clear_state);
            Ok(response)
        }
        Err(message) => {
            let page = login_form(&state, &ctx, "/".into(), String::new(), Some(message)).await?;
            let mut response = (StatusCode::BAD_REQUEST, render(&page)?).into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, clear_state);
            Ok(response)
        }
    }
}

#[derive(Template)]
#[template(path = "profile.html")]
pub struct ProfilePage {
    pub shell: Shell,
    pub user: User,
    pub via_token: bool,
    pub sessions: i64,
    pub tokens: Vec<ApiToken>,
    pub roles: Vec<Role>,
    pub new_token: Option<(String, String)>,
    pub form_name: String,
    pub errors: FieldErrors,
}

async fn profile(
    state: &AppState,
    ctx: &Ctx,
    principal: &crate::auth::Principal,
    new_token: Option<(String, String)>,
    form_name: String,
    errors: FieldErrors,
) -> Result<ProfilePage, AppError> {
    Ok(ProfilePage {
        shell: ctx.shell(state, "profile", "Your profile"),
        user: principal.user.clone(),
        via_token: matches!(principal.method, AuthMethod::ApiToken { .. }),
        sessions: session::count_live(&state.pool, principal.user.id, state.session_lifetimes())
            .await?,
        tokens: tokens::list_for(&state.pool, principal.user.id).await?,
        roles: principal.user.roles.iter().collect(),
        new_token,
        form_name,
        errors,
    })
}

pub async fn profile_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Authenticated(principal): Authenticated,
) -> Result<Html<String>, AppError> {
    render(
        &profile(
            &state,
            &ctx,
            &principal,
            None,
            String::new(),
            FieldErrors::default(),
        )
        .await?,
    )
}

pub async fn token_create(
    State(state): State<AppState>,
    ctx: Ctx,
    Allowed(principal, ..): Allowed<ManageOwnAccount>,
    form: FormFields,
) -> Result<Response, AppError> {
    let roles: RoleSet = form.all("roles").filter_map(Role::parse).collect();
    let result = accounts::create_token(
        &state.pool,
        &principal,
        form.get("name"),
        &roles,
        form.get("expires"),
    )
    .await;
    let headers = [(header::CACHE_CONTROL, "no-store")];
    match result {
        Ok((token, secret)) => {
            let page = profile(
                &state,
                &ctx,
                &principal,
                Some((token.name, secret)),
                String::new(),
                FieldErrors::default(),
            )
            .await?;
            Ok((StatusCode::CREATED, headers, render(&page)?).into_response())
        }
        Err(AccountError::Invalid(errors)) => {
            let page = profile(
                &state,
                &ctx,
                &principal,
                None,
                form.get("name").to_owned(),
                errors,
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, headers, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn token_revoke(
    State(state): State<AppState>,
    Allowed(principal, ..): Allowed<ManageOwnAccount>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    if accounts::revoke_token(&state.pool, &principal, id).await? {
        Ok(done("/profile", Flash::TokenRevoked))
    } else {
        Err(AppError::NotFound)
    }
}

/// The user id of a path segment; anything else is simply not found.
pub fn parse_user_id(text: &str) -> Result<UserId, AppError> {
    uuid::Uuid::parse_str(text)
        .map(UserId)
        .map_err(|_| AppError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_a_path_of_this_site_or_the_overview() {
        for good in [
            "/",
            "/platforms/shop",
            "/environments?view=pending",
            "/a%2F%2Fb",
        ] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/\0",
            "/x\u{7f}",
            "\\\\evil.example",
            "https://evil.example/",
            "evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
