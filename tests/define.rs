//! The Define phase over real HTTP: platforms, scope and timebox, the blueprint's revisions and
//! review, validation with field paths (API, YAML import and the structured form), and the
//! backlog generated from the approved blueprint.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use slipway::auth::{Role, RoleSet};
use support::{PASSWORD, TestApp, client, csrf_token};

/// Two platform engineers of the platform `payments`: the author and a reviewer.
struct Team {
    author: String,
    reviewer: String,
    author_email: String,
    reviewer_email: String,
}

async fn engineer(app: &TestApp) -> (String, String) {
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let id = app
        .create_user(&email, &[Role::PlatformEngineer, Role::Developer], PASSWORD)
        .await;
    let roles: RoleSet = [Role::PlatformEngineer, Role::Developer]
        .into_iter()
        .collect();
    let (_, token) = slipway::auth::tokens::create(&app.pool, id, "test", &roles, None)
        .await
        .unwrap();
    (token, email)
}

async fn team(app: &TestApp) -> Team {
    let (author, author_email) = engineer(app).await;
    let (reviewer, reviewer_email) = engineer(app).await;
    let res = app
        .api(Method::POST, "/api/v1/platforms", &author, Some(json!({"slug": "payments", "name": "Payments platform", "owner_team": "Platform team"})))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let platform: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM platform WHERE slug = 'payments'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let reviewer_id = slipway::auth::users::find_by_email(&app.pool, &reviewer_email)
        .await
        .unwrap()
        .unwrap()
        .id;
    slipway::define::platforms::add_member(&app.pool, platform, reviewer_id)
        .await
        .unwrap();
    Team {
        author,
        reviewer,
        author_email,
        reviewer_email,
    }
}

async fn json_of(res: reqwest::Response) -> Value {
    res.json().await.unwrap()
}

fn scope(started: &str, complexity: &str) -> Value {
    json!({
        "goals": ["Run the payment services on Kubernetes", "Cut lead time to a day"],
        "cloud": "aws",
        "regions": ["eu-central-1"],
        "connected_services": [{"name": "Ledger", "kind": "REST", "endpoint": "https://ledger.internal", "notes": "mTLS"}],
        "security": ["PCI DSS"],
        "complexity": complexity,
        "define_started_on": started
    })
}

/// Creates a revision from `base` with `change` applied to its document.
async fn edit(
    app: &TestApp,
    token: &str,
    base: i64,
    change: impl FnOnce(&mut Value),
) -> reqwest::Response {
    let current = json_of(
        app.api(
            Method::GET,
            &format!("/api/v1/platforms/payments/blueprints/{base}"),
            token,
            None,
        )
        .await,
    )
    .await;
    let mut document = current["document"].clone();
    change(&mut document);
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints",
        token,
        Some(json!({"base_revision": base, "document": document})),
    )
    .await
}

