"""Waiting until a release serves: every group's leader Ready, with progress, and the reason when it does not.

Helm has no readiness rule for a LeaderWorkerSet, so `helm install --wait` returns as soon as the object exists;
`helm rdma install --wait` then waits here, reading the pods, and after an upgrade the LeaderWorkerSet's status too.
"""

from __future__ import annotations

from collections.abc import Callable

from helm_rdma.clock import Polling
from helm_rdma.cluster.groups import group_states, progress, stuck_pod
from helm_rdma.cluster.kube import pod_events, pod_log, release_pods
from helm_rdma.cluster.objects import list_objects
from helm_rdma.contract import INSTANCE_LABEL
from helm_rdma.errors import ClusterError, NotServingError
from helm_rdma.helmenv import HelmEnv

LOG_LINES = 20


def wait_until_serving(*, release: str, env: HelmEnv, groups: int, nodes: int, polling: Polling,
                       report_seconds: float = 30, on_progress: Callable[[str], None] = lambda _: None) -> str:
    """Wait until ``groups`` groups of ``release`` have a Ready leader, looking at ``polling``'s pace; report progress
    at least every ``report_seconds`` (and whenever it changes). Returns the last progress line.

    Raises:
        NotServingError: Not serving within ``polling.timeout_seconds``; names the pod that holds it up, with its
            events and log.
        ClusterError: The cluster cannot be read.
    """
    clock, delay = polling.clock, polling.poll_seconds
    start = last_report = clock.now()
    last_line = ""
    while True:
        namespace, pods = release_pods(release=release, env=env)
        states = group_states(pods)
        line = progress(states, wanted_groups=groups, nodes=nodes)
        elapsed = clock.now() - start
        if line != last_line or clock.now() - last_report >= report_seconds:
            on_progress(f"{line} ({elapsed:.0f}s)")
            last_line, last_report = line, clock.now()
        if sum(1 for g in states if g.serving) >= groups:
            pending = _rolling(release=release, env=env)
            if pending is None:
                return line
            line = f"{line}; {pending}"
        if elapsed >= polling.timeout_seconds:
            stuck = stuck_pod(states)
            log = ""
            if stuck is not None:
                log = (pod_log(pod=stuck.name, container=stuck.container, env=env, tail_lines=LOG_LINES)
                       or pod_log(pod=stuck.name, container=stuck.container, env=env, tail_lines=LOG_LINES,
                                  previous=True) or "")
            step = f"{stuck.step}{f' ({stuck.detail})' if stuck and stuck.detail else ''}" if stuck else ""
            raise NotServingError(release=release, namespace=namespace, seconds=elapsed, line=line,
                                  pod=stuck.name if stuck else None, step=step, log=log,
                                  events=_events(stuck.name, env) if stuck else "")
        clock.sleep(delay)
        delay = polling.next_delay(delay)


def _rolling(*, release: str, env: HelmEnv) -> str | None:
    """What a LeaderWorkerSet of ``release`` has still to do after an upgrade, None when nothing: Ready leaders may be
    the old template's until its controller has seen the new spec (status.observedGeneration below
    metadata.generation) and rolled every group onto it (the UpdateInProgress condition: kubernetes-sigs/lws
    api/leaderworkerset/v1/leaderworkerset_types.go, set in pkg/controllers/leaderworkerset_controller.go while
    updated groups are fewer than the groups). An operator that reports neither, or a LeaderWorkerSet the kube user
    may not read, is judged by its pods alone."""
    try:
        _, found = list_objects(kind="LeaderWorkerSet", labels={INSTANCE_LABEL: release}, env=env)
    except ClusterError:  # a kube user who may read pods but not LeaderWorkerSets: the pods alone say it
        return None
    for lws in found:
        status, generation = lws.get("status") or {}, (lws.get("metadata") or {}).get("generation")
        if "observedGeneration" in status and generation is not None and int(status["observedGeneration"]) < generation:
            return "the LeaderWorkerSet controller has not taken in the new spec yet"
        conditions = status.get("conditions") or []
        if any(c.get("type") == "UpdateInProgress" and c.get("status") == "True" for c in conditions):
            return "the LeaderWorkerSet is moving its groups onto the new template"
    return None


def _events(pod: str, env: HelmEnv) -> str:
    """The pod's events as indented lines for NotServingError; a line saying why when they cannot be read (the
    timeout is what the user must hear about, not a second failure)."""
    try:
        return "\n".join(f"  {line}" for line in pod_events(pod=pod, env=env))
    except ClusterError as exc:
        return f"  (not readable: {exc})"
