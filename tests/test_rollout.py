"""`helm rdma install --wait`: helm has no readiness rule for a LeaderWorkerSet (its --wait returns as soon as the
object exists: helm/helm pkg/kube/ready.go checks only built-in kinds), so the plugin waits for every group's leader
itself, reading the pods with the real kubernetes client from kmock; helm is a stand-in that records its call."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helm_rdma.cli import main
from helm_rdma.cluster.groups import group_states, pod_state, progress

from .helm_stand_in import recording_helm
from .kmock_cluster import Cluster

HELM = """#!/bin/sh
echo "$@" >> "{log}"
case "$1" in
  version) echo "v4.1.4+g0" ;;
  install) echo "NAME: $2"; echo "STATUS: deployed" ;;
  get) echo "Error: release: not found" >&2; exit 1 ;;
  history) echo '[{{"revision": 1, "status": "superseded"}}, {{"revision": 2, "status": "deployed"}},
                  {{"revision": 3, "status": "failed"}}]' ;;
esac
"""


def pod(name: str, *, group: int, leader: bool, step: str, uid: str = "") -> dict[str, Any]:
    """A LeaderWorkerSet pod at one step: pending, preflight, download, loading, ready, crashing."""
    init = [{"name": "preflight", "image": "i", "imageID": "", "ready": False, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0}} if step not in ("pending", "preflight") else {"running": {}}}]
    container = {"name": "vllm", "image": "i", "imageID": "", "ready": step == "ready",
                 "restartCount": 3 if step == "crashing" else 0,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}} if step == "crashing" else {"running": {}}}
    status: dict[str, Any] = {"phase": "Pending" if step in ("pending", "preflight") else "Running",
                              "conditions": [{"type": "Ready", "status": "True" if step == "ready" else "False"}]}
    if step == "pending":
        status["conditions"].append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"})
    else:
        status["initContainerStatuses"] = init
        status["containerStatuses"] = [container]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ml", "uid": uid or name,
                         "labels": {"app.kubernetes.io/instance": "llama405b",
                                    "app.kubernetes.io/component": "leader" if leader else "worker",
                                    "leaderworkerset.sigs.k8s.io/group-index": str(group)}},
            "spec": {"nodeName": None if step == "pending" else f"gpu-{group}-{int(not leader)}",
                     "containers": [{"name": "vllm", "image": "i"}],
                     "initContainers": [{"name": "preflight", "image": "i"}]},
            "status": status}


def group(step_leader: str, step_worker: str, g: int = 0) -> list[dict[str, Any]]:
    return [pod(f"llama405b-vllm-rdma-{g}", group=g, leader=True, step=step_leader),
            pod(f"llama405b-vllm-rdma-{g}-1", group=g, leader=False, step=step_worker)]


@pytest.fixture
def helm_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return recording_helm(tmp_path, monkeypatch, HELM)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    started: list[Cluster] = []

    def start(pods: list[dict[str, Any]], logs: dict[tuple[str, str, bool], bytes] | None = None) -> Cluster:
        c = Cluster(pods, tmp_path / "kubeconfig", logs=logs).__enter__()
        monkeypatch.setenv("KUBECONFIG", str(c.kubeconfig))
        started.append(c)
        return c

    yield start
    for c in started:
        c.__exit__(None, None, None)


def install(*args: str) -> Any:
    return CliRunner().invoke(main, ["install", "llama405b", "--preset", "h100", "-n", "ml", "--wait",
                                     "--poll-interval", "0.05", "--set", "distributed.allowOpenGroupPorts=true",
                                     *args])  # the wait, not the group's ports (tests/test_doctor_cluster.py)


def test_wait_returns_once_every_leader_is_ready_and_reports_each_step(helm_log: Path, cluster: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    c = cluster(group("preflight", "preflight"))
    looked, polls = threading.Condition(), [0]

    def counted(pods: Any) -> Any:  # each time the plugin has read the pods
        states = group_states(pods)
        with looked:
            polls[0] += 1
            looked.notify_all()
        return states

    monkeypatch.setattr("helm_rdma.cluster.rollout.group_states", counted)

    def rollout() -> None:  # the controllers and kubelet: each step after the plugin has seen the one before
        for leader, worker in (("running", "running"), ("ready", "running")):
            with looked:
                seen = polls[0]
                assert looked.wait_for(lambda seen=seen: polls[0] > seen, timeout=60)
            for p in group(leader, worker):
                c.put(p)

    threading.Thread(target=rollout, daemon=True).start()
    out = install()
    assert out.exit_code == 0, out.output
    assert "install llama405b" in helm_log.read_text() and "--wait" in helm_log.read_text()
    assert "helm-rdma: 0/1 group(s) serving; pods 2/2 scheduled (2 preflight)" in out.stderr
    assert "helm-rdma: 0/1 group(s) serving; pods 2/2 scheduled (2 loading)" in out.stderr
    assert "helm-rdma: serving: 1/1 group(s) serving; pods 2/2 scheduled (1 loading, 1 ready)" in out.stderr


def test_wait_times_out_naming_the_pod_that_holds_it_up_with_its_log(helm_log: Path, cluster: Any) -> None:
    crash = "\n".join(f"line {i}" for i in range(40)) + "\ntorch.OutOfMemoryError: CUDA out of memory."
    cluster(group("crashing", "running"), logs={("llama405b-vllm-rdma-0", "vllm", True): crash.encode()})
    out = install("--timeout", "1s")
    assert out.exit_code == 1
    assert "helm-rdma: error: llama405b is not serving after" in out.output
    assert "llama405b-vllm-rdma-0 is at starting (CrashLoopBackOff); the last lines of its log:" in out.output
    assert "torch.OutOfMemoryError: CUDA out of memory." in out.output and "line 20" not in out.output
    assert ("more: kubectl -n ml describe pod llama405b-vllm-rdma-0; kubectl -n ml logs llama405b-vllm-rdma-0 "
            "--all-containers; helm rdma diagnose llama405b") in out.output


def test_with_autoscaling_wait_counts_the_groups_the_scaler_keeps_not_replicas(helm_log: Path, cluster: Any) -> None:
    # The LeaderWorkerSet renders no replicas then (templates/leaderworkerset.yaml); KEDA keeps minReplicas groups.
    cluster(group("ready", "running"))
    scaling = "replicas=3,autoscaling.enabled=true,autoscaling.prometheusAddress=http://prometheus:9090"
    out = install("--set", scaling, "--timeout", "20s")
    assert out.exit_code == 0, out.output
    assert "helm-rdma: serving: 1/1 group(s) serving" in out.stderr
    assert install("--set", "replicas=3", "--timeout", "1s").exit_code == 1  # without it, 3 groups must serve


def test_a_pod_nobody_schedules_is_named(helm_log: Path, cluster: Any) -> None:
    cluster(group("preflight", "pending"))
    out = install("--timeout", "1s")
    assert out.exit_code == 1
    assert "llama405b-vllm-rdma-0-1 is at pending (Unschedulable)" in out.output


def event(pod_name: str, reason: str, message: str, *, when: str, count: int = 1,
          kind: str = "Warning") -> dict[str, Any]:
    """A core/v1 Event about a pod, as the scheduler or the kubelet records it."""
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{pod_name}.{reason.lower()}{when[-2:]}", "namespace": "ml",
                         "creationTimestamp": when},
            "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": "ml"},
            "reason": reason, "message": message, "type": kind, "count": count, "lastTimestamp": when}


def test_a_pod_nobody_schedules_shows_its_events_not_an_empty_log(helm_log: Path, cluster: Any) -> None:
    """`kubectl describe pod` shows why a pod is Pending from its Events (FailedScheduling); so does the timeout."""
    worker = "llama405b-vllm-rdma-0-1"
    unschedulable = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are available."
    cluster([*group("preflight", "pending"),
             event(worker, "FailedScheduling", unschedulable, when="2026-01-01T00:00:02Z", count=7),
             event(worker, "Scheduled", "earlier", kind="Normal", when="2026-01-01T00:00:01Z"),
             event("llama405b-vllm-rdma-0", "Pulled", "another pod's event", kind="Normal",
                   when="2026-01-01T00:00:03Z")])
    out = install("--timeout", "1s")
    assert out.exit_code == 1
    assert (f"{worker} is at pending (Unschedulable); its events:\n  Normal Scheduled: earlier\n"
            f"  Warning FailedScheduling: {unschedulable} (x7)\nmore: kubectl -n ml describe pod {worker}") in out.output
    assert "another pod's event" not in out.output and "(empty)" not in out.output


def test_a_crashing_pod_shows_its_image_pull_events_and_its_log(helm_log: Path, cluster: Any) -> None:
    leader = "llama405b-vllm-rdma-0"
    pull = 'Failed to pull image "vllm/vllm-openai:v9": manifest unknown'
    cluster([*group("crashing", "running"), event(leader, "Failed", pull, when="2026-01-01T00:00:01Z")],
            logs={(leader, "vllm", True): b"the last words\n"})
    out = install("--timeout", "1s")
    assert out.exit_code == 1
    assert f"its events:\n  Warning Failed: {pull}\nthe last lines of its log:\nthe last words" in out.output


def test_progress_counts_every_group() -> None:
    states = group_states(group("ready", "running") + group("preflight", "pending", g=1))
    assert progress(states, wanted_groups=2, nodes=2) == (
        "1/2 group(s) serving; pods 3/4 scheduled (1 pending, 1 preflight, 1 loading, 1 ready)")


def test_a_started_sidecar_is_not_the_step_a_pod_waits_on() -> None:
    """The port guard is a restartable init container: it runs for the pod's life, and the kubelet marks it started
    once its startup probe passes (KEP-753; pod status initContainerStatuses[].started). The pod's step is the init
    container after it; a sidecar that has not started (its image does not pull) is the step."""
    guard = {"name": "port-guard", "image": "g", "restartPolicy": "Always"}
    spec = {"nodeName": "gpu-0-0", "containers": [{"name": "vllm", "image": "i"}],
            "initContainers": [guard, {"name": "download-model", "image": "i"}, {"name": "preflight", "image": "i"}]}

    def state(guard_status: dict[str, Any]) -> Any:
        return pod_state({"metadata": {"name": "llama405b-vllm-rdma-0", "labels": {
            "app.kubernetes.io/component": "leader", "leaderworkerset.sigs.k8s.io/group-index": "0"}},
            "spec": spec, "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "port-guard", **guard_status},
                {"name": "download-model", "started": True, "state": {"running": {}}},
                {"name": "preflight", "state": {"waiting": {"reason": "PodInitializing"}}}]}})

    running = state({"started": True, "state": {"running": {}}})
    assert (running.step, running.container) == ("init:download-model", "download-model")
    pulling = state({"started": False, "state": {"waiting": {"reason": "ErrImagePull"}}})
    assert (pulling.step, pulling.detail, pulling.container) == ("init:port-guard", "ErrImagePull", "port-guard")


@pytest.mark.parametrize(("command", "undo"), [("upgrade", "rollback llama405b 2"), ("install", "uninstall llama405b")])
def test_atomic_undoes_a_release_whose_groups_never_serve(helm_log: Path, cluster: Any, command: str,
                                                          undo: str) -> None:
    """helm undoes a release only when its own wait fails (pkg/action/upgrade.go failRelease, install.go), and its
    wait counts a LeaderWorkerSet as ready at once (pkg/kube/ready.go IsReady): --atomic waits as --wait does and
    undoes the release itself: a rollback to the revision deployed before (2 here, not the failed 3, as helm's own
    --atomic: pkg/action/upgrade.go failRelease), or an uninstall of what this run installed."""
    cluster(group("crashing", "running"))
    kept = helm_log.parent / "cache" / "rdma" / "ml" / "llama405b"  # the chart of the revision that ran before
    kept.mkdir(parents=True)
    (kept / "Chart.yaml").write_text("version: 0.1.0+before\n")
    out = CliRunner().invoke(main, [command, "llama405b", "--preset", "h100", "-n", "ml", "--atomic", "--timeout",
                                    "1s", "--poll-interval", "0.05", "--skip-cluster-checks"])
    assert out.exit_code == 1
    assert "helm-rdma: error: llama405b is not serving after" in out.output
    assert f"--atomic undid it: `helm {undo} --namespace ml" in out.output
    assert "--wait --timeout 1s` succeeded" in out.output
    calls = helm_log.read_text().splitlines()
    assert calls[-1].startswith(undo)
    assert (command == "upgrade") == any(c.startswith("history llama405b") for c in calls)
    # the kept chart stays what runs: the one before a rollback, none after an uninstall
    if command == "upgrade":
        assert (kept / "Chart.yaml").read_text() == "version: 0.1.0+before\n"
    else:
        assert not kept.exists()
    assert [p.name for p in kept.parent.iterdir()] == (["llama405b"] if command == "upgrade" else [])  # no staging


def test_a_terminating_leader_does_not_count_as_serving() -> None:
    """An upgrade's rolling update deletes a group's pods; until they exit, the kubelet may still report them Ready
    (the Ready condition turns False only when a probe fails or the containers stop). Such a leader is the old
    release's, not a group that serves the new one."""
    old = group("ready", "ready")
    for p in old:
        p["metadata"]["deletionTimestamp"] = "2026-12-07T05:00:00Z"
    [state] = group_states(old)
    assert not state.serving
    assert progress([state], wanted_groups=1, nodes=2) == "0/1 group(s) serving; pods 2/2 scheduled (2 terminating)"


