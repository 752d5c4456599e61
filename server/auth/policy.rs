//! The one place that decides who may do what. Every handler asks through an extractor
//! (`http::extract`) that calls [`can`]; no route re-implements a rule.

use super::{AuthMethod, Principal, Role, UserId};

/// What an action is done to. Later capabilities add platforms, blueprints, environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The portal as a whole (its pages, its users, its audit log).
    Portal,
    /// One user's account: profile, tokens, sessions.
    Account(UserId),
    /// A platform, and whether the caller is one of its members.
    Platform { member: bool },
    /// A blueprint revision of a platform, and who wrote it.
    Revision { member: bool, author: UserId },
    /// An environment (or request), who requested it, whether the caller is a member of its
    /// platform, and whether the caller is in one of the teams it was built for.
    Environment {
        requester: UserId,
        member: bool,
        in_team: bool,
    },
    /// An app team of a platform: whether the caller is in it, and a member of the platform.
    Team { in_team: bool, member: bool },
}

/// Everything a caller can ask to do. Later capabilities add their actions here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See the portal's pages (overview, status) and one's own profile.
    UsePortal,
    /// Create and revoke API tokens, sign out everywhere: only one's own, only from a browser.
    ManageAccount,
    /// Invite users and change roles.
    ManageUsers,
    /// Read the audit log.
    ViewAudit,
    /// Start a new platform (delivery engagement).
    CreatePlatform,
    /// See a platform and its approved blueprint.
    ViewPlatform,
    /// See the planning of a platform: scope, drafts, reviews, backlog.
    ViewPlanning,
    /// Change a platform: scope, blueprint revisions, backlog, members, archive.
    EditPlatform,
    /// Review (and approve) a blueprint revision.
    ReviewBlueprint,
    /// See the job queue: jobs, steps, logs, errors.
    ViewJobs,
    /// Retry or cancel jobs.
    ControlJobs,
    /// See the account pools of ephemeral environments and their quarantined accounts.
    ViewAccountPool,
    /// Read the Backstage catalog export: every platform's teams and environments.
    ViewCatalog,
    /// Request an environment on a platform (the environment type says which roles may).
    RequestEnvironment,
    /// See an environment and its hand-over: its requester, the teams it was built for and the
    /// platform team.
    ViewEnvironment,
    /// Use its cluster as the platform team (the admin hand-over): the platform team, on its
    /// own platforms (admins on all).
    AdministerCluster,
    /// Approve or reject it: members of its platform (admins on all), never the requester; the
    /// type's policy then names the approver roles.
    DecideEnvironment,
    /// Withdraw a request awaiting approval: its requester only.
    CancelRequest,
    /// Extend or tear down: its requester or the platform team.
    ChangeEnvironment,
    /// The approvals dashboard.
    ViewApprovals,
    /// Start a platform's DevOps environment (the manual trigger).
    TriggerDevops,
    /// See and test the cloud connection.
    ManageCloud,
    /// Onboard a service for a team: its members, and the platform team of its platform
    /// (admins on all).
    OnboardService,
    /// Maintain an environment: check its drift, reconcile it, accept drift. The platform team
    /// of its platform (admins on all), as for administering its cluster.
    MaintainEnvironment,
    /// Correct the Kubernetes version calendar (EKS's support dates): admins.
    CorrectVersionCalendar,
    /// Roll a blueprint revision out to a platform's environments: its platform engineers
    /// (admins on all), as for its planning. Each wave's approvals follow its environments' policies.
    RollOutBlueprint,
}

