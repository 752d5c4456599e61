//! A platform's app teams: who is in them (named members, and everyone whose single-sign-on
//! groups include the team's `oidc_group`), the IAM role that identifies them in AWS (an EKS
//! access entry in every environment they use) and their namespaces there.
//!
//! Environments are planned for teams when they are requested: long-lived ones for every team
//! of the platform (they are the platform's shared environments), ephemeral ones for the
//! requester's teams (every team when the requester is in none). A team created or changed
//! later reaches the environments requested from then on; existing clusters keep what they were
//! built with until they are provisioned again.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::{Principal, UserId};
use crate::define::blueprint::{Lifecycle, is_role_arn};
use crate::define::platforms::Platform;
use crate::provision::manifests::is_platform_namespace;
use crate::provision::plan::PlanTeam;
use crate::validation::{FieldErrors, TextKind, check_text, is_dns_label};

/// More namespaces than this a team is better served by another team.
pub const MAX_NAMESPACES: usize = 5;
/// The name of the platform team's own group (in the Backstage catalog): no app team has it.
pub const PLATFORM_TEAM: &str = "platform-team";
/// Named members of one team (a larger team is better named by its SSO group).
pub const MAX_MEMBERS: usize = 200;

/// Why a team use case was refused: the one error type of this module, mapped to HTTP once.
#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error("not found")]
    NotFound,
    #[error("invalid")]
    Invalid(FieldErrors),
    /// Refused because of what exists (a live environment was built for the team).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<FieldErrors> for TeamError {
    fn from(e: FieldErrors) -> Self {
        TeamError::Invalid(e)
    }
}

/// A team as the pages and the API show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Team {
    #[serde(skip)]
    pub id: Uuid,
    pub name: String,
    /// Its named members (user ids).
    pub members: Vec<Uuid>,
    /// Members through `oidc_group`, as of their last sign-in.
    pub members_from_group: Vec<Uuid>,
    /// The IAM role its people assume: admitted to its namespaces by an EKS access entry.
    pub aws_role_arn: Option<String>,
    /// The single-sign-on group whose members are in the team.
    pub oidc_group: Option<String>,
    /// Its namespaces in every environment it uses (when the blueprint gives each team its
    /// own: `security.namespaces_per_team`; otherwise teams share `apps`).
    pub namespaces: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Team {
    pub fn plan_team(&self) -> PlanTeam {
        PlanTeam {
            name: self.name.clone(),
            role_arn: self.aws_role_arn.clone(),
            namespaces: self.namespaces.clone(),
        }
    }

    pub fn has_member(&self, user: UserId) -> bool {
        self.members.contains(&user.0) || self.members_from_group.contains(&user.0)
    }
}

/// A member as given: by user id (the API) or e-mail address (the page's form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRef {
    Id(Uuid),
    Email(String),
}

/// What a new team is made of, as given (every field is checked by [`create`]).
#[derive(Debug, Clone, Default)]
pub struct NewTeam {
    pub name: String,
    pub members: Vec<MemberRef>,
    pub aws_role_arn: Option<String>,
    pub oidc_group: Option<String>,
    /// Empty: one namespace named after the team.
    pub namespaces: Vec<String>,
}

/// What a change sets; `None` leaves a field as it is (`Some(None)` clears an optional one).
/// A team's name never changes: it names its Kubernetes group in every cluster.
#[derive(Debug, Clone, Default)]
pub struct TeamChange {
    pub members: Option<Vec<MemberRef>>,
    pub aws_role_arn: Option<Option<String>>,
    pub oidc_group: Option<Option<String>>,
    pub namespaces: Option<Vec<String>>,
}

const COLUMNS: &str = "t.id, t.name, t.aws_role_arn, t.oidc_group, t.namespaces, t.created_at,
    t.updated_at,
    ARRAY(SELECT m.user_id FROM team_member m JOIN app_user u ON u.id = m.user_id
          WHERE m.team_id = t.id ORDER BY u.name, u.id) AS members,
    ARRAY(SELECT u.id FROM app_user u
          WHERE t.oidc_group IS NOT NULL AND t.oidc_group = ANY(u.oidc_groups)
            AND NOT EXISTS (SELECT 1 FROM team_member m WHERE m.team_id = t.id AND m.user_id = u.id)
          ORDER BY u.name, u.id) AS members_from_group";

