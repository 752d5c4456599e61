//! The implementation plan: a backlog generated from the approved blueprint (one item per
//! deliverable, with a stable key, dependencies and a first-cut rank that respects them), then
//! owned by the team: ranked, estimated, assigned, tracked. Regenerating after a new approval
//! adds and retires items without touching what people changed.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::DefineError;
use super::blueprint::{Blueprint, DevopsTool};
use super::platforms::Platform;
use crate::audit::{self, Actor};
use crate::auth::{Principal, UserId};
use crate::validation::FieldErrors;

pub const PHASES: [&str; 4] = ["define", "deliver", "exploit", "maintain"];
pub const STATUSES: [&str; 5] = ["todo", "doing", "blocked", "done", "obsolete"];
const RANK_STEP: i64 = 1000;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Item {
    pub id: Uuid,
    pub key: Option<String>,
    pub title: String,
    pub description: String,
    pub phase: String,
    pub status: String,
    pub rank: i64,
    pub estimate_days: Option<f64>,
    pub assignee: Option<String>,
    pub depends_on: Vec<Uuid>,
    #[serde(skip)]
    pub updated_at: DateTime<Utc>,
}

/// One deliverable of a blueprint, before it is an item.
#[derive(Debug, Clone, PartialEq)]
pub struct Deliverable {
    pub key: String,
    pub title: String,
    pub description: String,
    pub phase: &'static str,
    pub estimate_days: f64,
    pub depends_on: Vec<String>,
}

fn deliverable(
    key: String,
    title: String,
    description: &str,
    phase: &'static str,
    days: f64,
    depends_on: Vec<String>,
) -> Deliverable {
    Deliverable {
        key,
        title,
        description: description.to_owned(),
        phase,
        estimate_days: days,
        depends_on,
    }
}

/// What the blueprint asks to deliver, in an order where every item follows its dependencies.
pub fn deliverables(blueprint: &Blueprint) -> Vec<Deliverable> {
    let mut out = Vec::new();
    out.push(deliverable("account:parent".into(), "Parent account and organisation".into(), "The management account, the organisation and the organisational unit for environment accounts; cost-allocation tags.", "deliver", 2.0, vec![]));
    out.push(deliverable(
        "account:devops".into(),
        "DevOps account".into(),
        "The account that hosts delivery tooling.",
        "deliver",
        1.0,
        vec!["account:parent".into()],
    ));
    for env in &blueprint.environment_types {
        out.push(deliverable(
            format!("account:{}", env.name),
            format!("Account for {}", env.name),
            "One account per environment, for billing and security isolation.",
            "deliver",
            1.0,
            vec!["account:parent".into()],
        ));
    }
    let devops_key = match blueprint.devops.tool {
        DevopsTool::Spinnaker => {
            out.push(deliverable("devops:spinnaker".into(), "Spinnaker on its own EKS cluster".into(), "The DevOps environment: a dedicated EKS cluster running Spinnaker, created once and kept.", "deliver", 5.0, vec!["account:devops".into()]));
            "devops:spinnaker"
        }
        DevopsTool::Jenkins => {
            out.push(deliverable(
                "devops:jenkins".into(),
                "Jenkins".into(),
                "The DevOps environment: Jenkins, created once and kept.",
                "deliver",
                3.0,
                vec!["account:devops".into()],
            ));
            "devops:jenkins"
        }
    };
    let logging = blueprint.logging.fluent_bit
        || blueprint.logging.opentelemetry
        || blueprint.logging.metrics;
    for env in &blueprint.environment_types {
        let name = &env.name;
        let cluster = format!("cluster:{name}");
        let mut env_items = vec![cluster.clone()];
        out.push(deliverable(cluster.clone(), format!("EKS cluster for {name}"), "The cluster with its managed node group, team namespaces, default-deny network policies and resource quotas.", "deliver", 3.0, vec![format!("account:{name}")]));
        if logging {
            let key = format!("logging:{name}");
            out.push(deliverable(
                key.clone(),
                format!("Logging and diagnostics for {name}"),
                "Fluent Bit to the central store, the OpenTelemetry collector and metrics.",
                "deliver",
                2.0,
                vec![cluster.clone()],
            ));
            env_items.push(key);
        }
        for service in &env.data_services {
            let key = format!("data:{service}:{name}");
            out.push(deliverable(
                key.clone(),
                format!("{service} for {name}"),
                "The shared data service, through its operator.",
                "deliver",
                2.0,
                vec![cluster.clone()],
            ));
            env_items.push(key);
        }
        if blueprint.service_mesh.istio {
            let key = format!("mesh:{name}");
            out.push(deliverable(
                key.clone(),
                format!("Istio service mesh for {name}"),
                "Istio with sidecar injection and the blueprint's mutual-TLS mode.",
                "deliver",
                2.0,
                vec![cluster.clone()],
            ));
            env_items.push(key);
        }
        let pipeline = format!("pipeline:{name}");
        out.push(deliverable(
            pipeline.clone(),
            format!("Repositories and pipelines for {name}"),
            "Repository layout and the delivery pipelines that deploy to this environment.",
            "deliver",
            2.0,
            vec![cluster.clone(), devops_key.to_owned()],
        ));
        env_items.push(pipeline);
        out.push(deliverable(
            format!("handover:{name}"),
            format!("Hand {name} over to the app teams"),
            "How to connect, namespaces, where logs and traces are, data-service endpoints.",
            "exploit",
            1.0,
            env_items,
        ));
    }
    let clusters: Vec<String> = blueprint
        .environment_types
        .iter()
        .map(|e| format!("cluster:{}", e.name))
        .collect();
    out.push(deliverable(
        "maintain:currency".into(),
        "Kubernetes currency and drift checks".into(),
        "Keep cluster versions current and detect drift between the blueprint and what runs.",
        "maintain",
        2.0,
        clusters,
    ));
    out
}

