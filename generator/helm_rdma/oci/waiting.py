"""Waiting for a cluster network: its lifecycle states (also those the SDK does not know), one look at it, and the
poll with a capped backoff until it is RUNNING."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from helm_rdma.clock import Polling
from helm_rdma.errors import ClusterNetworkFailedError

DEAD = ("TERMINATING", "TERMINATED", "FAILED")
WAITING = ("PROVISIONING", "SCALING", "STARTING")
STOPPED = ("STOPPING", "STOPPED")
UNKNOWN = "UNKNOWN_ENUM_VALUE"  # the SDK's stand-in for an enum value it does not know


class Progress(NamedTuple):
    """One look at a cluster network while waiting for it."""

    state: str
    instances_running: int
    size: int
    elapsed_seconds: float


def state_of(api: Any, network: Any) -> str:
    """The network's lifecycle state by name, also when the SDK does not know it."""
    state = str(network.lifecycle_state)
    if state == UNKNOWN:
        raw = api.raw("get_cluster_network", network.id)
        state = str((raw or {}).get("lifecycleState") or state)
    return state


@dataclass(frozen=True)
class Waiter:
    """Polls one cluster network until it is RUNNING, reporting each look; fails on a state it cannot wait out."""

    api: Any
    name: str
    compartment_id: str
    deprovision: str  # the command that deletes the network, for the messages
    polling: Polling
    on_progress: Callable[[Progress], None]
    start: float

    def until_running(self, network: Any, state: str, *, size: int) -> tuple[Any, str, int]:
        """Poll with a capped backoff until RUNNING: (network, state, instances running)."""
        polling, delay = self.polling, self.polling.poll_seconds
        while True:
            up = state in (*WAITING, "RUNNING")
            running = running_instances(self.api, self.compartment_id, network.id) if up else 0
            elapsed = polling.clock.now() - self.start
            self.on_progress(Progress(state=state, instances_running=running, size=size, elapsed_seconds=elapsed))
            if state == "RUNNING":
                return network, state, running
            if state in DEAD:
                detail = ("OCI ended it while it came up (out of capacity after the request was accepted, or "
                          "terminated by hand); look at its work requests in the OCI console, then run again: the "
                          "next run creates a new network")
            elif state in STOPPED:
                detail = f"start it again in the OCI console, or delete it ({self.deprovision})"
            elif state not in WAITING:
                detail = ("helm-rdma does not know this lifecycle state; look at the network in the OCI console "
                          "and run again when it is RUNNING")
            elif elapsed >= polling.timeout_seconds:
                detail = (f"not RUNNING after {elapsed:.0f}s ({running}/{size} instances up); run again to keep "
                          "waiting: the next run resumes this network")
            else:
                polling.clock.sleep(min(delay, max(polling.timeout_seconds - elapsed, 0)))
                delay = polling.next_delay(delay)
                network = self.api.call("get_cluster_network", network.id)
                state = state_of(self.api, network)
                continue
            raise ClusterNetworkFailedError(name=self.name, network_id=network.id, state=state, detail=detail)


def running_instances(api: Any, compartment_id: str, network_id: str) -> int:
    """How many of the network's instances are RUNNING."""
    instances = api.all_pages("list_cluster_network_instances", compartment_id, network_id)
    return sum(1 for i in instances if str(i.state).upper() == "RUNNING")
