//! The `slipway` binary as users start it: with DATABASE_URL, with the embedded default, with bad
//! configuration, and against a database newer than itself.

mod support;

use std::path::Path;
use std::process::Output;

use reqwest::StatusCode;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use support::{SlipwayProcess, TestDb, data_dir, slipway_command};

async fn readyz(process: &SlipwayProcess) -> serde_json::Value {
    let res = support::client()
        .get(process.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "stderr:\n{}",
        process.stderr()
    );
    res.json().await.unwrap()
}

fn assert_clean_failure(out: &Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "a panic reached the user:\n{stderr}"
    );
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
    for text in expected {
        assert!(stderr.contains(text), "stderr lacks {text:?}:\n{stderr}");
    }
}

#[tokio::test]
async fn starts_with_database_url_and_applies_migrations() {
    let db = TestDb::empty().await;
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = slipway_command(cwd.path());
    cmd.env("DATABASE_URL", db.url());
    let mut process = SlipwayProcess::start(cmd);

    let ready = readyz(&process).await;
    assert_eq!(ready["status"], "ready");
    let pool = db.pool().await;
    let applied: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, slipway::db::latest_known_version());
    pool.close().await;

    let status = process.terminate();
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    // With DATABASE_URL, Slipway never creates an embedded cluster.
    assert!(!cwd.path().join(".slipway").exists());
}

#[tokio::test]
async fn migrate_subcommand_applies_migrations_and_exits() {
    let db = TestDb::empty().await;
    let cwd = tempfile::tempdir().unwrap();
    let out = slipway_command(cwd.path())
        .env("DATABASE_URL", db.url())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let version = slipway::db::latest_known_version();
    assert!(
        stdout.contains(&format!("database schema is at migration {version}")),
        "{stdout}"
    );

    // Running it again is a no-op that succeeds.
    let again = slipway_command(cwd.path())
        .env("DATABASE_URL", db.url())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(again.status.success());
}

