//! The HTTP layer: shared state, the router, the middleware stack and the server loop.
//! Handlers stay thin; the error mapping lives in [`error`], once.

pub mod account;
pub mod admin;
pub mod api;
pub mod assets;
pub mod auth;
pub mod blueprint_form;
pub mod define_api;
pub mod define_pages;
pub mod environments_api;
pub mod environments_pages;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod jobs_http;
pub mod pages;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::routing::{MethodRouter, get, patch, post, put};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::csrf::CsrfKey;
use crate::auth::oidc::Oidc;
use crate::auth::session::Lifetimes;
use crate::config::Config;
use auth::Cookies;
use error::AppError;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Request bodies larger than this are refused with 413 before any handler reads them.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// Scripts, styles and images only from our own origin, no inline script, never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     object-src 'none'; frame-ancestors 'none'";

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub embedded_db: bool,
    pub started_at: DateTime<Utc>,
    /// The origin people use, e.g. `https://slipway.example.com` (no trailing slash).
    pub public_url: Arc<str>,
    pub cookies: Cookies,
    pub csrf: CsrfKey,
    /// Single sign-on, when configured.
    pub oidc: Option<Arc<Oidc>>,
    pub clock: crate::clock::Clock,
    /// Job progress notifications, for live pages.
    pub progress: crate::jobs::progress::ProgressHub,
    /// The cloud environments are provisioned in (the cloud connection page tests it).
    pub cloud: crate::provision::Cloud,
}

