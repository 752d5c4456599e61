//! The command-line client against a running server, as a person or a script uses it: the real
//! `slipway` binary, its saved credentials, its output and its exit statuses.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use slipway::auth::Role;
use support::TestApp;

/// Runs `slipway args…` with its own config directory and `env`, off the async runtime.
async fn slipway(home: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"));
    for (name, value) in env {
        cmd.env(name, value);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit status, with the output in the message when it is not `expected`.
fn status(output: &Output, expected: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(expected),
        "{what}\nstdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

fn json(output: &Output) -> Value {
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(output), stderr(output)))
}

#[tokio::test]
async fn a_developer_requests_a_second_person_approves_and_the_cli_watches_it_to_ready() {
    let app = TestApp::spawn().await;
    let (_, author) = app
        .user_with_token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    let (reviewer_id, reviewer) = app
        .user_with_token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    app.approved_platform("shop", &author, &reviewer, reviewer_id)
        .await;
    let (_, dev) = app
        .user_with_token(&[Role::Developer], &[Role::Developer])
        .await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();

    // Not signed in yet: a message that says what to do, and its own status.
    let out = slipway(home, &[], &["envs"]).await;
    status(&out, 3, "not signed in");
    assert!(stderr(&out).contains("slipway login"));

    // A token that is refused is not saved; a good one is, readable by its owner only.
    let out = slipway(
        home,
        &[],
        &["login", "--url", &app.base, "--token", "slw_nope"],
    )
    .await;
    status(&out, 3, "a refused token");
    let credentials = home.join("config/slipway/credentials.toml");
    assert!(!credentials.exists());
    let out = slipway(home, &[], &["login", "--url", "ftp://x", "--token", &dev]).await;
    status(&out, 2, "a bad address");
    let base = format!("{}/", app.base);
    let out = slipway(home, &[], &["login", "--url", &base, "--token", &dev]).await;
    status(&out, 0, "login");
    assert!(stdout(&out).contains("Signed in to"), "{}", stdout(&out));
    let mode = std::fs::metadata(&credentials)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is the owner's alone");

    // Bad input is refused with the field the server names, and nothing is requested.
    let out = slipway(
        home,
        &[],
        &[
            "env",
            "request",
            "shop",
            "--type",
            "dev",
            "--name",
            "Bad Name",
            "--purpose",
            "x",
        ],
    )
    .await;
    status(&out, 7, "an invalid name");
    assert!(stderr(&out).contains("name:"), "{}", stderr(&out));

    let out = slipway(
        home,
        &[],
        &[
            "env",
            "request",
            "shop",
            "--type",
            "dev",
            "--name",
            "cli-dev",
            "--purpose",
            "Integration tests from the command line",
            "--json",
        ],
    )
    .await;
    status(&out, 0, "request");
    let requested = json(&out);
    assert_eq!(requested["state"], "submitted");
    let id = requested["id"].as_str().unwrap().to_owned();

    let out = slipway(home, &[], &["envs", "--json"]).await;
    status(&out, 0, "envs");
    assert_eq!(json(&out)["items"][0]["id"], id.as_str());
    let out = slipway(home, &[], &["envs"]).await;
    assert!(stdout(&out).contains("cli-dev") && stdout(&out).contains("submitted"));

    // Never one's own approval; a second person approves, by environment variables alone.
    let out = slipway(home, &[], &["env", "approve", &id]).await;
    status(&out, 4, "self-approval");
    let as_reviewer = [
        ("SLIPWAY_URL", app.base.as_str()),
        ("SLIPWAY_TOKEN", reviewer.as_str()),
    ];
    let out = slipway(
        home,
        &as_reviewer,
        &["env", "approve", &id, "--comment", "go"],
    )
    .await;
    status(&out, 0, "approve");
    assert!(stdout(&out).contains("is now approved"), "{}", stdout(&out));
    let out = slipway(home, &as_reviewer, &["env", "approve", &id]).await;
    status(&out, 6, "approving twice is a conflict");

    // Workers provision it in the simulated cloud while the CLI follows.
    let cloud =
        slipway::provision::Cloud::Simulated(slipway::provision::simulated::SimulatedCloud::new(
            app.pool.clone(),
            Duration::from_millis(200),
        ));
    let pool = app.db.pool().await;
    let clock = slipway::clock::Clock::system();
    let workers = slipway::jobs::worker::Workers::start(
        pool.clone(),
        slipway::app::cli::job_registry(
            &pool,
            &support::worker_config(),
            cloud,
            clock.clone(),
            &app.base,
        ),
        clock,
        slipway::jobs::worker::WorkerConfig::default(),
    );
    let out = slipway(home, &[], &["env", "watch", &id, "--timeout", "120"]).await;
    status(&out, 0, "watch to ready");
    let progress = stdout(&out);
    assert!(progress.contains("provisioning:"), "{progress}");
    assert!(
        progress.lines().last().unwrap().ends_with(" ready"),
        "{progress}"
    );

    let out = slipway(home, &[], &["env", "show", &id, "--json"]).await;
    assert_eq!(json(&out)["state"], "ready");
    let out = slipway(home, &[], &["env", "show", &id]).await;
    assert!(stdout(&out).contains("Cluster"), "{}", stdout(&out));

    // Tear it down and follow that too; a watch of a gone environment says so.
    let out = slipway(home, &[], &["env", "teardown", &id]).await;
    status(&out, 0, "teardown");
    let out = slipway(
        home,
        &[],
        &["env", "watch", &id, "--json", "--timeout", "120"],
    )
    .await;
    status(&out, 0, "watch to torn down");
    let last: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(last["state"], "torn_down");
    workers.shutdown(Duration::from_secs(5)).await;

    // Jobs are the platform team's; a developer is told no.
    let out = slipway(home, &[], &["jobs"]).await;
    status(&out, 4, "jobs as a developer");
    let out = slipway(
        home,
        &as_reviewer,
        &["jobs", "--kind", "environment.provision", "--json"],
    )
    .await;
    status(&out, 0, "jobs");
    assert_eq!(json(&out)["items"][0]["state"], "completed");
    let out = slipway(home, &as_reviewer, &["backlog", "shop"]).await;
    status(&out, 0, "backlog");

    // Unknown ids, unreachable servers and a signed-out client each have their status.
    let unknown = uuid::Uuid::new_v4().to_string();
    status(
        &slipway(home, &[], &["env", "show", &unknown]).await,
        5,
        "not found",
    );
    status(
        &slipway(home, &[], &["env", "show", "../../me"]).await,
        2,
        "a path in an id",
    );
    let nowhere = [
        ("SLIPWAY_URL", "http://127.0.0.1:9"),
        ("SLIPWAY_TOKEN", dev.as_str()),
    ];
    status(
        &slipway(home, &nowhere, &["platforms"]).await,
        8,
        "unreachable",
    );
    status(&slipway(home, &[], &["logout"]).await, 0, "logout");
    assert!(!credentials.exists());
    status(&slipway(home, &[], &["platforms"]).await, 3, "signed out");
}

#[tokio::test]
async fn shell_completions_cover_the_client_commands() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = slipway(home.path(), &[], &["completions", shell]).await;
        status(&out, 0, shell);
        let script = stdout(&out);
        assert!(
            script.contains("watch") && script.contains("teardown"),
            "{shell}"
        );
    }
    let out = slipway(home.path(), &[], &["completions", "tcsh"]).await;
    status(&out, 2, "an unknown shell");
}
