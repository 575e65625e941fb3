"""`helm-rdma verify`: helm test through a stand-in helm; each group's preflight result from its leader's log,
read with the real kubernetes client from kmock."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from helm_rdma.cli import main
from helm_rdma.commands.generate import generate
from helm_rdma.contract import PREFLIGHT_RESULT_PREFIX
from helm_rdma.datafiles import chart_dir

from .helm_stand_in import stand_in_helm
from .kmock_cluster import Cluster
from .rendering import request

HELM = """#!/bin/sh
echo "$@" >> "{log}"
case "$1" in
  get) cat "{values}" ;;
  upgrade) if [ -f "{fail}.upgrade" ]; then echo "Error: pre-upgrade hooks failed: job failed" >&2; exit 1; fi ;;
  test) if [ -f "{fail}" ]; then echo "Error: 1 error occurred: pod llama405b-vllm-rdma-test-api failed" >&2; exit 1; fi
        echo "NAME: llama405b"; echo "Phase: Succeeded" ;;
esac
"""


def result(passed: bool = True, busbw: float = 452.7, transport: str = "IB") -> dict[str, Any]:
    return {"passed": passed, "reason": "bus bandwidth 452.7 GB/s >= 440 GB/s over IB" if passed else
            "NCCL used Socket instead of NET/IB: RDMA is not in use", "ranks": 16, "nodes": 2, "backend": "nccl",
            "transport": transport, "gdrdma": transport == "IB", "devices": [], "nccl_version": "2.23.4",
            "busbw_gbps": busbw, "threshold_gbps": 440, "expected_gbps": 470, "results": [],
            "time": "2026-11-27T01:00:00Z"}


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    chart = generate(request(), output=tmp_path / "chart").path
    values = tmp_path / "values.json"
    values.write_text(json.dumps(yaml.safe_load((chart / "values.yaml").read_text())))
    paths = {"log": tmp_path / "helm.log", "values": values, "fail": tmp_path / "fail"}
    stand_in_helm(tmp_path, monkeypatch, HELM.format(**paths))
    return paths


def pod(name: str, *, group: int, leader: bool, uid: str, preflight: str = "done") -> dict[str, Any]:
    """A pod of a LeaderWorkerSet group, its preflight init container "done", "running" or "failed"."""
    state = {"done": {"terminated": {"exitCode": 0, "reason": "Completed"}}, "running": {"running": {}},
             "failed": {"terminated": {"exitCode": 1, "reason": "Error"}}}[preflight]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml", "uid": uid,
                     "labels": {"app.kubernetes.io/instance": "llama405b",
                                "app.kubernetes.io/component": "leader" if leader else "worker",
                                "leaderworkerset.sigs.k8s.io/group-index": str(group)}},
        "spec": {"nodeName": f"gpu-{group}-{int(not leader)}", "containers": [{"name": "vllm", "image": "i"}],
                 "initContainers": [{"name": "preflight", "image": "i"}]},
        "status": {"phase": "Running" if preflight == "done" else "Pending",
                   "initContainerStatuses": [{"name": "preflight", "state": state, "restartCount": 0, "image": "i",
                                              "imageID": "", "ready": preflight == "done"}],
                   "conditions": [{"type": "Ready", "status": "True" if preflight == "done" else "False"}]},
    }


def group_pods(groups: int = 1, uid: str = "a", preflight: str = "done") -> list[dict[str, Any]]:
    return [p for g in range(groups) for p in (
        pod(f"llama405b-vllm-rdma-{g}", group=g, leader=True, uid=f"{uid}{g}0", preflight=preflight),
        pod(f"llama405b-vllm-rdma-{g}-1", group=g, leader=False, uid=f"{uid}{g}1", preflight=preflight))]


def preflight_log(data: dict[str, Any]) -> bytes:
    return ("helm-rdma: preflight: group 0, node 0 of 2, 8 GPUs each\n"
            "   bytes  time (us)  algbw (GB/s)  busbw (GB/s)\n"
            f"helm-rdma preflight: {'PASS' if data['passed'] else 'FAIL'}: {data['reason']}\n"
            f"{PREFLIGHT_RESULT_PREFIX}{json.dumps(data)}\n").encode()


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Start kmock with a release's pods and their leaders' preflight logs."""

    def start(pods: list[dict[str, Any]], logs: dict[tuple[str, str, bool], bytes]) -> Cluster:
        c = Cluster(pods, tmp_path / "kubeconfig", logs=logs)
        c.__enter__()
        monkeypatch.setenv("KUBECONFIG", str(c.kubeconfig))
        started.append(c)
        return c

    started: list[Cluster] = []
    yield start
    for c in started:
        c.__exit__(None, None, None)