def lws(*, generation: int, observed: int, updating: bool) -> dict[str, Any]:
    """The release's LeaderWorkerSet as its controller reports it (kubernetes-sigs/lws api/leaderworkerset/v1,
    LeaderWorkerSetStatus: observedGeneration, and the UpdateInProgress condition while groups are not yet updated)."""
    return {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
            "metadata": {"name": "llama405b-vllm-rdma", "namespace": "ml", "generation": generation,
                         "labels": {"app.kubernetes.io/instance": "llama405b"}},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": observed, "readyReplicas": 1, "replicas": 1,
                       "conditions": [{"type": "UpdateInProgress", "status": "True" if updating else "False"}]}}


@pytest.mark.parametrize(("observed", "updating", "pending"), [
    (1, False, "the LeaderWorkerSet controller has not taken in the new spec yet"),
    (2, True, "the LeaderWorkerSet is moving its groups onto the new template"),
    (2, False, None),
])
def test_ready_leaders_end_the_wait_only_once_the_lws_has_rolled_onto_the_new_spec(
        helm_log: Path, cluster: Any, observed: int, updating: bool, pending: str | None) -> None:
    """helm returns as soon as an upgrade's LeaderWorkerSet spec is stored; until its controller has taken it in and
    moved every group onto the new template, the Ready leaders are the old release's."""
    cluster([*group("ready", "ready"), lws(generation=2, observed=observed, updating=updating)])
    out = install("--timeout", "1s")
    if pending is None:
        assert out.exit_code == 0, out.output
        assert "serving: 1/1 group(s) serving" in out.stderr
    else:
        assert out.exit_code == 1
        assert "llama405b is not serving after" in out.output
        assert f": 1/1 group(s) serving; pods 2/2 scheduled (2 ready); {pending}" in out.output


