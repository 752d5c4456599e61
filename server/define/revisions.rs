//! Blueprint revisions and their review: every save is a new revision; `draft → in_review →
//! approved`, the previously approved one becoming `superseded`. Transitions are guarded UPDATEs
//! (and a trigger refuses any other), so two reviewers approving at once give one approval.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::DefineError;
use super::blueprint::Blueprint;
use super::diff::diff;
use super::platforms::Platform;
use crate::audit::{self, Actor};
use crate::auth::{Principal, UserId};
use crate::inbox;
use crate::validation::FieldErrors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevisionState {
    Draft,
    InReview,
    Approved,
    Superseded,
}

impl RevisionState {
    pub fn as_str(self) -> &'static str {
        match self {
            RevisionState::Draft => "draft",
            RevisionState::InReview => "in_review",
            RevisionState::Approved => "approved",
            RevisionState::Superseded => "superseded",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RevisionState::Draft => "Draft",
            RevisionState::InReview => "In review",
            RevisionState::Approved => "Approved",
            RevisionState::Superseded => "Superseded",
        }
    }

    fn parse(text: &str) -> RevisionState {
        match text {
            "in_review" => RevisionState::InReview,
            "approved" => RevisionState::Approved,
            "superseded" => RevisionState::Superseded,
            _ => RevisionState::Draft,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    RequestChanges,
    Comment,
}

impl Verdict {
    pub fn parse(text: &str) -> Option<Verdict> {
        match text {
            "approve" => Some(Verdict::Approve),
            "request_changes" => Some(Verdict::RequestChanges),
            "comment" => Some(Verdict::Comment),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::RequestChanges => "request_changes",
            Verdict::Comment => "comment",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    pub number: i32,
    pub state: RevisionState,
    pub author: String,
    #[serde(skip)]
    pub author_id: Uuid,
    pub base_number: Option<i32>,
    pub document: Blueprint,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Review {
    pub reviewer: String,
    pub verdict: String,
    pub comment: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    number: i32,
    state: String,
    author: String,
    author_id: Uuid,
    base_number: Option<i32>,
    document: serde_json::Value,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    approved_at: Option<DateTime<Utc>>,
    approved_by: Option<String>,
}

impl Row {
    fn into_revision(self) -> Result<Revision, sqlx::Error> {
        let document =
            serde_json::from_value(self.document).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Revision {
            number: self.number,
            state: RevisionState::parse(&self.state),
            author: self.author,
            author_id: self.author_id,
            base_number: self.base_number,
            document,
            created_at: self.created_at,
            submitted_at: self.submitted_at,
            approved_at: self.approved_at,
            approved_by: self.approved_by,
        })
    }
}

const SELECT: &str =
    "SELECT r.number, r.state, a.name AS author, r.author_id, r.base_number, r.document,
        r.created_at, r.submitted_at, r.approved_at, ap.name AS approved_by
     FROM blueprint_revision r
     JOIN app_user a ON a.id = r.author_id
     LEFT JOIN app_user ap ON ap.id = r.approved_by";

fn subject(platform: &Platform, number: i32) -> String {
    format!("platform:{}/blueprint:{number}", platform.slug)
}

pub async fn get(
    db: impl sqlx::PgExecutor<'_>,
    platform: Uuid,
    number: i32,
) -> Result<Option<Revision>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE r.platform_id = $1 AND r.number = $2"
    )))
    .bind(platform)
    .bind(number)
    .fetch_optional(db)
    .await?;
    row.map(Row::into_revision).transpose()
}

pub async fn approved(db: &PgPool, platform: Uuid) -> Result<Option<Revision>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE r.platform_id = $1 AND r.state = 'approved'"
    )))
    .bind(platform)
    .fetch_optional(db)
    .await?;
    row.map(Row::into_revision).transpose()
}

/// Newest first; `approved_only` for callers who may not see drafts.
pub async fn list(
    db: &PgPool,
    platform: Uuid,
    approved_only: bool,
) -> Result<Vec<Revision>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE r.platform_id = $1 AND (NOT $2 OR r.state IN ('approved', 'superseded'))
         ORDER BY r.number DESC LIMIT 200"
    )))
    .bind(platform)
    .bind(approved_only)
    .fetch_all(db)
    .await?;
    rows.into_iter().map(Row::into_revision).collect()
}

/// The number of the platform's latest revision, the base of a document that replaces it.
pub async fn latest_number(db: &PgPool, platform: Uuid) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(number) FROM blueprint_revision WHERE platform_id = $1")
        .bind(platform)
        .fetch_one(db)
        .await
}

