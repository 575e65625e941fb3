"""Where a release's serving groups stand, read from its pods: scheduled, in the preflight, downloading, loading,
serving; and the preflight's result line in a leader's log. Pure functions over pod dicts (no cluster access)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from helm_rdma.contract import (
    COMPONENT_LABEL,
    DOWNLOAD_CONTAINER,
    LEADER,
    LWS_GROUP_LABEL,
    PREFLIGHT_CONTAINER,
    PREFLIGHT_RESULT_PREFIX,
    SERVING_COMPONENTS,
)


@dataclass(frozen=True)
class PodState:
    """One serving pod, as its status shows it."""

    name: str
    uid: str
    leader: bool
    group: int
    node: str | None
    ready: bool
    restarts: int
    step: str  # pending | init:<container> | starting | running | ready | failed
    detail: str  # a reason (ImagePullBackOff, CrashLoopBackOff, Unschedulable...) or ""
    container: str  # the container a log of the current step comes from
    finished_inits: tuple[str, ...] = ()  # init containers that ended at least once (passed or failed)


@dataclass(frozen=True)
class GroupState:
    """One serving group: its pods, leader first."""

    group: int
    pods: tuple[PodState, ...]

    @property
    def leader(self) -> PodState | None:
        return next((p for p in self.pods if p.leader), None)

    @property
    def serving(self) -> bool:
        leader = self.leader
        return leader is not None and leader.ready


def pod_state(pod: dict[str, Any]) -> PodState:
    """Summarize one pod (a dict as the API returns it)."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {}) or {}
    labels = meta.get("labels", {}) or {}
    leader = labels.get(COMPONENT_LABEL) == LEADER
    statuses = status.get("containerStatuses") or []
    init_statuses = status.get("initContainerStatuses") or []
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses + init_statuses)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    step, detail, container = _step(spec, status, init_statuses, statuses, ready)
    if meta.get("deletionTimestamp"):  # on its way out (a rolling update, a group restart): no longer the release's
        ready, step, detail = False, "terminating", ""
    finished = tuple(s.get("name", "") for s in init_statuses
                     if "terminated" in (s.get("state") or {}) or "terminated" in (s.get("lastState") or {}))
    return PodState(name=meta.get("name", ""), uid=meta.get("uid", ""), leader=leader,
                    group=_group_of(meta.get("name", ""), labels, pod, leader), node=spec.get("nodeName"),
                    ready=ready, restarts=restarts, step=step, detail=detail, container=container,
                    finished_inits=finished)


def _step(spec: dict[str, Any], status: dict[str, Any], init_statuses: list[dict[str, Any]],
          statuses: list[dict[str, Any]], ready: bool) -> tuple[str, str, str]:
    main = (spec.get("containers") or [{}])[0].get("name", "")
    if status.get("phase") == "Failed":
        return "failed", status.get("reason", ""), main
    if not spec.get("nodeName"):
        unscheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"
                            and c.get("status") == "False"), None)
        return "pending", (unscheduled or {}).get("reason", ""), main
    # A sidecar (a restartable init container: the port guard) runs for the pod's life; once started (its startup
    # probe passed: KEP-753) it is not a step the pod waits on.
    sidecars = {c.get("name") for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"}
    for init in init_statuses:
        state = init.get("state") or {}
        if "terminated" in state and state["terminated"].get("exitCode") == 0:
            continue
        if init.get("name") in sidecars and init.get("started"):
            continue
        reason = (state.get("waiting") or state.get("terminated") or {}).get("reason", "")
        return f"init:{init.get('name', '')}", reason, init.get("name", "")
    if ready:
        return "ready", "", main
    for s in statuses:
        state = s.get("state") or {}
        if "waiting" in state:
            return "starting", state["waiting"].get("reason", ""), s.get("name", main)
    return "running", "", main


def _group_of(name: str, labels: dict[str, str], pod: dict[str, Any], leader: bool) -> int:
    """The group of a pod: LWS's group-index label, or from the StatefulSet ordinal (leader i heads group i; worker
    j belongs to group j // (nodes - 1), with nodes from the pod's HELM_RDMA_NNODES)."""
    if LWS_GROUP_LABEL in labels:
        return int(labels[LWS_GROUP_LABEL])
    ordinal = int(name.rsplit("-", 1)[-1]) if name.rsplit("-", 1)[-1].isdigit() else 0
    if leader:
        return ordinal
    env = {e.get("name"): e.get("value") for c in pod.get("spec", {}).get("containers", []) for e in c.get("env", [])}
    nodes = int(env.get("HELM_RDMA_NNODES") or 2)
    return ordinal // max(nodes - 1, 1)


def group_states(pods: Iterable[dict[str, Any]]) -> list[GroupState]:
    """The serving groups of a release's pods (leader and worker pods only), by group index."""
    groups: dict[int, list[PodState]] = defaultdict(list)
    for pod in pods:
        labels = pod.get("metadata", {}).get("labels", {}) or {}
        if labels.get(COMPONENT_LABEL) not in SERVING_COMPONENTS:
            continue
        state = pod_state(pod)
        groups[state.group].append(state)
    return [GroupState(group=g, pods=tuple(sorted(members, key=lambda p: (not p.leader, p.name))))
            for g, members in sorted(groups.items())]


def preflight_result(log: str | None) -> dict[str, Any] | None:
    """The last preflight result in a log (what rank 0 printed), or None."""
    found = None
    for line in (log or "").splitlines():
        at = line.find(PREFLIGHT_RESULT_PREFIX)
        if at < 0:
            continue
        try:
            parsed = json.loads(line[at + len(PREFLIGHT_RESULT_PREFIX):])
        except ValueError:
            continue
        if isinstance(parsed, dict):
            found = parsed
    return found


def preflight_line(event: dict[str, Any]) -> str:
    """One recorded preflight (an Event's summary, as cluster.kube.preflight_events returns it) as a line."""
    return (f"{event.get('time', '?')} {event.get('pod')}: {event.get('verdict')} "
            f"{float(event.get('busbw_gbps') or 0):.1f} GB/s (floor {event.get('threshold_gbps')}) over "
            f"{event.get('transport')}")


def progress(groups: list[GroupState], *, wanted_groups: int, nodes: int) -> str:
    """One line of where the rollout stands, for `install --wait`."""
    pods = [p for g in groups for p in g.pods]
    wanted = wanted_groups * nodes
    scheduled = sum(1 for p in pods if p.node)
    steps = Counter(p.step.replace("init:", "") for p in pods)
    order = ("pending", DOWNLOAD_CONTAINER, PREFLIGHT_CONTAINER, "starting", "running", "ready", "failed")
    parts = [f"{steps[s]} {'loading' if s == 'running' else s}" for s in order if steps.get(s)]
    parts += [f"{n} {s}" for s, n in sorted(steps.items()) if s not in order]
    serving = sum(1 for g in groups if g.serving)
    return (f"{serving}/{wanted_groups} group(s) serving; pods {scheduled}/{wanted} scheduled"
            + (f" ({', '.join(parts)})" if parts else ""))


def stuck_pod(groups: list[GroupState]) -> PodState | None:
    """The pod most likely to explain a group that does not serve: failing or restarting first, then pending,
    then the leader of the first group that is not serving."""
    pods = [p for g in groups if not g.serving for p in g.pods]
    if not pods:
        return None
    return sorted(pods, key=lambda p: (p.step != "failed", -p.restarts, p.step != "pending", not p.leader))[0]
