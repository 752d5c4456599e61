//! The test harness: a fresh PostgreSQL database per test (cloned from a template migrated once
//! per schema), the app on a random port, an HTTP client that keeps cookies, the `slipway`
//! binary as a child process, and checks for external programs that fail with an install hint.
//!
//! PostgreSQL: `DATABASE_URL` when set (its server is used; databases are created beside the one
//! it names), else the local server at 127.0.0.1:5432 as user `postgres`. If nothing answers
//! there, a private cluster is started with Slipway's own embedded launcher under the target
//! directory and shared by all test processes.
#![allow(dead_code)] // Each test binary uses its own part of the harness.

pub mod browser;
pub mod git;
pub mod kube;
pub mod moto;
pub mod oidc;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use slipway::app::config::Config;
use slipway::auth::{Role, RoleSet, UserId};
use slipway::db::embedded::{Binaries, EmbeddedPostgres};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;

/// Where the test server is and how to reach its maintenance database.
async fn server() -> PgConnectOptions {
    static SERVER: OnceCell<PgConnectOptions> = OnceCell::const_new();
    SERVER
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("DATABASE_URL") {
                let options: PgConnectOptions = url
                    .parse()
                    .unwrap_or_else(|e| panic!("DATABASE_URL for the tests is invalid: {e}"));
                let admin = options.database("postgres");
                if let Err(e) = PgConnection::connect_with(&admin).await {
                    panic!(
                        "DATABASE_URL is set for the tests, but its server does not answer: {e}"
                    );
                }
                return admin;
            }
            let local = PgConnectOptions::new()
                .host("127.0.0.1")
                .port(5432)
                .username("postgres")
                .database("postgres");
            if PgConnection::connect_with(&local).await.is_ok() {
                return local;
            }
            // Nothing answers: start (or join) the harness's own cluster.
            // As root, PostgreSQL runs as an unprivileged user, who must reach its directory:
            // a target directory under a home of mode 700 (root's) is out of its reach.
            let dir = if nix::unistd::Uid::effective().is_root() {
                std::env::temp_dir().join("slipway-test-postgres")
            } else {
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-postgres")
            };
            let cluster = tokio::task::spawn_blocking(move || {
                let binaries = Binaries::locate(None).unwrap_or_else(|e| {
                    panic!("no PostgreSQL for the tests at 127.0.0.1:5432 and {e}")
                });
                EmbeddedPostgres::start_shared(&dir, binaries)
                    .unwrap_or_else(|e| panic!("starting the tests' PostgreSQL: {e}"))
            })
            .await
            .unwrap();
            cluster.admin_options()
        })
        .await
        .clone()
}

/// The URL of the test server's maintenance database (for commands that create databases).
pub async fn server_url() -> String {
    url_of(&server().await)
}

/// A URL for `options` that the `slipway` binary understands (as `DATABASE_URL`).
fn url_of(options: &PgConnectOptions) -> String {
    let user = options.get_username();
    let db = options.get_database().unwrap_or("postgres");
    match options.get_socket() {
        Some(dir) => format!("postgres://{user}@localhost/{db}?host={}", dir.display()),
        None => format!(
            "postgres://{user}@{}:{}/{db}",
            options.get_host(),
            options.get_port()
        ),
    }
}

