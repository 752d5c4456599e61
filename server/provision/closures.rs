//! Account closures AWS deferred. Organizations closes at most 10% of an organization's member
//! accounts per rolling 30 days (and a few at a time); a teardown that meets the quota queues
//! the account here and ends, instead of failing, and the periodic `accounts.close` job asks
//! again, oldest first, until AWS takes them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::Cloud;
use super::cloud::{Closure, Provider};
use super::run::Runner;
use crate::jobs::{Handler, NoPayload, StepContext, StepError, StepFuture};

/// The job kind that closes queued accounts.
pub const CLOSE_QUEUED_JOB: &str = "accounts.close";
/// How often it runs: the quota frees up as closures age out of the 30-day window.
const EVERY: Duration = Duration::from_secs(3600);

fn db_error(e: sqlx::Error) -> StepError {
    StepError::Transient(format!("database: {e}"))
}

/// Queues `account` (of `environment`) for closure; queuing it twice keeps the first.
pub async fn queue(
    ctx: &StepContext,
    account: &str,
    environment: Uuid,
    reason: &str,
) -> Result<(), StepError> {
    sqlx::query(
        "INSERT INTO account_closure (account_id, environment_id, last_error)
         VALUES ($1, $2, $3) ON CONFLICT (account_id) DO NOTHING",
    )
    .bind(account)
    .bind(environment)
    .bind(reason)
    .execute(&ctx.db)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The periodic job asking Organizations again for each queued closure.
pub struct CloseQueued {
    pub runner: Arc<Runner>,
}

impl Handler for CloseQueued {
    type Payload = NoPayload;

    fn kind(&self) -> &'static str {
        CLOSE_QUEUED_JOB
    }

    fn steps(&self, _: &NoPayload) -> Vec<String> {
        vec!["close".into()]
    }

    fn every(&self) -> Option<Duration> {
        Some(EVERY)
    }

    fn run_step<'a>(
        &'a self,
        _: &'a str,
        _: &'a NoPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            match &self.runner.cloud {
                Cloud::Aws(p) => close_queued(p.as_ref(), &self.runner, ctx).await,
                Cloud::Simulated(p) => close_queued(p, &self.runner, ctx).await,
            }
        })
    }
}

async fn close_queued<P: Provider>(
    p: &P,
    runner: &Runner,
    ctx: &StepContext,
) -> Result<(), StepError> {
    let queued: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT account_id, environment_id FROM account_closure
         WHERE closed_at IS NULL ORDER BY queued_at",
    )
    .fetch_all(&ctx.db)
    .await
    .map_err(db_error)?;
    let mut closed = 0;
    for (account, environment) in &queued {
        let outcome = p.close_account(account).await;
        let error = match &outcome {
            Ok(Closure::Closed) => None,
            Ok(Closure::Deferred(why)) => Some(why.clone()),
            Err(e) => Some(e.to_string()),
        };
        sqlx::query(
            "UPDATE account_closure SET attempts = attempts + 1, last_error = $2,
                 closed_at = CASE WHEN $2::text IS NULL THEN now() END
             WHERE account_id = $1",
        )
        .bind(account)
        .bind(&error)
        .execute(&ctx.db)
        .await
        .map_err(db_error)?;
        match outcome {
            Ok(Closure::Closed) => {
                closed += 1;
                runner
                    .owner
                    .record_outputs(*environment, json!({ "account_closure": "closed" }))
                    .await?;
            }
            // The quota holds for the others too: the next run asks again.
            Ok(Closure::Deferred(_)) => break,
            Err(_) => {}
        }
    }
    ctx.log(&format!(
        "closed {closed} of {} queued accounts",
        queued.len()
    ))
    .await
}