#[tokio::test]
async fn a_database_newer_than_the_binary_is_refused() {
    let db = TestDb::migrated().await;
    let pool = db.pool().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99991231000000, 'from the future', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let cwd = tempfile::tempdir().unwrap();
    for subcommand in ["migrate", "serve"] {
        let mut cmd = slipway_command(cwd.path());
        cmd.env("DATABASE_URL", db.url()).arg(subcommand);
        if subcommand == "serve" {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let out = cmd.output().unwrap();
        assert_clean_failure(&out, &["newer than this Slipway binary", "99991231000000"]);
    }
}

/// The socket options of the embedded cluster under `data_dir`, to look inside it.
fn embedded_options(data_dir: &Path) -> PgConnectOptions {
    PgConnectOptions::new()
        .socket(data_dir.join("postgres/run"))
        .username("slipway")
        .database("slipway")
}

fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("postgres/data/postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is a live process. A zombie (exited, waiting to be reaped by a PID 1 that may
/// never do it in a container) counts as gone.
fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: "1234 (postgres) S ...".
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn embedded_default_creates_reuses_and_stops_its_own_cluster() {
    let data = data_dir();
    let cwd = tempfile::tempdir().unwrap();
    let start = || {
        let mut cmd = slipway_command(cwd.path());
        cmd.arg("--data-dir").arg(data.path());
        SlipwayProcess::start(cmd)
    };

    // First start: a new cluster, migrated and ready.
    let mut first = start();
    assert_eq!(readyz(&first).await["status"], "ready");
    let pid = postmaster_pid(data.path()).expect("the embedded cluster runs");
    assert!(process_alive(pid));
    let mut conn = PgConnection::connect_with(&embedded_options(data.path()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE test_marker (note text)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO test_marker VALUES ('written before the restart')")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    // A second Slipway on the same directory is refused politely, and the first keeps running.
    let mut second = slipway_command(cwd.path());
    second
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let out = second.output().unwrap();
    assert_clean_failure(
        &out,
        &[
            "another Slipway is already running",
            &format!("pid {}", first.child.id()),
        ],
    );
    assert_eq!(readyz(&first).await["status"], "ready");

    // The admin commands work beside it: they join its database instead of refusing.
    let out = slipway_command(cwd.path())
        .arg("--data-dir")
        .arg(data.path())
        .args([
            "admin",
            "create-user",
            "--email",
            "beside@example.com",
            "--name",
            "Beside",
            "--role",
            "developer",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        readyz(&first).await["status"],
        "ready",
        "and leave it running"
    );

    // SIGTERM: Slipway stops, and its PostgreSQL with it.
    assert!(first.terminate().success(), "stderr:\n{}", first.stderr());
    assert!(!process_alive(pid), "postgres (pid {pid}) outlived Slipway");
    assert!(postmaster_pid(data.path()).is_none());

    // Second start: the same cluster and data, no new initdb.
    let mut again = start();
    assert_eq!(readyz(&again).await["status"], "ready");
    assert!(
        !again
            .stderr()
            .contains("creating the embedded PostgreSQL cluster")
    );
    let mut conn = PgConnection::connect_with(&embedded_options(data.path()))
        .await
        .unwrap();
    let note: String = sqlx::query_scalar("SELECT note FROM test_marker")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(note, "written before the restart");
    conn.close().await.unwrap();
    let pid = postmaster_pid(data.path()).unwrap();
    assert!(again.terminate().success());
    assert!(!process_alive(pid));
}

#[tokio::test]
async fn embedded_default_adopts_the_cluster_of_a_killed_slipway() {
    let data = data_dir();
    let cwd = tempfile::tempdir().unwrap();
    let start = || {
        let mut cmd = slipway_command(cwd.path());
        cmd.arg("--data-dir").arg(data.path());
        SlipwayProcess::start(cmd)
    };
    let mut first = start();
    readyz(&first).await;
    let pid = postmaster_pid(data.path()).unwrap();
    // kill -9: Slipway cannot stop its cluster, which keeps running without an owner.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(process_alive(pid));

    // The next Slipway takes the directory over, uses that cluster and stops it at the end.
    let mut next = start();
    assert_eq!(readyz(&next).await["status"], "ready");
    assert!(
        next.stderr().contains("adopting the embedded PostgreSQL"),
        "{}",
        next.stderr()
    );
    assert_eq!(postmaster_pid(data.path()), Some(pid));
    assert!(next.terminate().success());
    assert!(!process_alive(pid));
}

#[test]
fn missing_postgresql_binaries_say_how_to_install_them() {
    let cwd = tempfile::tempdir().unwrap();
    let empty_bin = tempfile::tempdir().unwrap();
    let out = slipway_command(cwd.path())
        .env("SLIPWAY_POSTGRES_BIN_DIR", empty_bin.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_clean_failure(
        &out,
        &[
            "no PostgreSQL server binaries found",
            "apt-get install postgresql",
            "DATABASE_URL",
        ],
    );
}

#[test]
fn unknown_key_in_the_config_file_is_named() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join("slipway.toml"),
        "listen = \"127.0.0.1:0\"\nlisten_adress = \"0.0.0.0:80\"\n",
    )
    .unwrap();
    let out = slipway_command(cwd.path()).output().unwrap();
    assert_clean_failure(&out, &["slipway.toml", "unknown field `listen_adress`"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_values_name_the_key_and_the_expected_form() {
    let cwd = tempfile::tempdir().unwrap();
    let out = slipway_command(cwd.path())
        .env("SLIPWAY_LISTEN", "everywhere")
        .output()
        .unwrap();
    assert_clean_failure(
        &out,
        &[
            "SLIPWAY_LISTEN",
            "\"everywhere\"",
            "expected an IP address and port",
        ],
    );

    let out = slipway_command(cwd.path())
        .args(["--log-format", "xml"])
        .output()
        .unwrap();
    assert_clean_failure(&out, &["--log-format", "`human` or `json`"]);

    let out = slipway_command(cwd.path())
        .env("SLIPWAY_LISTN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_clean_failure(
        &out,
        &[
            "unknown environment variable SLIPWAY_LISTN",
            "SLIPWAY_LISTEN",
        ],
    );
}

#[tokio::test]
async fn a_taken_port_is_reported_with_what_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let db = TestDb::empty().await;
    let cwd = tempfile::tempdir().unwrap();
    let out = slipway_command(cwd.path())
        .env("DATABASE_URL", db.url())
        .args(["serve", "--listen", &addr])
        .output()
        .unwrap();
    assert_clean_failure(&out, &[&format!("cannot listen on {addr}"), "--listen"]);
}

#[tokio::test]
async fn json_logs_on_request() {
    let db = TestDb::empty().await;
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = slipway_command(cwd.path());
    cmd.env("DATABASE_URL", db.url())
        .env("SLIPWAY_LOG_FORMAT", "json");
    let mut process = SlipwayProcess::start(cmd);
    readyz(&process).await;
    process.terminate();
    let logs = process.stderr();
    let first = logs.lines().next().expect("some log lines");
    let line: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert!(
        line["level"].is_string() && line["message"].is_string(),
        "{line}"
    );
    // Secrets stay out of the logs: the database URL is never printed whole.
    assert!(!logs.contains(&db.url()));
}

#[test]
fn every_subcommand_has_help() {
    let cwd = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (
            vec!["--help"],
            vec!["serve", "migrate", "--data-dir", "--config"],
        ),
        (
            vec!["serve", "--help"],
            vec!["--listen", "port 0 picks a free port"],
        ),
        (vec!["migrate", "--help"], vec!["--data-dir"]),
    ] {
        let out = slipway_command(cwd.path()).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        for e in expected {
            assert!(
                text.contains(e),
                "`slipway {}` lacks {e:?}:\n{text}",
                args.join(" ")
            );
        }
    }
}

#[tokio::test]
async fn each_request_is_one_log_line_without_its_query() {
    let db = TestDb::empty().await;
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = slipway_command(cwd.path());
    cmd.env("DATABASE_URL", db.url());
    let mut process = SlipwayProcess::start(cmd);
    let http = support::client();
    let res = http
        .get(process.url("/healthz?token=slw_do_not_log_me"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http.get(process.url("/no-such-page")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(process.terminate().success());

    let log = process.stderr();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("finished processing request"))
        .collect();
    let healthz: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("route=\"/healthz\""))
        .collect();
    assert_eq!(healthz.len(), 1, "{log}");
    for field in ["INFO", "method=GET", "request_id=", "status=200", " ms"] {
        assert!(healthz[0].contains(field), "{field}: {}", healthz[0]);
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("route=\"(unmatched)\"") && l.contains("status=404")),
        "{log}"
    );
    assert!(
        !log.contains("slw_do_not_log_me"),
        "the query string is never logged"
    );
}
