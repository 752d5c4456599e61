//! The `slipway` command line: subcommands, their flags, and what each runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use super::AppState;
use super::telemetry;
use crate::app::config::{Config, Overrides};
use crate::db::{self, Database};

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "Slipway: a self-service developer portal for delivering a Kubernetes platform in the cloud",
    long_about = "Slipway: a self-service developer portal for delivering a Kubernetes platform in \
                  the cloud.\n\nWithout a subcommand, `slipway` runs `serve`. Settings come from \
                  flags, SLIPWAY_* environment variables and an optional slipway.toml; see the README."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// `serve`'s flags, also accepted without the subcommand since `serve` is the default.
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every subcommand accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file [env: SLIPWAY_CONFIG] [default: ./slipway.toml when present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for Slipway's own data, including the embedded PostgreSQL
    /// [env: SLIPWAY_DATA_DIR] [default: ./.slipway]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format: human or json [env: SLIPWAY_LOG_FORMAT] [default: human]
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web portal (the default). Applies pending migrations first.
    Serve(ServeArgs),
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Run job workers only (no web server); run as many as you like on one database.
    Worker,
    /// Administration without a browser: users and API tokens.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Benchmarks, measured side by side with peers in one run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The client of a Slipway server (login, platforms, envs, env, jobs, backlog).
    #[command(flatten)]
    Client(crate::client::ClientCommand),
    /// Print shell completions: bash, zsh, fish, elvish or powershell
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The job engine against graphile-worker (npm) and River (Go) on the same PostgreSQL:
    /// no-op jobs per second and enqueue-to-start latency. Creates and drops scratch databases.
    Jobs {
        #[arg(long, default_value_t = 5000)]
        jobs: u32,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 200)]
        latency_jobs: u32,
        /// Runs of each engine, interleaved; the median is reported with the range
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// A PostgreSQL maintenance database on the server to measure on
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        server: String,
        /// Where the peers are: graphile-worker installed (npm ci --prefix tests/bench) and
        /// River's benchmark program (river/, built with Go)
        #[arg(long, default_value = "tests/bench")]
        peers: PathBuf,
    },
    /// Pages and the API under load from wrk with many environments behind them, beside
    /// /healthz on the same server; and the server's memory. Creates and drops a scratch
    /// database.
    Pages {
        /// Environments seeded behind the pages
        #[arg(long, default_value_t = 100_000)]
        rows: u32,
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// Seconds of load per address
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// A PostgreSQL maintenance database on the server to measure on
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        server: String,
    },
    /// Every benchmark with the settings the README reports (the job engine at 5,000, 50,000
    /// and 500,000 jobs, the approvals dashboard, pages under wrk), written as one Markdown
    /// report headed by the machine, the versions and the date.
    All {
        /// Where to write the report (it is also printed)
        #[arg(long, default_value = "bench-report.md")]
        out: PathBuf,
        /// Backlogs of the job engine benchmark, comma-separated
        #[arg(long, value_delimiter = ',', default_value = "5000,50000,500000")]
        backlogs: Vec<u32>,
        /// Jobs enqueued one at a time, per engine and backlog, for the latency figures
        #[arg(long, default_value_t = 200)]
        latency_jobs: u32,
        /// Runs of each engine on each backlog, interleaved; the median is reported with the
        /// range
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Environments behind the approvals dashboard's large table and the pages under wrk
        #[arg(long, default_value_t = 100_000)]
        rows: u32,
        /// Seconds of wrk load per address
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// A PostgreSQL maintenance database on the server to measure on
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        server: String,
        /// Where the job engine's peers are (see `bench jobs`)
        #[arg(long, default_value = "tests/bench")]
        peers: PathBuf,
    },
    /// The approvals dashboard under concurrent load over HTTP, with a small and a large table
    /// of requests side by side: latency percentiles per page. Creates and drops a scratch
    /// database.
    Approvals {
        /// Requests in the large table
        #[arg(long, default_value_t = 100_000)]
        rows: u32,
        /// Requests in the small table, measured first (at least 600: a tenth are pending, and
        /// the dashboard needs a second page)
        #[arg(long, default_value_t = 1_000)]
        small: u32,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Page loads per measurement
        #[arg(long, default_value_t = 2000)]
        requests: u32,
        /// A PostgreSQL maintenance database on the server to measure on
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        server: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a local user; prints the user's id, and on stderr a one-time link where they set
    /// their password.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Roles, comma-separated: developer, platform_engineer, admin
        #[arg(long, value_name = "ROLE[,ROLE...]")]
        role: String,
    },
    /// Enqueue a self-test job (steps that wait and log which worker ran them), to check that
    /// workers run and resume; prints the job's id.
    SelftestJob {
        #[arg(long, default_value_t = 3)]
        steps: u32,
        #[arg(long, default_value_t = 500)]
        step_ms: u64,
    },
    /// Create an API token with all of the user's roles; prints it once.
    CreateToken {
        #[arg(long)]
        email: String,
        /// A label to recognise the token by
        #[arg(long, default_value = "command line")]
        name: String,
        /// Lifetime such as 30d or 12h, or `never`
        #[arg(long, value_name = "DURATION", default_value = "90d")]
        expires_in: String,
    },
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port [env: SLIPWAY_LISTEN]
    /// [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// Runs the parsed command line and turns any failure into a message on stderr and a non-zero
