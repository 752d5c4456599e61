//! EKS's Kubernetes version calendar, shipped with Slipway: each minor version's end of
//! standard support (14 months after EKS released it) and of extended support (12 more
//! months, at $0.60 instead of $0.10 per cluster-hour; after it AWS upgrades the control plane
//! by itself, leaving add-ons and nodes behind).

use chrono::NaiveDate;
use serde::Serialize;

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

/// The support ends of `version` (`"1.34"`), if the table has it.
pub fn support_ends(version: &str) -> Option<(NaiveDate, NaiveDate)> {
    let minor: u32 = version.strip_prefix("1.")?.parse().ok()?;
    CALENDAR
        .iter()
        .find(|(m, _, _)| *m == minor)
        .map(|(_, standard, extended)| (date(*standard), date(*extended)))
}

/// `version`'s support on `today`. Standard support lasts through its last day.
pub fn status(version: &str, today: NaiveDate) -> Status {
    let Some((standard, extended)) = support_ends(version) else {
        let newest = CALENDAR.last().map_or(0, |(minor, _, _)| *minor);
        let newer = version
            .strip_prefix("1.")
            .and_then(|m| m.parse::<u32>().ok())
            .is_some_and(|minor| minor > newest);
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

/// The Kubernetes versions a blueprint pins that are out of standard support on `today`, each
/// with its field path and what to do (a warning: the revision stays valid, EKS still runs
/// such versions, at a price).
pub fn blueprint_warnings(
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
    let newest = newest_in_standard_support(today);
    let advice = newest.map_or_else(String::new, |v| format!(" Use {v}."));
    pinned
        .filter_map(|(field, version)| {
            let s = status(version, today);
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
pub fn newest_in_standard_support(today: NaiveDate) -> Option<String> {
    CALENDAR
        .iter()
        .rev()
        .find(|(_, standard, _)| today <= date(*standard))
        .map(|(minor, _, _)| format!("1.{minor}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_version_moves_from_standard_to_extended_to_unsupported_on_its_dates() {
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
    fn the_newest_version_in_standard_support_follows_the_calendar() {
        assert_eq!(
            newest_in_standard_support(day("2026-12-03")).as_deref(),
            Some("1.35")
        );
        assert_eq!(newest_in_standard_support(day("2028-01-01")), None);
    }
}