/// Whether `principal` may perform `action` on `subject`.
pub fn can(principal: &Principal, action: Action, subject: Subject) -> bool {
    match (action, subject) {
        (Action::UsePortal, Subject::Portal) => !principal.roles.is_empty(),
        // Tokens cannot mint tokens: a leaked token must not be able to outlive its revocation.
        (Action::ManageAccount, Subject::Account(owner)) => {
            owner == principal.user.id && matches!(principal.method, AuthMethod::Session { .. })
        }
        (
            Action::ManageUsers
            | Action::ViewAudit
            | Action::ManageCloud
            | Action::CorrectVersionCalendar,
            Subject::Portal,
        ) => principal.has(Role::Admin),
        (Action::TriggerDevops, Subject::Platform { member }) => {
            principal.has(Role::PlatformEngineer) && (member || principal.has(Role::Admin))
        }
        (Action::CreatePlatform, Subject::Portal) => {
            principal.has(Role::PlatformEngineer) || principal.has(Role::Admin)
        }
        (Action::ViewPlatform, Subject::Platform { .. }) => !principal.roles.is_empty(),
        // Platform engineers act on the platforms they belong to; admins on all.
        (
            Action::ViewPlanning | Action::EditPlatform | Action::RollOutBlueprint,
            Subject::Platform { member },
        ) => principal.has(Role::Admin) || (member && principal.has(Role::PlatformEngineer)),
        // A platform engineer other than the author approves.
        (Action::ReviewBlueprint, Subject::Revision { member, author }) => {
            principal.has(Role::PlatformEngineer)
                && (member || principal.has(Role::Admin))
                && author != principal.user.id
        }
        (
            Action::ViewJobs
            | Action::ControlJobs
            | Action::ViewApprovals
            | Action::ViewAccountPool
            | Action::ViewCatalog,
            Subject::Portal,
        ) => platform_team(principal),
        (Action::RequestEnvironment, Subject::Platform { .. }) => !principal.roles.is_empty(),
        (
            Action::ViewEnvironment,
            Subject::Environment {
                requester, in_team, ..
            },
        ) => requester == principal.user.id || in_team || platform_team(principal),
        (Action::ChangeEnvironment, Subject::Environment { requester, .. }) => {
            requester == principal.user.id || platform_team(principal)
        }
        (
            Action::AdministerCluster | Action::MaintainEnvironment,
            Subject::Environment { member, .. },
        ) => principal.has(Role::Admin) || (member && principal.has(Role::PlatformEngineer)),
        // As for the platform's scope and backlog: its members decide (the README's approvers
        // are "members holding an approver role"), admins on every platform.
        (
            Action::DecideEnvironment,
            Subject::Environment {
                requester, member, ..
            },
        ) => {
            requester != principal.user.id
                && !principal.roles.is_empty()
                && (member || principal.has(Role::Admin))
        }
        (Action::CancelRequest, Subject::Environment { requester, .. }) => {
            requester == principal.user.id
        }
        (Action::OnboardService, Subject::Team { in_team, member }) => {
            in_team
                || principal.has(Role::Admin)
                || (member && principal.has(Role::PlatformEngineer))
        }
        _ => false,
    }
}

/// Why [`can`] refused `action` on `subject`: a sentence the caller can act on, for the 403's
/// detail. `name` names the subject where it has one (a platform's name), else is empty. Only
/// meaningful after `can` said no; kept beside `can` so the rule and its explanation change
/// together.
pub fn refusal(principal: &Principal, action: Action, subject: Subject, name: &str) -> String {
    let engineer = principal.has(Role::PlatformEngineer);
    let platform = if name.is_empty() {
        "this platform".to_owned()
    } else {
        format!("platform {name}")
    };
    let members_only = |what: &str| {
        if engineer || principal.has(Role::Admin) {
            format!("Only members of {platform} can {what}; ask one of them to add you.")
        } else {
            format!("Only platform engineers who are members of {platform} can {what}.")
        }
    };
    if principal.roles.is_empty() {
        return "Your account has no role: ask an admin to give you one.".into();
    }
    match (action, subject) {
        (Action::ManageAccount, Subject::Account(owner)) if owner == principal.user.id => {
            "API tokens cannot manage accounts: sign in in the browser to do this.".into()
        }
        (Action::ManageAccount, _) => "You can only manage your own account.".into(),
        (Action::ManageUsers, _) => "Only admins can manage users.".into(),
        (Action::ViewAudit, _) => "Only admins can read the audit log.".into(),
        (Action::ManageCloud, _) => "Only admins can manage the cloud connection.".into(),
        (Action::CorrectVersionCalendar, _) => {
            "Only admins can correct the Kubernetes version calendar.".into()
        }
        (Action::CreatePlatform, _) => {
            "Only platform engineers and admins can start a platform.".into()
        }
        (Action::ViewPlanning, _) => members_only("see its scope, drafts and backlog"),
        (Action::EditPlatform, _) => members_only("change it"),
        (Action::TriggerDevops, _) if !engineer => {
            "Only platform engineers can start a DevOps environment.".into()
        }
        (Action::TriggerDevops, _) => members_only("start its DevOps environment"),
        (Action::RollOutBlueprint, _) => members_only("roll its blueprint out"),
        (Action::ReviewBlueprint, Subject::Revision { author, .. })
            if author == principal.user.id =>
        {
            "You wrote this revision: another platform engineer must review it.".into()
        }
        (Action::ReviewBlueprint, _) if !engineer => {
            "Only platform engineers can review a blueprint.".into()
        }
        (Action::ReviewBlueprint, _) => members_only("review its blueprint"),
        (Action::ViewJobs, _) => "Only the platform team can see the job queue.".into(),
        (Action::ControlJobs, _) => "Only the platform team can retry or cancel jobs.".into(),
        (Action::ViewAccountPool, _) => "Only the platform team can see the account pools.".into(),
        (Action::ViewCatalog, _) => {
            "Only the platform team reads the whole catalog: give Backstage a platform engineer's API token.".into()
        }
        (Action::ViewApprovals, _) => {
            "Only the platform team can see the approvals dashboard.".into()
        }
        (Action::DecideEnvironment, Subject::Environment { requester, .. })
            if requester == principal.user.id =>
        {
            "You requested this environment: someone else must decide it.".into()
        }
        // Membership alone decides here (the type's policy then names the approver roles).
        (Action::DecideEnvironment, _) => format!(
            "Only members of {platform} can approve or reject its environment requests; ask one \
             of them to add you."
        ),
        (Action::CancelRequest, _) => "Only the requester can cancel a request.".into(),
        (Action::ViewEnvironment | Action::ChangeEnvironment, _) => {
            "Only its requester and the platform team can change this environment.".into()
        }
        (Action::OnboardService, _) => format!(
            "Only the team's members and the platform team of {platform} can onboard a service \
             for this team."
        ),
        (Action::MaintainEnvironment, _) => format!(
            "Only the platform team of {platform} checks, reconciles and accepts the drift of its \
             environments."
        ),
        (Action::AdministerCluster, _) => format!(
            "Only the platform team of {platform} administers its clusters; your team's hand-over \
             is yours to use."
        ),
        _ => "You are not allowed to do this.".into(),
    }
}

