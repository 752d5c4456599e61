//! Account pools for ephemeral environments, the pattern of AWS's Innovation Sandbox: a
//! platform keeps `ephemeral_pool_size` accounts in its `ephemeral` unit; an ephemeral
//! environment leases one, its teardown deletes what it made (the cluster, node group and VPC
//! in the teardown's earlier steps, then the IAM roles here), checks that nothing of Slipway's is
//! left and gives the account back. No account is created or closed per use, so AWS's closure
//! quota (10% of the accounts a month) and the 90 days a closed account keeps its e-mail address
//! never come into play. An account the clean-up cannot empty is quarantined and shown on the
//! pool page; the periodic `accounts.pool` job checks quarantined accounts again (one emptied by
//! hand goes back) and creates accounts until each pool has its size.
//!
//! The pool's settings come from the plan of the last environment that leased from it (the
//! blueprint revision it was approved under), so this leaf reads nothing of the platform.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::Cloud;
use super::accounts;
use super::cloud::{AccountSpec, CloudError, Organization, Provider, Tags};
use super::waits::{settled, wait_for};
use crate::jobs::{Handler, NoPayload, StepContext, StepError, StepFuture};

/// The job kind that tops pools up and checks quarantined accounts again.
pub const TOP_UP_JOB: &str = "accounts.pool";
/// How often it runs: a lease that finds the pool empty creates its account itself, so this
/// only keeps accounts ready ahead of demand.
const EVERY: Duration = Duration::from_secs(15 * 60);
/// The tag naming the platform whose pool an account belongs to (adoption after a crash).
pub const POOL_TAG: &str = "slipway:pool";

/// A platform's pool, as the plan of an ephemeral environment names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub platform: String,
    pub size: u32,
    /// Pooled accounts are named `<account_prefix>-<n>`, e-mail `<name>@<email_domain>`.
    pub account_prefix: String,
    pub email_domain: String,
    /// Where environments build in the accounts (what a clean-up checks).
    pub region: String,
    /// The unit the accounts are in, outermost first (`[platform, ephemeral]`).
    pub organizational_unit: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_control_policies: Vec<String>,
    pub tags: Tags,
}

impl PoolSpec {
    fn account(&self, n: i32) -> AccountSpec {
        let name = format!("{}-{n}", self.account_prefix);
        let mut tags = self.tags.clone();
        tags.insert(POOL_TAG.into(), self.platform.clone());
        AccountSpec {
            email: format!("{name}@{}", self.email_domain),
            name,
            tags,
        }
    }

    fn ours(&self, tags: &Tags) -> bool {
        tags.get(POOL_TAG) == Some(&self.platform)
    }
}

/// Where a pooled account stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolState {
    Available,
    Leased,
    Cleaning,
    Quarantined,
}

impl PoolState {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolState::Available => "available",
            PoolState::Leased => "leased",
            PoolState::Cleaning => "cleaning",
            PoolState::Quarantined => "quarantined",
        }
    }

    pub fn parse(text: &str) -> Option<PoolState> {
        Some(match text {
            "available" => PoolState::Available,
            "leased" => PoolState::Leased,
            "cleaning" => PoolState::Cleaning,
            "quarantined" => PoolState::Quarantined,
            _ => return None,
        })
    }
}

crate::text_column!(PoolState, "pooled account state");

impl std::fmt::Display for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One account of a pool (`GET /api/v1/account-pool`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PooledAccount {
    pub account_id: String,
    pub state: PoolState,
    /// The lease (leased, cleaning), or the last one (quarantined).
    pub environment_id: Option<Uuid>,
    /// The environment's name, for people.
    pub environment_name: Option<String>,
    pub platform: String,
    pub name: String,
    /// How many environments have leased it.
    pub leases: i32,
    /// Why it is quarantined.
    pub reason: Option<String>,
    pub changed_at: DateTime<Utc>,
}

/// A platform's pool and how full it is, for the pool page.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PoolSummary {
    pub platform: String,
    pub size: i32,
    pub available: i64,
    pub leased: i64,
    pub cleaning: i64,
    pub quarantined: i64,
}

fn db_error(e: sqlx::Error) -> StepError {
    StepError::Transient(format!("database: {e}"))
}

/// Every pooled account, by platform and age (pools are small: fifty accounts at most each).
/// `state` keeps those in that state only.
pub async fn list(
    db: &PgPool,
    state: Option<PoolState>,
) -> Result<Vec<PooledAccount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.account_id, a.state, a.environment_id, e.name AS environment_name, a.platform,
                a.name, a.leases, a.reason, a.changed_at
         FROM pooled_account a LEFT JOIN environment e ON e.id = a.environment_id
         WHERE $1::text IS NULL OR a.state = $1
         ORDER BY a.platform, a.added_at, a.name",
    )
    .bind(state)
    .fetch_all(db)
    .await
}