/// The platform's teams, by name.
pub async fn list(db: impl PgExecutor<'_>, platform: Uuid) -> Result<Vec<Team>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM team t WHERE t.platform_id = $1 ORDER BY t.name"
    )))
    .bind(platform)
    .fetch_all(db)
    .await
}

pub async fn find(db: &PgPool, platform: Uuid, name: &str) -> Result<Team, TeamError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM team t WHERE t.platform_id = $1 AND t.name = $2"
    )))
    .bind(platform)
    .bind(name)
    .fetch_optional(db)
    .await?
    .ok_or(TeamError::NotFound)
}

/// The teams of the platform `user` is in (named, or through their SSO groups).
pub async fn of_user(
    db: impl PgExecutor<'_>,
    platform: Uuid,
    user: UserId,
) -> Result<Vec<Team>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM team t WHERE t.platform_id = $1 AND (
             EXISTS (SELECT 1 FROM team_member m WHERE m.team_id = t.id AND m.user_id = $2)
          OR t.oidc_group = ANY(SELECT unnest(oidc_groups) FROM app_user WHERE id = $2))
         ORDER BY t.name"
    )))
    .bind(platform)
    .bind(user.0)
    .fetch_all(db)
    .await
}

/// The teams an environment of `lifecycle` requested by `requester` is built for.
pub async fn for_request(
    db: &PgPool,
    platform: Uuid,
    lifecycle: Lifecycle,
    requester: UserId,
) -> Result<Vec<Team>, sqlx::Error> {
    if lifecycle == Lifecycle::Ephemeral {
        let own = of_user(db, platform, requester).await?;
        if !own.is_empty() {
            return Ok(own);
        }
    }
    list(db, platform).await
}

/// The teams `environment` was built for.
pub async fn of_environment(
    db: impl PgExecutor<'_>,
    environment: Uuid,
) -> Result<Vec<Team>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM team t JOIN environment_team et ON et.team_id = t.id
         WHERE et.environment_id = $1 ORDER BY t.name"
    )))
    .bind(environment)
    .fetch_all(db)
    .await
}

/// The start of a subquery for the ids of the environments built for the teams of the user
/// bound right after it (`queries::list` and `queries::get_seen_by` complete it).
pub const ENVIRONMENTS_OF_USER: &str = "SELECT et.environment_id FROM environment_team et
    JOIN team t ON t.id = et.team_id
    JOIN app_user u ON (EXISTS (SELECT 1 FROM team_member m WHERE m.team_id = t.id AND m.user_id = u.id)
                        OR t.oidc_group = ANY(u.oidc_groups))
    WHERE u.id = ";

/// Records which teams an environment is built for (in the request's transaction). The key
/// share lock waits for a deletion of one of them in flight (which holds the team's row lock
/// while it checks for live environments), and a team deleted meanwhile is left out rather
/// than failing the request.
pub async fn record_for_environment(
    db: impl PgExecutor<'_>,
    environment: Uuid,
    teams: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO environment_team (environment_id, team_id)
         SELECT $1, t.id FROM team t WHERE t.id = ANY($2) FOR KEY SHARE
         ON CONFLICT DO NOTHING",
    )
    .bind(environment)
    .bind(teams)
    .execute(db)
    .await?;
    Ok(())
}

fn check_role(errors: &mut FieldErrors, role: &Option<String>) {
    if let Some(arn) = role
        && !is_role_arn(arn)
    {
        errors.add(
            "aws_role_arn",
            "Use an IAM role's ARN: arn:aws:iam::<12-digit account>:role/<name>.",
        );
    }
}

fn check_group(errors: &mut FieldErrors, group: &Option<String>) {
    if let Some(group) = group {
        if let Err(message) = check_text(group, TextKind::SingleLine) {
            errors.add("oidc_group", message);
        } else if group.trim().is_empty() || group.chars().count() > 200 {
            errors.add(
                "oidc_group",
                "Name the group as your identity provider sends it (1–200 characters), or leave it empty.",
            );
        }
    }
}

