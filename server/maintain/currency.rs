//! EKS's Kubernetes version calendar, shipped with Slipway: each minor version's end of
//! standard support (14 months after EKS released it) and of extended support (12 more
//! months, at $0.60 instead of $0.10 per cluster-hour; after it AWS upgrades the control plane
//! by itself, leaving add-ons and nodes behind).

use chrono::NaiveDate;
use serde::Serialize;

use crate::provision::versions::minor_of;

/// Where the table comes from, and when it was read. A version newer than the table (EKS
/// released it later) is taken as in standard support, with no dates, until the table is
/// updated; blueprints can only pin versions in it (`KUBERNETES_MINOR_VERSIONS`).
pub const SOURCE: &str = "the Amazon EKS Kubernetes release calendar \
     (docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html), read on 2026-12-03";

/// A day as (year, month, day), so the table is a constant.
type Day = (i32, u32, u32);

/// (minor, end of standard support, end of extended support).
const CALENDAR: &[(u32, Day, Day)] = &[
    (29, (2025, 3, 23), (2026, 3, 23)),
    (30, (2025, 7, 23), (2026, 7, 23)),
    (31, (2025, 11, 26), (2026, 11, 26)),
    (32, (2026, 3, 23), (2027, 3, 23)),
    (33, (2026, 7, 29), (2027, 7, 29)),
    (34, (2026, 12, 2), (2027, 12, 2)),
    (35, (2027, 3, 27), (2028, 3, 27)),
];

/// What extended support adds per cluster-hour ($0.60 against $0.10).
pub const EXTENDED_SUPPORT_EXTRA_USD_PER_HOUR: f64 = 0.50;

/// A version's support on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    Standard,
    /// Past standard support: billed extra, still patched.
    Extended,
    /// Past extended support (or older than the table, or unreadable): AWS upgrades it by
    /// itself.
    Unsupported,
}

impl Support {
    pub fn as_str(self) -> &'static str {
        match self {
            Support::Standard => "standard",
            Support::Extended => "extended",
            Support::Unsupported => "unsupported",
        }
    }
}

impl std::fmt::Display for Support {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version's place in the calendar on a day.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub support: Support,
    pub standard_ends: Option<NaiveDate>,
    pub extended_ends: Option<NaiveDate>,
    /// Until the end of the current stage (standard, or extended); negative once unsupported.
    pub days_left: Option<i64>,
    pub hourly_extra_usd: f64,
}

fn date((y, m, d): Day) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("the calendar's dates are valid")
}

/// Where a version's dates come from, most trusted last: the table shipped with Slipway, an
/// admin's correction, or EKS itself (`DescribeClusterVersions`), which wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    Shipped,
    Admin {
        by: String,
        at: chrono::DateTime<chrono::Utc>,
        note: String,
    },
    Eks {
        read_at: chrono::DateTime<chrono::Utc>,
    },
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Shipped => format!("shipped with Slipway ({SOURCE})"),
            Source::Admin { by, at, note } => {
                format!("set by {by} on {}: {note}", at.format("%Y-%m-%d"))
            }
            Source::Eks { read_at } => format!(
                "EKS DescribeClusterVersions, read on {}",
                read_at.format("%Y-%m-%d")
            ),
        }
    }
}

/// One minor version's end of standard and of extended support.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Entry {
    /// `1.34`.
    pub version: String,
    pub standard_support_ends: NaiveDate,
    pub extended_support_ends: NaiveDate,
    pub source: Source,
    #[serde(skip)]
    minor: u32,
}

/// The calendar in force: the shipped table, with admins' corrections over it and what EKS
/// answers over both.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// By minor version, ascending.
    entries: Vec<Entry>,
}

#[derive(sqlx::FromRow)]
struct Row {
    minor: i32,
    source: String,
    standard_ends: NaiveDate,
    extended_ends: NaiveDate,
    note: String,
    changed_by: Option<String>,
    changed_at: chrono::DateTime<chrono::Utc>,
}

impl Calendar {
    /// The table shipped with Slipway alone.
    pub fn shipped() -> Calendar {
        Calendar {
            entries: CALENDAR
                .iter()
                .map(|(minor, standard, extended)| Entry {
                    version: format!("1.{minor}"),
                    standard_support_ends: date(*standard),
                    extended_support_ends: date(*extended),
                    source: Source::Shipped,
                    minor: *minor,
                })
                .collect(),
        }
    }

