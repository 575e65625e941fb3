"""Checks of the clusterNetwork values before anything is applied: a provisioner image that can be pulled, and GPU
nodes that can join the cluster. Part of `helm-rdma doctor` (see doctor.diagnose)."""

from __future__ import annotations

from typing import Any

from .doctor import Finding

OCIR_REPOSITORY = "REGION-KEY.ocir.io/TENANCY-NAMESPACE/helm-rdma-provisioner"


def provisioning_findings(values: dict[str, Any]) -> list[Finding]:
    """Findings about clusterNetwork when a hook provisions or deprovisions (none otherwise)."""
    cn = values.get("clusterNetwork")
    if not isinstance(cn, dict) or not (cn.get("provision") or cn.get("deleteOnUninstall")):
        return []
    found = []
    image: dict[str, Any] = cn["image"] if isinstance(cn.get("image"), dict) else {}
    if not image.get("repository"):
        found.append(Finding(
            "error", "clusterNetwork.image.repository",
            "is empty, and no public registry holds the provisioner image, so the hook's pod could never start",
            "build and push it to your registry (in a checkout, `make provisioner-image` prints the docker build, "
            f"login and push commands for OCIR), then set clusterNetwork.image.repository={OCIR_REPOSITORY}"))
    oke: dict[str, Any] = cn["oke"] if isinstance(cn.get("oke"), dict) else {}
    joins = oke.get("clusterId") or oke.get("cloudInit") or (oke.get("apiServerHost") and oke.get("clusterCaCert"))
    if cn.get("provision") and not joins:
        found.append(Finding(
            "warning", "clusterNetwork.oke.clusterId",
            "is empty and no cloudInit is given, so the GPU nodes (billed by the hour) never join the cluster and "
            "the hook waits for them in vain",
            "set clusterNetwork.oke.clusterId to the OKE cluster's OCID: the nodes' cloud-init is then generated"))
    return found