fn check_namespaces(errors: &mut FieldErrors, namespaces: &[String]) {
    if namespaces.len() > MAX_NAMESPACES {
        errors.add(
            "namespaces",
            format!("Give a team at most {MAX_NAMESPACES} namespaces."),
        );
    }
    for (i, ns) in namespaces.iter().enumerate() {
        let field = format!("namespaces[{i}]");
        if !is_dns_label(ns) {
            errors.add(
                &field,
                "Use a DNS label: lowercase letters, digits and hyphens, starting with a letter (1–40 characters).",
            );
        } else if is_platform_namespace(ns) {
            errors.add(
                &field,
                format!("`{ns}` is kept for the platform itself; choose another name."),
            );
        } else if namespaces[..i].contains(ns) {
            errors.add(&field, format!("`{ns}` is listed twice."));
        }
    }
}

/// The users `members` name, in order, without repeats; an unknown one is a field error.
async fn resolve_members(
    db: &PgPool,
    errors: &mut FieldErrors,
    members: &[MemberRef],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if members.len() > MAX_MEMBERS {
        errors.add(
            "members",
            format!(
                "Name at most {MAX_MEMBERS} members; name a larger team by its single-sign-on group."
            ),
        );
        return Ok(Vec::new());
    }
    let mut ids = Vec::new();
    for (i, member) in members.iter().enumerate() {
        let found = match member {
            MemberRef::Id(id) => crate::auth::users::find(db, UserId(*id)).await?,
            MemberRef::Email(email) => crate::auth::users::find_by_email(db, email.trim()).await?,
        };
        match found {
            Some(user) if !ids.contains(&user.id.0) => ids.push(user.id.0),
            Some(_) => {}
            None => errors.add(
                &format!("members[{i}]"),
                match member {
                    MemberRef::Id(_) => "No Slipway user has this id.".to_owned(),
                    MemberRef::Email(email) => format!(
                        "No Slipway user has the e-mail address `{}`; invite them first.",
                        email.trim()
                    ),
                },
            ),
        }
    }
    Ok(ids)
}

/// Checks that the role and namespaces are nobody else's on the platform (`except`: the team
/// being changed). The database's unique keys catch a race.
async fn check_against_others(
    db: &PgPool,
    platform: Uuid,
    except: Option<Uuid>,
    errors: &mut FieldErrors,
    role: Option<&str>,
    namespaces: Option<&[String]>,
) -> Result<(), sqlx::Error> {
    let others = list(db, platform).await?;
    let others = others.iter().filter(|t| Some(t.id) != except);
    for other in others {
        if let Some(role) = role
            && other.aws_role_arn.as_deref() == Some(role)
        {
            errors.add(
                "aws_role_arn",
                format!(
                    "Team {} has this role: each role is one access entry, so give each team its own.",
                    other.name
                ),
            );
        }
        for (i, ns) in namespaces.unwrap_or_default().iter().enumerate() {
            if other.namespaces.contains(ns) {
                errors.add(
                    &format!("namespaces[{i}]"),
                    format!("`{ns}` is team {}'s namespace; choose another.", other.name),
                );
            }
        }
    }
    Ok(())
}

/// What the database's unique keys say, as the field a person fixes (a race with another save).
fn conflict_field(e: &sqlx::Error, name: &str) -> Option<FieldErrors> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let mut errors = FieldErrors::default();
    match db.constraint()? {
        "team_platform_id_name_key" => errors.add(
            "name",
            format!("A team named {name} exists on this platform; choose another name."),
        ),
        "team_namespace_pkey" => errors.add(
            "namespaces",
            "Another team took one of these namespaces a moment ago; choose another.",
        ),
        _ => return None,
    }
    Some(errors)
}

