"""What the nodes that did not join printed on their serial console: the cloud-init and join script's own words,
read with the OCI console history API (ComputeClient.capture_console_history, get_console_history,
get_console_history_content, delete_console_history) when the nodes do not register in time.

Works on a ``CountingApi`` (see oci.clients); a console that cannot be read is said so, never raised: the caller's
own error (the nodes did not join) is what matters.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from helm_rdma.clock import Polling
from helm_rdma.errors import HelmRdmaError

MAX_INSTANCES = 2  # the consoles of the first nodes that did not join; the others usually say the same
TAIL_LINES = 12
CONTENT_BYTES = 1024 * 1024  # the API's default and maximum is the last 1 MB
OUR_PREFIX = "helm-rdma:"  # the join and RAID scripts' lines (oci/nodeinit/*.sh)


@dataclass(frozen=True)
class ConsoleTail:
    """The last lines an instance printed on its console, or why they could not be read."""

    instance_id: str
    lines: tuple[str, ...]
    problem: str = ""

    def text(self) -> str:
        if self.problem:
            return f"console of {self.instance_id}: not read ({self.problem})"
        shown = "\n  ".join(self.lines) if self.lines else "(empty)"
        return f"console of {self.instance_id}, last lines:\n  {shown}"


def tail_of(content: str, *, lines: int = TAIL_LINES) -> tuple[str, ...]:
    """The lines worth showing: the join script's own when it printed any (its last ``lines``), else the console's
    last ``lines``."""
    all_lines = [line.rstrip() for line in content.replace("\r", "").splitlines() if line.strip()]
    ours = [line for line in all_lines if OUR_PREFIX in line]
    return tuple((ours or all_lines)[-lines:])


def unjoined_consoles(api: Any, *, compartment_id: str, network_id: str, joined: Collection[str],
                      polling: Polling) -> list[ConsoleTail]:
    """The console tails of the network's instances (at most MAX_INSTANCES) whose OCID is not in ``joined``."""
    try:
        instances = api.all_pages("list_cluster_network_instances", compartment_id, network_id)
    except HelmRdmaError as exc:
        return [ConsoleTail(instance_id=network_id, lines=(), problem=str(exc))]
    missing = [str(i.id) for i in instances if str(i.id) not in joined][:MAX_INSTANCES]
    return [_console(api, instance_id, polling=polling) for instance_id in missing]


def _console(api: Any, instance_id: str, *, polling: Polling) -> ConsoleTail:
    import oci

    details = oci.core.models.CaptureConsoleHistoryDetails(instance_id=instance_id,
                                                           display_name="helm-rdma-node-join")
    try:
        history = api.call("capture_console_history", details)
        clock, delay, start = polling.clock, polling.poll_seconds, polling.clock.now()
        while str(history.lifecycle_state) in ("REQUESTED", "GETTING-HISTORY"):
            if clock.now() - start >= polling.timeout_seconds:
                return ConsoleTail(instance_id, (), f"still {history.lifecycle_state} after "
                                                    f"{polling.timeout_seconds:.0f}s")
            clock.sleep(delay)
            delay = polling.next_delay(delay)
            history = api.call("get_console_history", history.id)
        if str(history.lifecycle_state) != "SUCCEEDED":
            return ConsoleTail(instance_id, (), f"the capture is {history.lifecycle_state}")
        content = api.call("get_console_history_content", history.id, length=CONTENT_BYTES)
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
        try:
            api.call("delete_console_history", history.id)
        except HelmRdmaError:
            pass  # OCI keeps a few captures per instance and deletes the oldest itself
        return ConsoleTail(instance_id, tail_of(text))
    except HelmRdmaError as exc:
        return ConsoleTail(instance_id, (), str(exc))