/// Each pool with its size and how many of its accounts are in each state.
pub async fn summaries(db: &PgPool) -> Result<Vec<PoolSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.platform, p.size,
                count(*) FILTER (WHERE a.state = 'available') AS available,
                count(*) FILTER (WHERE a.state = 'leased') AS leased,
                count(*) FILTER (WHERE a.state = 'cleaning') AS cleaning,
                count(*) FILTER (WHERE a.state = 'quarantined') AS quarantined
         FROM account_pool p LEFT JOIN pooled_account a ON a.platform = p.platform
         GROUP BY p.platform, p.size ORDER BY p.platform",
    )
    .fetch_all(db)
    .await
}

/// Records the pool's settings (the latest plan's win).
async fn register(db: &PgPool, pool: &PoolSpec) -> Result<(), StepError> {
    let spec = serde_json::to_value(pool).map_err(|e| StepError::Permanent(e.to_string()))?;
    sqlx::query(
        "INSERT INTO account_pool (platform, size, spec) VALUES ($1, $2, $3)
         ON CONFLICT (platform) DO UPDATE SET size = $2, spec = $3, updated_at = now()
         WHERE account_pool.spec IS DISTINCT FROM $3 OR account_pool.size <> $2",
    )
    .bind(&pool.platform)
    .bind(i32::try_from(pool.size).unwrap_or(i32::MAX))
    .bind(spec)
    .execute(db)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The account `environment` holds, else an available one of the pool, now leased to it: its
/// id and name. One statement, so two environments never take the same account.
async fn take(
    db: &PgPool,
    platform: &str,
    environment: Uuid,
) -> Result<Option<(String, String)>, StepError> {
    sqlx::query_as(
        "WITH held AS (
             SELECT account_id, name FROM pooled_account
             WHERE environment_id = $2 AND state = 'leased'
         ), picked AS (
             SELECT account_id FROM pooled_account
             WHERE platform = $1 AND state = 'available' AND NOT EXISTS (SELECT 1 FROM held)
             ORDER BY changed_at, account_id LIMIT 1 FOR UPDATE SKIP LOCKED
         ), leased AS (
             UPDATE pooled_account SET state = 'leased', environment_id = $2
             WHERE account_id IN (SELECT account_id FROM picked) RETURNING account_id, name
         )
         SELECT account_id, name FROM held UNION ALL SELECT account_id, name FROM leased",
    )
    .bind(platform)
    .bind(environment)
    .fetch_optional(db)
    .await
    .map_err(db_error)
}

/// The number of the next account to create, while the pool's accounts that are not
/// quarantined are fewer than its size (a quarantined account keeps its name, so its
/// replacement gets a new one).
async fn next_number(db: &PgPool, pool: &PoolSpec) -> Result<Option<i32>, StepError> {
    sqlx::query_scalar(
        "SELECT CASE WHEN (SELECT count(*) FROM pooled_account
                           WHERE platform = $1 AND state <> 'quarantined') < $2
                THEN (SELECT min(n) FROM generate_series(1, 10000) n
                      WHERE NOT EXISTS (SELECT 1 FROM pooled_account
                                        WHERE name = $3 || '-' || n)) END",
    )
    .bind(&pool.platform)
    .bind(i64::from(pool.size))
    .bind(&pool.account_prefix)
    .fetch_one(db)
    .await
    .map_err(db_error)
}

/// What [`grow`] did.
enum Growth {
    /// An account was added.
    Grew,
    /// The pool has its size.
    Full,
    /// Another lease or the top-up job is adding one now.
    Busy,
}

/// The session advisory lock one growth of a pool holds: two leases finding the pool empty at
/// once would otherwise both take the same next number and ask AWS for two accounts.
const GROWTH_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('slipway.pool'), hashtext($1))";

/// Whether someone holds `platform`'s growth lock.
async fn growing(db: &PgPool, platform: &str) -> Result<bool, StepError> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
                        AND classid::int = hashtext('slipway.pool') AND objid::int = hashtext($1)
                        AND objsubid = 2)",
    )
    .bind(platform)
    .fetch_one(db)
    .await
    .map_err(db_error)
}

/// One more account for the pool, when it has room and nobody else is adding one: created (or
/// a request in flight followed, or the account of that name adopted when it carries the
/// pool's tag), placed in the pool's unit and added as available.
async fn grow<P: Provider>(
    p: &P,
    ctx: &StepContext,
    organization: &Organization,
    pool: &PoolSpec,
) -> Result<Growth, StepError> {
    // A connection of its own, closed at the end rather than returned to the pool, so the lock
    // ends with it however this ends (an error, a cancelled task, a killed process).
    let mut lock = ctx.db.acquire().await.map_err(db_error)?.detach();
    let locked: bool = sqlx::query_scalar(GROWTH_LOCK)
        .bind(&pool.platform)
        .fetch_one(&mut lock)
        .await
        .map_err(db_error)?;
    if !locked {
        return Ok(Growth::Busy);
    }
    let grown = add_account(p, ctx, organization, pool).await;
    // Closing the connection releases the lock.
    let _ = sqlx::Connection::close(lock).await;
    grown
}

