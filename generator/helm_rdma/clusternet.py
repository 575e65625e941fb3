"""Provisioning an OCI cluster network (RDMA-connected bare-metal GPU nodes): find, create, wait, terminate.

Idempotent and resumable: resources carry freeform tags naming the release, namespace and network, and creation uses
deterministic retry tokens, so a second run finds what the first made (and returns at once when it is RUNNING), and a
run after a crash reuses what the crashed run created. Works on a ``CountingApi`` (see ocicloud).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from .errors import CapacityError, ClusterNetworkFailedError, OciRequestError

TAG_RELEASE, TAG_NAMESPACE, TAG_NETWORK = "helm-rdma-release", "helm-rdma-namespace", "helm-rdma-network"
RDMA_PLUGINS = ("Compute HPC RDMA Authentication", "Compute HPC RDMA Auto-Configuration")
GONE = ("TERMINATING", "TERMINATED")
WAITING = ("PROVISIONING", "SCALING", "STARTING")


class NetworkSpec(NamedTuple):
    """What to provision: the shape, how many nodes, where, and what the nodes need to join OKE."""

    name: str
    compartment_id: str
    availability_domain: str
    subnet_id: str
    image_id: str
    shape: str
    size: int
    release: str
    namespace: str
    boot_volume_gbs: int = 512
    ssh_authorized_keys: str = ""
    placement_constraint: str = ""
    instance_configuration_id: str = ""
    node_labels: dict[str, str] = {}
    api_server_host: str = ""
    cluster_ca_cert: str = ""
    cloud_init: str = ""

    @property
    def tags(self) -> dict[str, str]:
        return {TAG_RELEASE: self.release, TAG_NAMESPACE: self.namespace, TAG_NETWORK: self.name}


class Progress(NamedTuple):
    """One look at a cluster network while waiting for it."""

    state: str
    instances_running: int
    size: int
    elapsed_seconds: float


class Provisioned(NamedTuple):
    """The outcome of a provisioning run."""

    cluster_network_id: str
    state: str
    instance_configuration_id: str
    created_cluster_network: bool
    created_instance_configuration: bool
    instances_running: int
    api_calls: int
    elapsed_seconds: float


class Clock(NamedTuple):
    """Time, injectable for tests."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()


