//! Environment requests over real HTTP against real Postgres: the request → approval journey,
//! rejection, cancel and expiry; approval policies (two approvers, never the requester,
//! automatic approval within its limit); concurrent decisions; bad input on the API and the
//! form; signed webhooks delivered by the job engine; TTL extension and the TTL reaper; the
//! approvals dashboard and the request form without JavaScript.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use slipway::auth::Role;
use slipway::environments::lifecycle;
use support::{PASSWORD, TestApp, client, csrf_token};

/// A user with an API token.
struct Person {
    id: uuid::Uuid,
    email: String,
    token: String,
}

async fn person(app: &TestApp, roles: &[Role]) -> Person {
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let id = app.create_user(&email, roles, PASSWORD).await;
    let scope = roles.iter().copied().collect();
    let (_, token) = slipway::auth::tokens::create(&app.pool, id, "test", &scope, None)
        .await
        .unwrap();
    Person {
        id: id.0,
        email,
        token,
    }
}

/// `p`, made a member of the platform `shop`.
async fn member_of_shop(app: &TestApp, p: Person) -> Person {
    let shop: uuid::Uuid = sqlx::query_scalar("SELECT id FROM platform WHERE slug = 'shop'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    slipway::define::platforms::add_member(&app.pool, shop, slipway::auth::UserId(p.id))
        .await
        .unwrap();
    p
}

/// The platform `shop` with the built-in blueprint approved; its author and reviewer are
/// member platform engineers; `dev` is a developer.
struct World {
    app: TestApp,
    author: Person,
    reviewer: Person,
    dev: Person,
}

const ENGINEER: &[Role] = &[Role::PlatformEngineer, Role::Developer];

async fn approved_platform(app: &TestApp, slug: &str, author: &Person, reviewer: &Person) {
    app.approved_platform(
        slug,
        &author.token,
        &reviewer.token,
        slipway::auth::UserId(reviewer.id),
    )
    .await;
}

async fn world_at(at: Option<DateTime<Utc>>) -> World {
    let app = match at {
        Some(at) => TestApp::spawn_at(at).await,
        None => TestApp::spawn().await,
    };
    world_on(app).await
}

/// The world on an app whose webhooks may reach this machine (the tests' receivers listen on
/// loopback, which Slipway refuses unless an admin allows it).
async fn world_allowing_loopback_webhooks() -> World {
    let config = slipway::app::config::Config {
        webhook_allowed_ranges: vec![LOOPBACK.parse().unwrap()],
        ..Default::default()
    };
    world_on(TestApp::spawn_with(config).await).await
}

const LOOPBACK: &str = "127.0.0.1/32";

async fn world_on(app: TestApp) -> World {
    let author = person(&app, ENGINEER).await;
    let reviewer = person(&app, ENGINEER).await;
    let dev = person(&app, &[Role::Developer]).await;
    approved_platform(&app, "shop", &author, &reviewer).await;
    World {
        app,
        author,
        reviewer,
        dev,
    }
}

async fn world() -> World {
    world_at(None).await
}

/// The developer signed in through the real form, and the perf request form's HTML.
async fn perf_request_form(w: &World) -> (reqwest::Client, String) {
    let dev = client();
    w.app.login(&dev, &w.dev.email, PASSWORD).await;
    let form = dev
        .get(w.app.url("/platforms/shop/environments/new?type=perf"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (dev, form)
}

async fn json_of(res: reqwest::Response) -> Value {
    let status = res.status();
    let text = res.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"))
}

fn dev_request(name: &str) -> Value {
    json!({"environment_type": "dev", "name": name, "purpose": "Checkout team integration tests"})
}

/// Submits a request as `who`; returns the response.
async fn submit(app: &TestApp, who: &Person, body: Value) -> reqwest::Response {
    app.api(
        Method::POST,
        "/api/v1/platforms/shop/environments",
        &who.token,
        Some(body),
    )
    .await
}

async fn submitted(app: &TestApp, who: &Person, body: Value) -> Value {
    let res = submit(app, who, body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    json_of(res).await
}

async fn act(
    app: &TestApp,
    who: &Person,
    id: &str,
    action: &str,
    body: Value,
) -> reqwest::Response {
    app.api(
        Method::POST,
        &format!("/api/v1/environments/{id}/{action}"),
        &who.token,
        Some(body),
    )
    .await
}

/// `GET /api/v1/environments/{id}` as `who`.
async fn environment(app: &TestApp, who: &Person, id: &str) -> Value {
    json_of(
        app.api(
            Method::GET,
            &format!("/api/v1/environments/{id}"),
            &who.token,
            None,
        )
        .await,
    )
    .await
}

async fn count(app: &TestApp, sql: &str, id: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(uuid::Uuid::parse_str(id).unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_developer_requests_the_platform_team_approves_and_a_provisioning_job_is_queued() {
    let w = world().await;
    let env = submitted(&w.app, &w.dev, dev_request("checkout-dev")).await;
    let id = env["id"].as_str().unwrap().to_owned();
    assert_eq!(env["state"], "submitted");
    assert!(env["cost_estimate"]["monthly_usd"].as_f64().unwrap() > 0.0);
    let plan = env["plan"].as_array().unwrap();
    assert_eq!(plan[0]["action"], "organizations:CreateAccount");
    assert_eq!(plan[0]["resource"], "shop-checkout-dev");

    // It waits on the platform team's queue; another developer cannot even see it.
    let pending = json_of(
        w.app
            .api(
                Method::GET,
                "/api/v1/environments?view=pending",
                &w.reviewer.token,
                None,
            )
            .await,
    )
    .await;
    assert_eq!(pending["items"][0]["id"], id.as_str());
    assert_eq!(
        pending["items"][0]["approvals"],
        json!({"have": 0, "required": 1})
    );
    let stranger = person(&w.app, &[Role::Developer]).await;
    let hidden = w
        .app
        .api(
            Method::GET,
            &format!("/api/v1/environments/{id}"),
            &stranger.token,
            None,
        )
        .await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let theirs = json_of(
        w.app
            .api(Method::GET, "/api/v1/environments", &stranger.token, None)
            .await,
    )
    .await;
    assert_eq!(theirs["items"], json!([]), "developers list only their own");

    let approved = json_of(
        act(
            &w.app,
            &w.reviewer,
            &id,
            "approve",
            json!({"comment": "go"}),
        )
        .await,
    )
    .await;
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["outcome"]["decision"], "approved");
    let job_id = approved["job"]["id"].as_i64().unwrap();
    let (kind, state): (String, String) =
        sqlx::query_as("SELECT kind, state FROM job WHERE id = $1")
            .bind(job_id)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(
        (kind.as_str(), state.as_str()),
        ("environment.provision", "available")
    );
    let timeline: Vec<&str> = approved["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, ["submitted", "approved"]);

    // The jobs pages say which environment the job works on.
    let team = client();
    w.app.login(&team, &w.reviewer.email, PASSWORD).await;
    let link = format!("<a href=\"/environments/{id}\">checkout-dev</a>");
    for page in ["/jobs".to_owned(), format!("/jobs/{job_id}")] {
        let html = team.get(w.app.url(&page)).send().await.unwrap();
        let html = html.text().await.unwrap();
        assert!(html.contains(&link), "{page} names the environment");
    }
    assert_eq!(
        count(
            &w.app,
            "SELECT count(*) FROM audit_event WHERE subject = 'environment:' || $1::text",
            &id
        )
        .await,
        2
    );

    // The requester hears of it; deciding again is a conflict.
    let inbox = json_of(
        w.app
            .api(Method::GET, "/api/v1/notifications", &w.dev.token, None)
            .await,
    )
    .await;
    assert_eq!(inbox["unread"], 1);
    assert_eq!(inbox["items"][0]["kind"], "approved");
    let again = act(&w.app, &w.author, &id, "approve", json!({})).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn rejection_needs_a_reason_and_the_requester_hears_why() {
    let w = world().await;
    let env = submitted(&w.app, &w.dev, dev_request("checkout-dev")).await;
    let id = env["id"].as_str().unwrap();
    let bare = act(&w.app, &w.reviewer, id, "reject", json!({"reason": "  "})).await;
    assert_eq!(bare.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json_of(bare).await["errors"][0]["field"], "reason");
    let rejected = json_of(
        act(
            &w.app,
            &w.reviewer,
            id,
            "reject",
            json!({"reason": "Use the shared test environment"}),
        )
        .await,
    )
    .await;
    assert_eq!(rejected["state"], "rejected");
    assert_eq!(
        rejected["approvals"][0]["comment"],
        "Use the shared test environment"
    );
    let inbox = json_of(
        w.app
            .api(Method::GET, "/api/v1/notifications", &w.dev.token, None)
            .await,
    )
    .await;
    assert!(
        inbox["items"][0]["message"]
            .as_str()
            .unwrap()
            .contains("shared test environment")
    );
    let late = act(&w.app, &w.author, id, "approve", json!({})).await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn the_requester_cancels_before_approval_and_nobody_else_can() {
    let w = world().await;
    let env = submitted(&w.app, &w.dev, dev_request("checkout-dev")).await;
    let id = env["id"].as_str().unwrap();
    assert_eq!(
        act(&w.app, &w.reviewer, id, "cancel", json!({}))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let stranger = person(&w.app, &[Role::Developer]).await;
    assert_eq!(
        act(&w.app, &stranger, id, "cancel", json!({}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let cancelled = json_of(act(&w.app, &w.dev, id, "cancel", json!({})).await).await;
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(
        act(&w.app, &w.dev, id, "cancel", json!({})).await.status(),
        StatusCode::CONFLICT
    );
    // A finished request frees its name.
    submitted(&w.app, &w.dev, dev_request("checkout-dev")).await;
}

#[tokio::test]
async fn a_request_nobody_decides_expires_and_the_requester_is_told() {
    let start: DateTime<Utc> = "2026-11-02T09:00:00Z".parse().unwrap();
    let w = world_at(Some(start)).await;
    let env = submitted(&w.app, &w.dev, dev_request("checkout-dev")).await;
    let id = env["id"].as_str().unwrap();
    // The template's `dev` type expires requests after 168 hours.
    let base = "http://slipway.test";
    let early = lifecycle::expire_stale(&w.app.pool, start + chrono::Duration::hours(167), base)
        .await
        .unwrap();
    assert_eq!(early, 0);
    let expired = lifecycle::expire_stale(&w.app.pool, start + chrono::Duration::hours(169), base)
        .await
        .unwrap();
    assert_eq!(expired, 1);
    let env = environment(&w.app, &w.dev, id).await;
    assert_eq!(env["state"], "expired");
    let inbox = json_of(
        w.app
            .api(Method::GET, "/api/v1/notifications", &w.dev.token, None)
            .await,
    )
    .await;
    assert_eq!(inbox["items"][0]["kind"], "expired");
    assert_eq!(
        act(&w.app, &w.reviewer, id, "approve", json!({}))
            .await
            .status(),
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn prod_needs_two_distinct_approvers_and_never_the_requester() {
    let w = world().await;
    // Approvers are members of the platform (README: "members holding an approver role").
    let third = member_of_shop(&w.app, person(&w.app, ENGINEER).await).await;
    // Only platform engineers may request prod; the author requests it.
    let refused = submit(
        &w.app,
        &w.dev,
        json!({"environment_type": "prod", "name": "live", "purpose": "Production"}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        json_of(refused).await["errors"][0]["field"],
        "environment_type"
    );
    let env = submitted(
        &w.app,
        &w.author,
        json!({"environment_type": "prod", "name": "live", "purpose": "Production"}),
    )
    .await;
    let id = env["id"].as_str().unwrap();

    let own = act(&w.app, &w.author, id, "approve", json!({})).await;
    assert_eq!(
        own.status(),
        StatusCode::FORBIDDEN,
        "a platform engineer never approves their own request"
    );
    let first = json_of(act(&w.app, &w.reviewer, id, "approve", json!({})).await).await;
    assert_eq!(first["state"], "submitted");
    assert_eq!(
        first["outcome"],
        json!({"decision": "counted", "approvals": 1, "required": 2})
    );
    let twice = act(&w.app, &w.reviewer, id, "approve", json!({})).await;
    assert_eq!(
        twice.status(),
        StatusCode::CONFLICT,
        "the same approver counts once"
    );
    let second = json_of(act(&w.app, &third, id, "approve", json!({})).await).await;
    assert_eq!(second["state"], "approved");
    assert_eq!(second["approvals"].as_array().unwrap().len(), 2);

    // The database refuses a self-approval too, whatever the code does.
    let direct = sqlx::query(
        "INSERT INTO environment_approval (id, environment_id, requester_id, approver_id, round, verdict)
         VALUES ($1, $2, $3, $3, 5, 'approve')",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(uuid::Uuid::parse_str(id).unwrap())
    .bind(w.author.id)
    .execute(&w.app.pool)
    .await;
    assert!(direct.is_err());
    // And a transition DESIGN §3 does not list.
    let skip = sqlx::query("UPDATE environment SET state = 'ready' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(id).unwrap())
        .execute(&w.app.pool)
        .await;
    assert!(
        skip.unwrap_err()
            .to_string()
            .contains("cannot go from approved to ready")
    );
}

#[tokio::test]
async fn automatic_approval_fires_only_within_its_limit() {
    let w = world().await;
    let perf = |name: &str, max: u32| {
        json!({"environment_type": "perf", "name": name, "purpose": "Load test",
               "parameters": {"instance_type": "m6i.xlarge", "min_nodes": 3, "max_nodes": max, "data_services": []}})
    };
    // perf auto-approves under $2,000 a month at the maximum node count.
    let small = submitted(&w.app, &w.dev, perf("load-small", 5)).await;
    assert_eq!(small["state"], "approved");
    assert!(small["cost_estimate"]["max_monthly_usd"].as_f64().unwrap() < 2000.0);
    assert_eq!(small["timeline"][1]["actor"], "system");
    assert!(small["job"]["id"].is_i64());
    let large = submitted(&w.app, &w.dev, perf("load-large", 20)).await;
    assert_eq!(large["state"], "submitted");
    assert!(large["cost_estimate"]["max_monthly_usd"].as_f64().unwrap() >= 2000.0);
    assert!(large["job"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_decisions_make_exactly_one_transition() {
    let w = world().await;
    let env = submitted(&w.app, &w.dev, dev_request("contested")).await;
    let id = env["id"].as_str().unwrap().to_owned();
    let mut deciders = Vec::new();
    for _ in 0..8 {
        deciders.push(member_of_shop(&w.app, person(&w.app, ENGINEER).await).await);
    }
    let url = w.app.url(&format!("/api/v1/environments/{id}"));
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(deciders.len()));
    let calls = deciders.into_iter().enumerate().map(|(i, p)| {
        let (url, barrier) = (url.clone(), barrier.clone());
        tokio::spawn(async move {
            let (action, body) = if i % 2 == 0 {
                ("approve", json!({}))
            } else {
                ("reject", json!({"reason": "not now"}))
            };
            let request = client()
                .post(format!("{url}/{action}"))
                .bearer_auth(&p.token)
                .json(&body);
            barrier.wait().await;
            request.send().await.unwrap().status()
        })
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| s.is_success()).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| s.is_success() || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    assert_eq!(
        count(
            &w.app,
            "SELECT count(*) FROM environment_approval WHERE environment_id = $1",
            &id
        )
        .await,
        1
    );
    assert_eq!(
        count(&w.app, "SELECT count(*) FROM environment_event WHERE environment_id = $1 AND kind IN ('approved', 'rejected')", &id).await,
        1
    );
    assert_eq!(
        count(
            &w.app,
            "SELECT count(*) FROM job WHERE payload->>'environment_id' = $1::text",
            &id
        )
        .await
        .min(1),
        count(
            &w.app,
            "SELECT count(*) FROM environment WHERE id = $1 AND state = 'approved'",
            &id
        )
        .await
    );
}

#[tokio::test]
async fn bad_requests_name_their_field_and_write_nothing() {
    let w = world().await;
    submitted(&w.app, &w.dev, dev_request("taken")).await;
    // A second platform whose blueprint calls its first type `sandbox`.
    approved_platform(&w.app, "other", &w.author, &w.reviewer).await;
    let rev = json_of(
        w.app
            .api(
                Method::GET,
                "/api/v1/platforms/other/blueprints/1",
                &w.author.token,
                None,
            )
            .await,
    )
    .await;
    let mut document = rev["document"].clone();
    document["environment_types"][0]["name"] = json!("sandbox");
    let res = w
        .app
        .api(
            Method::POST,
            "/api/v1/platforms/other/blueprints",
            &w.author.token,
            Some(json!({"base_revision": 1, "document": document})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    w.app
        .api(
            Method::POST,
            "/api/v1/platforms/other/blueprints/2/submit",
            &w.author.token,
            None,
        )
        .await;
    let ok = w
        .app
        .api(
            Method::POST,
            "/api/v1/platforms/other/blueprints/2/reviews",
            &w.reviewer.token,
            Some(json!({"verdict": "approve"})),
        )
        .await;
    assert!(ok.status().is_success());

    let params = |p: Value| json!({"environment_type": "perf", "name": "load", "purpose": "x", "parameters": p});
    let cases = [
        (
            json!({"environment_type": "dev", "name": "Bad_Name", "purpose": "x"}),
            "name",
        ),
        (
            json!({"environment_type": "dev", "name": "taken", "purpose": "x"}),
            "name",
        ),
        (
            json!({"environment_type": "dev", "name": "ok-name", "purpose": " "}),
            "purpose",
        ),
        (
            json!({"environment_type": "perf", "name": "load", "purpose": "x", "ttl_hours": 100}),
            "ttl_hours",
        ),
        (
            json!({"environment_type": "perf", "name": "load", "purpose": "x", "ttl_hours": "soon"}),
            "ttl_hours",
        ),
        (
            json!({"environment_type": "perf", "name": "load", "purpose": "x", "ttl_hours": true}),
            "ttl_hours",
        ),
        (
            json!({"environment_type": "dev", "name": "load", "purpose": "x", "ttl_hours": 8}),
            "ttl_hours",
        ),
        (params(json!({"max_nodes": 50})), "parameters.max_nodes"),
        (params(json!({"min_nodes": 1})), "parameters.min_nodes"),
        (
            params(json!({"min_nodes": 10, "max_nodes": 4})),
            "parameters.max_nodes",
        ),
        (
            params(json!({"instance_type": "p5.48xlarge"})),
            "parameters.instance_type",
        ),
        (
            params(json!({"data_services": ["redis"]})),
            "parameters.data_services",
        ),
        (params(json!("big")), "parameters"),
        (
            json!({"environment_type": "qa", "name": "load", "purpose": "x"}),
            "environment_type",
        ),
        (
            json!({"environment_type": "sandbox", "name": "load", "purpose": "x"}),
            "environment_type",
        ),
        (
            json!({"environment_type": "prod", "name": "load", "purpose": "x"}),
            "environment_type",
        ),
        (json!(["not", "an", "object"]), ""),
    ];
    for (body, field) in cases {
        let res = submit(&w.app, &w.dev, body.clone()).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let problem = json_of(res).await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&field),
            "{body}: expected an error on `{field}`, got {problem}"
        );
        assert!(
            problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| !e["message"].as_str().unwrap().is_empty())
        );
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM environment")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1, "only the first, valid request was written");

    // The form: every error beside its field, the values kept, nothing written.
    let (browser, page) = perf_request_form(&w).await;
    let res = browser
        .post(w.app.url("/platforms/shop/environments"))
        .form(&[
            ("_csrf", csrf_token(&page).as_str()),
            ("environment_type", "perf"),
            ("name", "taken"),
            ("purpose", "Load test of checkout"),
            ("ttl_hours", "500"),
            ("parameters.instance_type", "m6i.xlarge"),
            ("parameters.min_nodes", "3"),
            ("parameters.max_nodes", "99"),
            ("intent", "submit"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("is taken by a live environment"), "{html}");
    assert!(html.contains("Use 1 to 72 hours"));
    assert!(html.contains("Use 3 to 20 nodes"));
    assert!(html.contains("Load test of checkout"), "values are kept");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM environment")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

/// A webhook receiver: records each request's headers and body.
async fn receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, Vec<u8>)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((headers, body.to_vec()));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

#[tokio::test]
async fn webhooks_are_signed_and_delivered_by_the_job_engine() {
    let w = world_allowing_loopback_webhooks().await;
    let (url, mut received) = receiver().await;
    let browser = client();
    w.app.login(&browser, &w.author.email, PASSWORD).await;
    let page = browser
        .get(w.app.url("/platforms/shop/webhook"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let saved = browser
        .post(w.app.url("/platforms/shop/webhook"))
        .form(&[("_csrf", csrf_token(&page).as_str()), ("url", url.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = r#"<code class="secret" id="webhook-secret">"#;
    let start = saved.find(marker).expect("the new secret is shown once") + marker.len();
    let secret = saved[start..].split('<').next().unwrap().to_owned();
    let again = browser
        .get(w.app.url("/platforms/shop/webhook"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!again.contains(&secret), "the secret is never shown again");

    submitted(&w.app, &w.dev, dev_request("hooked")).await;
    let workers = slipway::jobs::worker::Workers::start(
        w.app.pool.clone(),
        slipway::environments::job_kinds(
            slipway::jobs::Registry::default(),
            slipway::clock::Clock::system(),
            "http://slipway.test",
            &[LOOPBACK.parse().unwrap()],
        ),
        slipway::clock::Clock::system(),
        slipway::jobs::worker::WorkerConfig::default(),
    );
    let (headers, body) = tokio::time::timeout(Duration::from_secs(20), received.recv())
        .await
        .expect("the webhook arrives within 20 s")
        .unwrap();
    workers.shutdown(Duration::from_secs(5)).await;
    let timestamp: i64 = headers["x-slipway-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        headers["x-slipway-signature"].to_str().unwrap(),
        slipway::environments::notify::signature(&secret, timestamp, &body)
    );
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["event"], "submitted");
    assert!(
        payload["text"].as_str().unwrap().contains("hooked"),
        "{payload}"
    );
    // The link is the one people use: the app's public URL, wherever the job ran.
    assert!(
        payload["environment"]["url"]
            .as_str()
            .unwrap()
            .starts_with(&w.app.url("/environments/"))
    );
}

#[tokio::test]
async fn extensions_beyond_the_maximum_need_approval_and_the_reaper_ends_the_ttl() {
    let start: DateTime<Utc> = "2026-11-02T09:00:00Z".parse().unwrap();
    let w = world_at(Some(start)).await;
    let env = submitted(
        &w.app,
        &w.dev,
        json!({"environment_type": "perf", "name": "load", "purpose": "Load test",
        "parameters": {"max_nodes": 5, "data_services": []}}),
    )
    .await;
    assert_eq!(env["state"], "approved");
    let id = env["id"].as_str().unwrap().to_owned();
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    // What provisioning will do (the provisioning issue): the job finishes and it is ready.
    sqlx::query("UPDATE job SET state = 'completed', finished_at = now() WHERE payload->>'environment_id' = $1")
        .bind(&id)
        .execute(&w.app.pool)
        .await
        .unwrap();
    for state in ["provisioning", "ready"] {
        sqlx::query("UPDATE environment SET state = $2, ready_at = $3, expires_at = $3 + make_interval(hours => ttl_hours) WHERE id = $1")
            .bind(uuid)
            .bind(state)
            .bind(start)
            .execute(&w.app.pool)
            .await
            .unwrap();
    }
    let within = json_of(act(&w.app, &w.dev, &id, "extend", json!({"ttl_hours": 24})).await).await;
    assert_eq!(within["outcome"]["extension"], "done");
    assert_eq!(within["ttl_hours"], 24);
    let beyond = json_of(act(&w.app, &w.dev, &id, "extend", json!({"ttl_hours": 100})).await).await;
    assert_eq!(beyond["outcome"]["extension"], "awaiting_approval");
    assert_eq!(beyond["ttl_hours"], 24, "unchanged until approved");
    let too_long = act(&w.app, &w.dev, &id, "extend", json!({"ttl_hours": 500})).await;
    assert_eq!(
        too_long.status(),
        StatusCode::CONFLICT,
        "one extension awaits a decision already"
    );
    let pending = json_of(
        w.app
            .api(
                Method::GET,
                "/api/v1/environments?view=pending",
                &w.reviewer.token,
                None,
            )
            .await,
    )
    .await;
    assert_eq!(pending["items"][0]["extension_requested_hours"], 100);
    let approved = json_of(act(&w.app, &w.reviewer, &id, "approve", json!({})).await).await;
    assert_eq!(approved["ttl_hours"], 100);
    assert_eq!(approved["state"], "ready");
    // The approval that granted the extension is counted: "1 of 1", not "0 of 1".
    let counted: (i32, i32) =
        sqlx::query_as("SELECT approval_count, approvals_required FROM environment WHERE id = $1")
            .bind(uuid)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(counted, (1, 1));

    let base = "http://slipway.test";
    let (warned, reaped) = lifecycle::reap_expired(
        &w.app.pool,
        start + chrono::Duration::minutes(100 * 60 - 30),
        base,
    )
    .await
    .unwrap();
    assert_eq!((warned, reaped), (1, 0));
    let (warned, reaped) =
        lifecycle::reap_expired(&w.app.pool, start + chrono::Duration::hours(101), base)
            .await
            .unwrap();
    assert_eq!((warned, reaped), (0, 1));
    let env = environment(&w.app, &w.dev, &id).await;
    assert_eq!(env["state"], "tearing_down");
    assert_eq!(env["job"]["kind"], "environment.teardown");
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM notification WHERE user_id = $1 ORDER BY id")
            .bind(w.dev.id)
            .fetch_all(&w.app.pool)
            .await
            .unwrap();
    assert!(
        kinds.contains(&"expiring_soon".to_owned()) && kinds.contains(&"tearing_down".to_owned()),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn the_request_form_and_the_dashboard_work_without_javascript() {
    let w = world().await;
    let (dev, form) = perf_request_form(&w).await;
    assert!(
        form.contains("Cost estimate") && form.contains("per month"),
        "the estimate is shown before submitting"
    );
    assert!(
        form.contains("slipway:LeasePooledAccount"),
        "the plan preview is shown before submitting: a perf environment leases a pooled account"
    );
    let csrf = csrf_token(&form);
    let fields = |name: &'static str, max: &'static str, intent: &'static str| {
        vec![
            ("_csrf", csrf.clone()),
            ("environment_type", "perf".into()),
            ("name", name.into()),
            ("purpose", "Load test".into()),
            ("ttl_hours", "8".into()),
            ("parameters.instance_type", "c6i.2xlarge".into()),
            ("parameters.min_nodes", "3".into()),
            ("parameters.max_nodes", max.into()),
            ("parameters.data_services", "kafka".into()),
            ("intent", intent.into()),
        ]
    };
    let preview = dev
        .post(w.app.url("/platforms/shop/environments"))
        .form(&fields("", "20", "preview"))
        .send()
        .await
        .unwrap();
    assert_eq!(preview.status(), StatusCode::OK);
    let preview = preview.text().await.unwrap();
    assert!(
        preview.contains("20 × c6i.2xlarge") || preview.contains("3–20 × c6i.2xlarge"),
        "the estimate follows the fields"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM environment")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "a preview writes nothing");
    for name in ["first-load", "second-load"] {
        let res = dev
            .post(w.app.url("/platforms/shop/environments"))
            .form(&fields(name, "20", "submit"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let page = dev
            .get(w.app.url(res.headers()["location"].to_str().unwrap()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("Awaiting approval"));
    }

    let pe = client();
    w.app.login(&pe, &w.reviewer.email, PASSWORD).await;
    let dashboard = pe
        .get(w.app.url("/approvals"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let first = dashboard.find("shop/first-load").expect("listed");
    let second = dashboard.find("shop/second-load").expect("listed");
    assert!(first < second, "oldest first");
    assert!(dashboard.contains("0 of 1"));
    let searched = pe
        .get(w.app.url("/approvals?q=second"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(searched.contains("shop/second-load") && !searched.contains("shop/first-load"));
    let filtered = pe
        .get(w.app.url("/approvals?type=dev"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!filtered.contains("shop/first-load"));
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM environment ORDER BY created_at")
        .fetch_all(&w.app.pool)
        .await
        .unwrap();
    let mut bulk = vec![
        ("_csrf".to_owned(), csrf_token(&dashboard)),
        ("decision".to_owned(), "approve".to_owned()),
    ];
    bulk.extend(ids.iter().map(|id| ("ids".to_owned(), id.to_string())));
    let result = pe
        .post(w.app.url("/approvals/bulk"))
        .form(&bulk)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(result.matches(": approved").count(), 2, "{result}");
    let approved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM environment WHERE state = 'approved'")
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(approved, 2);
    // Opening one shows the requester's other environments to the platform team.
    let opened = pe
        .get(w.app.url(&format!("/environments/{}", ids[0])))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        opened.contains("Queued: steps appear when a worker starts it."),
        "an approved request waits for a worker (none runs in this test)"
    );
    assert!(
        opened.contains("other environments") && opened.contains("shop/second-load"),
        "{opened}"
    );
    // The page outlines the plan; every call's values are one link away, for the same session.
    let yaml = format!("/api/v1/environments/{}/plan?format=yaml", ids[0]);
    assert!(
        opened.contains("eks:CreateCluster") && opened.contains(&yaml),
        "{opened}"
    );
    let plan = pe.get(w.app.url(&yaml)).send().await.unwrap();
    assert_eq!(plan.status(), StatusCode::OK);
    let plan = plan.text().await.unwrap();
    assert!(
        plan.contains("action: eks:CreateCluster") && plan.contains("access_entries:"),
        "{plan}"
    );
    // The developer sees them, with the unread badge.
    let mine = dev
        .get(w.app.url("/environments"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        mine.contains("shop/first-load") && mine.contains("2 unread"),
        "{mine}"
    );
}

#[tokio::test]
async fn the_requester_follows_the_request_live() {
    let w = world().await;
    let env = submitted(&w.app, &w.dev, dev_request("watched")).await;
    let id = env["id"].as_str().unwrap().to_owned();
    let mut stream = client()
        .get(w.app.url(&format!("/api/v1/environments/{id}/events")))
        .bearer_auth(&w.dev.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = stream.chunk().await.unwrap().expect("the first snapshot");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(r#""state":"submitted""#), "{text}");
    act(&w.app, &w.reviewer, &id, "approve", json!({})).await;
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while !text.contains(r#""state":"approved""#) {
            let chunk = stream.chunk().await.unwrap().expect("more events");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(seen.is_ok(), "the approval arrives on the stream:\n{text}");
    // Streams end with the environment: a rejected one sends its last snapshot and closes.
    let other = submitted(&w.app, &w.dev, dev_request("short-lived")).await;
    let other = other["id"].as_str().unwrap();
    act(
        &w.app,
        &w.reviewer,
        other,
        "reject",
        json!({"reason": "no"}),
    )
    .await;
    let body = client()
        .get(w.app.url(&format!("/api/v1/environments/{other}/events")))
        .bearer_auth(&w.dev.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains(r#""state":"rejected""#));
}

#[tokio::test]
async fn nobody_is_notified_of_their_own_action() {
    let w = world().await;
    let env = submitted(&w.app, &w.dev, dev_request("mine")).await;
    let id = env["id"].as_str().unwrap();
    let cancelled = act(&w.app, &w.dev, id, "cancel", json!({})).await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let kinds = |user: uuid::Uuid| {
        let pool = w.app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT kind FROM notification
                 WHERE user_id = $1 AND environment_id IS NOT NULL ORDER BY id",
            )
            .bind(user)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    // The requester cancelled: the approvers heard of the request, the requester of nothing.
    assert_eq!(kinds(w.dev.id).await, Vec::<String>::new());
    assert_eq!(kinds(w.reviewer.id).await, ["submitted"]);

    // Someone else's decision is news to the requester.
    let env = submitted(&w.app, &w.dev, dev_request("theirs")).await;
    let id = env["id"].as_str().unwrap();
    let approved = act(&w.app, &w.reviewer, id, "approve", json!({})).await;
    assert_eq!(approved.status(), StatusCode::OK);
    assert_eq!(kinds(w.dev.id).await, ["approved"]);
}

#[tokio::test]
async fn a_form_that_worked_lands_on_a_page_that_says_so_once() {
    let w = world().await;
    let (dev, form) = perf_request_form(&w).await;
    let submitted = dev
        .post(w.app.url("/platforms/shop/environments"))
        .form(&[
            ("_csrf", csrf_token(&form).as_str()),
            ("environment_type", "perf"),
            ("name", "flashy"),
            ("purpose", "Seeing the confirmation"),
            ("ttl_hours", "8"),
            ("parameters.instance_type", "c6i.2xlarge"),
            ("parameters.min_nodes", "3"),
            ("parameters.max_nodes", "20"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), StatusCode::SEE_OTHER);
    let page_at = submitted.headers()["location"].to_str().unwrap().to_owned();
    let page = dev.get(w.app.url(&page_at)).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<p class="flash" role="status">Request submitted"#),
        "the page after the form says what happened"
    );
    let again = dev.get(w.app.url(&page_at)).send().await.unwrap();
    assert!(
        !again.text().await.unwrap().contains(r#"class="flash""#),
        "and only once"
    );
}

/// The search page's HTML for `q`, as `who` sees it in the browser, and its status.
async fn search_as(app: &TestApp, who: &Person, q: &str) -> (StatusCode, String) {
    let browser = client();
    app.login(&browser, &who.email, PASSWORD).await;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("q", q)
        .finish();
    let res = browser
        .get(app.url(&format!("/search?{query}")))
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn search_finds_platforms_environments_and_backlog_items_the_reader_may_see() {
    let w = world().await;
    let mine = submitted(&w.app, &w.dev, dev_request("checkout-dev")).await;
    let other = person(&w.app, &[Role::Developer]).await;
    let theirs = submitted(&w.app, &other, dev_request("checkout-qa")).await;
    let generated = w
        .app
        .api(
            Method::POST,
            "/api/v1/platforms/shop/backlog/generate",
            &w.author.token,
            Some(json!({})),
        )
        .await;
    assert_eq!(generated.status(), StatusCode::OK);
    let link = |env: &Value| format!("href=\"/environments/{}\"", env["id"].as_str().unwrap());

    // A developer finds their own request and the platform, never someone else's request or
    // the platform's planning.
    let (status, html) = search_as(&w.app, &w.dev, "checkout").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("id=\"site-search\""),
        "the box atop every page"
    );
    assert!(html.contains(&link(&mine)), "their own request");
    assert!(!html.contains(&link(&theirs)), "not another developer's");
    let (_, html) = search_as(&w.app, &w.dev, "shop").await;
    assert!(html.contains("href=\"/platforms/shop\""), "the platform");
    let (_, html) = search_as(&w.app, &w.dev, "EKS cluster").await;
    assert!(!html.contains("/platforms/shop/backlog/"), "no planning");
    assert!(html.contains("Nothing matches"));

    // The platform team finds every request, and a member engineer the backlog.
    let (_, html) = search_as(&w.app, &w.reviewer, "checkout").await;
    assert!(html.contains(&link(&mine)) && html.contains(&link(&theirs)));
    let (_, html) = search_as(&w.app, &w.reviewer, "eks CLUSTER for dev").await;
    assert!(
        html.contains("/platforms/shop/backlog/"),
        "case-insensitive"
    );
    assert!(html.contains("EKS cluster for dev"));
    let outsider = person(&w.app, ENGINEER).await;
    let (_, html) = search_as(&w.app, &outsider, "EKS cluster").await;
    assert!(!html.contains("/platforms/shop/backlog/"), "members only");

    // Words are text, never a pattern; too few get the form again with the error beside it,
    // and a control character is refused before any page sees it, as in every query.
    let (_, html) = search_as(&w.app, &w.reviewer, "%_").await;
    assert!(html.contains("Nothing matches"));
    let (status, html) = search_as(&w.app, &w.reviewer, " c ").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("aria-describedby=\"search-q-error\""));
    assert!(html.contains("Type at least 2 characters"));
    let (status, html) = search_as(&w.app, &w.reviewer, "check\u{1}out").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("control character U+0001"), "{html}");
}

/// Moves environment `id` through `states` as the provisioning and teardown jobs would (the
/// database's transition trigger checks each step), with the outputs a ready one records.
async fn drive(app: &TestApp, id: &str, states: &[&str]) {
    for state in states {
        sqlx::query(
            "UPDATE environment SET state = $2,
                 outputs = CASE WHEN $2 = 'ready'
                     THEN '{\"cloud\": \"simulated\", \"cluster_name\": \"shop-x\", \"kubeconfig\": \"apiVersion: v1\"}'::jsonb
                     ELSE outputs END,
                 ready_at = CASE WHEN $2 = 'ready' THEN now() ELSE ready_at END
             WHERE id = $1::uuid",
        )
        .bind(id)
        .bind(state)
        .execute(&app.pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn each_state_of_an_environment_shows_only_what_applies_to_it() {
    let w = world().await;
    let requester = client();
    w.app.login(&requester, &w.dev.email, PASSWORD).await;
    let team = client();
    w.app.login(&team, &w.reviewer.email, PASSWORD).await;

    // What the requester's page offers (cancel, extend, tear down, retry, connect), whether
    // the team's offers a decision, and whether either follows live events.
    const CANCEL: &str = "/cancel\"";
    const TEARDOWN: &str = "/teardown\"";
    const RETRY: &str = "/retry\"";
    const CONNECT: &str = "How to connect";
    const DECIDE: &str = "/approve\"";
    const LIVE: &str = "data-job-events";
    let cases: [(&str, &[&str], &[&str]); 10] = [
        ("submitted", &[CANCEL, DECIDE, LIVE], &[]),
        ("approved", &[LIVE], &["approve"]),
        ("rejected", &[], &["reject"]),
        ("cancelled", &[], &["cancel"]),
        ("expired", &[], &["expired"]),
        ("provisioning", &[LIVE], &["approve", "provisioning"]),
        (
            "ready",
            &[TEARDOWN, CONNECT, LIVE],
            &["approve", "provisioning", "ready"],
        ),
        (
            "failed",
            &[RETRY, TEARDOWN, LIVE],
            &["approve", "provisioning", "failed"],
        ),
        (
            "tearing_down",
            &[LIVE],
            &["approve", "provisioning", "ready", "tearing_down"],
        ),
        (
            "torn_down",
            &[],
            &[
                "approve",
                "provisioning",
                "ready",
                "tearing_down",
                "torn_down",
            ],
        ),
    ];
    for (n, (state, shown, path)) in cases.into_iter().enumerate() {
        let env = submitted(&w.app, &w.dev, dev_request(&format!("state-{n}"))).await;
        let id = env["id"].as_str().unwrap();
        for step in path {
            match *step {
                "approve" => {
                    let res = act(&w.app, &w.reviewer, id, "approve", json!({})).await;
                    assert_eq!(res.status(), StatusCode::OK);
                }
                "reject" => {
                    let body = json!({"reason": "Use the shared dev environment."});
                    let res = act(&w.app, &w.reviewer, id, "reject", body).await;
                    assert_eq!(res.status(), StatusCode::OK);
                }
                "cancel" => {
                    let res = act(&w.app, &w.dev, id, "cancel", json!({})).await;
                    assert_eq!(res.status(), StatusCode::OK);
                }
                // The sweeper's own use case, run as if the deadline had passed (earlier cases'
                // requests were checked already).
                "expired" => {
                    let later = Utc::now() + chrono::Duration::days(365);
                    let expired = lifecycle::expire_stale(&w.app.pool, later, "http://slipway")
                        .await
                        .unwrap();
                    assert!(expired >= 1);
                }
                later => drive(&w.app, id, &[later]).await,
            }
        }
        assert_eq!(environment(&w.app, &w.dev, id).await["state"], state);
        let page = |browser: &reqwest::Client| {
            let url = w.app.url(&format!("/environments/{id}"));
            let browser = browser.clone();
            async move { browser.get(url).send().await.unwrap().text().await.unwrap() }
        };
        let mine = page(&requester).await;
        let theirs = page(&team).await;
        for marker in [CANCEL, TEARDOWN, RETRY, CONNECT, LIVE] {
            assert_eq!(
                mine.contains(marker),
                shown.contains(&marker),
                "{state}: the requester's page and {marker:?}"
            );
        }
        assert_eq!(
            theirs.contains(DECIDE),
            shown.contains(&DECIDE),
            "{state}: the team's page and a decision"
        );
        assert!(
            !mine.contains(DECIDE),
            "{state}: never the requester's own decision"
        );
        assert!(
            mine.contains(&format!("class=\"badge state-{state}\"")),
            "{state}: its badge"
        );
    }
}
