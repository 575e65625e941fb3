"""Provisioning an OCI cluster network (RDMA-connected bare-metal GPU nodes): find, compare, create, resize, wait,
terminate. Works on a ``CountingApi`` (see oci.clients).

What exists is compared with what is asked. A network of our name and tags whose nodes match returns at once (two
API calls); one of another size is resized; one of another shape, image, availability domain or boot volume is
refused with both ways out. A network that is TERMINATED or FAILED, or a missing instance configuration, is no reason
to stop: new ones are created.

Retry tokens (OCI keeps them 24 hours; same token and body: the first answer again; same token, other body: 409):
- the instance configuration's token comes from its body, so a retry of the same request dedupes and another request
  gets another token;
- the cluster network's token comes from the name alone, so two runs started together create one network: the loser
  gets a 409 (or, with the same body, the winner's answer), finds the winner's network and compares as above;
- both tokens also carry the ids of our dead networks of that name, so a request after a network died (or was
  deprovisioned, which also deletes the instance configuration) is a new request with a new token. Should OCI still
  answer a token with a dead network, or reject it with 409, the next token of a fixed chain is used.

A failed create of the network (LimitExceeded, out of capacity, any refusal OCI answers) deletes the instance
configuration this run created, unless a live network of ours uses it.

Resizes go one way per run (``resize``): "grow" never shrinks (the chart's pre-install/pre-upgrade/pre-rollback
hook, before the workload grows), "shrink" never grows nor creates (the post-upgrade/post-rollback hook, after the
workload shrank), "any" does what is asked. A grow is an UpdateClusterNetwork carrying the If-Match of the network
just read; a shrink never lets OCI choose (a smaller size terminates by fault domain and age, Oracle's "Updating the
Size of an Instance Pool"): ``choose`` names the instances whose node runs no pod but DaemonSet, static or finished
ones, and each is detached with the size decremented and the instance terminated (DetachInstancePoolInstance). When
another run changed the network in between (412 on the If-Match, an instance already gone, 409 while it scales), the
network is read again and the decision made again, a few times, then the run fails; it never overwrites a change it
did not read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from helm_rdma.clock import Polling
from helm_rdma.errors import (
    CapacityError,
    ClusterNetworkFailedError,
    ConcurrentResizeError,
    NetworkMismatchError,
    OciRequestError,
)
from helm_rdma.oci.waiting import DEAD, WAITING, Progress, Waiter, state_of

TAG_RELEASE, TAG_NAMESPACE, TAG_NETWORK = "helm-rdma-release", "helm-rdma-namespace", "helm-rdma-network"
TAG_NODES = "helm-rdma-nodes"  # a digest of shape, image, availability domain and boot volume: a quick comparison
RDMA_PLUGINS = ("Compute HPC RDMA Authentication", "Compute HPC RDMA Auto-Configuration")
TOKEN_TRIES = 3
RESIZE_TRIES = 4
# Picks ``count`` of a pool's instances (InstanceSummary) to remove, or raises: the ids, in the order to remove them.
Chooser = Callable[[list[Any], int], tuple[str, ...]]


@dataclass(frozen=True)
class NetworkSpec:
    """What to provision: the shape, how many nodes, where."""

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
    placement_constraint: str = ""
    instance_configuration_id: str = ""
    nsg_ids: tuple[str, ...] = ()  # of the nodes' primary VNIC; not in nodes_digest (instance_configuration_details)

    @property
    def tags(self) -> dict[str, str]:
        return {TAG_RELEASE: self.release, TAG_NAMESPACE: self.namespace, TAG_NETWORK: self.name}

    @property
    def nodes_digest(self) -> str:
        what = self.instance_configuration_id or "|".join(
            (self.shape, self.image_id, self.availability_domain, str(self.boot_volume_gbs)))
        return hashlib.sha256(what.encode()).hexdigest()[:16]


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
    size: int = 0
    resized_from: int | None = None
    removed_instances: tuple[str, ...] = ()
    left_larger: bool = False  # a grow-only run that found more nodes than asked (the shrink comes after)


def retry_token(*parts: str) -> str:
    """A deterministic opc-retry-token: the same parts give the same token."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:64]


