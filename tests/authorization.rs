//! Who may call what, for every route of the router, and CSRF on every state-changing route.
//! Both tests walk `slipway::app::router::route_table()`, the same table the router is built from: a
//! new route without an entry here fails them.
//!
//! State-changing probes are built so that they change nothing lasting: they name an object
//! that does not exist or send input that fails validation. A caller who is allowed then gets
//! 404 or 422 (the check happened after authorization); one who is not gets 401, 403 or the
//! sign-in redirect (303).

mod support;

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use slipway::auth::{Role, UserId};
use support::{TestApp, client, csrf_token};

/// The callers of the matrix, in column order.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Anonymous,
    Developer,
    /// A platform engineer who is a member of the `demo` platform.
    MemberEngineer,
    /// A platform engineer who is not.
    OutsideEngineer,
    Admin,
    /// An admin's API token limited to the developer role.
    DeveloperToken,
    /// An admin's API token with the admin role.
    AdminToken,
}

const CALLERS: [Caller; 7] = [
    Caller::Anonymous,
    Caller::Developer,
    Caller::MemberEngineer,
    Caller::OutsideEngineer,
    Caller::Admin,
    Caller::DeveloperToken,
    Caller::AdminToken,
];

/// A concrete request for a route pattern (`{unique}` in a value becomes a fresh random string
/// per request, so repeated calls do not collide).
struct Probe {
    path: String,
    form: Vec<(&'static str, String)>,
    json: Option<Value>,
    /// Expected status per caller, in `CALLERS` order.
    expect: [u16; 7],
}

/// A probe whose answer does not depend on platform membership (both engineers alike).
fn probe(path: &str, form: &[(&'static str, &str)], e: [u16; 6]) -> Probe {
    probe7(path, form, [e[0], e[1], e[2], e[2], e[3], e[4], e[5]])
}

fn probe7(path: &str, form: &[(&'static str, &str)], expect: [u16; 7]) -> Probe {
    Probe {
        path: path.to_owned(),
        form: form.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        json: None,
        expect,
    }
}

fn api(path: &str, body: Value, expect: [u16; 7]) -> Probe {
    Probe {
        path: path.to_owned(),
        form: vec![],
        json: Some(body),
        expect,
    }
}

/// Planners of `demo`: its member engineer, admins and admin tokens.
const PLANNERS: [u16; 7] = [303, 403, 200, 403, 200, 403, 200];

/// The matrix. 303 for an anonymous browser is the redirect to the sign-in page; 401 is the
/// API's answer to the anonymous.
fn matrix(css: &str) -> HashMap<(Method, &'static str), Probe> {
    let unknown = uuid::Uuid::new_v4().to_string();
    let strong = support::PASSWORD;
    let setup_form: &[(&'static str, &str)] = &[
        ("email", "first@example.com"),
        ("name", "First"),
        ("password", strong),
        ("password_confirmation", strong),
    ];
    let m = |method: Method, path: &'static str, p: Probe| ((method, path), p);
    let editors = |authorized: u16| [303, 403, authorized, 403, authorized, 403, authorized];
    let api_editors = |authorized: u16| [401, 403, authorized, 403, authorized, 403, authorized];
    HashMap::from([
        m(
            Method::GET,
            "/",
            probe("/", &[], [303, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::GET,
            "/status",
            probe("/status", &[], [303, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::GET,
            "/search",
            probe("/search?q=demo", &[], [303, 200, 200, 200, 200, 200]),
        ),
        m(Method::GET, "/healthz", probe("/healthz", &[], [200; 6])),
        m(Method::GET, "/readyz", probe("/readyz", &[], [200; 6])),
        m(Method::GET, "/static/{file}", probe(css, &[], [200; 6])),
        m(
            Method::GET,
            "/login",
            probe("/login", &[], [200, 303, 303, 303, 303, 303]),
        ),
        m(
            Method::POST,
            "/login",
            probe(
                "/login",
                &[
                    ("email", "{unique}@example.com"),
                    ("password", "wrong password!"),
                ],
                // API tokens get no CSRF exemption on the sign-in forms.
                [422, 422, 422, 422, 403, 403],
            ),
        ),
        m(
            Method::POST,
            "/logout",
            probe("/logout", &[], [303, 303, 303, 303, 403, 403]),
        ),
        m(
            Method::POST,
            "/logout/everywhere",
            probe("/logout/everywhere", &[], [303, 303, 303, 303, 403, 403]),
        ),
        m(
            Method::GET,
            "/setup/{token}",
            probe("/setup/not-a-link", &[], [404; 6]),
        ),
        m(
            Method::POST,
            "/setup/{token}",
            probe(
                "/setup/not-a-link",
                setup_form,
                [404, 404, 404, 404, 403, 403],
            ),
        ),
        m(
            Method::GET,
            "/invite/{token}",
            probe("/invite/not-a-link", &[], [404; 6]),
        ),
        m(
            Method::POST,
            "/invite/{token}",
            probe(
                "/invite/not-a-link",
                setup_form,
                [404, 404, 404, 404, 403, 403],
            ),
        ),
        // Single sign-on is not configured in this app: the routes do not exist for anyone.
        m(
            Method::GET,
            "/auth/oidc/login",
            probe("/auth/oidc/login", &[], [404; 6]),
        ),
        m(
            Method::GET,
            "/auth/oidc/callback",
            probe("/auth/oidc/callback?code=x&state=y", &[], [404; 6]),
        ),
        m(
            Method::GET,
            "/profile",
            probe("/profile", &[], [303, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::POST,
            "/profile/tokens",
            probe(
                "/profile/tokens",
                &[("name", "ci"), ("roles", "developer"), ("expires", "30d")],
                [303, 201, 201, 201, 403, 403],
            ),
        ),
        m(
            Method::POST,
            "/profile/tokens/{id}/revoke",
            probe(
                &format!("/profile/tokens/{unknown}/revoke"),
                &[],
                [303, 404, 404, 404, 403, 403],
            ),
        ),
        m(
            Method::GET,
            "/admin/users",
            probe("/admin/users", &[], [303, 403, 403, 200, 403, 200]),
        ),
        m(
            Method::POST,
            "/admin/users",
            probe(
                "/admin/users",
                &[
                    ("email", "{unique}@example.com"),
                    ("name", "New"),
                    ("roles", "developer"),
                ],
                [303, 403, 403, 201, 403, 201],
            ),
        ),
        m(
            Method::POST,
            "/admin/users/{id}/roles",
            probe(
                &format!("/admin/users/{unknown}/roles"),
                &[("roles", "developer")],
                [303, 403, 403, 404, 403, 404],
            ),
        ),
        m(
            Method::GET,
            "/admin/audit",
            probe("/admin/audit", &[], [303, 403, 403, 200, 403, 200]),
        ),
        m(
            Method::GET,
            "/admin/cloud",
            probe("/admin/cloud", &[], [303, 403, 403, 200, 403, 200]),
        ),
        m(
            Method::GET,
            "/admin/sso",
            probe("/admin/sso", &[], [303, 403, 403, 200, 403, 200]),
        ),
        m(
            Method::POST,
            "/admin/sso",
            probe(
                "/admin/sso",
                &[("mapping", "x")],
                [303, 403, 403, 422, 403, 422],
            ),
        ),
        m(
            Method::POST,
            "/admin/sso/reset",
            probe("/admin/sso/reset", &[], [303, 403, 403, 303, 403, 303]),
        ),
        m(
            Method::POST,
            "/admin/cloud/test",
            probe("/admin/cloud/test", &[], [303, 403, 403, 200, 403, 200]),
        ),
        m(
            Method::GET,
            "/docs/api",
            probe("/docs/api", &[], [303, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::GET,
            "/api/v1/openapi.json",
            probe("/api/v1/openapi.json", &[], [401, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::GET,
            "/api/v1/me",
            probe("/api/v1/me", &[], [401, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::GET,
            "/api/v1/audit",
            probe("/api/v1/audit", &[], [401, 403, 403, 200, 403, 200]),
        ),
        // The Define phase, on the platform `demo` (approved revision 1, draft revision 2).
        m(
            Method::GET,
            "/platforms",
            probe("/platforms", &[], [303, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::POST,
            "/platforms",
            probe(
                "/platforms",
                &[("slug", "Not A Slug"), ("name", "x"), ("owner_team", "t")],
                [303, 403, 422, 422, 403, 422],
            ),
        ),
        m(
            Method::GET,
            "/platforms/{slug}",
            probe("/platforms/demo", &[], [303, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/archive",
            probe7(
                "/platforms/to-archive/archive",
                &[],
                [303, 403, 403, 403, 303, 403, 409],
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/members",
            probe7(
                "/platforms/demo/members",
                &[("email", "nobody@example.com")],
                editors(422),
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/members/{user}/remove",
            probe7(
                &format!("/platforms/demo/members/{unknown}/remove"),
                &[],
                editors(404),
            ),
        ),
        m(
            Method::GET,
            "/platforms/{slug}/scope",
            probe7("/platforms/demo/scope", &[], PLANNERS),
        ),
        m(
            Method::GET,
            "/platforms/{slug}/maintain",
            probe7("/platforms/demo/maintain", &[], PLANNERS),
        ),
        // Roll-outs: the platform's engineers and admins (the roll-out tests cover who approves).
        m(
            Method::GET,
            "/platforms/{slug}/rollouts",
            probe7("/platforms/demo/rollouts", &[], PLANNERS),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/rollouts",
            probe7("/platforms/demo/rollouts", &[], editors(422)),
        ),
        m(
            Method::GET,
            "/platforms/{slug}/rollouts/{id}",
            probe7(
                &format!("/platforms/demo/rollouts/{unknown}"),
                &[],
                editors(404),
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/rollouts/{id}/approve",
            probe7(
                &format!("/platforms/demo/rollouts/{unknown}/approve"),
                &[],
                editors(404),
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/rollouts/{id}/pause",
            probe7(
                &format!("/platforms/demo/rollouts/{unknown}/pause"),
                &[],
                editors(404),
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/rollouts/{id}/resume",
            probe7(
                &format!("/platforms/demo/rollouts/{unknown}/resume"),
                &[],
                editors(404),
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/rollouts/{id}/skip",
            probe7(
                &format!("/platforms/demo/rollouts/{unknown}/skip"),
                &[],
                editors(404),
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/rollouts/{id}/rollback",
            probe7(
                &format!("/platforms/demo/rollouts/{unknown}/rollback"),
                &[],
                editors(404),
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/scope",
            probe7(
                "/platforms/demo/scope",
                &[
                    ("goals", ""),
                    ("cloud", "aws"),
                    ("regions", "mars"),
                    ("complexity", "standard"),
                    ("define_started_on", "2026-11-02"),
                ],
                editors(422),
            ),
        ),
        m(
            Method::GET,
            "/platforms/{slug}/blueprints",
            probe(
                "/platforms/demo/blueprints",
                &[],
                [303, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/blueprints",
            probe7(
                "/platforms/demo/blueprints",
                &[("yaml", "cloud: [")],
                editors(422),
            ),
        ),
        m(
            Method::GET,
            "/platforms/{slug}/blueprints/{n}",
            probe(
                "/platforms/demo/blueprints/1",
                &[],
                [303, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::GET,
            "/platforms/{slug}/blueprints/{n}/edit",
            probe7("/platforms/demo/blueprints/1/edit", &[], editors(200)),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/blueprints/{n}/edit",
            probe7("/platforms/demo/blueprints/999/edit", &[], editors(404)),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/blueprints/{n}/submit",
            probe7("/platforms/demo/blueprints/999/submit", &[], editors(404)),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/blueprints/{n}/reviews",
            probe7(
                "/platforms/demo/blueprints/999/reviews",
                &[("verdict", "comment")],
                editors(404),
            ),
        ),
        m(
            Method::GET,
            "/platforms/{slug}/backlog",
            probe7("/platforms/demo/backlog", &[], PLANNERS),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/backlog",
            probe7(
                "/platforms/demo/backlog",
                &[("title", ""), ("phase", "deliver"), ("status", "todo")],
                editors(422),
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/backlog/generate",
            probe7("/platforms/demo/backlog/generate", &[], editors(303)),
        ),
        m(
            Method::GET,
            "/platforms/{slug}/backlog/{id}",
            probe7(
                &format!("/platforms/demo/backlog/{unknown}"),
                &[],
                [303, 403, 404, 403, 404, 403, 404],
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/backlog/{id}",
            probe7(
                &format!("/platforms/demo/backlog/{unknown}"),
                &[("title", "x"), ("phase", "deliver"), ("status", "todo")],
                editors(404),
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/backlog/{id}/move",
            probe7(
                &format!("/platforms/demo/backlog/{unknown}/move"),
                &[("direction", "up")],
                editors(404),
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms",
            api(
                "/api/v1/platforms",
                json!({"slug": "Not A Slug", "name": "x"}),
                [401, 403, 422, 422, 422, 403, 422],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms",
            probe("/api/v1/platforms", &[], [401, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}",
            probe(
                "/api/v1/platforms/demo",
                &[],
                [401, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/members",
            probe(
                "/api/v1/platforms/demo/members",
                &[],
                [401, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/members",
            api(
                "/api/v1/platforms/demo/members",
                json!({"email": "nobody@example.com"}),
                api_editors(422),
            ),
        ),
        m(
            Method::DELETE,
            "/api/v1/platforms/{slug}/members/{user_id}",
            api(
                &format!("/api/v1/platforms/demo/members/{unknown}"),
                json!({}),
                api_editors(404),
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/scope",
            probe7(
                "/api/v1/platforms/demo/scope",
                &[],
                [401, 403, 200, 403, 200, 403, 200],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/rollouts",
            probe7(
                "/api/v1/platforms/demo/rollouts",
                &[],
                [401, 403, 200, 403, 200, 403, 200],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/rollouts",
            api(
                "/api/v1/platforms/demo/rollouts",
                json!({"waves": []}),
                api_editors(422),
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/rollouts/{id}",
            probe7(
                &format!("/api/v1/platforms/demo/rollouts/{unknown}"),
                &[],
                api_editors(404),
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/rollouts/{id}/approve",
            api(
                &format!("/api/v1/platforms/demo/rollouts/{unknown}/approve"),
                json!({}),
                api_editors(404),
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/rollouts/{id}/pause",
            api(
                &format!("/api/v1/platforms/demo/rollouts/{unknown}/pause"),
                json!({}),
                api_editors(404),
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/rollouts/{id}/resume",
            api(
                &format!("/api/v1/platforms/demo/rollouts/{unknown}/resume"),
                json!({}),
                api_editors(404),
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/rollouts/{id}/skip",
            api(
                &format!("/api/v1/platforms/demo/rollouts/{unknown}/skip"),
                json!({}),
                api_editors(404),
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/rollouts/{id}/rollback",
            api(
                &format!("/api/v1/platforms/demo/rollouts/{unknown}/rollback"),
                json!({}),
                api_editors(404),
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/maintain",
            probe7(
                "/api/v1/platforms/demo/maintain",
                &[],
                [401, 403, 200, 403, 200, 403, 200],
            ),
        ),
        m(
            Method::PUT,
            "/api/v1/platforms/{slug}/scope",
            api(
                "/api/v1/platforms/demo/scope",
                json!({"goals": []}),
                api_editors(422),
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/blueprints",
            api(
                "/api/v1/platforms/demo/blueprints",
                json!({"base_revision": 2, "document": {"cloud": 1}}),
                api_editors(422),
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/blueprints",
            probe(
                "/api/v1/platforms/demo/blueprints",
                &[],
                [401, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/blueprints/{n}",
            probe(
                "/api/v1/platforms/demo/blueprints/1",
                &[],
                [401, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/blueprints/{n}/submit",
            api(
                "/api/v1/platforms/demo/blueprints/999/submit",
                json!({}),
                api_editors(404),
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/blueprints/{n}/reviews",
            api(
                "/api/v1/platforms/demo/blueprints/999/reviews",
                json!({"verdict": "comment"}),
                api_editors(404),
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/blueprints/{n}/diff",
            probe(
                "/api/v1/platforms/demo/blueprints/1/diff?against=1",
                &[],
                [401, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/environment-types",
            probe(
                "/api/v1/platforms/demo/environment-types",
                &[],
                [401, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/backlog/generate",
            api(
                "/api/v1/platforms/demo/backlog/generate",
                json!({}),
                api_editors(200),
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/backlog",
            probe7(
                "/api/v1/platforms/demo/backlog",
                &[],
                [401, 403, 200, 403, 200, 403, 200],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/backlog",
            api(
                "/api/v1/platforms/demo/backlog",
                json!({"title": ""}),
                api_editors(422),
            ),
        ),
        m(
            Method::PATCH,
            "/api/v1/platforms/{slug}/backlog/{id}",
            api(
                &format!("/api/v1/platforms/demo/backlog/{unknown}"),
                json!({"status": "done"}),
                api_editors(404),
            ),
        ),
        // The job queue: platform engineers and admins.
        m(
            Method::GET,
            "/jobs",
            probe("/jobs", &[], [303, 403, 200, 200, 403, 200]),
        ),
        m(
            Method::GET,
            "/jobs/{id}",
            probe("/jobs/999999", &[], [303, 403, 404, 404, 403, 404]),
        ),
        m(
            Method::GET,
            "/jobs/{id}/events",
            probe("/jobs/999999/events", &[], [303, 403, 404, 404, 403, 404]),
        ),
        m(
            Method::POST,
            "/jobs/{id}/retry",
            probe("/jobs/999999/retry", &[], [303, 403, 404, 404, 403, 404]),
        ),
        m(
            Method::POST,
            "/jobs/{id}/cancel",
            probe("/jobs/999999/cancel", &[], [303, 403, 404, 404, 403, 404]),
        ),
        m(Method::GET, "/metrics", probe("/metrics", &[], [200; 6])),
        // The account pools: the platform team.
        m(
            Method::GET,
            "/account-pool",
            probe("/account-pool", &[], [303, 403, 200, 200, 403, 200]),
        ),
        m(
            Method::GET,
            "/api/v1/account-pool",
            probe("/api/v1/account-pool", &[], [401, 403, 200, 200, 403, 200]),
        ),
        // Teams: everyone signed in reads them; the platform's editors change them.
        m(
            Method::GET,
            "/platforms/{slug}/teams",
            probe("/platforms/demo/teams", &[], [303, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/teams",
            probe7(
                "/platforms/demo/teams",
                &[("name", "Not A Label")],
                editors(422),
            ),
        ),
        m(
            Method::GET,
            "/platforms/{slug}/teams/{name}",
            probe(
                "/platforms/demo/teams/nobody",
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/teams/{name}",
            probe7("/platforms/demo/teams/nobody", &[], editors(404)),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/teams/{name}/delete",
            probe7("/platforms/demo/teams/nobody/delete", &[], editors(404)),
        ),
        // Services: everyone signed in reads them and may ask to onboard one; the use case then
        // lets only the team's members and the platform team (a probe naming no team: 422).
        m(
            Method::GET,
            "/platforms/{slug}/services",
            probe(
                "/platforms/demo/services",
                &[],
                [303, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/services",
            probe(
                "/platforms/demo/services",
                &[("name", "payments"), ("team", "nobody")],
                [303, 422, 422, 422, 422, 422],
            ),
        ),
        m(
            Method::GET,
            "/platforms/{slug}/services/{name}",
            probe(
                "/platforms/demo/services/nobody",
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/services",
            probe(
                "/api/v1/platforms/demo/services",
                &[],
                [401, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/services",
            api(
                "/api/v1/platforms/demo/services",
                json!({"name": "payments", "team": "nobody", "environments": []}),
                [401, 422, 422, 422, 422, 422, 422],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/services/{name}",
            probe(
                "/api/v1/platforms/demo/services/nobody",
                &[],
                [401, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/teams",
            probe(
                "/api/v1/platforms/demo/teams",
                &[],
                [401, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/teams",
            api(
                "/api/v1/platforms/demo/teams",
                json!({"name": "Not A Label"}),
                api_editors(422),
            ),
        ),
        m(
            Method::GET,
            "/api/v1/platforms/{slug}/teams/{name}",
            probe(
                "/api/v1/platforms/demo/teams/nobody",
                &[],
                [401, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::PATCH,
            "/api/v1/platforms/{slug}/teams/{name}",
            api(
                "/api/v1/platforms/demo/teams/nobody",
                json!({}),
                api_editors(404),
            ),
        ),
        m(
            Method::DELETE,
            "/api/v1/platforms/{slug}/teams/{name}",
            api(
                "/api/v1/platforms/demo/teams/nobody",
                json!({}),
                api_editors(404),
            ),
        ),
        // The hand-over: whoever sees the environment (an unknown one is 404 to all).
        m(
            Method::GET,
            "/environments/{id}/handover",
            probe(
                &format!("/environments/{unknown}/handover"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::GET,
            "/environments/{id}/handover/kubeconfig",
            probe(
                &format!("/environments/{unknown}/handover/kubeconfig"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/environments/{id}/handover",
            probe(
                &format!("/api/v1/environments/{unknown}/handover"),
                &[],
                [401, 404, 404, 404, 404, 404],
            ),
        ),
        // Drift: the platform team's (an unknown environment is 404 to all; the policy matrix
        // and the drift tests cover who may).
        m(
            Method::GET,
            "/environments/{id}/drift",
            probe(
                &format!("/environments/{unknown}/drift"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/environments/{id}/drift",
            probe(
                &format!("/api/v1/environments/{unknown}/drift"),
                &[],
                [401, 404, 404, 404, 404, 404],
            ),
        ),
        // Upgrades: the platform team's, like drift (the upgrade tests cover who decides).
        m(
            Method::GET,
            "/environments/{id}/upgrade",
            probe(
                &format!("/environments/{unknown}/upgrade"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/environments/{id}/upgrade",
            probe(
                &format!("/api/v1/environments/{unknown}/upgrade"),
                &[],
                [401, 404, 404, 404, 404, 404],
            ),
        ),
        // What an environment costs: whoever sees it (an unknown one is 404 to all).
        m(
            Method::GET,
            "/api/v1/environments/{id}/cost",
            probe(
                &format!("/api/v1/environments/{unknown}/cost"),
                &[],
                [401, 404, 404, 404, 404, 404],
            ),
        ),
        // The version calendar: everyone reads it, admins correct it (these bodies are
        // invalid, so nothing changes).
        m(
            Method::GET,
            "/kubernetes-versions",
            probe("/kubernetes-versions", &[], [303, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::POST,
            "/kubernetes-versions",
            probe("/kubernetes-versions", &[], [303, 403, 403, 422, 403, 422]),
        ),
        m(
            Method::GET,
            "/api/v1/kubernetes-versions",
            probe(
                "/api/v1/kubernetes-versions",
                &[],
                [401, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::PUT,
            "/api/v1/kubernetes-versions/{version}",
            api(
                "/api/v1/kubernetes-versions/1.36",
                json!({"standard_support_ends": "soon", "extended_support_ends": "later", "note": ""}),
                [401, 403, 403, 403, 422, 403, 422],
            ),
        ),
        // The whole catalog: the platform team (Backstage reads it with such a token).
        m(
            Method::GET,
            "/api/v1/catalog/entities",
            probe(
                "/api/v1/catalog/entities",
                &[],
                [401, 403, 200, 200, 403, 200],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/catalog-info.yaml",
            probe(
                "/api/v1/catalog-info.yaml",
                &[],
                [401, 403, 200, 200, 403, 200],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/jobs",
            probe("/api/v1/jobs", &[], [401, 403, 200, 200, 403, 200]),
        ),
        m(
            Method::GET,
            "/api/v1/jobs/{id}",
            probe("/api/v1/jobs/999999", &[], [401, 403, 404, 404, 403, 404]),
        ),
        m(
            Method::POST,
            "/api/v1/jobs/{id}/retry",
            api(
                "/api/v1/jobs/999999/retry",
                json!({}),
                [401, 403, 404, 404, 404, 403, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/jobs/{id}/cancel",
            api(
                "/api/v1/jobs/999999/cancel",
                json!({}),
                [401, 403, 404, 404, 404, 403, 404],
            ),
        ),
        // Environments. Unknown ids are 404 for everyone signed in: existence is not given away.
        m(
            Method::GET,
            "/platforms/{slug}/environments/new",
            probe(
                "/platforms/demo/environments/new?type=dev",
                &[],
                [303, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/environments",
            probe(
                "/platforms/demo/environments",
                &[("environment_type", "dev"), ("name", "Not A Name")],
                [303, 422, 422, 422, 422, 422],
            ),
        ),
        m(
            Method::GET,
            "/platforms/{slug}/environments/check-name",
            probe(
                "/platforms/demo/environments/check-name?name=x",
                &[],
                [303, 200, 200, 200, 200, 200],
            ),
        ),
        m(
            Method::GET,
            "/platforms/{slug}/webhook",
            probe7("/platforms/demo/webhook", &[], editors(200)),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/webhook",
            probe7(
                "/platforms/demo/webhook",
                &[("url", "not a url")],
                editors(422),
            ),
        ),
        m(
            Method::POST,
            "/platforms/{slug}/webhook/delete",
            probe7("/platforms/demo/webhook/delete", &[], editors(303)),
        ),
        m(
            Method::GET,
            "/environments",
            probe("/environments", &[], [303, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::GET,
            "/environments/{id}",
            probe(
                &format!("/environments/{unknown}"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/approve",
            probe(
                &format!("/environments/{unknown}/approve"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/reject",
            probe(
                &format!("/environments/{unknown}/reject"),
                &[("reason", "no")],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/cancel",
            probe(
                &format!("/environments/{unknown}/cancel"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/extend",
            probe(
                &format!("/environments/{unknown}/extend"),
                &[("ttl_hours", "10")],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/teardown",
            probe(
                &format!("/environments/{unknown}/teardown"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/retry",
            probe(
                &format!("/environments/{unknown}/retry"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/upgrade",
            probe(
                &format!("/environments/{unknown}/upgrade"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/upgrade/approve",
            probe(
                &format!("/environments/{unknown}/upgrade/approve"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/upgrade/reject",
            probe(
                &format!("/environments/{unknown}/upgrade/reject"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/upgrade/cancel",
            probe(
                &format!("/environments/{unknown}/upgrade/cancel"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/upgrade/retry",
            probe(
                &format!("/environments/{unknown}/upgrade/retry"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/drift/check",
            probe(
                &format!("/environments/{unknown}/drift/check"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/drift/accept",
            probe(
                &format!("/environments/{unknown}/drift/accept"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/environments/{id}/reconcile",
            probe(
                &format!("/environments/{unknown}/reconcile"),
                &[],
                [303, 404, 404, 404, 404, 404],
            ),
        ),
        // The fixture has started demo's DevOps environment: a second one is a conflict.
        m(
            Method::POST,
            "/platforms/{slug}/devops-environment",
            probe7(
                "/platforms/demo/devops-environment",
                &[],
                [303, 403, 409, 403, 403, 403, 403],
            ),
        ),
        m(
            Method::GET,
            "/approvals",
            probe("/approvals", &[], [303, 403, 200, 200, 403, 200]),
        ),
        m(
            Method::POST,
            "/approvals/bulk",
            probe(
                "/approvals/bulk",
                &[("decision", "maybe")],
                [303, 403, 422, 422, 403, 422],
            ),
        ),
        m(
            Method::GET,
            "/notifications",
            probe("/notifications", &[], [303, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::POST,
            "/notifications/read",
            probe("/notifications/read", &[], [303, 303, 303, 303, 303, 303]),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/environments",
            api(
                "/api/v1/platforms/demo/environments",
                json!({"environment_type": "dev", "name": "Not A Name"}),
                [401, 422, 422, 422, 422, 422, 422],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/environments",
            probe("/api/v1/environments", &[], [401, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::GET,
            "/api/v1/environments/{id}",
            probe(
                &format!("/api/v1/environments/{unknown}"),
                &[],
                [401, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/environments/{id}/plan",
            probe(
                &format!("/api/v1/environments/{unknown}/plan"),
                &[],
                [401, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/environments/{id}/events",
            probe(
                &format!("/api/v1/environments/{unknown}/events"),
                &[],
                [401, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/approve",
            api(
                &format!("/api/v1/environments/{unknown}/approve"),
                json!({}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/reject",
            api(
                &format!("/api/v1/environments/{unknown}/reject"),
                json!({"reason": "no"}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/cancel",
            api(
                &format!("/api/v1/environments/{unknown}/cancel"),
                json!({}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/extend",
            api(
                &format!("/api/v1/environments/{unknown}/extend"),
                json!({"ttl_hours": 10}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/teardown",
            api(
                &format!("/api/v1/environments/{unknown}/teardown"),
                json!({}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/retry",
            api(
                &format!("/api/v1/environments/{unknown}/retry"),
                json!({}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/upgrade",
            api(
                &format!("/api/v1/environments/{unknown}/upgrade"),
                json!({"kubernetes_version": "1.35"}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/upgrade/approve",
            api(
                &format!("/api/v1/environments/{unknown}/upgrade/approve"),
                json!({}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/upgrade/reject",
            api(
                &format!("/api/v1/environments/{unknown}/upgrade/reject"),
                json!({"reason": "not now"}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/upgrade/cancel",
            api(
                &format!("/api/v1/environments/{unknown}/upgrade/cancel"),
                json!({}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/upgrade/retry",
            api(
                &format!("/api/v1/environments/{unknown}/upgrade/retry"),
                json!({}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/drift/check",
            api(
                &format!("/api/v1/environments/{unknown}/drift/check"),
                json!({}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/reconcile",
            api(
                &format!("/api/v1/environments/{unknown}/reconcile"),
                json!({}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/environments/{id}/drift/accept",
            api(
                &format!("/api/v1/environments/{unknown}/drift/accept"),
                json!({"reason": "known"}),
                [401, 404, 404, 404, 404, 404, 404],
            ),
        ),
        m(
            Method::POST,
            "/api/v1/platforms/{slug}/devops-environment",
            api(
                "/api/v1/platforms/demo/devops-environment",
                json!({}),
                [401, 403, 409, 403, 403, 403, 403],
            ),
        ),
        m(
            Method::GET,
            "/api/v1/notifications",
            probe("/api/v1/notifications", &[], [401, 200, 200, 200, 200, 200]),
        ),
        m(
            Method::POST,
            "/api/v1/notifications/read",
            api(
                "/api/v1/notifications/read",
                json!({}),
                [401, 200, 200, 200, 200, 200, 200],
            ),
        ),
    ])
}

/// Sets up `demo` (scope, revision 1 approved, revision 2 a draft) and `to-archive`; returns
/// `demo`'s id.
async fn fixture(app: &TestApp) -> uuid::Uuid {
    let author = app
        .token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    let reviewer_email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let reviewer_id = app
        .create_user(
            &reviewer_email,
            &[Role::PlatformEngineer],
            support::PASSWORD,
        )
        .await;
    let (_, reviewer) = slipway::auth::tokens::create(
        &app.pool,
        reviewer_id,
        "t",
        &[Role::PlatformEngineer].into_iter().collect(),
        None,
    )
    .await
    .unwrap();
    let c = client();
    let call = |method: Method, path: &str, token: &str, body: Value| {
        c.request(method, app.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    for slug in ["demo", "to-archive"] {
        let res = call(
            Method::POST,
            "/api/v1/platforms",
            &author,
            json!({"slug": slug, "name": slug, "owner_team": "Platform"}),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let demo: uuid::Uuid = sqlx::query_scalar("SELECT id FROM platform WHERE slug = 'demo'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let scope = json!({"goals": ["Payments on Kubernetes"], "cloud": "aws", "regions": ["eu-west-1"], "complexity": "standard", "define_started_on": "2026-11-02"});
    let res = call(Method::PUT, "/api/v1/platforms/demo/scope", &author, scope)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    slipway::define::platforms::add_member(&app.pool, demo, reviewer_id)
        .await
        .unwrap();
    let res = call(
        Method::POST,
        "/api/v1/platforms/demo/blueprints",
        &author,
        json!({"from_template": true}),
    )
    .await
    .unwrap();
    let first: Value = res.json().await.unwrap();
    call(
        Method::POST,
        "/api/v1/platforms/demo/blueprints/1/submit",
        &author,
        json!({}),
    )
    .await
    .unwrap();
    let res = call(
        Method::POST,
        "/api/v1/platforms/demo/blueprints/1/reviews",
        &reviewer,
        json!({"verdict": "approve"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = call(
        Method::POST,
        "/api/v1/platforms/demo/devops-environment",
        &author,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "the DevOps environment starts"
    );
    let mut document = first["document"].clone();
    document["cloud"]["region"] = json!("eu-central-1");
    let res = call(
        Method::POST,
        "/api/v1/platforms/demo/blueprints",
        &author,
        json!({"base_revision": 1, "document": document}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    demo
}

fn unique(form: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    form.iter()
        .map(|(k, v)| {
            (
                *k,
                v.replace("{unique}", &uuid::Uuid::new_v4().simple().to_string()),
            )
        })
        .collect()
}

/// A client acting as `caller`, with the CSRF token its forms would carry (none for tokens).
async fn act_as(
    app: &TestApp,
    caller: Caller,
    demo: uuid::Uuid,
) -> (reqwest::Client, Option<String>, Option<String>) {
    let session = |roles: &'static [Role], member: bool| async move {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let user: UserId = app.create_user(&email, roles, support::PASSWORD).await;
        if member {
            slipway::define::platforms::add_member(&app.pool, demo, user)
                .await
                .unwrap();
        }
        let c = client();
        app.login(&c, &email, support::PASSWORD).await;
        let page = c
            .get(app.url("/profile"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (c, Some(csrf_token(&page)), None)
    };
    match caller {
        Caller::Anonymous => {
            let c = client();
            let page = c
                .get(app.url("/login"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let token = csrf_token(&page);
            (c, Some(token), None)
        }
        Caller::Developer => session(&[Role::Developer], false).await,
        // Platform engineers and admins are developers too, as in most teams.
        Caller::MemberEngineer => session(&[Role::PlatformEngineer, Role::Developer], true).await,
        Caller::OutsideEngineer => session(&[Role::PlatformEngineer, Role::Developer], false).await,
        Caller::Admin => session(&[Role::Admin, Role::Developer], false).await,
        Caller::DeveloperToken => (
            client(),
            None,
            Some(
                app.token(&[Role::Developer, Role::Admin], &[Role::Developer])
                    .await,
            ),
        ),
        Caller::AdminToken => (
            client(),
            None,
            Some(app.token(&[Role::Admin], &[Role::Admin]).await),
        ),
    }
}

fn request(
    c: &reqwest::Client,
    app: &TestApp,
    method: &Method,
    probe: &Probe,
    csrf: Option<String>,
    bearer: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut request = c.request(method.clone(), app.url(&probe.path));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if *method == Method::GET {
        return request;
    }
    match &probe.json {
        Some(body) => {
            if let Some(token) = csrf {
                request = request.header("x-csrf-token", token);
            }
            request.json(body)
        }
        None => {
            let mut form = unique(&probe.form);
            if let Some(token) = csrf {
                form.push(("_csrf", token));
            }
            request.form(&form)
        }
    }
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_matrix_says() {
    let app = TestApp::spawn().await;
    let demo = fixture(&app).await;
    let css = slipway::http::assets::urls().css.clone();
    let mut table = matrix(&css);
    let mut failures = Vec::new();
    for route in slipway::app::router::route_table() {
        let key = (route.method.clone(), route.path);
        let probe = table.remove(&key).unwrap_or_else(|| {
            panic!(
                "{} {} has no entry in the authorization matrix",
                route.method, route.path
            )
        });
        for (caller, expected) in CALLERS.iter().zip(probe.expect) {
            // A fresh caller per request: signing out must not spoil the next check.
            let (c, csrf, bearer) = act_as(&app, *caller, demo).await;
            let status = request(&c, &app, &route.method, &probe, csrf, bearer.as_deref())
                .send()
                .await
                .unwrap()
                .status();
            if status.as_u16() != expected {
                failures.push(format!(
                    "{} {} as {caller:?}: expected {expected}, got {status}",
                    route.method, probe.path
                ));
            }
        }
    }
    assert!(
        table.is_empty(),
        "matrix entries for routes that do not exist: {:?}",
        table.keys()
    );
    assert!(
        failures.is_empty(),
        "authorization matrix violations:\n{}",
        failures.join("\n")
    );
}

/// Row counts of everything a request could change.
async fn snapshot(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "app_user",
        "session",
        "api_token",
        "one_time_link",
        "audit_event",
        "login_failure",
        "platform",
        "platform_member",
        "technical_scope",
        "blueprint_revision",
        "blueprint_review",
        "backlog_item",
        "environment",
        "environment_approval",
        "environment_event",
        "notification",
        "platform_webhook",
    ] {
        let sql = format!("SELECT count(*) FROM {table}");
        counts.push(
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&app.pool)
                .await
                .unwrap(),
        );
    }
    let roles: Vec<String> = sqlx::query_scalar("SELECT roles::text FROM app_user ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    counts.push(roles.join("|").len() as i64);
    let states: Vec<String> =
        sqlx::query_scalar("SELECT state FROM blueprint_revision ORDER BY number")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    counts.push(states.join("|").len() as i64);
    let archived: i64 =
        sqlx::query_scalar("SELECT count(*) FROM platform WHERE archived_at IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    counts.push(archived);
    counts
}

#[tokio::test]
async fn every_state_changing_route_refuses_a_request_without_its_csrf_token() {
    let app = TestApp::spawn().await;
    let demo = fixture(&app).await;
    let css = slipway::http::assets::urls().css.clone();
    let table = matrix(&css);
    // An admin who is also a member engineer of `demo`: allowed everywhere, so only the missing
    // token can be why a request is refused.
    let (admin, _, _) = act_as(&app, Caller::Admin, demo).await;
    let (other, other_token, _) = act_as(&app, Caller::Admin, demo).await;
    drop(other);
    let foreign_token = other_token.unwrap();

    let unsafe_routes: Vec<_> = slipway::app::router::route_table()
        .into_iter()
        .filter(|r| r.method != Method::GET && r.method != Method::HEAD)
        .collect();
    assert!(
        unsafe_routes.len() >= 25,
        "the table lists the state-changing routes"
    );

    for route in unsafe_routes {
        let probe = &table[&(route.method.clone(), route.path)];
        for token in [None, Some("forged".to_owned()), Some(foreign_token.clone())] {
            let before = snapshot(&app).await;
            let res = request(&admin, &app, &route.method, probe, token.clone(), None)
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                StatusCode::FORBIDDEN,
                "{} {} with token {token:?} was not refused",
                route.method,
                probe.path
            );
            let body = res.text().await.unwrap();
            assert!(
                body.contains("nothing was changed"),
                "the answer says why: {body}"
            );
            assert_eq!(
                snapshot(&app).await,
                before,
                "{} {} changed something",
                route.method,
                probe.path
            );
        }
    }
    // The admin is still signed in: the refused sign-outs did nothing.
    assert_eq!(
        admin
            .get(app.url("/profile"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn sign_in_form_is_protected_against_login_csrf() {
    let app = TestApp::spawn().await;
    app.create_user(
        "victim-proof@example.com",
        &[Role::Developer],
        support::PASSWORD,
    )
    .await;
    // A cross-site form post: the browser has no pre-session cookie and sends no token.
    let res = client()
        .post(app.url("/login"))
        .form(&[
            ("email", "victim-proof@example.com"),
            ("password", support::PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().contains("slipway_session="))
    );
}

#[tokio::test]
async fn only_members_of_a_platform_decide_its_environment_requests() {
    let app = TestApp::spawn().await;
    let demo = fixture(&app).await;
    let requester = app.token(&[Role::Developer], &[Role::Developer]).await;
    let res = client()
        .post(app.url("/api/v1/platforms/demo/environments"))
        .bearer_auth(&requester)
        .json(&json!({"environment_type": "dev", "name": "checkout", "purpose": "Tests"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let env: Value = res.json().await.unwrap();
    assert_eq!(env["state"], "submitted");
    let id = env["id"].as_str().unwrap().to_owned();

    // Probes that pass authorization but fail validation, so nothing is decided: an approval
    // comment over 2,000 characters, a rejection without a reason. Developers do not see the
    // request (404); the engineer from outside the platform may not decide it (403).
    let long = "x".repeat(2001);
    let rows = [401, 404, 422, 403, 422, 404, 422];
    let pages = [303, 404, 422, 403, 422, 404, 422];
    let probes = [
        api(
            &format!("/api/v1/environments/{id}/approve"),
            json!({"comment": long}),
            rows,
        ),
        api(
            &format!("/api/v1/environments/{id}/reject"),
            json!({"reason": ""}),
            rows,
        ),
        probe7(
            &format!("/environments/{id}/approve"),
            &[("comment", long.as_str())],
            pages,
        ),
        probe7(
            &format!("/environments/{id}/reject"),
            &[("reason", "")],
            pages,
        ),
    ];
    let mut failures = Vec::new();
    for probe in &probes {
        for (caller, expected) in CALLERS.iter().zip(probe.expect) {
            let (c, csrf, bearer) = act_as(&app, *caller, demo).await;
            let res = request(&c, &app, &Method::POST, probe, csrf, bearer.as_deref())
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap();
            if status != expected {
                failures.push(format!(
                    "{} as {caller:?}: expected {expected}, got {status}",
                    probe.path
                ));
            }
            if matches!(caller, Caller::OutsideEngineer)
                && !body.contains("Only members of platform demo can approve or reject")
            {
                failures.push(format!("{}: the refusal says why: {body}", probe.path));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The bulk action of the dashboard asks the same question for each request.
    let (outsider, csrf, _) = act_as(&app, Caller::OutsideEngineer, demo).await;
    let page = outsider
        .post(app.url("/approvals/bulk"))
        .form(&[
            ("_csrf", csrf.unwrap().as_str()),
            ("decision", "approve"),
            ("ids", id.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Only members of platform demo"), "{page}");
    let state: String = sqlx::query_scalar("SELECT state FROM environment WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(state, "submitted", "nobody decided anything");

    // A member does.
    let (member, csrf, _) = act_as(&app, Caller::MemberEngineer, demo).await;
    let res = member
        .post(app.url(&format!("/api/v1/environments/{id}/approve")))
        .header("x-csrf-token", csrf.unwrap())
        .json(&json!({"comment": "ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// The string leaves of a JSON document: (field path, pointer).
fn string_leaves(value: &Value, path: &str, pointer: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(_) => out.push((path.to_owned(), pointer.to_owned())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                string_leaves(
                    item,
                    &format!("{path}[{i}]"),
                    &format!("{pointer}/{i}"),
                    out,
                );
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                string_leaves(item, &child, &format!("{pointer}/{k}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn no_route_lets_a_control_character_through() {
    let app = TestApp::spawn().await;
    let demo = fixture(&app).await;
    let css = slipway::http::assets::urls().css.clone();
    let table = matrix(&css);
    let (browser, csrf, _) = act_as(&app, Caller::Admin, demo).await;
    let csrf = csrf.unwrap();
    let token = app.token(&[Role::Admin], &[Role::Admin]).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in slipway::app::router::route_table() {
        let probe = &table[&(route.method.clone(), route.path)];
        let api = route.path.starts_with("/api/");
        let send = |path: String, json: Option<Value>, form: Option<Vec<(String, String)>>| {
            let mut request = browser.request(route.method.clone(), app.url(&path));
            if api {
                request = request.bearer_auth(&token);
            }
            if let Some(json) = json {
                request = request.json(&json);
            } else if let Some(mut form) = form {
                form.push(("_csrf".into(), csrf.clone()));
                request = request.form(&form);
            } else if route.method != Method::GET {
                request = request.form(&[("_csrf", csrf.as_str())]);
            }
            request.send()
        };
        let (path, query) = probe.path.split_once('?').unwrap_or((&probe.path, ""));
        // (path, JSON body, form body, expected status, field the answer names)
        type Variant = (
            String,
            Option<Value>,
            Option<Vec<(String, String)>>,
            u16,
            Option<String>,
        );
        let mut variants: Vec<Variant> = Vec::new();

        // %00 in each path parameter: 400.
        let pattern: Vec<&str> = route.path.split('/').collect();
        let segments: Vec<&str> = path.split('/').collect();
        for (i, part) in pattern.iter().enumerate() {
            if part.starts_with('{') {
                let mut bad = segments.clone();
                bad[i] = "%00";
                let name = part.trim_matches(['{', '}']).to_owned();
                variants.push((bad.join("/"), probe.json.clone(), None, 400, Some(name)));
            }
        }
        // %00 in every query parameter (one of its own where there is none): 400.
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, _)| (k.into_owned(), "\0".to_owned()))
            .chain(std::iter::once(("q".to_owned(), "\0".to_owned())))
            .collect();
        for (name, value) in params {
            let mut kept = form_urlencoded::Serializer::new(String::new());
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                if k != name {
                    kept.append_pair(&k, &v);
                }
            }
            kept.append_pair(&name, &value);
            variants.push((
                format!("{path}?{}", kept.finish()),
                probe.json.clone(),
                None,
                400,
                Some(name),
            ));
        }
        // NUL in every string of the body, and in a field of its own: 422 naming the field.
        if route.method != Method::GET {
            match &probe.json {
                Some(body) => {
                    let mut body = body.clone();
                    if let Some(map) = body.as_object_mut() {
                        map.insert("comment".into(), json!("fine"));
                    }
                    let mut leaves = Vec::new();
                    string_leaves(&body, "", "", &mut leaves);
                    for (field, pointer) in leaves {
                        let mut bad = body.clone();
                        let text = bad.pointer_mut(&pointer).unwrap();
                        *text = json!(format!("{}\u{0}", text.as_str().unwrap()));
                        variants.push((probe.path.clone(), Some(bad), None, 422, Some(field)));
                    }
                }
                None => {
                    let form: Vec<(String, String)> = unique(&probe.form)
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .chain(std::iter::once(("comment".to_owned(), "fine".to_owned())))
                        .collect();
                    for i in 0..form.len() {
                        let mut bad = form.clone();
                        bad[i].1.push('\0');
                        variants.push((
                            probe.path.clone(),
                            None,
                            Some(bad),
                            422,
                            Some(form[i].0.clone()),
                        ));
                    }
                }
            }
        }
        for (path, json, form, expected, field) in variants {
            checked += 1;
            let res = send(path.clone(), json.clone(), form.clone())
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap();
            if status != expected {
                failures.push(format!(
                    "{} {path} {json:?} {form:?}: expected {expected}, got {status}",
                    route.method
                ));
            } else if api {
                let problem: Value = serde_json::from_str(&body).unwrap();
                let named = problem["errors"].as_array().is_some_and(|e| {
                    e.iter()
                        .any(|e| Some(e["field"].as_str().unwrap().to_owned()) == field)
                });
                if !named {
                    failures.push(format!(
                        "{} {path}: {field:?} is not named: {problem}",
                        route.method
                    ));
                }
            }
        }
    }
    assert!(checked > 200, "{checked} requests");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