/// What a (re)generation did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Generation {
    pub added: Vec<String>,
    pub obsoleted: Vec<String>,
    pub revived: Vec<String>,
    pub kept: usize,
}

/// Brings the backlog in line with `blueprint`: new deliverables are added (after everything
/// else, in dependency order), items of removed ones become `obsolete`, and every other item
/// keeps its rank, status and edits.
/// (Re)generates the backlog from the platform's approved blueprint.
pub async fn generate_from_approved(
    db: &PgPool,
    platform: &Platform,
    by: &Principal,
) -> Result<Generation, DefineError> {
    let approved = super::revisions::approved(db, platform.id)
        .await?
        .ok_or(DefineError::NoApprovedBlueprint)?;
    generate(db, platform, &approved.document, by).await
}

pub async fn generate(
    db: &PgPool,
    platform: &Platform,
    blueprint: &Blueprint,
    by: &Principal,
) -> Result<Generation, DefineError> {
    ensure_active(platform)?;
    let wanted = deliverables(blueprint);
    let mut tx = db.begin().await?;
    super::platforms::lock(&mut tx, platform.id).await?;
    let existing: Vec<(Uuid, String, String, String)> = sqlx::query_as(
        "SELECT id, key, status, title FROM backlog_item WHERE platform_id = $1 AND key IS NOT NULL",
    )
    .bind(platform.id)
    .fetch_all(&mut *tx)
    .await?;
    let mut ids: HashMap<String, Uuid> = existing
        .iter()
        .map(|(id, key, _, _)| (key.clone(), *id))
        .collect();
    let mut rank: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(rank), 0) FROM backlog_item WHERE platform_id = $1",
    )
    .bind(platform.id)
    .fetch_one(&mut *tx)
    .await?;
    let mut report = Generation::default();
    for d in &wanted {
        match existing.iter().find(|(_, key, _, _)| *key == d.key) {
            Some((id, _, status, title)) if status == "obsolete" => {
                sqlx::query(
                    "UPDATE backlog_item SET status = 'todo', updated_at = now() WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                report.revived.push(title.clone());
            }
            Some(_) => report.kept += 1,
            None => {
                rank += RANK_STEP;
                let id = Uuid::new_v4();
                let depends_on: Vec<Uuid> = d
                    .depends_on
                    .iter()
                    .filter_map(|k| ids.get(k).copied())
                    .collect();
                sqlx::query(
                    "INSERT INTO backlog_item (id, platform_id, key, title, description, phase, rank, estimate_days, depends_on)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(id)
                .bind(platform.id)
                .bind(&d.key)
                .bind(&d.title)
                .bind(&d.description)
                .bind(d.phase)
                .bind(rank)
                .bind(d.estimate_days)
                .bind(&depends_on)
                .execute(&mut *tx)
                .await?;
                ids.insert(d.key.clone(), id);
                report.added.push(d.title.clone());
            }
        }
    }
    let wanted_keys: HashSet<&str> = wanted.iter().map(|d| d.key.as_str()).collect();
    for (id, key, status, title) in &existing {
        if !wanted_keys.contains(key.as_str()) && status != "obsolete" {
            sqlx::query(
                "UPDATE backlog_item SET status = 'obsolete', updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            report.obsoleted.push(title.clone());
        }
    }
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "backlog.generated",
        &format!("platform:{}/backlog", platform.slug),
        json!({ "added": report.added.len(), "obsoleted": report.obsoleted.len(), "revived": report.revived.len(), "kept": report.kept }),
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}

/// Filters of the backlog page and API; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub phase: Option<String>,
    pub status: Option<String>,
    pub assignee: Option<String>,
}

const COLUMNS: &str = "id, key, title, description, phase, status, rank, estimate_days, assignee, depends_on, updated_at";

/// All items in rank order (a platform's backlog is a few hundred items at most).
pub async fn list(db: &PgPool, platform: Uuid, filter: &Filter) -> Result<Vec<Item>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM backlog_item WHERE platform_id = $1
           AND ($2::text IS NULL OR phase = $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::text IS NULL OR lower(assignee) = lower($4))
         ORDER BY rank, id LIMIT 2000"
    )))
    .bind(platform)
    .bind(&filter.phase)
    .bind(&filter.status)
    .bind(&filter.assignee)
    .fetch_all(db)
    .await
}