def deprovision_command(spec: NetworkSpec) -> str:
    """The command that deletes this network and its instance configuration."""
    return (f"helm rdma deprovision --name {spec.name} --compartment {spec.compartment_id} --release {spec.release} "
            f"--namespace {spec.namespace}")


def ours(resource: Any, spec: NetworkSpec) -> bool:
    """Whether an OCI resource carries our tags for this network (release, namespace, name)."""
    tags = resource.freeform_tags or {}
    return all(tags.get(k) == v for k, v in spec.tags.items())


class Found(NamedTuple):
    """Our networks of one name: the newest live one (with its state), and the ids of the dead ones."""

    network: Any
    state: str
    dead: tuple[str, ...]


def survey(api: Any, spec: NetworkSpec) -> Found:
    """Our cluster networks of this name (tagged as ours), split into the newest live one and the dead ones."""
    live: list[tuple[Any, str]] = []
    dead: list[str] = []
    for network in api.all_pages("list_cluster_networks", spec.compartment_id, display_name=spec.name):
        if not ours(network, spec):
            continue
        state = state_of(api, network)
        if state in DEAD:
            dead.append(network.id)
        else:
            live.append((network, state))
    newest = max(live, key=lambda ns: str(ns[0].time_created)) if live else (None, "")
    return Found(network=newest[0], state=newest[1], dead=tuple(sorted(dead)))


def find_instance_configuration(api: Any, spec: NetworkSpec) -> Any | None:
    """Our newest instance configuration for this network whose nodes match the request, if a run made one."""
    found = [c for c in api.all_pages("list_instance_configurations", spec.compartment_id)
             if ours(c, spec) and c.display_name == f"{spec.name}-instance-configuration"
             and (c.freeform_tags or {}).get(TAG_NODES) == spec.nodes_digest]
    return max(found, key=lambda c: str(c.time_created)) if found else None


def instance_configuration_details(spec: NetworkSpec, metadata: dict[str, str]) -> Any:
    """The SDK request that creates the instance configuration of the GPU nodes."""
    import oci

    m = oci.core.models
    tags = {**spec.tags, TAG_NODES: spec.nodes_digest}
    launch = m.InstanceConfigurationLaunchInstanceDetails(
        availability_domain=spec.availability_domain,
        compartment_id=spec.compartment_id,
        shape=spec.shape,
        metadata=metadata,
        freeform_tags=spec.tags,
        source_details=m.InstanceConfigurationInstanceSourceViaImageDetails(
            image_id=spec.image_id, boot_volume_size_in_gbs=spec.boot_volume_gbs),
        # The VNIC's NSGs are set when an instance configuration is created: a network made before keeps its own.
        create_vnic_details=m.InstanceConfigurationCreateVnicDetails(subnet_id=spec.subnet_id, assign_public_ip=False,
                                                                     nsg_ids=list(spec.nsg_ids) or None),
        agent_config=m.InstanceConfigurationLaunchInstanceAgentConfigDetails(
            is_management_disabled=False, is_monitoring_disabled=False,
            plugins_config=[m.InstanceAgentPluginConfigDetails(name=n, desired_state="ENABLED") for n in RDMA_PLUGINS]),
    )
    return m.CreateInstanceConfigurationDetails(
        compartment_id=spec.compartment_id,
        display_name=f"{spec.name}-instance-configuration",
        freeform_tags=tags,
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
        freeform_tags={**spec.tags, TAG_NODES: spec.nodes_digest},
        instance_pools=[m.CreateClusterNetworkInstancePoolDetails(
            instance_configuration_id=instance_configuration_id, size=spec.size, display_name=f"{spec.name}-pool")],
        placement_configuration=m.ClusterNetworkPlacementConfigurationDetails(**placement),
    )


def _digest(model: Any) -> str:
    import oci

    return hashlib.sha256(json.dumps(oci.util.to_dict(model), sort_keys=True).encode()).hexdigest()[:16]