#[tokio::test]
async fn the_define_timebox_follows_complexity_and_flags_overrun() {
    let today = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .to_utc();
    let app = TestApp::spawn_at(today).await;
    let t = team(&app).await;
    // Started 30 days before "today": past 4 weeks (standard), within 8 (novel).
    for (complexity, max_weeks, overrun) in [("standard", 4, true), ("novel", 8, false)] {
        let res = app
            .api(
                Method::PUT,
                "/api/v1/platforms/payments/scope",
                &t.author,
                Some(scope("2026-01-30", complexity)),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let body = json_of(
            app.api(
                Method::GET,
                "/api/v1/platforms/payments/scope",
                &t.author,
                None,
            )
            .await,
        )
        .await;
        assert_eq!(
            body["timebox"],
            json!({"min_weeks": max_weeks / 2, "max_weeks": max_weeks, "elapsed_days": 30, "overrun": overrun})
        );
    }
    // The page says so too.
    let browser = client();
    app.login(&browser, &t.author_email, PASSWORD).await;
    app.api(
        Method::PUT,
        "/api/v1/platforms/payments/scope",
        &t.author,
        Some(scope("2026-01-30", "standard")),
    )
    .await;
    let page = browser
        .get(app.url("/platforms/payments"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("take a hard look at your constraints"),
        "{page}"
    );
}

#[tokio::test]
async fn bad_scopes_are_refused_with_field_paths() {
    let app = TestApp::spawn().await;
    let t = team(&app).await;
    let mut bad = scope("2026-01-30", "standard");
    bad["regions"] = json!(["eu-central-1", "moon-1"]);
    bad["goals"] = json!([]);
    let res = app
        .api(
            Method::PUT,
            "/api/v1/platforms/payments/scope",
            &t.author,
            Some(bad),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = json_of(res).await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["goals", "regions[1]"]);
    let mut unknown = scope("2026-01-30", "standard");
    unknown["budget"] = json!(100);
    let problem = json_of(
        app.api(
            Method::PUT,
            "/api/v1/platforms/payments/scope",
            &t.author,
            Some(unknown),
        )
        .await,
    )
    .await;
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `budget`"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_blueprint_goes_from_template_to_approval_by_a_second_engineer() {
    let app = TestApp::spawn().await;
    let t = team(&app).await;
    app.api(
        Method::PUT,
        "/api/v1/platforms/payments/scope",
        &t.author,
        Some(scope("2026-11-02", "standard")),
    )
    .await;

    // From the template, adapted to the scope.
    let res = app
        .api(
            Method::POST,
            "/api/v1/platforms/payments/blueprints",
            &t.author,
            Some(json!({"from_template": true})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let first = json_of(res).await;
    assert_eq!(
        (first["number"].as_i64(), first["state"].as_str()),
        (Some(1), Some("draft"))
    );
    assert_eq!(first["document"]["cloud"]["region"], "eu-central-1");
    assert_eq!(first["document"]["accounts"]["parent"], "payments-parent");
    assert_eq!(first["document"]["connected_services"][0]["name"], "Ledger");
    assert_eq!(
        first["document"]["security"]["requirements"],
        json!(["PCI DSS"])
    );

    // An edit is a new revision.
    let res = edit(&app, &t.author, 1, |d| {
        d["environment_types"][2]["node_group"]["max_size"] = json!(12)
    })
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(json_of(res).await["number"], 2);

    // Saving on top of a stale revision is refused with what differs; nothing is saved.
    let res = edit(&app, &t.reviewer, 1, |d| {
        d["cloud"]["region"] = json!("eu-west-3")
    })
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let problem = json_of(res).await;
    assert_eq!(problem["latest_revision"], 2);
    let paths: Vec<&str> = problem["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"cloud.region")
            && paths.contains(&"environment_types[perf].node_group.max_size"),
        "{paths:?}"
    );
    let count = json_of(
        app.api(
            Method::GET,
            "/api/v1/platforms/payments/blueprints",
            &t.author,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(count["items"].as_array().unwrap().len(), 2);

    // Review: submitted, the author's own approval refused, a second engineer approves.
    let res = app
        .api(
            Method::POST,
            "/api/v1/platforms/payments/blueprints/2/reviews",
            &t.reviewer,
            Some(json!({"verdict": "approve"})),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CONFLICT,
        "a draft cannot be approved"
    );
    let res = app
        .api(
            Method::POST,
            "/api/v1/platforms/payments/blueprints/2/submit",
            &t.author,
            Some(json!({})),
        )
        .await;
    assert_eq!(json_of(res).await["state"], "in_review");
    // The member engineer who must review hears of it, with a link; not the author, not an
    // engineer of another platform.
    let inbox = |token: String| {
        let app = &app;
        async move {
            json_of(
                app.api(Method::GET, "/api/v1/notifications", &token, None)
                    .await,
            )
            .await
        }
    };
    let told = inbox(t.reviewer.clone()).await;
    assert_eq!(told["unread"], 1);
    assert_eq!(told["items"][0]["kind"], "blueprint_submitted");
    assert_eq!(told["items"][0]["link"], "/platforms/payments/blueprints/2");
    assert!(
        told["items"][0]["message"]
            .as_str()
            .unwrap()
            .contains("revision 2 of Payments platform waits for your review"),
        "{told}"
    );
    assert_eq!(inbox(t.author.clone()).await["unread"], 0);
    let (outsider, _) = engineer(&app).await;
    assert_eq!(inbox(outsider).await["unread"], 0);
    let res = app
        .api(
            Method::POST,
            "/api/v1/platforms/payments/blueprints/2/reviews",
            &t.author,
            Some(json!({"verdict": "approve"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no self-approval");
    let res = app
        .api(
            Method::POST,
            "/api/v1/platforms/payments/blueprints/2/reviews",
            &t.reviewer,
            Some(json!({"verdict": "request_changes"})),
        )
        .await;
    assert_eq!(json_of(res).await["errors"][0]["field"], "comment");
    let res = app
        .api(
            Method::POST,
            "/api/v1/platforms/payments/blueprints/2/reviews",
            &t.reviewer,
            Some(json!({"verdict": "approve", "comment": "Looks right."})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(json_of(res).await["state"], "approved");
    // The author hears the verdict.
    let told = inbox(t.author.clone()).await;
    assert_eq!(told["items"][0]["kind"], "approved");
    assert_eq!(told["items"][0]["link"], "/platforms/payments/blueprints/2");

    // The diff names the changed field.
    let diff = json_of(
        app.api(
            Method::GET,
            "/api/v1/platforms/payments/blueprints/2/diff?against=1",
            &t.author,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        diff["changes"],
        json!([{"path": "environment_types[perf].node_group.max_size", "before": 20, "after": 12}])
    );

    // A newer approval supersedes the older one.
    edit(&app, &t.author, 2, |d| {
        d["service_mesh"]["mtls"] = json!("permissive")
    })
    .await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints/3/submit",
        &t.author,
        Some(json!({})),
    )
    .await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints/3/reviews",
        &t.reviewer,
        Some(json!({"verdict": "approve"})),
    )
    .await;
    let two = json_of(
        app.api(
            Method::GET,
            "/api/v1/platforms/payments/blueprints/2",
            &t.author,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(two["state"], "superseded");

    // Exports.
    let md = app
        .api(
            Method::GET,
            "/api/v1/platforms/payments/blueprints/3?format=markdown",
            &t.author,
            None,
        )
        .await;
    assert_eq!(md.headers()["content-type"], "text/markdown; charset=utf-8");
    assert!(
        md.text()
            .await
            .unwrap()
            .contains("# Payments platform: technical blueprint, revision 3 (approved)")
    );
    let yaml = app
        .api(
            Method::GET,
            "/api/v1/platforms/payments/blueprints/3?format=yaml",
            &t.author,
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(yaml.contains("mtls: permissive"));

    // Developers see approved revisions, never drafts; the types come from the approved one.
    let dev = app.token(&[Role::Developer], &[Role::Developer]).await;
    assert_eq!(
        app.api(
            Method::GET,
            "/api/v1/platforms/payments/blueprints/3",
            &dev,
            None
        )
        .await
        .status(),
        StatusCode::OK
    );
    edit(&app, &t.author, 3, |d| {
        d["logging"]["metrics"] = json!(false)
    })
    .await;
    assert_eq!(
        app.api(
            Method::GET,
            "/api/v1/platforms/payments/blueprints/4",
            &dev,
            None
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    let types = json_of(
        app.api(
            Method::GET,
            "/api/v1/platforms/payments/environment-types",
            &dev,
            None,
        )
        .await,
    )
    .await;
    let perf = types["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "perf")
        .unwrap()
        .clone();
    assert_eq!(
        (
            perf["default_ttl_hours"].as_i64(),
            perf["max_ttl_hours"].as_i64(),
            perf["lifecycle"].as_str()
        ),
        (Some(8), Some(72), Some("ephemeral"))
    );
    let prod = types["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "prod")
        .unwrap()
        .clone();
    assert_eq!(prod["approvals_required"], 2);

    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_event WHERE subject LIKE 'platform:payments%' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for expected in [
        "platform.created",
        "scope.saved",
        "blueprint.saved",
        "blueprint.submitted",
        "blueprint.approved",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
}

#[tokio::test]
async fn two_reviewers_approving_at_once_give_one_approval() {
    let app = TestApp::spawn().await;
    let t = team(&app).await;
    let (third, third_email) = engineer(&app).await;
    let platform: uuid::Uuid = sqlx::query_scalar("SELECT id FROM platform")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let id = slipway::auth::users::find_by_email(&app.pool, &third_email)
        .await
        .unwrap()
        .unwrap()
        .id;
    slipway::define::platforms::add_member(&app.pool, platform, id)
        .await
        .unwrap();
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints",
        &t.author,
        Some(json!({"from_template": true})),
    )
    .await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints/1/submit",
        &t.author,
        Some(json!({})),
    )
    .await;
    let approve = json!({"verdict": "approve"});
    let (a, b) = tokio::join!(
        app.api(
            Method::POST,
            "/api/v1/platforms/payments/blueprints/1/reviews",
            &t.reviewer,
            Some(approve.clone())
        ),
        app.api(
            Method::POST,
            "/api/v1/platforms/payments/blueprints/1/reviews",
            &third,
            Some(approve.clone())
        ),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(
        statuses,
        [201, 409],
        "exactly one approval wins, the other sees the true outcome"
    );
    let approvals: i64 =
        sqlx::query_scalar("SELECT count(*) FROM blueprint_review WHERE verdict = 'approve'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(approvals, 1);
}

#[tokio::test]
async fn bad_documents_are_refused_with_the_field_path_through_the_api() {
    let app = TestApp::spawn().await;
    let t = team(&app).await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints",
        &t.author,
        Some(json!({"from_template": true})),
    )
    .await;
    type Spoil = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Spoil, &str)> = vec![
        (Box::new(|d| d["colour"] = json!("blue")), "document.colour"),
        (
            Box::new(|d| d["environment_types"][1]["kubernetes_version"] = json!("1.9")),
            "document.environment_types[1].kubernetes_version",
        ),
        (
            Box::new(|d| d["environment_types"][2]["ttl"]["max_hours"] = json!(1000)),
            "document.environment_types[2].ttl.max_hours",
        ),
        (
            Box::new(|d| d["environment_types"][0]["node_group"]["min_size"] = json!(0)),
            "document.environment_types[0].node_group.min_size",
        ),
        (
            Box::new(|d| d["environment_types"][3]["name"] = json!("dev")),
            "document.environment_types[3].name",
        ),
        (
            Box::new(|d| d["environment_types"][0]["data_services"] = json!(["redis"])),
            "document.environment_types[0].data_services[0]",
        ),
        (
            Box::new(|d| {
                d["environment_types"][0]["node_group"]["instance_types"] = json!(["x1e.32xlarge"])
            }),
            "document.environment_types[0].node_group.instance_types[0]",
        ),
        (
            Box::new(|d| d["data_services"]["kafka"]["size"] = json!("huge")),
            "document.data_services.kafka.size",
        ),
    ];
    for (change, field) in cases {
        let res = edit(&app, &t.author, 1, |d| change(d)).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let problem = json_of(res).await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "expected {field}, got {fields:?}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM blueprint_revision")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "no bad document was stored");
}

/// A browser signed in as `email`, and the page at `path` with its CSRF token.
async fn page(app: &TestApp, browser: &reqwest::Client, path: &str) -> (String, String) {
    let html = browser
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_token(&html);
    (html, token)
}

/// The structured form as the page renders it for `document`, with `changes` typed in.
fn form_fields(document: &Value, token: &str, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = vec![("_csrf".into(), token.to_owned())];
    for section in slipway::http::blueprints::form::sections(document, &Default::default()) {
        for f in section.inputs().cloned() {
            let typed = changes
                .iter()
                .find(|(path, _)| *path == f.path)
                .map(|(_, v)| v.to_string());
            if f.is_bool() {
                if f.checked {
                    fields.push((f.path, "1".into()));
                }
            } else {
                fields.push((f.path.clone(), typed.unwrap_or(f.value)));
            }
        }
    }
    fields
}

/// Bad values and the message shown beside their field, through the form and YAML import.
const BAD_VALUES: &[(&str, &str, &str, &str, &str)] = &[
    // (form field, typed value, YAML before, YAML after, message)
    (
        "cloud.region",
        "europe",
        "region: eu-west-1",
        "region: europe",
        "Use an AWS region",
    ),
    (
        "environment_types[0].node_group.max_size",
        "1",
        "    min_size: 2\n    max_size: 6",
        "    min_size: 2\n    max_size: 1",
        "Use at least min_size (2) and at most 100 nodes.",
    ),
    (
        "environment_types[1].kubernetes_version",
        "1.12",
        "- name: test\n  lifecycle: long_lived\n  kubernetes_version: '1.35'",
        "- name: test\n  lifecycle: long_lived\n  kubernetes_version: '1.12'",
        "Use a Kubernetes version EKS supports",
    ),
    (
        "environment_types[2].ttl.max_hours",
        "500",
        "    max_hours: 72",
        "    max_hours: 500",
        "Use 1 to 168 hours.",
    ),
    (
        "environment_types[3].name",
        "dev",
        "- name: prod",
        "- name: dev",
        "Another environment type is already called `dev`.",
    ),
    (
        "environment_types[0].data_services",
        "mongodb, redis",
        "  - mongodb\n  - kafka",
        "  - mongodb\n  - redis",
        "`redis` is not a data service",
    ),
];

#[tokio::test]
async fn the_forms_show_each_error_beside_its_field() {
    let app = TestApp::spawn().await;
    let t = team(&app).await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints",
        &t.author,
        Some(json!({"from_template": true})),
    )
    .await;
    let browser = client();
    app.login(&browser, &t.author_email, PASSWORD).await;
    let current = json_of(
        app.api(
            Method::GET,
            "/api/v1/platforms/payments/blueprints/1",
            &t.author,
            None,
        )
        .await,
    )
    .await;
    let yaml = app
        .api(
            Method::GET,
            "/api/v1/platforms/payments/blueprints/1?format=yaml",
            &t.author,
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    let (form, token) = page(&app, &browser, "/platforms/payments/blueprints/1/edit").await;
    assert!(
        form.contains(r#"name="environment_types[0].node_group.max_size" value="6""#),
        "{form}"
    );

    for (field, typed, before, after, message) in BAD_VALUES {
        let (before, after) = (before.to_string(), after.to_string());
        // The structured form: the message lands beside the input of that field, value kept.
        let res = browser
            .post(app.url("/platforms/payments/blueprints/1/edit"))
            .form(&form_fields(
                &current["document"],
                &token,
                &[(field, typed)],
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let html = res.text().await.unwrap();
        let input = html
            .find(&format!(r#"name="{field}""#))
            .unwrap_or_else(|| panic!("{field} is shown again"));
        let next_label = html[input..].find("<label").unwrap_or(html.len() - input);
        let error = html[input..].find(*message).unwrap_or_else(|| {
            panic!(
                "{field}: no {message:?} in {}",
                &html[input..input + next_label]
            )
        });
        assert!(
            error < next_label,
            "{field}: the message is beside its own field"
        );

        // The same mistake in an imported YAML document names the field path.
        assert!(yaml.contains(&before), "the template YAML has {before:?}");
        let res = browser
            .post(app.url("/platforms/payments/blueprints"))
            .form(&[
                ("_csrf", token.as_str()),
                ("yaml", yaml.replacen(&before, &after, 1).as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let html = res.text().await.unwrap();
        let path = if field.ends_with("data_services") {
            format!("{field}[1]")
        } else {
            field.to_string()
        };
        assert!(
            html.contains(&format!("<code>{path}</code>")) && html.contains(*message),
            "{field}: {html}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM blueprint_revision")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "nothing was saved");

    // A YAML syntax error gives the line.
    let res = browser
        .post(app.url("/platforms/payments/blueprints"))
        .form(&[
            ("_csrf", token.as_str()),
            ("yaml", "cloud:\n  vendor: aws\n  region: ["),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Line 3, column 11: this `[` is never closed"),
        "syntax errors give the line"
    );
}

/// The author's browser on the structured editor of revision `number`: its document, the
/// page and its CSRF token.
async fn structured_editor(
    app: &TestApp,
    t: &Team,
    browser: &reqwest::Client,
    number: i64,
) -> (Value, String, String) {
    let current = json_of(
        app.api(
            Method::GET,
            &format!("/api/v1/platforms/payments/blueprints/{number}"),
            &t.author,
            None,
        )
        .await,
    )
    .await;
    let (html, token) = page(
        app,
        browser,
        &format!("/platforms/payments/blueprints/{number}/edit"),
    )
    .await;
    (current["document"].clone(), html, token)
}

/// Saves the structured form of revision `number` with `changes` typed in and `extra` fields
/// (remove checkboxes) ticked.
async fn save_structured(
    app: &TestApp,
    browser: &reqwest::Client,
    number: i64,
    (document, token): (&Value, &str),
    changes: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut fields = form_fields(document, token, changes);
    fields.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    browser
        .post(app.url(&format!("/platforms/payments/blueprints/{number}/edit")))
        .form(&fields)
        .send()
        .await
        .unwrap()
}

async fn blueprint_from_template(app: &TestApp, t: &Team) -> reqwest::Client {
    let res = app
        .api(
            Method::POST,
            "/api/v1/platforms/payments/blueprints",
            &t.author,
            Some(json!({"from_template": true})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let browser = client();
    app.login(&browser, &t.author_email, PASSWORD).await;
    browser
}

#[tokio::test]
async fn connected_services_and_requirements_are_added_and_removed_in_the_structured_form() {
    let app = TestApp::spawn().await;
    let t = team(&app).await;
    let browser = blueprint_from_template(&app, &t).await;

    // Blank rows to fill in, folded with their sections.
    let (document, html, token) = structured_editor(&app, &t, &browser, 1).await;
    for input in [
        r#"name="connected_services[0].name" value="""#,
        r#"name="connected_services[2].endpoint" value="""#,
        r#"name="security.requirements[0]" value="""#,
    ] {
        assert!(html.contains(input), "{input} in {html}");
    }
    assert!(
        !html.contains("connected_services[0].remove"),
        "a blank row has nothing to remove"
    );
    assert!(
        html.contains("<summary>Connected services</summary>"),
        "{html}"
    );

    // Two services and two requirements, added in one save.
    let res = save_structured(
        &app,
        &browser,
        1,
        (&document, &token),
        &[
            ("connected_services[0].name", "Ledger"),
            ("connected_services[0].kind", "REST"),
            (
                "connected_services[0].endpoint",
                " https://ledger.internal ",
            ),
            ("connected_services[0].notes", "mTLS"),
            ("connected_services[2].name", "Vault"),
            (
                "connected_services[2].endpoint",
                "https://vault.internal:8200",
            ),
            ("security.requirements[0]", "PCI DSS"),
            ("security.requirements[1]", "Logs kept for a year"),
        ],
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()["location"],
        "/platforms/payments/blueprints/2"
    );
    let (document, html, token) = structured_editor(&app, &t, &browser, 2).await;
    assert_eq!(
        document["connected_services"],
        json!([
            {"name": "Ledger", "kind": "REST", "endpoint": "https://ledger.internal", "notes": "mTLS"},
            {"name": "Vault", "kind": "", "endpoint": "https://vault.internal:8200", "notes": ""},
        ])
    );
    assert_eq!(
        document["security"]["requirements"],
        json!(["PCI DSS", "Logs kept for a year"])
    );
    // Shown again as entries, each removable, with blank rows after them.
    for text in [
        "<legend>Connected service 1: Ledger</legend>",
        r#"name="connected_services[1].endpoint" value="https://vault.internal:8200""#,
        r#"name="connected_services[1].remove""#,
        r#"name="connected_services[4].name" value="""#,
        r#"name="security.requirements[1]" value="Logs kept for a year""#,
        r#"name="security.requirements[1].remove""#,
        r#"name="security.requirements[4]" value="""#,
    ] {
        assert!(html.contains(text), "{text} in {html}");
    }

    // Ledger removed by its checkbox, the second requirement by clearing it.
    let res = save_structured(
        &app,
        &browser,
        2,
        (&document, &token),
        &[("security.requirements[1]", "")],
        &[("connected_services[0].remove", "1")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (document, _, _) = structured_editor(&app, &t, &browser, 3).await;
    assert_eq!(
        document["connected_services"],
        json!([{"name": "Vault", "kind": "", "endpoint": "https://vault.internal:8200", "notes": ""}])
    );
    assert_eq!(document["security"]["requirements"], json!(["PCI DSS"]));
}

#[tokio::test]
async fn a_bad_connected_service_or_requirement_gets_the_form_again_with_the_error_beside_it() {
    let app = TestApp::spawn().await;
    let t = team(&app).await;
    let browser = blueprint_from_template(&app, &t).await;
    let (document, _, token) = structured_editor(&app, &t, &browser, 1).await;
    let res = save_structured(
        &app,
        &browser,
        1,
        (&document, &token),
        &[
            ("connected_services[0].name", "Ledger"),
            ("connected_services[0].endpoint", "https://ledger.internal"),
            // No name, and an endpoint that is two addresses.
            (
                "connected_services[1].endpoint",
                "kafka-1:9092 kafka-2:9092",
            ),
            ("security.requirements[0]", "PCI DSS"),
            ("security.requirements[2]", "pci dss"),
        ],
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    for (field, message) in [
        ("connected_services[1].name", "Give the service a name."),
        (
            "connected_services[1].endpoint",
            "Give one address without spaces",
        ),
        // The blank row between them was dropped: the duplicate is the second requirement.
        (
            "security.requirements[1]",
            "This requirement is already listed.",
        ),
    ] {
        let input = html
            .find(&format!(r#"id="{field}""#))
            .unwrap_or_else(|| panic!("{field} is shown again: {html}"));
        let tag = &html[input..input + html[input..].find('>').unwrap()];
        assert!(
            tag.contains(r#"aria-invalid="true""#)
                && tag.contains(&format!(r#"aria-describedby="{field}-error""#)),
            "{field}: {tag}"
        );
        let error = &html[input..];
        let error = &error[error.find(&format!(r#"id="{field}-error">"#)).unwrap()..];
        assert!(
            error[..error.find("</p>").unwrap()].contains(message),
            "{field}: {message:?} beside it"
        );
    }
    // What was typed is kept, and the sections with errors are open.
    assert!(
        html.contains(r#"value="kafka-1:9092 kafka-2:9092""#),
        "{html}"
    );
    for summary in ["Connected services", "Security"] {
        assert!(
            html.contains(&format!(
                r#"<details class="card section-fold" open>
  <summary>{summary} <span class="badge badge-danger">needs a fix</span>"#
            )),
            "{summary} is open: {html}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM blueprint_revision")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "nothing was saved");
}

#[tokio::test]
async fn the_backlog_is_generated_edited_and_regenerated_without_losing_edits() {
    let app = TestApp::spawn().await;
    let t = team(&app).await;
    let res = app
        .api(
            Method::POST,
            "/api/v1/platforms/payments/backlog/generate",
            &t.author,
            None,
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CONFLICT,
        "no approved blueprint yet"
    );
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints",
        &t.author,
        Some(json!({"from_template": true})),
    )
    .await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints/1/submit",
        &t.author,
        Some(json!({})),
    )
    .await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints/1/reviews",
        &t.reviewer,
        Some(json!({"verdict": "approve"})),
    )
    .await;

    let generated = json_of(
        app.api(
            Method::POST,
            "/api/v1/platforms/payments/backlog/generate",
            &t.author,
            None,
        )
        .await,
    )
    .await;
    let items = generated["items"].as_array().unwrap().clone();
    let key_of = |id: &Value| {
        items
            .iter()
            .find(|i| i["id"] == *id)
            .map(|i| i["key"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let keys: Vec<&str> = items.iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(
        &keys[..4],
        [
            "account:parent",
            "account:devops",
            "account:dev",
            "account:test"
        ]
    );
    for key in [
        "devops:spinnaker",
        "cluster:perf",
        "data:kafka:perf",
        "mesh:prod",
        "pipeline:prod",
        "handover:dev",
        "maintain:currency",
    ] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    // Every item comes after what it depends on.
    for (position, item) in items.iter().enumerate() {
        for dep in item["depends_on"].as_array().unwrap() {
            let dep_key = key_of(dep);
            assert!(
                keys.iter().position(|k| *k == dep_key).unwrap() < position,
                "{} before {dep_key}",
                item["key"]
            );
        }
    }
    let cluster = items.iter().find(|i| i["key"] == "cluster:perf").unwrap();
    assert_eq!(key_of(&cluster["depends_on"][0]), "account:perf");

    // The team edits: status, assignee, a manual item.
    let perf_cluster = cluster["id"].as_str().unwrap().to_owned();
    let res = app
        .api(
            Method::PATCH,
            &format!("/api/v1/platforms/payments/backlog/{perf_cluster}"),
            &t.author,
            Some(json!({"status": "doing", "assignee": "ada", "estimate_days": 4})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let manual = json_of(app.api(Method::POST, "/api/v1/platforms/payments/backlog", &t.author, Some(json!({"title": "Security review with the CISO", "phase": "define", "depends_on": []}))).await).await;
    assert_eq!(manual["key"], Value::Null);

    // A cycle is refused with the cycle named.
    let parent = items.iter().find(|i| i["key"] == "account:parent").unwrap()["id"].clone();
    let res = app
        .api(
            Method::PATCH,
            &format!(
                "/api/v1/platforms/payments/backlog/{}",
                parent.as_str().unwrap()
            ),
            &t.author,
            Some(json!({"depends_on": [perf_cluster]})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = json_of(res).await;
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("Parent account and organisation → EKS cluster for perf → Account for perf → Parent account and organisation"), "{message}");

    // A new approved revision without perf and with qa.
    let res = edit(&app, &t.author, 1, |d| {
        let types = d["environment_types"].as_array_mut().unwrap();
        let mut qa = types[0].clone();
        qa["name"] = json!("qa");
        types.retain(|e| e["name"] != "perf");
        types.push(qa);
    })
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints/2/submit",
        &t.author,
        Some(json!({})),
    )
    .await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints/2/reviews",
        &t.reviewer,
        Some(json!({"verdict": "approve"})),
    )
    .await;
    let again = json_of(
        app.api(
            Method::POST,
            "/api/v1/platforms/payments/backlog/generate",
            &t.author,
            None,
        )
        .await,
    )
    .await;
    let generation = &again["generation"];
    assert!(
        generation["added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "EKS cluster for qa"),
        "{generation}"
    );
    assert!(
        generation["obsoleted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "EKS cluster for perf"),
        "{generation}"
    );
    let after = again["items"].as_array().unwrap();
    let perf = after.iter().find(|i| i["key"] == "cluster:perf").unwrap();
    assert_eq!(
        (perf["status"].as_str(), perf["assignee"].as_str()),
        (Some("obsolete"), Some("ada")),
        "edits kept, item retired"
    );
    let dev = after.iter().find(|i| i["key"] == "cluster:dev").unwrap();
    let dev_before = items.iter().find(|i| i["key"] == "cluster:dev").unwrap();
    assert_eq!(
        dev["rank"], dev_before["rank"],
        "untouched items keep their rank"
    );
    assert!(
        after
            .iter()
            .any(|i| i["title"] == "Security review with the CISO"),
        "manual items stay"
    );

    // Exports.
    let csv = app
        .api(
            Method::GET,
            "/api/v1/platforms/payments/backlog?format=csv",
            &t.author,
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("id,key,title,phase,status,rank,estimate_days,assignee,depends_on\n"));
    assert!(csv.contains(",cluster:perf,EKS cluster for perf,deliver,obsolete,"));
    let filtered = json_of(
        app.api(
            Method::GET,
            "/api/v1/platforms/payments/backlog?assignee=ada",
            &t.author,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn reviewers_see_the_diff_against_the_approved_revision_and_items_move_without_javascript() {
    let app = TestApp::spawn().await;
    let t = team(&app).await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints",
        &t.author,
        Some(json!({"from_template": true})),
    )
    .await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints/1/submit",
        &t.author,
        Some(json!({})),
    )
    .await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints/1/reviews",
        &t.reviewer,
        Some(json!({"verdict": "approve"})),
    )
    .await;
    edit(&app, &t.author, 1, |d| {
        d["environment_types"][3]["approval"]["approvals_required"] = json!(3)
    })
    .await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints/2/submit",
        &t.author,
        Some(json!({})),
    )
    .await;

    let reviewer = client();
    app.login(&reviewer, &t.reviewer_email, PASSWORD).await;
    let (html, token) = page(&app, &reviewer, "/platforms/payments/blueprints/2").await;
    assert!(html.contains("Changes against revision 1"));
    assert!(
        html.contains("<code>environment_types[prod].approval.approvals_required</code>"),
        "{html}"
    );
    let res = reviewer
        .post(app.url("/platforms/payments/blueprints/2/reviews"))
        .form(&[
            ("_csrf", token.as_str()),
            ("verdict", "approve"),
            ("comment", "Three approvals for prod, agreed."),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // The author's page offers no approval.
    let author = client();
    app.login(&author, &t.author_email, PASSWORD).await;
    edit(&app, &t.author, 2, |d| {
        d["logging"]["metrics"] = json!(false)
    })
    .await;
    app.api(
        Method::POST,
        "/api/v1/platforms/payments/blueprints/3/submit",
        &t.author,
        Some(json!({})),
    )
    .await;
    let (html, token) = page(&app, &author, "/platforms/payments/blueprints/3").await;
    assert!(
        !html.contains("Your review")
            && html.contains("authors cannot approve their own revisions")
    );
    let res = author
        .post(app.url("/platforms/payments/blueprints/3/reviews"))
        .form(&[("_csrf", token.as_str()), ("verdict", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Backlog: generate, then move the third item up with the plain form.
    let (_, token) = page(&app, &author, "/platforms/payments/backlog").await;
    author
        .post(app.url("/platforms/payments/backlog/generate"))
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    let before = json_of(
        app.api(
            Method::GET,
            "/api/v1/platforms/payments/backlog",
            &t.author,
            None,
        )
        .await,
    )
    .await;
    let third = before["items"][2]["id"].as_str().unwrap().to_owned();
    let res = author
        .post(app.url(&format!("/platforms/payments/backlog/{third}/move")))
        .form(&[("_csrf", token.as_str()), ("direction", "up")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let after = json_of(
        app.api(
            Method::GET,
            "/api/v1/platforms/payments/backlog",
            &t.author,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(after["items"][1]["id"], third);
    assert_eq!(after["items"][2]["id"], before["items"][1]["id"]);
}

#[tokio::test]
async fn lists_are_paged_with_limit_and_after() {
    let app = TestApp::spawn().await;
    let t = team(&app).await;
    for slug in ["billing", "orders"] {
        app.api(
            Method::POST,
            "/api/v1/platforms",
            &t.author,
            Some(json!({"slug": slug, "name": slug, "owner_team": "Platform"})),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut url = "/api/v1/platforms?limit=2".to_owned();
    loop {
        let page = json_of(app.api(Method::GET, &url, &t.author, None).await).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["slug"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => url = format!("/api/v1/platforms?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["billing", "orders", "payments"]);
    let res = app
        .api(
            Method::GET,
            "/api/v1/platforms?after=nowhere",
            &t.author,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .api(Method::GET, "/api/v1/platforms?limit=0", &t.author, None)
        .await;
    assert_eq!(json_of(res).await["errors"][0]["field"], "limit");
}

/// The blueprint, review, backlog and scope bodies are typed: an unknown or misplaced field is a
/// 422 naming its path, and nothing is written.
#[tokio::test]
async fn the_define_bodies_refuse_unknown_fields_by_their_path() {
    let app = TestApp::spawn().await;
    let t = team(&app).await;
    let base = "/api/v1/platforms/payments";
    let created = app
        .api(
            Method::POST,
            &format!("{base}/backlog"),
            &t.author,
            Some(json!({"title": "Kept as it is"})),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let item = json_of(created).await["id"].as_str().unwrap().to_owned();
    let mut unknown_in_scope = scope("2026-11-02", "standard");
    unknown_in_scope["connected_services"][0]["port"] = json!(443);
    let cases = [
        (
            Method::POST,
            format!("{base}/blueprints"),
            json!({"from_template": true, "templat": "eks"}),
            "templat",
        ),
        (
            Method::POST,
            format!("{base}/blueprints"),
            json!({"from_template": true, "document": {}}),
            "from_template",
        ),
        (
            Method::POST,
            format!("{base}/blueprints"),
            json!({"base_revision": "one", "document": {}}),
            "base_revision",
        ),
        (
            Method::POST,
            format!("{base}/backlog"),
            json!({"title": "Audit", "owner": "me"}),
            "owner",
        ),
        (
            Method::POST,
            format!("{base}/backlog"),
            json!({"title": "Audit", "position": 0}),
            "position",
        ),
        (
            Method::PATCH,
            format!("{base}/backlog/{item}"),
            json!({"titel": "Changed"}),
            "titel",
        ),
        (
            Method::PUT,
            format!("{base}/scope"),
            unknown_in_scope,
            "connected_services[0].port",
        ),
    ];
    for (method, path, body, field) in cases {
        let res = app
            .api(method.clone(), &path, &t.author, Some(body.clone()))
            .await;
        assert_eq!(
            res.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path} {body}"
        );
        let problem = json_of(res).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }

    // The review body too, on a revision that exists.
    let res = app
        .api(
            Method::POST,
            &format!("{base}/blueprints"),
            &t.author,
            Some(json!({"from_template": true})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = app
        .api(
            Method::POST,
            &format!("{base}/blueprints/1/reviews"),
            &t.reviewer,
            Some(json!({"verdict": "comment", "coment": "typo"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json_of(res).await["errors"][0]["field"], "coment");

    let revisions: i64 = sqlx::query_scalar("SELECT count(*) FROM blueprint_revision")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let items: Vec<String> = sqlx::query_scalar("SELECT title FROM backlog_item")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let scopes: i64 = sqlx::query_scalar("SELECT count(*) FROM technical_scope")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        (revisions, items, scopes),
        (1, vec!["Kept as it is".to_owned()], 0)
    );
}