/// The name of the template database for the current migrations, created on first use.
async fn template() -> String {
    // One template per schema: its name carries a hash of all migrations, so a changed migration
    // gets a fresh template instead of a stale one.
    let mut hasher = Sha256::new();
    for m in slipway::db::MIGRATOR.iter() {
        hasher.update(m.version.to_le_bytes());
        hasher.update(&*m.checksum);
    }
    let hash: String = hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = format!("slipway_template_{hash}");

    let admin = server().await;
    let mut conn = PgConnection::connect_with(&admin).await.unwrap();
    // Test processes run in parallel: one creates the template, the others wait for it.
    sqlx::query("SELECT pg_advisory_lock(7311)")
        .execute(&mut conn)
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    if !exists {
        let building = format!("{name}_building");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {building} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {building}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let pool = PgPool::connect_with(admin.clone().database(&building))
            .await
            .unwrap();
        slipway::db::migrate(&pool).await.unwrap();
        pool.close().await;
        // Renamed only when complete, so a crash never leaves a half-migrated template.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {building} RENAME TO {name}"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::query("SELECT pg_advisory_unlock(7311)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    name
}

/// A database of its own for one test, dropped when the test ends (also when it fails).
pub struct TestDb {
    pub name: String,
    pub options: PgConnectOptions,
}

impl TestDb {
    /// A fresh database with the current schema.
    pub async fn migrated() -> Self {
        let template = template().await;
        Self::create(Some(&template)).await
    }

    /// A fresh, empty database (no migrations applied).
    pub async fn empty() -> Self {
        Self::create(None).await
    }

    async fn create(template: Option<&str>) -> Self {
        let admin = server().await;
        let name = format!("slipway_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin).await.unwrap();
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let options = admin.database(&name);
        Self { name, options }
    }

    pub fn url(&self) -> String {
        url_of(&self.options)
    }

    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(5)
            .connect_with(self.options.clone())
            .await
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.options.clone().database("postgres");
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut conn = PgConnection::connect_with(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("note: could not drop test database {}: {e}", self.name);
        }
    }
}

/// The app served in-process on a random port, over real HTTP, with its own database.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub db: TestDb,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Config::default()).await
    }

    pub async fn spawn_with(config: Config) -> Self {
        Self::spawn_with_routes(config, None).await
    }

    /// The app's middleware stack around `routes` (test-only handlers) instead of the app's
    /// own routes, to exercise error handling that no real route should trigger.
    pub async fn spawn_with_routes(
        config: Config,
        routes: Option<axum::Router<slipway::app::AppState>>,
    ) -> Self {
        Self::spawn_on(TestDb::migrated().await, config, routes).await
    }

    /// The app on an existing (migrated) database.
    pub async fn spawn_on(
        db: TestDb,
        config: Config,
        routes: Option<axum::Router<slipway::app::AppState>>,
    ) -> Self {
        let pool = db.pool().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let mut state = slipway::app::AppState::new(pool.clone(), config, false, &base)
            .await
            .unwrap();
        if let Some(clock) = CLOCK.with(|c| c.borrow_mut().take()) {
            state.clock = clock;
        }
        let app = match routes {
            Some(routes) => slipway::app::router::with_middleware(routes, state),
            None => slipway::app::router::router(state),
        };
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            base,
            client: client(),
            pool,
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// GET `path` with a bearer token.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A new user with `roles` and the test password, made a member of the platform `slug`;
    /// their e-mail address (to sign in with).
    pub async fn platform_member(&self, slug: &str, roles: &[Role]) -> String {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let user = self.create_user(&email, roles, PASSWORD).await;
        let platform: uuid::Uuid = sqlx::query_scalar("SELECT id FROM platform WHERE slug = $1")
            .bind(slug)
            .fetch_one(&self.pool)
            .await
            .unwrap();
        slipway::define::platforms::add_member(&self.pool, platform, user)
            .await
            .unwrap();
        email
    }

    /// A local user with a password, created directly (as an admin would).
    pub async fn create_user(&self, email: &str, roles: &[Role], password: &str) -> UserId {
        create_user_in(&self.pool, email, roles, password).await
    }

    /// A browser-like client signed in as a new user with `roles`.
    pub async fn signed_in(&self, roles: &[Role]) -> reqwest::Client {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        self.create_user(&email, roles, PASSWORD).await;
        let client = client();
        let res = self.login(&client, &email, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "sign-in failed");
        client
    }

    /// Signs `client` in through the real form: GET /login for the CSRF token, then POST.
    pub async fn login(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        sign_in_at(client, &self.base, email, password).await
    }

    /// An API token for a new user with `user_roles`, scoped to `scope`.
    pub async fn token(&self, user_roles: &[Role], scope: &[Role]) -> String {
        self.user_with_token(user_roles, scope).await.1
    }

    /// Calls the JSON API with a bearer token (`null`: no body): the status and the body read
    /// as JSON (or as a string when it is not).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let body = (!body.is_null()).then_some(body);
        let res = self.api(method, path, token, body).await;
        let status = res.status();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Worker tasks in this process, running every job kind against `cloud`.
    pub fn workers(&self, cloud: slipway::provision::Cloud) -> slipway::jobs::worker::Workers {
        self.workers_with(cloud, worker_config())
    }

    /// [`TestApp::workers`] with `config` (a Git host of the test's own, say).
    pub fn workers_with(
        &self,
        cloud: slipway::provision::Cloud,
        config: Config,
    ) -> slipway::jobs::worker::Workers {
        let clock = slipway::clock::Clock::system();
        slipway::jobs::worker::Workers::start(
            self.pool.clone(),
            slipway::app::cli::job_registry(&self.pool, &config, cloud, clock.clone(), &self.base),
            clock,
            slipway::jobs::worker::WorkerConfig::default(),
        )
    }

    /// A new user and an API token of theirs limited to `scope`.
    pub async fn user_with_token(&self, user_roles: &[Role], scope: &[Role]) -> (UserId, String) {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let user = self.create_user(&email, user_roles, PASSWORD).await;
        let scope: RoleSet = scope.iter().copied().collect();
        let (_, secret) = slipway::auth::tokens::create(&self.pool, user, "test", &scope, None)
            .await
            .unwrap();
        (user, secret)
    }
}

