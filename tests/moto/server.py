#!/usr/bin/env python3
"""moto_server with the AWS operations Slipway calls that moto 5.2.5 lacks, added in-process so
they share moto's state (DESIGN §6): EKS add-ons (CreateAddon, DescribeAddon, ListAddons,
DeleteAddon). Arguments are moto_server's (`-H HOST -p PORT`).

Add-ons behave as moto's clusters and node groups do: ACTIVE at once, gone with their cluster.
What this cannot check: that AWS offers the add-on or the configuration for the cluster's
version (real EKS answers InvalidParameterException for unknown names and schemas)."""

import datetime
import json
import sys

import moto.eks.responses as eks_responses
import moto.eks.urls as eks_urls
from moto.core.responses import ActionResult
from moto.eks.exceptions import ResourceInUseException, ResourceNotFoundException
from moto.server import main

ADDONS = "{0}/clusters/(?P<name>[^/]+)/addons$"
ADDON = "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)$"
dispatch = eks_responses.EKSResponse.dispatch
eks_urls.url_paths[ADDONS] = dispatch
eks_urls.url_paths[ADDON] = dispatch


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


for operation in (create_addon, describe_addon, list_addons, delete_addon):
    setattr(eks_responses.EKSResponse, operation.__name__, operation)

if __name__ == "__main__":
    main(sys.argv[1:])
