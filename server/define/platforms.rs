//! Platforms (one delivery engagement each), their members, and the SQL that serves them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use serde_json::json;

use super::DefineError;
use crate::audit::{self, Actor};
use crate::auth::{Principal, UserId};
use crate::validation::FieldErrors;
use crate::validation::is_dns_label;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Platform {
    #[serde(skip)]
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub owner_team: String,
    pub created_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

/// A platform as one caller sees it: whether they are a member decides what they may do.
#[derive(Debug, Clone)]
pub struct PlatformAccess {
    pub platform: Platform,
    pub is_member: bool,
}

/// The fields of a new platform, as typed.
pub struct NewPlatform<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub owner_team: &'a str,
}

impl NewPlatform<'_> {
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::default();
        if !is_dns_label(self.slug) {
            errors.add("slug", "Use lowercase letters, digits and dashes, starting with a letter (at most 40), e.g. payments.");
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            errors.add("name", "Give the platform a name of 1–100 characters.");
        }
        if self.description.chars().count() > 2000 {
            errors.add("description", "Keep the description under 2000 characters.");
        }
        if self.owner_team.trim().is_empty() || self.owner_team.chars().count() > 100 {
            errors.add("owner_team", "Name the team that owns the platform.");
        }
        errors.into_result()
    }
}

const COLUMNS: &str = "id, slug, name, description, owner_team, created_at, archived_at";

/// Creates the platform with its creator as the first member. A taken slug is a field error.
pub async fn create(
    db: &PgPool,
    new: &NewPlatform<'_>,
    by: &Principal,
) -> Result<Platform, DefineError> {
    new.validate()?;
    let mut tx = db.begin().await?;
    let inserted: Result<Platform, sqlx::Error> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO platform (id, slug, name, description, owner_team, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(new.slug)
    .bind(new.name.trim())
    .bind(new.description.trim())
    .bind(new.owner_team.trim())
    .bind(by.user.id.0)
    .fetch_one(&mut *tx)
    .await;
    let platform = match inserted {
        Ok(p) => p,
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("platform_slug_key") => {
            let mut errors = FieldErrors::default();
            errors.add(
                "slug",
                format!("Another platform already uses `{}`.", new.slug),
            );
            return Err(errors.into());
        }
        Err(e) => return Err(e.into()),
    };
    add_member(&mut *tx, platform.id, by.user.id).await?;
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "platform.created",
        &format!("platform:{}", platform.slug),
        json!({ "name": platform.name }),
    )
    .await?;
    tx.commit().await?;
    Ok(platform)
}

/// Who is to become a member: a user named by e-mail address (the page's form) or by id.
pub enum NewMember<'a> {
    Email(&'a str),
    Id(UserId),
}

/// Adds a user to the platform's members; `Ok((member, false))` when they already were one.
/// An unknown user is a field error naming how they were given (`email` or `user_id`).
pub async fn add_member_as(
    db: &PgPool,
    platform: &Platform,
    who: NewMember<'_>,
    by: &Principal,
) -> Result<(Member, bool), DefineError> {
    if platform.archived_at.is_some() {
        return Err(DefineError::Archived);
    }
    let (user, field) = match who {
        NewMember::Email(email) => (
            crate::auth::users::find_by_email(db, email.trim()).await?,
            "email",
        ),
        NewMember::Id(id) => (crate::auth::users::find(db, id).await?, "user_id"),
    };
    let Some(user) = user else {
        let mut errors = FieldErrors::default();
        errors.add(
            field,
            if field == "email" {
                "No Slipway user has this e-mail address; invite them first."
            } else {
                "No Slipway user has this id."
            },
        );
        return Err(errors.into());
    };
    let mut tx = db.begin().await?;
    let added = add_member(&mut *tx, platform.id, user.id).await?;
    if added {
        audit::record(
            &mut *tx,
            &Actor::from(by),
            "platform.member_added",
            &format!("platform:{}", platform.slug),
            json!({ "user": user.email }),
        )
        .await?;
    }
    tx.commit().await?;
    let member = Member {
        user_id: user.id.0,
        email: user.email,
        name: user.name,
    };
    Ok((member, added))
}