/// A backlog item found by the global search, with its platform.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hit {
    pub id: Uuid,
    pub title: String,
    pub phase: String,
    pub status: String,
    pub platform_slug: String,
    pub platform_name: String,
}

/// Items whose title or key contains `words`, on every platform or, with `member`, only on the
/// platforms that user belongs to; through the trigram index on title and key.
pub async fn search(
    db: &PgPool,
    words: &str,
    member: Option<UserId>,
    limit: i64,
) -> Result<Vec<Hit>, sqlx::Error> {
    let mut query = sqlx::QueryBuilder::new(
        "SELECT b.id, b.title, b.phase, b.status, p.slug AS platform_slug, p.name AS platform_name
         FROM backlog_item b JOIN platform p ON p.id = b.platform_id
         WHERE (b.title || ' ' || coalesce(b.key, '')) ILIKE ",
    );
    query.push_bind(crate::db::contains_pattern(words));
    if let Some(user) = member {
        query
            .push(" AND b.platform_id IN (SELECT platform_id FROM platform_member WHERE user_id = ")
            .push_bind(user.0)
            .push(")");
    }
    query
        .push(" ORDER BY lower(p.name), b.rank, b.id LIMIT ")
        .push_bind(limit);
    query.build_query_as().fetch_all(db).await
}

pub async fn get(db: &PgPool, platform: Uuid, id: Uuid) -> Result<Option<Item>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM backlog_item WHERE platform_id = $1 AND id = $2"
    )))
    .bind(platform)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Progress per phase: (phase, done, total), obsolete items left out.
pub fn progress(items: &[Item]) -> Vec<(&'static str, usize, usize)> {
    PHASES
        .iter()
        .map(|phase| {
            let live: Vec<&Item> = items
                .iter()
                .filter(|i| i.phase == *phase && i.status != "obsolete")
                .collect();
            (
                *phase,
                live.iter().filter(|i| i.status == "done").count(),
                live.len(),
            )
        })
        .filter(|(_, _, total)| *total > 0)
        .collect()
}

