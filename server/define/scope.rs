//! The technical scope: goals and constraints, and the Define timebox that follows from its
//! complexity (2–4 weeks standard, 4–8 weeks novel).

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::validation::FieldErrors;
use crate::validation::is_region;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectedService {
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub notes: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    Standard,
    Novel,
}

/// The technical scope, as `PUT …/scope` takes it and the scope form fills it: both save it
/// through [`save`], which checks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    pub goals: Vec<String>,
    /// `aws` now; the field exists so other vendors can follow.
    pub cloud: String,
    pub regions: Vec<String>,
    #[serde(default)]
    pub connected_services: Vec<ConnectedService>,
    /// Security and compliance requirements.
    #[serde(default)]
    pub security: Vec<String>,
    pub complexity: Complexity,
    pub define_started_on: NaiveDate,
}

/// The Define timebox at a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Timebox {
    pub min_weeks: i64,
    pub max_weeks: i64,
    pub elapsed_days: i64,
    /// Past the upper bound: time to take a hard look at the constraints.
    pub overrun: bool,
}

impl Scope {
    pub fn timebox(&self, today: NaiveDate) -> Timebox {
        let (min_weeks, max_weeks) = match self.complexity {
            Complexity::Standard => (2, 4),
            Complexity::Novel => (4, 8),
        };
        let elapsed_days = (today - self.define_started_on).num_days().max(0);
        Timebox {
            min_weeks,
            max_weeks,
            elapsed_days,
            overrun: elapsed_days > max_weeks * 7,
        }
    }

    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::default();
        if self.goals.iter().all(|g| g.trim().is_empty()) {
            errors.add(
                "goals",
                "Write at least one goal: what must the platform achieve?",
            );
        }
        for (i, goal) in self.goals.iter().enumerate() {
            if goal.chars().count() > 500 {
                errors.add(
                    &format!("goals[{i}]"),
                    "Keep each goal under 500 characters.",
                );
            }
        }
        if self.cloud != "aws" {
            errors.add("cloud", "Only `aws` is supported for now.");
        }
        if self.regions.is_empty() {
            errors.add(
                "regions",
                "Name at least one AWS region, such as eu-west-1.",
            );
        }
        for (i, region) in self.regions.iter().enumerate() {
            if !is_region(region) {
                errors.add(
                    &format!("regions[{i}]"),
                    format!("`{region}` is not an AWS region such as eu-west-1."),
                );
            }
        }
        check_connected_services(&mut errors, &self.connected_services);
        check_requirements(&mut errors, "security", &self.security);
        errors.into_result()
    }
}

/// Every connected service needs a name of its own; the endpoint is one address, no spaces
/// (scope and blueprint alike).
pub fn check_connected_services(errors: &mut FieldErrors, services: &[ConnectedService]) {
    let mut names = BTreeSet::new();
    for (i, service) in services.iter().enumerate() {
        let at = |field: &str| format!("connected_services[{i}].{field}");
        let name = service.name.trim();
        if name.is_empty() {
            errors.add(&at("name"), "Give the service a name.");
        } else if !names.insert(name.to_lowercase()) {
            errors.add(
                &at("name"),
                format!("Another connected service is already called `{name}`."),
            );
        }
        if service.endpoint.trim().contains(char::is_whitespace) {
            errors.add(
                &at("endpoint"),
                "Give one address without spaces, e.g. https://ledger.internal or kafka.internal:9092.",
            );
        }
        for (field, text, max) in [
            ("name", &service.name, 100),
            ("kind", &service.kind, 100),
            ("endpoint", &service.endpoint, 500),
            ("notes", &service.notes, 1000),
        ] {
            if text.chars().count() > max {
                errors.add(&at(field), format!("Keep it to {max} characters."));
            }
        }
    }
}

/// Security and compliance requirements (`field` is the list's path): each written out, once.
pub fn check_requirements(errors: &mut FieldErrors, field: &str, requirements: &[String]) {
    let mut seen = BTreeSet::new();
    for (i, requirement) in requirements.iter().enumerate() {
        let text = requirement.trim();
        let at = format!("{field}[{i}]");
        if text.is_empty() {
            errors.add(&at, "Write the requirement, or remove it.");
        } else if text.chars().count() > 500 {
            errors.add(&at, "Keep each requirement to 500 characters.");
        } else if !seen.insert(text.to_lowercase()) {
            errors.add(&at, "This requirement is already listed.");
        }
    }
}