/// Trims an optional text field: empty means none.
fn given(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Creates a team on `platform`.
pub async fn create(
    db: &PgPool,
    platform: &Platform,
    new: NewTeam,
    by: &Principal,
) -> Result<Team, TeamError> {
    let mut errors = FieldErrors::default();
    let name = new.name.trim().to_owned();
    if !is_dns_label(&name) {
        errors.add(
            "name",
            "Use a DNS label: lowercase letters, digits and hyphens, starting with a letter (1–40 characters).",
        );
    }
    let role = given(new.aws_role_arn);
    let group = given(new.oidc_group);
    let namespaces = if new.namespaces.is_empty() {
        vec![name.clone()]
    } else {
        new.namespaces.iter().map(|n| n.trim().to_owned()).collect()
    };
    check_role(&mut errors, &role);
    check_group(&mut errors, &group);
    if name == PLATFORM_TEAM {
        errors.add(
            "name",
            format!("`{PLATFORM_TEAM}` names the platform team itself; choose another name."),
        );
    }
    if new.namespaces.is_empty() && is_platform_namespace(&name) {
        errors.add(
            "name",
            format!("`{name}` is kept for the platform itself; choose another name or give the team its namespaces."),
        );
    }
    check_namespaces(&mut errors, &namespaces);
    let members = resolve_members(db, &mut errors, &new.members).await?;
    if errors.is_empty() && find(db, platform.id, &name).await.is_ok() {
        errors.add(
            "name",
            format!("A team named {name} exists on this platform; choose another name."),
        );
    }
    if errors.is_empty() {
        check_against_others(
            db,
            platform.id,
            None,
            &mut errors,
            role.as_deref(),
            Some(&namespaces),
        )
        .await?;
    }
    errors.into_result()?;
    let id = Uuid::new_v4();
    let mut tx = db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO team (id, platform_id, name, aws_role_arn, oidc_group, namespaces)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(platform.id)
    .bind(&name)
    .bind(&role)
    .bind(&group)
    .bind(&namespaces)
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        return Err(conflict_field(&e, &name).map_or(e.into(), TeamError::Invalid));
    }
    if let Err(e) = set_namespaces(&mut tx, platform.id, id, &namespaces).await {
        return Err(conflict_field(&e, &name).map_or(e.into(), TeamError::Invalid));
    }
    set_members(&mut tx, id, &members).await?;
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "team.created",
        &format!("team:{}/{name}", platform.slug),
        json!({ "members": members, "aws_role_arn": role, "oidc_group": group, "namespaces": namespaces }),
    )
    .await?;
    tx.commit().await?;
    find(db, platform.id, &name).await
}

async fn set_namespaces(
    tx: &mut sqlx::PgConnection,
    platform: Uuid,
    team: Uuid,
    namespaces: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM team_namespace WHERE team_id = $1")
        .bind(team)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO team_namespace (platform_id, namespace, team_id)
         SELECT $1, unnest($2::text[]), $3",
    )
    .bind(platform)
    .bind(namespaces)
    .bind(team)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn set_members(
    tx: &mut sqlx::PgConnection,
    team: Uuid,
    members: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM team_member WHERE team_id = $1 AND NOT (user_id = ANY($2))")
        .bind(team)
        .bind(members)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO team_member (team_id, user_id) SELECT $1, unnest($2::uuid[])
         ON CONFLICT DO NOTHING",
    )
    .bind(team)
    .bind(members)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Changes a team: the fields `change` sets.
