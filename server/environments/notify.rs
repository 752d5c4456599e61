//! Telling people: in-app notifications (the unread badge) and an optional outgoing webhook per
//! platform. Both are written inside the transaction of the change they report, so nobody hears
//! of a change that rolled back. Webhooks are delivered by a job (`webhook.deliver`), retried
//! with backoff by the job engine, and signed: `X-Slipway-Signature: sha256=<hex>` is the
//! HMAC-SHA256 of `<X-Slipway-Timestamp>.<body>` under the platform's webhook secret.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::jobs::queue::{self, NewJob};
use crate::jobs::{Handler, StepContext, StepError, StepFuture};

/// What happened to an environment that someone should hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Submitted,
    Approved,
    Rejected,
    Cancelled,
    Expired,
    ExtensionRequested,
    Extended,
    Ready,
    Failed,
    ExpiringSoon,
    TearingDown,
    TornDown,
    /// The drift check found differences from the plan nobody accepted.
    Drifted,
    DriftAccepted,
    Reconciling,
    /// Its spend this month passed 80 % or 100 % of its monthly budget.
    BudgetWarning,
    /// A Kubernetes upgrade of its cluster awaits the approvers.
    UpgradeRequested,
    UpgradeApprovalCounted,
    UpgradeRejected,
    UpgradeWithdrawn,
    /// The upgrade job started (approved, needing no approval, or retried).
    Upgrading,
    Upgraded,
    UpgradeFailed,
    /// A blueprint roll-out's wave reaching it awaits the approvers.
    RolloutAwaitingApproval,
    /// A roll-out (or its roll-back) started its job.
    RollingOut,
    /// It runs the roll-out's revision now (or is back on its previous one).
    RolledOut,
    /// Its roll-out job failed: the roll-out paused.
    RolloutFailed,
    /// Left out of a roll-out.
    RolloutSkipped,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Submitted => "submitted",
            Event::Approved => "approved",
            Event::Rejected => "rejected",
            Event::Cancelled => "cancelled",
            Event::Expired => "expired",
            Event::ExtensionRequested => "extension_requested",
            Event::Extended => "extended",
            Event::Ready => "ready",
            Event::Failed => "failed",
            Event::ExpiringSoon => "expiring_soon",
            Event::TearingDown => "tearing_down",
            Event::TornDown => "torn_down",
            Event::Drifted => "drifted",
            Event::DriftAccepted => "drift_accepted",
            Event::Reconciling => "reconciling",
            Event::BudgetWarning => "budget_warning",
            Event::UpgradeRequested => "upgrade_requested",
            Event::UpgradeApprovalCounted => "upgrade_approval_counted",
            Event::UpgradeRejected => "upgrade_rejected",
            Event::UpgradeWithdrawn => "upgrade_withdrawn",
            Event::Upgrading => "upgrading",
            Event::Upgraded => "upgraded",
            Event::UpgradeFailed => "upgrade_failed",
            Event::RolloutAwaitingApproval => "rollout_awaiting_approval",
            Event::RollingOut => "rolling_out",
            Event::RolledOut => "rolled_out",
            Event::RolloutFailed => "rollout_failed",
            Event::RolloutSkipped => "rollout_skipped",
        }
    }

    /// Who hears of it: the approvers of requests, upgrades and roll-out waves awaiting a
    /// decision, of drift, budgets and failed upgrades and roll-outs (the platform team
    /// decides what to do about them),
    /// otherwise the requester (whose cluster is upgraded).
    fn for_approvers(self) -> bool {
        matches!(
            self,
            Event::Submitted
                | Event::ExtensionRequested
                | Event::Drifted
                | Event::BudgetWarning
                | Event::UpgradeRequested
                | Event::UpgradeWithdrawn
                | Event::UpgradeFailed
                | Event::RolloutAwaitingApproval
                | Event::RolloutFailed
        )
    }

    /// The events sent to the platform's webhook.
    fn goes_to_webhook(self) -> bool {
        !matches!(
            self,
            Event::Cancelled | Event::Extended | Event::TearingDown | Event::UpgradeApprovalCounted
        )
    }
}