def retry_token(*parts: str) -> str:
    """A deterministic opc-retry-token (OCI keeps them 24 hours): the same request gets the same resource."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:64]


def _ours(resource: Any, spec: NetworkSpec) -> bool:
    tags = resource.freeform_tags or {}
    return all(tags.get(k) == v for k, v in spec.tags.items())


def find_network(api: Any, spec: NetworkSpec) -> Any | None:
    """Our live cluster network of this name, if any (tagged as ours; not terminating or terminated)."""
    found = [n for n in api.all_pages("list_cluster_networks", spec.compartment_id, display_name=spec.name)
             if _ours(n, spec) and n.lifecycle_state not in GONE]
    return max(found, key=lambda n: str(n.time_created)) if found else None


def find_instance_configuration(api: Any, spec: NetworkSpec) -> Any | None:
    """Our instance configuration for this network, if a run already made one."""
    found = [c for c in api.all_pages("list_instance_configurations", spec.compartment_id)
             if _ours(c, spec) and c.display_name == f"{spec.name}-instance-configuration"]
    return max(found, key=lambda c: str(c.time_created)) if found else None


def instance_configuration_details(spec: NetworkSpec) -> Any:
    """The SDK request that creates the instance configuration of the GPU nodes."""
    import oci

    m = oci.core.models
    metadata = {}
    if spec.ssh_authorized_keys:
        metadata["ssh_authorized_keys"] = spec.ssh_authorized_keys
    if spec.node_labels:
        metadata["oke-initial-node-labels"] = ",".join(f"{k}={v}" for k, v in sorted(spec.node_labels.items()))
    if spec.api_server_host:
        metadata["apiserver_host"] = spec.api_server_host
    if spec.cluster_ca_cert:
        metadata["cluster_ca_cert"] = spec.cluster_ca_cert
    if spec.cloud_init:
        metadata["user_data"] = base64.b64encode(spec.cloud_init.encode()).decode()
    launch = m.InstanceConfigurationLaunchInstanceDetails(
        availability_domain=spec.availability_domain,
        compartment_id=spec.compartment_id,
        shape=spec.shape,
        metadata=metadata,
        freeform_tags=spec.tags,
        source_details=m.InstanceConfigurationInstanceSourceViaImageDetails(
            image_id=spec.image_id, boot_volume_size_in_gbs=spec.boot_volume_gbs),
        create_vnic_details=m.InstanceConfigurationCreateVnicDetails(subnet_id=spec.subnet_id, assign_public_ip=False),
        agent_config=m.InstanceConfigurationLaunchInstanceAgentConfigDetails(
            is_management_disabled=False, is_monitoring_disabled=False,
            plugins_config=[m.InstanceAgentPluginConfigDetails(name=n, desired_state="ENABLED") for n in RDMA_PLUGINS]),
    )
    return m.CreateInstanceConfigurationDetails(
        compartment_id=spec.compartment_id,
        display_name=f"{spec.name}-instance-configuration",
        freeform_tags=spec.tags,
        instance_details=m.ComputeInstanceDetails(instance_type="compute", launch_details=launch),
    )


def cluster_network_details(spec: NetworkSpec, instance_configuration_id: str) -> Any:
    """The SDK request that creates the cluster network (one instance pool)."""
    import oci

    m = oci.core.models
    placement: dict[str, Any] = {
        "availability_domain": spec.availability_domain,
        "primary_vnic_subnets": m.InstancePoolPlacementPrimarySubnet(subnet_id=spec.subnet_id),
    }
    if spec.placement_constraint:
        placement["placement_constraint"] = spec.placement_constraint
    return m.CreateClusterNetworkDetails(
        compartment_id=spec.compartment_id,
        display_name=spec.name,
        freeform_tags=spec.tags,
        instance_pools=[m.CreateClusterNetworkInstancePoolDetails(
            instance_configuration_id=instance_configuration_id, size=spec.size, display_name=f"{spec.name}-pool")],
        placement_configuration=m.ClusterNetworkPlacementConfigurationDetails(**placement),
    )


def provision_network(
    api: Any,
    spec: NetworkSpec,
    *,
    timeout_seconds: float = 7200,
    poll_seconds: float = 10,
    max_poll_seconds: float = 60,
    on_progress: Callable[[Progress], None] = lambda _: None,
    clock: Clock = SYSTEM_CLOCK,
) -> Provisioned:
    """Make sure our cluster network exists and is RUNNING, creating what is missing.

    Raises:
        CapacityError: OCI has no hosts for the shape (what this run created is deleted, or listed).
        ClusterNetworkFailedError: The network ended TERMINATED or STOPPED, or was not RUNNING in time.
        OciRequestError, OciAuthError: Other API failures.
    """
    start = clock.now()
    created_config = created_network = False
    network = find_network(api, spec)
    config_id = spec.instance_configuration_id
    if network is None:
        if not config_id:
            existing = find_instance_configuration(api, spec)
            if existing is not None:
                config_id = existing.id
            else:
                config_id = api.call("create_instance_configuration", instance_configuration_details(spec),
                                     opc_retry_token=retry_token(spec.namespace, spec.release, spec.name, "ic")).id
                created_config = True
        try:
            network = api.call("create_cluster_network", cluster_network_details(spec, config_id),
                               opc_retry_token=retry_token(spec.namespace, spec.release, spec.name, config_id,
                                                           str(spec.size)))
        except OciRequestError as exc:
            left = _clean_up(api, config_id) if created_config else ""
            if "out of host capacity" in exc.oci_message.lower():
                raise CapacityError(shape=spec.shape, size=spec.size, availability_domain=spec.availability_domain,
                                    request_id=exc.request_id, left=left) from None
            raise
        created_network = True
    elif network.instance_pools:
        config_id = network.instance_pools[0].instance_configuration_id or config_id

    delay = poll_seconds
    while True:
        state = network.lifecycle_state
        running = _running_instances(api, spec, network.id) if state in (*WAITING, "RUNNING") else 0
        elapsed = clock.now() - start
        on_progress(Progress(state=state, instances_running=running, size=spec.size, elapsed_seconds=elapsed))
        if state == "RUNNING":
            return Provisioned(cluster_network_id=network.id, state=state, instance_configuration_id=config_id,
                               created_cluster_network=created_network, created_instance_configuration=created_config,
                               instances_running=running, api_calls=api.calls, elapsed_seconds=elapsed)
        if state not in WAITING:
            raise ClusterNetworkFailedError(
                name=spec.name, network_id=network.id, state=state,
                detail=f"expected RUNNING; instance configuration {config_id} is left for a retry; "
                       "look at the network's work requests in the OCI console for the cause")
        if elapsed >= timeout_seconds:
            raise ClusterNetworkFailedError(
                name=spec.name, network_id=network.id, state=state,
                detail=f"not RUNNING after {elapsed:.0f}s ({running}/{spec.size} instances up); run again to keep "
                       "waiting: the next run resumes this network")
        clock.sleep(min(delay, max(timeout_seconds - elapsed, 0)))
        delay = min(delay * 1.5, max_poll_seconds)
        network = api.call("get_cluster_network", network.id)


def _running_instances(api: Any, spec: NetworkSpec, network_id: str) -> int:
    instances = api.all_pages("list_cluster_network_instances", spec.compartment_id, network_id)
    return sum(1 for i in instances if str(i.state).upper() == "RUNNING")


def _clean_up(api: Any, config_id: str) -> str:
    try:
        api.call("delete_instance_configuration", config_id)
    except OciRequestError as exc:
        return f"The instance configuration this run created, {config_id}, could not be deleted ({exc}); delete it."
    return f"The instance configuration this run created, {config_id}, was deleted."


class Deprovisioned(NamedTuple):
    """What a deprovisioning run terminated or deleted."""

    terminated_networks: tuple[str, ...]
    deleted_instance_configurations: tuple[str, ...]
    api_calls: int


def ours_to_remove(api: Any, spec: NetworkSpec) -> tuple[list[Any], list[Any]]:
    """Our live cluster networks and instance configurations of this name (never anything untagged)."""
    networks = [n for n in api.all_pages("list_cluster_networks", spec.compartment_id, display_name=spec.name)
                if _ours(n, spec) and n.lifecycle_state != "TERMINATED"]
    configs = [c for c in api.all_pages("list_instance_configurations", spec.compartment_id)
               if _ours(c, spec) and c.display_name == f"{spec.name}-instance-configuration"]
    return networks, configs


def deprovision_network(
    api: Any,
    spec: NetworkSpec,
    networks: list[Any],
    configs: list[Any],
    *,
    timeout_seconds: float = 3600,
    poll_seconds: float = 10,
    max_poll_seconds: float = 60,
    on_progress: Callable[[Progress], None] = lambda _: None,
    clock: Clock = SYSTEM_CLOCK,
) -> Deprovisioned:
    """Terminate our networks, wait until they are TERMINATED, then delete our instance configurations.

    Raises:
        ClusterNetworkFailedError: A network is not TERMINATED in time (its configuration is then kept).
    """
    start = clock.now()
    for network in networks:
        if network.lifecycle_state not in GONE:
            api.call("terminate_cluster_network", network.id)
    delay = poll_seconds
    for network in networks:
        while True:
            current = api.call("get_cluster_network", network.id)
            elapsed = clock.now() - start
            on_progress(Progress(state=current.lifecycle_state, instances_running=0, size=0, elapsed_seconds=elapsed))
            if current.lifecycle_state == "TERMINATED":
                break
            if elapsed >= timeout_seconds:
                raise ClusterNetworkFailedError(
                    name=spec.name, network_id=network.id, state=current.lifecycle_state,
                    detail=f"not TERMINATED after {elapsed:.0f}s; run deprovision again to finish")
            clock.sleep(delay)
            delay = min(delay * 1.5, max_poll_seconds)
    for config in configs:
        api.call("delete_instance_configuration", config.id)
    return Deprovisioned(terminated_networks=tuple(n.id for n in networks),
                         deleted_instance_configurations=tuple(c.id for c in configs), api_calls=api.calls)
