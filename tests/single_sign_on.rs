//! OpenID Connect sign-in against a real provider over HTTP (oauth2-mock-server): the
//! authorization-code flow with PKCE, and every way a forged or spoilt answer is refused.

mod support;

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use slipway::app::config::Config;
use support::oidc::MockIdp;
use support::{TestApp, client};

async fn app_with(idp: &MockIdp) -> TestApp {
    let config = Config {
        oidc: Some(idp.config()),
        ..Config::default()
    };
    TestApp::spawn_with(config).await
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location in a {} answer", res.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Leaves for the provider and returns the callback URL it sends the browser back to.
async fn authorize(app: &TestApp, browser: &reqwest::Client) -> String {
    let res = browser
        .get(app.url("/auth/oidc/login?next=/profile"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to_provider = location(&res);
    assert!(
        to_provider.contains("code_challenge_method=S256"),
        "PKCE: {to_provider}"
    );
    assert!(to_provider.contains("nonce=") && to_provider.contains("state="));
    let res = browser.get(&to_provider).send().await.unwrap();
    assert!(
        res.status().is_redirection(),
        "the provider answers with a redirect"
    );
    let callback = location(&res);
    assert!(
        callback.starts_with(&app.url("/auth/oidc/callback")),
        "{callback}"
    );
    callback
}

/// The whole sign-in; returns the callback's answer.
async fn sign_in(app: &TestApp, browser: &reqwest::Client) -> reqwest::Response {
    let callback = authorize(app, browser).await;
    browser.get(&callback).send().await.unwrap()
}

async fn me(app: &TestApp, browser: &reqwest::Client) -> Option<serde_json::Value> {
    let res = browser.get(app.url("/api/v1/me")).send().await.unwrap();
    (res.status() == StatusCode::OK).then_some(res.json().await.unwrap())
}

async fn assert_refused(
    app: &TestApp,
    browser: &reqwest::Client,
    res: reqwest::Response,
    why: &str,
) {
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{why}");
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Single sign-on failed") || page.contains("did not sign you in"),
        "{why}: {page}"
    );
    assert!(me(app, browser).await.is_none(), "{why}: not signed in");
}

#[tokio::test]
async fn sign_in_maps_groups_to_roles_and_keys_users_by_subject() {
    let idp = MockIdp::start();
    let app = app_with(&idp).await;
    idp.identity(
        "sub-ada",
        "ada@example.com",
        &["devs", "platform-team", "unrelated"],
    )
    .await;

    let browser = client();
    let res = sign_in(&app, &browser).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/profile", "back where the user was going");
    let first = me(&app, &browser).await.expect("signed in");
    assert_eq!(first["email"], "ada@example.com");
    assert_eq!(
        first["roles"],
        serde_json::json!(["developer", "platform_engineer"])
    );

    // A new e-mail at the provider is the same person: users are keyed by issuer + subject.
    idp.identity("sub-ada", "ada.lovelace@example.com", &["devs"])
        .await;
    let other = client();
    assert_eq!(sign_in(&app, &other).await.status(), StatusCode::SEE_OTHER);
    let again = me(&app, &other).await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["email"], "ada.lovelace@example.com");
    // The groups themselves are kept as of this sign-in: team membership by group reads them.
    let groups: Vec<String> = sqlx::query_scalar(
        "SELECT oidc_groups FROM app_user WHERE email = 'ada.lovelace@example.com'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(groups, ["devs"]);
}

#[tokio::test]
async fn a_removed_group_takes_effect_at_the_next_sign_in() {
    let idp = MockIdp::start();
    let app = app_with(&idp).await;
    idp.identity("sub-root", "lead@example.com", &["admins", "devs"])
        .await;
    let browser = client();
    sign_in(&app, &browser).await;
    assert_eq!(
        browser
            .get(app.url("/admin/users"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    idp.identity("sub-root", "lead@example.com", &["devs"])
        .await;
    let later = client();
    sign_in(&app, &later).await;
    assert_eq!(
        me(&app, &later).await.unwrap()["roles"],
        serde_json::json!(["developer"])
    );
    assert_eq!(
        later
            .get(app.url("/admin/users"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let changes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_event WHERE action = 'user.roles_changed'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(changes, 2, "created with roles, then narrowed");
}

#[tokio::test]
async fn a_user_whose_groups_grant_no_role_is_turned_away() {
    let idp = MockIdp::start();
    let app = app_with(&idp).await;
    idp.identity("sub-x", "stranger@example.com", &["marketing"])
        .await;
    let browser = client();
    let res = sign_in(&app, &browser).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("none of your groups gives a Slipway role")
    );
    assert!(me(&app, &browser).await.is_none());
}

#[tokio::test]
async fn a_tampered_state_is_refused() {
    let idp = MockIdp::start();
    let app = app_with(&idp).await;
    idp.identity("sub-a", "a@example.com", &["devs"]).await;
    let browser = client();
    let callback = authorize(&app, &browser).await;
    let tampered = callback.replace("state=", "state=x");
    let res = browser.get(&tampered).send().await.unwrap();
    assert_refused(&app, &browser, res, "tampered state").await;
}

#[tokio::test]
async fn an_answer_for_another_browser_is_refused_and_a_replay_too() {
    let idp = MockIdp::start();
    let app = app_with(&idp).await;
    idp.identity("sub-a", "a@example.com", &["devs"]).await;
    let victim = client();
    let callback = authorize(&app, &victim).await;
    // Login CSRF: the attacker's callback in the victim's browser (no matching state cookie).
    let attacker = client();
    let res = attacker.get(&callback).send().await.unwrap();
    assert_refused(&app, &attacker, res, "state not bound to this browser").await;

    // The legitimate browser completes once; replaying the same answer fails.
    assert_eq!(
        victim.get(&callback).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    let res = victim.get(&callback).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "a replayed answer is refused"
    );
}

#[tokio::test]
async fn spoilt_id_tokens_are_refused() {
    let idp = MockIdp::start();
    let app = app_with(&idp).await;
    idp.identity("sub-a", "a@example.com", &["devs"]).await;
    for mode in ["wrong_nonce", "expired", "rogue_key", "wrong_audience"] {
        idp.tamper(mode).await;
        let browser = client();
        let res = sign_in(&app, &browser).await;
        assert_refused(&app, &browser, res, mode).await;
    }
    let failures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_event WHERE action = 'auth.login_failed' AND details->>'method' = 'oidc'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(failures, 4);
    // And an honest token still works afterwards.
    let browser = client();
    assert_eq!(
        sign_in(&app, &browser).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_when_a_token_names_it() {
    let idp = MockIdp::start();
    let app = app_with(&idp).await;
    idp.identity("sub-a", "a@example.com", &["devs"]).await;
    // The first sign-in fetches and caches the provider's keys.
    assert_eq!(
        sign_in(&app, &client()).await.status(),
        StatusCode::SEE_OTHER
    );
    idp.rotate_keys().await;
    let browser = client();
    assert_eq!(
        sign_in(&app, &browser).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(me(&app, &browser).await.is_some());
}

#[tokio::test]
async fn the_sign_in_page_offers_single_sign_on_and_local_login_can_be_off() {
    let idp = MockIdp::start();
    let config = Config {
        oidc: Some(idp.config()),
        local_login: false,
        ..Config::default()
    };
    let app = TestApp::spawn_with(config).await;
    let page = app.get("/login").await.text().await.unwrap();
    assert!(page.contains("Sign in with single sign-on"));
    assert!(!page.contains(r#"type="password""#));
    let res = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("_csrf", support::csrf_token(&page).as_str()),
            ("email", "a@example.com"),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_admin_edits_the_group_mapping_on_its_page_and_the_next_sign_in_follows_it() {
    let idp = MockIdp::start();
    let app = app_with(&idp).await;
    let admin = app.signed_in(&[slipway::auth::Role::Admin]).await;
    let page = admin.get(app.url("/admin/sso")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("from the configuration"), "{page}");
    assert!(page.contains("platform-team = platform_engineer"));

    // A mistake gets the form again, the line named beside the box, and nothing changes.
    let csrf = support::csrf_token(&page);
    let save = |text: &str| {
        admin
            .post(app.url("/admin/sso"))
            .form(&[("_csrf", csrf.as_str()), ("mapping", text)])
            .send()
    };
    let res = save("qa = developer\nqa = tester\n").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let again = res.text().await.unwrap();
    assert!(again.contains("Line 2: `tester` is not a role"), "{again}");
    assert!(again.contains("aria-invalid=\"true\""));
    assert!(again.contains("qa = tester"), "what was typed is kept");

    // Saved: a group the configuration never named now gives its role, audited.
    let res = save("# QA signs in too\nqa = developer\nadmins = admin\n")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = admin
        .get(app.url("/admin/sso"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("edited here by"), "{page}");
    idp.identity("sub-qa", "qa@example.com", &["qa", "platform-team"])
        .await;
    let browser = client();
    assert_eq!(
        sign_in(&app, &browser).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        me(&app, &browser).await.unwrap()["roles"],
        serde_json::json!(["developer"]),
        "platform-team is no longer mapped"
    );
    let details: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM audit_event WHERE action = 'auth.sso_role_map_changed'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        details["after"],
        serde_json::json!([{"group": "qa", "role": "developer"}, {"group": "admins", "role": "admin"}])
    );
    assert!(details["before"].as_array().unwrap().len() >= 3);

    // Reset: the configuration's mapping again.
    let res = admin
        .post(app.url("/admin/sso/reset"))
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let later = client();
    sign_in(&app, &later).await;
    assert_eq!(
        me(&app, &later).await.unwrap()["roles"],
        serde_json::json!(["platform_engineer"])
    );
}