/// exit status, never a panic backtrace.
pub fn main(cli: Cli) -> ExitCode {
    // The client's commands read no server configuration and start no logging: they print.
    match cli.command {
        Some(Command::Client(command)) => return run_client(command),
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            use std::io::Write;
            // Written whole at the end: a reader that stops early (`| head`) is no failure.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "slipway", &mut script);
            return match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: cannot write the completions: {e}");
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            };
        }
        _ => {}
    }
    let command = match cli.command {
        None => Command::Serve(cli.serve),
        Some(Command::Serve(args)) => Command::Serve(ServeArgs {
            listen: args.listen.or(cli.serve.listen),
        }),
        Some(other) => {
            if cli.serve.listen.is_some() {
                eprintln!("error: --listen belongs to `slipway serve`, not to this subcommand");
                return ExitCode::from(2);
            }
            other
        }
    };
    let overrides = Overrides {
        config_file: cli.global.config,
        data_dir: cli.global.data_dir,
        log_format: cli.global.log_format,
        listen: match &command {
            Command::Serve(args) => args.listen.clone(),
            _ => None,
        },
        database_url: None,
    };
    let config = match Config::load(&overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let telemetry = telemetry::init(&config);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(_) => serve(config).await,
            Command::Migrate => migrate(config).await,
            Command::Worker => worker(config).await,
            Command::Bench(bench) => run_bench(bench).await,
            Command::Admin(admin) => run_admin(config, admin).await,
            Command::Client(_) | Command::Completions { .. } => unreachable!("run above"),
        }
    });
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the database and applies migrations; on failure the embedded cluster is stopped again.
async fn open_migrated(config: &Config) -> anyhow::Result<Database> {
    let database = Database::open(config).await?;
    if let Err(e) = db::migrate(&database.pool).await {
        database.shutdown().await;
        return Err(e.into());
    }
    Ok(database)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Bind first: a taken port fails at once, before a database is started for nothing.
    let listener = crate::app::server::bind(config.listen).await?;
    let address = listener.local_addr().context("reading the bound address")?;
    let database = open_migrated(&config).await?;

    let embedded_db = database.is_embedded();
    let pool = database.pool.clone();
    let fallback_url = default_public_url(address);
    let state = match AppState::new(pool, config, embedded_db, &fallback_url).await {
        Ok(state) => state,
        Err(e) => {
            database.shutdown().await;
            return Err(e);
        }
    };
    if state.public_url.starts_with("http://") && !is_loopback_url(&state.public_url) {
        tracing::warn!(
            public_url = %state.public_url,
            "Slipway is served over plain http on a non-loopback address: cookies are sent \
             without `Secure`. Put it behind HTTPS and set public_url to the https address."
        );
    }
    if let Err(e) = print_setup_link(&state).await {
        database.shutdown().await;
        return Err(e);
    }
    let grace = state.config.shutdown_grace;
    let progress = state.progress.clone();
    let workers = start_workers(&state);
    tracing::info!(%address, "Slipway is listening");
    // The one line meant for people and scripts: where to point the browser.
    println!("Slipway is running at http://{address}/");
    if state.public_url.as_ref() != format!("http://{address}") {
        println!("People reach it at {}/", state.public_url);
    }
    let served = crate::app::server::serve(
        listener,
        crate::app::router::router(state),
        crate::app::server::shutdown_signal(),
        grace,
    )
    .await;
    if let Some(workers) = workers {
        workers.shutdown(grace).await;
    }
    progress.stop();
    database.shutdown().await;
    tracing::info!("Slipway stopped");
    served.context("serving HTTP")
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let database = open_migrated(&config).await?;
    let version = db::applied_version(&database.pool).await;
    database.shutdown().await;
    println!(
        "database schema is at migration {}",
        version?.unwrap_or_default()
    );
    Ok(())
}