/// The platform team: platform engineers and admins.
fn platform_team(principal: &Principal) -> bool {
    principal.has(Role::PlatformEngineer) || principal.has(Role::Admin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{RoleSet, User, UserId};

    fn principal(roles: &[Role], method: AuthMethod) -> Principal {
        let roles: RoleSet = roles.iter().copied().collect();
        Principal {
            user: User {
                id: UserId(uuid::Uuid::nil()),
                email: "a@example.com".into(),
                name: "A".into(),
                roles: roles.clone(),
                sso: false,
                pending: false,
                created_at: chrono::Utc::now(),
                last_login_at: None,
            },
            roles,
            method,
        }
    }

    #[test]
    fn only_admins_manage_users_and_read_the_audit_log() {
        let session = AuthMethod::Session { token_hash: vec![] };
        for (roles, allowed) in [
            (vec![Role::Developer], false),
            (vec![Role::PlatformEngineer], false),
            (vec![Role::Admin], true),
        ] {
            let p = principal(&roles, session.clone());
            assert_eq!(
                can(&p, Action::ManageUsers, Subject::Portal),
                allowed,
                "{roles:?}"
            );
            assert_eq!(
                can(&p, Action::ViewAudit, Subject::Portal),
                allowed,
                "{roles:?}"
            );
            assert_eq!(
                can(&p, Action::CorrectVersionCalendar, Subject::Portal),
                allowed,
                "{roles:?}"
            );
            assert!(can(&p, Action::UsePortal, Subject::Portal));
        }
    }

    #[test]
    fn platform_engineers_act_on_their_platforms_and_never_approve_their_own_work() {
        let session = AuthMethod::Session { token_hash: vec![] };
        let pe = principal(&[Role::PlatformEngineer], session.clone());
        let dev = principal(&[Role::Developer], session.clone());
        let admin = principal(&[Role::Admin], session);
        let member = Subject::Platform { member: true };
        let outsider = Subject::Platform { member: false };
        assert!(can(&pe, Action::EditPlatform, member));
        assert!(!can(&pe, Action::EditPlatform, outsider));
        assert!(can(&admin, Action::EditPlatform, outsider));
        assert!(!can(&dev, Action::ViewPlanning, member));
        assert!(can(&dev, Action::ViewPlatform, outsider));
        assert!(can(&pe, Action::CreatePlatform, Subject::Portal));
        assert!(!can(&dev, Action::CreatePlatform, Subject::Portal));
        let other = UserId(uuid::Uuid::new_v4());
        let theirs = Subject::Revision {
            member: true,
            author: other,
        };
        let own = Subject::Revision {
            member: true,
            author: pe.user.id,
        };
        assert!(can(&pe, Action::ReviewBlueprint, theirs));
        assert!(!can(&pe, Action::ReviewBlueprint, own));
        assert!(
            !can(&admin, Action::ReviewBlueprint, theirs),
            "approval needs a platform engineer"
        );
    }

    #[test]
    fn a_team_and_its_platform_team_onboard_its_services() {
        let session = AuthMethod::Session { token_hash: vec![] };
        let dev = principal(&[Role::Developer], session.clone());
        let pe = principal(&[Role::PlatformEngineer], session.clone());
        let admin = principal(&[Role::Admin], session);
        // (caller, in the team, member of the platform) → allowed
        let matrix = [
            (&dev, true, false, true),
            (&dev, false, false, false),
            (&dev, false, true, false),
            (&pe, false, true, true),
            (&pe, false, false, false),
            (&pe, true, false, true),
            (&admin, false, false, true),
        ];
        for (who, in_team, member, allowed) in matrix {
            let subject = Subject::Team { in_team, member };
            assert_eq!(
                can(who, Action::OnboardService, subject),
                allowed,
                "{:?} in_team={in_team} member={member}",
                who.roles
            );
        }
    }

    #[test]
    fn requesters_and_the_platform_team_see_environments_and_nobody_decides_their_own() {
        let session = AuthMethod::Session { token_hash: vec![] };
        let dev = principal(&[Role::Developer], session.clone());
        let other_dev = principal(&[Role::Developer], session.clone());
        let pe = principal(&[Role::PlatformEngineer], session);
        let mut other_dev = other_dev;
        other_dev.user.id = UserId(uuid::Uuid::new_v4());
        let devs = Subject::Environment {
            requester: dev.user.id,
            member: true,
            in_team: false,
        };
        let outside = Subject::Environment {
            requester: dev.user.id,
            member: false,
            in_team: false,
        };
        let teams = Subject::Environment {
            requester: dev.user.id,
            member: false,
            in_team: true,
        };
        assert!(can(&dev, Action::ViewEnvironment, devs));
        assert!(!can(&other_dev, Action::ViewEnvironment, devs));
        assert!(
            can(&other_dev, Action::ViewEnvironment, teams),
            "a team sees the environments it uses"
        );
        assert!(!can(&other_dev, Action::ChangeEnvironment, teams));
        assert!(!can(&dev, Action::AdministerCluster, devs));
        assert!(can(&pe, Action::AdministerCluster, devs));
        assert!(!can(&pe, Action::AdministerCluster, outside));
        assert!(
            !can(&dev, Action::MaintainEnvironment, devs),
            "a requester does not reconcile or accept drift"
        );
        assert!(!can(&other_dev, Action::MaintainEnvironment, teams));
        assert!(can(&pe, Action::MaintainEnvironment, devs));
        assert!(!can(&pe, Action::MaintainEnvironment, outside));
        assert!(can(&dev, Action::CancelRequest, devs));
        assert!(!can(&dev, Action::DecideEnvironment, devs));
        let mut pe_other = pe.clone();
        pe_other.user.id = UserId(uuid::Uuid::new_v4());
        assert!(can(&pe_other, Action::DecideEnvironment, devs));
        assert!(
            !can(&pe_other, Action::DecideEnvironment, outside),
            "only members of the platform decide"
        );
        let mut admin = principal(&[Role::Admin], AuthMethod::Session { token_hash: vec![] });
        admin.user.id = UserId(uuid::Uuid::new_v4());
        assert!(can(&admin, Action::DecideEnvironment, outside));
        assert!(can(&pe_other, Action::ChangeEnvironment, devs));
        assert!(!can(&pe_other, Action::CancelRequest, devs));
        assert!(!can(&dev, Action::ViewApprovals, Subject::Portal));
        assert!(can(&pe, Action::ViewApprovals, Subject::Portal));
    }

    #[test]
    fn accounts_are_managed_by_their_owner_in_a_browser_only() {
        let p = principal(&[], AuthMethod::Session { token_hash: vec![] });
        assert!(!can(&p, Action::UsePortal, Subject::Portal));
        assert!(can(&p, Action::ManageAccount, Subject::Account(p.user.id)));
        let other = Subject::Account(UserId(uuid::Uuid::new_v4()));
        assert!(
            !can(&p, Action::ManageAccount, other),
            "only one's own account"
        );
        let t = principal(
            &[Role::Admin],
            AuthMethod::ApiToken {
                token_id: uuid::Uuid::nil(),
            },
        );
        assert!(!can(&t, Action::ManageAccount, Subject::Account(t.user.id)));
        assert!(can(&t, Action::ManageUsers, Subject::Portal));
    }
}