def verify(*args: str, **kwargs: Any) -> Any:
    return CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml", *args], **kwargs)


def test_a_healthy_release_passes_with_one_summary(setup: dict[str, Path], kube: Any) -> None:
    kube(group_pods(), {("llama405b-vllm-rdma-0", "preflight", False): preflight_log(result())})
    out = verify()
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("      release    llama405b: 2 x BM.GPU.H100.8")
    assert "PASS  helm test  Phase: Succeeded" in out.output
    assert "PASS  RDMA NICs  16 per node expected (=mlx5_0,mlx5_1,mlx5_3" in out.output
    assert ("PASS  group 0    llama405b-vllm-rdma-0: 452.7 GB/s all_reduce bus bandwidth over IB with GPUDirect "
            "RDMA (floor 440, published 470, line rate 400 GB/s per node); NCCL 2.23.4, 16 ranks") in out.output
    calls = setup["log"].read_text().splitlines()
    kubeconfig = str(Path(setup["log"]).parent / "kubeconfig")
    assert calls[0] == f"status llama405b --namespace ml --kubeconfig {kubeconfig}"  # a Helm release: helm's way
    assert calls[1] == f"get values llama405b --all --output json --namespace ml --kubeconfig {kubeconfig}"
    assert calls[2].startswith("test llama405b --namespace ml") and calls[2].endswith("--timeout 15m")


def test_every_group_is_judged_by_its_own_preflight(setup: dict[str, Path], kube: Any) -> None:
    kube(group_pods(groups=2), {
        ("llama405b-vllm-rdma-0", "preflight", False): preflight_log(result()),
        ("llama405b-vllm-rdma-1", "preflight", False): preflight_log(result(passed=False, busbw=23.0, transport="Socket")),
    })
    out = verify()
    assert out.exit_code == 1
    assert "PASS  group 0    llama405b-vllm-rdma-0: 452.7 GB/s" in out.output
    assert ("FAIL  group 1    NCCL used Socket instead of NET/IB: RDMA is not in use: llama405b-vllm-rdma-1: "
            "23.0 GB/s") in out.output
    as_json = verify("-o", "json")  # what the field checklist asks to send back
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["passed"] is False and set(report["checks"][0]) == {"name", "passed", "detail"}
    assert [(c["name"], c["passed"]) for c in report["checks"]][-3:-1] == [("group 0", True), ("group 1", False)]


def test_a_failed_preflight_is_read_from_the_previous_container(setup: dict[str, Path], kube: Any) -> None:
    pods = group_pods(preflight="failed")
    kube(pods, {("llama405b-vllm-rdma-0", "preflight", True): preflight_log(result(passed=False, busbw=12.0))})
    out = verify()
    assert out.exit_code == 1 and "FAIL  group 0" in out.output and "12.0 GB/s" in out.output


def test_a_failed_helm_test_fails_verify(setup: dict[str, Path], kube: Any) -> None:
    kube(group_pods(), {("llama405b-vllm-rdma-0", "preflight", False): preflight_log(result())})
    setup["fail"].write_text("")
    out = verify()
    assert out.exit_code == 1
    assert "FAIL  helm test  Error: 1 error occurred: pod llama405b-vllm-rdma-test-api failed" in out.output


def test_a_missing_preflight_result_fails_verify(setup: dict[str, Path], kube: Any) -> None:
    kube(group_pods(), {("llama405b-vllm-rdma-0", "preflight", False): b"helm-rdma: error: preflight: no result within 1800s\n"})
    out = verify()
    assert out.exit_code == 1
    assert ("FAIL  group 0    llama405b-vllm-rdma-0: no preflight result in its log (kubectl logs "
            "llama405b-vllm-rdma-0 -c preflight)") in out.output


def test_a_preflight_still_running_is_not_judged(setup: dict[str, Path], kube: Any) -> None:
    kube(group_pods(preflight="running"), {})
    out = verify()
    assert "      group 0    llama405b-vllm-rdma-0: the preflight has not finished yet (init:preflight)" in out.output


def test_a_port_guard_not_started_yet_is_waited_for_not_failed(setup: dict[str, Path], kube: Any) -> None:
    """The port guard is the pod's first init container and a sidecar: until its startup probe passes (an image still
    pulling, say) nothing after it ran, and the preflight has no log: that is waiting, not a failed preflight."""
    pods = group_pods(preflight="running")
    for p in pods:
        p["spec"]["initContainers"].insert(0, {"name": "port-guard", "image": "g", "restartPolicy": "Always"})
        p["status"]["initContainerStatuses"] = [
            {"name": "port-guard", "state": {"waiting": {"reason": "ErrImagePull"}}, "restartCount": 0, "image": "g",
             "imageID": "", "ready": False, "started": False},
            {"name": "preflight", "state": {"waiting": {"reason": "PodInitializing"}}, "restartCount": 0,
             "image": "i", "imageID": "", "ready": False}]
    kube(pods, {})
    out = verify()
    assert "the preflight has not finished yet (init:port-guard)" in out.output
    assert "failed before measuring" not in out.output


