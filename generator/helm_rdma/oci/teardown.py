"""Deprovisioning a cluster network: terminate our networks of a name, wait until they are TERMINATED, then delete
our instance configurations (never anything not tagged as ours)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from helm_rdma.clock import Polling
from helm_rdma.errors import ClusterNetworkFailedError
from helm_rdma.oci.network import NetworkSpec, ours
from helm_rdma.oci.waiting import Progress, state_of


class Deprovisioned(NamedTuple):
    """What a deprovisioning run terminated or deleted."""

    terminated_networks: tuple[str, ...]
    deleted_instance_configurations: tuple[str, ...]
    api_calls: int


def ours_to_remove(api: Any, spec: NetworkSpec) -> tuple[list[Any], list[Any]]:
    """Our cluster networks not yet TERMINATED and our instance configurations of this name (never anything
    untagged)."""
    networks = [n for n in api.all_pages("list_cluster_networks", spec.compartment_id, display_name=spec.name)
                if ours(n, spec) and n.lifecycle_state != "TERMINATED"]
    configs = [c for c in api.all_pages("list_instance_configurations", spec.compartment_id)
               if ours(c, spec) and c.display_name == f"{spec.name}-instance-configuration"]
    return networks, configs


def deprovision_network(
    api: Any,
    spec: NetworkSpec,
    networks: list[Any],
    configs: list[Any],
    *,
    polling: Polling,
    on_progress: Callable[[Progress], None] = lambda _: None,
) -> Deprovisioned:
    """Terminate our networks, wait until they are TERMINATED, then delete our instance configurations.

    Raises:
        ClusterNetworkFailedError: A network is not TERMINATED in time (its configuration is then kept).
    """
    clock = polling.clock
    start = clock.now()
    for network in networks:
        if network.lifecycle_state not in ("TERMINATING", "TERMINATED"):
            api.call("terminate_cluster_network", network.id)
    delay = polling.poll_seconds
    for network in networks:
        while True:
            current = api.call("get_cluster_network", network.id)
            state = state_of(api, current)
            elapsed = clock.now() - start
            on_progress(Progress(state=state, instances_running=0, size=0, elapsed_seconds=elapsed))
            if state == "TERMINATED":
                break
            if elapsed >= polling.timeout_seconds:
                raise ClusterNetworkFailedError(
                    name=spec.name, network_id=network.id, state=state,
                    detail=f"not TERMINATED after {elapsed:.0f}s; run deprovision again to finish")
            clock.sleep(delay)
            delay = polling.next_delay(delay)
    for config in configs:
        api.call("delete_instance_configuration", config.id)
    return Deprovisioned(terminated_networks=tuple(n.id for n in networks),
                         deleted_instance_configurations=tuple(c.id for c in configs), api_calls=api.calls)
