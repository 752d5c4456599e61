//! Holes in the public contract (API.md) that automation fell into: platform members through
//! the API, the audit filter by a subject's id, 403s that say why, and stored states that are
//! not states.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use slipway::auth::Role;
use support::TestApp;

const ENGINEER: &[Role] = &[Role::PlatformEngineer, Role::Developer];

async fn json_of(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"));
    (status, value)
}

#[tokio::test]
async fn a_second_reviewer_is_set_up_and_removed_through_the_api_alone() {
    let app = TestApp::spawn().await;
    let author = app.token(ENGINEER, ENGINEER).await;
    let (reviewer_id, reviewer) = app.user_with_token(ENGINEER, ENGINEER).await;
    let outsider = app.token(ENGINEER, ENGINEER).await;
    let res = app
        .api(
            Method::POST,
            "/api/v1/platforms",
            &author,
            Some(json!({"slug": "pay", "name": "Payments", "owner_team": "Platform"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let members = "/api/v1/platforms/pay/members";

    let (status, list) = json_of(app.api(Method::GET, members, &author, None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");

    // Someone outside the platform cannot add themselves, and is told why.
    let (status, problem) = json_of(
        app.api(
            Method::POST,
            members,
            &outsider,
            Some(json!({"user_id": reviewer_id.0})),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Only members of platform Payments"),
        "{problem}"
    );

    let add = json!({"user_id": reviewer_id.0});
    let (status, member) = json_of(
        app.api(Method::POST, members, &author, Some(add.clone()))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(member["user_id"], json!(reviewer_id.0));
    let again = app.api(Method::POST, members, &author, Some(add)).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "adding a member twice adds nothing"
    );

    for (body, field) in [
        (json!({"email": "nobody@example.com"}), "email"),
        (json!({"user_id": "not-a-uuid"}), "user_id"),
        (json!({"user_id": reviewer_id.0, "role": "owner"}), "role"),
        (json!({}), ""),
    ] {
        let (status, problem) = json_of(
            app.api(Method::POST, members, &author, Some(body.clone()))
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }

    // The member added through the API reviews the author's blueprint.
    let base = "/api/v1/platforms/pay/blueprints";
    let steps = [
        (
            base.to_owned(),
            &author,
            Some(json!({"from_template": true})),
        ),
        (format!("{base}/1/submit"), &author, None),
        (
            format!("{base}/1/reviews"),
            &reviewer,
            Some(json!({"verdict": "approve", "comment": "ok"})),
        ),
    ];
    for (path, token, body) in steps {
        let res = app.api(Method::POST, &path, token, body).await;
        assert!(res.status().is_success(), "{path}: {}", res.status());
    }

    let remove = format!("{members}/{}", reviewer_id.0);
    let res = app.api(Method::DELETE, &remove, &author, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.api(Method::DELETE, &remove, &author, None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (_, list) = json_of(app.api(Method::GET, members, &author, None).await).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_audit_log_finds_a_subject_by_its_id_alone_or_by_kind_and_id() {
    let app = TestApp::spawn().await;
    let admin = app.token(&[Role::Admin], &[Role::Admin]).await;
    sqlx::query(
        "INSERT INTO audit_event (actor_label, action, subject)
         VALUES ('robot', 'test.one', 'environment:0b7e'), ('robot', 'test.two', 'environment:0b7e'),
                ('robot', 'test.three', 'job:0b7e1')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    for (subject, count) in [
        ("0b7e", 2),
        ("environment:0b7e", 2),
        ("0b7e1", 1),
        ("job:0b7e", 0),
        ("0b7", 0),
    ] {
        let path = format!("/api/v1/audit?subject={subject}");
        let (status, page) = json_of(app.api(Method::GET, &path, &admin, None).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["items"].as_array().unwrap().len(), count, "{subject}");
    }
}

#[tokio::test]
async fn an_unknown_state_in_the_database_is_an_error_not_a_default() {
    let app = TestApp::spawn().await;
    let author = app.token(ENGINEER, ENGINEER).await;
    let (reviewer_id, reviewer) = app.user_with_token(ENGINEER, ENGINEER).await;
    app.approved_platform("shop", &author, &reviewer, reviewer_id)
        .await;
    let (status, created) = json_of(
        app.api(
            Method::POST,
            "/api/v1/platforms/shop/environments",
            &author,
            Some(json!({"environment_type": "dev", "name": "odd", "purpose": "State decoding"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();

    // What a bad migration or a hand edit could leave behind: the schema's guards lifted.
    let mut tx = app.pool.begin().await.unwrap();
    for statement in [
        "ALTER TABLE environment DISABLE TRIGGER USER",
        "ALTER TABLE environment DROP CONSTRAINT environment_state_check",
    ] {
        sqlx::query(statement).execute(&mut *tx).await.unwrap();
    }
    sqlx::query("UPDATE environment SET state = 'paused' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let read =
        slipway::environments::queries::get(&app.pool, slipway::environments::EnvironmentId(id))
            .await;
    let error = read.expect_err("a state that is none of the states must not decode");
    assert!(
        error
            .to_string()
            .contains("unknown environment state \"paused\""),
        "{error}"
    );
    let res = app
        .api(
            Method::GET,
            &format!("/api/v1/environments/{id}"),
            &author,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = res.text().await.unwrap();
    assert!(!body.contains("submitted"), "shown as a real state: {body}");
}
