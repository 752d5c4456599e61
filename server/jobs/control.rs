//! What a platform engineer does to a job by hand, from the jobs page or the API: retry and
//! cancel, each recorded in the audit log.

use sqlx::PgPool;

use super::queue::{self, ControlError, JobState};
use crate::audit::{self, Actor};

/// Puts a failed or cancelled job back in the queue.
pub async fn retry(db: &PgPool, id: i64, by: &Actor) -> Result<(), ControlError> {
    queue::retry(db, id).await?;
    record(db, id, by, "job.retried").await
}

/// Cancels a job; a running one stops between steps. Returns its state now.
pub async fn cancel(db: &PgPool, id: i64, by: &Actor) -> Result<JobState, ControlError> {
    let state = queue::cancel(db, id).await?;
    record(db, id, by, "job.cancelled").await?;
    Ok(state)
}

async fn record(db: &PgPool, id: i64, by: &Actor, action: &str) -> Result<(), ControlError> {
    // The audit event's details, free-form by contract: nothing to add here.
    audit::record(db, by, action, &format!("job:{id}"), serde_json::json!({})).await?;
    Ok(())
}
