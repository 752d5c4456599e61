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
}

/// Whether `principal` may perform `action` on `subject`.
pub fn can(principal: &Principal, action: Action, subject: Subject) -> bool {
    match (action, subject) {
        (Action::UsePortal, Subject::Portal) => !principal.roles.is_empty(),
        // Tokens cannot mint tokens: a leaked token must not be able to outlive its revocation.
        (Action::ManageAccount, Subject::Account(owner)) => {
            owner == principal.user.id && matches!(principal.method, AuthMethod::Session { .. })
        }
        (Action::ManageUsers | Action::ViewAudit, Subject::Portal) => principal.has(Role::Admin),
        _ => false,
    }
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
            assert!(can(&p, Action::UsePortal, Subject::Portal));
        }
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
