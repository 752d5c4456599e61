//! The Git host's side of a repository: making it (GitHub's and GitLab's REST APIs, `git init
//! --bare` on this machine, nothing for a plain Git server) and the credentials Git pushes with.
//! One trait, so the step that needs a repository does not care which host it is.

use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::git::Credentials;
use super::{GitHost, Repository, RepositoryError, valid_name};
use crate::secret::Secret;

/// A Git host that can make repositories.
pub trait Forge: Send + Sync {
    /// The repository `name`, made (private) when it does not exist. Safe to repeat: a
    /// repository that exists, made by an earlier attempt whose answer was lost, is taken.
    fn ensure<'a>(
        &'a self,
        name: &'a str,
        description: &'a str,
    ) -> BoxFuture<'a, Result<Repository, RepositoryError>>;

    /// What Git authenticates with, if anything.
    fn credentials(&self) -> Option<Credentials>;
}

/// The forge of `host`.
pub fn of(host: &GitHost) -> Result<Box<dyn Forge + '_>, RepositoryError> {
    Ok(match host {
        GitHost::Local { root } => Box::new(LocalDirectory { root }),
        GitHost::Https { base, token } => Box::new(PlainGit { base, token }),
        GitHost::GitHub { api, owner, token } => Box::new(GitHub {
            api,
            owner,
            token,
            http: client()?,
        }),
        GitHost::GitLab { api, group, token } => Box::new(GitLab {
            api,
            group,
            token,
            http: client()?,
        }),
    })
}

fn client() -> Result<reqwest::Client, RepositoryError> {
    crate::init_tls();
    reqwest::Client::builder()
        .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_secs(30))
        // The API answers where it is configured; a redirect elsewhere is not followed.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| RepositoryError::Permanent(format!("building the Git host's client: {e}")))
}

fn checked(name: &str) -> Result<(), RepositoryError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(RepositoryError::Permanent(format!(
            "{name:?} is not a repository name the Git host accepts"
        )))
    }
}

/// Bare repositories under `root` (the embedded default).
struct LocalDirectory<'a> {
    root: &'a std::path::Path,
}

impl Forge for LocalDirectory<'_> {
    fn ensure<'a>(
        &'a self,
        name: &'a str,
        _description: &'a str,
    ) -> BoxFuture<'a, Result<Repository, RepositoryError>> {
        Box::pin(async move {
            checked(name)?;
            let path = self.root.join(format!("{name}.git"));
            if !path.join("HEAD").exists() {
                let io = |e: std::io::Error| {
                    RepositoryError::Transient(format!("making {}: {e}", path.display()))
                };
                std::fs::create_dir_all(&path).map_err(io)?;
                let status = tokio::process::Command::new("git")
                    .args([
                        "init",
                        "--quiet",
                        "--bare",
                        "--initial-branch",
                        super::git::BRANCH,
                    ])
                    .arg(&path)
                    .status()
                    .await
                    .map_err(io)?;
                if !status.success() {
                    return Err(RepositoryError::Transient(format!(
                        "git init --bare {} failed",
                        path.display()
                    )));
                }
            }
            let url = format!("file://{}", path.display());
            Ok(Repository {
                clone_url: url.clone(),
                web_url: url,
            })
        })
    }

    fn credentials(&self) -> Option<Credentials> {
        None
    }
}

/// Any Git server over HTTPS: the repository is `<base>/<name>.git`, made beforehand by its
/// owners or by the first push (GitLab, Gitea and others can), not by Slipway.
struct PlainGit<'a> {
    base: &'a str,
    token: &'a Secret,
}

impl Forge for PlainGit<'_> {
    fn ensure<'a>(
        &'a self,
        name: &'a str,
        _description: &'a str,
    ) -> BoxFuture<'a, Result<Repository, RepositoryError>> {
        Box::pin(async move {
            checked(name)?;
            let url = format!("{}/{name}.git", self.base);
            Ok(Repository {
                clone_url: url.clone(),
                web_url: url,
            })
        })
    }

    fn credentials(&self) -> Option<Credentials> {
        Some(Credentials {
            user: "slipway",
            token: self.token.clone(),
        })
    }
}

