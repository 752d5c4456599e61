//! `Idempotency-Key` on creating API calls: a retry returns the first result and creates nothing.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use slipway::auth::Role;
use support::{TestApp, client};

#[tokio::test]
async fn a_retried_create_returns_the_first_result_and_creates_once() {
    let app = TestApp::spawn().await;
    let token = app
        .token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    let create = |key: &'static str, slug: &'static str| {
        client()
            .post(app.url("/api/v1/platforms"))
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .json(&json!({"slug": slug, "name": "Payments", "owner_team": "Platform"}))
            .send()
    };
    let first = create("key-1", "payments").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first_body: serde_json::Value = first.json().await.unwrap();

    let again = create("key-1", "payments").await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<serde_json::Value>().await.unwrap(), first_body);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM platform")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "created once");

    // Without the key the same call is a new request (and the slug is taken).
    let res = client()
        .post(app.url("/api/v1/platforms"))
        .bearer_auth(&token)
        .json(&json!({"slug": "payments", "name": "Payments", "owner_team": "Platform"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // A failed call keeps nothing: the same key may be used again and runs.
    let failed = create("key-2", "Not A Slug").await.unwrap();
    assert_eq!(failed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let retried = create("key-2", "orders").await.unwrap();
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert!(retried.headers().get("idempotent-replayed").is_none());

    // A key reused for another request is refused.
    let other = client()
        .post(app.url("/api/v1/platforms/payments/blueprints"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "key-1")
        .json(&json!({"from_template": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: serde_json::Value = other.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");

    // Keys are per caller.
    let someone_else = app
        .token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    let theirs = client()
        .post(app.url("/api/v1/platforms"))
        .bearer_auth(&someone_else)
        .header("Idempotency-Key", "key-1")
        .json(&json!({"slug": "billing", "name": "Billing", "owner_team": "Platform"}))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::CREATED);
    assert!(theirs.headers().get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn a_key_reused_with_another_body_or_query_is_refused() {
    let app = TestApp::spawn().await;
    let token = app
        .token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    let create = |path: &'static str, slug: &'static str| {
        client()
            .post(app.url(path))
            .bearer_auth(&token)
            .header("Idempotency-Key", "key-1")
            .json(&json!({"slug": slug, "name": "Payments", "owner_team": "Platform"}))
            .send()
    };
    let first = create("/api/v1/platforms", "payments").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    for (path, slug) in [
        ("/api/v1/platforms", "orders"),
        ("/api/v1/platforms?archived=true", "payments"),
    ] {
        let other = create(path, slug).await.unwrap();
        assert_eq!(
            other.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {slug}"
        );
        assert!(other.headers().get("idempotent-replayed").is_none());
        let problem: serde_json::Value = other.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("different request"),
            "{problem}"
        );
    }
    let slugs: Vec<String> = sqlx::query_scalar("SELECT slug FROM platform")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        slugs,
        ["payments"],
        "the second request was not taken for a retry"
    );
    // The very same request is still a retry.
    let again = create("/api/v1/platforms", "payments").await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
}

#[tokio::test]
async fn a_dry_run_keeps_no_result_for_its_key() {
    let app = TestApp::spawn().await;
    let author = app
        .token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    let (reviewer_id, reviewer) = app
        .user_with_token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    app.approved_platform("shop", &author, &reviewer, reviewer_id)
        .await;
    let developer = app.token(&[Role::Developer], &[Role::Developer]).await;
    let request_named = |query: &'static str, name: &'static str| {
        client()
            .post(app.url(&format!("/api/v1/platforms/shop/environments{query}")))
            .bearer_auth(&developer)
            .header("Idempotency-Key", "env-1")
            .json(&json!({"environment_type": "dev", "name": name, "purpose": "Tests"}))
            .send()
    };
    let request = |query: &'static str| request_named(query, "checkout");
    let dry = request("?dry_run=true").await.unwrap();
    assert_eq!(dry.status(), StatusCode::OK);
    assert!(dry.headers().get("idempotent-replayed").is_none());

    let real = request("").await.unwrap();
    assert_eq!(real.status(), StatusCode::CREATED, "the real call runs");
    assert!(real.headers().get("idempotent-replayed").is_none());
    let created: serde_json::Value = real.json().await.unwrap();
    assert!(created["id"].is_string(), "{created}");
    let environments: i64 = sqlx::query_scalar("SELECT count(*) FROM environment")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(environments, 1);

    // Its retry replays it; a dry run with the key afterwards is still only a dry run (of
    // another name: `checkout` is taken now).
    let retry = request("").await.unwrap();
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let dry_again = request_named("?dry_run=true", "checkout-two")
        .await
        .unwrap();
    assert_eq!(dry_again.status(), StatusCode::OK);
    assert!(dry_again.headers().get("idempotent-replayed").is_none());
}
