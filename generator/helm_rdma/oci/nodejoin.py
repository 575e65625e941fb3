"""What self-managed GPU nodes need to join an OKE cluster by themselves: the cluster's private API endpoint, its CA
and CNI (read with the Container Engine API), the cloud-init that joins them, and their instance metadata.

The facts come from Oracle's own OKE stack: oracle-quickstart/oci-hpc-oke `terraform/oke-workers.tf` (the cloud-init:
API server host in /etc/oke/oke-apiserver, the CA in /etc/kubernetes/ca.crt, the NVMe RAID, then the bootstrap),
`files/oke-ubuntu-cloud-init.sh` (the OKE node package installed when the image lacks it, `oke bootstrap` with retries;
CRI-O with unlimited memlock on GPU shapes, and without short-name resolution from Kubernetes v1.34),
`files/oke-nvme-raid.sh` (RAID 10 by default, `terraform/variables.tf`), the systemd-networkd settings of
`terraform/oke-workers.tf` (all at commit 61d210acc37f1990f27012aa4f108c5db4e52ab2), and the instance metadata of
self-managed workers that its OKE module sets (oracle-terraform-modules/terraform-oci-oke
`modules/workers/instanceconfig.tf`: apiserver_host, cluster_ca_cert, oke-k8version, oke-tenancy-id,
oke-initial-node-labels, and on VCN-native clusters oke-native-pod-networking, oke-max-pods, pod-subnets, pod-nsgids).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from helm_rdma.errors import OkeClusterError, PodSubnetMissingError

VCN_NATIVE = "OCI_VCN_IP_NATIVE"
SCRIPTS = Path(__file__).resolve().parent / "nodeinit"
JOIN_SCRIPT = "/usr/local/sbin/helm-rdma-oke-join"
RAID_SCRIPT = "/usr/local/sbin/helm-rdma-nvme-raid"
# RDMA registers pinned memory (ibv_reg_mr), which fails against the container runtime's default 8 MiB memlock limit
# (files/oke-ubuntu-cloud-init.sh writes the same setting for GPU shapes).
CRIO_MEMLOCK = '[crio.runtime]\ndefault_ulimits = [\n    "memlock=-1:-1"\n]\n'
# CRI-O 1.34 enforces short-name resolution; Oracle's script turns it off for Kubernetes >= v1.34
# (configure_crio_defaults). The chart's own images name their registry; this keeps the user's short names pulling.
CRIO_SHORT_NAMES = '[crio.image]\nshort_name_mode = "disabled"\n'
SHORT_NAMES_FROM = (1, 34)
# A systemd-networkd restart would drop the routes and policy rules that OCI's RDMA auto-configuration adds to the
# RDMA interfaces; Oracle's stack tells networkd to leave them alone (terraform/oke-workers.tf, networkd.conf).
NETWORKD = "[Network]\nManageForeignRoutes=no\nManageForeignRoutingPolicyRules=no\n"
NETWORKD_RESTART = ('if . /etc/os-release && [ "$ID" = ubuntu ]; then systemctl restart systemd-networkd || '
                    "echo 'helm-rdma: systemd-networkd not restarted' >&2; fi")


@dataclass(frozen=True)
class NodeSetup:
    """How the nodes are set up and join the cluster, as the user asked (values or flags)."""

    labels: Mapping[str, str] = field(default_factory=dict)  # one dict each: a shared default could be changed
    ssh_authorized_keys: str = ""
    cluster_id: str = ""
    api_server_host: str = ""
    cluster_ca_cert: str = ""
    pod_subnet_id: str = ""
    pod_nsg_ids: tuple[str, ...] = ()
    max_pods: int = 64
    cloud_init: str = ""
    raid_level: int = 10  # clusterNetwork.nvmeRaidLevel (the plans always pass the values' or the schema's)
    package_repository: str = ""  # clusterNetwork.oke.nodePackageRepository; "" tries the image's repository only


class OkeCluster(NamedTuple):
    """What the Container Engine API says about the cluster the nodes join."""

    cluster_id: str
    api_server_host: str
    ca_cert: str
    kubernetes_version: str
    cni: str


def read_cluster(api: Any, cluster_id: str) -> OkeCluster:
    """The cluster's private API endpoint, CA (from a kubeconfig for the private endpoint), version and CNI.

    Raises:
        OkeClusterError: It is a basic cluster (self-managed nodes need an enhanced one) or has no private endpoint.
        OciRequestError: The API refused (a 404 names the policy to check).
    """
    import oci

    cluster = api.call("get_cluster", cluster_id)
    if getattr(cluster, "type", None) == "BASIC_CLUSTER":
        raise OkeClusterError(cluster_id=cluster_id, problem="is a basic cluster, and only enhanced clusters "
                              "accept self-managed nodes", fix="upgrade it to an enhanced cluster (console: the "
                              "cluster's page, Upgrade to enhanced cluster) or use another cluster")
    private = getattr(cluster.endpoints, "private_endpoint", None) if cluster.endpoints else None
    if not private:
        raise OkeClusterError(cluster_id=cluster_id, problem="has no private Kubernetes API endpoint in its VCN, "
                              "which self-managed nodes join through", fix="use a VCN-native cluster (the default "
                              "for clusters created since 2021)")
    details = oci.container_engine.models.CreateClusterKubeconfigContentDetails(token_version="2.0.0",
                                                                                endpoint="PRIVATE_ENDPOINT")
    kubeconfig = api.call("create_kubeconfig", cluster_id, create_cluster_kubeconfig_content_details=details)
    cni = next((o.cni_type for o in cluster.cluster_pod_network_options or [] if o.cni_type), "")
    return OkeCluster(cluster_id=cluster_id, api_server_host=private.rsplit(":", 1)[0],
                      ca_cert=_ca_data(_text(kubeconfig), cluster_id), kubernetes_version=cluster.kubernetes_version
                      or "", cni=cni)


def _text(stream: Any) -> str:
    """The body of a streamed SDK answer (a requests response), or the text itself."""
    content = getattr(stream, "content", stream)
    return content.decode() if isinstance(content, bytes) else str(content)


def _ca_data(kubeconfig: str, cluster_id: str) -> str:
    import yaml

    try:
        doc = yaml.safe_load(kubeconfig)
        return str(doc["clusters"][0]["cluster"]["certificate-authority-data"])
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        raise OkeClusterError(cluster_id=cluster_id, problem="its kubeconfig carries no certificate-authority-data",
                              fix="set clusterNetwork.oke.clusterCaCert (base64 CA) by hand") from None


def short_names_disabled(kubernetes_version: str) -> bool:
    """Whether nodes of this Kubernetes version (v1.34.1) get CRI-O's short-name resolution turned off."""
    parts = kubernetes_version.lstrip("v").split(".")
    try:
        return (int(parts[0]), int(parts[1])) >= SHORT_NAMES_FROM
    except (IndexError, ValueError):
        return False