def _instance_configuration(api: Any, spec: NetworkSpec, node_metadata: Callable[[], dict[str, str]],
                            dead: tuple[str, ...]) -> tuple[str, bool]:
    """The id of the instance configuration to use, and whether this run created it."""
    if spec.instance_configuration_id:
        return spec.instance_configuration_id, False
    existing = find_instance_configuration(api, spec)
    if existing is not None:
        return str(existing.id), False
    api.call("get_image", spec.image_id)  # a wrong image fails here, named, rather than as a FAILED network later
    details = instance_configuration_details(spec, node_metadata())
    token = retry_token(spec.namespace, spec.release, spec.name, "instance-configuration", _digest(details), *dead)
    for attempt in range(TOKEN_TRIES):
        try:
            made = str(api.call("create_instance_configuration", details, opc_retry_token=token).id)
        except OciRequestError as exc:
            if exc.status != 409 or attempt == TOKEN_TRIES - 1:
                raise
            token = retry_token(token, "next")  # OCI no longer honours this token (its resource was deleted)
            continue
        if _exists(api, made):
            return made, True
        # the first answer to this token again, for a configuration deleted since (a run whose network create
        # failed deletes the one it made): the next token of the chain is a new request
        token = retry_token(token, made)
    raise ClusterNetworkFailedError(name=spec.name, network_id="-", state="not created",
                                    detail="OCI kept answering with instance configurations that are gone; run again")


def _exists(api: Any, config_id: str) -> bool:
    try:
        api.call("get_instance_configuration", config_id)
    except OciRequestError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _create_network(api: Any, spec: NetworkSpec, config_id: str, dead: tuple[str, ...],
                    created_config: bool) -> tuple[Any, str, bool]:
    """Create the network, or find the one a concurrent run created: (network, state, created by this run)."""
    token = retry_token(spec.namespace, spec.release, spec.name, "cluster-network", *dead)
    for attempt in range(TOKEN_TRIES):
        try:
            made = api.call("create_cluster_network", cluster_network_details(spec, config_id),
                            opc_retry_token=token)
        except OciRequestError as exc:
            if exc.status == 409:
                found = survey(api, spec)
                if found.network is not None:  # a run started at the same time created it
                    return found.network, found.state, False
                if attempt < TOKEN_TRIES - 1:
                    token = retry_token(token, "next")
                    continue
            left = _clean_up_unused(api, spec, config_id) if created_config else ""
            if "out of host capacity" in exc.oci_message.lower():
                raise CapacityError(shape=spec.shape, size=spec.size, availability_domain=spec.availability_domain,
                                    request_id=exc.request_id, left=left) from None
            if left:
                raise OciRequestError(operation="create_cluster_network", status=exc.status, code=exc.code,
                                      message=exc.oci_message, request_id=exc.request_id, hint=left) from None
            raise
        current = api.call("get_cluster_network", made.id)
        state = state_of(api, current)
        if state not in DEAD:
            return current, state, True
        token = retry_token(token, made.id)  # the answer to an earlier request with this token: that network died
    raise ClusterNetworkFailedError(name=spec.name, network_id="-", state="not created",
                                    detail="OCI kept answering with networks that are gone; run again")


def _pool(api: Any, network: Any) -> Any:
    pools = network.instance_pools or api.call("get_cluster_network", network.id).instance_pools or []
    if not pools:
        raise ClusterNetworkFailedError(name=network.display_name, network_id=network.id, state="without pool",
                                        detail="it has no instance pool; deprovision it and run again")
    return pools[0]


def _refuse_differences(api: Any, spec: NetworkSpec, network: Any, pool: Any) -> None:
    """Raise NetworkMismatchError when the network's nodes are not the ones asked (a resize cannot change them)."""
    if (network.freeform_tags or {}).get(TAG_NODES) == spec.nodes_digest:
        return
    if spec.instance_configuration_id:
        differences = [("instance configuration", pool.instance_configuration_id, spec.instance_configuration_id)]
        if pool.instance_configuration_id == spec.instance_configuration_id:
            return
    else:
        try:
            config = api.call("get_instance_configuration", pool.instance_configuration_id)
        except OciRequestError as exc:
            if exc.status == 404:
                return  # nothing left to compare with
            raise
        launch = config.instance_details.launch_details
        source = launch.source_details
        differences = [(what, str(now), str(asked)) for what, now, asked in (
            ("shape", launch.shape, spec.shape),
            ("image", source.image_id, spec.image_id),
            ("availability domain", launch.availability_domain, spec.availability_domain),
            ("boot volume", f"{source.boot_volume_size_in_gbs} GB", f"{spec.boot_volume_gbs} GB"),
        ) if now != asked]
        if not differences:
            return
    raise NetworkMismatchError(name=spec.name, network_id=network.id, differences=differences,
                               deprovision=deprovision_command(spec))