/// The environment a notification is about.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Target {
    pub id: Uuid,
    pub platform_id: Uuid,
    pub platform_slug: String,
    pub name: String,
    pub environment_type: String,
    pub requested_by: Uuid,
    pub approver_roles: Vec<String>,
}

pub const WEBHOOK_JOB: &str = "webhook.deliver";

/// Records `event` for the people concerned and, if the platform has a webhook, enqueues its
/// delivery; all inside the caller's transaction. `actor` is who did it (none for the system):
/// nobody is told of their own action. `base_url` makes the link in the message.
pub async fn notify(
    tx: &mut PgConnection,
    target: &Target,
    event: Event,
    actor: Option<Uuid>,
    message: &str,
    base_url: &str,
) -> Result<(), sqlx::Error> {
    if event.for_approvers() {
        // Members of the platform who hold one of the type's approver roles; never the requester.
        sqlx::query(
            "INSERT INTO notification (user_id, environment_id, kind, message)
             SELECT m.user_id, $2, $3, $4 FROM platform_member m JOIN app_user u ON u.id = m.user_id
             WHERE m.platform_id = $1 AND u.roles && $5 AND u.id <> $6
               AND u.id IS DISTINCT FROM $7",
        )
        .bind(target.platform_id)
        .bind(target.id)
        .bind(event.as_str())
        .bind(message)
        .bind(&target.approver_roles)
        .bind(target.requested_by)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
    } else if actor != Some(target.requested_by) {
        sqlx::query(
            "INSERT INTO notification (user_id, environment_id, kind, message) VALUES ($1, $2, $3, $4)",
        )
        .bind(target.requested_by)
        .bind(target.id)
        .bind(event.as_str())
        .bind(message)
        .execute(&mut *tx)
        .await?;
    }
    if !event.goes_to_webhook() {
        return Ok(());
    }
    let has_webhook: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM platform_webhook WHERE platform_id = $1)")
            .bind(target.platform_id)
            .fetch_one(&mut *tx)
            .await?;
    if has_webhook {
        let link = format!("{base_url}/environments/{}", target.id);
        let payload = WebhookPayload {
            platform_id: target.platform_id,
            body: WebhookMessage {
                environment: Some(WebhookEnvironment {
                    environment_type: target.environment_type.clone(),
                    id: target.id,
                    name: target.name.clone(),
                    platform: target.platform_slug.clone(),
                    url: link.clone(),
                }),
                event: event.as_str().to_owned(),
                text: format!("{message} <{link}|Open in Slipway>"),
            },
        };
        let payload = serde_json::to_value(payload).expect("a webhook payload serialises");
        let mut job = NewJob::new(WEBHOOK_JOB, payload);
        job.max_attempts = 8;
        queue::enqueue(&mut *tx, &job).await.map_err(|e| match e {
            queue::EnqueueError::Db(e) => e,
            queue::EnqueueError::Duplicate(_) => unreachable!("webhook jobs have no unique key"),
        })?;
    }
    Ok(())
}

/// The payload of a `webhook.deliver` job.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookPayload {
    /// The platform whose webhook receives `body` (read when sending: it may have changed).
    pub platform_id: Uuid,
    pub body: WebhookMessage,
}

/// What the webhook receives, Slack-compatible: `text` is what a channel shows. Fields in
/// alphabetical order, as the body has always been written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<WebhookEnvironment>,
    pub event: String,
    pub text: String,
}

/// The environment a webhook message is about.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEnvironment {
    pub environment_type: String,
    pub id: Uuid,
    pub name: String,
    pub platform: String,
    pub url: String,
}

/// A platform's webhook as its settings page shows it (the secret is shown once, when made).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Webhook {
    pub url: String,
    pub updated_at: DateTime<Utc>,
}