impl AppState {
    /// Builds the state for a migrated database. Browsers reach us at the configured
    /// `public_url`, or else at `fallback_url` (derived from the listen address).
    pub async fn new(
        pool: PgPool,
        config: Config,
        embedded_db: bool,
        fallback_url: &str,
    ) -> anyhow::Result<Self> {
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| fallback_url.to_owned());
        let public_url = public_url.trim_end_matches('/');
        let oidc = match &config.oidc {
            Some(oidc) => Some(Arc::new(Oidc::new(oidc.clone(), public_url)?)),
            None => None,
        };
        let progress = crate::jobs::progress::ProgressHub::start(pool.clone());
        let cloud = crate::provision::Cloud::from_config(&config, &pool).await;
        Ok(Self {
            cloud,
            csrf: CsrfKey::load(&pool).await?,
            cookies: Cookies {
                secure: public_url.starts_with("https://"),
            },
            public_url: public_url.into(),
            pool,
            config: Arc::new(config),
            embedded_db,
            started_at: Utc::now(),
            oidc,
            clock: crate::clock::Clock::system(),
            progress,
        })
    }

    pub fn session_lifetimes(&self) -> Lifetimes {
        let to_chrono =
            |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        Lifetimes {
            idle: to_chrono(self.config.session_idle_timeout),
            absolute: to_chrono(self.config.session_max_age),
        }
    }
}

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
        route(M::GET, "/", get(pages::overview)),
        route(M::GET, "/status", get(pages::status)),
        route(M::GET, "/healthz", get(health::healthz)),
        route(M::GET, "/readyz", get(health::readyz)),
        route(M::GET, "/static/{file}", get(assets::serve)),
        // Signing in and out.
        route(M::GET, "/login", get(account::login_page)),
        route(M::POST, "/login", post(account::login_submit)),
        route(M::POST, "/logout", post(account::logout)),
        route(
            M::POST,
            "/logout/everywhere",
            post(account::logout_everywhere),
        ),
        route(M::GET, "/setup/{token}", get(account::setup_page)),
        route(M::POST, "/setup/{token}", post(account::setup_submit)),
        route(M::GET, "/invite/{token}", get(account::invite_page)),
        route(M::POST, "/invite/{token}", post(account::invite_submit)),
        route(M::GET, "/auth/oidc/login", get(account::oidc_start)),
        route(M::GET, "/auth/oidc/callback", get(account::oidc_callback)),
        // One's own account.
        route(M::GET, "/profile", get(account::profile_page)),
        route(M::POST, "/profile/tokens", post(account::token_create)),
        route(
            M::POST,
            "/profile/tokens/{id}/revoke",
            post(account::token_revoke),
        ),
        // Administration.
        route(M::GET, "/admin/users", get(admin::users_page)),
        route(M::POST, "/admin/users", post(admin::user_invite)),
        route(M::POST, "/admin/users/{id}/roles", post(admin::user_roles)),
        route(M::GET, "/admin/audit", get(admin::audit_page)),
        route(M::GET, "/admin/cloud", get(admin::cloud_page)),
        route(M::POST, "/admin/cloud/test", post(admin::cloud_test)),
        // The Define phase.
        route(M::GET, "/platforms", get(define_pages::platforms_page)),
        route(M::POST, "/platforms", post(define_pages::platform_create)),
        route(
            M::GET,
            "/platforms/{slug}",
            get(define_pages::platform_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/archive",
            post(define_pages::platform_archive),
        ),
        route(
            M::POST,
            "/platforms/{slug}/members",
            post(define_pages::member_add),
        ),
        route(
            M::POST,
            "/platforms/{slug}/members/{user}/remove",
            post(define_pages::member_remove),
        ),
        route(
            M::GET,
            "/platforms/{slug}/scope",
            get(define_pages::scope_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/scope",
            post(define_pages::scope_save),
        ),
        route(
            M::GET,
            "/platforms/{slug}/blueprints",
            get(define_pages::blueprints_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/blueprints",
            post(define_pages::blueprint_create),
        ),
        route(
            M::GET,
            "/platforms/{slug}/blueprints/{n}",
            get(define_pages::revision_page),
        ),
        route(
            M::GET,
            "/platforms/{slug}/blueprints/{n}/edit",
            get(define_pages::revision_edit_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/blueprints/{n}/edit",
            post(define_pages::revision_edit_save),
        ),
        route(
            M::POST,
            "/platforms/{slug}/blueprints/{n}/submit",
            post(define_pages::revision_submit),
        ),
        route(
            M::POST,
            "/platforms/{slug}/blueprints/{n}/reviews",
            post(define_pages::revision_review),
        ),
        route(
            M::GET,
            "/platforms/{slug}/backlog",
            get(define_pages::backlog_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/backlog",
            post(define_pages::backlog_add),
        ),
        route(
            M::POST,
            "/platforms/{slug}/backlog/generate",
            post(define_pages::backlog_generate),
        ),
        route(
            M::GET,
            "/platforms/{slug}/backlog/{id}",
            get(define_pages::backlog_item_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/backlog/{id}",
            post(define_pages::backlog_item_save),
        ),
        route(
            M::POST,
            "/platforms/{slug}/backlog/{id}/move",
            post(define_pages::backlog_move),
        ),
        // Environments: requests, approvals, inventories, notifications.
        route(
            M::GET,
            "/platforms/{slug}/environments/new",
            get(environments_pages::request_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/environments",
            post(environments_pages::request_submit),
        ),
        route(
            M::GET,
            "/platforms/{slug}/environments/check-name",
            get(environments_pages::check_name),
        ),
        route(
            M::GET,
            "/platforms/{slug}/webhook",
            get(environments_pages::webhook_page),
        ),
        route(
            M::POST,
            "/platforms/{slug}/webhook",
            post(environments_pages::webhook_save),
        ),
        route(
            M::POST,
            "/platforms/{slug}/webhook/delete",
            post(environments_pages::webhook_delete),
        ),
        route(
            M::GET,
            "/environments",
            get(environments_pages::my_environments),
        ),
        route(
            M::GET,
            "/environments/{id}",
            get(environments_pages::environment_page),
        ),
        route(
            M::POST,
            "/environments/{id}/approve",
            post(environments_pages::approve),
        ),
        route(
            M::POST,
            "/environments/{id}/reject",
            post(environments_pages::reject),
        ),
        route(
            M::POST,
            "/environments/{id}/cancel",
            post(environments_pages::cancel),
        ),
        route(
            M::POST,
            "/environments/{id}/extend",
            post(environments_pages::extend),
        ),
        route(
            M::POST,
            "/environments/{id}/teardown",
            post(environments_pages::teardown),
        ),
        route(
            M::POST,
            "/environments/{id}/retry",
            post(environments_pages::retry),
        ),
        route(
            M::POST,
            "/platforms/{slug}/devops-environment",
            post(environments_pages::devops_environment),
        ),
        route(
            M::GET,
            "/approvals",
            get(environments_pages::approvals_page),
        ),
        route(
            M::POST,
            "/approvals/bulk",
            post(environments_pages::approvals_bulk),
        ),
        route(
            M::GET,
            "/notifications",
            get(environments_pages::notifications_page),
        ),
        route(
            M::POST,
            "/notifications/read",
            post(environments_pages::notifications_read),
        ),
        // The job queue.
        route(M::GET, "/jobs", get(jobs_http::jobs_page)),
        route(M::GET, "/jobs/{id}", get(jobs_http::job_page)),
        route(M::GET, "/jobs/{id}/events", get(jobs_http::job_events)),
        route(M::POST, "/jobs/{id}/retry", post(jobs_http::job_retry)),
        route(M::POST, "/jobs/{id}/cancel", post(jobs_http::job_cancel)),
        route(M::GET, "/metrics", get(jobs_http::metrics_endpoint)),
        // The JSON API.
        route(M::GET, "/api/v1/me", get(api::me)),
        route(M::GET, "/api/v1/audit", get(api::audit)),
        route(
            M::POST,
            "/api/v1/platforms",
            post(define_api::create_platform),
        ),
        route(M::GET, "/api/v1/platforms", get(define_api::list_platforms)),
        route(
            M::GET,
            "/api/v1/platforms/{slug}",
            get(define_api::get_platform),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/scope",
            get(define_api::get_scope),
        ),
        route(
            M::PUT,
            "/api/v1/platforms/{slug}/scope",
            put(define_api::put_scope),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/blueprints",
            post(define_api::create_revision),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/blueprints",
            get(define_api::list_revisions),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/blueprints/{n}",
            get(define_api::get_revision),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/blueprints/{n}/submit",
            post(define_api::submit_revision),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/blueprints/{n}/reviews",
            post(define_api::review_revision),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/blueprints/{n}/diff",
            get(define_api::diff_revisions),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/environment-types",
            get(define_api::environment_types),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/backlog/generate",
            post(define_api::generate_backlog),
        ),
        route(
            M::GET,
            "/api/v1/platforms/{slug}/backlog",
            get(define_api::list_backlog),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/backlog",
            post(define_api::create_item),
        ),
        route(
            M::PATCH,
            "/api/v1/platforms/{slug}/backlog/{id}",
            patch(define_api::patch_item),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/environments",
            post(environments_api::create),
        ),
        route(M::GET, "/api/v1/environments", get(environments_api::list)),
        route(
            M::GET,
            "/api/v1/environments/{id}",
            get(environments_api::get),
        ),
        route(
            M::GET,
            "/api/v1/environments/{id}/plan",
            get(environments_api::plan),
        ),
        route(
            M::GET,
            "/api/v1/environments/{id}/events",
            get(environments_api::events),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/approve",
            post(environments_api::approve),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/reject",
            post(environments_api::reject),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/cancel",
            post(environments_api::cancel),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/extend",
            post(environments_api::extend),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/teardown",
            post(environments_api::teardown),
        ),
        route(
            M::POST,
            "/api/v1/environments/{id}/retry",
            post(environments_api::retry),
        ),
        route(
            M::POST,
            "/api/v1/platforms/{slug}/devops-environment",
            post(environments_api::devops_environment),
        ),
        route(
            M::GET,
            "/api/v1/notifications",
            get(environments_api::notifications),
        ),
        route(
            M::POST,
            "/api/v1/notifications/read",
            post(environments_api::notifications_read),
        ),
        route(M::GET, "/api/v1/jobs", get(jobs_http::api_jobs)),
        route(M::GET, "/api/v1/jobs/{id}", get(jobs_http::api_job)),
        route(
            M::POST,
            "/api/v1/jobs/{id}/retry",
            post(jobs_http::api_retry),
        ),
        route(
            M::POST,
            "/api/v1/jobs/{id}/cancel",
            post(jobs_http::api_cancel),
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

    let timeout = state.config.request_timeout;
    routes
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(
            // Outermost first: every request gets an id before it is traced, and every response,
            // error pages included, leaves with the security headers.
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(make_span))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
                .layer(security_headers)
                .layer(CompressionLayer::new())
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    error::render_errors,
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
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
    )
}

/// Binds the listener, with a message that says what to change when the address is taken.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr}: {e}; choose another address with --listen or SLIPWAY_LISTEN \
             (port 0 picks a free port)"
        )
    })
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish for
/// at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    })
    .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {
            tracing::info!("shutting down: no new connections, finishing requests in flight");
            let _ = stop_tx.send(true);
        }
    }
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                ?grace,
                "requests still running after the grace period; stopping them"
            );
            Ok(())
        }
    }
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops Slipway");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