/// An item's editable fields, as submitted.
#[derive(Debug, Clone, Default)]
pub struct ItemInput {
    pub title: String,
    pub description: String,
    pub phase: String,
    pub status: String,
    pub estimate_days: Option<String>,
    pub assignee: String,
    pub depends_on: Vec<Uuid>,
}

fn ensure_active(platform: &Platform) -> Result<(), DefineError> {
    if platform.archived_at.is_some() {
        Err(DefineError::Archived)
    } else {
        Ok(())
    }
}

struct Checked {
    estimate: Option<f64>,
    assignee: Option<String>,
}

fn check(input: &ItemInput) -> Result<Checked, FieldErrors> {
    let mut errors = FieldErrors::default();
    if input.title.trim().is_empty() || input.title.chars().count() > 200 {
        errors.add("title", "Give the item a title of 1–200 characters.");
    }
    if input.description.chars().count() > 10_000 {
        errors.add(
            "description",
            "Keep the description under 10,000 characters.",
        );
    }
    if !PHASES.contains(&input.phase.as_str()) {
        errors.add("phase", "Choose define, deliver, exploit or maintain.");
    }
    if !STATUSES.contains(&input.status.as_str()) {
        errors.add("status", "Choose todo, doing, blocked, done or obsolete.");
    }
    let estimate = match input
        .estimate_days
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(text) => match text.parse::<f64>() {
            Ok(days) if (0.0..=1000.0).contains(&days) => Some((days * 10.0).round() / 10.0),
            _ => {
                errors.add(
                    "estimate_days",
                    "Use a number of days from 0 to 1000, e.g. 2.5.",
                );
                None
            }
        },
    };
    let assignee = Some(input.assignee.trim())
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    if assignee.as_ref().is_some_and(|a| a.chars().count() > 200) {
        errors.add("assignee", "Keep the assignee under 200 characters.");
    }
    errors
        .into_result()
        .map(|()| Checked { estimate, assignee })
}

/// Refuses dependencies on unknown items, on itself, and any that would close a cycle; the
/// cycle is named item by item.
fn check_dependencies(items: &[Item], item: Uuid, depends_on: &[Uuid]) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::default();
    let by_id: HashMap<Uuid, &Item> = items.iter().map(|i| (i.id, i)).collect();
    for dep in depends_on {
        if *dep == item {
            errors.add("depends_on", "An item cannot depend on itself.");
        } else if !by_id.contains_key(dep) {
            errors.add("depends_on", format!("No item {dep} in this backlog."));
        }
    }
    errors.clone().into_result()?;
    // With the new edges, is `item` reachable from one of its dependencies?
    let edges = |id: Uuid| -> Vec<Uuid> {
        if id == item {
            depends_on.to_vec()
        } else {
            by_id
                .get(&id)
                .map(|i| i.depends_on.clone())
                .unwrap_or_default()
        }
    };
    for start in depends_on {
        let mut stack = vec![(*start, vec![item, *start])];
        let mut seen = HashSet::new();
        while let Some((node, path)) = stack.pop() {
            if node == item {
                let names: Vec<String> = path
                    .iter()
                    .map(|id| {
                        by_id
                            .get(id)
                            .map_or_else(|| id.to_string(), |i| i.title.clone())
                    })
                    .collect();
                errors.add(
                    "depends_on",
                    format!("This would make a dependency cycle: {}.", names.join(" → ")),
                );
                return Err(errors);
            }
            if !seen.insert(node) {
                continue;
            }
            for next in edges(node) {
                let mut path = path.clone();
                path.push(next);
                stack.push((next, path));
            }
        }
    }
    Ok(())
}

fn subject(platform: &Platform) -> String {
    format!("platform:{}/backlog", platform.slug)
}