pub async fn webhook(db: &PgPool, platform: Uuid) -> Result<Option<Webhook>, sqlx::Error> {
    sqlx::query_as("SELECT url, updated_at FROM platform_webhook WHERE platform_id = $1")
        .bind(platform)
        .fetch_optional(db)
        .await
}

/// Checks a webhook URL: http(s), a host, no credentials in it, and not an address Slipway
/// refuses to send to (loopback, private, link-local…; see `outbound`) unless `allowed`.
pub async fn check_webhook_url(url: &str, allowed: &[ipnet::IpNet]) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|_| "Enter a URL such as https://hooks.slack.com/services/…".to_owned())?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err("Use an http:// or https:// URL with a host.".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("Leave credentials out of the URL; requests are signed instead.".into());
    }
    if url.len() > 2000 {
        return Err("Use a URL of at most 2,000 characters.".into());
    }
    crate::outbound::check_target(&parsed, allowed).await
}

/// A webhook URL as the audit log keeps it: its origin only. The path of a chat webhook is a
/// credential (Slack's `/services/T…/B…/<secret>`), and admins read the audit log.
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) if parsed.path() != "/" || parsed.query().is_some() => {
            format!("{}/…", parsed.origin().ascii_serialization())
        }
        Ok(parsed) => parsed.origin().ascii_serialization(),
        Err(_) => String::new(),
    }
}

/// Sets the platform's webhook URL; a new secret is made when there was none or `rotate` is
/// set, and returned (the only time it is shown).
pub async fn set_webhook(
    db: &PgPool,
    platform: Uuid,
    url: &str,
    rotate: bool,
    by: &crate::auth::Principal,
) -> Result<Option<String>, sqlx::Error> {
    let secret = crate::auth::random_secret();
    let mut tx = db.begin().await?;
    let made_new: bool = sqlx::query_scalar(
        "INSERT INTO platform_webhook (platform_id, url, secret, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (platform_id) DO UPDATE SET url = EXCLUDED.url, updated_by = EXCLUDED.updated_by,
             updated_at = now(),
             secret = CASE WHEN $5 THEN EXCLUDED.secret ELSE platform_webhook.secret END
         RETURNING secret = $3",
    )
    .bind(platform)
    .bind(url.trim())
    .bind(&secret)
    .bind(by.user.id.0)
    .bind(rotate)
    .fetch_one(&mut *tx)
    .await?;
    crate::audit::record(
        &mut *tx,
        &crate::audit::Actor::from(by),
        "platform.webhook_set",
        &format!("platform:{platform}"),
        json!({ "url": shown_url(url.trim()), "secret_rotated": made_new }),
    )
    .await?;
    tx.commit().await?;
    Ok(made_new.then_some(secret))
}

