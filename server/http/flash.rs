//! Flash messages: after a form that worked, the page it redirects to says what happened
//! (POST-redirect-GET). A handler answers with [`done`]; the authentication middleware turns the
//! flash into a short-lived cookie, and on the next page view reads it into the shell and clears
//! it. The cookie holds a code, never text: a forged cookie can only pick one of these messages.

use axum::response::{IntoResponse, Redirect, Response};

/// What a form did, as the next page tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flash {
    PlatformCreated,
    PlatformArchived,
    MemberAdded,
    MemberRemoved,
    ScopeSaved,
    RevisionCreated,
    RevisionSubmitted,
    ReviewRecorded,
    /// With what the generation changed: added, marked obsolete, revived, kept.
    BacklogGenerated {
        added: u32,
        obsoleted: u32,
        revived: u32,
        kept: u32,
    },
    BacklogItemAdded,
    BacklogItemSaved,
    BacklogItemMoved,
    EnvironmentRequested,
    ApprovalCounted,
    EnvironmentApproved,
    EnvironmentRejected,
    RequestCancelled,
    TtlExtended,
    ExtensionRequested,
    TeardownStarted,
    RetryStarted,
    DevopsStarted,
    JobRetried,
    JobCancelRequested,
    NotificationsRead,
    WebhookRemoved,
    RolesChanged,
    TokenRevoked,
    SignedOut,
    SsoRolesSaved,
    SsoRolesReset,
    TeamCreated,
    TeamSaved,
    TeamDeleted,
    ServiceOnboarding,
    DriftCheckStarted,
    ReconcileStarted,
    DriftAccepted,
    VersionCorrected,
    UpgradeRequested,
    UpgradeStarted,
    UpgradeRejected,
    UpgradeWithdrawn,
    RolloutStarted,
    WaveApproved,
    RolloutPaused,
    RolloutResumed,
    RolloutSkipped,
    RollingBack,
}

impl Flash {
    /// Every flash without data.
    const ALL: [Flash; 48] = [
        Flash::PlatformCreated,
        Flash::PlatformArchived,
        Flash::MemberAdded,
        Flash::MemberRemoved,
        Flash::ScopeSaved,
        Flash::RevisionCreated,
        Flash::RevisionSubmitted,
        Flash::ReviewRecorded,
        Flash::BacklogItemAdded,
        Flash::BacklogItemSaved,
        Flash::BacklogItemMoved,
        Flash::EnvironmentRequested,
        Flash::ApprovalCounted,
        Flash::EnvironmentApproved,
        Flash::EnvironmentRejected,
        Flash::RequestCancelled,
        Flash::TtlExtended,
        Flash::ExtensionRequested,
        Flash::TeardownStarted,
        Flash::RetryStarted,
        Flash::DevopsStarted,
        Flash::JobRetried,
        Flash::JobCancelRequested,
        Flash::NotificationsRead,
        Flash::WebhookRemoved,
        Flash::RolesChanged,
        Flash::TokenRevoked,
        Flash::SignedOut,
        Flash::SsoRolesSaved,
        Flash::SsoRolesReset,
        Flash::TeamCreated,
        Flash::TeamSaved,
        Flash::TeamDeleted,
        Flash::ServiceOnboarding,
        Flash::DriftCheckStarted,
        Flash::ReconcileStarted,
        Flash::DriftAccepted,
        Flash::VersionCorrected,
        Flash::UpgradeRequested,
        Flash::UpgradeStarted,
        Flash::UpgradeRejected,
        Flash::UpgradeWithdrawn,
        Flash::RolloutStarted,
        Flash::WaveApproved,
        Flash::RolloutPaused,
        Flash::RolloutResumed,
        Flash::RolloutSkipped,
        Flash::RollingBack,
    ];

    /// The cookie's value.
    pub fn code(self) -> String {
        if let Flash::BacklogGenerated {
            added,
            obsoleted,
            revived,
            kept,
        } = self
        {
            return format!("backlog_generated.{added}.{obsoleted}.{revived}.{kept}");
        }
        self.name().to_owned()
    }

