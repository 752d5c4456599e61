//! Accounts in the organization: created (or a request in flight followed, or an account of
//! Slipway's adopted), placed in their organizational unit, and what a failed request means.

use super::cloud::{AccountCreation, AccountSpec, Organization, Provider, Tags};
use super::waits::wait_for;
use crate::jobs::{StepContext, StepError};

/// The units of `path` under the organization's base unit (created or adopted, with the
/// blueprint's SCPs on the first, the platform's), and the account moved into the last.
/// Returns the path as shown (`shop/long-lived`), or `None` for a plan without units.
pub(super) async fn place<P: Provider>(
    p: &P,
    ctx: &StepContext,
    organization: &Organization,
    account: &str,
    path: &[String],
    policies: &[String],
) -> Result<Option<String>, StepError> {
    if path.is_empty() {
        return Ok(None);
    }
    let mut unit = organization.base_unit.clone();
    for (depth, name) in path.iter().enumerate() {
        unit = p.ensure_unit(&unit, name).await?;
        if depth == 0 {
            p.attach_policies(&unit, policies).await?;
        }
    }
    p.place_account(account, &unit).await?;
    let shown = path.join("/");
    ctx.log(&format!(
        "account {account} is in organizational unit {shown} ({unit})"
    ))
    .await?;
    Ok(Some(shown))
}

/// An account named `spec.name`: a request in flight followed (the one recorded on the step
/// under `request_key`, else one Organizations still lists for the name), an existing one
/// adopted when `ours` accepts its tags, or a new one created. Returns its id.
pub(super) async fn obtain<P: Provider>(
    p: &P,
    ctx: &StepContext,
    spec: &AccountSpec,
    request_key: &str,
    ours: impl Fn(&Tags) -> bool,
) -> Result<String, StepError> {
    let name = &spec.name;
    // A request in flight first (accounts being created are not listed yet), then the list.
    let pending = match ctx.recorded(request_key).await? {
        Some(request) => Some(request),
        None => p.pending_account_request(name).await?,
    };
    if let Some(request) = pending {
        ctx.log(&format!("following account request {request}"))
            .await?;
        return creation(p, ctx, &request, request_key, spec).await;
    }
    if let Some(existing) = p.find_account(name).await? {
        if !ours(&existing.tags) {
            return Err(StepError::Permanent(format!(
                "an account named {name} ({}) exists and is not Slipway's for this; rename the environment or retire that account",
                existing.id
            )));
        }
        ctx.log(&format!("adopted account {} ({name})", existing.id))
            .await?;
        return Ok(existing.id);
    }
    let request = p.create_account(spec).await?;
    ctx.record(request_key, &request).await?;
    ctx.log(&format!(
        "CreateAccount {name} <{}>: request {request}",
        spec.email
    ))
    .await?;
    creation(p, ctx, &request, request_key, spec).await
}

/// Waits for the CreateAccount `request`. A failed request is forgotten, so the next attempt
/// (the job's own retry, or a person's Retry) asks for the account again instead of following
/// the dead request.
async fn creation<P: Provider>(
    p: &P,
    ctx: &StepContext,
    request: &str,
    request_key: &str,
    spec: &AccountSpec,
) -> Result<String, StepError> {
    let reason = match account_request_outcome(p, ctx, request).await? {
        Ok(id) => return Ok(id),
        Err(reason) => reason,
    };
    ctx.forget(request_key).await?;
    ctx.log(&format!("account request {request} failed: {reason}"))
        .await?;
    Err(account_failure(&reason, spec))
}

/// Waits until the CreateAccount `request` ends: the account id, or why it failed.
pub(super) async fn account_request_outcome<P: Provider>(
    p: &P,
    ctx: &StepContext,
    request: &str,
) -> Result<Result<String, String>, StepError> {
    wait_for(ctx, "the account", || async {
        match p.account_creation(request).await? {
            AccountCreation::InProgress => Ok(None),
            AccountCreation::Succeeded(id) => Ok(Some(Ok(id))),
            AccountCreation::Failed(reason) => Ok(Some(Err(reason))),
        }
    })
    .await
}

/// What a failed CreateAccount means, by the failure reasons Organizations documents: two are
/// worth asking again (another change to the organization was in progress, an AWS fault), the
/// others need a person, told what to do.
fn account_failure(reason: &str, spec: &AccountSpec) -> StepError {
    let name = &spec.name;
    match reason {
        "CONCURRENT_ACCOUNT_MODIFICATION" | "INTERNAL_FAILURE" => StepError::Transient(format!(
            "Organizations could not create account {name} ({reason}); asking again"
        )),
        "EMAIL_ALREADY_EXISTS" => StepError::Permanent(format!(
            "Organizations refused account {name}: its root e-mail address {} is in use by another AWS account (a closed account keeps its address for 90 days); choose another environment name or account e-mail domain, or reuse the account",
            spec.email
        )),
        "ACCOUNT_LIMIT_EXCEEDED" => StepError::Permanent(format!(
            "Organizations refused account {name}: the organization has as many accounts as its quota allows (closed accounts count for 90 days); ask AWS for a higher quota or retire accounts, then retry"
        )),
        "INVALID_EMAIL" | "INVALID_ADDRESS" => StepError::Permanent(format!(
            "Organizations refused account {name}: {reason} for {}; fix the account e-mail domain in the cloud settings, then retry",
            spec.email
        )),
        other => StepError::Permanent(format!(
            "Organizations could not create account {name}: {other}; see the organization's CreateAccount status in the AWS console, then retry"
        )),
    }
}
