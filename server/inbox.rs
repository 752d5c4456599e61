//! The in-app inbox: notifications for one person each, the unread badge and "mark all read".
//! A leaf: each domain writes its notifications inside the transaction of the change they
//! report (nobody hears of a change that rolled back) and says where they link; the inbox
//! stores and reads them.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One notification as the inbox shows it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Notification {
    pub id: i64,
    /// The environment it is about, if it is about one.
    pub environment_id: Option<Uuid>,
    pub kind: String,
    pub message: String,
    /// The page it is about, a path within Slipway (`/environments/…`,
    /// `/platforms/…/blueprints/…`).
    pub link: Option<String>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// Tells each of `users` that `message` happened, linking to the page at `link` (a path of
/// ours), inside the caller's transaction.
pub async fn tell(
    tx: &mut PgConnection,
    users: &[Uuid],
    kind: &str,
    message: &str,
    link: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification (user_id, kind, message, link)
         SELECT u, $2, $3, $4 FROM unnest($1::uuid[]) AS u",
    )
    .bind(users)
    .bind(kind)
    .bind(message)
    .bind(link)
    .execute(tx)
    .await?;
    Ok(())
}

/// The newest notifications of `user`, before the id `before`.
pub async fn inbox(
    db: &PgPool,
    user: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, environment_id, kind, message,
             coalesce(link, '/environments/' || environment_id) AS link, created_at, read_at
         FROM notification
         WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(user)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn unread_count(db: &PgPool, user: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM notification WHERE user_id = $1 AND read_at IS NULL")
        .bind(user)
        .fetch_one(db)
        .await
}

pub async fn mark_all_read(db: &PgPool, user: Uuid) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE notification SET read_at = now() WHERE user_id = $1 AND read_at IS NULL",
    )
    .bind(user)
    .execute(db)
    .await?
    .rows_affected())
}