async fn add_account<P: Provider>(
    p: &P,
    ctx: &StepContext,
    organization: &Organization,
    pool: &PoolSpec,
) -> Result<Growth, StepError> {
    let Some(n) = next_number(&ctx.db, pool).await? else {
        return Ok(Growth::Full);
    };
    let spec = pool.account(n);
    let key = format!("pool_request:{}", spec.name);
    let id = accounts::obtain(p, ctx, &spec, &key, |tags| pool.ours(tags)).await?;
    accounts::place(
        p,
        ctx,
        organization,
        &id,
        &pool.organizational_unit,
        &pool.service_control_policies,
    )
    .await?;
    sqlx::query(
        "INSERT INTO pooled_account (account_id, platform, name) VALUES ($1, $2, $3)
         ON CONFLICT (account_id) DO NOTHING",
    )
    .bind(&id)
    .bind(&pool.platform)
    .bind(&spec.name)
    .execute(&ctx.db)
    .await
    .map_err(db_error)?;
    ctx.log(&format!(
        "account {id} ({}) is in the {} pool",
        spec.name, pool.platform
    ))
    .await?;
    Ok(Growth::Grew)
}

/// Leases an account of `pool` to `environment`: the one it holds already (an attempt that
/// crashed after leasing), an available one, or one created for the pool when it has room;
/// otherwise waits in the step for an account to be given back. Its id and name.
pub(super) async fn lease<P: Provider>(
    p: &P,
    ctx: &StepContext,
    organization: &Organization,
    pool: &PoolSpec,
    environment: Uuid,
) -> Result<(String, String), StepError> {
    register(&ctx.db, pool).await?;
    loop {
        if let Some((id, name)) = take(&ctx.db, &pool.platform, environment).await? {
            ctx.log(&format!(
                "leased account {id} ({name}) from the {} pool",
                pool.platform
            ))
            .await?;
            return Ok((id, name));
        }
        let what = match grow(p, ctx, organization, pool).await? {
            Growth::Grew => continue,
            Growth::Full => format!(
                "an account of the {} pool (all {} are in use)",
                pool.platform, pool.size
            ),
            Growth::Busy => format!("an account of the {} pool being created", pool.platform),
        };
        wait_for(ctx, &what, || async {
            let available: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pooled_account
                                WHERE platform = $1 AND state = 'available')",
            )
            .bind(&pool.platform)
            .fetch_one(&ctx.db)
            .await
            .map_err(db_error)?;
            // Or the pool has room (an account was quarantined) and nobody is adding one
            // (the growth another lease was making ended): try again.
            let room = next_number(&ctx.db, pool).await?.is_some()
                && !growing(&ctx.db, &pool.platform).await?;
            Ok((available || room).then_some(()))
        })
        .await?;
    }
}

/// The pooled account `environment` holds (leased or being cleaned), if any.
pub(super) async fn held(db: &PgPool, environment: Uuid) -> Result<Option<String>, StepError> {
    sqlx::query_scalar(
        "SELECT account_id FROM pooled_account
         WHERE environment_id = $1 AND state IN ('leased', 'cleaning')",
    )
    .bind(environment)
    .fetch_optional(db)
    .await
    .map_err(db_error)
}

/// What the end of a lease did with the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// Empty, and available to the next environment.
    ToThePool,
    /// Something was left in it, or the clean-up failed: kept out of the pool.
    Quarantined,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::ToThePool => "returned",
            Returned::Quarantined => "quarantined",
        }
    }
}

/// Ends `environment`'s lease of `account` once teardown has removed its cluster, node group
/// and VPC: the rest of what it made goes, the account is checked empty and given back, or
/// quarantined with what was found. Never fails the teardown for what is left; only a transient
/// error (retried) stops it.
pub(super) async fn give_back<P: Provider>(
    p: &P,
    ctx: &StepContext,
    account: &str,
    region: &str,
    environment: Uuid,
) -> Result<Returned, StepError> {
    let state: Option<String> = sqlx::query_scalar(
        "UPDATE pooled_account SET state = 'cleaning'
         WHERE account_id = $1 AND environment_id = $2 AND state IN ('leased', 'cleaning')
         RETURNING state",
    )
    .bind(account)
    .bind(environment)
    .fetch_optional(&ctx.db)
    .await
    .map_err(db_error)?;
    if state.is_none() {
        // An earlier attempt ended the lease already.
        let quarantined: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pooled_account
                            WHERE account_id = $1 AND environment_id = $2 AND state = 'quarantined')",
        )
        .bind(account)
        .bind(environment)
        .fetch_one(&ctx.db)
        .await
        .map_err(db_error)?;
        return Ok(if quarantined {
            Returned::Quarantined
        } else {
            Returned::ToThePool
        });
    }
    let returned = check(p, ctx, account, region, PoolState::Cleaning).await?;
    match returned {
        Returned::ToThePool => {
            ctx.log(&format!("account {account} is empty and back in its pool"))
                .await?
        }
        Returned::Quarantined => {
            ctx.log(&format!(
                "account {account} is quarantined: see the account pool page"
            ))
            .await?
        }
    }
    Ok(returned)
}

