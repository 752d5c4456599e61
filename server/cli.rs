//! The `slipway` command line: subcommands, their flags, and what each runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Overrides};
use crate::db::{self, Database};
use crate::{http, telemetry};

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
            Command::Migrate => None,
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
    telemetry::init(&config);

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
        }
    });
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
    let listener = http::bind(config.listen).await?;
    let address = listener.local_addr().context("reading the bound address")?;
    let database = open_migrated(&config).await?;

    let state = http::AppState {
        pool: database.pool.clone(),
        embedded_db: database.is_embedded(),
        config: Arc::new(config),
        started_at: chrono::Utc::now(),
    };
    let grace = state.config.shutdown_grace;
    tracing::info!(%address, "Slipway is listening");
    // The one line meant for people and scripts: where to point the browser.
    println!("Slipway is running at http://{address}/");
    let served = http::serve(
        listener,
        http::router(state),
        http::shutdown_signal(),
        grace,
    )
    .await;
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