def test_sriov_mode_says_the_preflight_proves_the_vfs(setup: dict[str, Path], kube: Any) -> None:
    values = json.loads(setup["values"].read_text())
    values["rdma"]["mode"] = "sriov"
    setup["values"].write_text(json.dumps(values))
    kube(group_pods(), {("llama405b-vllm-rdma-0", "preflight", False): preflight_log(result())})
    out = verify()
    assert out.exit_code == 0, out.output
    assert "      RDMA NICs  SR-IOV: the VFs live in the serving pods; each group's preflight proves them" in out.output


def test_nccl_restarts_every_group_and_reads_the_new_results(setup: dict[str, Path], kube: Any) -> None:
    """--nccl deletes the serving pods; the controller (here: this test) brings new ones whose preflight ran."""
    old_log = preflight_log(result(busbw=441.0))
    cluster = kube(group_pods(uid="old"), {("llama405b-vllm-rdma-0", "preflight", False): old_log})
    done = threading.Event()

    def controller() -> None:
        deadline = time.monotonic() + 30
        while cluster.names("v1/pods", "ml") and time.monotonic() < deadline:
            time.sleep(0.05)
        cluster.logs[("llama405b-vllm-rdma-0", "preflight", False)] = preflight_log(result(busbw=466.0))
        for p in group_pods(uid="new"):
            cluster.put(p)
        done.set()

    threading.Thread(target=controller, daemon=True).start()
    out = verify("--nccl", "--yes", "--poll-interval", "0.1")
    assert done.is_set()
    assert out.exit_code == 0, out.output
    assert "every group restarts (its pods are deleted and come back)" in out.output
    assert "PASS  re-run     2 pod(s) restarted; the preflight ran again in 1 group(s)" in out.output
    assert "466.0 GB/s" in out.output and "441.0" not in out.output
    assert not any(line.startswith("upgrade") for line in setup["log"].read_text().splitlines())


def test_nccl_asks_first_and_declining_changes_nothing(setup: dict[str, Path], kube: Any) -> None:
    cluster = kube(group_pods(), {("llama405b-vllm-rdma-0", "preflight", False): preflight_log(result())})
    out = verify("--nccl", input="n\n")
    assert out.exit_code == 0, out.output
    assert "declined: the last preflight results are shown" in out.output
    assert cluster.names("v1/pods", "ml") == ["llama405b-vllm-rdma-0", "llama405b-vllm-rdma-0-1"]


def recorded_event(summary: dict[str, Any], pod: str, release: str = "llama405b") -> dict[str, Any]:
    """The Event the preflight's leader posts (files/preflight_event.py, built by the script itself)."""
    spec = importlib.util.spec_from_file_location("preflight_event", chart_dir() / "files" / "preflight_event.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    event: dict[str, Any] = script.event(summary, {
        "POD_NAME": pod, "POD_NAMESPACE": "ml", "POD_UID": "gone",
        "HELM_RDMA_EVENT_LABELS": json.dumps({"app.kubernetes.io/instance": release})})
    return event


def test_the_figures_recorded_as_events_outlive_a_recreated_group(setup: dict[str, Path], kube: Any) -> None:
    """Under LeaderWorkerSet a failed preflight recreates the group: the new pods are measuring again and the old
    ones, with their logs and termination messages, are gone; the Events the leaders recorded remain."""
    failed = {"verdict": "FAIL", "passed": False, "busbw_gbps": 23.0, "threshold_gbps": 440, "transport": "Socket",
              "nodes": 2, "ranks": 16, "reason": "NCCL used Socket", "time": "2026-12-06T20:00:00Z"}
    other = recorded_event({**failed, "busbw_gbps": 999.0}, "other-0", release="other")
    kube(group_pods(preflight="running") + [recorded_event(failed, "llama405b-vllm-rdma-0"), other], {})
    out = verify("-o", "json")
    report = json.loads(out.stdout)
    [recorded] = [c for c in report["checks"] if c["name"] == "recorded"]
    assert recorded["passed"] is None
    assert recorded["detail"] == ("2026-12-06T20:00:00Z llama405b-vllm-rdma-0: FAIL 23.0 GB/s (floor 440) over "
                                  "Socket")
