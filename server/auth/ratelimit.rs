//! Sign-in rate limiting, per account and per address, counted in Postgres so every Slipway
//! process sees the same numbers.

use std::net::IpAddr;

use sqlx::PgPool;

/// Failures counted over this window.
pub const WINDOW_MINUTES: i64 = 15;
/// Failed sign-ins allowed per account within the window.
pub const PER_ACCOUNT: i64 = 5;
/// Failed sign-ins allowed per address within the window (several people may share one).
pub const PER_ADDRESS: i64 = 20;

/// Whether sign-in for `email` from `ip` is currently locked out.
pub async fn is_limited(db: &PgPool, email: &str, ip: Option<IpAddr>) -> Result<bool, sqlx::Error> {
    let (per_account, per_address): (i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT count(*) FROM login_failure
             WHERE lower(email) = lower($1) AND at > now() - make_interval(mins => $3)),
           (SELECT count(*) FROM login_failure
             WHERE ip = $2 AND at > now() - make_interval(mins => $3))",
    )
    .bind(email)
    .bind(ip)
    .bind(WINDOW_MINUTES as i32)
    .fetch_one(db)
    .await?;
    Ok(per_account >= PER_ACCOUNT || per_address >= PER_ADDRESS)
}

pub async fn record_failure(
    db: &PgPool,
    email: &str,
    ip: Option<IpAddr>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO login_failure (email, ip) VALUES ($1, $2)")
        .bind(email.chars().take(320).collect::<String>())
        .bind(ip)
        .execute(db)
        .await?;
    // Old rows are worthless: keep the table small.
    sqlx::query("DELETE FROM login_failure WHERE at < now() - interval '1 day'")
        .execute(db)
        .await?;
    Ok(())
}

/// A successful sign-in clears the account's failures.
pub async fn clear(db: &PgPool, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failure WHERE lower(email) = lower($1)")
        .bind(email)
        .execute(db)
        .await?;
    Ok(())
}