/// Adds an item by hand, at the bottom.
pub async fn create(
    db: &PgPool,
    platform: &Platform,
    input: &ItemInput,
    by: &Principal,
) -> Result<Item, DefineError> {
    ensure_active(platform)?;
    let checked = check(input).map_err(DefineError::Invalid)?;
    let mut tx = db.begin().await?;
    super::platforms::lock(&mut tx, platform.id).await?;
    let items = list(db, platform.id, &Filter::default()).await?;
    let id = Uuid::new_v4();
    check_dependencies(&items, id, &input.depends_on).map_err(DefineError::Invalid)?;
    let rank = items.iter().map(|i| i.rank).max().unwrap_or(0) + RANK_STEP;
    sqlx::query(
        "INSERT INTO backlog_item (id, platform_id, title, description, phase, status, rank, estimate_days, assignee, depends_on)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(platform.id)
    .bind(input.title.trim())
    .bind(input.description.trim())
    .bind(&input.phase)
    .bind(&input.status)
    .bind(rank)
    .bind(checked.estimate)
    .bind(&checked.assignee)
    .bind(&input.depends_on)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "backlog.item_added",
        &subject(platform),
        json!({ "item": id, "title": input.title.trim() }),
    )
    .await?;
    tx.commit().await?;
    get(db, platform.id, id).await?.ok_or(DefineError::NotFound)
}

/// Changes an item's fields.
pub async fn update(
    db: &PgPool,
    platform: &Platform,
    id: Uuid,
    input: &ItemInput,
    by: &Principal,
) -> Result<Item, DefineError> {
    update_and_place(db, platform, id, input, None, by).await
}

/// Where a change also puts the item (a PATCH may carry both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// To this place in rank order, 0 for first.
    Position(usize),
    /// One up or down.
    Move(Direction),
}

/// Changes an item's fields and, if asked, its place, in one transaction: everything is
/// checked before anything is written, and a failure leaves the item as it was.
pub async fn update_and_place(
    db: &PgPool,
    platform: &Platform,
    id: Uuid,
    input: &ItemInput,
    placement: Option<Placement>,
    by: &Principal,
) -> Result<Item, DefineError> {
    ensure_active(platform)?;
    let checked = check(input).map_err(DefineError::Invalid)?;
    let mut tx = db.begin().await?;
    super::platforms::lock(&mut tx, platform.id).await?;
    let items = list(db, platform.id, &Filter::default()).await?;
    let before = items
        .iter()
        .find(|i| i.id == id)
        .cloned()
        .ok_or(DefineError::NotFound)?;
    check_dependencies(&items, id, &input.depends_on).map_err(DefineError::Invalid)?;
    sqlx::query(
        "UPDATE backlog_item SET title = $3, description = $4, phase = $5, status = $6, estimate_days = $7,
             assignee = $8, depends_on = $9, updated_at = now()
         WHERE platform_id = $1 AND id = $2",
    )
    .bind(platform.id)
    .bind(id)
    .bind(input.title.trim())
    .bind(input.description.trim())
    .bind(&input.phase)
    .bind(&input.status)
    .bind(checked.estimate)
    .bind(&checked.assignee)
    .bind(&input.depends_on)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "backlog.item_changed",
        &subject(platform),
        json!({ "item": id, "before": { "title": before.title, "status": before.status, "assignee": before.assignee, "estimate_days": before.estimate_days } }),
    )
    .await?;
    if let Some(placement) = placement {
        apply(&mut tx, platform, id, placement, by).await?;
    }
    tx.commit().await?;
    get(db, platform.id, id).await?.ok_or(DefineError::NotFound)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

/// Puts an item elsewhere in rank order: one place up or down (at either end nothing moves), or
/// to a position (drag-and-drop).
pub async fn place(
    db: &PgPool,
    platform: &Platform,
    id: Uuid,
    placement: Placement,
    by: &Principal,
) -> Result<(), DefineError> {
    ensure_active(platform)?;
    let mut tx = db.begin().await?;
    super::platforms::lock(&mut tx, platform.id).await?;
    apply(&mut tx, platform, id, placement, by).await?;
    tx.commit().await?;
    Ok(())
}

