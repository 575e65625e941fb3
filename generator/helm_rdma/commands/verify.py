"""`helm-rdma verify`: run helm test, read each group's preflight result, and print one summary of the fabric.

A release with no Helm release (Argo CD applies what `helm template` renders) is read from the cluster instead: the
values from the release's ConfigMap, and its `helm test` Job and Pod, rendered by the same chart into that ConfigMap,
run as plain objects (clusterrelease, testrun)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from helm_rdma.clock import SYSTEM_CLOCK, Clock
from helm_rdma.cluster.groups import GroupState, group_states, preflight_line, preflight_result
from helm_rdma.cluster.kube import delete_pods, pod_log, preflight_events, release_pods
from helm_rdma.cluster.release import helm_status, read_release
from helm_rdma.cluster.testrun import run_test
from helm_rdma.contract import DOWNLOAD_CONTAINER, PORT_GUARD_CONTAINER, PREFLIGHT_CONTAINER
from helm_rdma.errors import HelmCommandError
from helm_rdma.helm import duration_seconds, run_helm
from helm_rdma.helmenv import HelmEnv

# Steps of a leader whose preflight has not finished yet.
# The leader downloads, then meets its group at the preflight: before that it has no result yet.
# The steps before the preflight can have run: the port guard (until its startup probe passes), the download, the
# preflight itself.
WAITING = ("pending", f"init:{PORT_GUARD_CONTAINER}", f"init:{DOWNLOAD_CONTAINER}", f"init:{PREFLIGHT_CONTAINER}")


class Check(NamedTuple):
    """One line of the summary."""

    name: str
    passed: bool | None  # None: nothing to judge (not run)
    detail: str


@dataclass(frozen=True)
class VerifyResult:
    """The summary: every check, and whether all that ran passed; ``source`` says where the release was read:
    helm (a Helm release) or cluster (its objects, with no Helm release)."""

    checks: tuple[Check, ...]
    source: str = "helm"

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (verify -o json)."""
        return {"source": self.source, "passed": self.passed,
                "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks]}


def verify(*, release: str, env: HelmEnv, timeout: str = "15m", remeasure: Callable[[str], bool] | None = None,
           remeasure_seconds: float = 3600, poll_seconds: float = 15, clock: Clock = SYSTEM_CLOCK) -> VerifyResult:
    """Verify ``release``: helm test (RDMA NICs on every node, then the API), and each group's preflight.

    The preflight runs as an init container of every group's pods before vLLM starts, so it measures the fabric on
    every group start. With ``remeasure`` (verify --nccl), the groups restart first (their pods are deleted and come
    back, the model loads again) and verify waits up to ``remeasure_seconds`` for the new results; ``remeasure``
    gets the warning to show and says whether to go on.

    Without a Helm release, the values and the test objects come from the release's ConfigMap, and the tests run as
    plain Jobs and Pods (created, waited for, read and deleted here).

    Raises:
        DurationError: ``timeout`` is not a duration helm reads.
        HelmCommandError: `helm get values` failed (no cluster, no access).
        NoReleaseError: Neither a Helm release nor the release's ConfigMap.
        ClusterError: The pods or their logs could not be read, or the test objects not created.
    """
    timeout_seconds = duration_seconds(timeout)  # a duration helm would refuse stops before the cluster is asked
    on_helm = helm_status(release=release, env=env) is not None
    tests: tuple[dict[str, Any], ...] = ()
    origin = ""
    if on_helm:
        values = json.loads(run_helm(["get", "values", release, "--all", "--output", "json",
                                      *env.global_flags()]).stdout)
    else:
        _, found = read_release(release=release, env=env)
        values, tests = found.values, found.tests
        origin = f"; no Helm release: read from ConfigMap {found.name} ({found.chart}" + (
            f", applied by {found.managed_by})" if found.managed_by else ")")
    preset = values.get("preset", {})
    nodes, replicas = int(values.get("nodes", 1)), int(values.get("replicas", 1))
    auto, scaled = values.get("autoscaling") or {}, ""
    if auto.get("enabled"):  # the groups KEDA always keeps: what the test Job checks (templates/job-test-rdma.yaml)
        replicas = int(auto.get("minReplicas", 1))
        scaled = f" kept by the scaler, up to {auto.get('maxReplicas')}; the tests check those"
    checks = [Check("release", None, f"{release}: {nodes * replicas} x {preset.get('shape')} "
                                     f"({nodes} per group, {replicas} group(s){scaled}){origin}")]
    preflight_on = nodes > 1 and bool(values.get("verify", {}).get("preflight", {}).get("enabled", True))
    if remeasure is not None:
        checks.append(_remeasure(release, env, remeasure, preflight_on=preflight_on, seconds=remeasure_seconds,
                                 poll_seconds=poll_seconds, clock=clock))
    rdma_test: bool | None
    if on_helm:
        try:
            tested = run_helm(["test", release, *env.global_flags(), "--timeout", timeout])
            checks.append(Check("helm test", True, _last_line(tested.stdout) or "all test hooks succeeded"))
        except HelmCommandError as exc:
            checks.append(Check("helm test", False, _last_line(exc.stderr) or f"exit {exc.returncode}"))
        rdma_test, by = checks[-1].passed, "helm test"
    else:
        runs = [run_test(t, env=env, timeout_seconds=timeout_seconds, poll_seconds=poll_seconds, clock=clock)
                for t in tests]
        if not runs:
            checks.append(Check("tests", None, "verify.tests.enabled is false: no test objects to run"))
        checks += [Check(r.component, r.passed, f"{r.kind} {r.name}: {r.detail}") for r in runs]
        rdma_test = next((r.passed for r in runs if r.component == "test-rdma"), None)
        by = "a test Job (no Helm release: helm test cannot run)"
    hcas = str(values.get("nccl", {}).get("settings", {}).get("NCCL_IB_HCA", ""))
    if values.get("rdma", {}).get("mode") == "sriov":
        checks.append(Check("RDMA NICs", None, "SR-IOV: the VFs live in the serving pods; each group's preflight "
                                               "proves them (below)"))
    else:
        checks.append(Check("RDMA NICs", rdma_test, f"{len(hcas.lstrip('=^').split(','))} per node "
                                                    f"expected ({hcas}); checked ACTIVE by {by} on every node"))
    if not preflight_on:
        why = "groups of one node have no RDMA path to test" if nodes < 2 else "verify.preflight.enabled is false"
        checks.append(Check("bandwidth", None, why))
    else:
        _, pods = release_pods(release=release, env=env)
        groups = group_states(pods)
        if not groups:
            checks.append(Check("bandwidth", False, "no serving pods of this release"))
        checks += [_group_preflight(g, values, env) for g in groups]
        checks.append(_recorded(release, env))
    return VerifyResult(checks=tuple(checks), source="helm" if on_helm else "cluster")


def _remeasure(release: str, env: HelmEnv, confirm: Callable[[str], bool], *, preflight_on: bool, seconds: float,
               poll_seconds: float, clock: Clock) -> Check:
    """Restart every group (delete its pods; the LeaderWorkerSet or StatefulSets bring them back) so that the
    preflight runs again, and wait until each group's new leader has its result."""
    if not preflight_on:
        return Check("re-run", None, "no preflight to run: groups of one node, or verify.preflight.enabled=false")
    warning = ("The bandwidth test runs in each group's pods before vLLM: every group restarts (its pods are "
               "deleted and come back) and the model loads again, which takes long for a large model.")
    if not confirm(warning):
        return Check("re-run", None, "declined: the last preflight results are shown")
    _, pods = release_pods(release=release, env=env)
    before = {p.uid for g in group_states(pods) for p in g.pods}
    deleted = delete_pods(names=[p.name for g in group_states(pods) for p in g.pods], env=env)
    start = clock.now()
    while True:
        _, pods = release_pods(release=release, env=env)
        groups = group_states(pods)
        leaders = [g.leader for g in groups]
        fresh = [p for p in leaders if p is not None and p.uid not in before]
        if groups and len(fresh) == len(groups) and all(
                PREFLIGHT_CONTAINER in p.finished_inits or p.step not in WAITING for p in fresh):
            return Check("re-run", True, f"{len(deleted)} pod(s) restarted; the preflight ran again in "
                                         f"{len(groups)} group(s)")
        if clock.now() - start >= seconds:
            return Check("re-run", False, f"{len(deleted)} pod(s) restarted, but after {seconds:.0f}s "
                                          f"{len(fresh)} of {len(groups)} group(s) had a new leader past its preflight")
        clock.sleep(poll_seconds)


def _group_preflight(group: GroupState, values: dict[str, Any], env: HelmEnv) -> Check:
    name = f"group {group.group}"
    leader = group.leader
    if leader is None:
        return Check(name, False, "no leader pod")
    if PREFLIGHT_CONTAINER not in leader.finished_inits and leader.step in WAITING:
        return Check(name, None, f"{leader.name}: the preflight has not finished yet ({leader.step})")
    result = preflight_result(pod_log(pod=leader.name, container=PREFLIGHT_CONTAINER, env=env))
    if result is None:
        result = preflight_result(pod_log(pod=leader.name, container=PREFLIGHT_CONTAINER, env=env, previous=True))
    if result is None:
        return Check(name, False, f"{leader.name}: no preflight result in its log (kubectl logs {leader.name} -c "
                                  f"{PREFLIGHT_CONTAINER}): it failed before measuring")
    preset = values.get("preset", {})
    line_rate = int(preset.get("rdmaNics", 0)) * int(preset.get("rdmaNicGbps", 0)) / 8
    expected = preset.get("busBandwidthExpectedGBps")
    transport = result.get("transport", "unknown") + (" with GPUDirect RDMA" if result.get("gdrdma") else "")
    detail = (f"{leader.name}: {result.get('busbw_gbps', 0):.1f} GB/s all_reduce bus bandwidth over {transport} "
              f"(floor {result.get('threshold_gbps')}, published {expected if expected else 'n/a'}, line rate "
              f"{line_rate:g} GB/s per node); NCCL {result.get('nccl_version') or 'unknown'}, {result.get('ranks')} "
              f"ranks, measured {result.get('time', '?')}")
    passed = bool(result.get("passed"))
    return Check(name, passed, detail if passed else f"{result.get('reason')}: {detail}")


def _recorded(release: str, env: HelmEnv) -> Check:
    """The last preflights the groups' leaders recorded as Events (files/preflight_event.py): under LeaderWorkerSet a
    failed preflight recreates the group, and its pods' logs and termination messages go with them."""
    events = preflight_events(release=release, env=env)
    if not events:
        return Check("recorded", None, "no preflight recorded as an Event in the API server's event TTL (one hour "
                                       "by default)")
    return Check("recorded", None, "; ".join(preflight_line(e) for e in events))


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