    fn name(self) -> &'static str {
        match self {
            Flash::BacklogGenerated { .. } => "backlog_generated",
            Flash::PlatformCreated => "platform_created",
            Flash::PlatformArchived => "platform_archived",
            Flash::MemberAdded => "member_added",
            Flash::MemberRemoved => "member_removed",
            Flash::ScopeSaved => "scope_saved",
            Flash::RevisionCreated => "revision_created",
            Flash::RevisionSubmitted => "revision_submitted",
            Flash::ReviewRecorded => "review_recorded",
            Flash::BacklogItemAdded => "backlog_item_added",
            Flash::BacklogItemSaved => "backlog_item_saved",
            Flash::BacklogItemMoved => "backlog_item_moved",
            Flash::EnvironmentRequested => "environment_requested",
            Flash::ApprovalCounted => "approval_counted",
            Flash::EnvironmentApproved => "environment_approved",
            Flash::EnvironmentRejected => "environment_rejected",
            Flash::RequestCancelled => "request_cancelled",
            Flash::TtlExtended => "ttl_extended",
            Flash::ExtensionRequested => "extension_requested",
            Flash::TeardownStarted => "teardown_started",
            Flash::RetryStarted => "retry_started",
            Flash::DevopsStarted => "devops_started",
            Flash::JobRetried => "job_retried",
            Flash::JobCancelRequested => "job_cancel_requested",
            Flash::NotificationsRead => "notifications_read",
            Flash::WebhookRemoved => "webhook_removed",
            Flash::RolesChanged => "roles_changed",
            Flash::TokenRevoked => "token_revoked",
            Flash::SignedOut => "signed_out",
            Flash::SsoRolesSaved => "sso_roles_saved",
            Flash::SsoRolesReset => "sso_roles_reset",
            Flash::TeamCreated => "team_created",
            Flash::TeamSaved => "team_saved",
            Flash::TeamDeleted => "team_deleted",
            Flash::ServiceOnboarding => "service_onboarding",
            Flash::DriftCheckStarted => "drift_check_started",
            Flash::ReconcileStarted => "reconcile_started",
            Flash::DriftAccepted => "drift_accepted",
            Flash::VersionCorrected => "version_corrected",
            Flash::UpgradeRequested => "upgrade_requested",
            Flash::UpgradeStarted => "upgrade_started",
            Flash::UpgradeRejected => "upgrade_rejected",
            Flash::UpgradeWithdrawn => "upgrade_withdrawn",
            Flash::RolloutStarted => "rollout_started",
            Flash::WaveApproved => "wave_approved",
            Flash::RolloutPaused => "rollout_paused",
            Flash::RolloutResumed => "rollout_resumed",
            Flash::RolloutSkipped => "rollout_skipped",
            Flash::RollingBack => "rolling_back",
        }
    }

    pub fn parse(code: &str) -> Option<Flash> {
        if let Some(counts) = code.strip_prefix("backlog_generated.") {
            let counts: Vec<u32> = counts
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let [added, obsoleted, revived, kept] = counts[..] else {
                return None;
            };
            return Some(Flash::BacklogGenerated {
                added,
                obsoleted,
                revived,
                kept,
            });
        }
        Flash::ALL.into_iter().find(|f| f.name() == code)
    }

    /// What the page says.
    pub fn message(self) -> String {
        let text = match self {
            Flash::BacklogGenerated {
                added,
                obsoleted,
                revived,
                kept,
            } => {
                return format!(
                    "Backlog generated from the approved blueprint: {added} added, {obsoleted} marked obsolete, {revived} revived, {kept} kept as they were (with your edits)."
                );
            }
            Flash::PlatformCreated => {
                "Platform created. Next: write its technical scope, then its first blueprint revision."
            }
            Flash::PlatformArchived => {
                "Platform archived: it is read-only, and no new environments can be requested."
            }
            Flash::MemberAdded => "Member added.",
            Flash::MemberRemoved => "Member removed.",
            Flash::ScopeSaved => "Scope saved.",
            Flash::RevisionCreated => "Revision saved as a new draft.",
            Flash::RevisionSubmitted => {
                "Submitted for review: the platform's other engineers are notified."
            }
            Flash::ReviewRecorded => "Review recorded: the author is notified.",
            Flash::BacklogItemAdded => "Backlog item added.",
            Flash::BacklogItemSaved => "Backlog item saved.",
            Flash::BacklogItemMoved => "Backlog item moved.",
            Flash::EnvironmentRequested => {
                "Request submitted: the platform team is notified, and this page shows its decision."
            }
            Flash::ApprovalCounted => {
                "Approval recorded: the policy needs more approvers before it starts."
            }
            Flash::EnvironmentApproved => "Approved.",
            Flash::EnvironmentRejected => "Rejected: the requester is notified.",
            Flash::RequestCancelled => "Request cancelled.",
            Flash::TtlExtended => "Time to live extended.",
            Flash::ExtensionRequested => {
                "Extension sent for approval: the platform team is notified."
            }
            Flash::TeardownStarted => "Teardown started: this page follows it.",
            Flash::RetryStarted => "Retrying from the failed step: this page follows it.",
            Flash::DevopsStarted => "DevOps environment started: this page follows it.",
            Flash::JobRetried => "Job queued again.",
            Flash::JobCancelRequested => "Cancel requested: the job stops between steps.",
            Flash::NotificationsRead => "All notifications marked read.",
            Flash::WebhookRemoved => "Webhook removed.",
            Flash::RolesChanged => "Roles changed.",
            Flash::TokenRevoked => "Token revoked.",
            Flash::SignedOut => "Signed out.",
            Flash::SsoRolesSaved => {
                "Saved: the next single sign-on of each person uses this mapping."
            }
            Flash::SsoRolesReset => {
                "Reset: the mapping of the configuration (oidc_role_map) is in force again."
            }
            Flash::TeamCreated => {
                "Team created: environments requested from now on give it its namespaces and access."
            }
            Flash::TeamSaved => {
                "Team saved: environments requested from now on are built with these settings."
            }
            Flash::TeamDeleted => "Team deleted.",
            Flash::DriftCheckStarted => "Drift check started: this page shows what it finds.",
            Flash::ReconcileStarted => {
                "Reconcile started: the node group and every object are set back to the plan."
            }
            Flash::DriftAccepted => "Drift accepted: it is recorded with your reason.",
            Flash::VersionCorrected => {
                "Dates saved: they stand until EKS itself answers for the version."
            }
            Flash::UpgradeRequested => {
                "Upgrade asked for: the environment's approvers are notified."
            }
            Flash::UpgradeStarted => "Upgrade started: this page follows its job.",
            Flash::UpgradeRejected => "Upgrade rejected: whoever asked for it is notified.",
            Flash::UpgradeWithdrawn => "Upgrade withdrawn: the approvers are notified.",
            Flash::RolloutStarted => "Roll-out started: its first wave awaits its approvals.",
            Flash::WaveApproved => "Approval counted: the wave starts once it has all it needs.",
            Flash::RolloutPaused => "Roll-out paused: nothing new starts; running jobs finish.",
            Flash::RolloutResumed => "Roll-out resumed.",
            Flash::RolloutSkipped => "Environment skipped: it stays on its revision.",
            Flash::RollingBack => {
                "Rolling back: each environment the roll-out reached gets its previous plan again."
            }
            Flash::ServiceOnboarding => {
                "Service registered: its repository and its entries in the environments' repositories are being made (this page follows)."
            }
        };
        text.to_owned()
    }
}

/// The answer to a form that worked: see the page at `to`, which says `flash`.
pub fn done(to: &str, flash: Flash) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.extensions_mut().insert(flash);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flash_reads_back_from_its_code() {
        for flash in Flash::ALL {
            assert_eq!(Flash::parse(&flash.code()), Some(flash));
        }
        let generated = Flash::BacklogGenerated {
            added: 3,
            obsoleted: 1,
            revived: 0,
            kept: 12,
        };
        assert_eq!(Flash::parse(&generated.code()), Some(generated));
        assert!(generated.message().contains("3 added, 1 marked obsolete"));
        assert_eq!(Flash::parse("backlog_generated.1.2"), None);
        assert_eq!(Flash::parse("<script>"), None);
    }
}
