//! The cloud connection page: what the configuration says, and a live check of the credentials.

use askama::Template;
use axum::extract::State;
use axum::response::Html;

use crate::app::AppState;
use crate::audit::{self, Actor};
use crate::http::error::AppError;
use crate::http::extract::{Allowed, Ctx, ManageCloud};
use crate::http::views::{Shell, render};

/// The cloud connection: what the configuration says, and a live check of the credentials.
#[derive(Template)]
#[template(path = "cloud.html")]
pub struct CloudPage {
    pub shell: Shell,
    pub settings: Vec<(&'static str, String)>,
    /// The outcome of "Test connection": the identity and the organization, or why it failed.
    pub test: Option<Result<crate::provision::ConnectionCheck, String>>,
}

fn cloud_settings(state: &AppState) -> Vec<(&'static str, String)> {
    use crate::app::config::CloudMode;
    let config = &state.config;
    let aws = &config.aws;
    let or =
        |value: &Option<String>, default: &str| value.clone().unwrap_or_else(|| default.to_owned());
    let mut rows = vec![(
        "Provider (SLIPWAY_CLOUD)",
        match config.cloud {
            CloudMode::Simulated => "simulated: no real resources are created".to_owned(),
            CloudMode::Aws => "aws".to_owned(),
        },
    )];
    if let crate::provision::Cloud::Aws(cloud) = &state.cloud {
        rows.push(("Region (AWS_REGION)", or(&cloud.region(), "us-east-1")));
    }
    rows.extend([
        ("Credentials", "the standard AWS chain: environment, profile (AWS_PROFILE), web identity, instance role".to_owned()),
        ("Endpoint (AWS_ENDPOINT_URL)", std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into())),
        ("Assumed role (aws_role_arn)", or(&aws.role_arn, "none: the chain's own identity")),
        ("Organisational unit the platforms' units go under (aws_organizational_unit)", or(&aws.organizational_unit, "the organisation's root")),
        ("Access role in member accounts (aws_member_role_name)", aws.member_role_name.clone()),
        ("EKS cluster role (aws_cluster_role_name)", aws.cluster_role_name.clone()),
        ("EKS node role (aws_node_role_name)", aws.node_role_name.clone()),
        ("Account e-mail domain (account_email_domain)", config.account_email_domain.clone()),
        ("Kubernetes endpoint override (kube_endpoint_override)", or(&aws.kube_endpoint_override, "none: each cluster's own endpoint")),
        (
            "CA for the override (kube_endpoint_ca)",
            if aws.kube_endpoint_ca.is_some() { "a PEM bundle from the configured file" } else { "none: each cluster's own CA" }.to_owned(),
        ),
        ("Git host of environments' repositories (git_host)", config.git_host().describe()),
        (
            "Kubeconfig (kubeconfig)",
            aws.kubeconfig
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none: EKS tokens of the member account's role".into()),
        ),
    ]);
    rows
}

pub async fn cloud_page(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<ManageCloud>,
) -> Result<Html<String>, AppError> {
    render(&CloudPage {
        shell: ctx.shell(&state, "cloud", "Cloud connection"),
        settings: cloud_settings(&state),
        test: None,
    })
}

/// "Test connection": STS GetCallerIdentity with the configured credentials, then the
/// organization check the account step makes.
pub async fn cloud_test(
    State(state): State<AppState>,
    ctx: Ctx,
    allowed: Allowed<ManageCloud>,
) -> Result<Html<String>, AppError> {
    let test = state
        .cloud
        .check_connection()
        .await
        .map_err(|e| e.to_string());
    audit::record(
        &state.pool,
        &Actor::from(allowed.principal()),
        "cloud.test",
        "cloud",
        serde_json::json!({
            "ok": test.is_ok(),
            "organization_ok": test.as_ref().is_ok_and(|t| t.organization.is_ok()),
        }),
    )
    .await?;
    render(&CloudPage {
        shell: ctx.shell(&state, "cloud", "Cloud connection"),
        settings: cloud_settings(&state),
        test: Some(test),
    })
}
