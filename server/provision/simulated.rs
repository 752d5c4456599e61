//! The simulated cloud: accounts, clusters, node groups and Kubernetes objects as rows of
//! `simulated_resource`, with the states the real APIs report (CREATING for a while, then
//! ACTIVE; DELETING, then gone) and the same conflicts (a second cluster of a name is refused).
//! It is the embedded default, so a new user can walk the whole journey without an AWS account;
//! the UI labels it everywhere. Failures can be injected per operation (`simulated_fault`).

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

use super::cloud::{
    AccessEntry, Account, AccountCreation, AccountSpec, Addon, AddonSpec, AddonVersions, Applied,
    Closure, CloudError, Cluster, ClusterApi, ClusterSpec, DeprecatedApi, Identity, Insight,
    Network, Nodegroup, NodegroupSpec, Organization, Provider, Scaling, Status, Tags,
    WorkloadIdentity, WorkloadIdentitySpec, describe_object,
};
use super::drift::{Drift, missing_object, object_drift};
use super::manifests::{GeneratedSecret, SecretCopy};

/// The simulated management account.
pub const MANAGEMENT_ACCOUNT: &str = "000000000000";
/// The simulated organization's root.
const SIMULATED_ROOT: &str = "r-sim";

#[derive(Clone)]
pub struct SimulatedCloud {
    db: PgPool,
    /// How long a resource stays CREATING or DELETING.
    delay: Duration,
}

fn db_error(e: sqlx::Error) -> CloudError {
    CloudError::Transient(format!("the simulated cloud's store failed: {e}"))
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    creating: bool,
    deleting: bool,
    tags: Value,
    body: Value,
}

impl Row {
    fn status(&self) -> Status {
        if self.deleting {
            Status::Deleting
        } else if self.creating {
            Status::Creating
        } else {
            Status::Active
        }
    }

    fn tags(&self) -> Tags {
        serde_json::from_value(self.tags.clone()).unwrap_or_default()
    }
}

/// The columns of [`Row`] (a macro, so the queries stay string literals).
macro_rules! columns {
    () => {
        "id, name, ready_at > now() AS creating, gone_at IS NOT NULL AS deleting, tags, body"
    };
}

impl SimulatedCloud {
    pub fn new(db: PgPool, delay: Duration) -> Self {
        Self { db, delay }
    }

    fn delay_ms(&self) -> i64 {
        i64::try_from(self.delay.as_millis()).unwrap_or(i64::MAX)
    }

    /// Takes one injected failure of `operation`, if any is left.
    async fn fault(&self, operation: &str) -> Result<(), CloudError> {
        let message: Option<String> = sqlx::query_scalar(
            "UPDATE simulated_fault SET remaining = remaining - 1
             WHERE operation = $1 AND remaining > 0 RETURNING message",
        )
        .bind(operation)
        .fetch_optional(&self.db)
        .await
        .map_err(db_error)?;
        match message {
            Some(m) => Err(CloudError::Permanent(format!(
                "{operation} failed (injected by the simulated cloud): {m}"
            ))),
            None => Ok(()),
        }
    }

    /// Forgets resources whose deletion has finished.
    async fn expire(&self) -> Result<(), CloudError> {
        sqlx::query("DELETE FROM simulated_resource WHERE gone_at <= now()")
            .execute(&self.db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn find(&self, kind: &str, id: &str) -> Result<Option<Row>, CloudError> {
        self.expire().await?;
        sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM simulated_resource WHERE kind = $1 AND id = $2"
        ))
        .bind(kind)
        .bind(id)
        .fetch_optional(&self.db)
        .await
        .map_err(db_error)
    }