pub async fn load(db: &PgPool, platform: Uuid) -> Result<Option<Scope>, sqlx::Error> {
    let document: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT document FROM technical_scope WHERE platform_id = $1")
            .bind(platform)
            .fetch_optional(db)
            .await?;
    // Stored documents were validated on the way in; one that no longer parses is treated as
    // absent rather than failing the page.
    Ok(document.and_then(|d| serde_json::from_value(d).ok()))
}

/// Saves the scope (replacing the previous one) with an audit event.
pub async fn save(
    db: &PgPool,
    platform: &super::platforms::Platform,
    scope: &Scope,
    by: &crate::auth::Principal,
) -> Result<(), super::DefineError> {
    if platform.archived_at.is_some() {
        return Err(super::DefineError::Archived);
    }
    scope.validate()?;
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO technical_scope (platform_id, document, updated_by) VALUES ($1, $2, $3)
         ON CONFLICT (platform_id) DO UPDATE SET document = EXCLUDED.document,
             updated_by = EXCLUDED.updated_by, updated_at = now()",
    )
    .bind(platform.id)
    .bind(serde_json::to_value(scope).expect("a scope serialises"))
    .bind(by.user.id.0)
    .execute(&mut *tx)
    .await?;
    crate::audit::record(
        &mut *tx,
        &crate::audit::Actor::from(by),
        "scope.saved",
        &format!("platform:{}/scope", platform.slug),
        serde_json::json!({ "complexity": scope.complexity, "regions": scope.regions }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(complexity: Complexity) -> Scope {
        Scope {
            goals: vec!["Run payments on Kubernetes".into()],
            cloud: "aws".into(),
            regions: vec!["eu-west-1".into()],
            connected_services: vec![],
            security: vec![],
            complexity,
            define_started_on: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        }
    }

    #[test]
    fn the_timebox_follows_complexity_and_flags_overrun() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(d);
        let standard = scope(Complexity::Standard);
        assert_eq!(
            standard.timebox(day(28)),
            Timebox {
                min_weeks: 2,
                max_weeks: 4,
                elapsed_days: 28,
                overrun: false
            }
        );
        assert!(standard.timebox(day(29)).overrun);
        let novel = scope(Complexity::Novel);
        assert!(!novel.timebox(day(56)).overrun);
        assert!(novel.timebox(day(57)).overrun);
        assert_eq!(
            novel.timebox(day(-3)).elapsed_days,
            0,
            "a future start has no elapsed time"
        );
    }

    #[test]
    fn bad_scopes_name_the_field() {
        let mut s = scope(Complexity::Standard);
        s.regions = vec!["eu-west-1".into(), "mars-1".into()];
        s.cloud = "gcp".into();
        let errors = s.validate().unwrap_err();
        assert_eq!(
            errors.get("regions[1]").map(|m| m.contains("mars-1")),
            Some(true)
        );
        assert!(errors.get("cloud").is_some());

        let service = |name: &str, endpoint: &str| ConnectedService {
            name: name.into(),
            kind: String::new(),
            endpoint: endpoint.into(),
            notes: String::new(),
        };
        let mut s = scope(Complexity::Standard);
        s.connected_services = vec![
            service("Ledger", "https://ledger.internal"),
            service("ledger ", "ledger.internal:443"),
            service(" ", "kafka-1:9092 kafka-2:9092"),
        ];
        s.security = vec!["PCI DSS".into(), " ".into(), "pci dss".into()];
        let errors = s.validate().unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "connected_services[1].name",
                "connected_services[2].name",
                "connected_services[2].endpoint",
                "security[1]",
                "security[2]",
            ]
        );
        assert!(errors.0[0].message.contains("already called `ledger`"));
        let error =
            serde_json::from_value::<Scope>(serde_json::json!({"goals": [], "cloud": "aws"}))
                .unwrap_err();
        assert!(error.to_string().contains("missing field"), "{error}");
    }
}
