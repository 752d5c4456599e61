//! Who may call what, for every route of the router, and CSRF on every state-changing route.
//! Both tests walk `slipway::http::route_table()`, the same table the router is built from: a
//! new route without an entry here fails them.

mod support;

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use slipway::auth::Role;
use support::{TestApp, client, csrf_token};

/// The callers of the matrix, in column order.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Anonymous,
    Developer,
    PlatformEngineer,
    Admin,
    /// An admin's API token limited to the developer role.
    DeveloperToken,
    /// An admin's API token with the admin role.
    AdminToken,
}

const CALLERS: [Caller; 6] = [
    Caller::Anonymous,
    Caller::Developer,
    Caller::PlatformEngineer,
    Caller::Admin,
    Caller::DeveloperToken,
    Caller::AdminToken,
];

/// A concrete request for a route pattern: the path to call and the form to send (`{unique}` in
/// a value becomes a fresh random string per request, so repeated calls do not collide).
struct Probe {
    path: String,
    form: Vec<(&'static str, String)>,
    /// Expected status per caller, in `CALLERS` order.
    expect: [u16; 6],
}

fn probe(path: &str, form: &[(&'static str, &str)], expect: [u16; 6]) -> Probe {
    Probe {
        path: path.to_owned(),
        form: form.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        expect,
    }
}

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
                [422; 6],
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
            probe("/setup/not-a-link", setup_form, [404; 6]),
        ),
        m(
            Method::GET,
            "/invite/{token}",
            probe("/invite/not-a-link", &[], [404; 6]),
        ),
        m(
            Method::POST,
            "/invite/{token}",
            probe("/invite/not-a-link", setup_form, [404; 6]),
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
            Probe {
                path: format!("/profile/tokens/{unknown}/revoke"),
                form: vec![],
                expect: [303, 404, 404, 404, 403, 403],
            },
        ),
        m(
            Method::GET,
            "/admin/users",
            probe("/admin/users", &[], [303, 403, 403, 200, 403, 200]),
        ),
        m(
            Method::POST,
            "/admin/users",
            Probe {
                path: "/admin/users".into(),
                form: vec![
                    ("email", "{unique}@example.com".into()),
                    ("name", "New".into()),
                    ("roles", "developer".into()),
                ],
                expect: [303, 403, 403, 201, 403, 201],
            },
        ),
        m(
            Method::POST,
            "/admin/users/{id}/roles",
            Probe {
                path: format!("/admin/users/{unknown}/roles"),
                form: vec![("roles", "developer".into())],
                expect: [303, 403, 403, 404, 403, 404],
            },
        ),
        m(
            Method::GET,
            "/admin/audit",
            probe("/admin/audit", &[], [303, 403, 403, 200, 403, 200]),
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
    ])
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
) -> (reqwest::Client, Option<String>, Option<String>) {
    let session = |roles: &'static [Role]| async move {
        let c = app.signed_in(roles).await;
        let page = c
            .get(app.url("/profile"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let token = csrf_token(&page);
        (c, Some(token), None)
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
        Caller::Developer => session(&[Role::Developer]).await,
        // Platform engineers and admins are developers too, as in most teams.
        Caller::PlatformEngineer => session(&[Role::PlatformEngineer, Role::Developer]).await,
        Caller::Admin => session(&[Role::Admin, Role::Developer]).await,
        Caller::DeveloperToken => {
            let token = app
                .token(&[Role::Developer, Role::Admin], &[Role::Developer])
                .await;
            (client(), None, Some(token))
        }
        Caller::AdminToken => {
            let token = app.token(&[Role::Admin], &[Role::Admin]).await;
            (client(), None, Some(token))
        }
    }
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_matrix_says() {
    let app = TestApp::spawn().await;
    let css = slipway::http::assets::urls().css.clone();
    let mut table = matrix(&css);
    let mut failures = Vec::new();
    for route in slipway::http::route_table() {
        let key = (route.method.clone(), route.path);
        let probe = table.remove(&key).unwrap_or_else(|| {
            panic!(
                "{} {} has no entry in the authorization matrix",
                route.method, route.path
            )
        });
        for (caller, expected) in CALLERS.iter().zip(probe.expect) {
            // A fresh caller per request: signing out must not spoil the next check.
            let (c, csrf, bearer) = act_as(&app, *caller).await;
            let mut request = c.request(route.method.clone(), app.url(&probe.path));
            if let Some(token) = &bearer {
                request = request.bearer_auth(token);
            }
            if route.method != Method::GET {
                let mut form = unique(&probe.form);
                if let Some(token) = csrf {
                    form.push(("_csrf", token));
                }
                request = request.form(&form);
            }
            let status = request.send().await.unwrap().status();
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
    counts
}

#[tokio::test]
async fn every_state_changing_route_refuses_a_request_without_its_csrf_token() {
    let app = TestApp::spawn().await;
    let css = slipway::http::assets::urls().css.clone();
    let table = matrix(&css);
    let admin = app.signed_in(&[Role::Admin]).await;
    let other = app.signed_in(&[Role::Admin]).await;
    let other_page = other
        .get(app.url("/profile"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let foreign_token = csrf_token(&other_page);

    let unsafe_routes: Vec<_> = slipway::http::route_table()
        .into_iter()
        .filter(|r| r.method != Method::GET && r.method != Method::HEAD)
        .collect();
    assert!(
        unsafe_routes.len() >= 8,
        "the table lists the state-changing routes"
    );

    for route in unsafe_routes {
        let probe = &table[&(route.method.clone(), route.path)];
        for token in [None, Some("forged"), Some(foreign_token.as_str())] {
            let before = snapshot(&app).await;
            let mut form = unique(&probe.form);
            if let Some(t) = token {
                form.push(("_csrf", t.to_owned()));
            }
            let res = admin
                .request(route.method.clone(), app.url(&probe.path))
                .form(&form)
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
                "the page says why: {body}"
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