/// A new revision from the built-in template, adapted to the platform's scope, on top of the
/// latest one (the page's and the API's "from template").
pub async fn save_from_template(
    db: &PgPool,
    platform: &Platform,
    author: &Principal,
) -> Result<Revision, DefineError> {
    let scope = super::scope::load(db, platform.id).await?;
    let latest = latest_number(db, platform.id).await?;
    let document = Blueprint::from_template(&platform.slug, scope.as_ref());
    save(db, platform, author, latest, &document).await
}

pub async fn reviews(db: &PgPool, platform: Uuid, number: i32) -> Result<Vec<Review>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.name AS reviewer, v.verdict, v.comment, v.created_at FROM blueprint_review v
         JOIN app_user u ON u.id = v.reviewer_id
         WHERE v.platform_id = $1 AND v.number = $2 ORDER BY v.created_at, v.id",
    )
    .bind(platform)
    .bind(number)
    .fetch_all(db)
    .await
}

/// Saves `document` as the next revision, on top of `base` (the revision the author edited;
/// `None` for a new blueprint from the template). Saving on top of a stale revision is refused
/// with what changed meanwhile.
pub async fn save(
    db: &PgPool,
    platform: &Platform,
    author: &Principal,
    base: Option<i32>,
    document: &Blueprint,
) -> Result<Revision, DefineError> {
    if platform.archived_at.is_some() {
        return Err(DefineError::WrongState("part of an archived platform"));
    }
    let mut tx = db.begin().await?;
    // One save at a time per platform: numbers are dense and the stale check is exact.
    super::platforms::lock(&mut tx, platform.id).await?;
    let latest: Option<(i32, serde_json::Value)> = sqlx::query_as(
        "SELECT number, document FROM blueprint_revision WHERE platform_id = $1 ORDER BY number DESC LIMIT 1",
    )
    .bind(platform.id)
    .fetch_optional(&mut *tx)
    .await?;
    let new_document = document.to_json();
    if let (Some(base), Some((latest, latest_document))) = (base, &latest) {
        if base != *latest {
            return Err(DefineError::Stale {
                base,
                latest: *latest,
                changes: diff(&new_document, latest_document),
            });
        }
        if *latest_document == new_document {
            let mut errors = FieldErrors::default();
            errors.add(
                "document",
                format!("Nothing changed since revision {latest}."),
            );
            return Err(DefineError::Invalid(errors));
        }
    } else if let Some(base) = base {
        return Err(DefineError::Stale {
            base,
            latest: 0,
            changes: Vec::new(),
        });
    }
    let number = latest.as_ref().map_or(1, |(n, _)| n + 1);
    sqlx::query(
        "INSERT INTO blueprint_revision (platform_id, number, author_id, base_number, document)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(platform.id)
    .bind(number)
    .bind(author.user.id.0)
    .bind(latest.as_ref().map(|(n, _)| *n))
    .bind(&new_document)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        &Actor::from(author),
        "blueprint.saved",
        &subject(platform, number),
        json!({ "base": base }),
    )
    .await?;
    tx.commit().await?;
    get(db, platform.id, number)
        .await?
        .ok_or(DefineError::NotFound)
}

/// Explains a refused guarded update: the revision is missing, or in another state.
async fn wrong_state(db: &PgPool, platform: Uuid, number: i32) -> DefineError {
    match get(db, platform, number).await {
        Ok(Some(r)) => DefineError::WrongState(r.state.label()),
        Ok(None) => DefineError::NotFound,
        Err(e) => e.into(),
    }
}