    /// The calendar in force: shipped, then admins' corrections, then EKS's answers.
    pub async fn load(db: &sqlx::PgPool) -> Result<Calendar, sqlx::Error> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT v.minor, v.source, v.standard_ends, v.extended_ends, v.note,
                    u.email AS changed_by, v.changed_at
             FROM kubernetes_version v LEFT JOIN app_user u ON u.id = v.changed_by
             ORDER BY v.minor, v.source = 'eks'",
        )
        .fetch_all(db)
        .await?;
        let mut calendar = Calendar::shipped();
        for row in rows {
            let Ok(minor) = u32::try_from(row.minor) else {
                continue;
            };
            let source = if row.source == "eks" {
                Source::Eks {
                    read_at: row.changed_at,
                }
            } else {
                Source::Admin {
                    by: row.changed_by.unwrap_or_else(|| "a deleted user".into()),
                    at: row.changed_at,
                    note: row.note,
                }
            };
            calendar.put(Entry {
                version: format!("1.{minor}"),
                standard_support_ends: row.standard_ends,
                extended_support_ends: row.extended_ends,
                source,
                minor,
            });
        }
        Ok(calendar)
    }

    fn put(&mut self, entry: Entry) {
        match self.entries.binary_search_by_key(&entry.minor, |e| e.minor) {
            Ok(i) => self.entries[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The support ends of `version` (`"1.34"`), if the calendar has it.
    pub fn support_ends(&self, version: &str) -> Option<(NaiveDate, NaiveDate)> {
        let minor = minor_of(version)?;
        self.entries
            .iter()
            .find(|e| e.minor == minor)
            .map(|e| (e.standard_support_ends, e.extended_support_ends))
    }

    /// `version`'s support on `today`. Standard support lasts through its last day.
    pub fn status(&self, version: &str, today: NaiveDate) -> Status {
        let Some((standard, extended)) = self.support_ends(version) else {
            let newest = self.entries.last().map_or(0, |e| e.minor);
            let newer = minor_of(version).is_some_and(|minor| minor > newest);
            return Status {
                support: if newer {
                    Support::Standard
                } else {
                    Support::Unsupported
                },
                standard_ends: None,
                extended_ends: None,
                days_left: None,
                hourly_extra_usd: 0.0,
            };
        };
        let (support, end) = if today <= standard {
            (Support::Standard, standard)
        } else if today <= extended {
            (Support::Extended, extended)
        } else {
            (Support::Unsupported, extended)
        };
        Status {
            support,
            standard_ends: Some(standard),
            extended_ends: Some(extended),
            days_left: Some((end - today).num_days()),
            hourly_extra_usd: if support == Support::Extended {
                EXTENDED_SUPPORT_EXTRA_USD_PER_HOUR
            } else {
                0.0
            },
        }
    }

    /// The Kubernetes versions a blueprint pins that are out of standard support on `today`,
    /// each with its field path and what to do (a warning: the revision stays valid, EKS still
    /// runs such versions, at a price).
    pub fn blueprint_warnings(
        &self,
        blueprint: &crate::define::blueprint::Blueprint,
        today: NaiveDate,
    ) -> Vec<crate::validation::FieldError> {
        let pinned = std::iter::once((
            "devops.kubernetes_version".to_owned(),
            &blueprint.devops.kubernetes_version,
        ))
        .chain(
            blueprint
                .environment_types
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    (
                        format!("environment_types[{i}].kubernetes_version"),
                        &t.kubernetes_version,
                    )
                }),
        );
        let newest = self.newest_in_standard_support(today);
        let advice = newest.map_or_else(String::new, |v| format!(" Use {v}."));
        pinned
            .filter_map(|(field, version)| {
                let s = self.status(version, today);
                let message = match (s.support, s.standard_ends, s.extended_ends) {
                    (Support::Extended, Some(standard), Some(extended)) => format!(
                        "Kubernetes {version} left EKS standard support on {standard}: each cluster costs ${EXTENDED_SUPPORT_EXTRA_USD_PER_HOUR:.2} more per hour until {extended}, when AWS upgrades it by itself.{advice}"
                    ),
                    (Support::Unsupported, _, Some(extended)) => format!(
                        "Kubernetes {version} left EKS extended support on {extended}: EKS no longer creates it and upgrades existing clusters by itself.{advice}"
                    ),
                    _ => return None,
                };
                Some(crate::validation::FieldError { field, message })
            })
            .collect()
    }

    /// The newest version in standard support on `today`.
    pub fn newest_in_standard_support(&self, today: NaiveDate) -> Option<String> {
        self.entries
            .iter()
            .rev()
            .find(|e| today <= e.standard_support_ends)
            .map(|e| e.version.clone())
    }
}

