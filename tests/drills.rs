//! Reliability drills that need no cloud: PostgreSQL restarted under load (a cluster the drill
//! starts itself) and schemathesis against the published OpenAPI document. The SIGKILL drill
//! over provisioning is in `provisioning.rs`; the long forms are `tests/drill/*`.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use slipway::auth::{Role, RoleSet};
use slipway::db::embedded::{Binaries, EmbeddedPostgres};
use support::{SlipwayProcess, TestApp, slipway_command};

/// What a writer saw: the slug it tried and the answer.
struct Attempt {
    slug: String,
    status: u16,
    retry_after: bool,
}

/// `slipway serve` rides out a PostgreSQL restart: while the database is down `/readyz` says
/// so (503) and requests fail with a 503 the client may retry (never a 500), the server comes
/// back by itself once the database does, and every write it acknowledged is there.
#[tokio::test]
async fn drill_the_server_rides_out_a_postgres_restart_under_load() {
    let data = support::data_dir();
    let binaries = Binaries::locate(None).expect("the PostgreSQL server binaries (initdb, pg_ctl)");
    let cluster = EmbeddedPostgres::start(data.path(), binaries.clone()).unwrap();
    cluster.ensure_database().await.unwrap();
    let url = format!(
        "postgres://slipway@localhost/slipway?host={}",
        data.path().join("postgres/run").display()
    );
    let cwd = tempfile::tempdir().unwrap();
    let mut command = slipway_command(cwd.path());
    command.env("DATABASE_URL", &url);
    let mut server = SlipwayProcess::start(command);
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let engineer = RoleSet::from_iter([Role::PlatformEngineer]);
    let user =
        slipway::auth::users::create_local(&pool, "drill@example.org", "Drill", &engineer, None)
            .await
            .unwrap();
    let (_, token) = slipway::auth::tokens::create(&pool, user, "drill", &engineer, None)
        .await
        .unwrap();
    pool.close().await;

    let client = support::client();
    let write = |n: usize| {
        let (client, token, url) = (
            client.clone(),
            token.clone(),
            server.url("/api/v1/platforms"),
        );
        async move {
            let slug = format!("drill-{n}");
            let res = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"name": format!("Drill {n}"), "slug": slug, "description": "PostgreSQL restart drill"}))
                .send()
                .await
                .unwrap();
            Attempt {
                slug,
                status: res.status().as_u16(),
                retry_after: res.headers().contains_key("retry-after"),
            }
        }
    };
    let ready = |client: reqwest::Client, url: String| async move {
        client.get(url).send().await.unwrap().status().as_u16()
    };
    let readyz = server.url("/readyz");
    let mut attempts = Vec::new();
    for n in 0..20 {
        attempts.push(write(n).await);
    }
    assert!(
        attempts.iter().all(|a| a.status == 201),
        "writes before the restart succeed"
    );

    // Down: the writes go on.
    cluster.stop().unwrap();
    let started = Instant::now();
    let mut n = attempts.len();
    while ready(client.clone(), readyz.clone()).await != 503 {
        attempts.push(write(n).await);
        n += 1;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/readyz never said the database is down"
        );
    }
    // Each waits for the pool's acquire timeout (10 s) before its 503.
    for _ in 0..2 {
        attempts.push(write(n).await);
        n += 1;
    }
    let cluster = EmbeddedPostgres::start(data.path(), binaries).unwrap();
    let restarted = Instant::now();
    while ready(client.clone(), readyz.clone()).await != 200 {
        attempts.push(write(n).await);
        n += 1;
        assert!(
            restarted.elapsed() < Duration::from_secs(60),
            "the server did not become ready again after the database came back"
        );
    }
    let back = restarted.elapsed();
    for _ in 0..20 {
        attempts.push(write(n).await);
        n += 1;
    }
    assert_eq!(
        server.child.try_wait().unwrap(),
        None,
        "the same server process throughout"
    );
    let refused: Vec<&Attempt> = attempts.iter().filter(|a| a.status != 201).collect();
    assert!(!refused.is_empty(), "some writes met the outage");
    for attempt in &refused {
        assert!(
            attempt.status == 503 && attempt.retry_after,
            "{} answered {} during the outage: a 503 with Retry-After, never a 500",
            attempt.slug,
            attempt.status
        );
    }
    assert!(
        attempts[attempts.len() - 20..]
            .iter()
            .all(|a| a.status == 201),
        "writes succeed again after the restart"
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT slug FROM platform")
        .fetch_all(&pool)
        .await
        .unwrap();
    for attempt in attempts.iter().filter(|a| a.status == 201) {
        assert!(
            stored.contains(&attempt.slug),
            "{} was acknowledged and kept",
            attempt.slug
        );
    }
    eprintln!(
        "drill: {} writes, {} refused with 503 during the outage, ready again {:.1} s after PostgreSQL was",
        attempts.len(),
        refused.len(),
        back.as_secs_f64()
    );
    pool.close().await;
    server.terminate();
    cluster.stop().unwrap();
}

/// schemathesis (PyPI) generates requests for every operation of `/api/v1/openapi.json`, as a
/// signed-in admin who is also a platform engineer and a developer: no answer is a 5xx, and
/// every answer fits the schema the document gives for it. Short form: a few examples per
/// operation; `tests/drill/schemathesis` runs many more.
#[tokio::test]
async fn drill_schemathesis_finds_no_server_error_and_no_answer_off_its_schema() {
    let schemathesis = support::require_program(
        "schemathesis",
        "python3 -m pip install -r tests/requirements.txt",
    );
    let app = TestApp::spawn().await;
    let everyone = [Role::Admin, Role::PlatformEngineer, Role::Developer];
    let token = app.token(&everyone, &everyone).await;
    let examples = support::drill_setting("SLIPWAY_DRILL_EXAMPLES", 5);
    let cwd = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(schemathesis)
        .arg("run")
        .arg(app.url("/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--max-examples", &examples.to_string()])
        .args([
            "--seed",
            &support::drill_setting("SLIPWAY_TEST_SEED", 1).to_string(),
        ])
        .args(["--generation-database", "none"])
        .env("NO_COLOR", "1")
        .current_dir(cwd.path())
        .output()
        .await
        .expect("running schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{report}");
}
