//! The environments' side of provisioning: the [`EnvironmentOwner`] the provisioning and
//! teardown jobs read their environment through and report back to. The environment table and
//! its transitions stay here; `provision` never touches them.

use futures_util::future::BoxFuture;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::{EnvironmentError, EnvironmentId, lifecycle};
use crate::clock::Clock;
use crate::jobs::StepError;
use crate::provision::{EnvironmentOwner, Target};

pub struct Owner {
    pub db: PgPool,
    pub clock: Clock,
    /// Where people open Slipway (links in notifications).
    pub base_url: String,
}

fn step_error(e: EnvironmentError) -> StepError {
    match e {
        EnvironmentError::Db(e) => StepError::Transient(format!("database: {e}")),
        other => StepError::Permanent(other.to_string()),
    }
}

impl EnvironmentOwner for Owner {
    fn target(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Target>, StepError>> {
        Box::pin(async move {
            let row: Option<(String, Value, Value, Value)> = sqlx::query_as(
                "SELECT environment_type, plan, parameters, outputs FROM environment WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.db)
            .await
            .map_err(|e| step_error(e.into()))?;
            Ok(
                row.map(|(environment_type, plan, parameters, outputs)| Target {
                    id,
                    environment_type,
                    plan,
                    parameters,
                    outputs,
                }),
            )
        })
    }

    fn record_outputs(&self, id: Uuid, outputs: Value) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            sqlx::query("UPDATE environment SET outputs = outputs || $2 WHERE id = $1")
                .bind(id)
                .bind(outputs)
                .execute(&self.db)
                .await
                .map_err(|e| step_error(e.into()))?;
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

    fn failed(&self, id: Uuid, job: i64, error: String) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            lifecycle::mark_failed(&self.db, EnvironmentId(id), job, &error, &self.base_url)
                .await
                .map_err(step_error)
        })
    }
}
