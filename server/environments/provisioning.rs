//! The environments' side of provisioning: the [`EnvironmentOwner`] the provisioning and
//! teardown jobs read their environment through and report back to. The environment table and
//! its transitions stay here; `provision` never touches them.

use futures_util::future::BoxFuture;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::{EnvironmentId, lifecycle, step_error};
use crate::clock::Clock;
use crate::jobs::StepError;
use crate::provision::{EnvironmentOwner, Target};

pub struct Owner {
    pub db: PgPool,
    pub clock: Clock,
    /// Where people open Slipway (links in notifications).
    pub base_url: String,
}

impl EnvironmentOwner for Owner {
    fn target(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Target>, StepError>> {
        Box::pin(async move {
            let row: Option<(String, Value, Value, Value, String, Vec<String>)> = sqlx::query_as(
                "SELECT e.environment_type, e.plan, e.parameters, e.outputs, u.email,
                        ARRAY(SELECT a.email FROM environment_approval ap
                              JOIN app_user a ON a.id = ap.approver_id
                              WHERE ap.environment_id = e.id AND ap.round = 0
                                AND ap.verdict = 'approve'
                              ORDER BY ap.created_at, a.email)
                 FROM environment e JOIN app_user u ON u.id = e.requested_by
                 WHERE e.id = $1",
            )
            .bind(id)
            .fetch_optional(&self.db)
            .await
            .map_err(step_error)?;
            Ok(row.map(
                |(environment_type, plan, parameters, outputs, requested_by, approved_by)| Target {
                    id,
                    environment_type,
                    plan,
                    parameters,
                    outputs,
                    requested_by,
                    approved_by,
                },
            ))
        })
    }

    fn devops_of(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Target>, StepError>> {
        Box::pin(async move {
            let devops: Option<Uuid> = sqlx::query_scalar(
                "SELECT d.id FROM environment e
                 JOIN environment d ON d.platform_id = e.platform_id AND d.name = $2
                 WHERE e.id = $1 AND d.id <> e.id AND d.state = 'ready'",
            )
            .bind(id)
            .bind(crate::provision::plan::DEVOPS_ENVIRONMENT)
            .fetch_optional(&self.db)
            .await
            .map_err(step_error)?;
            match devops {
                Some(devops) => self.target(devops).await,
                None => Ok(None),
            }
        })
    }

    fn deployment_targets(&self, id: Uuid) -> BoxFuture<'_, Result<Vec<Target>, StepError>> {
        Box::pin(async move {
            let ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT o.id FROM environment d
                 JOIN environment o ON o.platform_id = d.platform_id AND o.id <> d.id
                 WHERE d.id = $1 AND o.state IN ('provisioning', 'ready')
                   AND jsonb_exists(o.outputs, 'cluster_endpoint')
                 ORDER BY o.name",
            )
            .bind(id)
            .fetch_all(&self.db)
            .await
            .map_err(step_error)?;
            let mut targets = Vec::with_capacity(ids.len());
            for id in ids {
                targets.extend(self.target(id).await?);
            }
            Ok(targets)
        })
    }

    fn record_outputs(&self, id: Uuid, outputs: Value) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            sqlx::query("UPDATE environment SET outputs = outputs || $2 WHERE id = $1")
                .bind(id)
                .bind(outputs)
                .execute(&self.db)
                .await
                .map_err(step_error)?;
            Ok(())
        })
    }

    fn begin(&self, id: Uuid, teardown: bool) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            lifecycle::begin_job(&self.db, EnvironmentId(id), teardown)
                .await
                .map_err(step_error)
        })
    }

    fn ready(
        &self,
        id: Uuid,
        outputs: Value,
        delivers: Vec<String>,
    ) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            let now = self.clock.now();
            lifecycle::mark_ready(
                &self.db,
                EnvironmentId(id),
                &outputs,
                &delivers,
                now,
                &self.base_url,
            )
            .await
            .map_err(step_error)
        })
    }

    fn torn_down(&self, id: Uuid) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            lifecycle::mark_torn_down(&self.db, EnvironmentId(id), &self.base_url)
                .await
                .map_err(step_error)
        })
    }

    fn network_slot(&self, id: Uuid, slots: u32) -> BoxFuture<'_, Result<Option<u32>, StepError>> {
        Box::pin(async move {
            // Two environments choosing at once may pick the same slot: the unique index
            // refuses the second, which then chooses again.
            for _ in 0..5 {
                let taken: Result<Option<Option<i32>>, sqlx::Error> = sqlx::query_scalar(
                    "UPDATE environment e SET network_slot = coalesce(e.network_slot, (
                         SELECT min(s) FROM generate_series(0, $2::int - 1) s
                         WHERE NOT EXISTS (
                             SELECT 1 FROM environment o
                             WHERE o.platform_id = e.platform_id AND o.network_slot = s
                               AND o.state NOT IN ('rejected', 'cancelled', 'expired', 'torn_down'))))
                     WHERE e.id = $1
                     RETURNING e.network_slot",
                )
                .bind(id)
                .bind(i32::try_from(slots).unwrap_or(i32::MAX))
                .fetch_optional(&self.db)
                .await;
                match taken {
                    Ok(slot) => return Ok(slot.flatten().map(|s| s as u32)),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                    Err(e) => return Err(step_error(e)),
                }
            }
            Err(StepError::Transient(
                "choosing a network range raced with other environments; trying again".into(),
            ))
        })
    }

    fn failed(&self, id: Uuid, job: i64, error: String) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            lifecycle::mark_failed(&self.db, EnvironmentId(id), job, &error, &self.base_url)
                .await
                .map_err(step_error)
        })
    }
}
