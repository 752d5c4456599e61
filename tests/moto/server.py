#!/usr/bin/env python3
"""moto_server with the AWS operations Slipway calls that moto 5.2.5 lacks, added in-process so
they share moto's state (DESIGN §6): EKS add-ons (CreateAddon, DescribeAddon, ListAddons,
DeleteAddon), EKS Pod Identity associations (Create-, List-, Describe- and
DeletePodIdentityAssociation), and EKS access entries (CreateCluster's `accessConfig` with the
creator's admin entry, Create-, Describe-, Update-, List- and DeleteAccessEntry,
AssociateAccessPolicy, ListAssociatedAccessPolicies), and DescribeClusterVersions (what a
test sets with `POST /moto-api/slipway/eks-cluster-versions`), and upgrades:
UpdateClusterVersion, DescribeUpdate and ListUpdates (one minor version up),
UpdateNodegroupVersion (node groups are created at their cluster's version, as on EKS),
UpdateAddon, DescribeAddonVersions (each add-on has one version per Kubernetes version, its
default) and ListInsights (the upgrade insights a test sets with
`POST /moto-api/slipway/eks-insights`; none by default). Arguments are moto_server's
(`-H HOST -p PORT`).

For the test API server's token webhook (tests/kube/token_webhook.py), which plays EKS's
authenticator, `GET /moto-api/slipway/eks-access-entries?principalArn=ARN` answers every access
entry of that principal in every account and region, with its cluster and associated policies:
not an AWS operation, a window on moto's state.

All behave as moto's clusters and node groups do: ACTIVE (or Successful) at once, gone with
their cluster. Every update is kept, so a test counts them.
What this cannot check: that AWS offers the add-on or the configuration for the cluster's
version (real EKS answers InvalidParameterException for unknown names and schemas), and that
the associated role exists and trusts pods.eks.amazonaws.com (real EKS checks neither at create
time either; the agent fails when a pod asks for credentials)."""

import datetime
import json
import sys
import urllib.parse
import uuid

