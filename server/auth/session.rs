//! Browser sessions: stored in Postgres (hashed), with idle and absolute expiry, rotated at every
//! sign-in, ended server-side at sign-out.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::AuthMethod;
use super::{Principal, User, UserId, random_secret, secret_hash, users};

/// Idle and absolute lifetimes. A session unused for `idle` ends; none outlives `absolute`.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub idle: chrono::Duration,
    pub absolute: chrono::Duration,
}

/// `last_seen_at` is written at most this often, so reading pages does not write on every request.
const TOUCH_EVERY_SECONDS: i64 = 60;

/// Starts a session for `user` and returns the cookie value. Any session the browser had before
/// (`previous`) is ended: the identifier always changes at sign-in (no session fixation).
pub async fn start(
    db: &PgPool,
    user: UserId,
    lifetimes: Lifetimes,
    previous: Option<&str>,
    user_agent: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<String, sqlx::Error> {
    let token = random_secret();
    let mut tx = db.begin().await?;
    // Sessions past their absolute expiry are worthless; sign-ins keep the table small.
    sqlx::query("DELETE FROM session WHERE expires_at < now()")
        .execute(&mut *tx)
        .await?;
    if let Some(old) = previous {
        sqlx::query("DELETE FROM session WHERE token_hash = $1")
            .bind(secret_hash(old))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO session (token_hash, user_id, expires_at, user_agent, ip)
         VALUES ($1, $2, now() + $3, $4, $5)",
    )
    .bind(secret_hash(&token))
    .bind(user.0)
    .bind(lifetimes.absolute)
    .bind(user_agent.map(|ua| ua.chars().take(300).collect::<String>()))
    .bind(ip)
    .execute(&mut *tx)
    .await?;
    users::record_login(&mut *tx, user).await?;
    tx.commit().await?;
    Ok(token)
}

/// A live session's caller, with what every signed-in page shows of them besides.
#[derive(Debug, Clone)]
pub struct SessionCaller {
    pub principal: Principal,
    /// The inbox's unread badge ([`crate::inbox`]), read in the same round trip.
    pub unread_notifications: i64,
}

/// The signed-in user for a cookie value, if the session is live; refreshes its idle timer.
pub async fn resolve(
    db: &PgPool,
    token: &str,
    lifetimes: Lifetimes,
) -> Result<Option<SessionCaller>, sqlx::Error> {
    let hash = secret_hash(token);
    // The session, its user and the unread badge in one round trip: this runs before every
    // signed-in page, so each query here is paid by every page view.
    #[derive(sqlx::FromRow)]
    struct Live {
        last_seen_at: DateTime<Utc>,
        unread_notifications: i64,
        #[sqlx(flatten)]
        user: users::UserRow,
    }
    let row: Option<Live> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT s.last_seen_at, u.*,
                (SELECT count(*) FROM notification n
                 WHERE n.user_id = s.user_id AND n.read_at IS NULL) AS unread_notifications
         FROM session s,
             LATERAL (SELECT {} FROM app_user WHERE app_user.id = s.user_id) u
         WHERE s.token_hash = $1 AND s.expires_at > now() AND s.last_seen_at > now() - $2",
        users::COLUMNS
    )))
    .bind(&hash)
    .bind(lifetimes.idle)
    .fetch_optional(db)
    .await?;
    let Some(Live {
        last_seen_at: last_seen,
        unread_notifications,
        user,
    }) = row
    else {
        return Ok(None);
    };
    let user = User::from(user);
    if (Utc::now() - last_seen).num_seconds() >= TOUCH_EVERY_SECONDS {
        sqlx::query("UPDATE session SET last_seen_at = now() WHERE token_hash = $1")
            .bind(&hash)
            .execute(db)
            .await?;
    }
    Ok(Some(SessionCaller {
        principal: Principal {
            roles: user.roles.clone(),
            user,
            method: AuthMethod::Session { token_hash: hash },
        },
        unread_notifications,
    }))
}

/// Ends one session (sign out).
pub async fn end(db: &PgPool, token_hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM session WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(())
}

/// Ends every session of a user (sign out everywhere); returns how many were ended.
pub async fn end_all(db: &PgPool, user: UserId) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM session WHERE user_id = $1")
        .bind(user.0)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// How many live sessions a user has (shown on the profile).
pub async fn count_live(
    db: &PgPool,
    user: UserId,
    lifetimes: Lifetimes,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM session WHERE user_id = $1 AND expires_at > now()
         AND last_seen_at > now() - $2",
    )
    .bind(user.0)
    .bind(lifetimes.idle)
    .fetch_one(db)
    .await
}
