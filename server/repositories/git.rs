//! Commits and pushes with the `git` program over the real protocol (smart HTTP, or a local
//! path). Idempotent by content: the remote branch is fetched first, and when its tree is
//! already the one wanted nothing is committed, so a repeat after a crash mid-push (the push
//! landed, its answer was lost) leaves one commit, not two.

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;

use super::{Files, Repository, RepositoryError};
use crate::secret::Secret;

/// The branch Slipway writes.
pub const BRANCH: &str = "main";
/// How long one `git` command may take before it is stopped (and the step retried).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Who Slipway's commits are by.
const AUTHOR: (&str, &str) = ("Slipway", "slipway@users.noreply.slipway.dev");

/// HTTP basic credentials Git sends: the user each host expects a token under, and the token.
pub struct Credentials {
    pub user: &'static str,
    pub token: Secret,
}

/// What of the branch's current files a commit keeps besides the files it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep<'a> {
    /// Only the files written: the commit is the whole content.
    Nothing,
    /// The files under this folder (`services/`), which someone else writes.
    Under(&'a str),
    /// Every file: the files written are added or replaced.
    Everything,
}

/// The branch after [`publish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub commit: String,
    /// False when the branch already held exactly the files: nothing was pushed.
    pub pushed: bool,
}

/// A scratch repository, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// See the module documentation.
pub async fn publish(
    repository: &Repository,
    credentials: Option<&Credentials>,
    files: &Files,
    keep: Keep<'_>,
    message: &str,
) -> Result<Published, RepositoryError> {
    let scratch =
        Scratch(std::env::temp_dir().join(format!("slipway-git-{}", uuid::Uuid::new_v4())));
    let git = Git {
        dir: &scratch.0,
        credentials,
    };
    std::fs::create_dir_all(&scratch.0).map_err(local)?;
    git.run(&["init", "--quiet", "--initial-branch", BRANCH])
        .await?;
    let head = git.remote_head(&repository.clone_url).await?;
    if let Some(head) = &head {
        git.run(&["fetch", "--quiet", "--depth=1", &repository.clone_url, head])
            .await?;
        let kept = match keep {
            Keep::Nothing => None,
            Keep::Under(folder) => Some(folder.trim_end_matches('/')),
            Keep::Everything => Some("."),
        };
        if let Some(kept) = kept {
            let present = !git
                .run(&["ls-tree", "--name-only", head, kept])
                .await?
                .is_empty();
            if present {
                git.run(&["checkout", head, "--", kept]).await?;
            }
        }
    }
    for (path, content) in files {
        let path = checked_path(path)?;
        let full = scratch.0.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(local)?;
        }
        std::fs::write(full, content).map_err(local)?;
    }
    git.run(&["add", "--all"]).await?;
    let tree = git.run(&["write-tree"]).await?;
    if let Some(head) = &head {
        let current = git.run(&["rev-parse", &format!("{head}^{{tree}}")]).await?;
        if current == tree {
            return Ok(Published {
                commit: head.clone(),
                pushed: false,
            });
        }
    }
    let mut commit_tree = vec!["commit-tree", tree.as_str(), "-m", message];
    if let Some(head) = &head {
        commit_tree.extend(["-p", head.as_str()]);
    }
    let commit = git.run(&commit_tree).await?;
    // Never forced: a branch that moved meanwhile refuses, and the step's retry starts over
    // from what is there.
    let refspec = format!("{commit}:refs/heads/{BRANCH}");
    git.run(&["push", "--quiet", &repository.clone_url, &refspec])
        .await?;
    Ok(Published {
        commit,
        pushed: true,
    })
}

/// A repository path Slipway writes: relative, no `..`, no `.git`.
fn checked_path(path: &str) -> Result<&Path, RepositoryError> {
    let p = Path::new(path);
    let fine = !path.is_empty()
        && p.components().all(|c| match c {
            Component::Normal(part) => part != ".git",
            _ => false,
        });
    if fine {
        Ok(p)
    } else {
        Err(RepositoryError::Permanent(format!(
            "refusing to write the repository path {path:?}"
        )))
    }
}

fn local(e: std::io::Error) -> RepositoryError {
    RepositoryError::Transient(format!("preparing the commit on this machine: {e}"))
}

struct Git<'a> {
    dir: &'a Path,
    credentials: Option<&'a Credentials>,
}

impl Git<'_> {
    /// The commit the remote `main` points at, `None` for an empty repository.
    async fn remote_head(&self, url: &str) -> Result<Option<String>, RepositoryError> {
        let out = self
            .run(&["ls-remote", url, &format!("refs/heads/{BRANCH}")])
            .await?;
        Ok(out.split_whitespace().next().map(str::to_owned))
    }

    /// Runs `git args…` in the scratch repository; its trimmed standard output.
    async fn run(&self, args: &[&str]) -> Result<String, RepositoryError> {
        let mut cmd = tokio::process::Command::new("git");
        cmd.args(args)
            .current_dir(self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir)
            // Nothing of the machine's Git configuration (credential helpers, rewrites) applies,
            // and Git never waits for a password on a terminal.
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", AUTHOR.0)
            .env("GIT_AUTHOR_EMAIL", AUTHOR.1)
            .env("GIT_COMMITTER_NAME", AUTHOR.0)
            .env("GIT_COMMITTER_EMAIL", AUTHOR.1)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(c) = self.credentials {
            // The token goes in a header from the environment: never in the URL, the command
            // line (process listings) or a file.
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                c.user,
                c.token.expose()
            ));
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {basic}"),
                );
        }
        let out = match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
            Err(_) => {
                return Err(RepositoryError::Transient(format!(
                    "git {} took longer than {} s",
                    args[0],
                    COMMAND_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RepositoryError::Permanent(
                    "the `git` program is not installed on this machine: the environment's \
                     repository needs it (Debian: apt-get install git)"
                        .into(),
                ));
            }
            Ok(Err(e)) => return Err(local(e)),
            Ok(Ok(out)) => out,
        };
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        }
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if let Some(c) = self.credentials {
            stderr = stderr.replace(c.token.expose(), "…");
        }
        Err(classify(args[0], &stderr))
    }
}

/// What a failed `git` command means: a refused token or a missing repository needs a person;
/// anything else (the network, a 5xx, a branch that moved) is tried again.
fn classify(command: &str, stderr: &str) -> RepositoryError {
    let said = |needles: &[&str]| needles.iter().any(|n| stderr.contains(n));
    if said(&[
        "Authentication failed",
        "could not read Username",
        "The requested URL returned error: 401",
        "The requested URL returned error: 403",
    ]) {
        RepositoryError::Permanent(format!(
            "the Git host refused Slipway's token (git {command}): check git_token and its \
             permission to write repositories: {stderr}"
        ))
    } else if said(&[
        "The requested URL returned error: 404",
        "does not appear to be a git repository",
        "Repository not found",
    ]) {
        RepositoryError::Permanent(format!(
            "the repository does not exist on the Git host (git {command}): {stderr}"
        ))
    } else {
        RepositoryError::Transient(format!("git {command} failed: {stderr}"))
    }
}