/// Empties `account` (in state `from`) and moves it to available, or to quarantined with why.
async fn check<P: Provider>(
    p: &P,
    ctx: &StepContext,
    account: &str,
    region: &str,
    from: PoolState,
) -> Result<Returned, StepError> {
    let found = match settled(ctx, || p.open_session(account)).await {
        Ok(session) => p.clear_account(&session, region).await,
        Err(e) => Err(e),
    };
    let reason = match found {
        Ok(left) if left.is_empty() => None,
        Ok(left) => Some(format!("left after the clean-up: {}", left.join("; "))),
        Err(CloudError::Permanent(m)) => Some(format!("the clean-up failed: {m}")),
        Err(e) => return Err(e.into()),
    };
    sqlx::query(
        "UPDATE pooled_account
         SET state = CASE WHEN $3::text IS NULL THEN 'available' ELSE 'quarantined' END,
             environment_id = CASE WHEN $3::text IS NULL THEN NULL ELSE environment_id END,
             reason = $3
         WHERE account_id = $1 AND state = $2",
    )
    .bind(account)
    .bind(from)
    .bind(&reason)
    .execute(&ctx.db)
    .await
    .map_err(db_error)?;
    Ok(match reason {
        None => Returned::ToThePool,
        Some(_) => Returned::Quarantined,
    })
}

/// The periodic job keeping every pool at its size.
pub struct TopUp {
    pub cloud: Cloud,
}

impl Handler for TopUp {
    type Payload = NoPayload;

    fn kind(&self) -> &'static str {
        TOP_UP_JOB
    }

    fn steps(&self, _: &NoPayload) -> Vec<String> {
        vec!["top-up".into()]
    }

    fn every(&self) -> Option<Duration> {
        Some(EVERY)
    }

    fn run_step<'a>(
        &'a self,
        _: &'a str,
        _: &'a NoPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            match &self.cloud {
                Cloud::Aws(p) => top_up(p.as_ref(), ctx).await,
                Cloud::Simulated(p) => top_up(p, ctx).await,
            }
        })
    }
}

async fn top_up<P: Provider>(p: &P, ctx: &StepContext) -> Result<(), StepError> {
    let pools: Vec<serde_json::Value> = sqlx::query_scalar("SELECT spec FROM account_pool")
        .fetch_all(&ctx.db)
        .await
        .map_err(db_error)?;
    if pools.is_empty() {
        return ctx.log("no account pools yet").await;
    }
    let organization = p.organization().await?;
    for spec in pools {
        let pool: PoolSpec = serde_json::from_value(spec)
            .map_err(|e| StepError::Permanent(format!("a pool's settings are unreadable: {e}")))?;
        let quarantined: Vec<String> = sqlx::query_scalar(
            "SELECT account_id FROM pooled_account
             WHERE platform = $1 AND state = 'quarantined' ORDER BY changed_at",
        )
        .bind(&pool.platform)
        .fetch_all(&ctx.db)
        .await
        .map_err(db_error)?;
        for account in quarantined {
            if check(p, ctx, &account, &pool.region, PoolState::Quarantined).await?
                == Returned::ToThePool
            {
                ctx.log(&format!(
                    "quarantined account {account} is empty now: back in the pool"
                ))
                .await?;
            }
        }
        let mut made = 0;
        loop {
            match grow(p, ctx, &organization, &pool).await? {
                Growth::Grew => made += 1,
                Growth::Full => break,
                // A lease (or another run) is adding one: wait for it, then go on, so a
                // completed top-up means a full pool.
                Growth::Busy => {
                    let what = format!("an account of the {} pool being created", pool.platform);
                    wait_for(ctx, &what, || async {
                        Ok((!growing(&ctx.db, &pool.platform).await?).then_some(()))
                    })
                    .await?
                }
            }
        }
        ctx.log(&format!(
            "the {} pool has its {} accounts ({made} created now)",
            pool.platform, pool.size
        ))
        .await?;
    }
    Ok(())
}
