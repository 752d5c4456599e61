//! A request as people type it (form fields or JSON), checked against the environment type of
//! the platform's approved blueprint, with every error on its field. The checked request
//! carries its cost estimate and provisioning plan: what the requester sees before submitting
//! is exactly what is stored and approved.

use sqlx::PgPool;

use super::EnvironmentError;
use super::pricing::{self, Estimate};
use crate::auth::Principal;
use crate::define::blueprint::{Blueprint, EnvironmentType, Lifecycle};
use crate::define::platforms::Platform;
use crate::define::revisions::Revision;
use crate::provision::plan::{self, Parameters, PlanInput, PlanStep};
use crate::validation::FieldErrors;
use crate::validation::is_dns_label;

/// The fields of a request as submitted; numbers still as text so that a form and a JSON body
/// get the same messages. `None` means "not given": the type's default applies.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    pub environment_type: String,
    pub name: String,
    pub purpose: String,
    pub ttl_hours: Option<String>,
    pub instance_type: Option<String>,
    pub min_nodes: Option<String>,
    pub max_nodes: Option<String>,
    pub data_services: Option<Vec<String>>,
}

/// A request that passed every check, with what it will cost and what provisioning will do.
#[derive(Debug, Clone)]
pub struct CheckedRequest {
    pub environment_type: EnvironmentType,
    pub blueprint_number: i32,
    pub name: String,
    pub purpose: String,
    pub ttl_hours: Option<u32>,
    pub parameters: Parameters,
    pub estimate: Estimate,
    pub plan: Vec<PlanStep>,
    /// The teams it is planned for (their namespaces and access entries are in the plan).
    pub teams: Vec<uuid::Uuid>,
}

impl CheckedRequest {
    /// Whether the type's policy approves this request without a person: ephemeral, and even
    /// at its maximum node count estimated under the policy's monthly limit.
    pub fn auto_approved(&self) -> bool {
        let policy = &self.environment_type.approval;
        self.environment_type.lifecycle == Lifecycle::Ephemeral
            && policy
                .auto_approve_below_monthly_usd
                .is_some_and(|limit| self.estimate.max_monthly().0 < i64::from(limit) * 1_000_000)
    }
}

/// The environment types `principal` may request, for the form's choice.
pub fn requestable<'a>(
    blueprint: &'a Blueprint,
    principal: &Principal,
) -> Vec<&'a EnvironmentType> {
    blueprint
        .environment_types
        .iter()
        .filter(|t| may_request(t, principal))
        .collect()
}

fn may_request(ty: &EnvironmentType, principal: &Principal) -> bool {
    ty.requesters.iter().any(|role| principal.has(*role))
}

fn number(errors: &mut FieldErrors, field: &str, value: Option<&str>, default: u32) -> Option<u32> {
    match value.map(str::trim) {
        None | Some("") => Some(default),
        Some(text) => match text.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.add(field, "Enter a whole number.");
                None
            }
        },
    }
}