/// `draft → in_review`.
pub async fn submit(
    db: &PgPool,
    platform: &Platform,
    number: i32,
    by: &Principal,
) -> Result<(), DefineError> {
    if platform.archived_at.is_some() {
        return Err(DefineError::WrongState("part of an archived platform"));
    }
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "UPDATE blueprint_revision SET state = 'in_review', submitted_at = now()
         WHERE platform_id = $1 AND number = $2 AND state = 'draft'",
    )
    .bind(platform.id)
    .bind(number)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(wrong_state(db, platform.id, number).await);
    }
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "blueprint.submitted",
        &subject(platform, number),
        json!({}),
    )
    .await?;
    let reviewers = reviewers(&mut tx, platform.id, number, by.user.id.0).await?;
    inbox::tell(
        &mut tx,
        &reviewers,
        "blueprint_submitted",
        &format!(
            "Blueprint revision {number} of {} waits for your review.",
            platform.name
        ),
        &page(platform, number),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A review. `approve` moves `in_review → approved` (never by the author) and supersedes the
/// previously approved revision, in one transaction.
pub async fn review(
    db: &PgPool,
    platform: &Platform,
    number: i32,
    reviewer: &Principal,
    verdict: Verdict,
    comment: &str,
) -> Result<(), DefineError> {
    if comment.chars().count() > 10_000 {
        let mut errors = FieldErrors::default();
        errors.add("comment", "Keep the comment under 10,000 characters.");
        return Err(DefineError::Invalid(errors));
    }
    if verdict == Verdict::RequestChanges && comment.trim().is_empty() {
        let mut errors = FieldErrors::default();
        errors.add("comment", "Say what should change.");
        return Err(DefineError::Invalid(errors));
    }
    if platform.archived_at.is_some() {
        return Err(DefineError::WrongState("part of an archived platform"));
    }
    let revision = get(db, platform.id, number)
        .await?
        .ok_or(DefineError::NotFound)?;
    let mut tx = db.begin().await?;
    if verdict == Verdict::Approve {
        if revision.author_id == reviewer.user.id.0 {
            return Err(DefineError::SelfApproval);
        }
        sqlx::query(
            "UPDATE blueprint_revision SET state = 'superseded'
             WHERE platform_id = $1 AND state = 'approved' AND number <> $2",
        )
        .bind(platform.id)
        .bind(number)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE blueprint_revision SET state = 'approved', approved_at = now(), approved_by = $3
             WHERE platform_id = $1 AND number = $2 AND state = 'in_review'",
        )
        .bind(platform.id)
        .bind(number)
        .bind(reviewer.user.id.0)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            drop(tx);
            return Err(wrong_state(db, platform.id, number).await);
        }
    } else if verdict == Verdict::RequestChanges && revision.state != RevisionState::InReview {
        return Err(DefineError::WrongState(revision.state.label()));
    }
    sqlx::query(
        "INSERT INTO blueprint_review (id, platform_id, number, reviewer_id, verdict, comment)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::new_v4())
    .bind(platform.id)
    .bind(number)
    .bind(reviewer.user.id.0)
    .bind(verdict.as_str())
    .bind(comment.trim())
    .execute(&mut *tx)
    .await?;
    let action = match verdict {
        Verdict::Approve => "blueprint.approved",
        Verdict::RequestChanges => "blueprint.changes_requested",
        Verdict::Comment => "blueprint.commented",
    };
    audit::record(
        &mut *tx,
        &Actor::from(reviewer),
        action,
        &subject(platform, number),
        json!({}),
    )
    .await?;
    if revision.author_id != reviewer.user.id.0 {
        let what = match verdict {
            Verdict::Approve => "approved",
            Verdict::RequestChanges => "asked for changes to",
            Verdict::Comment => "commented on",
        };
        inbox::tell(
            &mut tx,
            &[revision.author_id],
            action.trim_start_matches("blueprint."),
            &format!(
                "{} {what} blueprint revision {number} of {}.",
                reviewer.user.name, platform.name
            ),
            &page(platform, number),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The revision's page, where notifications about it link.
fn page(platform: &Platform, number: i32) -> String {
    format!("/platforms/{}/blueprints/{number}", platform.slug)
}

/// Who should review a submitted revision: the platform's member platform engineers, or, when
/// none but its author and submitter is one, the platform engineers who are admins (they may
/// review on every platform). Never the author (who may not approve) or the submitter.
async fn reviewers(
    tx: &mut PgConnection,
    platform: Uuid,
    number: i32,
    submitter: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH candidate AS (
             SELECT u.id, 'admin' = ANY (u.roles) AS admin,
                    EXISTS (SELECT 1 FROM platform_member m
                            WHERE m.platform_id = $1 AND m.user_id = u.id) AS member
             FROM app_user u
             WHERE 'platform_engineer' = ANY (u.roles) AND u.id <> $3
               AND u.id <> (SELECT author_id FROM blueprint_revision
                            WHERE platform_id = $1 AND number = $2)
         )
         SELECT id FROM candidate
         WHERE member OR (admin AND NOT EXISTS (SELECT 1 FROM candidate WHERE member))",
    )
    .bind(platform)
    .bind(number)
    .bind(submitter)
    .fetch_all(tx)
    .await
}

/// Who wrote a revision, for the policy's "not the author" rule.
pub fn author_of(revision: &Revision) -> UserId {
    UserId(revision.author_id)
}