def _read(api: Any, network_id: str) -> tuple[Any, str, str]:
    """The network as OCI has it now: (network, state, ETag)."""
    answer = api.response("get_cluster_network", network_id)
    return answer.data, state_of(api, answer.data), str((answer.headers or {}).get("etag") or "")


def _grow(api: Any, spec: NetworkSpec, network: Any, pool: Any, etag: str) -> None:
    """UpdateClusterNetwork to the size asked, only if the network is still the one read (If-Match)."""
    import oci

    m = oci.core.models
    details = m.UpdateClusterNetworkDetails(instance_pools=[
        m.UpdateClusterNetworkInstancePoolDetails(id=pool.id, size=spec.size)])
    # A retry of this change dedupes; the same change later (after a resize back) is another request.
    token = retry_token(network.id, pool.id, str(pool.size), str(spec.size), str(network.time_updated))
    api.call("update_cluster_network", network.id, details, opc_retry_token=token, if_match=etag or None)


def _shrink(api: Any, spec: NetworkSpec, network: Any, pool: Any, choose: Chooser, wait: Waiter,
            removed: list[str]) -> None:
    """Detach exactly the instances ``choose`` names, each with the size decremented and the instance terminated,
    waiting for the network to be RUNNING again between two (OCI refuses a change while it scales); each one
    detached is added to ``removed`` at once, so a failure later keeps the count."""
    import oci

    instances = api.all_pages("list_cluster_network_instances", spec.compartment_id, network.id)
    chosen = choose(list(instances), int(pool.size) - spec.size)
    for n, instance_id in enumerate(chosen):
        if n:
            network, state, _ = wait.until_running(*_read(api, network.id)[:2], size=int(pool.size) - n)
            if int(_pool(api, network).size) <= spec.size:  # another shrink removed the rest meanwhile
                break
        details = oci.core.models.DetachInstancePoolInstanceDetails(
            instance_id=instance_id, is_decrement_size=True, is_auto_terminate=True)
        api.call("detach_instance_pool_instance", pool.id, details,
                 opc_retry_token=retry_token(pool.id, instance_id, "detach"))
        removed.append(instance_id)


def provision_network(
    api: Any,
    spec: NetworkSpec,
    *,
    polling: Polling,
    node_metadata: Callable[[], dict[str, str]],
    on_progress: Callable[[Progress], None],
    resize: str,
    choose: Chooser,
) -> Provisioned:
    """Make sure our cluster network exists with the nodes asked and is RUNNING: create it, resize it, or refuse.

    ``node_metadata`` gives the nodes' instance metadata; it is called only when an instance configuration is made.
    ``resize`` ("any", "grow", "shrink") is the one direction this run may resize in (a shrink-only run never
    creates); ``choose`` names the instances a shrink removes (see the module's docstring).

    Raises:
        NetworkMismatchError: A network of this name has another shape, image, availability domain or boot volume.
        CapacityError: OCI has no hosts for the shape (the instance configuration this run created is deleted).
        ClusterNetworkFailedError: The network stopped, died, is in an unknown state, or was not RUNNING in time.
        ConcurrentResizeError: Another run kept changing the network while this one resized it.
        BusyNodesError: (from ``choose``) too few instances run no pod but DaemonSet, static or finished ones;
            nothing was removed.
        OciRequestError, OciAuthError, OciUnreachableError: Other API failures.
    """
    clock = polling.clock
    start = clock.now()
    wait = Waiter(api, spec.name, spec.compartment_id, deprovision_command(spec), polling, on_progress, start)
    found = survey(api, spec)
    network, state, created_network, created_config = found.network, found.state, False, False
    config_id = spec.instance_configuration_id
    if network is None and resize == "shrink":  # nothing to shrink; creating is the grow hook's work
        return Provisioned(cluster_network_id="", state="ABSENT", instance_configuration_id="",
                           created_cluster_network=False, created_instance_configuration=False, instances_running=0,
                           api_calls=api.calls, elapsed_seconds=clock.now() - start, size=0)
    if network is None:
        config_id, created_config = _instance_configuration(api, spec, node_metadata, found.dead)
        network, state, created_network = _create_network(api, spec, config_id, found.dead, created_config)
    change = _Change()
    if not created_network:
        pool = _pool(api, network)
        _refuse_differences(api, spec, network, pool)
        if created_config and pool.instance_configuration_id != config_id:
            _clean_up(api, config_id)  # a concurrent run's network won; ours is unused
            created_config = False
        config_id = pool.instance_configuration_id or config_id
        network, state, change = _resize(api, spec, network, state, wait=wait, resize=resize, choose=choose)
    size = change.kept_size or spec.size
    network, state, running = wait.until_running(network, state, size=size)
    return Provisioned(cluster_network_id=network.id, state=state, instance_configuration_id=config_id,
                       created_cluster_network=created_network, created_instance_configuration=created_config,
                       instances_running=running, api_calls=api.calls, elapsed_seconds=clock.now() - start,
                       size=size, resized_from=change.resized_from, removed_instances=change.removed,
                       left_larger=change.kept_size > spec.size)


