//! The one application error type of the HTTP layer, and the single place that turns any error
//! response into what the caller can read: an HTML page for the browser, an RFC 9457 problem
//! document (`application/problem+json`) for `/api/...`.
//!
//! Handlers return [`AppError`]; its `IntoResponse` only attaches a [`Problem`] to an empty
//! response. The [`render_errors`] middleware then renders every error response once, also those
//! produced outside our handlers (axum's extractor rejections, the body limit, the timeout, a
//! caught panic), so no route can answer an error in another shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use crate::validation::{FieldError, FieldErrors};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("authentication required")]
    Unauthorized,
    #[error("forbidden")]
    Forbidden,
    /// Forbidden, with the reason the caller can act on ("someone else must decide it").
    #[error("forbidden: {0}")]
    ForbiddenBecause(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// A save on top of a revision that is no longer the latest, with what changed since.
    #[error("conflict: {0}")]
    StaleRevision(String, StaleRevision),
    #[error("invalid API token")]
    InvalidToken,
    #[error("missing or wrong CSRF token")]
    CsrfRejected,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("too many requests")]
    TooManyRequests(String),
    /// A one-time link that was used, expired or never existed.
    #[error("link not valid")]
    LinkInvalid,
    /// A service we depend on (the identity provider) failed.
    #[error("upstream failure: {0}")]
    Upstream(String),
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// A path or query parameter that cannot be right whatever the route (a control character).
    #[error("invalid parameter")]
    BadParameter(Vec<FieldError>),
    /// The database cannot be reached (restarting, failed over, out of connections): a 503
    /// the caller may retry, not a bug.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(sqlx::Error),
    /// Anything unexpected: logged in full, shown to the user only as a request id.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&e) {
            AppError::DatabaseUnavailable(e)
        } else {
            AppError::Internal(e.into())
        }
    }
}

impl From<crate::auth::accounts::AccountError> for AppError {
    fn from(e: crate::auth::accounts::AccountError) -> Self {
        use crate::auth::accounts::AccountError as E;
        match e {
            E::Invalid(errors) => AppError::Validation(errors.0),
            E::RateLimited => {
                AppError::TooManyRequests("Too many failed sign-ins; wait and try again.".into())
            }
            E::BadCredentials => AppError::Unauthorized,
            E::LinkUnusable => AppError::LinkInvalid,
            E::NoRoles => AppError::Forbidden,
            E::Db(e) => AppError::from(e),
        }
    }
}

impl From<crate::define::DefineError> for AppError {
    fn from(e: crate::define::DefineError) -> Self {
        use crate::define::DefineError as E;
        match e {
            E::NotFound => AppError::NotFound,
            E::Stale {
                base,
                latest,
                changes,
            } => AppError::StaleRevision(
                format!(
                    "Revision {latest} was saved after revision {base}, which you edited. \
                     Nothing was saved: start again from revision {latest} (`changes` lists how \
                     it differs from what you sent)."
                ),
                StaleRevision {
                    latest_revision: latest,
                    changes,
                },
            ),
            E::WrongState(state) => {
                AppError::Conflict(format!("The revision is {state}, so this is not possible."))
            }
            E::SelfApproval => AppError::ForbiddenBecause(
                "You wrote this revision: another platform engineer must review it.".into(),
            ),
            E::Invalid(errors) => AppError::Validation(errors.0),
            E::Archived => {
                AppError::Conflict("The platform is archived; it no longer changes.".into())
            }
            E::NoApprovedBlueprint => AppError::Conflict(
                "The platform has no approved blueprint yet: approve one first.".into(),
            ),
            E::Db(e) => AppError::from(e),
        }
    }
}

impl From<crate::environments::EnvironmentError> for AppError {
    fn from(e: crate::environments::EnvironmentError) -> Self {
        use crate::environments::EnvironmentError as E;
        match e {
            E::NotFound => AppError::NotFound,
            E::Invalid(errors) => AppError::Validation(errors.0),
            E::Conflict(detail) => AppError::Conflict(detail),
            E::NotAllowed(detail) => AppError::ForbiddenBecause(detail),
            E::Db(e) => AppError::from(e),
            E::Enqueue(e) => AppError::Internal(e.into()),
        }
    }
}

impl From<crate::teams::TeamError> for AppError {
    fn from(e: crate::teams::TeamError) -> Self {
        use crate::teams::TeamError as E;
        match e {
            E::NotFound => AppError::NotFound,
            E::Invalid(errors) => AppError::Validation(errors.0),
            E::Conflict(detail) => AppError::Conflict(detail),
            E::Db(e) => AppError::from(e),
        }
    }
}