/// What an answer from a REST API means, for the codes every host shares.
fn refused(host: &str, status: StatusCode, body: &str) -> RepositoryError {
    let body: String = body.chars().take(300).collect();
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            if !body.to_ascii_lowercase().contains("rate limit") =>
        {
            RepositoryError::Permanent(format!(
                "{host} refused Slipway's token ({status}): check git_token and its permission \
                 to create repositories: {body}"
            ))
        }
        s if s == StatusCode::TOO_MANY_REQUESTS
            || s.is_server_error()
            || s == StatusCode::FORBIDDEN =>
        {
            RepositoryError::Transient(format!("{host} answered {status}: {body}"))
        }
        _ => RepositoryError::Permanent(format!("{host} answered {status}: {body}")),
    }
}

fn unreachable(host: &str, e: reqwest::Error) -> RepositoryError {
    RepositoryError::Transient(format!("{host} could not be reached: {e}"))
}

async fn answer(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

fn parse<T: for<'de> Deserialize<'de>>(host: &str, body: &str) -> Result<T, RepositoryError> {
    serde_json::from_str(body).map_err(|e| {
        RepositoryError::Transient(format!(
            "{host}'s answer is not what its API documents: {e}"
        ))
    })
}

/// GitHub's REST API (`/repos`, `/orgs/{org}/repos`), version 2022-11-28.
struct GitHub<'a> {
    api: &'a str,
    owner: &'a str,
    token: &'a Secret,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct GitHubRepository {
    clone_url: String,
    html_url: String,
}

impl GitHub<'_> {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(self.token.expose())
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    }

    async fn find(&self, name: &str) -> Result<Option<Repository>, RepositoryError> {
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/repos/{}/{name}", self.owner),
            )
            .send()
            .await
            .map_err(|e| unreachable("GitHub", e))?;
        match answer(response).await {
            (StatusCode::OK, body) => {
                let found: GitHubRepository = parse("GitHub", &body)?;
                Ok(Some(Repository {
                    clone_url: found.clone_url,
                    web_url: found.html_url,
                }))
            }
            (StatusCode::NOT_FOUND, _) => Ok(None),
            (status, body) => Err(refused("GitHub", status, &body)),
        }
    }
}

impl Forge for GitHub<'_> {
    fn ensure<'a>(
        &'a self,
        name: &'a str,
        description: &'a str,
    ) -> BoxFuture<'a, Result<Repository, RepositoryError>> {
        Box::pin(async move {
            checked(name)?;
            if let Some(found) = self.find(name).await? {
                return Ok(found);
            }
            let response = self
                .request(
                    reqwest::Method::POST,
                    &format!("/orgs/{}/repos", self.owner),
                )
                .json(&json!({
                    "name": name,
                    "description": description,
                    "private": true,
                    "auto_init": false,
                }))
                .send()
                .await
                .map_err(|e| unreachable("GitHub", e))?;
            match answer(response).await {
                (StatusCode::CREATED, body) => {
                    let made: GitHubRepository = parse("GitHub", &body)?;
                    Ok(Repository {
                        clone_url: made.clone_url,
                        web_url: made.html_url,
                    })
                }
                // "name already exists on this account": made meanwhile (a lost answer, or
                // another attempt), so it is taken.
                (StatusCode::UNPROCESSABLE_ENTITY, body) if body.contains("already exists") => {
                    self.find(name).await?.ok_or_else(|| {
                        RepositoryError::Transient(format!(
                            "GitHub says {name} exists but does not show it yet"
                        ))
                    })
                }
                (StatusCode::NOT_FOUND, _) => Err(RepositoryError::Permanent(format!(
                    "GitHub has no organisation {} that Slipway's token can see (git_owner)",
                    self.owner
                ))),
                (status, body) => Err(refused("GitHub", status, &body)),
            }
        })
    }

    fn credentials(&self) -> Option<Credentials> {
        // GitHub takes an installation or personal token as the password of this user.
        Some(Credentials {
            user: "x-access-token",
            token: self.token.clone(),
        })
    }
}

