//! Maintain: keeping a platform's clusters current. Version currency (where each cluster's
//! Kubernetes version stands in EKS's support calendar and what staying on it costs),
//! upgrades ([`upgrade`]: one minor version at a time, approved like the environment, run as
//! a job), drift ([`drift`]: how each environment differs from its plan, reconciled or
//! accepted), actual cost ([`cost`]: the bill beside the estimate and the budget) and
//! blueprint roll-outs ([`rollout`]: an approved revision brought to running environments in
//! approved waves). The fields the API reserves for what is not checked are `null`, never an
//! empty "all is well".

pub mod cost;
pub mod currency;
pub mod drift;
pub mod rollout;
pub mod upgrade;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

pub use crate::provision::drift::Drift;

/// The Kubernetes version of an environment `e`'s cluster, as its plan records it (the upgrade
/// job rewrites it once the control plane runs a new one), as one SQL expression.
macro_rules! planned_kubernetes_version {
    () => {
        "(SELECT s->'details'->>'version' FROM jsonb_array_elements(e.plan) s
          WHERE s->>'action' = 'eks:CreateCluster' LIMIT 1)"
    };
}
pub use currency::Support;
pub(crate) use planned_kubernetes_version;

/// One cluster of a platform on the Maintain page (`GET /api/v1/platforms/{slug}/maintain`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClusterCurrency {
    pub environment_id: Uuid,
    pub name: String,
    pub environment_type: String,
    pub state: String,
    pub kubernetes_version: String,
    pub support: Support,
    pub standard_support_ends: Option<NaiveDate>,
    pub extended_support_ends: Option<NaiveDate>,
    /// Days until the current support stage ends (negative once past; none when the table
    /// does not have the version).
    pub days_left: Option<i64>,
    /// What extended support adds per cluster-hour now (0 in standard support).
    pub hourly_extra_usd: f64,
    /// The blueprint revision the environment was built from.
    pub revision: i32,
    /// The components it runs behind Slipway's current pins (`istiod 1.27.0 → 1.28.1`); EKS
    /// add-ons are EKS's to choose for the cluster's version and not listed.
    pub addons_behind: Option<Vec<String>>,
    /// What the last drift check found that nobody accepted; null until one has run.
    pub drift: Option<Vec<Drift>>,
    /// Its last Kubernetes upgrade, if any (`GET /api/v1/environments/{id}/upgrade` has more).
    pub upgrade: Option<LastUpgrade>,
    pub cost: cost::CostSummary,
    #[serde(skip)]
    pub created_at: DateTime<Utc>,
}

/// An environment's last upgrade as the Maintain list shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LastUpgrade {
    pub to_version: String,
    #[schema(value_type = String)]
    pub state: upgrade::UpgradeState,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    environment_type: String,
    state: String,
    kubernetes_version: Option<String>,
    blueprint_number: i32,
    cost_hourly_micros: i64,
    budget_monthly_micros: Option<i64>,
    month_to_date: Option<i64>,
    plan_images: Option<sqlx::types::Json<Vec<serde_json::Value>>>,
    drift: Option<sqlx::types::Json<Vec<Drift>>>,
    upgrade_to: Option<String>,
    upgrade_state: Option<upgrade::UpgradeState>,
    created_at: DateTime<Utc>,
}

/// The platform's clusters (environments that have or may have one: provisioning, ready,
/// failed, tearing down), oldest first, `limit` after the cursor `after` (`created_at`, id),
/// each with its version's support status on `today`.
pub async fn clusters(
    db: &PgPool,
    calendar: &currency::Calendar,
    platform: Uuid,
    today: NaiveDate,
    limit: i64,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> Result<Vec<ClusterCurrency>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(concat!(
        "SELECT e.id, e.name, e.environment_type, e.state::text AS state, ",
        planned_kubernetes_version!(),
        " AS kubernetes_version, e.blueprint_number, e.cost_hourly_micros, e.budget_monthly_micros, ",
        cost::month_to_date!("$5"),
        " AS month_to_date, e.plan_images, ",
        drift::unaccepted_items!(),
        " AS drift, u.to_version AS upgrade_to, u.state AS upgrade_state, e.created_at
         FROM environment e LEFT JOIN environment_drift d ON d.environment_id = e.id
              LEFT JOIN cost_read r ON true
              LEFT JOIN LATERAL (SELECT u.to_version, u.state FROM environment_upgrade u
                                 WHERE u.environment_id = e.id
                                 ORDER BY u.created_at DESC LIMIT 1) u ON true
         WHERE e.platform_id = $1 AND e.state IN ('provisioning', 'ready', 'failed', 'tearing_down')
           AND ($2::timestamptz IS NULL OR (e.created_at, e.id) > ($2, $3))
         ORDER BY e.created_at, e.id LIMIT $4"
    ))
    .bind(platform)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .bind(cost::month_start(today))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let version = row.kubernetes_version.unwrap_or_default();
            let status = calendar.status(&version, today);
            ClusterCurrency {
                environment_id: row.id,
                name: row.name,
                environment_type: row.environment_type,
                state: row.state,
                kubernetes_version: version,
                support: status.support,
                standard_support_ends: status.standard_ends,
                extended_support_ends: status.extended_ends,
                days_left: status.days_left,
                hourly_extra_usd: status.hourly_extra_usd,
                revision: row.blueprint_number,
                addons_behind: row.plan_images.map(|images| {
                    let images: Vec<String> = images
                        .0
                        .into_iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect();
                    currency::components_behind(&images)
                }),
                drift: row.drift.map(|d| d.0),
                upgrade: row
                    .upgrade_to
                    .zip(row.upgrade_state)
                    .map(|(to_version, state)| LastUpgrade { to_version, state }),
                cost: cost::summary(
                    row.month_to_date,
                    row.cost_hourly_micros,
                    row.budget_monthly_micros,
                ),
                created_at: row.created_at,
            }
        })
        .collect())
}