/// [`place`] inside the caller's transaction (the platform locked).
async fn apply(
    tx: &mut sqlx::PgConnection,
    platform: &Platform,
    id: Uuid,
    placement: Placement,
    by: &Principal,
) -> Result<(), DefineError> {
    match placement {
        Placement::Position(position) => place_at(tx, platform, id, position, by).await,
        Placement::Move(direction) => swap(tx, platform, id, direction, by).await,
    }
}

/// Swaps an item with its neighbour in rank order; at either end nothing moves.
async fn swap(
    tx: &mut sqlx::PgConnection,
    platform: &Platform,
    id: Uuid,
    direction: Direction,
    by: &Principal,
) -> Result<(), DefineError> {
    let ranks: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT id, rank FROM backlog_item WHERE platform_id = $1 ORDER BY rank, id",
    )
    .bind(platform.id)
    .fetch_all(&mut *tx)
    .await?;
    let at = ranks
        .iter()
        .position(|(i, _)| *i == id)
        .ok_or(DefineError::NotFound)?;
    let other = match direction {
        Direction::Up if at > 0 => at - 1,
        Direction::Down if at + 1 < ranks.len() => at + 1,
        _ => return Ok(()),
    };
    let (a, b) = (ranks[at], ranks[other]);
    // Equal ranks (never produced here, but possible by hand) still end up ordered.
    let (rank_a, rank_b) = if a.1 == b.1 {
        (b.1 + if other > at { 1 } else { -1 }, a.1)
    } else {
        (b.1, a.1)
    };
    for (item, rank) in [(a.0, rank_a), (b.0, rank_b)] {
        sqlx::query("UPDATE backlog_item SET rank = $2, updated_at = now() WHERE id = $1")
            .bind(item)
            .bind(rank)
            .execute(&mut *tx)
            .await?;
    }
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "backlog.item_moved",
        &subject(platform),
        json!({ "item": id, "direction": if direction == Direction::Up { "up" } else { "down" } }),
    )
    .await?;
    Ok(())
}

/// Moves an item to `position` (0 = first) in rank order, renumbering ranks.
async fn place_at(
    tx: &mut sqlx::PgConnection,
    platform: &Platform,
    id: Uuid,
    position: usize,
    by: &Principal,
) -> Result<(), DefineError> {
    let mut order: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM backlog_item WHERE platform_id = $1 ORDER BY rank, id")
            .bind(platform.id)
            .fetch_all(&mut *tx)
            .await?;
    let at = order
        .iter()
        .position(|i| *i == id)
        .ok_or(DefineError::NotFound)?;
    order.remove(at);
    order.insert(position.min(order.len()), id);
    let ranks: Vec<i64> = (1..=order.len() as i64).map(|n| n * RANK_STEP).collect();
    sqlx::query(
        "UPDATE backlog_item b SET rank = r.rank, updated_at = now()
         FROM unnest($1::uuid[], $2::bigint[]) AS r(id, rank)
         WHERE b.id = r.id AND b.rank <> r.rank",
    )
    .bind(&order)
    .bind(&ranks)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        &Actor::from(by),
        "backlog.item_moved",
        &subject(platform),
        json!({ "item": id, "position": position }),
    )
    .await?;
    Ok(())
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// CSV with a header row; dependencies by key (or title for hand-made items).
pub fn to_csv(items: &[Item]) -> String {
    let names: HashMap<Uuid, String> = items
        .iter()
        .map(|i| (i.id, i.key.clone().unwrap_or_else(|| i.title.clone())))
        .collect();
    let mut out =
        String::from("id,key,title,phase,status,rank,estimate_days,assignee,depends_on\n");
    for i in items {
        let deps: Vec<&str> = i
            .depends_on
            .iter()
            .filter_map(|d| names.get(d).map(String::as_str))
            .collect();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            i.id,
            csv_field(i.key.as_deref().unwrap_or("")),
            csv_field(&i.title),
            i.phase,
            i.status,
            i.rank,
            i.estimate_days.map(|d| d.to_string()).unwrap_or_default(),
            csv_field(i.assignee.as_deref().unwrap_or("")),
            csv_field(&deps.join(" ")),
        );
    }
    out
}

