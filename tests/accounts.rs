//! Local accounts over real HTTP: first-run setup, password sign-in with rate limiting, session
//! rotation and sign-out, invitations, roles, API tokens and the audit log.

mod support;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderValue};
use slipway::auth::Role;
use support::{PASSWORD, TestApp, client, csrf_token, set_cookie_value};

const SESSION: &str = "slipway_session";

async fn form_page(c: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let res = c.get(url).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

/// Requests with exactly this session cookie and nothing else, as a thief replaying it would.
async fn with_session_cookie(app: &TestApp, value: &str, path: &str) -> reqwest::Response {
    client()
        .get(app.url(path))
        .header(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SESSION}={value}")).unwrap(),
        )
        .send()
        .await
        .unwrap()
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_event ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// How many sign-in lockouts the audit log recorded.
fn lockouts(actions: &[String]) -> usize {
    actions
        .iter()
        .filter(|a| *a == "auth.login_rate_limited")
        .count()
}

#[tokio::test]
async fn first_run_setup_link_works_once_then_never_again() {
    let app = TestApp::spawn().await;
    let token = slipway::auth::links::new_setup(&app.pool).await.unwrap();
    let url = app.url(&format!("/setup/{token}"));
    let browser = client();

    let (status, page) = form_page(&browser, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Create the first admin account"));

    // Bad input: the form comes back with the error beside the field and the values kept.
    let res = browser
        .post(&url)
        .form(&[
            ("_csrf", csrf_token(&page).as_str()),
            ("email", "ada@example.com"),
            ("name", "Ada"),
            ("password", "short"),
            ("password_confirmation", "short"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    assert!(
        page.contains(r#"id="password-error">Use at least 12 characters"#),
        "{page}"
    );
    assert!(page.contains(r#"value="ada@example.com""#));
    assert_eq!(
        slipway::auth::users::count(&app.pool).await.unwrap(),
        0,
        "nothing half-written"
    );

    let res = browser
        .post(&url)
        .form(&[
            ("_csrf", csrf_token(&page).as_str()),
            ("email", "ada@example.com"),
            ("name", "Ada Lovelace"),
            ("password", PASSWORD),
            ("password_confirmation", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        set_cookie_value(&res, SESSION).is_some(),
        "signed in at once"
    );
    let me: serde_json::Value = browser
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(
        me["roles"],
        serde_json::json!(["developer", "platform_engineer", "admin"])
    );

    // Used: never again, not even from another browser.
    assert_eq!(form_page(&client(), &url).await.0, StatusCode::NOT_FOUND);
    // And no new setup link works once a user exists.
    let late = slipway::auth::links::new_setup(&app.pool).await.unwrap();
    assert_eq!(
        form_page(&client(), &app.url(&format!("/setup/{late}")))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert!(
        audit_actions(&app)
            .await
            .contains(&"setup.completed".to_owned())
    );
}

#[tokio::test]
async fn an_expired_setup_link_is_refused() {
    let app = TestApp::spawn().await;
    let token = slipway::auth::links::new_setup(&app.pool).await.unwrap();
    let url = app.url(&format!("/setup/{token}"));
    let browser = client();
    let (_, page) = form_page(&browser, &url).await;
    sqlx::query("UPDATE one_time_link SET expires_at = now() - interval '1 minute'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, body) = form_page(&client(), &url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("it expired"));
    let res = browser
        .post(&url)
        .form(&[
            ("_csrf", csrf_token(&page).as_str()),
            ("email", "ada@example.com"),
            ("name", "Ada"),
            ("password", PASSWORD),
            ("password_confirmation", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(slipway::auth::users::count(&app.pool).await.unwrap(), 0);
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_rate_limited() {
    let app = TestApp::spawn().await;
    app.create_user("dev@example.com", &[Role::Developer], PASSWORD)
        .await;
    let browser = client();

    let res = app
        .login(&browser, "dev@example.com", "not the password")
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    assert!(page.contains("Wrong e-mail or password."));
    assert!(
        page.contains(r#"value="dev@example.com""#),
        "the e-mail is kept"
    );
    // An unknown account gets the very same answer.
    let res = app
        .login(&browser, "nobody@example.com", "not the password")
        .await;
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Wrong e-mail or password.")
    );

    for _ in 0..4 {
        app.login(&browser, "dev@example.com", "still wrong").await;
    }
    // Locked: even the right password is refused, with a message saying what to do.
    let res = app.login(&browser, "dev@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Too many failed sign-ins")
    );

    let actions = audit_actions(&app).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "auth.login_failed").count(),
        6
    );
    assert_eq!(lockouts(&actions), 1);

    // Hammering a locked account is refused each time, and reported once: the append-only
    // audit log does not grow by a row a request.
    for _ in 0..5 {
        let res = app.login(&browser, "dev@example.com", "still wrong").await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let actions = audit_actions(&app).await;
    assert_eq!(lockouts(&actions), 1, "one lockout, one audit event");
}

#[tokio::test]
async fn too_many_failures_from_one_address_lock_it_out() {
    let app = TestApp::spawn().await;
    app.create_user("dev@example.com", &[Role::Developer], PASSWORD)
        .await;
    let browser = client();
    for n in 0..slipway::auth::ratelimit::PER_ADDRESS {
        app.login(&browser, &format!("guess{n}@example.com"), "guess")
            .await;
    }
    let res = app.login(&browser, "dev@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // Guessing on with other accounts from the locked address is one lockout, reported once.
    for n in 0..3 {
        let res = app
            .login(&browser, &format!("other{n}@example.com"), "guess")
            .await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let actions = audit_actions(&app).await;
    assert_eq!(lockouts(&actions), 1);
}

#[tokio::test]
async fn the_session_is_replaced_at_sign_in() {
    let app = TestApp::spawn().await;
    app.create_user("dev@example.com", &[Role::Developer], PASSWORD)
        .await;

    // Fixation: a session id planted before sign-in is not the one used after it.
    let planted = "planted-by-an-attacker";
    let browser = client();
    let page = browser
        .get(app.url("/login"))
        .header(header::COOKIE, format!("{SESSION}={planted}"))
        .send()
        .await
        .unwrap();
    let csrf = {
        let presession = set_cookie_value(&page, "slipway_csrf").expect("a pre-session cookie");
        let html = page.text().await.unwrap();
        (presession, csrf_token(&html))
    };
    let res = client()
        .post(app.url("/login"))
        .header(
            header::COOKIE,
            format!("{SESSION}={planted}; slipway_csrf={}", csrf.0),
        )
        .form(&[
            ("_csrf", csrf.1.as_str()),
            ("email", "dev@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let first = set_cookie_value(&res, SESSION).unwrap();
    assert_ne!(first, planted);
    assert_eq!(
        with_session_cookie(&app, planted, "/profile")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        with_session_cookie(&app, &first, "/profile").await.status(),
        StatusCode::OK
    );

    // Signing in again replaces the session; the old one ends.
    let profile = with_session_cookie(&app, &first, "/profile")
        .await
        .text()
        .await
        .unwrap();
    let res = client()
        .post(app.url("/login"))
        .header(header::COOKIE, format!("{SESSION}={first}"))
        .form(&[
            ("_csrf", csrf_token(&profile).as_str()),
            ("email", "dev@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let second = set_cookie_value(&res, SESSION).unwrap();
    assert_ne!(second, first);
    assert_eq!(
        with_session_cookie(&app, &first, "/profile").await.status(),
        StatusCode::SEE_OTHER
    );

    // The cookie is HttpOnly and SameSite=Lax (and not Secure on loopback http).
    let set = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server() {
    let app = TestApp::spawn().await;
    app.create_user("dev@example.com", &[Role::Developer], PASSWORD)
        .await;
    let browser = client();
    let res = app.login(&browser, "dev@example.com", PASSWORD).await;
    let stolen = set_cookie_value(&res, SESSION).unwrap();
    let profile = browser
        .get(app.url("/profile"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = browser
        .post(app.url("/logout"))
        .form(&[("_csrf", csrf_token(&profile))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // A copy of the cookie kept elsewhere is worthless now.
    assert_eq!(
        with_session_cookie(&app, &stolen, "/profile")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_of_the_user() {
    let app = TestApp::spawn().await;
    app.create_user("dev@example.com", &[Role::Developer], PASSWORD)
        .await;
    let laptop = client();
    let phone = client();
    app.login(&laptop, "dev@example.com", PASSWORD).await;
    app.login(&phone, "dev@example.com", PASSWORD).await;
    let profile = laptop
        .get(app.url("/profile"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(profile.contains("Signed in on 2 browsers"));
    let res = laptop
        .post(app.url("/logout/everywhere"))
        .form(&[("_csrf", csrf_token(&profile))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    for browser in [&laptop, &phone] {
        assert_eq!(
            browser
                .get(app.url("/profile"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::SEE_OTHER
        );
    }
}

#[tokio::test]
async fn an_invited_user_chooses_a_password_and_signs_in() {
    let app = TestApp::spawn().await;
    let admin = app.signed_in(&[Role::Admin]).await;
    let page = admin
        .get(app.url("/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let admin_csrf = csrf_token(&page);

    // Invalid invitation: errors beside the fields, input kept.
    let res = admin
        .post(app.url("/admin/users"))
        .form(&[
            ("_csrf", csrf_token(&page).as_str()),
            ("email", "not-an-email"),
            ("name", "Grace"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = res.text().await.unwrap();
    assert!(body.contains("Enter an e-mail address"));
    assert!(body.contains("Choose at least one role."));
    assert!(body.contains(r#"value="Grace""#));

    let res = admin
        .post(app.url("/admin/users"))
        .form(&[
            ("_csrf", csrf_token(&page).as_str()),
            ("email", "grace@example.com"),
            ("name", "Grace"),
            ("roles", "developer"),
            ("roles", "platform_engineer"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let body = res.text().await.unwrap();
    let link = body
        .split("<code>")
        .find_map(|part| {
            part.split("</code>")
                .next()
                .filter(|l| l.contains("/invite/"))
        })
        .expect("the invitation link is shown")
        .to_owned();
    assert!(link.starts_with(&app.base), "{link}");
    // Shown once: the users page does not show it again.
    let later = admin
        .get(app.url("/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!later.contains(&link));
    assert!(later.contains("invited"));

    let grace = client();
    let (status, page) = form_page(&grace, &link).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("grace@example.com"));
    let res = grace
        .post(&link)
        .form(&[
            ("_csrf", csrf_token(&page).as_str()),
            ("name", "Grace Hopper"),
            ("password", PASSWORD),
            ("password_confirmation", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let me: serde_json::Value = grace
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "Grace Hopper");
    assert_eq!(
        me["roles"],
        serde_json::json!(["developer", "platform_engineer"])
    );
    assert_eq!(
        form_page(&client(), &link).await.0,
        StatusCode::NOT_FOUND,
        "used once"
    );

    // Inviting the same e-mail again is refused beside the field.
    let res = admin
        .post(app.url("/admin/users"))
        .form(&[
            ("_csrf", admin_csrf.as_str()),
            ("email", "GRACE@example.com"),
            ("name", "Grace"),
            ("roles", "developer"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("already exists"));
}

#[tokio::test]
async fn admins_change_roles_but_never_remove_the_last_admin() {
    let app = TestApp::spawn().await;
    let admin_id = app
        .create_user("admin@example.com", &[Role::Admin], PASSWORD)
        .await;
    let dev_id = app
        .create_user("dev@example.com", &[Role::Developer], PASSWORD)
        .await;
    let admin = client();
    app.login(&admin, "admin@example.com", PASSWORD).await;
    let page = admin
        .get(app.url("/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_token(&page);

    let res = admin
        .post(app.url(&format!("/admin/users/{dev_id}/roles")))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("roles", "developer"),
            ("roles", "platform_engineer"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let roles: Vec<String> = sqlx::query_scalar("SELECT roles FROM app_user WHERE id = $1")
        .bind(dev_id.0)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(roles, ["developer", "platform_engineer"]);

    let res = admin
        .post(app.url(&format!("/admin/users/{admin_id}/roles")))
        .form(&[("_csrf", csrf.as_str()), ("roles", "developer")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("last admin"));
    let events: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT details FROM audit_event WHERE action = 'user.roles_changed'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["after"],
        serde_json::json!(["developer", "platform_engineer"])
    );
}

#[tokio::test]
async fn api_tokens_are_shown_once_scoped_tracked_and_revocable() {
    let app = TestApp::spawn().await;
    app.create_user(
        "admin@example.com",
        &[Role::Developer, Role::Admin],
        PASSWORD,
    )
    .await;
    let browser = client();
    app.login(&browser, "admin@example.com", PASSWORD).await;
    let page = browser
        .get(app.url("/profile"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // A role the user does not hold cannot be given to a token.
    let res = browser
        .post(app.url("/profile/tokens"))
        .form(&[
            ("_csrf", csrf_token(&page).as_str()),
            ("name", "ci"),
            ("roles", "platform_engineer"),
            ("expires", "30d"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("only have roles you hold")
    );

    let res = browser
        .post(app.url("/profile/tokens"))
        .form(&[
            ("_csrf", csrf_token(&page).as_str()),
            ("name", "ci pipeline"),
            ("roles", "developer"),
            ("expires", "30d"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body = res.text().await.unwrap();
    let token = body
        .split("<code>")
        .find_map(|part| {
            part.split("</code>")
                .next()
                .filter(|t| t.starts_with("slw_"))
        })
        .expect("the new token is shown")
        .to_owned();
    let profile = browser
        .get(app.url("/profile"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!profile.contains(&token), "shown only once");
    assert!(profile.contains("ci pipeline") && profile.contains(&token[..10]));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM api_token")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains(&token[4..]),
        "stored hashed"
    );

    // The token acts with its scope only, although its owner is an admin.
    let api = client();
    let me: serde_json::Value = api
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], serde_json::json!(["developer"]));
    let res = api
        .get(app.url("/api/v1/audit"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_token")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(used.is_some(), "last use is recorded");

    // Revoked: refused at once, with a problem document that says what to do.
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_token")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let res = browser
        .post(app.url(&format!("/profile/tokens/{id}/revoke")))
        .form(&[("_csrf", csrf_token(&profile))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = api
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    let problem: serde_json::Value = res.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("revoked"));

    let actions = audit_actions(&app).await;
    assert!(
        actions.contains(&"token.created".to_owned())
            && actions.contains(&"token.revoked".to_owned())
    );
}

#[tokio::test]
async fn expired_tokens_and_anonymous_calls_get_401() {
    let app = TestApp::spawn().await;
    let token = app.token(&[Role::Developer], &[Role::Developer]).await;
    let api = client();
    assert_eq!(
        api.get(app.url("/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    sqlx::query("UPDATE api_token SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        api.get(app.url("/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let res = api.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test]
async fn the_audit_log_filters_and_pages_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let admin = app.signed_in(&[Role::Admin]).await;
    sqlx::query(
        "INSERT INTO audit_event (actor_label, action, subject, at)
         SELECT 'robot@example.com', 'test.bulk', 'thing:' || n, now() - make_interval(secs => n)
         FROM generate_series(1, 120) AS n",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let mut seen = std::collections::HashSet::new();
    let mut url = app.url("/api/v1/audit?action=test.bulk&limit=50");
    let mut pages = 0;
    loop {
        let page: serde_json::Value = admin.get(&url).send().await.unwrap().json().await.unwrap();
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            assert!(
                seen.insert(item["id"].as_i64().unwrap()),
                "an event came twice"
            );
        }
        match page["next"].as_str() {
            Some(next) => {
                url = app.url(&format!(
                    "/api/v1/audit?action=test.bulk&limit=50&after={next}"
                ))
            }
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (120, 3));

    let one: serde_json::Value = admin
        .get(app.url("/api/v1/audit?subject=thing:7"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let logins: serde_json::Value = admin
        .get(app.url("/api/v1/audit?action=auth."))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(logins["items"][0]["action"], "auth.login");

    for (query, field) in [("limit=500", "limit"), ("after=garbage", "after")] {
        let res = admin
            .get(app.url(&format!("/api/v1/audit?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let problem: serde_json::Value = res.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field);
    }

    // The page shows the same log, filtered, with a link to older events.
    let html = admin
        .get(app.url("/admin/audit?actor=robot@example.com"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("<code>test.bulk</code>").count(), 50);
    assert!(html.contains("Older events"));
}

#[tokio::test]
async fn sessions_end_when_idle_too_long_or_too_old() {
    let app = TestApp::spawn().await;
    app.create_user("dev@example.com", &[Role::Developer], PASSWORD)
        .await;
    for expire in [
        "UPDATE session SET last_seen_at = now() - interval '13 hours'",
        "UPDATE session SET expires_at = now() - interval '1 second'",
    ] {
        let browser = client();
        app.login(&browser, "dev@example.com", PASSWORD).await;
        assert_eq!(
            browser
                .get(app.url("/profile"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        sqlx::query(expire).execute(&app.pool).await.unwrap();
        let res = browser.get(app.url("/profile")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{expire}");
        // The dead cookie is cleared.
        assert_eq!(set_cookie_value(&res, SESSION).as_deref(), Some(""));
    }
}

#[tokio::test]
async fn cookies_are_secure_and_host_bound_under_https() {
    let config = slipway::app::config::Config {
        public_url: Some("https://slipway.example.com".into()),
        ..slipway::app::config::Config::default()
    };
    let db = support::TestDb::migrated().await;
    // The app believes it is reached over https (behind a TLS-terminating proxy).
    let app = TestApp::spawn_on(db, config, None).await;
    let res = app.get("/login").await;
    let cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-slipway_csrf="), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("Path=/") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}