/// The configuration in-process workers run with: the defaults, but Slipway's own files (the
/// environments' local repositories) in a directory of their own, not the source tree.
pub fn worker_config() -> Config {
    Config {
        data_dir: std::env::temp_dir()
            .join("slipway-tests")
            .join(uuid::Uuid::new_v4().simple().to_string()),
        ..Config::default()
    }
}

/// A local user with a password in the database behind `pool`, created directly (as an admin
/// would): for tests that run Slipway as processes rather than a [`TestApp`].
pub async fn create_user_in(pool: &PgPool, email: &str, roles: &[Role], password: &str) -> UserId {
    let roles: RoleSet = roles.iter().copied().collect();
    // Hashing is slow by design; the harness's own password is hashed once per process.
    static PASSWORD_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = if password == PASSWORD {
        PASSWORD_HASH
            .get_or_init(|| slipway::auth::password::hash(PASSWORD))
            .clone()
    } else {
        slipway::auth::password::hash(password)
    };
    slipway::auth::users::create_local(pool, email, "Test User", &roles, Some(&hash))
        .await
        .unwrap()
}

/// Signs `client` in to the Slipway at `base` through the real form: GET /login for the CSRF
/// token, then POST.
pub async fn sign_in_at(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let form = client
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_token(&form);
    client
        .post(format!("{base}/login"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap()
}

thread_local! {
    /// The clock of the next app spawned on this thread (see `TestApp::spawn_at`).
    static CLOCK: std::cell::RefCell<Option<slipway::clock::Clock>> = const { std::cell::RefCell::new(None) };
}

impl TestApp {
    /// The app with its clock fixed at `at` (tests of time-dependent behaviour, no sleeping).
    pub async fn spawn_at(at: chrono::DateTime<chrono::Utc>) -> Self {
        CLOCK.with(|c| *c.borrow_mut() = Some(slipway::clock::Clock::fixed(at)));
        Self::spawn().await
    }

    /// Approves a new blueprint revision of `slug`: revision 1 as `change` edits it, saved and
    /// submitted by `author`, approved by `reviewer`.
    pub async fn approve_revision(
        &self,
        slug: &str,
        author: &str,
        reviewer: &str,
        change: impl FnOnce(&mut serde_json::Value),
    ) {
        use reqwest::Method;
        let base = format!("/api/v1/platforms/{slug}/blueprints");
        let (_, current) = self
            .call(
                Method::GET,
                &format!("{base}/1"),
                author,
                serde_json::json!(null),
            )
            .await;
        let mut document = current["document"].clone();
        change(&mut document);
        let (status, created) = self
            .call(
                Method::POST,
                &base,
                author,
                serde_json::json!({"base_revision": 1, "document": document}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let n = created["number"].as_i64().unwrap();
        let (status, body) = self
            .call(
                Method::POST,
                &format!("{base}/{n}/submit"),
                author,
                serde_json::json!({}),
            )
            .await;
        assert!(status.is_success(), "{body}");
        let (status, body) = self
            .call(
                Method::POST,
                &format!("{base}/{n}/reviews"),
                reviewer,
                serde_json::json!({"verdict": "approve", "comment": ""}),
            )
            .await;
        assert!(status.is_success(), "{body}");
    }

    /// The platform `slug` created by `author` (a platform engineer's token) with the built-in
    /// blueprint approved by `reviewer` (another platform engineer, made a member).
    pub async fn approved_platform(
        &self,
        slug: &str,
        author: &str,
        reviewer: &str,
        reviewer_id: UserId,
    ) {
        use reqwest::Method;
        let res = self
            .api(
                Method::POST,
                "/api/v1/platforms",
                author,
                Some(serde_json::json!({"slug": slug, "name": format!("{slug} platform"), "owner_team": "Platform"})),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let platform: uuid::Uuid = sqlx::query_scalar("SELECT id FROM platform WHERE slug = $1")
            .bind(slug)
            .fetch_one(&self.pool)
            .await
            .unwrap();
        slipway::define::platforms::add_member(&self.pool, platform, reviewer_id)
            .await
            .unwrap();
        let base = format!("/api/v1/platforms/{slug}/blueprints");
        let steps = [
            (
                base.clone(),
                author,
                Some(serde_json::json!({"from_template": true})),
            ),
            (format!("{base}/1/submit"), author, None),
            (
                format!("{base}/1/reviews"),
                reviewer,
                Some(serde_json::json!({"verdict": "approve", "comment": ""})),
            ),
        ];
        for (path, token, body) in steps {
            let res = self.api(Method::POST, &path, token, body).await;
            assert!(
                res.status().is_success(),
                "{path}: {}",
                res.text().await.unwrap()
            );
        }
    }

    /// Calls the JSON API with a bearer token.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = client().request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }
}

/// The password of users the harness creates.
pub const PASSWORD: &str = "correct horse battery staple";

/// The CSRF token of a page (every page carries it in `<meta name="csrf-token">`, for scripts;
/// forms carry the same in `_csrf`).
pub fn csrf_token(html: &str) -> String {
    let marker = r#"<meta name="csrf-token" content=""#;
    let start = html.find(marker).expect("the page carries a CSRF token") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// An HTTP client that keeps cookies, like a browser, and never follows redirects silently.
pub fn client() -> reqwest::Client {
    slipway::init_tls();
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The `slipway` binary as a child process, with a clean environment (no `SLIPWAY_*`, no
/// `DATABASE_URL`, no `RUST_LOG`) and the given working directory.
pub fn slipway_command(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SLIPWAY_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(cwd);
    cmd
}

/// A running `slipway serve`, stopped with SIGTERM when dropped.
pub struct SlipwayProcess {
    pub child: Child,
    pub base: String,
    /// What it printed on stdout before its URL (e.g. the first-run setup link).
    pub preamble: Vec<String>,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl SlipwayProcess {
    /// Starts `cmd` (a serve command) on a random port and waits until it prints its URL.
    pub fn start(mut cmd: Command) -> Self {
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning the slipway binary");
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        // The first line on stdout is the URL; end of output means it exited instead.
        let mut preamble = Vec::new();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("Slipway is running at ") {
                        break url.trim_end_matches('/').to_owned();
                    }
                    preamble.push(line);
                }
                _ => {
                    let status = child.wait().unwrap();
                    panic!(
                        "slipway exited ({status}) before serving; stderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            base,
            preamble,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        self.child.wait().unwrap()
    }
}

impl Drop for SlipwayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// A number from a drill's setting (`SLIPWAY_DRILL_*`), or its short form's default.
pub fn drill_setting(name: &str, short_form: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(short_form)
}

/// The seed of a randomised test: `SLIPWAY_TEST_SEED` when set (to replay a run), else new
/// each run. Tests print it.
pub fn test_seed() -> u64 {
    drill_setting(
        "SLIPWAY_TEST_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            .into(),
    )
}

/// The path of an external program a test needs, or a failure that says how to install it.
/// Tests never skip silently.
pub fn require_program(name: &str, install_hint: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("this test needs `{name}`, which is not installed. Install it with: {install_hint} (./tests/run installs it for you)")
    })
}

/// A temporary directory the embedded cluster's unprivileged owner can pass through (tempfile
/// makes them 0700, which shuts out the `postgres` user when tests run as root).
pub fn data_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("slw")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    dir
}

/// The value of cookie `name` set by `response`, if any.
pub fn set_cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
}
