//! The records behind `Idempotency-Key` (API.md): per caller and key, the request it was first
//! used for (path and a hash of the whole request) and, once that request succeeded, its
//! result. Records live 24 hours. `http::idempotency` is the middleware that reads the header and
//! answers from these records.

use sqlx::PgPool;
use uuid::Uuid;

/// A result kept for replay.
#[derive(Debug, sqlx::FromRow)]
pub struct Kept {
    pub status: i16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// What the key's record says about a request that presents it.
#[derive(Debug)]
pub enum Claim {
    /// The key is new: the request runs, and its result is kept.
    First,
    /// The same request succeeded before: its result.
    Replay(Kept),
    /// The request may not run.
    Refused(Refusal),
}

/// Why a request with a used key may not run.
#[derive(Debug)]
pub enum Refusal {
    /// The key was used for another path (named).
    OtherPath(String),
    /// The key was used for the same path with another method, query or body.
    OtherRequest,
    /// The first request with the key has not finished.
    Running,
    /// The first request with the key failed between the claim and now.
    JustFailed,
}

/// Claims `key` for the request `path` with hash `hash`, or says why the request may not run.
pub async fn claim(
    db: &PgPool,
    user: Uuid,
    key: &str,
    path: &str,
    hash: &[u8],
) -> Result<Claim, sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_key WHERE created_at < now() - interval '24 hours'")
        .execute(db)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_key (user_id, key, method, path, request_hash)
         VALUES ($1, $2, 'POST', $3, $4)
         ON CONFLICT (user_id, key) DO NOTHING",
    )
    .bind(user)
    .bind(key)
    .bind(path)
    .bind(hash)
    .execute(db)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::First);
    }
    #[derive(sqlx::FromRow)]
    struct Record {
        path: String,
        request_hash: Option<Vec<u8>>,
        status: Option<i16>,
        content_type: Option<String>,
        body: Option<Vec<u8>>,
    }
    let record: Option<Record> = sqlx::query_as(
        "SELECT path, request_hash, status, content_type, body FROM idempotency_key
         WHERE user_id = $1 AND key = $2",
    )
    .bind(user)
    .bind(key)
    .fetch_optional(db)
    .await?;
    Ok(match record {
        // Deleted meanwhile: the first call failed.
        None => Claim::Refused(Refusal::JustFailed),
        Some(record) if record.path != path => Claim::Refused(Refusal::OtherPath(record.path)),
        // Records kept before hashes were recorded are at most a day old and matched by path.
        Some(record)
            if record
                .request_hash
                .as_ref()
                .is_some_and(|h| h.as_slice() != hash) =>
        {
            Claim::Refused(Refusal::OtherRequest)
        }
        Some(Record { status: None, .. }) => Claim::Refused(Refusal::Running),
        Some(Record {
            status: Some(status),
            content_type,
            body,
            ..
        }) => Claim::Replay(Kept {
            status,
            content_type,
            body: body.unwrap_or_default(),
        }),
    })
}

/// Keeps the successful result (status, content type, body) of the request that claimed `key`.
pub async fn keep(
    db: &PgPool,
    user: Uuid,
    key: &str,
    status: i16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_key SET status = $3, content_type = $4, body = $5 WHERE user_id = $1 AND key = $2",
    )
    .bind(user)
    .bind(key)
    .bind(status)
    .bind(content_type)
    .bind(body)
    .execute(db)
    .await?;
    Ok(())
}

/// Gives up the claim of a request that failed, so a retry with the key runs again.
pub async fn forget(db: &PgPool, user: Uuid, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_key WHERE user_id = $1 AND key = $2 AND status IS NULL")
        .bind(user)
        .bind(key)
        .execute(db)
        .await?;
    Ok(())
}
