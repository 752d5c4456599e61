//! `slipway admin` as operators and automation use it, against the same database as `serve`.

mod support;

use std::process::Output;

use reqwest::StatusCode;
use slipway::app::config::Config;
use support::{TestApp, TestDb, client, slipway_command};

fn admin(db: &TestDb, args: &[&str]) -> Output {
    let cwd = tempfile::tempdir().unwrap();
    slipway_command(cwd.path())
        .env("DATABASE_URL", db.url())
        .arg("admin")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

#[tokio::test]
async fn create_user_then_create_token_gives_working_api_access() {
    let db = TestDb::migrated().await;
    let out = admin(
        &db,
        &[
            "create-user",
            "--email",
            "ci@example.com",
            "--name",
            "CI robot",
            "--role",
            "developer,admin",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id: uuid::Uuid = text(&out.stdout)
        .parse()
        .expect("stdout is the new user's id");
    assert!(
        text(&out.stderr).contains("/invite/"),
        "a password link for the user"
    );

    let out = admin(
        &db,
        &[
            "create-token",
            "--email",
            "ci@example.com",
            "--name",
            "pipeline",
            "--expires-in",
            "30d",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout);
    assert!(token.starts_with("slw_"));

    let app = TestApp::spawn_on(db, Config::default(), None).await;
    let me: serde_json::Value = client()
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], id.to_string());
    assert_eq!(me["roles"], serde_json::json!(["developer", "admin"]));
    let res = client()
        .get(app.url("/api/v1/audit?action=token."))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page: serde_json::Value = res.json().await.unwrap();
    assert_eq!(page["items"][0]["details"]["via"], "cli");
}

#[tokio::test]
async fn bad_arguments_are_named_and_change_nothing() {
    let db = TestDb::migrated().await;
    for (args, expected) in [
        (
            vec![
                "create-user",
                "--email",
                "a@example.com",
                "--name",
                "A",
                "--role",
                "root",
            ],
            "--role: unknown role `root`",
        ),
        (
            vec![
                "create-user",
                "--email",
                "not-an-email",
                "--name",
                "A",
                "--role",
                "developer",
            ],
            "--email",
        ),
        (
            vec!["create-token", "--email", "nobody@example.com"],
            "no user with the e-mail address",
        ),
        (
            vec![
                "create-token",
                "--email",
                "a@example.com",
                "--expires-in",
                "soon",
            ],
            "--expires-in",
        ),
    ] {
        let out = admin(&db, &args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
    let pool = db.pool().await;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM app_user")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(users, 0);

    let ok = admin(
        &db,
        &[
            "create-user",
            "--email",
            "a@example.com",
            "--name",
            "A",
            "--role",
            "developer",
        ],
    );
    assert!(ok.status.success());
    let again = admin(
        &db,
        &[
            "create-user",
            "--email",
            "A@example.com",
            "--name",
            "A",
            "--role",
            "developer",
        ],
    );
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
}
