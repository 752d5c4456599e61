//! Which single-sign-on groups give which roles: the `oidc_role_map` setting until an admin
//! edits the mapping on the *Single sign-on* page; from then on the edited mapping, kept in the
//! database (the same for every replica) until reset, each change audited with before and after.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

use super::oidc::RoleMapping;
use super::{Principal, Role};
use crate::audit::{self, Actor};
use crate::validation::{FieldErrors, TextKind, check_text};

/// Where the mapping in force comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The `oidc_role_map` setting (nobody edited it here).
    Configuration,
    /// Edited on the page.
    Edited { by: String, at: DateTime<Utc> },
}

#[derive(Debug, Clone)]
pub struct RoleMap {
    pub mapping: Vec<RoleMapping>,
    pub source: Source,
}

/// One stored entry.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    group: String,
    role: Role,
}

impl RoleMapping {
    /// `group=role` (the setting's form and a line of the page's).
    pub fn parse(pair: &str) -> Result<RoleMapping, String> {
        let Some((group, role)) = pair.rsplit_once('=') else {
            return Err(format!(
                "write `group = role`, e.g. `platform-team = platform_engineer` (got `{}`)",
                pair.trim()
            ));
        };
        let group = group.trim();
        if group.is_empty() || group.chars().count() > 200 {
            return Err("name the group (1–200 characters) before the `=`".into());
        }
        let role = Role::parse(role.trim()).ok_or_else(|| {
            format!(
                "`{}` is not a role: use developer, platform_engineer or admin",
                role.trim()
            )
        })?;
        Ok(RoleMapping {
            group: group.to_owned(),
            role,
        })
    }
}

/// The mapping in force: the edited one if there is one, else `configured`.
pub async fn in_force(db: &PgPool, configured: &[RoleMapping]) -> Result<RoleMap, sqlx::Error> {
    let edited: Option<(sqlx::types::Json<Vec<Entry>>, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT m.mapping, u.name, m.updated_at FROM sso_role_map m
         JOIN app_user u ON u.id = m.updated_by",
    )
    .fetch_optional(db)
    .await?;
    Ok(match edited {
        Some((mapping, by, at)) => RoleMap {
            mapping: mapping
                .0
                .into_iter()
                .map(|e| RoleMapping {
                    group: e.group,
                    role: e.role,
                })
                .collect(),
            source: Source::Edited { by, at },
        },
        None => RoleMap {
            mapping: configured.to_vec(),
            source: Source::Configuration,
        },
    })
}

/// The page's text: one `group = role` per line; blank lines and `#` comments are skipped.
/// Errors name the line.
pub fn parse(text: &str) -> Result<Vec<RoleMapping>, FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut mapping: Vec<RoleMapping> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = check_text(line, TextKind::SingleLine).and_then(|()| RoleMapping::parse(line));
        match entry {
            Ok(entry) if mapping.contains(&entry) => {
                errors.add(
                    "mapping",
                    format!("Line {}: this line is there twice.", n + 1),
                );
            }
            Ok(entry) => mapping.push(entry),
            Err(message) => errors.add("mapping", format!("Line {}: {message}.", n + 1)),
        }
        if !errors.is_empty() {
            break;
        }
    }
    if errors.is_empty() && mapping.len() > 200 {
        errors.add("mapping", "Keep it to at most 200 lines.");
    }
    errors.into_result().map(|()| mapping)
}

/// The text the page shows for `mapping`.
pub fn to_text(mapping: &[RoleMapping]) -> String {
    mapping
        .iter()
        .map(|m| format!("{} = {}\n", m.group, m.role.as_str()))
        .collect()
}

fn entries(mapping: &[RoleMapping]) -> serde_json::Value {
    serde_json::to_value(
        mapping
            .iter()
            .map(|m| Entry {
                group: m.group.clone(),
                role: m.role,
            })
            .collect::<Vec<_>>(),
    )
    .expect("entries serialise")
}

/// Puts `mapping` in force for every later sign-in, audited with what it replaced.
pub async fn save(
    db: &PgPool,
    configured: &[RoleMapping],
    mapping: &[RoleMapping],
    by: &Principal,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    // One change at a time, so the audited "before" is what the change replaced.
    sqlx::query("LOCK TABLE sso_role_map IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let before: Option<sqlx::types::Json<serde_json::Value>> =
        sqlx::query_scalar("SELECT mapping FROM sso_role_map")
            .fetch_optional(&mut *tx)
            .await?;
    let before = before.map_or_else(|| entries(configured), |b| b.0);
    let after = entries(mapping);
    sqlx::query(
        "INSERT INTO sso_role_map (mapping, updated_by) VALUES ($1, $2)
         ON CONFLICT (singleton) DO UPDATE SET mapping = $1, updated_by = $2, updated_at = now()",
    )
    .bind(&after)
    .bind(by.user.id.0)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "auth.sso_role_map_changed",
        "sso:role_map",
        json!({"before": before, "after": after}),
    )
    .await?;
    tx.commit().await
}

/// Puts the `oidc_role_map` setting back in force; whether an edited mapping was removed.
pub async fn reset(
    db: &PgPool,
    configured: &[RoleMapping],
    by: &Principal,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let removed: Option<sqlx::types::Json<serde_json::Value>> =
        sqlx::query_scalar("DELETE FROM sso_role_map RETURNING mapping")
            .fetch_optional(&mut *tx)
            .await?;
    let Some(before) = removed else {
        return Ok(false);
    };
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "auth.sso_role_map_reset",
        "sso:role_map",
        json!({"before": before.0, "after": entries(configured)}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_mappings_and_mistakes_name_their_line() {
        let mapping =
            parse("# groups\nadmins = admin\n\nplatform-team=platform_engineer\n").unwrap();
        assert_eq!(
            to_text(&mapping),
            "admins = admin\nplatform-team = platform_engineer\n"
        );
        for (text, message) in [
            (
                "admins = admin\nadmins = root",
                "Line 2: `root` is not a role",
            ),
            ("admins", "Line 1: write `group = role`"),
            (" = admin", "Line 1: name the group"),
            ("a = admin\na = admin", "Line 2: this line is there twice"),
            (
                "a\u{7}b = admin",
                "Line 1: Remove the control character U+0007",
            ),
        ] {
            let errors = parse(text).unwrap_err();
            let got = errors.get("mapping").unwrap();
            assert!(got.starts_with(message), "{text:?}: {got}");
        }
    }
}
