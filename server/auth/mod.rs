//! Identity and access: who the caller is (sessions, API tokens, single sign-on), what they may
//! do (`policy::can`), and the records behind it (users, one-time links, sign-in failures).

pub mod accounts;
pub mod csrf;
pub mod links;
pub mod oidc;
pub mod password;
pub mod policy;
pub mod ratelimit;
pub mod role_map;
pub mod session;
pub mod tokens;
pub mod users;

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use policy::{Action, Subject, can};
pub use users::{User, UserId};

/// What a person may do in Slipway. A user may hold several.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Developer,
    PlatformEngineer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Developer, Role::PlatformEngineer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Developer => "developer",
            Role::PlatformEngineer => "platform_engineer",
            Role::Admin => "admin",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Developer => "Developer",
            Role::PlatformEngineer => "Platform engineer",
            Role::Admin => "Admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles, stored as `text[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoleSet(BTreeSet<Role>);

impl RoleSet {
    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// For templates, which hold roles behind references: `contains_named(role.as_str())`.
    pub fn contains_named(&self, name: &str) -> bool {
        Role::parse(name).is_some_and(|r| self.contains(r))
    }

    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }

    pub fn intersection(&self, other: &RoleSet) -> RoleSet {
        RoleSet(self.0.intersection(&other.0).copied().collect())
    }

    pub fn is_subset(&self, other: &RoleSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// For the database: `['developer', 'admin']`.
    pub fn to_strings(&self) -> Vec<String> {
        self.iter().map(|r| r.as_str().to_owned()).collect()
    }

    /// From the database; unknown names (impossible under the CHECK constraint) are dropped.
    pub fn from_strings(names: &[String]) -> RoleSet {
        names.iter().filter_map(|n| Role::parse(n)).collect()
    }

    /// Parses a comma-separated list such as `developer,admin`, naming the first bad entry.
    pub fn parse_list(text: &str) -> Result<RoleSet, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                Role::parse(s).ok_or_else(|| {
                    format!("unknown role `{s}` (roles are developer, platform_engineer, admin)")
                })
            })
            .collect()
    }

    pub fn labels(&self) -> String {
        self.iter().map(Role::label).collect::<Vec<_>>().join(", ")
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        RoleSet(iter.into_iter().collect())
    }
}

impl fmt::Display for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Role::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A browser session (cookie); its hash identifies the session row.
    Session { token_hash: Vec<u8> },
    /// An API token (`Authorization: Bearer slw_…`).
    ApiToken { token_id: uuid::Uuid },
}

/// An authenticated caller: the user, the roles in force for this request (an API token's scope
/// narrows them), and how they signed in.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub roles: RoleSet,
    pub method: AuthMethod,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(role)
    }
}

/// A secret random value (sessions, links, tokens), URL-safe: 32 random bytes, base64url.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How secrets are stored: SHA-256 of the value. The values carry 256 random bits, so a fast
/// hash is enough (unlike passwords); what matters is that the table alone opens nothing.
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_lists_parse_and_name_bad_entries() {
        let set = RoleSet::parse_list("admin, developer").unwrap();
        assert_eq!(set.to_string(), "developer,admin");
        let err = RoleSet::parse_list("developer,root").unwrap_err();
        assert!(err.contains("`root`"), "{err}");
    }

    #[test]
    fn secrets_are_random_and_url_safe() {
        let a = random_secret();
        assert_ne!(a, random_secret());
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
