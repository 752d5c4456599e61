//! One-time links: the first-run setup link (creates the first admin) and password links for
//! invited users. Random, stored hashed, expiring, usable once.

use chrono::Duration;
use sqlx::{PgExecutor, PgPool};

use super::{UserId, random_secret, secret_hash};

/// How long links stay valid.
pub const SETUP_LIFETIME_HOURS: i64 = 24;
pub const INVITE_LIFETIME_HOURS: i64 = 72;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Creates the first admin; valid only while there are no users.
    Setup,
    /// Sets the password of an invited user.
    SetPassword(UserId),
}

/// A new first-run setup link; earlier unused ones stop working.
pub async fn new_setup(db: &PgPool) -> Result<String, sqlx::Error> {
    let token = random_secret();
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM one_time_link WHERE purpose = 'setup'")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO one_time_link (token_hash, purpose, expires_at) VALUES ($1, 'setup', now() + $2)",
    )
    .bind(secret_hash(&token))
    .bind(Duration::hours(SETUP_LIFETIME_HOURS))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// A new password link for an invited user; earlier unused ones for them stop working.
pub async fn new_set_password(
    db: impl PgExecutor<'_>,
    user: UserId,
) -> Result<String, sqlx::Error> {
    let token = random_secret();
    sqlx::query(
        "WITH dropped AS (
             DELETE FROM one_time_link
             WHERE (user_id = $2 AND used_at IS NULL) OR expires_at < now() - interval '30 days'
         )
         INSERT INTO one_time_link (token_hash, purpose, user_id, expires_at)
         VALUES ($1, 'set_password', $2, now() + $3)",
    )
    .bind(secret_hash(&token))
    .bind(user.0)
    .bind(Duration::hours(INVITE_LIFETIME_HOURS))
    .execute(db)
    .await?;
    Ok(token)
}

/// What a link is for, if it is still usable (not used, not expired).
pub async fn peek(db: &PgPool, token: &str) -> Result<Option<Purpose>, sqlx::Error> {
    let row: Option<(String, Option<uuid::Uuid>)> = sqlx::query_as(
        "SELECT purpose, user_id FROM one_time_link
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()",
    )
    .bind(secret_hash(token))
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(purpose, user)| match (purpose.as_str(), user) {
        (_, Some(user)) => Purpose::SetPassword(UserId(user)),
        _ => Purpose::Setup,
    }))
}

/// Marks the link used, inside the caller's transaction; `false` if someone used it first or it
/// expired meanwhile. The guarded UPDATE makes two simultaneous uses give one winner.
pub async fn consume(db: impl PgExecutor<'_>, token: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE one_time_link SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()",
    )
    .bind(secret_hash(token))
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}
