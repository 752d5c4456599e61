//! The client's subcommands: their flags, the API call each makes, and what each prints.

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::json;

use super::ClientError;
use super::api::{Api, Body};
use super::credentials::{self, Credentials};
use super::output::{self, BacklogItem, Environment, EnvironmentDetail, Job, Me, Page, Platform};
use super::watch::watch;

/// Flags of every command that prints: `--json` prints the API's JSON as received.
#[derive(Debug, Args)]
pub struct Output {
    /// Print the API's JSON instead of a table (watch: one JSON document per line)
    #[arg(long)]
    pub json: bool,
}

/// Paging of list commands, as the API pages.
#[derive(Debug, Args)]
pub struct Paging {
    /// Items to show, 1 to 200
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// The cursor the previous page printed
    #[arg(long)]
    pub after: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Save a server's address and your API token for the commands below (checked first)
    Login {
        /// The server's address, e.g. https://slipway.example.com
        #[arg(long)]
        url: String,
        /// An API token (slw_…): make one on your profile page
        #[arg(long)]
        token: String,
    },
    /// Forget the saved token
    Logout,
    /// The platforms
    Platforms {
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// The environments you may see, newest first
    Envs {
        /// Only this state: submitted, approved, provisioning, ready, failed, …
        #[arg(long)]
        state: Option<String>,
        /// Only this platform (its short name)
        #[arg(long)]
        platform: Option<String>,
        /// Only those you requested
        #[arg(long)]
        mine: bool,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// One environment: request, show, decide, change, follow
    #[command(subcommand)]
    Env(EnvCommand),
    /// The job queue (platform engineers and admins)
    Jobs {
        /// Only this state: available, running, retryable, completed, cancelled, discarded
        #[arg(long)]
        state: Option<String>,
        /// Only this kind, e.g. environment.provision
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
    /// A platform's backlog, in rank order
    Backlog {
        /// The platform's short name
        platform: String,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Request an environment on a platform
    Request {
        /// The platform's short name
        platform: String,
        /// The environment type, as the platform's blueprint names it (dev, test, perf, prod…)
        #[arg(long = "type")]
        environment_type: String,
        /// A short name: lowercase letters, digits and dashes
        #[arg(long)]
        name: String,
        /// What it is for (the approvers read it)
        #[arg(long)]
        purpose: String,
        /// Hours to live (ephemeral types)
        #[arg(long)]
        ttl_hours: Option<u32>,
        /// Node instance type (else the type's default)
        #[arg(long)]
        instance_type: Option<String>,
        #[arg(long)]
        min_nodes: Option<u32>,
        #[arg(long)]
        max_nodes: Option<u32>,
        /// A data service to include (repeat for several): mongodb, scylladb, kafka
        #[arg(long = "data-service")]
        data_services: Vec<String>,
        #[command(flatten)]
        output: Output,
    },
    /// An environment with its approvals, hand-over facts and steps
    Show {
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// Approve a request (never your own)
    Approve {
        id: String,
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        output: Output,
    },
    /// Reject a request, saying why
    Reject {
        id: String,
        /// Why: the requester reads it
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        output: Output,
    },
    /// Withdraw your request while it awaits a decision
    Cancel {
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// Ask for a longer time to live (beyond the type's maximum it needs approval)
    Extend {
        id: String,
        /// The new total time to live, in hours
        #[arg(long)]
        ttl_hours: u32,
        #[command(flatten)]
        output: Output,
    },
    /// Tear a ready or failed environment down
    Teardown {
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// Retry a failed environment from its failed step
    Retry {
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// Follow an environment until it is ready (or torn down, if it is tearing down); exits 9
    /// if it ends otherwise (failed, rejected, …)
    Watch {
        id: String,
        /// Give up after this many seconds (exit status 10)
        #[arg(long)]
        timeout: Option<u64>,
        #[command(flatten)]
        output: Output,
    },
}

pub async fn run(command: ClientCommand) -> Result<(), ClientError> {
    match command {
        ClientCommand::Login { url, token } => login(Credentials::new(&url, &token)?).await,
        ClientCommand::Logout => {
            if credentials::forget()? {
                println!(
                    "Signed out: the saved token is deleted (it stays valid until you revoke it on your profile page)."
                );
            } else {
                println!("No saved token.");
            }
            Ok(())
        }
        ClientCommand::Platforms { paging, output } => {
            let api = signed_in()?;
            let page: Body<Page<Platform>> =
                api.get(&list_path("/platforms", &[], &paging)?).await?;
            print(&output, &page, |p| {
                let rows = p
                    .items
                    .iter()
                    .map(|p| {
                        let state = if p.archived { "archived" } else { "active" };
                        vec![
                            p.slug.clone(),
                            p.name.clone(),
                            p.owner_team.clone(),
                            state.into(),
                        ]
                    })
                    .collect::<Vec<_>>();
                output::table(&["PLATFORM", "NAME", "OWNER TEAM", "STATE"], &rows);
                p.hint_more();
            })
        }
        ClientCommand::Envs {
            state,
            platform,
            mine,
            paging,
            output,
        } => {
            let api = signed_in()?;
            let mine = mine.then(|| "true".to_owned());
            let filters = [("state", &state), ("platform", &platform), ("mine", &mine)];
            let page: Body<Page<Environment>> = api
                .get(&list_path("/environments", &filters, &paging)?)
                .await?;
            print(&output, &page, |p| {
                let rows = p
                    .items
                    .iter()
                    .map(|e| {
                        vec![
                            e.id.to_string(),
                            e.name.clone(),
                            e.platform.clone(),
                            e.environment_type.clone(),
                            e.state.clone(),
                            format!("{}/{}", e.approvals.have, e.approvals.required),
                            output::usd(e.cost_estimate.monthly_usd),
                            e.expires_at
                                .as_deref()
                                .map(output::moment)
                                .unwrap_or_default(),
                            e.requested_by.email.clone(),
                        ]
                    })
                    .collect::<Vec<_>>();
                output::table(
                    &[
                        "ID",
                        "NAME",
                        "PLATFORM",
                        "TYPE",
                        "STATE",
                        "APPROVALS",
                        "PER MONTH",
                        "EXPIRES",
                        "REQUESTED BY",
                    ],
                    &rows,
                );
                p.hint_more();
            })
        }
        ClientCommand::Env(command) => env(command).await,
        ClientCommand::Jobs {
            state,
            kind,
            paging,
            output,
        } => {
            let api = signed_in()?;
            let filters = [("state", &state), ("kind", &kind)];
            let page: Body<Page<Job>> = api.get(&list_path("/jobs", &filters, &paging)?).await?;
            print(&output, &page, |p| {
                let rows = p
                    .items
                    .iter()
                    .map(|j| {
                        vec![
                            j.id.to_string(),
                            j.kind.clone(),
                            j.state.clone(),
                            format!("{}/{}", j.attempt, j.max_attempts),
                            output::moment(&j.created_at),
                            j.last_error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect::<Vec<_>>();
                output::table(
                    &["JOB", "KIND", "STATE", "ATTEMPT", "CREATED", "LAST ERROR"],
                    &rows,
                );
                p.hint_more();
            })
        }
        ClientCommand::Backlog {
            platform,
            paging,
            output,
        } => {
            let api = signed_in()?;
            let path = list_path(
                &format!("/platforms/{}/backlog", segment(&platform)?),
                &[],
                &paging,
            )?;
            let page: Body<Page<BacklogItem>> = api.get(&path).await?;
            print(&output, &page, |p| {
                let rows = p
                    .items
                    .iter()
                    .map(|i| {
                        vec![
                            i.phase.clone(),
                            i.status.clone(),
                            i.title.clone(),
                            i.key.clone().unwrap_or_default(),
                            i.estimate_days
                                .map(|d| format!("{d} d"))
                                .unwrap_or_default(),
                            i.assignee.clone().unwrap_or_default(),
                        ]
                    })
                    .collect::<Vec<_>>();
                output::table(
                    &["PHASE", "STATUS", "TITLE", "KEY", "ESTIMATE", "ASSIGNEE"],
                    &rows,
                );
                p.hint_more();
            })
        }
    }
}

async fn login(credentials: Credentials) -> Result<(), ClientError> {
    let api = Api::new(credentials.clone())?;
    let me: Body<Me> = api.get("/me").await?;
    let path = credentials::save(&credentials)?;
    let me = me.value;
    println!(
        "Signed in to {} as {} <{}> ({}). The token is saved in {}.",
        credentials.url,
        me.name,
        me.email,
        me.roles.join(", "),
        path.display()
    );
    Ok(())
}

#[derive(Serialize)]
struct RequestBody {
    environment_type: String,
    name: String,
    purpose: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl_hours: Option<u32>,
    parameters: serde_json::Map<String, serde_json::Value>,
}

async fn env(command: EnvCommand) -> Result<(), ClientError> {
    let api = signed_in()?;
    let (path, body, output) = match command {
        EnvCommand::Request {
            platform,
            environment_type,
            name,
            purpose,
            ttl_hours,
            instance_type,
            min_nodes,
            max_nodes,
            data_services,
            output,
        } => {
            // Only the parameters given: the type's defaults fill in the rest.
            let mut parameters = serde_json::Map::new();
            if let Some(v) = instance_type {
                parameters.insert("instance_type".into(), json!(v));
            }
            if let Some(v) = min_nodes {
                parameters.insert("min_nodes".into(), json!(v));
            }
            if let Some(v) = max_nodes {
                parameters.insert("max_nodes".into(), json!(v));
            }
            if !data_services.is_empty() {
                parameters.insert("data_services".into(), json!(data_services));
            }
            let body = RequestBody {
                environment_type,
                name,
                purpose,
                ttl_hours,
                parameters,
            };
            let path = format!("/platforms/{}/environments", segment(&platform)?);
            let created: Body<EnvironmentDetail> = api.post(&path, &body).await?;
            return print(&output, &created, |e| {
                println!(
                    "Requested {} ({}): {}. Estimated {} to {} per month.",
                    e.name,
                    e.id,
                    e.state,
                    output::usd(e.cost_estimate.monthly_usd),
                    output::usd(e.cost_estimate.max_monthly_usd)
                );
                println!("Follow it with: slipway env watch {}", e.id);
            });
        }
        EnvCommand::Show { id, output } => {
            let shown: Body<EnvironmentDetail> =
                api.get(&format!("/environments/{}", segment(&id)?)).await?;
            return print(&output, &shown, EnvironmentDetail::print);
        }
        EnvCommand::Watch {
            id,
            timeout,
            output,
        } => {
            return watch(&api, &segment(&id)?, output.json, timeout).await;
        }
        EnvCommand::Approve {
            id,
            comment,
            output,
        } => (
            action(&id, "approve")?,
            json!({ "comment": comment }),
            output,
        ),
        EnvCommand::Reject { id, reason, output } => {
            (action(&id, "reject")?, json!({ "reason": reason }), output)
        }
        EnvCommand::Cancel { id, output } => (action(&id, "cancel")?, json!({}), output),
        EnvCommand::Extend {
            id,
            ttl_hours,
            output,
        } => (
            action(&id, "extend")?,
            json!({ "ttl_hours": ttl_hours }),
            output,
        ),
        EnvCommand::Teardown { id, output } => (action(&id, "teardown")?, json!({}), output),
        EnvCommand::Retry { id, output } => (action(&id, "retry")?, json!({}), output),
    };
    let changed: Body<EnvironmentDetail> = api.post(&path, &body).await?;
    print(&output, &changed, |e| {
        println!("{} ({}) is now {}.", e.name, e.id, e.state);
    })
}

fn action(id: &str, verb: &str) -> Result<String, ClientError> {
    Ok(format!("/environments/{}/{verb}", segment(id)?))
}

/// A path segment as typed: refused rather than escaped when it could change the path.
fn segment(text: &str) -> Result<String, ClientError> {
    let ok = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(ClientError::Usage(format!(
            "{text:?} is not an id or short name: use letters, digits and dashes"
        )))
    }
}

/// `base?limit=…&after=…&filter=…` with only the filters given, each value encoded.
fn list_path(
    base: &str,
    filters: &[(&str, &Option<String>)],
    paging: &Paging,
) -> Result<String, ClientError> {
    if !(1..=200).contains(&paging.limit) {
        return Err(ClientError::Usage("--limit: use 1 to 200".into()));
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &paging.limit.to_string());
    if let Some(after) = &paging.after {
        query.append_pair("after", after);
    }
    for (name, value) in filters {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    Ok(format!("{base}?{}", query.finish()))
}

fn signed_in() -> Result<Api, ClientError> {
    Api::new(credentials::load()?)
}

/// `body` as received with `--json`, else as `human` prints it.
fn print<T>(output: &Output, body: &Body<T>, human: impl FnOnce(&T)) -> Result<(), ClientError> {
    if output.json {
        println!("{}", body.raw);
    } else {
        human(&body.value);
    }
    Ok(())
}