/// Where browsers reach us when `public_url` is not set: the listen address, with `localhost` for
/// a wildcard address (0.0.0.0 or ::).
fn default_public_url(address: std::net::SocketAddr) -> String {
    if address.ip().is_unspecified() {
        format!("http://localhost:{}", address.port())
    } else {
        format!("http://{address}")
    }
}

fn is_loopback_url(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || host == "[::1]"
}

/// With no users yet, prints a one-time link that creates the first admin. It goes to stdout for
/// the person starting Slipway, never into the logs.
async fn print_setup_link(state: &AppState) -> anyhow::Result<()> {
    if crate::auth::users::count(&state.pool).await? > 0 {
        return Ok(());
    }
    let token = crate::auth::links::new_setup(&state.pool).await?;
    println!(
        "No users yet. Create the first admin within {} hours at:\n  {}/setup/{token}",
        crate::auth::links::SETUP_LIFETIME_HOURS,
        state.public_url
    );
    tracing::info!("no users yet: a one-time setup link was printed on standard output");
    Ok(())
}

/// A client command on a small runtime of its own; its failure is one line on stderr and the
/// exit status that says which failure it was.
fn run_client(command: crate::client::ClientCommand) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(crate::client::run(command)),
        Err(e) => Err(crate::client::ClientError::Local(format!(
            "cannot start the async runtime: {e}"
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run_admin(config: Config, command: AdminCommand) -> anyhow::Result<()> {
    // Check the arguments before touching the database.
    let parsed = match &command {
        AdminCommand::CreateUser { role, .. } => Some(
            crate::auth::RoleSet::parse_list(role).map_err(|e| anyhow::anyhow!("--role: {e}"))?,
        ),
        AdminCommand::SelftestJob { .. } => None,
        AdminCommand::CreateToken { expires_in, .. } => {
            if expires_in != "never" && crate::app::config::parse_duration(expires_in).is_none() {
                anyhow::bail!(
                    "--expires-in: expected a duration such as 30d or 12h, or `never`, not {expires_in:?}"
                );
            }
            None
        }
    };
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| default_public_url(config.listen));
    // Beside a running `serve` on the embedded database, its cluster is joined.
    let database = Database::open_beside_server(&config).await?;
    if let Err(e) = db::migrate(&database.pool).await {
        database.shutdown().await;
        return Err(e.into());
    }
    let result = admin_action(&database.pool, command, parsed, &public_url).await;
    database.shutdown().await;
    result
}

async fn admin_action(
    pool: &sqlx::PgPool,
    command: AdminCommand,
    roles: Option<crate::auth::RoleSet>,
    public_url: &str,
) -> anyhow::Result<()> {
    use crate::auth::accounts::{self, AccountError};
    match command {
        AdminCommand::SelftestJob { steps, step_ms } => {
            let id = crate::jobs::builtin::enqueue_selftest(
                pool,
                steps.clamp(1, 10),
                step_ms.min(60_000),
            )
            .await?;
            println!("{id}");
            Ok(())
        }
        AdminCommand::CreateUser { email, name, .. } => {
            let roles = roles.unwrap_or_default();
            let actor = crate::audit::Actor::system();
            match accounts::invite(pool, &actor, &email, &name, &roles).await {
                Ok((id, token)) => {
                    println!("{id}");
                    eprintln!(
                        "The user sets a password within {} hours at: {public_url}/invite/{token}",
                        crate::auth::links::INVITE_LIFETIME_HOURS
                    );
                    Ok(())
                }
                Err(AccountError::Invalid(errors)) => {
                    let lines: Vec<String> = errors
                        .0
                        .iter()
                        .map(|e| {
                            format!(
                                "--{}: {}",
                                if e.field == "roles" { "role" } else { &e.field },
                                e.message
                            )
                        })
                        .collect();
                    anyhow::bail!("{}", lines.join("; "))
                }
                Err(e) => Err(e.into()),
            }
        }
        AdminCommand::CreateToken {
            email,
            name,
            expires_in,
        } => {
            let user = crate::auth::users::find_by_email(pool, &email)
                .await?
                .ok_or_else(|| {
                    anyhow::anyhow!("--email: no user with the e-mail address {email}")
                })?;
            if user.roles.is_empty() {
                anyhow::bail!(
                    "{email} has no roles, so a token could do nothing; give them a role first"
                );
            }
            let expires_at = crate::app::config::parse_duration(&expires_in).map(|d| {
                chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
            });
            let (token, secret) =
                crate::auth::tokens::create(pool, user.id, &name, &user.roles, expires_at).await?;
            crate::audit::record(
                pool,
                &crate::audit::Actor::system(),
                "token.created",
                &format!("token:{}", token.id),
                serde_json::json!({ "name": name, "owner": user.email, "roles": user.roles, "expires_at": expires_at, "via": "cli" }),
            )
            .await?;
            println!("{secret}");
            Ok(())
        }
    }
}

/// Every job kind Slipway runs: the engine's own, environments' and provisioning's.
pub fn job_registry(
    pool: &sqlx::PgPool,
    config: &Config,
    cloud: crate::provision::Cloud,
    clock: crate::clock::Clock,
    base_url: &str,
) -> crate::jobs::Registry {
    let registry = crate::jobs::builtin::registry(config.job_retention);
    let registry = crate::environments::job_kinds(
        registry,
        clock.clone(),
        base_url,
        &config.webhook_allowed_ranges,
    );
    let registry = crate::maintain::drift::job_kinds(registry, config.drift_interval)
        .with(crate::maintain::cost::CostRead {
            cloud: cloud.clone(),
            clock: clock.clone(),
            base_url: base_url.to_owned(),
        })
        .with(crate::maintain::currency::CalendarRead {
            cloud: cloud.clone(),
        });
    let owner = crate::environments::provisioning::Owner {
        db: pool.clone(),
        clock,
        base_url: base_url.to_owned(),
    };
    let runner = std::sync::Arc::new(crate::provision::Runner {
        cloud,
        owner: std::sync::Arc::new(owner),
        git: config.git_host(),
        pipelines: std::sync::Arc::new(crate::exploit::onboarding::Pipelines { db: pool.clone() }),
    });
    let registry = registry.with(crate::exploit::onboarding::Onboard {
        runner: runner.clone(),
    });
    crate::provision::job_kinds(
        registry,
        runner,
        crate::maintain::drift::owner(pool, base_url),
        crate::maintain::upgrade::owner(pool, base_url),
        crate::maintain::rollout::owner(pool, base_url),
    )
}

/// A worker pool of `concurrency` tasks running every job kind.
fn workers(
    pool: &sqlx::PgPool,
    config: &Config,
    cloud: crate::provision::Cloud,
    concurrency: usize,
) -> crate::jobs::worker::Workers {
    let clock = crate::clock::Clock::system();
    let base_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| default_public_url(config.listen));
    crate::jobs::worker::Workers::start(
        pool.clone(),
        job_registry(pool, config, cloud, clock.clone(), &base_url),
        clock,
        crate::jobs::worker::WorkerConfig {
            concurrency,
            ..Default::default()
        },
    )
}

/// `serve` runs `workers` job tasks beside the web server (none when set to 0).
fn start_workers(state: &AppState) -> Option<crate::jobs::worker::Workers> {
    let config = &state.config;
    (config.workers > 0).then(|| workers(&state.pool, config, state.cloud.clone(), config.workers))
}

/// `slipway worker`: job tasks only, until SIGINT or SIGTERM; then a graceful stop.
/// `workers = 0` (meant for `serve`) still runs the default number here.
async fn worker(config: Config) -> anyhow::Result<()> {
    let concurrency = if config.workers == 0 {
        Config::default().workers
    } else {
        config.workers
    };
    let database = open_migrated(&config).await?;
    let cloud = config.connect_cloud(&database.pool).await;
    let pool = workers(&database.pool, &config, cloud, concurrency);
    println!(
        "Slipway worker {} is running {concurrency} job tasks",
        pool.id
    );
    crate::app::server::shutdown_signal().await;
    pool.shutdown(config.shutdown_grace).await;
    database.shutdown().await;
    Ok(())
}

async fn run_bench(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Jobs {
            jobs,
            concurrency,
            latency_jobs,
            runs,
            server,
            peers,
        } => {
            let settings = crate::bench::jobs::Settings {
                jobs: jobs.max(1),
                concurrency: concurrency.clamp(1, 256),
                latency_jobs: latency_jobs.max(1),
                runs: runs.clamp(1, 100),
            };
            bench_jobs(settings, server, peers).await
        }
        BenchCommand::Pages {
            rows,
            connections,
            seconds,
            server,
        } => {
            let settings = crate::bench::pages::Settings {
                rows: rows.max(1),
                connections: connections.clamp(1, 1024),
                duration: std::time::Duration::from_secs(seconds.max(1)),
            };
            let admin = bench_server(&server)?;
            let report = crate::bench::pages::run(&admin, settings).await?;
            println!("{}", crate::bench::report::pages(&report, &settings));
            Ok(())
        }
        BenchCommand::All {
            out,
            backlogs,
            latency_jobs,
            runs,
            rows,
            seconds,
            server,
            peers,
        } => {
            let sizes = BenchSizes {
                backlogs,
                latency_jobs: latency_jobs.max(1),
                runs: runs.clamp(1, 100),
                rows: rows.max(1_200),
                seconds: seconds.max(1),
            };
            bench_all(out, sizes, server, peers).await
        }
        BenchCommand::Approvals {
            rows,
            small,
            concurrency,
            requests,
            server,
        } => {
            bench_approvals(
                crate::bench::approvals::Settings {
                    small: small.max(600),
                    rows: rows.max(600),
                    concurrency: concurrency.clamp(1, 256),
                    requests: requests.max(1),
                },
                server,
            )
            .await
        }
    }
}

