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

/// Checks the limits and counts this attempt in one step: `false` when the account or the
/// address is locked out already (then nothing is counted). The attempt is counted as a failure
/// before the password is checked, and [`clear`]ed if it was right; checking first and counting
/// afterwards let parallel attempts all pass the check before any was counted.
pub async fn begin_attempt(
    db: &PgPool,
    email: &str,
    ip: Option<IpAddr>,
) -> Result<bool, sqlx::Error> {
    let email: String = email.chars().take(320).collect();
    let mut tx = db.begin().await?;
    // One lock per account, then one per address, always in that order (no deadlock): the
    // count below then sees every attempt counted before, whichever process counted it.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('slipway.login.account:' || lower($1), 0))",
    )
    .bind(&email)
    .execute(&mut *tx)
    .await?;
    if let Some(ip) = ip {
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('slipway.login.address:' || $1::text, 0))",
        )
        .bind(ip)
        .execute(&mut *tx)
        .await?;
    }
    let counted = sqlx::query(
        "INSERT INTO login_failure (email, ip)
         SELECT $1, $2
         WHERE (SELECT count(*) FROM login_failure
                 WHERE lower(email) = lower($1) AND at > now() - make_interval(mins => $3)) < $4
           AND ($2::inet IS NULL OR (SELECT count(*) FROM login_failure
                 WHERE ip = $2 AND at > now() - make_interval(mins => $3)) < $5)",
    )
    .bind(&email)
    .bind(ip)
    .bind(WINDOW_MINUTES as i32)
    .bind(PER_ACCOUNT)
    .bind(PER_ADDRESS)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    if counted {
        // Old rows are worthless: keep the table small.
        sqlx::query("DELETE FROM login_failure WHERE at < now() - interval '1 day'")
            .execute(db)
            .await?;
    }
    Ok(counted)
}

/// A successful sign-in clears the account's failures.
pub async fn clear(db: &PgPool, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failure WHERE lower(email) = lower($1)")
        .bind(email)
        .execute(db)
        .await?;
    Ok(())
}
