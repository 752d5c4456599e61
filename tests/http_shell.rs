//! The HTTP shell over real HTTP: pages, error mapping for browsers and the API, security
//! headers, static assets and probes.

mod support;

use reqwest::StatusCode;
use reqwest::header;
use slipway::auth::Role;
use support::TestApp;

#[tokio::test]
async fn home_page_shows_the_portal_shell() {
    let app = TestApp::spawn().await;
    let browser = app.signed_in(&[Role::Developer]).await;
    let res = browser.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("<title>Overview · Slipway</title>"));
    assert!(
        html.contains(r#"<a href="/" aria-current="page">Overview</a>"#),
        "{html}"
    );
    assert!(html.contains(r#"<a href="/status">System status</a>"#));
    // Administration is not offered to a developer.
    assert!(!html.contains("/admin/users"));
    // The default cloud is the simulation, and every page says so.
    assert!(html.contains("Simulated cloud"));
    for phase in ["Define", "Deliver", "Exploit", "Maintain"] {
        assert!(
            html.contains(&format!("<h3>{phase}</h3>")),
            "missing phase {phase}"
        );
    }
}

#[tokio::test]
async fn status_page_reports_database_and_schema() {
    let app = TestApp::spawn().await;
    let browser = app.signed_in(&[Role::Developer]).await;
    let html = browser
        .get(app.url("/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"aria-current="page">System status"#));
    assert!(html.contains("External PostgreSQL (DATABASE_URL)"));
    let version = slipway::db::latest_known_version();
    assert!(html.contains(&format!("migration {version}")), "{html}");
    assert!(html.contains("up to date"));
}

#[tokio::test]
async fn unknown_page_is_an_html_404_for_browsers() {
    let app = TestApp::spawn().await;
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let html = res.text().await.unwrap();
    assert!(html.contains("<h1>Not Found</h1>"));
    assert!(html.contains("Back to the overview"));
    // The page quotes the request id for support.
    assert!(html.contains(&request_id));
}

#[tokio::test]
async fn error_pages_keep_the_signed_in_shell() {
    let app = TestApp::spawn().await;
    let browser = app.signed_in(&[Role::Admin]).await;
    let res = browser.get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(r#"<a href="/admin/users">Users</a>"#),
        "{html}"
    );
    assert!(html.contains("Sign out"));
}

#[tokio::test]
async fn pages_send_anonymous_browsers_to_sign_in_and_back() {
    let app = TestApp::spawn().await;
    let res = app.get("/status?x=1").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[header::LOCATION],
        "/login?next=%2Fstatus%3Fx%3D1"
    );
}

#[tokio::test]
async fn unknown_api_route_is_a_json_problem() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/no-such-thing").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["type"], "about:blank");
    assert_eq!(problem["title"], "Not Found");
    assert_eq!(problem["status"], 404);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("nothing at this address")
    );
}

#[tokio::test]
async fn wrong_method_is_405_in_the_callers_format() {
    let app = TestApp::spawn().await;
    let browser = app.signed_in(&[Role::Developer]).await;
    let page = browser
        .get(app.url("/profile"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = browser
        .put(app.url("/status"))
        .header("x-csrf-token", support::csrf_token(&page))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("<h1>Method Not Allowed</h1>")
    );

    let res = app.client.put(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    for path in ["/", "/login", "/no-such-page", "/api/v1/none", "/healthz"] {
        let res = app.get(path).await;
        let h = res.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin", "{path}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{path}");
        assert!(h.contains_key("x-request-id"), "{path}");
    }
}

#[tokio::test]
async fn pages_use_no_inline_script_or_style() {
    let app = TestApp::spawn().await;
    let browser = app.signed_in(&[Role::Admin]).await;
    for path in [
        "/",
        "/status",
        "/missing",
        "/profile",
        "/admin/users",
        "/admin/audit",
    ] {
        let html = browser
            .get(app.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("<script>"), "{path} has an inline script");
        assert!(!html.contains("style="), "{path} has an inline style");
        assert!(!html.contains("onclick"), "{path} has an inline handler");
    }
}

#[tokio::test]
async fn a_request_id_from_a_proxy_is_kept() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "lb-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "lb-1234");
}

#[tokio::test]
async fn static_assets_are_content_hashed_and_cached_forever() {
    let app = TestApp::spawn().await;
    let html = app.get("/login").await.text().await.unwrap();
    let css = html
        .split('"')
        .find(|s| s.starts_with("/static/app.") && s.ends_with(".css"))
        .expect("the page links its stylesheet")
        .to_owned();
    let res = app.get(&css).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/css; charset=utf-8"
    );
    assert_eq!(
        res.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("prefers-color-scheme: dark")
    );

    // A stale hash is not served from a cache-forever URL.
    let res = app.get("/static/app.000000000000.css").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn responses_are_compressed_when_the_client_accepts_it() {
    let app = TestApp::spawn().await;
    let css_path = slipway::http::assets::urls().css.clone();
    let res = app
        .client
        .get(app.url(&css_path))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
}

#[tokio::test]
async fn probes_report_health_and_readiness() {
    let app = TestApp::spawn().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let res = app.get("/readyz").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["schema_version"], slipway::db::latest_known_version());
}

#[tokio::test]
async fn readiness_fails_while_the_schema_is_not_migrated() {
    let app = TestApp::spawn().await;
    // Simulate an unfinished upgrade: the newest migration is not recorded as applied.
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(slipway::db::latest_known_version())
        .execute(&app.pool)
        .await
        .unwrap();
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    // Liveness is unaffected: the process is up.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_audit_log_is_append_only_in_the_database() {
    let app = TestApp::spawn().await;
    sqlx::query(
        "INSERT INTO audit_event (actor_label, action, subject) VALUES ('system', 'test.recorded', 'platform:demo')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    for statement in [
        "UPDATE audit_event SET action = 'test.rewritten'",
        "DELETE FROM audit_event",
        "TRUNCATE audit_event",
    ] {
        let err = sqlx::query(statement).execute(&app.pool).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_event")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn strict_transport_security_only_when_the_public_url_is_https() {
    let app = TestApp::spawn().await;
    let res = app.get("/healthz").await;
    assert!(
        !res.headers()
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    );

    let config = slipway::app::config::Config {
        public_url: Some("https://slipway.example.com".into()),
        ..Default::default()
    };
    let app = TestApp::spawn_with(config).await;
    for path in ["/healthz", "/login", "/no-such-page"] {
        let res = app.get(path).await;
        assert_eq!(
            res.headers()[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000",
            "{path}"
        );
    }
}
