//! The job engine across real `slipway worker` processes: one is killed with SIGKILL in the
//! middle of a step and another resumes the job at that step; four processes share 2,000 jobs
//! and run each exactly once; two `serve` and two `worker` processes on one database share
//! sessions and run a provisioning job once, as the Helm chart deploys them.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use slipway::auth::{Role, RoleSet, UserId};
use sqlx::PgPool;
use support::{
    PASSWORD, SlipwayProcess, TestDb, client, create_user_in, csrf_token, sign_in_at,
    slipway_command,
};

/// A `slipway worker` child process with `tasks` job tasks, started once it says so.
fn worker(db: &TestDb, tasks: usize) -> Child {
    worker_with(db, tasks, &[])
}

/// As [`worker`], with more settings in its environment.
fn worker_with(db: &TestDb, tasks: usize, env: &[(&str, &str)]) -> Child {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = slipway_command(cwd.path())
        .env("DATABASE_URL", db.url())
        .env("SLIPWAY_WORKERS", tasks.to_string())
        .envs(env.iter().copied())
        .arg("worker")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning slipway worker");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("Slipway worker "),
        "the worker did not start: {line:?}"
    );
    child
}

/// Polls the database until `query` returns true, failing after `deadline`.
async fn until(pool: &PgPool, what: &str, deadline: Duration, query: &str) {
    let start = Instant::now();
    loop {
        let done: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_owned()))
            .fetch_one(pool)
            .await
            .unwrap();
        if done {
            return;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_job_survives_kill_9_of_its_worker_and_resumes_at_the_unfinished_step() {
    let db = TestDb::migrated().await;
    let pool = db.pool().await;
    let id = slipway::jobs::builtin::enqueue_selftest(&pool, 3, 1500)
        .await
        .unwrap();
    let mut first = worker(&db, 2);
    until(&pool, "step 2 to start", Duration::from_secs(30), &format!("SELECT EXISTS (SELECT 1 FROM job_step WHERE job_id = {id} AND name = 'step-2' AND state = 'running')")).await;

    // SIGKILL in the middle of step 2: no chance to clean up or hand the job back.
    first.kill().unwrap();
    first.wait().unwrap();
    let killed_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut second = worker(&db, 2);
    until(
        &pool,
        "the job to complete",
        Duration::from_secs(40),
        &format!("SELECT state = 'completed' FROM job WHERE id = {id}"),
    )
    .await;
    second.kill().unwrap();
    second.wait().unwrap();

    let steps: Vec<(String, i32, Vec<String>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT name, attempt, log, started_at FROM job_step WHERE job_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let pid = |p: &Child| format!("worker process {}", p.id());
    // Step 1 ran once, by the first worker, and was not run again.
    assert_eq!(steps[0].1, 1);
    assert_eq!(steps[0].2.len(), 1);
    assert!(steps[0].2[0].contains(&pid(&first)), "{:?}", steps[0].2);
    // Step 2 was cut off and ran again, completely, in the second attempt, on the second worker.
    assert_eq!(steps[1].1, 2);
    assert_eq!(
        steps[1].2.len(),
        1,
        "the killed run wrote nothing: {:?}",
        steps[1].2
    );
    assert!(
        steps[1].2[0].contains(&pid(&second)) && steps[1].2[0].contains("attempt 2"),
        "{:?}",
        steps[1].2
    );
    assert_eq!(steps[2].1, 2);
    // The rescuer gave the job to the new worker within 10 seconds of the crash.
    let resumed_after = steps[1].3 - killed_at;
    assert!(
        resumed_after < chrono::Duration::seconds(10),
        "resumed after {resumed_after}"
    );
    let attempt: i32 = sqlx::query_scalar("SELECT attempt FROM job WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(attempt, 2);
}

#[tokio::test]
async fn four_worker_processes_run_2000_jobs_exactly_once() {
    let db = TestDb::migrated().await;
    let pool = db.pool().await;
    sqlx::query(
        "INSERT INTO job (kind, payload) SELECT 'slipway.selftest', '{\"steps\": 1, \"step_ms\": 0}' FROM generate_series(1, 2000)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut workers: Vec<Child> = (0..4).map(|_| worker(&db, 8)).collect();
    until(
        &pool,
        "all jobs to complete",
        Duration::from_secs(120),
        "SELECT count(*) = 2000 FROM job WHERE state = 'completed'",
    )
    .await;
    for w in &mut workers {
        w.kill().unwrap();
        w.wait().unwrap();
    }
    let (runs, attempts, processes): (i64, i64, i64) = sqlx::query_as(
        "SELECT sum(cardinality(s.log)), sum(j.attempt), count(DISTINCT substring(s.log[1] from 'process ([0-9]+)'))
         FROM job j JOIN job_step s ON s.job_id = j.id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(runs, 2000, "every step ran exactly once");
    assert_eq!(attempts, 2000, "no job needed a second attempt");
    assert!(
        processes >= 2,
        "the work was shared between processes ({processes})"
    );
}

/// The benchmark runs end to end (small numbers: a smoke test, not a measurement).
#[tokio::test]
async fn the_job_benchmark_runs_beside_graphile_worker() {
    support::require_program("node", "apt-get install nodejs");
    let peers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bench");
    assert!(
        peers.join("node_modules/graphile-worker").is_dir(),
        "the benchmark needs graphile-worker: run `npm ci --prefix tests/bench` (./tests/run does it)"
    );
    let cwd = tempfile::tempdir().unwrap();
    let server = support::server_url().await;
    let out = slipway_command(cwd.path())
        .args([
            "bench",
            "jobs",
            "--jobs",
            "200",
            "--concurrency",
            "4",
            "--latency-jobs",
            "5",
            "--runs",
            "1",
            "--server",
            &server,
        ])
        .arg("--peers")
        .arg(&peers)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| 200 |") && stdout.contains("Slipway ÷ graphile-worker"),
        "one row of figures, Slipway beside graphile-worker and River: {stdout}"
    );
}

/// `bench all` runs every benchmark and writes one Markdown report with the machine and
/// versions (small numbers: a smoke test, not a measurement).
#[tokio::test]
async fn the_whole_performance_report_is_written() {
    support::require_program("wrk", "apt-get install wrk");
    support::require_program("go", "apt-get install golang-go");
    let peers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bench");
    let cwd = tempfile::tempdir().unwrap();
    let report = cwd.path().join("report.md");
    let server = support::server_url().await;
    let out = slipway_command(cwd.path())
        .args([
            "bench",
            "all",
            "--backlogs",
            "200,400",
            "--latency-jobs",
            "5",
            "--runs",
            "2",
        ])
        .args(["--rows", "1200"])
        .args(["--seconds", "1", "--server", &server])
        .arg("--peers")
        .arg(&peers)
        .arg("--out")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&report).unwrap();
    for expected in [
        "PostgreSQL: ",
        "graphile-worker: 0.",
        "River: v0.",
        "| 200 |",
        "| 400 |",
        // Two runs per engine: the median with the range beside it.
        "Each engine ran 2 times per backlog, interleaved",
        "approvals dashboard (`/approvals`)",
        // The environment page is measured with a plan as large as a real one's.
        "carries a real plan (",
        "GET /api/v1/environments",
        "Server resident memory",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} in the report:\n{text}"
        );
    }
    assert!(
        text.lines()
            .filter(|line| line.contains("(`/"))
            .all(|line| line.ends_with("| 0 |")),
        "no address answered an error under load:\n{text}"
    );
}

/// The approvals dashboard benchmark runs end to end through the real binary (small numbers: a
/// smoke test, not a measurement): every page kind is loaded and answers 200.
#[tokio::test]
async fn the_approvals_dashboard_benchmark_runs() {
    let cwd = tempfile::tempdir().unwrap();
    let server = support::server_url().await;
    let out = slipway_command(cwd.path())
        .args([
            "bench",
            "approvals",
            "--small",
            "600",
            "--rows",
            "1200",
            "--concurrency",
            "2",
            "--requests",
            "40",
            "--server",
            &server,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (kind, _) in slipway::bench::approvals::PAGES {
        assert!(stdout.contains(kind), "{kind} is measured: {stdout}");
    }
    assert!(stdout.contains("Large ÷ small p50"), "{stdout}");
}

/// A user with `roles`, the harness's password and an API token.
async fn person(pool: &PgPool, email: &str, roles: &[Role]) -> (UserId, String) {
    let id = create_user_in(pool, email, roles, PASSWORD).await;
    let roles: RoleSet = roles.iter().copied().collect();
    let (_, token) = slipway::auth::tokens::create(pool, id, "t", &roles, None)
        .await
        .unwrap();
    (id, token)
}

/// A JSON API call on `server`, answered with a success.
async fn call(server: &SlipwayProcess, token: &str, path: &str, body: Value) -> Value {
    let res = client()
        .request(Method::POST, server.url(&format!("/api/v1{path}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn two_servers_and_two_workers_share_sessions_and_provision_once() {
    let db = TestDb::empty().await;
    let serve = || {
        let cwd = tempfile::tempdir().unwrap();
        let mut cmd = slipway_command(cwd.path());
        cmd.env("DATABASE_URL", db.url())
            .env("SLIPWAY_WORKERS", "0");
        SlipwayProcess::start(cmd)
    };
    let a = serve();
    let b = serve();
    let fast = [("SLIPWAY_SIMULATED_DELAY", "0s")];
    let mut workers = [worker_with(&db, 2, &fast), worker_with(&db, 2, &fast)];
    let pool = db.pool().await;
    let (_, author) = person(&pool, "author@example.com", &[Role::PlatformEngineer]).await;
    let (reviewer_id, reviewer) =
        person(&pool, "reviewer@example.com", &[Role::PlatformEngineer]).await;
    let (_, dev) = person(&pool, "dev@example.com", &[Role::Developer]).await;

    // Signed in on one server, known on the other; signed out on the other, out on the first.
    let browser = client();
    let res = sign_in_at(&browser, &a.base, "dev@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let profile = browser.get(b.url("/profile")).send().await.unwrap();
    assert_eq!(profile.status(), StatusCode::OK);
    let profile = profile.text().await.unwrap();
    assert!(profile.contains("dev@example.com"));
    let res = browser
        .post(b.url("/logout"))
        .form(&[("_csrf", csrf_token(&profile).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "B accepts A's CSRF token"
    );
    let res = browser.get(a.url("/profile")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed out everywhere");

    // The Define steps and the request alternate between the servers.
    let body = json!({"slug": "shop", "name": "Shop", "owner_team": "Platform"});
    call(&a, &author, "/platforms", body).await;
    let shop: uuid::Uuid = sqlx::query_scalar("SELECT id FROM platform WHERE slug = 'shop'")
        .fetch_one(&pool)
        .await
        .unwrap();
    slipway::define::platforms::add_member(&pool, shop, reviewer_id)
        .await
        .unwrap();
    call(
        &b,
        &author,
        "/platforms/shop/blueprints",
        json!({"from_template": true}),
    )
    .await;
    call(
        &a,
        &author,
        "/platforms/shop/blueprints/1/submit",
        json!({}),
    )
    .await;
    let verdict = json!({"verdict": "approve", "comment": ""});
    call(
        &b,
        &reviewer,
        "/platforms/shop/blueprints/1/reviews",
        verdict,
    )
    .await;
    let request = json!({"environment_type": "dev", "name": "replicas", "purpose": "Two of each"});
    let env = call(&a, &dev, "/platforms/shop/environments", request).await;
    let id = env["id"].as_str().unwrap().to_owned();
    call(
        &b,
        &reviewer,
        &format!("/environments/{id}/approve"),
        json!({}),
    )
    .await;

    until(
        &pool,
        "the environment to be ready",
        Duration::from_secs(120),
        &format!("SELECT state = 'ready' FROM environment WHERE id = '{id}'"),
    )
    .await;
    // Once: one job, one attempt, each step once, one account and one cluster.
    let (jobs, attempts): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(attempt), 0) FROM job WHERE kind = 'environment.provision'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((jobs, attempts), (1, 1));
    let repeated: i64 = sqlx::query_scalar("SELECT count(*) FROM job_step WHERE attempt > 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(repeated, 0, "no step ran twice");
    let resources: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, count(*) FROM simulated_resource
         WHERE kind IN ('account', 'cluster', 'nodegroup') GROUP BY kind ORDER BY kind",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let once = |kind: &str| (kind.to_owned(), 1);
    assert_eq!(
        resources,
        [once("account"), once("cluster"), once("nodegroup")]
    );
    for w in &mut workers {
        w.kill().unwrap();
        w.wait().unwrap();
    }
}