/// GitLab's REST API v4 (`/projects`, `/groups`).
struct GitLab<'a> {
    api: &'a str,
    group: &'a str,
    token: &'a Secret,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct GitLabProject {
    http_url_to_repo: String,
    web_url: String,
}

#[derive(Deserialize)]
struct GitLabGroup {
    id: i64,
}

/// A project or group path as one URL segment (`platform/envs` → `platform%2Fenvs`); paths are
/// checked at configuration to hold only `[A-Za-z0-9_.-/]`.
fn encoded(path: &str) -> String {
    path.replace('/', "%2F")
}

impl GitLab<'_> {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v4{path}", self.api))
            .header("PRIVATE-TOKEN", self.token.expose())
    }

    async fn find(&self, name: &str) -> Result<Option<Repository>, RepositoryError> {
        let path = encoded(&format!("{}/{name}", self.group));
        let response = self
            .request(reqwest::Method::GET, &format!("/projects/{path}"))
            .send()
            .await
            .map_err(|e| unreachable("GitLab", e))?;
        match answer(response).await {
            (StatusCode::OK, body) => {
                let found: GitLabProject = parse("GitLab", &body)?;
                Ok(Some(Repository {
                    clone_url: found.http_url_to_repo,
                    web_url: found.web_url,
                }))
            }
            (StatusCode::NOT_FOUND, _) => Ok(None),
            (status, body) => Err(refused("GitLab", status, &body)),
        }
    }
}

impl Forge for GitLab<'_> {
    fn ensure<'a>(
        &'a self,
        name: &'a str,
        description: &'a str,
    ) -> BoxFuture<'a, Result<Repository, RepositoryError>> {
        Box::pin(async move {
            checked(name)?;
            if let Some(found) = self.find(name).await? {
                return Ok(found);
            }
            let response = self
                .request(
                    reqwest::Method::GET,
                    &format!("/groups/{}", encoded(self.group)),
                )
                .send()
                .await
                .map_err(|e| unreachable("GitLab", e))?;
            let group: GitLabGroup = match answer(response).await {
                (StatusCode::OK, body) => parse("GitLab", &body)?,
                (StatusCode::NOT_FOUND, _) => {
                    return Err(RepositoryError::Permanent(format!(
                        "GitLab has no group {} that Slipway's token can see (git_owner)",
                        self.group
                    )));
                }
                (status, body) => return Err(refused("GitLab", status, &body)),
            };
            let response = self
                .request(reqwest::Method::POST, "/projects")
                .json(&json!({
                    "name": name,
                    "path": name,
                    "namespace_id": group.id,
                    "description": description,
                    "visibility": "private",
                    "initialize_with_readme": false,
                }))
                .send()
                .await
                .map_err(|e| unreachable("GitLab", e))?;
            match answer(response).await {
                (StatusCode::CREATED, body) => {
                    let made: GitLabProject = parse("GitLab", &body)?;
                    Ok(Repository {
                        clone_url: made.http_url_to_repo,
                        web_url: made.web_url,
                    })
                }
                // `{"message": {"path": ["has already been taken"]}}`: made meanwhile.
                (StatusCode::BAD_REQUEST, body) if body.contains("has already been taken") => {
                    self.find(name).await?.ok_or_else(|| {
                        RepositoryError::Transient(format!(
                            "GitLab says {name} is taken but does not show it yet"
                        ))
                    })
                }
                (status, body) => Err(refused("GitLab", status, &body)),
            }
        })
    }

    fn credentials(&self) -> Option<Credentials> {
        // GitLab takes a personal, group or project access token as `oauth2`'s password.
        Some(Credentials {
            user: "oauth2",
            token: self.token.clone(),
        })
    }
}
