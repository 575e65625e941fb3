"""Running a chart's `helm test` objects as plain Jobs and Pods, where helm cannot (a release Argo CD applied): as
`helm test` does, each in hook-weight order replaces one left from before (before-hook-creation), runs until it
succeeds or fails, and its log tells the result; then it is deleted."""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

from helm_rdma.clock import SYSTEM_CLOCK, Clock
from helm_rdma.cluster.kube import pod_log
from helm_rdma.cluster.objects import create_object, delete_object, list_objects, read_object
from helm_rdma.contract import COMPONENT_LABEL
from helm_rdma.helmenv import HelmEnv

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")  # Kubernetes 1.27+, and the older one


class TestRun(NamedTuple):
    """One test object's outcome."""

    kind: str
    name: str
    component: str  # app.kubernetes.io/component: test-rdma, test-api
    passed: bool
    detail: str


def plain_object(test: dict[str, Any]) -> dict[str, Any]:
    """The test object without Helm's hook annotations (they mean nothing outside helm)."""
    obj = copy.deepcopy(test)
    notes = obj.get("metadata", {}).get("annotations") or {}
    for key in [k for k in notes if k.startswith("helm.sh/hook")]:
        del notes[key]
    if "annotations" in obj.get("metadata", {}) and not notes:
        del obj["metadata"]["annotations"]
    obj["metadata"].pop("namespace", None)  # the release's namespace, from the kube context or -n
    return obj


def run_test(test: dict[str, Any], *, env: HelmEnv, timeout_seconds: float, poll_seconds: float = 5,
             clock: Clock = SYSTEM_CLOCK) -> TestRun:
    """Run one test object: replace one left from before, wait until it ends, read its result, delete it.

    Raises:
        ClusterError: The cluster refused to create, read or delete it.
    """
    obj = plain_object(test)
    kind, name = obj["kind"], obj["metadata"]["name"]
    component = str((obj["metadata"].get("labels") or {}).get(COMPONENT_LABEL, name))
    delete_object(kind=kind, name=name, env=env)  # before-hook-creation
    _wait_gone(kind, name, env=env, clock=clock, poll_seconds=poll_seconds)
    create_object(obj, env=env)
    start = clock.now()
    try:
        while True:
            current = read_object(kind=kind, name=name, env=env) or {}
            done = _outcome(current)
            if done is not None:
                return TestRun(kind=kind, name=name, component=component, passed=done,
                               detail=_log_line(current, env=env) or _status_line(current))
            if clock.now() - start >= timeout_seconds:
                return TestRun(kind=kind, name=name, component=component, passed=False,
                               detail=f"did not finish within {timeout_seconds:.0f}s ({_status_line(current)})")
            clock.sleep(poll_seconds)
    finally:
        delete_object(kind=kind, name=name, env=env)


def _wait_gone(kind: str, name: str, *, env: HelmEnv, clock: Clock, poll_seconds: float) -> None:
    start = clock.now()
    while read_object(kind=kind, name=name, env=env) is not None and clock.now() - start < 60:
        clock.sleep(min(poll_seconds, 1.0))


def _outcome(obj: dict[str, Any]) -> bool | None:
    """True (succeeded), False (failed) or None (still running) for a Job or a Pod."""
    status = obj.get("status") or {}
    if obj.get("kind") == "Pod":
        phase = status.get("phase")
        return True if phase == "Succeeded" else False if phase == "Failed" else None
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if conditions.get("Failed") == "True" or conditions.get("FailureTarget") == "True":
        return False
    completions = int((obj.get("spec") or {}).get("completions") or 1)
    if conditions.get("Complete") == "True" or int(status.get("succeeded") or 0) >= completions:
        return True
    return None


def _status_line(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    if obj.get("kind") == "Pod":
        return f"phase {status.get('phase', 'Pending')}"
    completions = int((obj.get("spec") or {}).get("completions") or 1)
    return f"{status.get('succeeded', 0) or 0}/{completions} pods succeeded, {status.get('failed', 0) or 0} failed"


def _log_line(obj: dict[str, Any], *, env: HelmEnv) -> str:
    """The last `helm-rdma test:` line of the object's pods (a failed pod's first), else ""."""
    name = obj.get("metadata", {}).get("name", "")
    if obj.get("kind") == "Pod":
        pods = [obj]
    else:
        pods = []
        for label in JOB_NAME_LABELS:
            _, pods = list_objects(kind="Pod", labels={label: name}, env=env)
            if pods:
                break
    pods.sort(key=lambda p: ((p.get("status") or {}).get("phase") != "Failed", p["metadata"]["name"]))
    lines = []
    for pod in pods:
        container = pod["spec"]["containers"][0]["name"]
        log = pod_log(pod=pod["metadata"]["name"], container=container, env=env, tail_lines=20) or ""
        ours = [line.strip() for line in log.splitlines() if "helm-rdma test:" in line]
        if ours:
            lines.append(ours[-1].split("helm-rdma test:", 1)[1].strip())
    if not lines:
        return ""
    return lines[0] + (f" (and {len(lines) - 1} more pod(s))" if len(lines) > 1 else "")