import moto.eks.responses as eks_responses
import moto.eks.urls as eks_urls
import moto.moto_api._internal.urls as moto_api_urls
from moto.core.responses import ActionResult
from moto.eks.exceptions import (
    InvalidParameterException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from moto.server import main

ADDONS = "{0}/clusters/(?P<name>[^/]+)/addons$"
ADDON = "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)$"
ASSOCIATIONS = "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations$"
ASSOCIATION = "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations/(?P<associationId>[^/]+)$"
dispatch = eks_responses.EKSResponse.dispatch
ACCESS_ENTRIES = "{0}/clusters/(?P<name>[^/]+)/access-entries$"
# Principal ARNs hold slashes; which operation a path is comes from EKS's model, not from here.
ACCESS_ENTRY = "{0}/clusters/(?P<name>[^/]+)/access-entries/(?P<principalArn>.+)$"
CLUSTER_VERSIONS = "{0}/cluster-versions$"
UPDATES = "{0}/clusters/(?P<name>[^/]+)/updates$"
UPDATE = "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$"
NODEGROUP_VERSION = "{0}/clusters/(?P<name>[^/]+)/node-groups/(?P<nodegroupName>[^/]+)/update-version$"
ADDON_UPDATE = "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)/update$"
ADDON_VERSIONS = "{0}/addons/supported-versions$"
INSIGHTS = "{0}/clusters/(?P<name>[^/]+)/insights$"
for path in (
    UPDATES,
    UPDATE,
    NODEGROUP_VERSION,
    ADDON_UPDATE,
    ADDON_VERSIONS,
    INSIGHTS,
    ADDONS,
    ADDON,
    ASSOCIATIONS,
    ASSOCIATION,
    ACCESS_ENTRIES,
    ACCESS_ENTRY,
    CLUSTER_VERSIONS,
):
    eks_urls.url_paths[path] = dispatch

# What DescribeClusterVersions answers: none until a test sets them (real EKS always answers;
# an empty answer leaves Slipway's shipped calendar standing).
cluster_versions = []


def describe_cluster_versions(self):
    return ActionResult({"clusterVersions": cluster_versions})


def set_cluster_versions(request, full_url, headers):
    """Sets what DescribeClusterVersions answers: a JSON list in EKS's shape."""
    body = request.data if hasattr(request, "data") else request.body
    cluster_versions[:] = json.loads(body)
    return 201, {}, ""


moto_api_urls.url_paths["{0}/moto-api/slipway/eks-cluster-versions"] = set_cluster_versions


def not_found(cluster, addon, message):
    return ResourceNotFoundException(
        clusterName=cluster,
        nodegroupName=None,
        fargateProfileName=None,
        addonName=addon,
        message=message,
    )


def cluster_of(backend, name):
    cluster = backend.clusters.get(name)
    if cluster is None:
        raise not_found(name, None, f"No cluster found for name: {name}.")
    if not hasattr(cluster, "slipway_addons"):
        cluster.slipway_addons = {}
    return cluster


def create_addon(self):
    cluster = cluster_of(self.eks_backend, self._get_param("name"))
    name = self._get_param("addonName")
    if name in cluster.slipway_addons:
        raise ResourceInUseException(
            clusterName=cluster.name,
            nodegroupName=None,
            addonName=name,
            message=f"Addon already exists with name: {name} and cluster name: {cluster.name}",
        )
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    addon = {
        "addonName": name,
        "clusterName": cluster.name,
        "status": "ACTIVE",
        "addonVersion": self._get_param("addonVersion") or f"{name}-default-for-{cluster.version}",
        "health": {"issues": []},
        "addonArn": f"{cluster.arn.replace(':cluster/', ':addon/')}/{name}",
        "createdAt": now,
        "modifiedAt": now,
        "tags": self._get_param("tags") or {},
    }
    for key in ("serviceAccountRoleArn", "configurationValues", "podIdentityAssociations"):
        if self._get_param(key):
            addon[key] = self._get_param(key)
    cluster.slipway_addons[name] = addon
    return ActionResult({"addon": addon})


def describe_addon(self):
    cluster = cluster_of(self.eks_backend, self._get_param("name"))
    name = self._get_param("addonName")
    if name not in cluster.slipway_addons:
        raise not_found(cluster.name, name, f"No addon: {name} found in cluster: {cluster.name}")
    return ActionResult({"addon": cluster.slipway_addons[name]})


def list_addons(self):
    cluster = cluster_of(self.eks_backend, self._get_param("name"))
    return ActionResult({"addons": sorted(cluster.slipway_addons)})


def delete_addon(self):
    cluster = cluster_of(self.eks_backend, self._get_param("name"))
    name = self._get_param("addonName")
    addon = cluster.slipway_addons.pop(name, None)
    if addon is None:
        raise not_found(cluster.name, name, f"No addon: {name} found in cluster: {cluster.name}")
    return ActionResult({"addon": dict(addon, status="DELETING")})


def associations_of(backend, name):
    cluster = cluster_of(backend, name)
    if not hasattr(cluster, "slipway_associations"):
        cluster.slipway_associations = {}
    return cluster, cluster.slipway_associations


def association_not_found(cluster, association_id):
    return not_found(
        cluster, None, f"No Pod Identity Association found with ID {association_id}"
    )


def create_pod_identity_association(self):
    cluster, associations = associations_of(self.eks_backend, self._get_param("name"))
    namespace = self._get_param("namespace")
    service_account = self._get_param("serviceAccount")
    for existing in associations.values():
        if (existing["namespace"], existing["serviceAccount"]) == (namespace, service_account):
            raise ResourceInUseException(
                clusterName=cluster.name,
                nodegroupName=None,
                addonName=None,
                message="Association already exists",
            )
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    association_id = "a-" + uuid.uuid4().hex[:17]
    association = {
        "clusterName": cluster.name,
        "namespace": namespace,
        "serviceAccount": service_account,
        "roleArn": self._get_param("roleArn"),
        "associationArn": f"{cluster.arn.replace(':cluster/', ':podidentityassociation/')}/{association_id}",
        "associationId": association_id,
        "tags": self._get_param("tags") or {},
        "createdAt": now,
        "modifiedAt": now,
    }
    associations[association_id] = association
    return ActionResult({"association": association})


def list_pod_identity_associations(self):
    _, associations = associations_of(self.eks_backend, self._get_param("name"))
    namespace = self._get_param("namespace")
    service_account = self._get_param("serviceAccount")
    summaries = [
        {key: a[key] for key in ("clusterName", "namespace", "serviceAccount", "associationArn", "associationId")}
        for a in associations.values()
        if namespace in (None, a["namespace"]) and service_account in (None, a["serviceAccount"])
    ]
    return ActionResult({"associations": summaries})


def describe_pod_identity_association(self):
    cluster, associations = associations_of(self.eks_backend, self._get_param("name"))
    association_id = self._get_param("associationId")
    if association_id not in associations:
        raise association_not_found(cluster.name, association_id)
    return ActionResult({"association": associations[association_id]})


def delete_pod_identity_association(self):
    cluster, associations = associations_of(self.eks_backend, self._get_param("name"))
    association_id = self._get_param("associationId")
    if association_id not in associations:
        raise association_not_found(cluster.name, association_id)
    return ActionResult({"association": associations.pop(association_id)})


def entries_of(backend, name):
    cluster = cluster_of(backend, name)
    if not hasattr(cluster, "slipway_access_entries"):
        cluster.slipway_access_entries = {}
    return cluster, cluster.slipway_access_entries


def principal_param(self):
    return urllib.parse.unquote(self._get_param("principalArn"))


def entry_not_found(cluster, principal):
    return not_found(cluster, None, f"The specified principalArn could not be found: {principal}")


def caller_role_arn(self):
    """The IAM ARN of the caller, as EKS records a cluster's creator (an assumed role's role)."""
    from moto.sts.models import sts_backends

    _, arn, _ = sts_backends[self.current_account]["global"].get_caller_identity(
        self.get_access_key(), self.region
    )
    parts = arn.split(":", 5)
    if parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"
    return arn


def new_entry(cluster, principal, groups, username, kind, tags):
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return {
        "clusterName": cluster.name,
        "principalArn": principal,
        "kubernetesGroups": sorted(set(groups or [])),
        "accessEntryArn": cluster.arn.replace(":cluster/", ":access-entry/") + "/" + uuid.uuid4().hex,
        "createdAt": now,
        "modifiedAt": now,
        "tags": tags or {},
        "username": username or principal,
        "type": kind or "STANDARD",
        "slipway_policies": {},
    }


def public(entry):
    return {k: v for k, v in entry.items() if not k.startswith("slipway_")}


moto_create_cluster = eks_responses.EKSResponse.create_cluster


def create_cluster(self):
    """CreateCluster, then what moto leaves out of accessConfig: the authentication mode and,
    unless declined, the creator's access entry with the cluster admin policy (as EKS does)."""
    result = moto_create_cluster(self)
    access = self._get_param("accessConfig") or {}
    cluster, entries = entries_of(self.eks_backend, self._get_param("name"))
    cluster.slipway_authentication_mode = access.get("authenticationMode", "CONFIG_MAP")
    if access.get("bootstrapClusterCreatorAdminPermissions", True):
        creator = caller_role_arn(self)
        entry = new_entry(cluster, creator, [], None, "STANDARD", {})
        entry["slipway_policies"][CLUSTER_ADMIN] = {
            "policyArn": CLUSTER_ADMIN,
            "accessScope": {"type": "cluster", "namespaces": []},
            "associatedAt": entry["createdAt"],
            "modifiedAt": entry["createdAt"],
        }
        entries[creator] = entry
    return result


CLUSTER_ADMIN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

moto_create_nodegroup = eks_responses.EKSResponse.create_nodegroup


def create_nodegroup(self):
    """CreateNodegroup; without a version the group runs its cluster's, as on EKS (moto gives
    it a fixed default)."""
    result = moto_create_nodegroup(self)
    if not self._get_param("version"):
        cluster = cluster_of(self.eks_backend, self._get_param("name"))
        cluster.nodegroups[self._get_param("nodegroupName")].version = cluster.version
    return result


def updates_of(cluster):
    if not hasattr(cluster, "slipway_updates"):
        cluster.slipway_updates = {}
    return cluster.slipway_updates


def minor(version):
    major, minor_version = version.split(".")
    return int(major), int(minor_version)


def new_update(cluster, kind, params, nodegroup=None, addon=None):
    """A finished update, kept on the cluster (updates finish at once, as moto's resources are
    ACTIVE at once, so none is ever refused as in progress)."""
    update = {
        "id": str(uuid.uuid4()),
        "status": "Successful",
        "type": kind,
        "params": [{"type": k, "value": v} for k, v in params],
        "createdAt": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "errors": [],
    }
    updates_of(cluster)[update["id"]] = dict(update, slipway_nodegroup=nodegroup, slipway_addon=addon)
    return update


def update_cluster_version(self):
    cluster = cluster_of(self.eks_backend, self._get_param("name"))
    version = self._get_param("version")
    if minor(version) != (minor(cluster.version)[0], minor(cluster.version)[1] + 1):
        raise InvalidParameterException(
            message=f"Unsupported Kubernetes minor version update from {cluster.version} to {version}"
        )
    cluster.version = version
    return ActionResult({"update": new_update(cluster, "VersionUpdate", [("Version", version)])})


def describe_update(self):
    cluster = cluster_of(self.eks_backend, self._get_param("name"))
    update = updates_of(cluster).get(self._get_param("updateId"))
    if update is None:
        raise not_found(cluster.name, None, "No update found")
    return ActionResult({"update": {k: v for k, v in update.items() if not k.startswith("slipway_")}})


def list_updates(self):
    """ListUpdates of the cluster, or of one node group or add-on of it."""
    cluster = cluster_of(self.eks_backend, self._get_param("name"))
    nodegroup, addon = self._get_param("nodegroupName"), self._get_param("addonName")
    ids = [
        u["id"]
        for u in updates_of(cluster).values()
        if u["slipway_nodegroup"] == nodegroup and u["slipway_addon"] == addon
    ]
    return ActionResult({"updateIds": ids})


def update_nodegroup_version(self):
    cluster = cluster_of(self.eks_backend, self._get_param("name"))
    name = self._get_param("nodegroupName")
    nodegroup = cluster.nodegroups.get(name)
    if nodegroup is None:
        raise not_found(cluster.name, None, f"No node group found for name: {name}.")
    version = self._get_param("version") or cluster.version
    if minor(version) > minor(cluster.version):
        raise InvalidParameterException(
            message=f"Requested Nodegroup version {version} is newer than the cluster's {cluster.version}"
        )
    nodegroup.version = version
    update = new_update(cluster, "VersionUpdate", [("Version", version)], nodegroup=name)
    return ActionResult({"update": update})


def update_addon(self):
    cluster = cluster_of(self.eks_backend, self._get_param("name"))
    name = self._get_param("addonName")
    addon = cluster.slipway_addons.get(name)
    if addon is None:
        raise not_found(cluster.name, name, f"No addon: {name} found in cluster: {cluster.name}")
    version = self._get_param("addonVersion") or addon["addonVersion"]
    addon["addonVersion"] = version
    addon["modifiedAt"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    update = new_update(cluster, "AddonUpdate", [("AddonVersion", version)], addon=name)
    return ActionResult({"update": update})


def describe_addon_versions(self):
    """One version of the named add-on per Kubernetes version asked for (or per cluster version
    in use), the default for it: what CreateAddon picks when no version is given."""
    name = self._get_param("addonName")
    if not name:
        return ActionResult({"addons": []})
    kubernetes = self._get_param("kubernetesVersion")
    versions = [kubernetes] if kubernetes else sorted({c.version for c in self.eks_backend.clusters.values()})
    return ActionResult(
        {
            "addons": [
                {
                    "addonName": name,
                    "type": "networking",
                    "addonVersions": [
                        {
                            "addonVersion": f"{name}-default-for-{v}",
                            "architecture": ["amd64", "arm64"],
                            "compatibilities": [
                                {"clusterVersion": v, "platformVersions": ["*"], "defaultVersion": True}
                            ],
                            "requiresConfiguration": False,
                        }
                        for v in versions
                    ],
                }
            ]
        }
    )


# What ListInsights answers for every cluster: none until a test sets them.
insights = []


def list_insights(self):
    cluster_of(self.eks_backend, self._get_param("name"))
    wanted = (self._get_param("filter") or {}).get("kubernetesVersions") or []
    found = [i for i in insights if not wanted or i.get("kubernetesVersion") in wanted]
    return ActionResult(
        {
            "insights": [
                {
                    "id": i["id"],
                    "name": i["name"],
                    "category": "UPGRADE_READINESS",
                    "kubernetesVersion": i.get("kubernetesVersion"),
                    "lastRefreshTime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                    "lastTransitionTime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                    "description": i.get("description", ""),
                    "insightStatus": {"status": i["status"], "reason": i.get("reason", "")},
                }
                for i in found
            ]
        }
    )


def set_insights(request, full_url, headers):
    """Sets what ListInsights answers: a JSON list of {id, name, kubernetesVersion, status,
    reason}."""
    body = request.data if hasattr(request, "data") else request.body
    insights[:] = json.loads(body)
    return 201, {}, ""


moto_api_urls.url_paths["{0}/moto-api/slipway/eks-insights"] = set_insights


def create_access_entry(self):
    cluster, entries = entries_of(self.eks_backend, self._get_param("name"))
    if cluster.slipway_authentication_mode not in ("API", "API_AND_CONFIG_MAP"):
        from moto.eks.exceptions import InvalidRequestException

        raise InvalidRequestException(
            message="The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation."
        )
    principal = self._get_param("principalArn")
    if principal in entries:
        raise ResourceInUseException(
            clusterName=cluster.name,
            nodegroupName=None,
            addonName=None,
            message="The specified access entry resource is already in use on this cluster.",
        )
    entry = new_entry(
        cluster,
        principal,
        self._get_param("kubernetesGroups"),
        self._get_param("username"),
        self._get_param("type"),
        self._get_param("tags"),
    )
    entries[principal] = entry
    return ActionResult({"accessEntry": public(entry)})


def describe_access_entry(self):
    cluster, entries = entries_of(self.eks_backend, self._get_param("name"))
    principal = principal_param(self)
    if principal not in entries:
        raise entry_not_found(cluster.name, principal)
    return ActionResult({"accessEntry": public(entries[principal])})


def update_access_entry(self):
    cluster, entries = entries_of(self.eks_backend, self._get_param("name"))
    principal = principal_param(self)
    if principal not in entries:
        raise entry_not_found(cluster.name, principal)
    entry = entries[principal]
    if self._get_param("kubernetesGroups") is not None:
        entry["kubernetesGroups"] = sorted(set(self._get_param("kubernetesGroups")))
    if self._get_param("username"):
        entry["username"] = self._get_param("username")
    entry["modifiedAt"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return ActionResult({"accessEntry": public(entry)})


def delete_access_entry(self):
    cluster, entries = entries_of(self.eks_backend, self._get_param("name"))
    principal = principal_param(self)
    if entries.pop(principal, None) is None:
        raise entry_not_found(cluster.name, principal)
    return ActionResult({})


def list_access_entries(self):
    _, entries = entries_of(self.eks_backend, self._get_param("name"))
    return ActionResult({"accessEntries": sorted(entries)})


def associate_access_policy(self):
    cluster, entries = entries_of(self.eks_backend, self._get_param("name"))
    principal = principal_param(self)
    if principal not in entries:
        raise entry_not_found(cluster.name, principal)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    policy = self._get_param("policyArn")
    previous = entries[principal]["slipway_policies"].get(policy, {})
    associated = {
        "policyArn": policy,
        "accessScope": self._get_param("accessScope") or {"type": "cluster"},
        "associatedAt": previous.get("associatedAt", now),
        "modifiedAt": now,
    }
    entries[principal]["slipway_policies"][policy] = associated
    return ActionResult(
        {"clusterName": cluster.name, "principalArn": principal, "associatedAccessPolicy": associated}
    )


def list_associated_access_policies(self):
    cluster, entries = entries_of(self.eks_backend, self._get_param("name"))
    principal = principal_param(self)
    if principal not in entries:
        raise entry_not_found(cluster.name, principal)
    return ActionResult(
        {
            "clusterName": cluster.name,
            "principalArn": principal,
            "associatedAccessPolicies": list(entries[principal]["slipway_policies"].values()),
        }
    )


def without_path(arn):
    """A role's ARN without its path: a role name is unique in its account, and an assumed
    role's session ARN carries the name only."""
    head, sep, name = arn.partition(":role/")
    return head + sep + name.rsplit("/", 1)[-1] if sep else arn


def access_entries_of_principal(request, full_url, headers):
    """Every access entry of `principalArn`, across accounts and regions (for the webhook)."""
    from moto.eks.models import eks_backends

    query = urllib.parse.parse_qs(urllib.parse.urlsplit(full_url).query)
    principal = without_path((query.get("principalArn") or [""])[0])
    found = []
    for account in list(eks_backends.keys()):
        for region, backend in list(eks_backends[account].items()):
            for cluster in list(backend.clusters.values()):
                entries = getattr(cluster, "slipway_access_entries", {})
                entry = next(
                    (e for arn, e in entries.items() if without_path(arn) == principal), None
                )
                if entry:
                    found.append(
                        dict(
                            public(entry),
                            account=account,
                            region=region,
                            accessPolicies=list(entry["slipway_policies"].values()),
                        )
                    )
    return 200, {"Content-Type": "application/json"}, json.dumps({"accessEntries": found})


moto_api_urls.url_paths["{0}/moto-api/slipway/eks-access-entries"] = access_entries_of_principal

for operation in (
    create_cluster,
    create_nodegroup,
    update_cluster_version,
    describe_update,
    list_updates,
    update_nodegroup_version,
    update_addon,
    describe_addon_versions,
    list_insights,
    create_access_entry,
    describe_access_entry,
    update_access_entry,
    delete_access_entry,
    list_access_entries,
    associate_access_policy,
    list_associated_access_policies,
    create_addon,
    describe_addon,
    list_addons,
    delete_addon,
    create_pod_identity_association,
    list_pod_identity_associations,
    describe_pod_identity_association,
    delete_pod_identity_association,
    describe_cluster_versions,
):
    setattr(eks_responses.EKSResponse, operation.__name__, operation)

if __name__ == "__main__":
    main(sys.argv[1:])
