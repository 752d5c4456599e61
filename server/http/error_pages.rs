//! The middleware that dresses every error response once, for its audience: a problem document
//! (`application/problem+json`) under `/api`, an error page in the shell elsewhere, the sign-in
//! redirect for a browser that is not signed in. Kept apart from [`super::error`], which the
//! page shell itself depends on.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use crate::app::AppState;
use crate::http::auth::RequestAuth;
use crate::http::error::{Problem, encode_query_value, is_api_path};
use crate::http::extract::Ctx;
use crate::http::views::{self, ErrorPage};

/// Renders every error response (status ≥ 400) that is not already a finished page or document.
pub async fn render_errors(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let api = is_api_path(request.uri().path());
    let wanted = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let is_get = request.method() == axum::http::Method::GET;
    let request_id = request
        .headers()
        .get(crate::app::router::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status();
    if !status.is_client_error() && !status.is_server_error() {
        return response;
    }

    let (mut parts, body) = response.into_parts();
    let auth = parts.extensions.remove::<RequestAuth>().unwrap_or_default();
    let mut problem = match parts.extensions.remove::<Problem>() {
        Some(problem) => problem,
        None => {
            // Only bare responses (no body, or axum's plain-text rejections) are ours to dress;
            // a handler's own HTML form with errors or a JSON document passes untouched.
            let plain = parts
                .headers
                .get(header::CONTENT_TYPE)
                .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
            if !plain {
                return Response::from_parts(parts, body);
            }
            let mut problem = Problem::for_status(status);
            if status.is_client_error() && status != StatusCode::NOT_FOUND {
                // Rejection texts are written for clients ("Failed to deserialize form body:
                // missing field `name`"); server-side texts are not shown.
                if let Ok(bytes) = axum::body::to_bytes(body, 4096).await {
                    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
                    if !text.is_empty() {
                        problem.detail = text;
                    }
                }
            }
            problem
        }
    };
    problem.request_id = request_id;

    if status == StatusCode::UNAUTHORIZED && !api {
        // A browser that is not signed in goes to the sign-in page, and comes back afterwards.
        let next = if is_get { wanted } else { "/".to_owned() };
        let location = format!("/login?next={}", encode_query_value(&next));
        let mut redirect = axum::response::Redirect::to(&location).into_response();
        for cookie in parts.headers.get_all(header::SET_COOKIE) {
            redirect
                .headers_mut()
                .append(header::SET_COOKIE, cookie.clone());
        }
        return redirect;
    }

    parts.headers.remove(header::CONTENT_LENGTH);
    if api {
        if status == StatusCode::UNAUTHORIZED {
            parts
                .headers
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        Response::from_parts(parts, Body::from(body))
    } else {
        let page = ErrorPage {
            shell: Ctx::from_auth(auth).shell(&state, "", &problem.title),
            problem: &problem,
        };
        match views::render(&page) {
            Ok(Html(html)) => {
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                Response::from_parts(parts, Body::from(html))
            }
            Err(_) => Response::from_parts(parts, Body::from(problem.detail)),
        }
    }
}
