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

/// What [`begin_attempt`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Within the limits: counted as a failure until [`clear`]ed.
    Counted,
    /// The account or the address is locked out; nothing was counted. `first` is set for the
    /// first refusal of this lockout (per account or address and window): the one to report.
    LockedOut { first: bool },
}

/// Checks the limits and counts this attempt in one step; a locked-out attempt is not counted.
/// The attempt is counted as a failure before the password is checked, and [`clear`]ed if it
/// was right; checking first and counting afterwards let parallel attempts all pass the check
/// before any was counted.
pub async fn begin_attempt(
    db: &PgPool,
    email: &str,
    ip: Option<IpAddr>,
) -> Result<Attempt, sqlx::Error> {
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
    let (account_locked, address_locked): (bool, bool) = sqlx::query_as(
        "WITH counts AS (
             SELECT (SELECT count(*) FROM login_failure
                      WHERE lower(email) = lower($1)
                        AND at > now() - make_interval(mins => $3)) >= $4 AS account_locked,
                    $2::inet IS NOT NULL AND (SELECT count(*) FROM login_failure
                      WHERE ip = $2 AND at > now() - make_interval(mins => $3)) >= $5
                        AS address_locked
         ), counted AS (
             INSERT INTO login_failure (email, ip)
             SELECT $1, $2 FROM counts WHERE NOT account_locked AND NOT address_locked
         )
         SELECT account_locked, address_locked FROM counts",
    )
    .bind(&email)
    .bind(ip)
    .bind(WINDOW_MINUTES as i32)
    .bind(PER_ACCOUNT)
    .bind(PER_ADDRESS)
    .fetch_one(&mut *tx)
    .await?;
    let attempt = if account_locked || address_locked {
        let key = match ip {
            Some(ip) if address_locked && !account_locked => format!("address:{ip}"),
            _ => format!("account:{}", email.to_lowercase()),
        };
        // Under the locks above: of parallel refusals, one is the first.
        let first = sqlx::query(
            "INSERT INTO login_lockout (key) VALUES ($1)
             ON CONFLICT (key) DO UPDATE SET reported_at = now()
             WHERE login_lockout.reported_at <= now() - make_interval(mins => $2)",
        )
        .bind(key)
        .bind(WINDOW_MINUTES as i32)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        Attempt::LockedOut { first }
    } else {
        Attempt::Counted
    };
    tx.commit().await?;
    if attempt == Attempt::Counted {
        // Old rows are worthless: keep the tables small.
        sqlx::query("DELETE FROM login_failure WHERE at < now() - interval '1 day'")
            .execute(db)
            .await?;
        sqlx::query("DELETE FROM login_lockout WHERE reported_at < now() - interval '1 day'")
            .execute(db)
            .await?;
    }
    Ok(attempt)
}

/// A successful sign-in clears the account's failures.
pub async fn clear(db: &PgPool, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failure WHERE lower(email) = lower($1)")
        .bind(email)
        .execute(db)
        .await?;
    Ok(())
}