/// An admin's correction of a version's dates, checked.
pub struct Correction<'a> {
    pub version: &'a str,
    pub standard_support_ends: &'a str,
    pub extended_support_ends: &'a str,
    pub note: &'a str,
}

/// Records an admin's correction of one version's dates; it stands over the shipped table
/// until EKS answers for the version.
pub async fn correct(
    db: &sqlx::PgPool,
    correction: &Correction<'_>,
    by: &crate::auth::Principal,
) -> Result<(), CorrectionError> {
    let mut errors = crate::validation::FieldErrors::default();
    let minor = minor_of(correction.version.trim()).filter(|m| (20..=99).contains(m));
    if minor.is_none() {
        errors.add("version", "Use a Kubernetes minor version such as 1.36.");
    }
    let day = |field: &str, text: &str, errors: &mut crate::validation::FieldErrors| {
        let parsed = text.trim().parse::<NaiveDate>().ok();
        if parsed.is_none() {
            errors.add(field, "Use a date such as 2027-06-30.");
        }
        parsed
    };
    let standard = day(
        "standard_support_ends",
        correction.standard_support_ends,
        &mut errors,
    );
    let extended = day(
        "extended_support_ends",
        correction.extended_support_ends,
        &mut errors,
    );
    if let (Some(s), Some(e)) = (standard, extended)
        && e < s
    {
        errors.add(
            "extended_support_ends",
            "Extended support ends after standard support does.",
        );
    }
    let note = correction.note.trim();
    if note.is_empty() {
        errors.add(
            "note",
            "Say where the dates come from (a link to AWS's announcement).",
        );
    } else if note.chars().count() > 300 {
        errors.add("note", "Keep it under 300 characters.");
    } else if let Err(m) =
        crate::validation::check_text(note, crate::validation::TextKind::SingleLine)
    {
        errors.add("note", m);
    }
    errors.into_result().map_err(CorrectionError::Invalid)?;
    let (Some(minor), Some(standard), Some(extended)) = (minor, standard, extended) else {
        unreachable!("checked above");
    };
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO kubernetes_version (minor, source, standard_ends, extended_ends, note, changed_by)
         VALUES ($1, 'admin', $2, $3, $4, $5)
         ON CONFLICT (minor, source) DO UPDATE SET standard_ends = EXCLUDED.standard_ends,
             extended_ends = EXCLUDED.extended_ends, note = EXCLUDED.note,
             changed_by = EXCLUDED.changed_by, changed_at = now()",
    )
    .bind(minor as i32)
    .bind(standard)
    .bind(extended)
    .bind(note)
    .bind(by.user.id.0)
    .execute(&mut *tx)
    .await?;
    crate::audit::record(
        &mut *tx,
        &crate::audit::Actor::from(by),
        "kubernetes_version.corrected",
        &format!("kubernetes_version:1.{minor}"),
        serde_json::json!({ "standard_support_ends": standard, "extended_support_ends": extended, "note": note }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum CorrectionError {
    #[error("invalid")]
    Invalid(crate::validation::FieldErrors),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Keeps what EKS answered (`DescribeClusterVersions`): it wins over the table and admins'
/// corrections for the versions it names.
pub async fn keep_eks_answer(
    db: &sqlx::PgPool,
    versions: &[(String, NaiveDate, NaiveDate)],
) -> Result<usize, sqlx::Error> {
    let mut kept = 0;
    for (version, standard, extended) in versions {
        let Some(minor) = minor_of(version) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO kubernetes_version (minor, source, standard_ends, extended_ends, note)
             VALUES ($1, 'eks', $2, $3, 'DescribeClusterVersions')
             ON CONFLICT (minor, source) DO UPDATE SET standard_ends = EXCLUDED.standard_ends,
                 extended_ends = EXCLUDED.extended_ends, changed_at = now()",
        )
        .bind(minor as i32)
        .bind(standard)
        .bind(extended)
        .execute(db)
        .await?;
        kept += 1;
    }
    Ok(kept)
}

/// The components an environment runs behind Slipway's current pins, from the images its plan
/// runs (`repository:tag`): `"istiod 1.27.0 → 1.28.1"`, once per component. EKS add-ons are
/// not here: the plan leaves their version to EKS (the default for the cluster's version).
pub fn components_behind(images: &[String]) -> Vec<String> {
    let mut behind: Vec<String> = Vec::new();
    for image in images {
        let Some((repository, tag)) = image.rsplit_once(':') else {
            continue;
        };
        let pinned = crate::provision::versions::COMPONENTS.iter().find_map(|c| {
            c.images
                .iter()
                .find_map(|p| p.rsplit_once(':').filter(|(r, _)| *r == repository))
                .map(|(_, pinned_tag)| (c, pinned_tag))
        });
        if let Some((component, pinned_tag)) = pinned
            && pinned_tag != tag
        {
            let line = format!("{} {tag} → {pinned_tag}", component.name);
            if !behind
                .iter()
                .any(|b| b.starts_with(&format!("{} ", component.name)))
            {
                behind.push(line);
            }
        }
    }
    behind
}

/// The periodic job reading EKS's calendar (`DescribeClusterVersions`), daily.
pub struct CalendarRead {
    pub cloud: crate::provision::Cloud,
}

/// Its kind.
pub const CALENDAR_JOB: &str = "maintain.currency";

impl crate::jobs::Handler for CalendarRead {
    type Payload = crate::jobs::NoPayload;

    fn kind(&self) -> &'static str {
        CALENDAR_JOB
    }

    fn steps(&self, _: &crate::jobs::NoPayload) -> Vec<String> {
        vec!["describe-cluster-versions".into()]
    }

    fn every(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_secs(24 * 3600))
    }

    fn run_step<'a>(
        &'a self,
        _: &'a str,
        _: &'a crate::jobs::NoPayload,
        ctx: &'a crate::jobs::StepContext,
    ) -> crate::jobs::StepFuture<'a> {
        Box::pin(async move {
            let Some(versions) = self.cloud.kubernetes_versions().await? else {
                return ctx
                    .log("the simulated cloud has no EKS: the shipped calendar stands")
                    .await;
            };
            let kept = keep_eks_answer(&ctx.db, &versions)
                .await
                .map_err(|e| crate::jobs::StepError::Transient(format!("database: {e}")))?;
            ctx.log(&format!("EKS gave the dates of {kept} Kubernetes versions"))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_version_moves_from_standard_to_extended_to_unsupported_on_its_dates() {
        let calendar = Calendar::shipped();
        let status = |v: &str, d| calendar.status(v, d);
        let standard = status("1.34", day("2026-12-02"));
        assert_eq!(standard.support, Support::Standard);
        assert_eq!(standard.days_left, Some(0));
        assert_eq!(standard.hourly_extra_usd, 0.0);
        let extended = status("1.34", day("2026-12-03"));
        assert_eq!(extended.support, Support::Extended);
        assert_eq!(extended.days_left, Some(364));
        assert_eq!(extended.hourly_extra_usd, 0.50);
        let gone = status("1.34", day("2027-12-03"));
        assert_eq!(gone.support, Support::Unsupported);
        assert_eq!(gone.days_left, Some(-1));
        let newer = status("1.99", day("2026-12-03"));
        assert_eq!(
            (newer.support, newer.standard_ends),
            (Support::Standard, None)
        );
        assert_eq!(
            status("1.20", day("2026-12-03")).support,
            Support::Unsupported
        );
        assert_eq!(
            status("latest", day("2026-12-03")).support,
            Support::Unsupported
        );
    }

    #[test]
    fn components_behind_their_pins_are_named_once_with_both_versions() {
        let current = crate::provision::versions::ISTIOD.images[0].to_owned();
        let old = current.replace(crate::provision::versions::ISTIOD.version, "1.27.0");
        let proxy = crate::provision::versions::ISTIOD.images[1]
            .replace(crate::provision::versions::ISTIOD.version, "1.27.0");
        let behind = components_behind(&[
            old,
            proxy,
            current,
            "docker.io/library/nginx:1.0".into(),
            "no-tag".into(),
        ]);
        assert_eq!(
            behind,
            [format!(
                "istiod 1.27.0 → {}",
                crate::provision::versions::ISTIOD.version
            )]
        );
        assert!(
            components_behind(&[crate::provision::versions::FLUENT_BIT.image().into()]).is_empty()
        );
    }

    #[test]
    fn the_newest_version_in_standard_support_follows_the_calendar() {
        let calendar = Calendar::shipped();
        assert_eq!(
            calendar
                .newest_in_standard_support(day("2026-12-03"))
                .as_deref(),
            Some("1.35")
        );
        assert_eq!(calendar.newest_in_standard_support(day("2028-01-01")), None);
    }
}