pub async fn delete_webhook(
    db: &PgPool,
    platform: Uuid,
    by: &crate::auth::Principal,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM platform_webhook WHERE platform_id = $1")
        .bind(platform)
        .execute(&mut *tx)
        .await?;
    crate::audit::record(
        &mut *tx,
        &crate::audit::Actor::from(by),
        "platform.webhook_removed",
        &format!("platform:{platform}"),
        json!({}),
    )
    .await?;
    tx.commit().await
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Delivers one webhook message. Network errors, 5xx, 408 and 429 are retried with backoff;
/// other 4xx mean the hook is wrong and are not (the job is discarded with the status).
///
/// The target is checked again here, after resolution (the name may point elsewhere now), and
/// the client connects only to the checked addresses. Redirects are not followed, and proxies
/// from the environment are not used (the check must see the address connected to). What the
/// job records is readable by every platform engineer, so it is only the status code or the kind
/// of failure: never the response body, never the URL (Slack's carries its secret).
pub struct WebhookDelivery {
    client: reqwest::Client,
    allowed: Vec<ipnet::IpNet>,
}

impl WebhookDelivery {
    /// `allowed`: the ranges an admin allowed (`webhook_allowed_ranges`).
    pub fn new(allowed: Vec<ipnet::IpNet>) -> WebhookDelivery {
        let resolver = crate::outbound::GuardedResolver::new(allowed.clone());
        WebhookDelivery::with_resolver(allowed, resolver)
    }

    /// With a resolver of the caller's (tests make names resolve where they want).
    pub fn with_resolver(
        allowed: Vec<ipnet::IpNet>,
        resolver: crate::outbound::GuardedResolver,
    ) -> WebhookDelivery {
        crate::init_tls();
        WebhookDelivery {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .dns_resolver(resolver)
                .build()
                .expect("the HTTP client's settings are valid"),
            allowed,
        }
    }
}

/// What a failed send says, without the URL or anything the target sent.
fn send_failure(e: &reqwest::Error) -> StepError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<crate::outbound::Refused>() {
            return StepError::Permanent(format!("not sent: {refused}"));
        }
        source = err.source();
    }
    StepError::Transient(
        if e.is_timeout() {
            "the webhook did not answer within 10 seconds"
        } else if e.is_connect() {
            "could not connect to the webhook"
        } else {
            "sending the webhook failed"
        }
        .into(),
    )
}

impl Handler for WebhookDelivery {
    type Payload = WebhookPayload;

    fn kind(&self) -> &'static str {
        WEBHOOK_JOB
    }

    fn steps(&self, _: &WebhookPayload) -> Vec<String> {
        vec!["deliver".into()]
    }

    fn run_step<'a>(
        &'a self,
        _: &'a str,
        payload: &'a WebhookPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let transient = |e: &dyn std::fmt::Display| StepError::Transient(e.to_string());
            let hook: Option<(String, String)> =
                sqlx::query_as("SELECT url, secret FROM platform_webhook WHERE platform_id = $1")
                    .bind(payload.platform_id)
                    .fetch_optional(&ctx.db)
                    .await
                    .map_err(|e| transient(&e))?;
            let Some((url, secret)) = hook else {
                return ctx
                    .log("the platform's webhook was removed; nothing sent")
                    .await;
            };
            let Ok(parsed) = reqwest::Url::parse(&url) else {
                return Err(StepError::Permanent("the webhook URL is not valid".into()));
            };
            // Addresses written in the URL never reach the resolver: checked here.
            if let Some(ip) = crate::outbound::literal_ip(&parsed)
                && crate::outbound::is_refused(ip, &self.allowed)
            {
                return Err(StepError::Permanent(format!(
                    "not sent: {ip} is a loopback, private or link-local address (see \
                     webhook_allowed_ranges)"
                )));
            }
            let body = serde_json::to_vec(&payload.body).map_err(|e| transient(&e))?;
            let timestamp = Utc::now().timestamp();
            let response = self
                .client
                .post(parsed)
                .header("content-type", "application/json")
                .header("x-slipway-event", &payload.body.event)
                .header("x-slipway-timestamp", timestamp.to_string())
                .header("x-slipway-signature", signature(&secret, timestamp, &body))
                .body(body)
                .send()
                .await
                .map_err(|e| send_failure(&e))?;
            let status = response.status();
            if status.is_success() {
                return ctx
                    .log(&format!("delivered (HTTP {})", status.as_u16()))
                    .await;
            }
            let message = if status.is_redirection() {
                format!(
                    "the webhook answered HTTP {}; redirects are not followed",
                    status.as_u16()
                )
            } else {
                format!("the webhook answered HTTP {}", status.as_u16())
            };
            if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
                Err(StepError::Transient(message))
            } else {
                Err(StepError::Permanent(message))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::shown_url;

    #[test]
    fn the_audit_log_keeps_only_the_origin_of_a_webhook() {
        assert_eq!(
            shown_url("https://hooks.slack.com/services/T0/B0/secret?x=1"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            shown_url("http://chat.example:8080/"),
            "http://chat.example:8080"
        );
    }
}