def test_an_undone_install_that_provisioned_says_the_network_is_still_there(helm_log: Path, cluster: Any) -> None:
    """The uninstall deletes the network only with clusterNetwork.deleteOnUninstall (templates/job-deprovision.yaml
    renders only then); otherwise the bare-metal nodes keep billing, and the message says so."""
    cluster(group("crashing", "running"))
    network = ("clusterNetwork.provision=true,clusterNetwork.compartmentId=ocid1.compartment.oc1..c,"
               "clusterNetwork.availabilityDomain=AD-1,clusterNetwork.subnetId=ocid1.subnet.oc1..s,"
               "clusterNetwork.imageId=ocid1.image.oc1..i,"
               "clusterNetwork.image.repository=iad.ocir.io/example/helm-rdma-provisioner")
    out = CliRunner().invoke(main, ["install", "llama405b", "--preset", "h100", "-n", "ml", "--atomic", "--timeout",
                                    "1s", "--poll-interval", "0.05", "--skip-cluster-checks", "--set", network])
    assert out.exit_code == 1, out.output
    assert "--atomic undid it: `helm uninstall llama405b" in out.output
    assert "the cluster network the install provisioned is still there (clusterNetwork.deleteOnUninstall is false)" \
        in out.output


def test_atomic_undoes_an_upgrade_interrupted_while_it_waits(helm_log: Path, cluster: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """helm's own --atomic undoes on an interrupt of its wait too (pkg/action/upgrade.go, handleContext): Ctrl-C
    while helm-rdma waits for the groups rolls back the same way."""
    cluster(group("running", "running"))

    def interrupted(**_: Any) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("helm_rdma.commands.deploy.wait_until_serving", interrupted)
    out = CliRunner().invoke(main, ["upgrade", "llama405b", "--preset", "h100", "-n", "ml", "--atomic",
                                    "--skip-cluster-checks"])
    assert out.exit_code == 1, out.output
    assert "interrupted while waiting for the groups of llama405b to serve" in out.output
    assert "--atomic undid it: `helm rollback llama405b 2 --namespace ml" in out.output