def cloud_init(*, api_server_host: str, ca_cert: str, kubernetes_version: str = "", package_repository: str = "",
               raid_level: int = 10) -> str:
    """The nodes' cloud-config: the endpoint and CA files, CRI-O's settings, systemd-networkd's, then the NVMe RAID
    and the join (the scripts in oci/nodeinit, checked with shellcheck in the tests).

    ``kubernetes_version`` (the cluster's, v1.34.1) chooses the OKE node package a node without one installs, from
    the image's repository or ``package_repository``; from v1.34 CRI-O's short-name resolution is turned off."""
    import yaml

    def script(name: str) -> str:
        return (SCRIPTS / name).read_text(encoding="utf-8")

    crio = [{"path": "/etc/crio/crio.conf.d/90-helm-rdma-memlock.conf", "content": CRIO_MEMLOCK,
             "permissions": "0644"}]
    if short_names_disabled(kubernetes_version):
        crio.append({"path": "/etc/crio/crio.conf.d/91-helm-rdma-short-names.conf", "content": CRIO_SHORT_NAMES,
                     "permissions": "0644"})
    config = {
        "write_files": [
            {"path": "/etc/oke/oke-apiserver", "content": api_server_host + "\n", "permissions": "0644"},
            {"path": "/etc/kubernetes/ca.crt", "encoding": "b64", "content": ca_cert, "owner": "root:root",
             "permissions": "0644"},
            *crio,
            {"path": "/etc/systemd/networkd.conf.d/90-helm-rdma.conf", "content": NETWORKD, "permissions": "0644"},
            {"path": RAID_SCRIPT, "content": script("nvme-raid.sh"), "permissions": "0755"},
            {"path": JOIN_SCRIPT, "content": script("oke-join.sh"), "permissions": "0755"},
        ],
        # runcmd runs after write_files; a failed RAID leaves the node on its boot volume, but it still joins. The
        # join runs as a list (no shell): its arguments are passed as they are.
        "runcmd": [f"{RAID_SCRIPT} {int(raid_level)} || echo 'helm-rdma: NVMe RAID failed; the node joins without "
                   "it' >&2",
                   [JOIN_SCRIPT, kubernetes_version, package_repository],
                   NETWORKD_RESTART],
    }
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False, width=1000)


def node_metadata(setup: NodeSetup, cluster: OkeCluster | None, *, tenancy: str = "") -> dict[str, str]:
    """The instance metadata of the nodes: labels, SSH keys, what `oke bootstrap` reads, pod networking, user data.

    The user's own ``setup.cloud_init`` wins over the generated one; explicit API server host and CA win over the
    cluster's.

    Raises:
        PodSubnetMissingError: The cluster is VCN-native and no pod subnet was given.
    """
    host = setup.api_server_host or (cluster.api_server_host if cluster else "")
    ca = setup.cluster_ca_cert or (cluster.ca_cert if cluster else "")
    metadata: dict[str, str] = {}
    if setup.ssh_authorized_keys:
        metadata["ssh_authorized_keys"] = setup.ssh_authorized_keys
    if setup.labels:
        metadata["oke-initial-node-labels"] = ",".join(f"{k}={v}" for k, v in sorted(setup.labels.items()))
    if host:
        metadata["apiserver_host"] = host
    if ca:
        metadata["cluster_ca_cert"] = ca
    if cluster and cluster.kubernetes_version:
        metadata["oke-k8version"] = cluster.kubernetes_version
    if tenancy:
        metadata["oke-tenancy-id"] = tenancy
    native = cluster.cni == VCN_NATIVE if cluster and cluster.cni else bool(setup.pod_subnet_id)
    if native:
        if not setup.pod_subnet_id:
            raise PodSubnetMissingError(cluster_id=setup.cluster_id)
        metadata.update({"oke-native-pod-networking": "true", "oke-max-pods": str(setup.max_pods),
                         "pod-subnets": setup.pod_subnet_id})
        if setup.pod_nsg_ids:
            metadata["pod-nsgids"] = ",".join(setup.pod_nsg_ids)
    version = cluster.kubernetes_version if cluster else ""
    user_data = setup.cloud_init or (cloud_init(api_server_host=host, ca_cert=ca, kubernetes_version=version,
                                                package_repository=setup.package_repository,
                                                raid_level=setup.raid_level) if host and ca else "")
    if user_data:
        metadata["user_data"] = base64.b64encode(user_data.encode()).decode()
    return metadata
