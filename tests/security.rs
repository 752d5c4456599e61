//! Findings of a hostile test pass (issue 15), each kept as the test that would have caught it:
//! webhooks into internal networks, open redirects after sign-in, the sign-in rate limit under
//! parallel attempts, CSRF skipped for a bearer header that authenticates nobody, and a
//! backlog PATCH that saved half of a refused body.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use slipway::auth::{Role, UserId};
use slipway::environments::notify::WebhookDelivery;
use slipway::outbound::GuardedResolver;
use support::{PASSWORD, TestApp, client, csrf_token, set_cookie_value};

/// A platform engineer with a browser session and an API token, member of a new platform.
struct Editor {
    id: UserId,
    browser: reqwest::Client,
    token: String,
    platform: uuid::Uuid,
}

async fn editor(app: &TestApp, slug: &str) -> Editor {
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let roles = [Role::PlatformEngineer, Role::Developer];
    let id = app.create_user(&email, &roles, PASSWORD).await;
    let (_, token) =
        slipway::auth::tokens::create(&app.pool, id, "t", &roles.into_iter().collect(), None)
            .await
            .unwrap();
    let res = app
        .api(
            Method::POST,
            "/api/v1/platforms",
            &token,
            Some(json!({"slug": slug, "name": slug, "owner_team": "Platform"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let platform = sqlx::query_scalar("SELECT id FROM platform WHERE slug = $1")
        .bind(slug)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let browser = client();
    assert_eq!(
        app.login(&browser, &email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    Editor {
        id,
        browser,
        token,
        platform,
    }
}

/// Saves `url` as the webhook of `slug` through the form; the status and page.
async fn save_webhook(app: &TestApp, editor: &Editor, slug: &str, url: &str) -> (u16, String) {
    let page = editor
        .browser
        .get(app.url(&format!("/platforms/{slug}/webhook")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = editor
        .browser
        .post(app.url(&format!("/platforms/{slug}/webhook")))
        .form(&[("_csrf", csrf_token(&page).as_str()), ("url", url)])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn webhooks(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM platform_webhook")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn webhook_urls_into_internal_ranges_are_refused_when_saved() {
    let app = TestApp::spawn().await;
    let e = editor(&app, "shop").await;
    let refused = [
        // Metadata services (link-local), IPv4 and IPv6.
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://169.254.0.1/",
        "http://[fe80::1]/",
        // Private ranges.
        "http://10.0.0.1/hook",
        "http://10.255.255.255/hook",
        "http://172.16.0.1/hook",
        "http://172.31.255.254/hook",
        "http://192.168.0.1/hook",
        "http://[fc00::1]/hook",
        "http://[fd12:3456::1]/hook",
        // Carrier-grade NAT.
        "http://100.64.0.1/hook",
        "http://100.127.255.254/hook",
        // Loopback, in every spelling.
        "http://127.0.0.1:5432/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:10.0.0.1]/",
        // Unspecified ("this host").
        "http://0.0.0.0/",
        "http://0/",
        "http://[::]/",
        // Names that resolve into them: `localhost` (from /etc/hosts) and its subdomains
        // (RFC 6761: always this host).
        "http://localhost/",
        "http://localhost.:8080/",
        "http://LOCALHOST/",
        "http://anything.localhost/",
    ];
    let mut failures = Vec::new();
    for url in refused {
        let (status, page) = save_webhook(&app, &e, "shop", url).await;
        if status != 422 || !page.contains("Slipway sends webhooks only to public addresses") {
            failures.push(format!("{url}: {status}"));
        }
    }
    assert!(failures.is_empty(), "accepted: {failures:?}");
    assert_eq!(webhooks(&app).await, 0, "nothing was saved");

    // Public addresses, and names that do not resolve here (delivery checks them again).
    for url in [
        "https://1.1.1.1/hook",
        "https://hooks.slack.com/services/T0/B0/x",
    ] {
        let (status, _) = save_webhook(&app, &e, "shop", url).await;
        assert_eq!(status, 200, "{url}");
    }
    assert_eq!(webhooks(&app).await, 1);
}

#[tokio::test]
async fn an_admin_allows_internal_ranges_explicitly() {
    let config = slipway::app::config::Config {
        webhook_allowed_ranges: slipway::outbound::parse_ranges("127.0.0.1, 10.20.0.0/16").unwrap(),
        ..Default::default()
    };
    let app = TestApp::spawn_with(config).await;
    let e = editor(&app, "shop").await;
    for (url, status) in [
        ("http://127.0.0.1:9000/hook", 200),
        ("http://10.20.1.2/hook", 200),
        ("http://127.0.0.2:9000/hook", 422),
        ("http://10.21.0.1/hook", 422),
        ("http://169.254.169.254/", 422),
    ] {
        assert_eq!(save_webhook(&app, &e, "shop", url).await.0, status, "{url}");
    }
}

/// A receiver on `ip` that answers `status` (with `location`, for redirects) and counts calls.
async fn receiver(ip: &str, status: u16, location: Option<String>) -> (u16, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        let location = location.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut response = axum::response::Response::new(axum::body::Body::from(
                "internal: db password is hunter2",
            ));
            *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
            if let Some(location) = location {
                response
                    .headers_mut()
                    .insert("location", location.parse().unwrap());
            }
            response
        }
    });
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, calls)
}

/// Makes every name resolve to one address (a name whose DNS answer changed since it was saved).
struct Resolves(SocketAddr);

impl reqwest::dns::Resolve for Resolves {
    fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let addr = self.0;
        Box::pin(async move { Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs) })
    }
}

/// Stores `url` as the platform's webhook as it is (past the check at saving: a name that
/// resolved elsewhere then, or a row from before the check), has `delivery` send one message,
/// and returns the job's final state and error.
async fn deliver(
    app: &TestApp,
    e: &Editor,
    url: &str,
    delivery: WebhookDelivery,
) -> (String, Option<String>) {
    sqlx::query(
        "INSERT INTO platform_webhook (platform_id, url, secret, updated_by) VALUES ($1, $2, 's', $3)
         ON CONFLICT (platform_id) DO UPDATE SET url = EXCLUDED.url",
    )
    .bind(e.platform)
    .bind(url)
    .bind(e.id.0)
    .execute(&app.pool)
    .await
    .unwrap();
    let mut job = slipway::jobs::queue::NewJob::new(
        slipway::environments::notify::WEBHOOK_JOB,
        json!({"platform_id": e.platform, "body": {"text": "hello", "event": "submitted"}}),
    );
    job.max_attempts = 1;
    let mut conn = app.pool.acquire().await.unwrap();
    let id = slipway::jobs::queue::enqueue(&mut conn, &job)
        .await
        .unwrap();
    drop(conn);
    let workers = slipway::jobs::worker::Workers::start(
        app.pool.clone(),
        slipway::jobs::Registry::default().with(delivery),
        slipway::clock::Clock::system(),
        slipway::jobs::worker::WorkerConfig::default(),
    );
    let start = Instant::now();
    let outcome = loop {
        let (state, error): (String, Option<String>) =
            sqlx::query_as("SELECT state, last_error FROM job WHERE id = $1")
                .bind(id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if state == "completed" || state == "discarded" {
            break (state, error);
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "job {id} is {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    workers.shutdown(Duration::from_secs(5)).await;
    outcome
}

fn loopback() -> Vec<ipnet::IpNet> {
    vec!["127.0.0.1/32".parse().unwrap()]
}

#[tokio::test]
async fn webhooks_are_checked_again_when_sent_and_follow_no_redirect() {
    let app = TestApp::spawn().await;
    let e = editor(&app, "shop").await;
    let (port, calls) = receiver("127.0.0.1", 200, None).await;
    let at_receiver = SocketAddr::from(([127, 0, 0, 1], port));

    // Nothing allowed: loopback is refused however it is written or resolved, and the
    // receiver hears nothing.
    for url in [
        format!("http://localhost:{port}/hook"),
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
    ] {
        let (state, error) = deliver(&app, &e, &url, WebhookDelivery::new(vec![])).await;
        assert_eq!(state, "discarded", "{url}");
        assert!(error.as_deref().unwrap().contains("not sent:"), "{error:?}");
    }
    // A name that resolves to loopback now (it may have resolved elsewhere when saved): the
    // check runs on the address the connection would use.
    let rebinding = GuardedResolver::over(vec![], Arc::new(Resolves(at_receiver)));
    let (state, error) = deliver(
        &app,
        &e,
        &format!("http://rebound.example:{port}/hook"),
        WebhookDelivery::with_resolver(vec![], rebinding),
    )
    .await;
    assert_eq!(state, "discarded");
    assert!(
        error.as_deref().unwrap().contains("resolves to 127.0.0.1"),
        "{error:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing reached loopback");

    // Allowed: the same name is delivered, to the checked address (the name exists nowhere
    // else: the connection is pinned to what the guarded resolver returned).
    let pinned = GuardedResolver::over(loopback(), Arc::new(Resolves(at_receiver)));
    let (state, _) = deliver(
        &app,
        &e,
        &format!("http://rebound.example:{port}/hook"),
        WebhookDelivery::with_resolver(loopback(), pinned),
    )
    .await;
    assert_eq!(state, "completed");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A redirect into a refused address (127.0.0.2 is loopback, but only 127.0.0.1 is
    // allowed) is not followed.
    let (inner_port, inner_calls) = receiver("127.0.0.2", 200, None).await;
    let (redirecting, _) = receiver(
        "127.0.0.1",
        307,
        Some(format!("http://127.0.0.2:{inner_port}/steal")),
    )
    .await;
    let (state, error) = deliver(
        &app,
        &e,
        &format!("http://127.0.0.1:{redirecting}/hook"),
        WebhookDelivery::new(loopback()),
    )
    .await;
    assert_eq!(state, "discarded");
    assert_eq!(
        error.as_deref(),
        Some("step deliver: the webhook answered HTTP 307; redirects are not followed")
    );
    assert_eq!(
        inner_calls.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );

    // What others read of a delivery is the status code, never what the target answered.
    let (failing, _) = receiver("127.0.0.1", 500, None).await;
    let (_, error) = deliver(
        &app,
        &e,
        &format!("http://127.0.0.1:{failing}/hook"),
        WebhookDelivery::new(loopback()),
    )
    .await;
    assert_eq!(
        error.as_deref(),
        Some("step deliver: the webhook answered HTTP 500")
    );
    // A closed port says only that it could not connect, without the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let (_, error) = deliver(
        &app,
        &e,
        &format!("http://127.0.0.1:{closed_port}/services/SECRET"),
        WebhookDelivery::new(loopback()),
    )
    .await;
    let error = error.unwrap();
    assert!(
        !error.contains("SECRET") && !error.contains("127.0.0.1"),
        "{error}"
    );
}

#[tokio::test]
async fn sign_in_follows_only_paths_of_this_site() {
    let app = TestApp::spawn().await;
    app.create_user("dev@example.com", &[Role::Developer], PASSWORD)
        .await;
    let hostile = [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "/\\evil.example",
        "/\\/evil.example",
        "//evil.example",
        "\\\\evil.example",
        "/\u{0}/evil.example",
        "https://evil.example/",
        "evil.example",
    ];
    let location = |res: &reqwest::Response| {
        res.headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for next in hostile.iter().copied().chain(["/platforms"]) {
        let expected = if next == "/platforms" { next } else { "/" };
        // The sign-in form.
        let browser = client();
        let form = browser
            .get(app.url("/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let res = browser
            .post(app.url("/login"))
            .form(&[
                ("_csrf", csrf_token(&form).as_str()),
                ("email", "dev@example.com"),
                ("password", PASSWORD),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "POST next={next:?}");
        assert_eq!(
            location(&res).as_deref(),
            Some(expected),
            "POST next={next:?}"
        );
        assert!(set_cookie_value(&res, "slipway_session").is_some());
        // Already signed in: GET /login redirects at once, without any interaction.
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        let res = browser
            .get(app.url(&format!("/login?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "GET next={next:?}");
        assert_eq!(
            location(&res).as_deref(),
            Some(expected),
            "GET next={next:?}"
        );
    }
}

#[tokio::test]
async fn parallel_wrong_passwords_are_checked_at_most_the_limit() {
    let app = TestApp::spawn().await;
    app.create_user("dev@example.com", &[Role::Developer], PASSWORD)
        .await;
    // Forms first, so that the 40 attempts themselves arrive together.
    let mut ready = Vec::new();
    for _ in 0..40 {
        let browser = client();
        let form = browser
            .get(app.url("/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        ready.push((browser, csrf_token(&form)));
    }
    let attempts = ready.iter().map(|(browser, csrf)| {
        browser
            .post(app.url("/login"))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("email", "dev@example.com"),
                ("password", "not the password"),
            ])
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let checked = statuses.iter().filter(|s| **s == 422).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (checked, limited),
        (slipway::auth::ratelimit::PER_ACCOUNT as usize, 40 - 5),
        "{statuses:?}"
    );
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM login_failure")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failures, slipway::auth::ratelimit::PER_ACCOUNT);
}

#[tokio::test]
async fn a_bearer_header_that_authenticates_nobody_does_not_skip_csrf() {
    let app = TestApp::spawn().await;
    app.create_user("victim@example.com", &[Role::Developer], PASSWORD)
        .await;
    // No CSRF token, an invalid bearer token: the sign-in form refuses and signs nobody in.
    let browser = client();
    browser.get(app.url("/login")).send().await.unwrap();
    let res = browser
        .post(app.url("/login"))
        .bearer_auth("slw_x")
        .form(&[("email", "victim@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie_value(&res, "slipway_session").is_none());
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM session")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);

    // The same for the other forms that need no caller (first-run setup).
    let db = support::TestDb::migrated().await;
    let fresh = TestApp::spawn_on(db, Default::default(), None).await;
    let token = slipway::auth::links::new_setup(&fresh.pool).await.unwrap();
    let res = client()
        .post(fresh.url(&format!("/setup/{token}")))
        .bearer_auth("slw_x")
        .form(&[
            ("email", "mallory@example.com"),
            ("name", "Mallory"),
            ("password", PASSWORD),
            ("password_confirmation", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(slipway::auth::users::count(&fresh.pool).await.unwrap(), 0);

    // A valid token still needs no CSRF token: it carries no ambient authority.
    let api_token = app
        .token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    let res = client()
        .post(app.url("/api/v1/platforms"))
        .bearer_auth(&api_token)
        .json(&json!({"slug": "shop", "name": "Shop", "owner_team": "Platform"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_refused_backlog_patch_changes_nothing() {
    let app = TestApp::spawn().await;
    let e = editor(&app, "shop").await;
    let mut ids = Vec::new();
    for title in ["first", "second"] {
        let res = app
            .api(
                Method::POST,
                "/api/v1/platforms/shop/backlog",
                &e.token,
                Some(json!({"title": title})),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let item: Value = res.json().await.unwrap();
        ids.push(item["id"].as_str().unwrap().to_owned());
    }
    let second = format!("/api/v1/platforms/shop/backlog/{}", ids[1]);
    let items = || async {
        let res = app
            .api(
                Method::GET,
                "/api/v1/platforms/shop/backlog",
                &e.token,
                None,
            )
            .await;
        let list: Value = res.json().await.unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    for (body, field) in [
        (json!({"title": "changed", "position": "x"}), "position"),
        (json!({"title": "changed", "position": -1}), "position"),
        (json!({"title": "changed", "move": "sideways"}), "move"),
        (json!({"title": "changed", "move": 1}), "move"),
        (
            json!({"title": "changed", "move": "up", "position": 0}),
            "move",
        ),
        (json!({"title": "changed", "status": 3}), "status"),
        (
            json!({"title": "changed", "depends_on": ["nope"]}),
            "depends_on[0]",
        ),
    ] {
        let res = app
            .api(Method::PATCH, &second, &e.token, Some(body.clone()))
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let problem: Value = res.json().await.unwrap();
        assert!(
            problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body}: {problem}"
        );
        assert_eq!(
            items().await,
            ["first", "second"],
            "{body} changed something"
        );
    }
    // Both at once, when both are right, in one change.
    let res = app
        .api(
            Method::PATCH,
            &second,
            &e.token,
            Some(json!({"title": "changed", "move": "up"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(items().await, ["changed", "first"]);
}

/// The address a failed sign-in is recorded under, sent with `forwarded` as X-Forwarded-For.
async fn failed_sign_in_address(app: &TestApp, forwarded: &str) -> String {
    let browser = client();
    let form = browser
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = browser
        .post(app.url("/login"))
        .header("X-Forwarded-For", forwarded)
        .form(&[
            ("_csrf", csrf_token(&form).as_str()),
            ("email", "someone@example.com"),
            ("password", "not the password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    sqlx::query_scalar("SELECT host(ip) FROM login_failure ORDER BY id DESC LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    // By default nobody's header is believed: a client cannot pick the address its failed
    // sign-ins are counted against.
    let app = TestApp::spawn().await;
    assert_eq!(
        failed_sign_in_address(&app, "198.51.100.7").await,
        "127.0.0.1"
    );

    // Behind a proxy of ours (here: the test client's loopback), the address it forwards.
    let config = slipway::app::config::Config {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    };
    let app = TestApp::spawn_with(config).await;
    assert_eq!(
        failed_sign_in_address(&app, "198.51.100.7").await,
        "198.51.100.7"
    );
    // A hop the client wrote before ours is not believed.
    assert_eq!(
        failed_sign_in_address(&app, "203.0.113.1, 198.51.100.7").await,
        "198.51.100.7"
    );
}