/// Checks `raw` against `approved` (the platform's approved blueprint) for `principal`. The
/// name's uniqueness is checked here for the message and again by a unique index on insert.
pub async fn check(
    db: &PgPool,
    platform: &Platform,
    approved: &Revision,
    principal: &Principal,
    raw: &RawRequest,
    account_email_domain: &str,
) -> Result<CheckedRequest, EnvironmentError> {
    let mut errors = FieldErrors::default();
    let blueprint = &approved.document;
    let type_name = raw.environment_type.trim();
    let names: Vec<&str> = requestable(blueprint, principal)
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let ty = match blueprint.environment_type(type_name) {
        _ if type_name.is_empty() => {
            errors.add("environment_type", "Choose an environment type.");
            None
        }
        None => {
            errors.add(
                "environment_type",
                format!(
                    "`{type_name}` is not an environment type of {}; choose one of: {}.",
                    platform.name,
                    names.join(", ")
                ),
            );
            None
        }
        Some(ty) if !may_request(ty, principal) => {
            let roles: Vec<&str> = ty.requesters.iter().map(|r| r.label()).collect();
            errors.add(
                "environment_type",
                format!(
                    "Only these roles may request `{type_name}` environments: {}.",
                    roles.join(", ")
                ),
            );
            None
        }
        Some(ty) => Some(ty),
    };

    let name = raw.name.trim();
    if name.is_empty() {
        errors.add("name", "Enter a name, e.g. checkout-perf.");
    } else if !is_dns_label(name) {
        errors.add(
            "name",
            "Use lowercase letters, digits and dashes, starting with a letter (1–40 characters).",
        );
    } else if name == crate::provision::plan::DEVOPS_ENVIRONMENT {
        errors.add(
            "name",
            "`devops` is the platform's DevOps environment; choose another name.",
        );
    } else if let Err(message) = name_available(db, platform, name).await? {
        errors.add("name", message);
    }

    let purpose = raw.purpose.trim();
    match purpose.chars().count() {
        0 => errors.add(
            "purpose",
            "Say what the environment is for; approvers read it.",
        ),
        1..=2000 => {}
        _ => errors.add("purpose", "Keep it under 2,000 characters."),
    }

    let Some(ty) = ty else {
        return Err(errors.into());
    };
    let ttl_hours = match (&ty.ttl, raw.ttl_hours.as_deref().map(str::trim)) {
        (None, None | Some("")) => None,
        (None, Some(_)) => {
            errors.add(
                "ttl_hours",
                format!(
                    "`{}` environments are long-lived; leave the TTL empty.",
                    ty.name
                ),
            );
            None
        }
        (Some(ttl), given) => match number(&mut errors, "ttl_hours", given, ttl.default_hours) {
            Some(h) if h == 0 || h > ttl.max_hours => {
                errors.add(
                    "ttl_hours",
                    format!(
                        "Use 1 to {} hours: the maximum for `{}` (extend it later if needed).",
                        ttl.max_hours, ty.name
                    ),
                );
                None
            }
            h => h,
        },
    };

    let bounds = &ty.node_group;
    let instance_type = raw
        .instance_type
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(&bounds.instance_types[0])
        .to_owned();
    if !bounds.instance_types.contains(&instance_type) {
        errors.add(
            "parameters.instance_type",
            format!(
                "`{instance_type}` is not allowed for `{}`; choose one of: {}.",
                ty.name,
                bounds.instance_types.join(", ")
            ),
        );
    }
    let within = |errors: &mut FieldErrors, field: &str, n: Option<u32>| {
        n.filter(|n| {
            let ok = (bounds.min_size..=bounds.max_size).contains(n);
            if !ok {
                errors.add(
                    field,
                    format!(
                        "Use {} to {} nodes for `{}`.",
                        bounds.min_size, bounds.max_size, ty.name
                    ),
                );
            }
            ok
        })
    };
    let min = number(
        &mut errors,
        "parameters.min_nodes",
        raw.min_nodes.as_deref(),
        bounds.min_size,
    );
    let min = within(&mut errors, "parameters.min_nodes", min);
    let max = number(
        &mut errors,
        "parameters.max_nodes",
        raw.max_nodes.as_deref(),
        bounds.max_size,
    );
    let max = within(&mut errors, "parameters.max_nodes", max);
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        errors.add(
            "parameters.max_nodes",
            "Use at least the minimum number of nodes.",
        );
    }

    let mut data_services: Vec<String> = Vec::new();
    for service in raw.data_services.as_ref().unwrap_or(&ty.data_services) {
        let service = service.trim();
        if !ty.data_services.iter().any(|s| s == service) {
            errors.add(
                "parameters.data_services",
                format!(
                    "`{service}` is not offered for `{}`; choose from: {}.",
                    ty.name,
                    if ty.data_services.is_empty() {
                        "none".to_owned()
                    } else {
                        ty.data_services.join(", ")
                    }
                ),
            );
        } else if !data_services.iter().any(|s| s == service) {
            data_services.push(service.to_owned());
        }
    }
    // In the blueprint's order, so equal requests give equal plans.
    data_services.sort_by_key(|s| ty.data_services.iter().position(|t| t == s));

    errors.into_result()?;
    let (Some(min_nodes), Some(max_nodes)) = (min, max) else {
        unreachable!("node counts without errors are present");
    };
    let parameters = Parameters {
        instance_type,
        min_nodes,
        max_nodes,
        data_services,
    };
    let sized: Vec<_> = parameters
        .data_services
        .iter()
        .filter_map(|s| blueprint.data_services.get(s).map(|d| (s.clone(), d.size)))
        .collect();
    let estimate = pricing::estimate(&parameters.instance_type, min_nodes, max_nodes, &sized);
    let teams = crate::teams::for_request(db, platform.id, ty.lifecycle, principal.user.id).await?;
    let plan_teams: Vec<_> = teams.iter().map(|t| t.plan_team()).collect();
    let plan = plan::build(
        &PlanInput {
            platform_slug: &platform.slug,
            blueprint,
            name,
            parameters: &parameters,
            teams: &plan_teams,
            account_email_domain,
        },
        ty,
    );
    Ok(CheckedRequest {
        environment_type: ty.clone(),
        blueprint_number: approved.number,
        name: name.to_owned(),
        purpose: purpose.to_owned(),
        ttl_hours,
        parameters,
        estimate,
        plan,
        teams: teams.iter().map(|t| t.id).collect(),
    })
}

/// `Ok(())` when `name` is free on `platform`, else the message to show beside the field.
pub async fn name_available(
    db: &PgPool,
    platform: &Platform,
    name: &str,
) -> Result<Result<(), String>, sqlx::Error> {
    if !is_dns_label(name) {
        return Ok(Err(
            "Use lowercase letters, digits and dashes, starting with a letter (1–40 characters)."
                .into(),
        ));
    }
    let taken: Option<String> = sqlx::query_scalar(
        "SELECT state FROM environment WHERE platform_id = $1 AND name = $2
           AND state NOT IN ('rejected', 'cancelled', 'expired', 'torn_down')",
    )
    .bind(platform.id)
    .bind(name)
    .fetch_optional(db)
    .await?;
    Ok(match taken {
        Some(state) => Err(format!(
            "`{name}` is taken by a live environment of {} ({}); choose another name.",
            platform.name,
            super::EnvState::parse(&state).map_or(state.as_str(), |s| s.label())
        )),
        None => Ok(()),
    })
}
