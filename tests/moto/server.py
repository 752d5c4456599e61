#!/usr/bin/env python3
"""moto_server with the AWS operations Slipway calls that moto 5.2.5 lacks, added in-process so
they share moto's state (DESIGN §6): EKS add-ons (CreateAddon, DescribeAddon, ListAddons,
DeleteAddon) and EKS Pod Identity associations (Create-, List-, Describe- and
DeletePodIdentityAssociation). Arguments are moto_server's (`-H HOST -p PORT`).

Both behave as moto's clusters and node groups do: ACTIVE at once, gone with their cluster.
What this cannot check: that AWS offers the add-on or the configuration for the cluster's
version (real EKS answers InvalidParameterException for unknown names and schemas), and that
the associated role exists and trusts pods.eks.amazonaws.com (real EKS checks neither at create
time either; the agent fails when a pod asks for credentials)."""

import datetime
import sys
import uuid

import moto.eks.responses as eks_responses
import moto.eks.urls as eks_urls
from moto.core.responses import ActionResult
from moto.eks.exceptions import ResourceInUseException, ResourceNotFoundException
from moto.server import main

ADDONS = "{0}/clusters/(?P<name>[^/]+)/addons$"
ADDON = "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)$"
ASSOCIATIONS = "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations$"
ASSOCIATION = "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations/(?P<associationId>[^/]+)$"
dispatch = eks_responses.EKSResponse.dispatch
for path in (ADDONS, ADDON, ASSOCIATIONS, ASSOCIATION):
    eks_urls.url_paths[path] = dispatch


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


for operation in (
    create_addon,
    describe_addon,
    list_addons,
    delete_addon,
    create_pod_identity_association,
    list_pod_identity_associations,
    describe_pod_identity_association,
    delete_pod_identity_association,
):
    setattr(eks_responses.EKSResponse, operation.__name__, operation)

if __name__ == "__main__":
    main(sys.argv[1:])
