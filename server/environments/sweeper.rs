//! The periodic sweep (`environments.sweep`, every minute, on whichever worker claims it):
//! expires requests nobody decided in time, warns before an ephemeral environment's TTL ends,
//! starts the teardown of those whose TTL has ended, and marks failed the environments whose
//! job ended unfinished while their worker died before saying so.

use std::time::Duration;

use super::lifecycle;
use crate::clock::Clock;
use crate::jobs::{Handler, NoPayload, StepContext, StepError, StepFuture};

pub const SWEEP_JOB: &str = "environments.sweep";

pub struct Sweeper {
    pub clock: Clock,
    /// Where people open Slipway, for the links in notifications.
    pub base_url: String,
}

impl Handler for Sweeper {
    type Payload = NoPayload;

    fn kind(&self) -> &'static str {
        SWEEP_JOB
    }

    fn steps(&self, _: &NoPayload) -> Vec<String> {
        vec![
            "expire-requests".into(),
            "reap-ttl".into(),
            "reconcile-jobs".into(),
        ]
    }

    fn every(&self) -> Option<Duration> {
        Some(Duration::from_secs(60))
    }

    fn run_step<'a>(
        &'a self,
        step: &'a str,
        _: &'a NoPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let failed = |e: super::EnvironmentError| StepError::Transient(e.to_string());
            let now = self.clock.now();
            if step == "expire-requests" {
                let expired = lifecycle::expire_stale(&ctx.db, now, &self.base_url)
                    .await
                    .map_err(failed)?;
                ctx.log(&format!("{expired} requests expired")).await
            } else if step == "reconcile-jobs" {
                let failed_now = lifecycle::reconcile_abandoned(&ctx.db, &self.base_url)
                    .await
                    .map_err(failed)?;
                ctx.log(&format!(
                    "{failed_now} environments with an abandoned job marked failed"
                ))
                .await
            } else {
                let (warned, reaped) = lifecycle::reap_expired(&ctx.db, now, &self.base_url)
                    .await
                    .map_err(failed)?;
                ctx.log(&format!(
                    "{warned} requesters warned of the end of a TTL; {reaped} teardowns started"
                ))
                .await
            }
        })
    }
}