    /// Inserts a resource; `false` when one with this id exists (the caller's conflict).
    async fn insert(&self, r: NewResource<'_>) -> Result<bool, CloudError> {
        let NewResource {
            kind,
            id,
            name,
            request_id,
            tags,
            body,
            delay_ms,
        } = r;
        self.expire().await?;
        let done = sqlx::query(
            "INSERT INTO simulated_resource (kind, id, name, ready_at, request_id, tags, body)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4::float8 / 1000), $5, $6, $7)
             ON CONFLICT (kind, id) DO NOTHING",
        )
        .bind(kind)
        .bind(id)
        .bind(name)
        .bind(delay_ms as f64)
        .bind(request_id)
        .bind(json!(tags))
        .bind(body)
        .execute(&self.db)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    /// Starts deleting a resource (and what lives under it).
    async fn delete(&self, kind: &str, id: &str) -> Result<(), CloudError> {
        sqlx::query(
            "UPDATE simulated_resource
             SET gone_at = now() + make_interval(secs => $3::float8 / 1000)
             WHERE ((kind = $1 AND id = $2) OR id LIKE $2 || '/%') AND gone_at IS NULL",
        )
        .bind(kind)
        .bind(id)
        .bind(self.delay_ms() as f64)
        .execute(&self.db)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// Sets the Kubernetes (or add-on) version of a resource that exists.
    async fn set_version(&self, kind: &str, id: &str, version: &str) -> Result<(), CloudError> {
        let updated = sqlx::query(
            "UPDATE simulated_resource SET body = body || jsonb_build_object('version', $3::text)
             WHERE kind = $1 AND id = $2 AND gone_at IS NULL",
        )
        .bind(kind)
        .bind(id)
        .bind(version)
        .execute(&self.db)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Err(CloudError::Permanent(format!("{kind} {id} is not there")));
        }
        Ok(())
    }
}

/// A resource to create, CREATING for `delay_ms`.
struct NewResource<'a> {
    kind: &'a str,
    id: &'a str,
    name: &'a str,
    request_id: Option<&'a str>,
    tags: &'a Tags,
    body: Value,
    delay_ms: i64,
}

fn cluster_id(account: &str, name: &str) -> String {
    format!("{account}/{name}")
}

impl Provider for SimulatedCloud {
    type Session = String;
    type ClusterApi = SimulatedCluster;