class _Change(NamedTuple):
    resized_from: int | None = None
    removed: tuple[str, ...] = ()
    kept_size: int = 0  # the size left as found, when this run may not change it in that direction


def _resize(api: Any, spec: NetworkSpec, network: Any, state: str, *, wait: Waiter, resize: str,
            choose: Chooser) -> tuple[Any, str, _Change]:
    """Bring the network to the size asked in the direction allowed, reading it again when another run changed it
    in between: (network, state, what changed)."""
    removed: list[str] = []  # by this run, over every attempt
    first: int | None = None

    def change(*, grown_from: int | None = None, kept_size: int = 0) -> _Change:
        """A grow reports the size its write changed; a shrink the size before its first detach."""
        return _Change(resized_from=grown_from if grown_from is not None else first if removed else None,
                       removed=tuple(removed), kept_size=kept_size)

    for _ in range(RESIZE_TRIES):
        pool = _pool(api, network)
        if pool.size == spec.size:
            return network, state, change()
        if state in WAITING:  # OCI resizes only a RUNNING network
            network, state, _ = wait.until_running(network, state, size=pool.size)
        network, state, etag = _read(api, network.id)
        pool = _pool(api, network)
        size = int(pool.size)
        first = size if first is None else first
        growing = spec.size > size
        if size == spec.size or state != "RUNNING":
            return network, state, change()
        if resize == ("shrink" if growing else "grow"):
            return network, state, change(kept_size=size)
        try:
            if growing:
                _grow(api, spec, network, pool, etag)
            else:
                _shrink(api, spec, network, pool, choose, wait, removed)
        except OciRequestError as exc:
            if exc.status not in (404, 409, 412):  # changed since read, gone from the pool, busy scaling
                raise
            network, state, _ = _read(api, network.id)
            continue
        network, state, _ = _read(api, network.id)
        return network, state, change(grown_from=size if growing else None)
    raise ConcurrentResizeError(name=spec.name, network_id=network.id, tries=RESIZE_TRIES)


def _clean_up_unused(api: Any, spec: NetworkSpec, config_id: str) -> str:
    """Delete the instance configuration this run created for a network whose create failed, unless a live network
    of ours uses it (a concurrent run's create succeeded): what was done, for the error message."""
    try:
        live = survey(api, spec).network
    except OciRequestError:
        live = None
    if live is not None and any(p.instance_configuration_id == config_id for p in (live.instance_pools or [])):
        return f"The instance configuration this run created, {config_id}, is kept: network {live.id} uses it."
    return _clean_up(api, config_id)


def _clean_up(api: Any, config_id: str) -> str:
    try:
        api.call("delete_instance_configuration", config_id)
    except OciRequestError as exc:
        return f"The instance configuration this run created, {config_id}, could not be deleted ({exc}); delete it."
    return f"The instance configuration this run created, {config_id}, was deleted."
