//! Repositories on the platform's Git host: each environment's configuration repository (its
//! desired state as files, committed by Slipway). [`forge`] makes a repository through the
//! host's REST API where it has one (GitHub, GitLab); [`git`] commits files and pushes them over
//! Git's smart-HTTP protocol with the `git` program. A leaf: it knows nothing of environments.

pub mod forge;
pub mod git;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::secret::Secret;

pub use forge::Forge;

/// Where repositories live: the `git_*` settings.
#[derive(Debug, Clone, PartialEq)]
pub enum GitHost {
    /// Bare repositories in a directory on this machine (the embedded default: no Git host is
    /// configured, and nothing leaves the machine).
    Local { root: PathBuf },
    /// Any Git server reached over HTTP(S) with a token, whose repositories already exist or
    /// are made by the first push: `<base>/<name>.git`.
    Https { base: String, token: Secret },
    /// GitHub or GitHub Enterprise Server: repositories made in the organisation `owner`
    /// through the REST API at `api` (`https://api.github.com`).
    GitHub {
        api: String,
        owner: String,
        token: Secret,
    },
    /// GitLab: projects made in the group `group` (its full path) through the REST API at
    /// `api` (`https://gitlab.com`).
    GitLab {
        api: String,
        group: String,
        token: Secret,
    },
}

impl GitHost {
    /// What the cloud connection page shows (never the token).
    pub fn describe(&self) -> String {
        match self {
            GitHost::Local { root } => format!(
                "local: bare repositories in {} (no Git host configured)",
                root.display()
            ),
            GitHost::Https { base, .. } => format!("a Git server over HTTPS: {base}/<name>.git"),
            GitHost::GitHub { api, owner, .. } => format!("GitHub ({api}), organisation {owner}"),
            GitHost::GitLab { api, group, .. } => format!("GitLab ({api}), group {group}"),
        }
    }
}

/// A repository as Git and people reach it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Repository {
    /// What `git push` is given (no credentials in it).
    pub clone_url: String,
    /// What people open; the clone URL where the host has no web pages.
    pub web_url: String,
}

/// A repository's files at one commit: path → content.
pub type Files = BTreeMap<String, String>;

/// What a failed Git host call means for the job that made it.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// Worth another try: the host unreachable, throttling, a 5xx, a push that raced another.
    #[error("{0}")]
    Transient(String),
    /// A person must act: a refused token, a missing organisation, a name the host refuses.
    #[error("{0}")]
    Permanent(String),
}

/// The repository `name` on `host`, made when it does not exist yet.
pub async fn ensure(
    host: &GitHost,
    name: &str,
    description: &str,
) -> Result<Repository, RepositoryError> {
    forge::of(host)?.ensure(name, description).await
}

/// Makes `files` (with what `keep` keeps of the branch) the content of `repository`'s `main`
/// branch in one commit with `message`, unless it already holds exactly that (a repeat after
/// a lost answer or a crash mid-push commits nothing twice). Returns the branch's commit.
pub async fn publish(
    host: &GitHost,
    repository: &Repository,
    files: &Files,
    keep: git::Keep<'_>,
    message: &str,
) -> Result<git::Published, RepositoryError> {
    let forge = forge::of(host)?;
    git::publish(
        repository,
        forge.credentials().as_ref(),
        files,
        keep,
        message,
    )
    .await
}

/// Checks a repository name as the hosts accept it: what Slipway derives from slugs passes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(['.', '-'])
        && !name.ends_with(".git")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
