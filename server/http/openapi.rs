//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' `#[utoipa::path]`
//! annotations and the body types they name, served at `GET /api/v1/openapi.json` and rendered
//! as the API reference page. `tests/openapi.rs` fails when a route of the route table is missing
//! here or documented with another method.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::response::Html;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::app::AppState;
use crate::http::error::AppError;
use crate::http::extract::{Allowed, Ctx, UsePortal};
use crate::http::views::{Shell, render};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Slipway API",
        description = "The public contract of Slipway: JSON in and out, errors as RFC 9457 problem documents, lists as `{items, next}`. Authenticate with `Authorization: Bearer slw_…` (an API token) or the browser session (then CSRF applies).",
    ),
    paths(
        crate::http::identity::api::me,
        crate::http::admin::audit::audit,
        crate::http::platforms::api::create_platform,
        crate::http::platforms::api::list_platforms,
        crate::http::platforms::api::get_platform,
        crate::http::platforms::api::list_members,
        crate::http::platforms::api::add_member,
        crate::http::platforms::api::remove_member,
        crate::http::platforms::api::get_scope,
        crate::http::platforms::api::put_scope,
        crate::http::blueprints::api::create_revision,
        crate::http::blueprints::api::list_revisions,
        crate::http::blueprints::api::get_revision,
        crate::http::blueprints::api::submit_revision,
        crate::http::blueprints::api::review_revision,
        crate::http::blueprints::api::diff_revisions,
        crate::http::blueprints::api::environment_types,
        crate::http::backlog::api::generate_backlog,
        crate::http::backlog::api::list_backlog,
        crate::http::backlog::api::create_item,
        crate::http::backlog::api::patch_item,
        crate::http::environments::api::create,
        crate::http::environments::api::list,
        crate::http::environments::api::get,
        crate::http::environments::api::plan,
        crate::http::environments::api::events,
        crate::http::environments::api::approve,
        crate::http::environments::api::reject,
        crate::http::environments::api::cancel,
        crate::http::environments::api::extend,
        crate::http::environments::api::teardown,
        crate::http::environments::api::retry,
        crate::http::environments::api::devops_environment,
        crate::http::notifications::api::notifications,
        crate::http::notifications::api::notifications_read,
        crate::http::jobs::api_jobs,
        crate::http::jobs::api_job,
        crate::http::jobs::api_retry,
        crate::http::jobs::api_cancel,
        crate::http::account_pool::api_account_pool,
        crate::http::maintain::api_maintain,
        crate::http::cost::api_cost,
        crate::http::versions::api_versions,
        crate::http::versions::api_correct,
        crate::http::drift::api_drift,
        crate::http::drift::api_check,
        crate::http::drift::api_accept,
        crate::http::drift::api_reconcile,
        crate::http::upgrade::api_preview,
        crate::http::upgrade::api_request,
        crate::http::upgrade::api_approve,
        crate::http::upgrade::api_reject,
        crate::http::upgrade::api_cancel,
        crate::http::upgrade::api_retry,
        crate::http::rollout::api_overview,
        crate::http::rollout::api_start,
        crate::http::rollout::api_get,
        crate::http::rollout::api_approve,
        crate::http::rollout::api_pause,
        crate::http::rollout::api_resume,
        crate::http::rollout::api_skip,
        crate::http::rollout::api_roll_back,
        crate::http::teams::api_list,
        crate::http::teams::api_create,
        crate::http::teams::api_get,
        crate::http::teams::api_update,
        crate::http::teams::api_delete,
        crate::http::services::api_list,
        crate::http::services::api_create,
        crate::http::services::api_get,
        crate::http::handover::api_handover,
        crate::http::catalog::api_entities,
        crate::http::catalog::api_catalog_info,
        openapi_json,
    ),
    // The probes are outside `/api/v1`, so only their answers are here.
    components(schemas(
        crate::http::error::Problem,
        crate::validation::FieldError,
        crate::http::health::Liveness,
        crate::http::health::Readiness
    )),
    modifiers(&BearerToken),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// Declares the API token as the bearer scheme every operation uses.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("slw_…")
                    .build(),
            ),
        );
    }
}

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(ApiDoc::openapi)
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "This document", body = serde_json::Value),
        (status = 401, description = "Not signed in", body = crate::http::error::Problem)
    )
)]
pub async fn openapi_json(_: Allowed<UsePortal>) -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}

/// One operation as the reference page lists it.
pub struct OperationRow {
    pub method: &'static str,
    pub path: String,
    pub anchor: String,
    pub tag: String,
    pub summary: String,
    pub parameters: Vec<(String, &'static str, bool)>,
    pub request_body: bool,
    pub responses: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "api_reference.html")]
pub struct ReferencePage {
    pub shell: Shell,
    pub operations: &'static [OperationRow],
}

/// The reference page's rows, built once from the document.
fn rows() -> &'static [OperationRow] {
    static ROWS: std::sync::OnceLock<Vec<OperationRow>> = std::sync::OnceLock::new();
    ROWS.get_or_init(build_rows)
}

fn build_rows() -> Vec<OperationRow> {
    let mut rows = Vec::new();
    for (path, item) in &document().paths.paths {
        let operations: [(&'static str, &Option<Operation>); 5] = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, operation) in operations {
            let Some(op) = operation else { continue };
            let parameters = op
                .parameters
                .iter()
                .flatten()
                .map(|p| {
                    let place = match p.parameter_in {
                        ParameterIn::Path => "path",
                        ParameterIn::Query => "query",
                        ParameterIn::Header => "header",
                        ParameterIn::Cookie => "cookie",
                    };
                    let required = matches!(p.required, utoipa::openapi::Required::True);
                    (p.name.clone(), place, required)
                })
                .collect();
            let responses = op
                .responses
                .responses
                .iter()
                .map(|(status, response)| {
                    let description = match response {
                        utoipa::openapi::RefOr::T(r) => r.description.clone(),
                        utoipa::openapi::RefOr::Ref(r) => r.ref_location.clone(),
                    };
                    (status.clone(), description)
                })
                .collect();
            rows.push(OperationRow {
                method,
                anchor: format!("{method}{path}").replace(['/', '{', '}'], "-"),
                path: path.clone(),
                tag: op.tags.iter().flatten().next().cloned().unwrap_or_default(),
                summary: op.summary.clone().unwrap_or_default(),
                parameters,
                request_body: op.request_body.is_some(),
                responses,
            });
        }
    }
    rows.sort_by(|a, b| (&a.tag, &a.path).cmp(&(&b.tag, &b.path)));
    rows
}

/// `GET /docs/api`: the API reference, rendered from the same document.
pub async fn reference_page(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<UsePortal>,
) -> Result<Html<String>, AppError> {
    render(&ReferencePage {
        shell: ctx.shell(&state, "api", "API reference"),
        operations: rows(),
    })
}