impl From<crate::exploit::ExploitError> for AppError {
    fn from(e: crate::exploit::ExploitError) -> Self {
        use crate::exploit::ExploitError as E;
        match e {
            E::NotFound => AppError::NotFound,
            E::Invalid(errors) => AppError::Validation(errors.0),
            E::NotReady(state) => AppError::Conflict(format!(
                "The environment is {}: its hand-over is here once it is ready.",
                state.label().to_lowercase()
            )),
            E::Forbidden(why) => AppError::ForbiddenBecause(why),
            E::Conflict(what) => AppError::Conflict(what),
            E::Db(e) => AppError::from(e),
        }
    }
}

/// What an error response says, before it is rendered for its audience.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Extension members (RFC 9457 §3.2) of a 409 for a stale revision.
    #[serde(flatten)]
    pub stale: Option<StaleRevision>,
}

/// What a 409 for a stale revision adds: the latest revision, and how it differs from the
/// document that was sent.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StaleRevision {
    pub latest_revision: i32,
    pub changes: Vec<crate::define::diff::Change>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            request_id: None,
            stale: None,
        }
    }

    /// The standard explanation of a status, for errors that carry no words of their own.
    pub fn for_status(status: StatusCode) -> Self {
        let detail = match status {
            StatusCode::NOT_FOUND => "There is nothing at this address, or you may not see it.",
            StatusCode::METHOD_NOT_ALLOWED => "This address does not accept that method.",
            StatusCode::UNAUTHORIZED => "Sign in to continue.",
            StatusCode::FORBIDDEN => "You are not allowed to do this.",
            StatusCode::PAYLOAD_TOO_LARGE => "The request body is larger than Slipway accepts.",
            StatusCode::GATEWAY_TIMEOUT => {
                "The request took too long and was stopped. Try again in a moment."
            }
            s if s.is_server_error() => {
                "Something went wrong on our side. It has been logged; quote the request id if \
                 you report it."
            }
            _ => "The request could not be processed.",
        };
        Self::new(status, detail)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let problem = match self {
            AppError::NotFound => Problem::for_status(StatusCode::NOT_FOUND),
            AppError::MethodNotAllowed => Problem::for_status(StatusCode::METHOD_NOT_ALLOWED),
            AppError::Unauthorized => Problem::for_status(StatusCode::UNAUTHORIZED),
            AppError::Forbidden => Problem::for_status(StatusCode::FORBIDDEN),
            AppError::ForbiddenBecause(detail) => Problem::new(StatusCode::FORBIDDEN, detail),
            AppError::Conflict(detail) => Problem::new(StatusCode::CONFLICT, detail),
            AppError::StaleRevision(detail, stale) => Problem {
                stale: Some(stale),
                ..Problem::new(StatusCode::CONFLICT, detail)
            },
            AppError::InvalidToken => Problem::new(
                StatusCode::UNAUTHORIZED,
                "The API token is unknown, expired or revoked. Create a new one on your profile page.",
            ),
            AppError::CsrfRejected => Problem::new(
                StatusCode::FORBIDDEN,
                "This form has expired or was not sent from a Slipway page, so nothing was changed. \
                 Go back, reload the page and try again.",
            ),
            AppError::PayloadTooLarge => Problem::for_status(StatusCode::PAYLOAD_TOO_LARGE),
            AppError::TooManyRequests(detail) => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, detail)
            }
            AppError::LinkInvalid => Problem::new(
                StatusCode::NOT_FOUND,
                "This link is not valid: it was already used, it expired, or it was replaced by a \
                 newer one. Ask an admin for a new link.",
            ),
            AppError::Upstream(detail) => Problem::new(StatusCode::BAD_GATEWAY, detail),
            AppError::Validation(errors) => Problem {
                errors,
                ..Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Some fields are not valid; see `errors`.",
                )
            },
            AppError::BadParameter(errors) => Problem {
                errors,
                ..Problem::new(
                    StatusCode::BAD_REQUEST,
                    "A path or query parameter is not valid; see `errors`.",
                )
            },
            AppError::DatabaseUnavailable(error) => {
                tracing::warn!(error = %error, "request failed: the database is unavailable");
                let mut response = StatusCode::SERVICE_UNAVAILABLE.into_response();
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("5"),
                );
                response.extensions_mut().insert(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Slipway cannot reach its database right now. Try again in a few seconds; if \
                     you were saving something, check first whether it was saved.",
                ));
                return response;
            }
            AppError::Internal(error) => {
                // Logged here, once, with its whole chain; the response tells nothing of it.
                tracing::error!(error = format!("{error:#}"), "request failed");
                Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        };
        let mut response = StatusCode::from_u16(problem.status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
        response.extensions_mut().insert(problem);
        response
    }
}

/// Whether the route belongs to the JSON API, whose errors are problem documents.
pub fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Percent-encodes a query value (for `next=` links).
pub fn encode_query_value(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