pub fn to_markdown(platform: &Platform, items: &[Item]) -> String {
    let titles: HashMap<Uuid, &str> = items.iter().map(|i| (i.id, i.title.as_str())).collect();
    let mut out = format!(
        "# {}: implementation plan\n\n| # | item | phase | status | estimate | assignee | depends on |\n|---|---|---|---|---|---|---|\n",
        platform.name
    );
    for (n, i) in items.iter().enumerate() {
        let deps: Vec<&str> = i
            .depends_on
            .iter()
            .filter_map(|d| titles.get(d).copied())
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            n + 1,
            i.title.replace('|', "\\|"),
            i.phase,
            i.status,
            i.estimate_days
                .map(|d| format!("{d} d"))
                .unwrap_or_default(),
            i.assignee.as_deref().unwrap_or(""),
            deps.join(", ").replace('|', "\\|"),
        );
    }
    out
}

/// Marks the platform's items with these deliverable keys done (an environment that delivers
/// them became ready), within the caller's transaction; how many changed.
pub async fn mark_delivered(
    conn: &mut sqlx::PgConnection,
    platform: Uuid,
    keys: &[String],
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE backlog_item SET status = 'done', updated_at = now()
         WHERE platform_id = $1 AND key = ANY($2) AND status NOT IN ('done', 'obsolete')",
    )
    .bind(platform)
    .bind(keys)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_yields_every_deliverable_after_its_dependencies() {
        let blueprint = Blueprint::from_template("payments", None);
        let items = deliverables(&blueprint);
        let keys: Vec<&str> = items.iter().map(|d| d.key.as_str()).collect();
        for expected in [
            "account:parent",
            "account:devops",
            "account:perf",
            "devops:spinnaker",
            "cluster:prod",
            "logging:dev",
            "data:kafka:perf",
            "data:scylladb:test",
            "mesh:prod",
            "pipeline:dev",
            "handover:perf",
            "maintain:currency",
        ] {
            assert!(keys.contains(&expected), "missing {expected}: {keys:?}");
        }
        assert!(
            !keys.contains(&"data:scylladb:dev"),
            "dev does not use ScyllaDB"
        );
        for (i, d) in items.iter().enumerate() {
            for dep in &d.depends_on {
                let at = keys
                    .iter()
                    .position(|k| k == dep)
                    .unwrap_or_else(|| panic!("{} depends on unknown {dep}", d.key));
                assert!(at < i, "{} comes before its dependency {dep}", d.key);
            }
        }
        let unique: HashSet<&str> = keys.iter().copied().collect();
        assert_eq!(unique.len(), keys.len(), "keys are unique");
    }

    fn item(title: &str, deps: Vec<Uuid>) -> Item {
        Item {
            id: Uuid::new_v4(),
            key: None,
            title: title.into(),
            description: String::new(),
            phase: "deliver".into(),
            status: "todo".into(),
            rank: 0,
            estimate_days: None,
            assignee: None,
            depends_on: deps,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_dependency_cycle_is_refused_and_named() {
        let a = item("Accounts", vec![]);
        let b = item("Cluster", vec![a.id]);
        let c = item("Mesh", vec![b.id]);
        let items = vec![a.clone(), b.clone(), c.clone()];
        let err = check_dependencies(&items, a.id, &[c.id]).unwrap_err();
        let message = err.get("depends_on").unwrap();
        assert!(
            message.contains("Accounts → Mesh → Cluster → Accounts"),
            "{message}"
        );
        assert!(check_dependencies(&items, c.id, &[a.id]).is_ok());
        assert!(check_dependencies(&items, a.id, &[a.id]).is_err());
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut i = item("Say \"hi\", world", vec![]);
        i.estimate_days = Some(2.5);
        let csv = to_csv(&[i]);
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .contains(",\"Say \"\"hi\"\", world\",deliver,todo,0,2.5,,"),
            "{csv}"
        );
    }
}
