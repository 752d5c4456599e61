//! Users and their roles, and the SQL that serves them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::RoleSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct UserId(pub Uuid);

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub roles: RoleSet,
    /// Signs in through the identity provider, not with a password.
    pub sso: bool,
    /// Invited, and has not set a password yet.
    pub pending: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// A user as stored: read with [`COLUMNS`], also joined into the session and token lookups.
#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    roles: Vec<String>,
    has_password: bool,
    sso: bool,
    created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: UserId(r.id),
            email: r.email,
            name: r.name,
            roles: RoleSet::from_strings(&r.roles),
            sso: r.sso,
            pending: !r.sso && !r.has_password,
            created_at: r.created_at,
            last_login_at: r.last_login_at,
        }
    }
}

pub(super) const COLUMNS: &str = "id, email, name, roles, password_hash IS NOT NULL AS has_password, \
                       oidc_subject IS NOT NULL AS sso, created_at, last_login_at";

pub async fn find(db: impl PgExecutor<'_>, id: UserId) -> Result<Option<User>, sqlx::Error> {
    let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM app_user WHERE id = $1"
    )))
    .bind(id.0)
    .fetch_optional(db)
    .await?;
    Ok(row.map(User::from))
}

/// A local (password) user by e-mail, case-insensitively, with the password hash.
pub async fn find_local_by_email(
    db: &PgPool,
    email: &str,
) -> Result<Option<(User, Option<String>)>, sqlx::Error> {
    let found: Option<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT id, password_hash FROM app_user WHERE lower(email) = lower($1) AND oidc_subject IS NULL",
    )
    .bind(email)
    .fetch_optional(db)
    .await?;
    let Some((id, hash)) = found else {
        return Ok(None);
    };
    Ok(find(db, UserId(id)).await?.map(|u| (u, hash)))
}

pub async fn find_by_email(db: &PgPool, email: &str) -> Result<Option<User>, sqlx::Error> {
    let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM app_user WHERE lower(email) = lower($1) \
         ORDER BY oidc_subject IS NULL DESC, created_at LIMIT 1"
    )))
    .bind(email)
    .fetch_optional(db)
    .await?;
    Ok(row.map(User::from))
}

pub async fn count(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM app_user")
        .fetch_one(db)
        .await
}

/// A new local user. `password_hash` is `None` for an invited user who sets it through a link.
pub async fn create_local(
    db: impl PgExecutor<'_>,
    email: &str,
    name: &str,
    roles: &RoleSet,
    password_hash: Option<&str>,
) -> Result<UserId, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO app_user (id, email, name, roles, password_hash) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(email)
    .bind(name)
    .bind(roles.to_strings())
    .bind(password_hash)
    .execute(db)
    .await?;
    Ok(UserId(id))
}

/// Creates or updates the single-sign-on user for `issuer` + `subject`, with the roles the
/// identity provider's groups grant now and the groups themselves (team membership reads
/// them). Returns the user and the roles it had before.
pub async fn upsert_sso(
    db: impl PgExecutor<'_>,
    issuer: &str,
    subject: &str,
    email: &str,
    name: &str,
    roles: &RoleSet,
    groups: &[String],
) -> Result<(UserId, RoleSet), sqlx::Error> {
    // The first 500 are kept: more is an identity provider sending every group it knows.
    let groups = &groups[..groups.len().min(500)];
    let (id, before): (Uuid, Option<Vec<String>>) = sqlx::query_as(
        "WITH previous AS (
             SELECT roles FROM app_user WHERE oidc_issuer = $1 AND oidc_subject = $2
         )
         INSERT INTO app_user (id, email, name, roles, oidc_issuer, oidc_subject, last_login_at,
                               oidc_groups)
         VALUES ($3, $4, $5, $6, $1, $2, now(), $7)
         ON CONFLICT (oidc_issuer, oidc_subject) WHERE oidc_subject IS NOT NULL
         DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, roles = EXCLUDED.roles,
                       oidc_groups = EXCLUDED.oidc_groups, last_login_at = now()
         RETURNING id, (SELECT roles FROM previous)",
    )
    .bind(issuer)
    .bind(subject)
    .bind(Uuid::new_v4())
    .bind(email)
    .bind(name)
    .bind(roles.to_strings())
    .bind(groups)
    .fetch_one(db)
    .await?;
    Ok((
        UserId(id),
        RoleSet::from_strings(&before.unwrap_or_default()),
    ))
}

pub async fn set_password(
    db: impl PgExecutor<'_>,
    id: UserId,
    name: &str,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE app_user SET password_hash = $2, name = $3 WHERE id = $1")
        .bind(id.0)
        .bind(password_hash)
        .bind(name)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn record_login(db: impl PgExecutor<'_>, id: UserId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE app_user SET last_login_at = now() WHERE id = $1")
        .bind(id.0)
        .execute(db)
        .await?;
    Ok(())
}

/// Why a role change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoleChangeError {
    #[error("this is the last admin: give another user the admin role first")]
    LastAdmin,
    #[error("roles of single-sign-on users come from their identity provider's groups")]
    SsoManaged,
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Sets a local user's roles, refusing to remove the last admin. Returns the roles before.
pub async fn set_roles(
    db: &PgPool,
    id: UserId,
    roles: &RoleSet,
) -> Result<RoleSet, RoleChangeError> {
    let mut tx = db.begin().await?;
    // Serialise role changes, so two admins demoting each other cannot both succeed.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('slipway.role_change'))")
        .execute(&mut *tx)
        .await?;
    let current: Option<(Vec<String>, bool)> = sqlx::query_as(
        "SELECT roles, oidc_subject IS NOT NULL FROM app_user WHERE id = $1 FOR UPDATE",
    )
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?;
    let (before, sso) = current.ok_or(RoleChangeError::NotFound)?;
    if sso {
        return Err(RoleChangeError::SsoManaged);
    }
    let before = RoleSet::from_strings(&before);
    if before.contains(super::Role::Admin) && !roles.contains(super::Role::Admin) {
        let other_admins: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM app_user WHERE 'admin' = ANY(roles) AND id <> $1",
        )
        .bind(id.0)
        .fetch_one(&mut *tx)
        .await?;
        if other_admins == 0 {
            return Err(RoleChangeError::LastAdmin);
        }
    }
    sqlx::query("UPDATE app_user SET roles = $2 WHERE id = $1")
        .bind(id.0)
        .bind(roles.to_strings())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(before)
}

/// One page of users, oldest first, after the keyset cursor `(created_at, id)`.
pub async fn list(
    db: &PgPool,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<User>, sqlx::Error> {
    let (at, id) = after.unzip();
    let rows: Vec<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM app_user
         WHERE $1::timestamptz IS NULL OR (created_at, id) > ($1, $2)
         ORDER BY created_at, id LIMIT $3"
    )))
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(User::from).collect())
}
