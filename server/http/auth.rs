//! Who is calling, and CSRF: two middlewares that run before every handler.
//!
//! `authenticate` resolves the caller once per request (API token in `Authorization: Bearer`, or
//! the session cookie) and leaves a [`RequestAuth`] in the request for extractors, and a copy in
//! the response for the error pages. Browsers without a session get a random pre-session cookie,
//! so even the sign-in form carries a CSRF token (login CSRF).
//!
//! `verify_csrf` refuses every state-changing request that a browser's cookies could have
//! authorised unless it carries the token (`_csrf` form field or `x-csrf-token` header). Requests
//! authenticated by a valid API token carry no ambient authority and need none; a bearer header
//! that authenticates nobody is no reason to skip the check.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::auth::{Principal, csrf, random_secret, session, tokens};
use crate::http::error::{AppError, is_api_path};
use crate::http::flash::Flash;

/// The caller as resolved for this request.
#[derive(Debug, Clone, Default)]
pub struct RequestAuth {
    pub principal: Option<Principal>,
    /// A bearer token was presented but is unknown, expired or revoked.
    pub invalid_token: bool,
    /// The CSRF token for forms rendered in this response.
    pub csrf_token: String,
    /// The cookie value the CSRF token is bound to (session or pre-session).
    csrf_basis: Option<String>,
    /// The live session cookie's value, if the caller signed in with one.
    pub session_cookie: Option<String>,
    /// Unread notifications, for the badge of pages (browser sessions only).
    pub unread_notifications: i64,
    /// What the form before this page did, shown once.
    pub flash: Option<Flash>,
}

/// Cookie names and attributes. With https the `__Host-` prefix pins cookies to our origin.
#[derive(Debug, Clone)]
pub struct Cookies {
    pub secure: bool,
}

impl Cookies {
    pub fn session_name(&self) -> &'static str {
        if self.secure {
            "__Host-slipway_session"
        } else {
            "slipway_session"
        }
    }

    pub fn flash_name(&self) -> &'static str {
        if self.secure {
            "__Host-slipway_flash"
        } else {
            "slipway_flash"
        }
    }

    pub fn presession_name(&self) -> &'static str {
        if self.secure {
            "__Host-slipway_csrf"
        } else {
            "slipway_csrf"
        }
    }

    pub const OIDC_STATE: &'static str = "slipway_oidc_state";

    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure under https.
    pub fn set(
        &self,
        name: &str,
        value: &str,
        path: &str,
        max_age_seconds: Option<i64>,
    ) -> HeaderValue {
        let mut text = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
        if let Some(age) = max_age_seconds {
            text.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            text.push_str("; Secure");
        }
        HeaderValue::from_str(&text).expect("cookie values are URL-safe base64")
    }

    pub fn clear(&self, name: &str, path: &str) -> HeaderValue {
        self.set(name, "", path, Some(0))
    }
}

/// The value of cookie `name` in the request, if present.
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let cookies = &state.cookies;
    let mut auth = RequestAuth::default();
    let mut set_cookies: Vec<HeaderValue> = Vec::new();

    // Owned copies: the request (whose body is not `Sync`) must not be borrowed across awaits.
    let headers = request.headers();
    let bearer_token = bearer(headers).map(str::to_owned);
    let session_value = read_cookie(headers, cookies.session_name()).map(str::to_owned);
    let presession_value = read_cookie(headers, cookies.presession_name()).map(str::to_owned);
    let flash_value = read_cookie(headers, cookies.flash_name()).map(str::to_owned);
    let page = !is_api_path(request.uri().path());
    let page_view = request.method() == Method::GET && page;

    let resolved = async {
        if let Some(secret) = &bearer_token {
            auth.principal = tokens::resolve(&state.pool, secret).await?;
            auth.invalid_token = auth.principal.is_none();
        } else if let Some(value) = &session_value {
            let caller = session::resolve(&state.pool, value, state.session_lifetimes()).await?;
            if let Some(caller) = caller {
                auth.principal = Some(caller.principal);
                auth.session_cookie = Some(value.clone());
                auth.csrf_basis = Some(value.clone());
                auth.unread_notifications = caller.unread_notifications;
            } else {
                // Expired or ended elsewhere: drop the dead cookie.
                set_cookies.push(cookies.clear(cookies.session_name(), "/"));
            }
        }
        Ok::<_, AppError>(())
    }
    .await;
    if let Err(e) = resolved {
        return e.into_response();
    }

    if auth.csrf_basis.is_none() && auth.principal.is_none() && !auth.invalid_token {
        match presession_value {
            Some(value) => auth.csrf_basis = Some(value),
            None if page_view => {
                let value = random_secret();
                set_cookies.push(cookies.set(cookies.presession_name(), &value, "/", None));
                auth.csrf_basis = Some(value);
            }
            None => {}
        }
    }
    if let Some(basis) = &auth.csrf_basis {
        auth.csrf_token = state.csrf.token(basis);
    }
    if let Some(code) = flash_value.filter(|_| page_view) {
        auth.flash = Flash::parse(&code);
        set_cookies.push(cookies.clear(cookies.flash_name(), "/"));
    }

    request.extensions_mut().insert(auth.clone());
    let mut response = next.run(request).await;
    if let Some(flash) = response.extensions().get::<Flash>() {
        set_cookies.push(cookies.set(cookies.flash_name(), &flash.code(), "/", Some(60)));
    }
    for value in set_cookies {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response.extensions_mut().insert(auth);
    response
}

/// Whether a request method changes state.
fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub async fn verify_csrf(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !is_unsafe(request.method()) {
        return next.run(request).await;
    }
    let auth = request
        .extensions()
        .get::<RequestAuth>()
        .cloned()
        .unwrap_or_default();
    // Only a request that a valid API token authenticated carries no ambient authority: a
    // browser cannot attach one cross-site. A bearer header that authenticates nobody proves
    // nothing, so it changes nothing here; the sign-in forms, which need no caller, are checked
    // as any other form.
    let token_call = matches!(
        auth.principal.as_ref().map(|p| &p.method),
        Some(crate::auth::AuthMethod::ApiToken { .. })
    );
    // The sign-in forms never skip it, whatever the request carries: a token has no business
    // there, and a login CSRF must not slip through beside one.
    let path = request.uri().path();
    let sign_in_form =
        path == "/login" || path.starts_with("/setup/") || path.starts_with("/invite/");
    // The API without a session cookie has no ambient authority to abuse: it answers 401 itself.
    let cookie_less_api = is_api_path(path) && auth.session_cookie.is_none();
    if (token_call && !sign_in_form) || cookie_less_api {
        return next.run(request).await;
    }

    let (parts, body) = request.into_parts();
    let mut submitted = parts
        .headers
        .get(csrf::HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_form = parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .starts_with(b"application/x-www-form-urlencoded")
    });
    let body = if submitted.is_none() && is_form {
        let bytes = match axum::body::to_bytes(body, crate::app::router::BODY_LIMIT_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => return AppError::PayloadTooLarge.into_response(),
        };
        submitted = form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == csrf::FORM_FIELD)
            .map(|(_, v)| v.into_owned());
        Body::from(bytes)
    } else {
        body
    };
    let valid = match (&auth.csrf_basis, &submitted) {
        (Some(basis), Some(token)) => state.csrf.verify(basis, token),
        _ => false,
    };
    if !valid {
        tracing::warn!(path = %parts.uri.path(), "request refused: missing or wrong CSRF token");
        return AppError::CsrfRejected.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}