pub async fn update(
    db: &PgPool,
    platform: &Platform,
    name: &str,
    change: TeamChange,
    by: &Principal,
) -> Result<Team, TeamError> {
    let team = find(db, platform.id, name).await?;
    let mut errors = FieldErrors::default();
    let role = change.aws_role_arn.map(given);
    let group = change.oidc_group.map(given);
    let namespaces = change
        .namespaces
        .map(|list| list.iter().map(|n| n.trim().to_owned()).collect::<Vec<_>>());
    if let Some(role) = &role {
        check_role(&mut errors, role);
    }
    if let Some(group) = &group {
        check_group(&mut errors, group);
    }
    if let Some(namespaces) = &namespaces {
        if namespaces.is_empty() {
            errors.add("namespaces", "Give the team at least one namespace.");
        }
        check_namespaces(&mut errors, namespaces);
    }
    let members = match &change.members {
        Some(members) => Some(resolve_members(db, &mut errors, members).await?),
        None => None,
    };
    if errors.is_empty() {
        check_against_others(
            db,
            platform.id,
            Some(team.id),
            &mut errors,
            role.clone().flatten().as_deref(),
            namespaces.as_deref(),
        )
        .await?;
    }
    errors.into_result()?;
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE team SET
             aws_role_arn = CASE WHEN $2 THEN $3 ELSE aws_role_arn END,
             oidc_group = CASE WHEN $4 THEN $5 ELSE oidc_group END,
             namespaces = COALESCE($6, namespaces),
             updated_at = now()
         WHERE id = $1",
    )
    .bind(team.id)
    .bind(role.is_some())
    .bind(role.clone().flatten())
    .bind(group.is_some())
    .bind(group.clone().flatten())
    .bind(&namespaces)
    .execute(&mut *tx)
    .await?;
    if let Some(namespaces) = &namespaces
        && let Err(e) = set_namespaces(&mut tx, platform.id, team.id, namespaces).await
    {
        return Err(conflict_field(&e, name).map_or(e.into(), TeamError::Invalid));
    }
    if let Some(members) = &members {
        set_members(&mut tx, team.id, members).await?;
    }
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "team.changed",
        &format!("team:{}/{name}", platform.slug),
        json!({
            "before": { "members": team.members, "aws_role_arn": team.aws_role_arn, "oidc_group": team.oidc_group, "namespaces": team.namespaces },
            "members": members, "aws_role_arn": role, "oidc_group": group, "namespaces": namespaces,
        }),
    )
    .await?;
    tx.commit().await?;
    find(db, platform.id, name).await
}

/// Deletes a team no live environment was built for: a cluster keeps a team's access entry and
/// bindings until it is provisioned again, so a team still in one cannot simply vanish.
pub async fn delete(
    db: &PgPool,
    platform: &Platform,
    name: &str,
    by: &Principal,
) -> Result<(), TeamError> {
    let team = find(db, platform.id, name).await?;
    let mut tx = db.begin().await?;
    sqlx::query("SELECT 1 FROM team WHERE id = $1 FOR UPDATE")
        .bind(team.id)
        .execute(&mut *tx)
        .await?;
    let live: Vec<String> = sqlx::query_scalar(
        "SELECT e.name FROM environment_team et JOIN environment e ON e.id = et.environment_id
         WHERE et.team_id = $1 AND e.state NOT IN ('rejected', 'cancelled', 'expired', 'torn_down')
         ORDER BY e.name LIMIT 10",
    )
    .bind(team.id)
    .fetch_all(&mut *tx)
    .await?;
    if !live.is_empty() {
        return Err(TeamError::Conflict(format!(
            "Team {name} has access to live environments ({}): tear them down first, or keep the team and remove its members.",
            live.join(", ")
        )));
    }
    let services: Vec<String> =
        sqlx::query_scalar("SELECT name FROM service WHERE team_id = $1 ORDER BY name LIMIT 10")
            .bind(team.id)
            .fetch_all(&mut *tx)
            .await?;
    if !services.is_empty() {
        return Err(TeamError::Conflict(format!(
            "Team {name} owns onboarded services ({}): they need an owner.",
            services.join(", ")
        )));
    }
    sqlx::query("DELETE FROM team WHERE id = $1")
        .bind(team.id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "team.deleted",
        &format!("team:{}/{name}", platform.slug),
        json!({ "members": team.members, "aws_role_arn": team.aws_role_arn, "namespaces": team.namespaces }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A user as the team pages name them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Person {
    pub id: Uuid,
    pub name: String,
    pub email: String,
}

/// The users with `ids`, by name.
pub async fn people(db: &PgPool, ids: &[Uuid]) -> Result<Vec<Person>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, email FROM app_user WHERE id = ANY($1) ORDER BY name, id")
        .bind(ids)
        .fetch_all(db)
        .await
}
