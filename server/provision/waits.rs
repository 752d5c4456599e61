//! How provisioning waits for the cloud: polling until something is ready or gone, and
//! riding out the refusals AWS documents as eventual consistency.

use std::time::Duration;

use super::cloud::{CloudError, Status};
use crate::jobs::{StepContext, StepError};

/// How long a step waits for the cloud before giving the attempt up (it is retried later).
pub(super) const PATIENCE: Duration = Duration::from_secs(45 * 60);
/// How long a wait polls every 5 s at most: what EKS and Organizations usually take (accounts,
/// clusters, node groups and add-ons become ready within minutes), where a poll saved is less
/// than the time a late poll loses on the critical path (the provisioning drill measures it).
/// One Describe call every 5 s is far below the APIs' rate limits.
const EAGER: Duration = Duration::from_secs(15 * 60);

/// How long a step keeps retrying a refusal AWS documents as eventual consistency
/// ([`CloudError::NotYetPropagated`]) before it fails for a person to look: a new account's access
/// role and a new IAM role usually become usable within a few minutes.
pub(super) const SETTLING: Duration = Duration::from_secs(10 * 60);

/// Polls `check` until it gives a value, waiting 1 s, 2 s, … between polls, at most 5 s for
/// the first [`EAGER`] and 15 s after; after [`PATIENCE`] the attempt ends (transiently: the
/// job retries later and polls again).
pub(super) async fn wait_for<T, F, Fut>(
    ctx: &StepContext,
    what: &str,
    mut check: F,
) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, StepError>>,
{
    let started = std::time::Instant::now();
    let mut polls: u64 = 0;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if started.elapsed() > PATIENCE {
            return Err(StepError::Transient(format!(
                "still waiting for {what} after {} minutes",
                PATIENCE.as_secs() / 60
            )));
        }
        if polls == 0 {
            ctx.log(&format!("waiting for {what}")).await?;
        }
        polls += 1;
        let longest = if started.elapsed() < EAGER { 5 } else { 15 };
        tokio::time::sleep(Duration::from_secs(polls.min(longest))).await;
    }
}

/// Waits with [`wait_for`] until `find` reports `what` (a cluster, a node group, an add-on)
/// ACTIVE and returns it: FAILED is permanent, gone is transient.
pub(super) async fn until_active<T, F, Fut>(
    ctx: &StepContext,
    what: &str,
    status: fn(&T) -> Status,
    mut find: F,
) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, StepError>>,
{
    wait_for(ctx, &format!("{what} to become ACTIVE"), || {
        let found = find();
        async move {
            match found.await? {
                Some(x) if status(&x) == Status::Active => Ok(Some(x)),
                Some(x) if status(&x) == Status::Failed => Err(StepError::Permanent(format!(
                    "{what} failed to create; clean up and retry"
                ))),
                Some(_) => Ok(None),
                None => Err(StepError::Transient(format!(
                    "{what} disappeared while creating"
                ))),
            }
        }
    })
    .await
}

/// Waits with [`wait_for`] until `pending` lists nothing; each time the list changes it is
/// logged, and a timeout says what was still pending.
pub(super) async fn until_none_left<F, Fut>(
    ctx: &StepContext,
    what: &str,
    mut pending: F,
) -> Result<(), StepError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>, CloudError>>,
{
    let last = std::sync::Mutex::new(Vec::<String>::new());
    let waited = wait_for(ctx, what, || {
        let left = pending();
        let last = &last;
        async move {
            let left = left.await?;
            if left.is_empty() {
                return Ok(Some(()));
            }
            let changed = *last.lock().unwrap_or_else(|e| e.into_inner()) != left;
            if changed {
                ctx.log(&format!("not yet: {}", left.join("; "))).await?;
                *last.lock().unwrap_or_else(|e| e.into_inner()) = left;
            }
            Ok(None)
        }
    })
    .await;
    waited.map_err(|e| match e {
        StepError::Transient(m) => StepError::Transient(format!(
            "{m}; not yet: {}",
            last.lock().unwrap_or_else(|e| e.into_inner()).join("; ")
        )),
        other => other,
    })
}

/// Runs `call` again while AWS answers with eventual consistency, waiting 1 s, 2 s, … (at most
/// 5 s) between tries, for up to [`SETTLING`]; after that the refusal is permanent, with what to
/// check. Other errors are returned as they are, for the caller to sort.
pub(super) async fn settled<T, F, Fut>(ctx: &StepContext, mut call: F) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let started = std::time::Instant::now();
    let mut tries: u64 = 0;
    loop {
        match call().await {
            Err(CloudError::NotYetPropagated(why)) if started.elapsed() < SETTLING => {
                if tries == 0 {
                    ctx.log(&format!(
                        "{why}: AWS may refuse for minutes after creating an account or role; trying again for up to {} minutes",
                        SETTLING.as_secs() / 60
                    ))
                    .await
                    .map_err(|e| CloudError::Transient(e.to_string()))?;
                }
                tries += 1;
                tokio::time::sleep(Duration::from_secs(tries.min(5))).await;
            }
            Err(CloudError::NotYetPropagated(why)) => {
                return Err(CloudError::Permanent(format!(
                    "{why}, still after {} minutes: check that the role exists and trusts its caller (Slipway's role for the account's access role, eks.amazonaws.com and ec2.amazonaws.com for the EKS roles), then retry",
                    SETTLING.as_secs() / 60
                )));
            }
            other => return other,
        }
    }
}
