//! The append-only audit log: who did what to which subject. Written inside the transaction of
//! the change it records where there is one; read with filters and keyset pagination.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};

use crate::auth::{Principal, UserId};

/// Who acted: a user, or Slipway itself.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: Option<UserId>,
    pub label: String,
}

impl Actor {
    pub fn system() -> Self {
        Actor {
            id: None,
            label: "system".into(),
        }
    }

    pub fn user(id: UserId, email: &str) -> Self {
        Actor {
            id: Some(id),
            label: email.to_owned(),
        }
    }

    /// Someone not signed in, known only by what they typed (failed sign-ins).
    pub fn anonymous(claimed: &str) -> Self {
        Actor {
            id: None,
            label: format!(
                "anonymous ({})",
                claimed.chars().take(200).collect::<String>()
            ),
        }
    }
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        Actor::user(p.user.id, &p.user.email)
    }
}

/// Appends one event. `details` must never hold secrets (passwords, tokens, codes). It is
/// free-form by contract (each action has its own keys, and `GET /api/v1/audit` shows them as
/// they are), which is why callers build it with `json!`.
pub async fn record(
    db: impl PgExecutor<'_>,
    actor: &Actor,
    action: &str,
    subject: &str,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_event (actor_id, actor_label, action, subject, details)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(actor.id.map(|id| id.0))
    .bind(&actor.label)
    .bind(action)
    .bind(subject)
    .bind(details)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<uuid::Uuid>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: serde_json::Value,
}

/// Filters of the audit page and `GET /api/v1/audit`; empty means any.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The subject as stored (`kind:id`, e.g. `environment:…`) or its id alone.
    pub subject: Option<String>,
    /// The actor's e-mail (or label), case-insensitive.
    pub actor: Option<String>,
    /// An action or an action prefix ending in `.`, e.g. `auth.`.
    pub action: Option<String>,
}

/// Newest first, before the keyset cursor `(at, id)`.
pub async fn list(
    db: &PgPool,
    filter: &Filter,
    before: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    let (at, id) = before.unzip();
    let action_prefix = filter.action.as_deref().map(|a| {
        if a.ends_with('.') {
            format!("{a}%")
        } else {
            a.to_owned()
        }
    });
    sqlx::query_as(
        "SELECT id, at, actor_id, actor_label AS actor, action, subject, details FROM audit_event
         WHERE ($1::timestamptz IS NULL OR (at, id) < ($1, $2))
           AND ($3::text IS NULL OR subject = $3 OR substr(subject, strpos(subject, ':') + 1) = $3)
           AND ($4::text IS NULL OR lower(actor_label) = lower($4))
           AND ($5::text IS NULL OR action LIKE $5)
         ORDER BY at DESC, id DESC
         LIMIT $6",
    )
    .bind(at)
    .bind(id)
    .bind(&filter.subject)
    .bind(&filter.actor)
    .bind(action_prefix)
    .bind(limit)
    .fetch_all(db)
    .await
}
