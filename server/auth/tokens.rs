//! API tokens for the JSON API and automation: `slw_` + 256 random bits, shown once, stored
//! hashed, scoped to a subset of the owner's roles, with expiry, last use and revocation.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::{AuthMethod, Principal, RoleSet, User, UserId, random_secret, secret_hash, users};

pub const PREFIX: &str = "slw_";
/// `last_used_at` is written at most this often per token.
const TOUCH_EVERY_SECONDS: i64 = 60;

#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub roles: RoleSet,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > Utc::now())
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: Uuid,
    name: String,
    prefix: String,
    roles: Vec<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenRow> for ApiToken {
    fn from(r: TokenRow) -> Self {
        ApiToken {
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            roles: RoleSet::from_strings(&r.roles),
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// Creates a token and returns it with its secret value, which is never shown again.
pub async fn create(
    db: impl PgExecutor<'_>,
    owner: UserId,
    name: &str,
    roles: &RoleSet,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(ApiToken, String), sqlx::Error> {
    let secret = format!("{PREFIX}{}", random_secret());
    let prefix: String = secret.chars().take(PREFIX.len() + 6).collect();
    let row: TokenRow = sqlx::query_as(
        "INSERT INTO api_token (id, user_id, name, token_hash, prefix, roles, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, name, prefix, roles, created_at, expires_at, last_used_at, revoked_at",
    )
    .bind(Uuid::new_v4())
    .bind(owner.0)
    .bind(name)
    .bind(secret_hash(&secret))
    .bind(&prefix)
    .bind(roles.to_strings())
    .bind(expires_at)
    .fetch_one(db)
    .await?;
    Ok((row.into(), secret))
}

/// The caller behind a bearer token, if it is live. Its roles are the token's scope narrowed
/// to what the owner holds now.
pub async fn resolve(db: &PgPool, secret: &str) -> Result<Option<Principal>, sqlx::Error> {
    if !secret.starts_with(PREFIX) {
        return Ok(None);
    }
    #[derive(sqlx::FromRow)]
    struct Live {
        token_id: Uuid,
        scope: Vec<String>,
        last_used_at: Option<DateTime<Utc>>,
        #[sqlx(flatten)]
        user: users::UserRow,
    }
    // The token and its user in one round trip: this runs before every API call.
    let row: Option<Live> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT t.id AS token_id, t.roles AS scope, t.last_used_at, u.* FROM api_token t,
             LATERAL (SELECT {} FROM app_user WHERE app_user.id = t.user_id) u
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL
           AND (t.expires_at IS NULL OR t.expires_at > now())",
        users::COLUMNS
    )))
    .bind(secret_hash(secret))
    .fetch_optional(db)
    .await?;
    let Some(Live {
        token_id,
        scope,
        last_used_at: last_used,
        user,
    }) = row
    else {
        return Ok(None);
    };
    let user = User::from(user);
    if last_used.is_none_or(|t| (Utc::now() - t).num_seconds() >= TOUCH_EVERY_SECONDS) {
        sqlx::query("UPDATE api_token SET last_used_at = now() WHERE id = $1")
            .bind(token_id)
            .execute(db)
            .await?;
    }
    Ok(Some(Principal {
        roles: RoleSet::from_strings(&scope).intersection(&user.roles),
        user,
        method: AuthMethod::ApiToken { token_id },
    }))
}

pub async fn list_for(db: &PgPool, owner: UserId) -> Result<Vec<ApiToken>, sqlx::Error> {
    let rows: Vec<TokenRow> = sqlx::query_as(
        "SELECT id, name, prefix, roles, created_at, expires_at, last_used_at, revoked_at
         FROM api_token WHERE user_id = $1 ORDER BY created_at DESC LIMIT 200",
    )
    .bind(owner.0)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(ApiToken::from).collect())
}

/// Revokes one of `owner`'s tokens; `None` when there is no such live token of theirs.
pub async fn revoke(db: &PgPool, owner: UserId, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE api_token SET revoked_at = now()
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING name",
    )
    .bind(id)
    .bind(owner.0)
    .fetch_optional(db)
    .await
}