pub async fn remove_member_by_id(
    db: &PgPool,
    platform: &Platform,
    user: UserId,
    by: &Principal,
) -> Result<bool, DefineError> {
    let mut tx = db.begin().await?;
    let removed = remove_member(&mut *tx, platform.id, user).await?;
    if removed {
        audit::record(
            &mut *tx,
            &Actor::from(by),
            "platform.member_removed",
            &format!("platform:{}", platform.slug),
            json!({ "user": user }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(removed)
}

pub async fn add_member(
    db: impl PgExecutor<'_>,
    platform: Uuid,
    user: UserId,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO platform_member (platform_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(platform)
    .bind(user.0)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remove_member(
    db: impl PgExecutor<'_>,
    platform: Uuid,
    user: UserId,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM platform_member WHERE platform_id = $1 AND user_id = $2")
        .bind(platform)
        .bind(user.0)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The platform with `slug` as `user` sees it.
pub async fn find(
    db: &PgPool,
    slug: &str,
    user: UserId,
) -> Result<Option<PlatformAccess>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        platform: Platform,
        is_member: bool,
    }
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, EXISTS (SELECT 1 FROM platform_member m WHERE m.platform_id = p.id AND m.user_id = $2) AS is_member
         FROM platform p WHERE slug = $1"
    )))
    .bind(slug)
    .bind(user.0)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| PlatformAccess {
        platform: r.platform,
        is_member: r.is_member,
    }))
}

/// Platforms by name, archived ones last; keyset after `(archived, name, id)` is not needed at
/// the scale of platforms (tens), so the list is capped.
pub async fn list(db: &PgPool, include_archived: bool) -> Result<Vec<Platform>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM platform WHERE $1 OR archived_at IS NULL
         ORDER BY archived_at IS NOT NULL, lower(name), id LIMIT 500"
    )))
    .bind(include_archived)
    .fetch_all(db)
    .await
}

/// Platforms whose name, slug or description contains `words`, live ones first. Platforms are
/// tens, so a scan is cheaper than an index would be.
pub async fn search(db: &PgPool, words: &str, limit: i64) -> Result<Vec<Platform>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM platform WHERE (name || ' ' || slug || ' ' || description) ILIKE $1
         ORDER BY archived_at IS NOT NULL, lower(name), id LIMIT $2"
    )))
    .bind(crate::db::contains_pattern(words))
    .bind(limit)
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
}

/// Whether `user` is a member of the platform.
pub async fn is_member(db: &PgPool, platform: Uuid, user: UserId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM platform_member WHERE platform_id = $1 AND user_id = $2)",
    )
    .bind(platform)
    .bind(user.0)
    .fetch_one(db)
    .await
}

pub async fn members(db: &PgPool, platform: Uuid) -> Result<Vec<Member>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id AS user_id, u.email, u.name FROM platform_member m JOIN app_user u ON u.id = m.user_id
         WHERE m.platform_id = $1 ORDER BY lower(u.name), u.id",
    )
    .bind(platform)
    .fetch_all(db)
    .await
}

/// Takes the platform's row lock for the rest of `tx`: changes to one platform's blueprint and
/// backlog happen one at a time (dense revision numbers, exact stale and cycle checks).
pub async fn lock(tx: &mut sqlx::PgConnection, platform: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM platform WHERE id = $1 FOR UPDATE")
        .bind(platform)
        .execute(tx)
        .await?;
    Ok(())
}

/// Archives the platform: it leaves the list and no longer changes.
pub async fn archive(db: &PgPool, platform: &Platform, by: &Principal) -> Result<(), DefineError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "UPDATE platform SET archived_at = now() WHERE id = $1 AND archived_at IS NULL",
    )
    .bind(platform.id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DefineError::Archived);
    }
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "platform.archived",
        &format!("platform:{}", platform.slug),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