async fn bench_approvals(
    settings: crate::bench::approvals::Settings,
    server: String,
) -> anyhow::Result<()> {
    let admin = bench_server(&server)?;
    println!(
        "Approvals dashboard benchmark: {} and {} requests, {} clients, {} page loads each, PostgreSQL at {}",
        settings.small,
        settings.rows,
        settings.concurrency,
        settings.requests,
        crate::db::redact_url(&server)
    );
    let (small, large) = crate::bench::approvals::run(&admin, settings).await?;
    println!(
        "{}",
        crate::bench::report::approvals(&small, &large, settings.concurrency)
    );
    Ok(())
}

fn bench_server(server: &str) -> anyhow::Result<sqlx::postgres::PgConnectOptions> {
    server
        .parse()
        .context("--server: expected a PostgreSQL URL")
}

/// The sizes `bench all` runs at (the README's, unless a smoke test asks for less).
struct BenchSizes {
    backlogs: Vec<u32>,
    latency_jobs: u32,
    runs: u32,
    rows: u32,
    seconds: u64,
}

async fn bench_all(
    out: PathBuf,
    sizes: BenchSizes,
    server: String,
    peers: PathBuf,
) -> anyhow::Result<()> {
    use crate::bench::{approvals, jobs, pages, report};
    let admin = bench_server(&server)?;
    let machine = report::machine(&admin, &peers).await;
    let mut runs = Vec::new();
    for backlog in sizes.backlogs {
        let settings = jobs::Settings {
            jobs: backlog.max(1),
            concurrency: 16,
            latency_jobs: sizes.latency_jobs,
            runs: sizes.runs,
        };
        eprintln!("job engine, {backlog} jobs …");
        runs.push(jobs::compare(&admin, settings, &peers).await?);
    }
    eprintln!("approvals dashboard …");
    let approvals_settings = approvals::Settings {
        small: 1_000.min(sizes.rows / 2),
        rows: sizes.rows,
        concurrency: 8,
        requests: 2_000,
    };
    let (small, large) = approvals::run(&admin, approvals_settings).await?;
    eprintln!("pages under wrk …");
    let pages_settings = pages::Settings {
        rows: sizes.rows,
        connections: 64,
        duration: std::time::Duration::from_secs(sizes.seconds),
    };
    let pages_report = pages::run(&admin, pages_settings).await?;
    let text = format!(
        "# Slipway performance report\n\n{}\n## Job engine (`slipway bench jobs`)\n\n{}\n\
         ## Approvals dashboard (`slipway bench approvals`)\n\n{}\n\
         ## Pages under load (`slipway bench pages`)\n\n{}",
        report::machine_section(&machine),
        report::jobs(&runs),
        report::approvals(&small, &large, approvals_settings.concurrency),
        report::pages(&pages_report, &pages_settings),
    );
    std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    println!("{text}");
    eprintln!("written to {}", out.display());
    Ok(())
}

async fn bench_jobs(
    settings: crate::bench::jobs::Settings,
    server: String,
    peers: PathBuf,
) -> anyhow::Result<()> {
    let admin = bench_server(&server)?;
    println!(
        "Job engine benchmark: {} no-op jobs, {} workers, {} one-at-a-time jobs for latency, {} runs, PostgreSQL at {}",
        settings.jobs,
        settings.concurrency,
        settings.latency_jobs,
        settings.runs,
        crate::db::redact_url(&server)
    );
    let comparison = crate::bench::jobs::compare(&admin, settings, &peers).await?;
    println!("{}", crate::bench::report::jobs(&[comparison]));
    Ok(())
}
