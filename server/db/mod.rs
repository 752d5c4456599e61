//! The database: where it is (an external `DATABASE_URL` or the embedded cluster), the
//! connection pool, and the schema migrations embedded in the binary.

pub mod embedded;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::app::config::Config;
use embedded::{Binaries, EmbeddedError, EmbeddedPostgres};

/// The schema, from `migrations/`, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error("invalid DATABASE_URL: {0}")]
    Url(sqlx::Error),
    #[error("cannot connect to the database at {target}: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error(
        "the database schema is newer than this Slipway binary: it has migration {found}, and \
         this binary knows migrations up to {known}. Run the newer Slipway that upgraded it, or \
         point DATABASE_URL at another database"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("applying database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

/// Whether this process must own the embedded cluster, or may join one a server runs.
#[derive(Debug, Clone, Copy)]
enum EmbeddedShare {
    Own,
    JoinRunning,
}

/// Where the data lives, and whether Slipway started it.
#[derive(Debug)]
pub enum Location {
    /// `DATABASE_URL`: someone else's server; we only connect.
    External,
    /// The private cluster under the data directory; stopped with [`Database::shutdown`].
    Embedded(EmbeddedPostgres),
}

/// A connected database: the pool plus, for the embedded default, the cluster behind it.
#[derive(Debug)]
pub struct Database {
    pub pool: PgPool,
    pub location: Location,
}

impl Database {
    /// Connects to the configured database, starting the embedded cluster when `DATABASE_URL` is
    /// not set. Does not migrate: see [`migrate`].
    pub async fn open(config: &Config) -> Result<Self, DbError> {
        Self::open_with(config, EmbeddedShare::Own).await
    }

    /// Like [`Database::open`], but an embedded cluster that a running `serve` owns is joined
    /// rather than refused (for the admin commands).
    pub async fn open_beside_server(config: &Config) -> Result<Self, DbError> {
        Self::open_with(config, EmbeddedShare::JoinRunning).await
    }

    async fn open_with(config: &Config, share: EmbeddedShare) -> Result<Self, DbError> {
        let (options, location, target) = match &config.database_url {
            Some(url) => {
                let options: PgConnectOptions = url.parse().map_err(DbError::Url)?;
                (options, Location::External, redact_url(url))
            }
            None => {
                let binaries = Binaries::locate(config.postgres_bin_dir.as_deref())?;
                let data_dir = config.data_dir.clone();
                let cluster = tokio::task::spawn_blocking(move || match share {
                    EmbeddedShare::Own => EmbeddedPostgres::start(&data_dir, binaries),
                    EmbeddedShare::JoinRunning => {
                        EmbeddedPostgres::start_or_join(&data_dir, binaries)
                    }
                })
                .await
                .expect("the embedded PostgreSQL launcher does not panic")?;
                cluster
                    .ensure_database()
                    .await
                    .map_err(|source| DbError::Connect {
                        target: "the embedded PostgreSQL".into(),
                        source,
                    })?;
                let target = format!(
                    "the embedded PostgreSQL in {}",
                    config.embedded_postgres_dir().display()
                );
                (
                    cluster.connect_options(),
                    Location::Embedded(cluster),
                    target,
                )
            }
        };
        let pool = PgPoolOptions::new()
            .max_connections(config.db_max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.application_name("slipway"))
            .await
            .map_err(|source| DbError::Connect { target, source })?;
        Ok(Self { pool, location })
    }

    /// Closes the pool and, for the embedded default, stops the cluster.
    pub async fn shutdown(self) {
        self.pool.close().await;
        if let Location::Embedded(cluster) = self.location {
            match tokio::task::spawn_blocking(move || cluster.stop()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "stopping the embedded PostgreSQL failed")
                }
                Err(e) => tracing::error!(error = %e, "stopping the embedded PostgreSQL panicked"),
            }
        }
    }

    pub fn is_embedded(&self) -> bool {
        matches!(self.location, Location::Embedded(_))
    }
}

/// Applies pending migrations, refusing a database that a newer Slipway has already migrated.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    check_not_newer(pool).await?;
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The newest migration this binary knows.
pub fn latest_known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest migration applied to the database, `None` before the first migration.
pub async fn applied_version(pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !table_exists {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
}

async fn check_not_newer(pool: &PgPool) -> Result<(), DbError> {
    let known = latest_known_version();
    match applied_version(pool).await? {
        Some(found) if found > known => Err(DbError::SchemaTooNew { found, known }),
        _ => Ok(()),
    }
}

/// Whether the database is reachable and fully migrated (for `/readyz`).
pub async fn is_ready(pool: &PgPool) -> Result<bool, sqlx::Error> {
    Ok(applied_version(pool).await? == Some(latest_known_version()))
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Stores an enum with `as_str()` and `parse()` as a text column. A stored value that is none of
/// the enum's is a decoding error naming it, never a default: acting on a guessed state could
/// approve or tear down the wrong thing.
#[macro_export]
macro_rules! text_column {
    ($ty:ty, $what:literal) => {
        impl sqlx::Type<sqlx::Postgres> for $ty {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $ty {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                <$ty>::parse(text)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " {:?}"), text).into())
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    };
}

/// An `ILIKE` pattern matching text that contains `text`: `%`, `_` and `\` are escaped.
pub fn contains_pattern(text: &str) -> String {
    let mut escaped = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// Whether `error` means the database cannot be reached right now (a restart, a failover, no
/// connection free in time) rather than a fault of the statement: such a request may be retried.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
        // SQLSTATE class 08 (connection exception); 57P01-57P03: shutting down, crashed, starting.
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || ["57P01", "57P02", "57P03"].contains(&&*code)
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/slipway"),
            "postgres://app:***@db:5432/slipway"
        );
        assert_eq!(
            redact_url("postgres://app@db/slipway"),
            "postgres://app@db/slipway"
        );
        assert_eq!(redact_url("postgres:///slipway"), "postgres:///slipway");
    }
}
