//! The router: every route in one table, and the middleware stack around it.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use super::AppState;
use crate::http::error::AppError;
use crate::http::{
    account_pool, admin, approvals, assets, auth, backlog, blueprints, catalog, cost, drift,
    environments, error_pages, extract, handover, health, home, idempotency, identity, jobs,
    maintain, notifications, openapi, platforms, rollout, search, services, teams, upgrade,
    versions,
};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Request bodies larger than this are refused with 413 before any handler reads them.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// Scripts, styles and images only from our own origin, no inline script, never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     object-src 'none'; frame-ancestors 'none'";

/// One route: method, path pattern and handler. The router is built from this table, and the
/// authorization and CSRF tests walk the same table, so no route escapes them.
pub struct RouteDef {
    pub method: Method,
    pub path: &'static str,
    pub handler: MethodRouter<AppState>,
}

fn route(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> RouteDef {
    RouteDef {
        method,
        path,
        handler,
    }
}

/// Every route of the application.
pub fn route_table() -> Vec<RouteDef> {
    use Method as M;
    vec![
        route(M::GET, "/", get(home::overview)),
        route(M::GET, "/status", get(home::status)),
        route(M::GET, "/search", get(search::search_page)),
        route(M::GET, "/healthz", get(health::healthz)),
        route(M::GET, "/readyz", get(health::readyz)),
        route(M::GET, "/static/{file}", get(assets::serve)),
        // Signing in and out.
        route(M::GET, "/login", get(identity::account::login_page)),
        route(M::POST, "/login", post(identity::account::login_submit)),
        route(M::POST, "/logout", post(identity::account::logout)),
        route(
            M::POST,
            "/logout/everywhere",
            post(identity::account::logout_everywhere),
        ),
        route(M::GET, "/setup/{token}", get(identity::account::setup_page)),
        route(
            M::POST,
            "/setup/{token}",
            post(identity::account::setup_submit),
        ),
        route(
            M::GET,
            "/invite/{token}",
            get(identity::account::invite_page),
        ),
        route(
            M::POST,
            "/invite/{token}",
            post(identity::account::invite_submit),
        ),
        route(
            M::GET,
            "/auth/oidc/login",
            get(identity::account::oidc_start),
        ),
        route(
            M::GET,
            "/auth/oidc/callback",
            get(identity::account::oidc_callback),
        ),
        // One's own account.
        route(M::GET, "/profile", get(identity::account::profile_page)),
        route(
            M::POST,
            "/profile/tokens",
            post(identity::account::token_create),
        ),
        route(
            M::POST,
            "/profile/tokens/{id}/revoke",
            post(identity::account::token_revoke),
        ),
        // Administration.
        route(M::GET, "/admin/users", get(admin::users::users_page)),
        route(M::POST, "/admin/users", post(admin::users::user_invite)),
        route(
            M::POST,
            "/admin/users/{id}/roles",
            post(admin::users::user_roles),
        ),
        route(M::GET, "/admin/audit", get(admin::audit::audit_page)),
        route(M::GET, "/admin/cloud", get(admin::cloud::cloud_page)),
        route(M::GET, "/admin/sso", get(admin::sso::sso_page)),
        route(M::POST, "/admin/sso", post(admin::sso::sso_save)),
        route(M::POST, "/admin/sso/reset", post(admin::sso::sso_reset)),
        route(M::POST, "/admin/cloud/test", post(admin::cloud::cloud_test)),
        // The Define phase.
        route(M::GET, "/platforms", get(platforms::pages::platforms_page)),
        route(
            M::POST,
            "/platforms",
            post(platforms::pages::platform_create),
        ),
        route(
            M::GET,
            "/platforms/{slug}",
            get(platforms::pages::platform_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/archive",
            post(platforms::pages::platform_archive),
        ),
        route(
            M::POST,
            "/platforms/{slug}/members",
            post(platforms::pages::member_add),
        ),
        route(
            M::POST,
            "/platforms/{slug}/members/{user}/remove",
            post(platforms::pages::member_remove),
        ),
        route(
            M::GET,
            "/platforms/{slug}/scope",
            get(platforms::pages::scope_page),
        ),
        route(
            M::GET,
            "/platforms/{slug}/maintain",
            get(maintain::maintain_page),
        ),
        route(
            M::GET,
            "/platforms/{slug}/rollouts",
            get(rollout::rollouts_page),
        ),
        route(M::POST, "/platforms/{slug}/rollouts", post(rollout::start)),
        route(
            M::GET,
            "/platforms/{slug}/rollouts/{id}",
            get(rollout::rollout_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/rollouts/{id}/approve",
            post(rollout::approve),
        ),
        route(
            M::POST,
            "/platforms/{slug}/rollouts/{id}/pause",
            post(rollout::pause),
        ),
        route(
            M::POST,
            "/platforms/{slug}/rollouts/{id}/resume",
            post(rollout::resume),
        ),
        route(
            M::POST,
            "/platforms/{slug}/rollouts/{id}/skip",
            post(rollout::skip),
        ),
        route(
            M::POST,
            "/platforms/{slug}/rollouts/{id}/rollback",
            post(rollout::roll_back),
        ),
        route(
            M::POST,
            "/platforms/{slug}/scope",
            post(platforms::pages::scope_save),
        ),
        route(
            M::GET,
            "/platforms/{slug}/blueprints",
            get(blueprints::pages::blueprints_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/blueprints",
            post(blueprints::pages::blueprint_create),
        ),
        route(
            M::GET,
            "/platforms/{slug}/blueprints/{n}",
            get(blueprints::pages::revision_page),
        ),
        route(
            M::GET,
            "/platforms/{slug}/blueprints/{n}/edit",
            get(blueprints::pages::revision_edit_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/blueprints/{n}/edit",
            post(blueprints::pages::revision_edit_save),
        ),
        route(
            M::POST,
            "/platforms/{slug}/blueprints/{n}/submit",
            post(blueprints::pages::revision_submit),
        ),
        route(
            M::POST,
            "/platforms/{slug}/blueprints/{n}/reviews",
            post(blueprints::pages::revision_review),
        ),
        route(
            M::GET,
            "/platforms/{slug}/backlog",
            get(backlog::pages::backlog_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/backlog",
            post(backlog::pages::backlog_add),
        ),
        route(
            M::POST,
            "/platforms/{slug}/backlog/generate",
            post(backlog::pages::backlog_generate),
        ),
        route(
            M::GET,
            "/platforms/{slug}/backlog/{id}",
            get(backlog::pages::backlog_item_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/backlog/{id}",
            post(backlog::pages::backlog_item_save),
        ),
        route(
            M::POST,
            "/platforms/{slug}/backlog/{id}/move",
            post(backlog::pages::backlog_move),
        ),
        // Environments: requests, approvals, inventories, notifications.
        route(
            M::GET,
            "/platforms/{slug}/environments/new",
            get(environments::pages::request_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/environments",
            post(environments::pages::request_submit),
        ),
        route(
            M::GET,
            "/platforms/{slug}/environments/check-name",
            get(environments::pages::check_name),
        ),
        route(
            M::GET,
            "/platforms/{slug}/webhook",
            get(notifications::pages::webhook_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/webhook",
            post(notifications::pages::webhook_save),
        ),
        route(
            M::POST,
            "/platforms/{slug}/webhook/delete",
            post(notifications::pages::webhook_delete),
        ),
        route(
            M::GET,
            "/environments",
            get(approvals::pages::my_environments),
        ),
        route(
            M::GET,
            "/environments/{id}",
            get(environments::pages::environment_page),
        ),
        route(
            M::POST,
            "/environments/{id}/approve",
            post(environments::pages::approve),
        ),
        route(
            M::POST,
            "/environments/{id}/reject",
            post(environments::pages::reject),
        ),
        route(
            M::POST,
            "/environments/{id}/cancel",
            post(environments::pages::cancel),
        ),
        route(
            M::POST,
            "/environments/{id}/extend",
            post(environments::pages::extend),
        ),
        route(
            M::POST,
            "/environments/{id}/teardown",
            post(environments::pages::teardown),
        ),
        route(
            M::POST,
            "/environments/{id}/retry",
            post(environments::pages::retry),
        ),
        route(
            M::POST,
            "/platforms/{slug}/devops-environment",
            post(environments::pages::devops_environment),
        ),
        route(M::GET, "/approvals", get(approvals::pages::approvals_page)),
        route(
            M::POST,
            "/approvals/bulk",
            post(approvals::pages::approvals_bulk),
        ),
        route(
            M::GET,
            "/notifications",
            get(notifications::pages::notifications_page),
        ),
        route(
            M::POST,
            "/notifications/read",
            post(notifications::pages::notifications_read),
        ),
        // The job queue.
        route(M::GET, "/jobs", get(jobs::jobs_page)),
        route(M::GET, "/jobs/{id}", get(jobs::job_page)),
        route(M::GET, "/jobs/{id}/events", get(jobs::job_events)),
        route(M::POST, "/jobs/{id}/retry", post(jobs::job_retry)),
        route(M::POST, "/jobs/{id}/cancel", post(jobs::job_cancel)),
        route(M::GET, "/metrics", get(jobs::metrics_endpoint)),
        route(
            M::GET,
            "/account-pool",
            get(account_pool::account_pool_page),
        ),
        // The JSON API.
        route(M::GET, "/docs/api", get(openapi::reference_page)),
        route(M::GET, "/api/v1/openapi.json", get(openapi::openapi_json)),
        route(M::GET, "/api/v1/me", get(identity::api::me)),
        route(M::GET, "/api/v1/audit", get(admin::audit::audit)),
        route(
            M::POST,
            "/api/v1/platforms",
            post(platforms::api::create_platform),
        ),
        route(
            M::GET,
            "/api/v1/platforms",
            get(platforms::api::list_platforms),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}",
            get(platforms::api::get_platform),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/members",
            get(platforms::api::list_members),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/members",
            post(platforms::api::add_member),
        ),
        route(
            M::DELETE,
            "/api/v1/platforms/{slug}/members/{user_id}",
            delete(platforms::api::remove_member),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/scope",
            get(platforms::api::get_scope),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/maintain",
            get(maintain::api_maintain),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/rollouts",
            get(rollout::api_overview),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/rollouts",
            post(rollout::api_start),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/rollouts/{id}",
            get(rollout::api_get),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/rollouts/{id}/approve",
            post(rollout::api_approve),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/rollouts/{id}/pause",
            post(rollout::api_pause),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/rollouts/{id}/resume",
            post(rollout::api_resume),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/rollouts/{id}/skip",
            post(rollout::api_skip),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/rollouts/{id}/rollback",
            post(rollout::api_roll_back),
        ),
        route(
            M::PUT,
            "/api/v1/platforms/{slug}/scope",
            put(platforms::api::put_scope),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/blueprints",
            post(blueprints::api::create_revision),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/blueprints",
            get(blueprints::api::list_revisions),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/blueprints/{n}",
            get(blueprints::api::get_revision),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/blueprints/{n}/submit",
            post(blueprints::api::submit_revision),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/blueprints/{n}/reviews",
            post(blueprints::api::review_revision),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/blueprints/{n}/diff",
            get(blueprints::api::diff_revisions),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/environment-types",
            get(blueprints::api::environment_types),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/backlog/generate",
            post(backlog::api::generate_backlog),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/backlog",
            get(backlog::api::list_backlog),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/backlog",
            post(backlog::api::create_item),
        ),
        route(
            M::PATCH,
            "/api/v1/platforms/{slug}/backlog/{id}",
            patch(backlog::api::patch_item),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/environments",
            post(environments::api::create),
        ),
        route(M::GET, "/api/v1/environments", get(environments::api::list)),
        route(
            M::GET,
            "/api/v1/environments/{id}",
            get(environments::api::get),
        ),
        route(
            M::GET,
            "/api/v1/environments/{id}/plan",
            get(environments::api::plan),
        ),
        route(
            M::GET,
            "/api/v1/environments/{id}/events",
            get(environments::api::events),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/approve",
            post(environments::api::approve),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/reject",
            post(environments::api::reject),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/cancel",
            post(environments::api::cancel),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/extend",
            post(environments::api::extend),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/teardown",
            post(environments::api::teardown),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/retry",
            post(environments::api::retry),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/devops-environment",
            post(environments::api::devops_environment),
        ),
        route(
            M::GET,
            "/api/v1/notifications",
            get(notifications::api::notifications),
        ),
        route(
            M::POST,
            "/api/v1/notifications/read",
            post(notifications::api::notifications_read),
        ),
        route(M::GET, "/api/v1/jobs", get(jobs::api_jobs)),
        route(M::GET, "/api/v1/jobs/{id}", get(jobs::api_job)),
        route(M::POST, "/api/v1/jobs/{id}/retry", post(jobs::api_retry)),
        route(M::POST, "/api/v1/jobs/{id}/cancel", post(jobs::api_cancel)),
        route(
            M::GET,
            "/api/v1/account-pool",
            get(account_pool::api_account_pool),
        ),
        // The Exploit phase.
        route(
            M::GET,
            "/api/v1/platforms/{slug}/teams",
            get(teams::api_list),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/teams",
            post(teams::api_create),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/teams/{name}",
            get(teams::api_get),
        ),
        route(
            M::PATCH,
            "/api/v1/platforms/{slug}/teams/{name}",
            patch(teams::api_update),
        ),
        route(
            M::DELETE,
            "/api/v1/platforms/{slug}/teams/{name}",
            delete(teams::api_delete),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/services",
            get(services::api_list),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/services",
            post(services::api_create),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/services/{name}",
            get(services::api_get),
        ),
        route(
            M::GET,
            "/api/v1/environments/{id}/handover",
            get(handover::api_handover),
        ),
        route(
            M::GET,
            "/api/v1/environments/{id}/drift",
            get(drift::api_drift),
        ),
        route(
            M::GET,
            "/api/v1/environments/{id}/cost",
            get(cost::api_cost),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/drift/check",
            post(drift::api_check),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/drift/accept",
            post(drift::api_accept),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/reconcile",
            post(drift::api_reconcile),
        ),
        route(
            M::GET,
            "/api/v1/environments/{id}/upgrade",
            get(upgrade::api_preview),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/upgrade",
            post(upgrade::api_request),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/upgrade/approve",
            post(upgrade::api_approve),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/upgrade/reject",
            post(upgrade::api_reject),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/upgrade/cancel",
            post(upgrade::api_cancel),
        ),
        route(
            M::POST,
            "/environments/{id}/upgrade/cancel",
            post(upgrade::cancel),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/upgrade/retry",
            post(upgrade::api_retry),
        ),
        route(
            M::GET,
            "/environments/{id}/upgrade",
            get(upgrade::upgrade_page),
        ),
        route(
            M::POST,
            "/environments/{id}/upgrade",
            post(upgrade::request),
        ),
        route(
            M::POST,
            "/environments/{id}/upgrade/approve",
            post(upgrade::approve),
        ),
        route(
            M::POST,
            "/environments/{id}/upgrade/reject",
            post(upgrade::reject),
        ),
        route(
            M::POST,
            "/environments/{id}/upgrade/retry",
            post(upgrade::retry),
        ),
        route(M::GET, "/environments/{id}/drift", get(drift::drift_page)),
        route(M::GET, "/kubernetes-versions", get(versions::versions_page)),
        route(M::POST, "/kubernetes-versions", post(versions::correct)),
        route(
            M::GET,
            "/api/v1/kubernetes-versions",
            get(versions::api_versions),
        ),
        route(
            M::PUT,
            "/api/v1/kubernetes-versions/{version}",
            put(versions::api_correct),
        ),
        route(
            M::POST,
            "/environments/{id}/drift/check",
            post(drift::check),
        ),
        route(
            M::POST,
            "/environments/{id}/drift/accept",
            post(drift::accept),
        ),
        route(
            M::POST,
            "/environments/{id}/reconcile",
            post(drift::reconcile),
        ),
        route(
            M::GET,
            "/api/v1/catalog/entities",
            get(catalog::api_entities),
        ),
        route(
            M::GET,
            "/api/v1/catalog-info.yaml",
            get(catalog::api_catalog_info),
        ),
        route(
            M::GET,
            "/platforms/{slug}/services",
            get(services::services_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/services",
            post(services::service_create),
        ),
        route(
            M::GET,
            "/platforms/{slug}/services/{name}",
            get(services::service_page),
        ),
        route(M::GET, "/platforms/{slug}/teams", get(teams::teams_page)),
        route(M::POST, "/platforms/{slug}/teams", post(teams::team_create)),
        route(
            M::GET,
            "/platforms/{slug}/teams/{name}",
            get(teams::team_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/teams/{name}",
            post(teams::team_save),
        ),
        route(
            M::POST,
            "/platforms/{slug}/teams/{name}/delete",
            post(teams::team_delete),
        ),
        route(
            M::GET,
            "/environments/{id}/handover",
            get(handover::handover_page),
        ),
        route(
            M::GET,
            "/environments/{id}/handover/kubeconfig",
            get(handover::kubeconfig_download),
        ),
    ]
}

/// The whole application: routes, fallbacks and middleware.
pub fn router(state: AppState) -> Router {
    let routes = route_table()
        .into_iter()
        .fold(Router::new(), |router, def| {
            router.route(def.path, def.handler)
        });
    with_middleware(routes, state)
}

/// Adds the fallbacks and the middleware stack to `routes`. Public so tests can exercise the
/// stack with routes of their own (a handler that panics, one that is slow).
pub fn with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    let security_headers = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ));

    // Browsers that reached Slipway over https once refuse plain http to it for a year; only
    // when the public URL is https, so a plain-http try-out is never locked out.
    let hsts = state
        .config
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"))
        .then(|| {
            SetResponseHeaderLayer::overriding(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            )
        });
    let timeout = state.config.request_timeout;
    routes
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(
            // Outermost first: every request gets an id before it is traced, and every response,
            // error pages included, leaves with the security headers.
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                // One line per request at the default level: method, route (never the query string,
                // which may carry a secret), request id, status and duration.
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(make_span)
                        .on_response(
                            DefaultOnResponse::new()
                                .level(tracing::Level::INFO)
                                .latency_unit(tower_http::LatencyUnit::Millis),
                        ),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
                .layer(security_headers)
                .option_layer(hsts)
                .layer(CompressionLayer::new())
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    error_pages::render_errors,
                ))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::GATEWAY_TIMEOUT,
                    timeout,
                ))
                .layer(CatchPanicLayer::new())
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    auth::authenticate,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    auth::verify_csrf,
                ))
                .layer(axum::middleware::from_fn(
                    extract::reject_control_characters,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    idempotency::idempotency,
                ))
                .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES)),
        )
        .with_state(state)
}

/// The request's span. It names the matched route pattern (`/setup/{token}`), not the raw path,
/// so secrets carried in paths never reach the logs; query strings are never logged.
fn make_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str())
        .unwrap_or("(unmatched)");
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        method = %request.method(),
        route,
        request_id,
        trace_id = tracing::field::Empty,
    );
    crate::trace::record_trace_id(&span);
    span
}