    fn label(&self) -> &'static str {
        "simulated"
    }

    async fn identity(&self) -> Result<Identity, CloudError> {
        Ok(Identity {
            account: MANAGEMENT_ACCOUNT.into(),
            arn: format!("arn:simulated:iam::{MANAGEMENT_ACCOUNT}:root"),
        })
    }

    async fn find_account(&self, name: &str) -> Result<Option<Account>, CloudError> {
        self.expire().await?;
        let row: Option<Row> = sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM simulated_resource
             WHERE kind = 'account' AND name = $1 AND gone_at IS NULL AND ready_at <= now()
             ORDER BY created_at LIMIT 1"
        ))
        .bind(name)
        .fetch_optional(&self.db)
        .await
        .map_err(db_error)?;
        Ok(row.map(|r| Account {
            tags: r.tags(),
            id: r.id,
            name: r.name,
            active: true,
        }))
    }

    async fn pending_account_request(&self, name: &str) -> Result<Option<String>, CloudError> {
        sqlx::query_scalar(
            "SELECT request_id FROM simulated_resource
             WHERE kind = 'account' AND name = $1 AND gone_at IS NULL AND ready_at > now()
             ORDER BY created_at LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&self.db)
        .await
        .map(Option::flatten)
        .map_err(db_error)
    }

    async fn create_account(&self, spec: &AccountSpec) -> Result<String, CloudError> {
        self.fault("organizations:CreateAccount").await?;
        let n = u64::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .unwrap_or_default(),
        );
        let id = format!("{:012}", 100_000_000_000 + n % 900_000_000_000);
        let request_id = format!("car-{}", uuid::Uuid::new_v4().simple());
        self.insert(NewResource {
            kind: "account",
            id: &id,
            name: &spec.name,
            request_id: Some(&request_id),
            tags: &spec.tags,
            body: json!({ "email": spec.email }),
            delay_ms: self.delay_ms(),
        })
        .await?;
        Ok(request_id)
    }

    async fn account_creation(&self, request_id: &str) -> Result<AccountCreation, CloudError> {
        let row: Option<(String, bool)> = sqlx::query_as(
            "SELECT id, ready_at > now() FROM simulated_resource
             WHERE kind = 'account' AND request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(&self.db)
        .await
        .map_err(db_error)?;
        Ok(match row {
            None => AccountCreation::Failed(format!("no account request {request_id}")),
            Some((_, true)) => AccountCreation::InProgress,
            Some((id, false)) => AccountCreation::Succeeded(id),
        })
    }

    async fn organization(&self) -> Result<Organization, CloudError> {
        self.fault("organizations:DescribeOrganization").await?;
        Ok(Organization {
            management_account: MANAGEMENT_ACCOUNT.into(),
            base_unit: SIMULATED_ROOT.into(),
        })
    }

    async fn ensure_unit(&self, parent: &str, name: &str) -> Result<String, CloudError> {
        self.fault("organizations:CreateOrganizationalUnit").await?;
        // The unit's id is its path: found again by the same parent and name.
        let id = format!("{parent}/{name}");
        self.insert(NewResource {
            kind: "unit",
            id: &id,
            name,
            request_id: None,
            tags: &Tags::new(),
            body: json!({ "parent": parent }),
            delay_ms: 0,
        })
        .await?;
        Ok(id)
    }

    /// The simulated organization has every policy asked for.
    async fn attach_policies(&self, _unit: &str, _names: &[String]) -> Result<(), CloudError> {
        self.fault("organizations:AttachPolicy").await
    }

    async fn place_account(&self, account: &str, unit: &str) -> Result<(), CloudError> {
        self.fault("organizations:MoveAccount").await?;
        sqlx::query(
            "UPDATE simulated_resource SET body = body || jsonb_build_object('unit', $2::text)
             WHERE kind = 'account' AND id = $1",
        )
        .bind(account)
        .bind(unit)
        .execute(&self.db)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn close_account(&self, id: &str) -> Result<Closure, CloudError> {
        self.fault("organizations:CloseAccount").await?;
        self.delete("account", id).await?;
        Ok(Closure::Closed)
    }

    async fn open_session(&self, account_id: &str) -> Result<String, CloudError> {
        self.fault("sts:AssumeRole").await?;
        match self.find("account", account_id).await? {
            Some(_) => Ok(account_id.to_owned()),
            None => Err(CloudError::Permanent(format!(
                "cannot assume a role in account {account_id}: no such account"
            ))),
        }
    }

    async fn prepare_network(
        &self,
        account: &String,
        region: &str,
        vpc: &super::vpc::VpcRequest,
    ) -> Result<Network, CloudError> {
        self.fault("iam:CreateRole").await?;
        self.fault("ec2:CreateVpc").await?;
        let subnet = |tier: &str, zone: char| format!("subnet-{tier}-{region}{zone}");
        Ok(Network {
            cluster_role_arn: format!("arn:simulated:iam::{account}:role/SlipwayEksClusterRole"),
            node_role_arn: format!("arn:simulated:iam::{account}:role/SlipwayEksNodeRole"),
            subnets: ['a', 'b']
                .into_iter()
                .flat_map(|z| [subnet("private", z), subnet("public", z)])
                .collect(),
            node_subnets: vec![subnet("private", 'a'), subnet("private", 'b')],
            vpc_id: Some(format!("vpc-{}", vpc.name)),
            cidr: Some(vpc.cidr.to_string()),
        })
    }

    /// The simulated VPC goes with its account's cluster.
    async fn delete_network(
        &self,
        _account: &String,
        _region: &str,
        _tags: &Tags,
    ) -> Result<Vec<String>, CloudError> {
        self.fault("ec2:DeleteVpc").await?;
        Ok(vec![])
    }

    /// The simulated roles and VPC go with the cluster; what is left is a cluster.
    async fn clear_account(
        &self,
        account: &String,
        _region: &str,
    ) -> Result<Vec<String>, CloudError> {
        self.expire().await?;
        let clusters: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM simulated_resource WHERE kind = 'cluster' AND id LIKE $1 || '/%'",
        )
        .bind(account)
        .fetch_all(&self.db)
        .await
        .map_err(db_error)?;
        Ok(clusters
            .into_iter()
            .map(|c| format!("cluster {c}"))
            .collect())
    }

    async fn find_cluster(
        &self,
        account: &String,
        region: &str,
        name: &str,
    ) -> Result<Option<Cluster>, CloudError> {
        let row = self.find("cluster", &cluster_id(account, name)).await?;
        Ok(row.map(|r| Cluster {
            status: r.status(),
            tags: r.tags(),
            arn: format!("arn:simulated:eks:{region}:{account}:cluster/{}", r.name),
            endpoint: Some(format!("https://{}.simulated.eks.{region}.local", r.name)),
            certificate_authority: r.body["certificate_authority"].as_str().map(str::to_owned),
            version: r.body["version"].as_str().map(str::to_owned),
            name: r.name,
        }))
    }

    async fn create_cluster(
        &self,
        account: &String,
        _region: &str,
        spec: &ClusterSpec,
    ) -> Result<(), CloudError> {
        self.fault("eks:CreateCluster").await?;
        let body = json!({
            "version": spec.version,
            "role_arn": spec.network.cluster_role_arn,
            "subnets": spec.network.subnets,
            "certificate_authority": "U0lNVUxBVEVEIENMVVNURVIgQ0EK",
        });
        let id = cluster_id(account, &spec.name);
        // Clusters take the longest, as on EKS.
        if !self
            .insert(NewResource {
                kind: "cluster",
                id: &id,
                name: &spec.name,
                request_id: Some(&spec.request_token),
                tags: &spec.tags,
                body,
                delay_ms: self.delay_ms() * 2,
            })
            .await?
        {
            return Err(CloudError::AlreadyExists(format!(
                "Cluster already exists with name: {}",
                spec.name
            )));
        }
        Ok(())
    }

    async fn delete_cluster(
        &self,
        account: &String,
        _region: &str,
        name: &str,
    ) -> Result<(), CloudError> {
        self.fault("eks:DeleteCluster").await?;
        self.delete("cluster", &cluster_id(account, name)).await
    }

    async fn find_nodegroup(
        &self,
        account: &String,
        _region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<Option<Nodegroup>, CloudError> {
        let id = format!("{}/{name}", cluster_id(account, cluster));
        let row = self.find("nodegroup", &id).await?;
        Ok(row.map(|r| {
            let size = |key: &str| r.body[key].as_i64().and_then(|n| i32::try_from(n).ok());
            Nodegroup {
                status: r.status(),
                tags: r.tags(),
                scaling: size("min_size")
                    .zip(size("max_size"))
                    .map(|(min, max)| Scaling {
                        min_size: min,
                        max_size: max,
                        desired_size: size("desired_size").unwrap_or(min),
                    }),
                instance_types: r.body["instance_type"]
                    .as_str()
                    .map(|t| vec![t.to_owned()])
                    .unwrap_or_default(),
                version: r.body["version"].as_str().map(str::to_owned),
            }
        }))
    }

    async fn create_nodegroup(
        &self,
        account: &String,
        _region: &str,
        spec: &NodegroupSpec,
    ) -> Result<(), CloudError> {
        self.fault("eks:CreateNodegroup").await?;
        match self
            .find("cluster", &cluster_id(account, &spec.cluster))
            .await?
        {
            Some(c) if c.status() == Status::Active => {}
            _ => {
                return Err(CloudError::Permanent(format!(
                    "Cluster '{}' is not in ACTIVE status",
                    spec.cluster
                )));
            }
        }
        let id = format!("{}/{}", cluster_id(account, &spec.cluster), spec.name);
        let body = json!({
            "instance_type": spec.instance_type,
            "min_size": spec.min_size,
            "max_size": spec.max_size,
        });
        if !self
            .insert(NewResource {
                kind: "nodegroup",
                id: &id,
                name: &spec.name,
                request_id: Some(&spec.request_token),
                tags: &spec.tags,
                body,
                delay_ms: self.delay_ms(),
            })
            .await?
        {
            return Err(CloudError::AlreadyExists(format!(
                "NodeGroup already exists with name {} and cluster name {}",
                spec.name, spec.cluster
            )));
        }
        Ok(())
    }

    async fn delete_nodegroup(
        &self,
        account: &String,
        _region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<(), CloudError> {
        self.fault("eks:DeleteNodegroup").await?;
        self.delete(
            "nodegroup",
            &format!("{}/{name}", cluster_id(account, cluster)),
        )
        .await
    }

    async fn update_nodegroup_scaling(
        &self,
        account: &String,
        _region: &str,
        cluster: &str,
        name: &str,
        min_size: i32,
        max_size: i32,
    ) -> Result<(), CloudError> {
        self.fault("eks:UpdateNodegroupConfig").await?;
        let id = format!("{}/{name}", cluster_id(account, cluster));
        let updated = sqlx::query(
            "UPDATE simulated_resource
             SET body = body || jsonb_build_object('min_size', $3::int, 'max_size', $4::int)
             WHERE kind = $1 AND id = $2 AND gone_at IS NULL",
        )
        .bind("nodegroup")
        .bind(&id)
        .bind(min_size)
        .bind(max_size)
        .execute(&self.db)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Err(CloudError::Permanent(format!(
                "node group {name} is not there"
            )));
        }
        Ok(())
    }

    async fn update_cluster_version(
        &self,
        account: &String,
        _region: &str,
        cluster: &str,
        version: &str,
    ) -> Result<(), CloudError> {
        self.fault("eks:UpdateClusterVersion").await?;
        self.set_version("cluster", &cluster_id(account, cluster), version)
            .await
    }

    async fn update_nodegroup_version(
        &self,
        account: &String,
        _region: &str,
        cluster: &str,
        name: &str,
        version: &str,
    ) -> Result<(), CloudError> {
        self.fault("eks:UpdateNodegroupVersion").await?;
        self.set_version(
            "nodegroup",
            &format!("{}/{name}", cluster_id(account, cluster)),
            version,
        )
        .await
    }

    async fn addon_versions(
        &self,
        _account: &String,
        _region: &str,
        _name: &str,
        kubernetes_version: &str,
    ) -> Result<AddonVersions, CloudError> {
        // One version of every add-on per Kubernetes version, its default.
        let default = format!("default-for-{kubernetes_version}");
        Ok(AddonVersions {
            compatible: vec![default.clone()],
            default: Some(default),
        })
    }

    async fn update_addon(
        &self,
        account: &String,
        _region: &str,
        cluster: &str,
        name: &str,
        version: &str,
    ) -> Result<(), CloudError> {
        self.fault("eks:UpdateAddon").await?;
        self.set_version(
            "addon",
            &format!("{}/{name}", cluster_id(account, cluster)),
            version,
        )
        .await
    }

    async fn upgrade_insights(
        &self,
        _account: &String,
        _region: &str,
        _cluster: &str,
        _version: &str,
    ) -> Result<Option<Vec<Insight>>, CloudError> {
        // The simulated cloud finds nothing in the way of an upgrade.
        Ok(Some(Vec::new()))
    }

    async fn find_addon(
        &self,
        account: &String,
        _region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<Option<Addon>, CloudError> {
        let id = format!("{}/{name}", cluster_id(account, cluster));
        let row = self.find("addon", &id).await?;
        Ok(row.map(|r| Addon {
            status: r.status(),
            version: r.body["version"].as_str().unwrap_or("default").to_owned(),
        }))
    }

    async fn create_addon(
        &self,
        account: &String,
        _region: &str,
        spec: &AddonSpec,
    ) -> Result<(), CloudError> {
        self.fault("eks:CreateAddon").await?;
        let id = format!("{}/{}", cluster_id(account, &spec.cluster), spec.name);
        let inserted = self
            .insert(NewResource {
                kind: "addon",
                id: &id,
                name: &spec.name,
                request_id: None,
                tags: &spec.tags,
                body: json!({ "version": spec.version.as_deref().unwrap_or("default") }),
                delay_ms: 0,
            })
            .await?;
        if !inserted {
            return Err(CloudError::AlreadyExists(format!(
                "Addon already exists with name: {} and cluster name: {}",
                spec.name, spec.cluster
            )));
        }
        Ok(())
    }

    async fn ensure_workload_identity(
        &self,
        account: &String,
        _region: &str,
        spec: &WorkloadIdentitySpec,
    ) -> Result<WorkloadIdentity, CloudError> {
        self.fault("eks:CreatePodIdentityAssociation").await?;
        let role_arn = format!("arn:aws:iam::{account}:role/{}", spec.role_name);
        let created = self
            .insert(NewResource {
                kind: "pod_identity",
                id: &format!(
                    "{}/{}/{}",
                    cluster_id(account, &spec.cluster),
                    spec.namespace,
                    spec.service_account
                ),
                name: &spec.service_account,
                request_id: Some(&spec.request_token),
                tags: &spec.tags,
                body: json!({ "role_arn": role_arn, "policy": spec.policy }),
                delay_ms: 0,
            })
            .await?;
        Ok(WorkloadIdentity { role_arn, created })
    }

    async fn ensure_access_entry(
        &self,
        account: &String,
        _region: &str,
        cluster: &str,
        entry: &AccessEntry,
    ) -> Result<(), CloudError> {
        self.fault("eks:CreateAccessEntry").await?;
        let id = format!(
            "{}/access/{}",
            cluster_id(account, cluster),
            entry.principal_arn
        );
        let body = serde_json::to_value(entry).map_err(|e| CloudError::Permanent(e.to_string()))?;
        sqlx::query(
            "UPDATE simulated_resource SET body = $3 WHERE kind = $1 AND id = $2 AND gone_at IS NULL",
        )
        .bind("access_entry")
        .bind(&id)
        .bind(&body)
        .execute(&self.db)
        .await
        .map_err(db_error)?;
        self.insert(NewResource {
            kind: "access_entry",
            id: &id,
            name: &entry.principal_arn,
            request_id: None,
            tags: &Tags::new(),
            body,
            delay_ms: 0,
        })
        .await?;
        Ok(())
    }

    async fn cluster_api(
        &self,
        account: &String,
        _region: &str,
        cluster: &Cluster,
    ) -> Result<SimulatedCluster, CloudError> {
        Ok(SimulatedCluster {
            cloud: self.clone(),
            id: cluster_id(account, &cluster.name),
        })
    }
}

/// A simulated cluster's Kubernetes API: objects are rows of `simulated_resource`.
pub struct SimulatedCluster {
    cloud: SimulatedCloud,
    /// The cluster's id, the prefix of its objects' ids.
    id: String,
}

impl ClusterApi for SimulatedCluster {
    async fn apply(&self, objects: &[Value]) -> Result<Vec<Applied>, CloudError> {
        self.cloud.fault("kubernetes:apply").await?;
        let mut applied = Vec::with_capacity(objects.len());
        for object in objects {
            let resource = describe_object(object);
            let id = format!("{}/{resource}", self.id);
            // Server-side apply: create, replace when different, leave alone when the same.
            let changed = sqlx::query(
                "INSERT INTO simulated_resource (kind, id, name, ready_at, body)
                 VALUES ('object', $1, $2, now(), $3)
                 ON CONFLICT (kind, id) DO UPDATE SET body = EXCLUDED.body, gone_at = NULL
                 WHERE simulated_resource.body IS DISTINCT FROM EXCLUDED.body
                    OR simulated_resource.gone_at IS NOT NULL",
            )
            .bind(&id)
            .bind(&resource)
            .bind(object)
            .execute(&self.cloud.db)
            .await
            .map_err(db_error)?
            .rows_affected()
                == 1;
            applied.push(Applied { resource, changed });
        }
        Ok(applied)
    }

    async fn delete(&self, objects: &[Value]) -> Result<usize, CloudError> {
        self.cloud.fault("kubernetes:delete").await?;
        let ids: Vec<String> = objects
            .iter()
            .rev()
            .map(|o| format!("{}/{}", self.id, describe_object(o)))
            .collect();
        let done =
            sqlx::query("DELETE FROM simulated_resource WHERE kind = 'object' AND id = ANY($1)")
                .bind(&ids)
                .execute(&self.cloud.db)
                .await
                .map_err(db_error)?;
        Ok(done.rows_affected() as usize)
    }

    async fn drift(&self, objects: &[Value]) -> Result<Vec<Drift>, CloudError> {
        self.cloud.fault("kubernetes:compare").await?;
        let ids: Vec<String> = objects
            .iter()
            .map(|o| format!("{}/{}", self.id, describe_object(o)))
            .collect();
        let live: std::collections::HashMap<String, Value> = sqlx::query_as(
            "SELECT id, body FROM simulated_resource
             WHERE kind = 'object' AND id = ANY($1) AND gone_at IS NULL",
        )
        .bind(&ids)
        .fetch_all(&self.cloud.db)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();
        // What was applied is what is stored: a difference is a change made since.
        Ok(objects
            .iter()
            .zip(&ids)
            .flat_map(|(object, id)| match live.get(id) {
                Some(body) => object_drift(object, object.clone(), body.clone()),
                None => vec![missing_object(object)],
            })
            .collect())
    }

    async fn create_secrets(&self, secrets: &[GeneratedSecret]) -> Result<usize, CloudError> {
        // Nothing to keep them in, and nothing may keep their values: counted, not stored.
        Ok(secrets.len())
    }

    async fn copy_secrets(&self, _copies: &[SecretCopy]) -> Result<(), CloudError> {
        // No operator makes Secrets here, and none are kept (see `create_secrets`).
        Ok(())
    }

    async fn unhealthy(&self, _objects: &[Value]) -> Result<Vec<String>, CloudError> {
        // Simulated objects are healthy once applied.
        Ok(Vec::new())
    }

    async fn remaining(&self, _objects: &[Value]) -> Result<Vec<String>, CloudError> {
        // Simulated deletes are immediate.
        Ok(Vec::new())
    }

    async fn deprecated_apis(&self) -> Result<Vec<DeprecatedApi>, CloudError> {
        // No client of a simulated cluster asks for anything.
        Ok(Vec::new())
    }
}
