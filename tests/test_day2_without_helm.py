"""status and verify on a release with no Helm release (Argo CD applied what `helm template` rendered): read from
the release's ConfigMap and workloads with the real kubernetes client from kmock, the tests run as plain objects.

A thread plays the Job controller and the kubelet: it waits for the test objects verify creates, gives the Job a pod
with the Job's label and a log, and marks them finished, as Kubernetes would.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helm_rdma.cli import main
from helm_rdma.contract import PREFLIGHT_RESULT_PREFIX

from .helm_stand_in import recording_helm
from .kmock_cluster import Cluster
from .rendering import PROVISION, render

NO_RELEASE_HELM = """#!/bin/sh
echo "$@" >> "{log}"
echo "Error: release: not found" >&2
exit 1
"""


@pytest.fixture
def no_helm_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return recording_helm(tmp_path, monkeypatch, NO_RELEASE_HELM)


def applied(*sets: str) -> list[dict[str, Any]]:
    """What Argo CD applies: the rendered objects without helm hooks (it skips test hooks)."""
    docs = render(*sets, namespace="ml")
    return [json.loads(json.dumps(d)) for d in docs if "helm.sh/hook" not in (d["metadata"].get("annotations") or {})]


def serving_pods(ready: bool = True) -> list[dict[str, Any]]:
    def pod(name: str, leader: bool) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "ml", "uid": name,
                             "labels": {"app.kubernetes.io/instance": "llama405b",
                                        "app.kubernetes.io/component": "leader" if leader else "worker",
                                        "leaderworkerset.sigs.k8s.io/group-index": "0"}},
                "spec": {"nodeName": f"gpu-{int(not leader)}", "containers": [{"name": "vllm", "image": "i"}],
                         "initContainers": [{"name": "preflight", "image": "i"}]},
                "status": {"phase": "Running",
                           "initContainerStatuses": [{"name": "preflight", "restartCount": 0, "image": "i",
                                                      "imageID": "", "ready": True,
                                                      "state": {"terminated": {"exitCode": 0}}}],
                           "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    return [pod("llama405b-vllm-rdma-0", True), pod("llama405b-vllm-rdma-0-1", False)]


PREFLIGHT = {"passed": True, "reason": "ok", "ranks": 16, "transport": "IB", "gdrdma": True, "nccl_version": "2.23.4",
             "busbw_gbps": 451.0, "threshold_gbps": 440, "time": "2026-11-27T01:00:00Z"}


@contextlib.contextmanager
def argo_applied(docs: list[dict[str, Any]], kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A cluster holding what Argo CD applied of ``docs`` (the release ConfigMap, the workload) and serving pods."""
    objects = [d for d in docs if d["kind"] in ("ConfigMap", "LeaderWorkerSet")] + serving_pods()
    for d in objects:
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-release"):
            d["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id":
                                            "llama405b:/ConfigMap:ml/llama405b-vllm-rdma-release"}
        if d["kind"] == "LeaderWorkerSet":
            d["status"] = {"readyReplicas": 1, "updatedReplicas": 1, "replicas": 1}
    logs = {("llama405b-vllm-rdma-0", "preflight", False):
            f"{PREFLIGHT_RESULT_PREFIX}{json.dumps(PREFLIGHT)}\n".encode()}
    with Cluster(objects, kubeconfig, logs=logs) as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        yield cluster


@pytest.fixture
def argo_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    with argo_applied(applied(), tmp_path / "kubeconfig", monkeypatch) as cluster:
        yield cluster


def kubernetes_runs_the_tests(cluster: Cluster, *, rdma_passes: bool = True) -> threading.Thread:
    """Finish each test Job verify creates: the RDMA check with one pod per node, the API check with one, and logs."""
    def run() -> None:
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:
            for name in cluster.names("batch/v1/jobs", "ml"):
                if name in seen:
                    continue
                job = cluster.get("batch/v1/jobs", "ml", name)
                api = name.endswith("-test-api")
                passes = api or rdma_passes
                for i in range(1 if api else 2):
                    pod = f"{name}-{i}"
                    if api:
                        container, text = "smoke", b"helm-rdma test: llama405b is served and answered ' fast'\n"
                    else:
                        line = (f"helm-rdma test: gpu-{i}: all 16 RDMA NICs ACTIVE" if rdma_passes else
                                f"helm-rdma test: gpu-{i}: 2 of 16 RDMA NICs missing or not ACTIVE")
                        container, text = "check", f"gpu-{i} mlx5_0 ACTIVE\n{line}\n".encode()
                    cluster.logs[(pod, container, False)] = text
                    cluster.put({"apiVersion": "v1", "kind": "Pod",
                                 "metadata": {"name": pod, "namespace": "ml",
                                              "labels": {"batch.kubernetes.io/job-name": name}},
                                 "spec": {"containers": [{"name": container, "image": "i"}]},
                                 "status": {"phase": "Succeeded" if passes else "Failed"}})
                job["status"] = ({"succeeded": 1 if api else 2, "conditions": [{"type": "Complete", "status": "True"}]}
                                 if passes else
                                 {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]})
                cluster.put(job)
                seen.add(name)
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_status_without_a_helm_release_reads_the_release_configmap_and_workloads(no_helm_release: Path,
                                                                                 argo_cluster: Cluster) -> None:
    out = CliRunner().invoke(main, ["status", "llama405b", "-n", "ml"])
    assert out.exit_code == 0, out.output
    assert "STATUS: no Helm release; read from the cluster (Argo CD (llama405b:/ConfigMap:ml/" in out.output
    assert "CHART VERSION: llama405b-0.1.0+" in out.output and "APP VERSION: v0.33.0" in out.output
    assert "LeaderWorkerSet llama405b-vllm-rdma: 1/1 ready, 1 updated" in out.output
    assert "group 0: 2/2 pods ready, leader ready" in out.output
    data = json.loads(CliRunner().invoke(main, ["status", "llama405b", "-n", "ml", "-o", "json"]).output)
    assert data["source"] == "cluster" and data["helmStatus"] is None and data["serving"] is True
    assert data["chart"].startswith("llama405b-0.1.0+") and data["groups"][0]["ready"] == 2
    assert data["workloads"] == [{"kind": "LeaderWorkerSet", "name": "llama405b-vllm-rdma", "replicas": 1,
                                  "ready": 1, "updated": 1}]


def test_verify_without_a_helm_release_runs_the_charts_tests_as_plain_objects(no_helm_release: Path,
                                                                             argo_cluster: Cluster) -> None:
    kubernetes_runs_the_tests(argo_cluster)
    out = CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml", "--poll-interval", "0.05", "-o", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    checks = {c["name"]: c for c in data["checks"]}
    assert data["source"] == "cluster" and data["passed"] is True
    assert "no Helm release: read from ConfigMap llama405b-vllm-rdma-release" in checks["release"]["detail"]
    assert checks["test-rdma"] == {"name": "test-rdma", "passed": True, "detail": "Job llama405b-vllm-rdma-test-rdma: "
                                   "gpu-0: all 16 RDMA NICs ACTIVE (and 1 more pod(s))"}
    assert checks["test-api"]["passed"] and "llama405b is served and answered" in checks["test-api"]["detail"]
    assert checks["RDMA NICs"]["passed"] is True and "checked ACTIVE by a test Job" in checks["RDMA NICs"]["detail"]
    assert checks["group 0"]["passed"] is True and "451.0 GB/s" in checks["group 0"]["detail"]
    # the test objects are gone, as helm test's hook-delete would leave them replaced; nothing else was touched
    assert argo_cluster.names("batch/v1/jobs", "ml") == []
    # (their pods go with them: verify deletes with propagationPolicy Background; kmock has no garbage collector)
    assert {"llama405b-vllm-rdma-0", "llama405b-vllm-rdma-0-1"} <= set(argo_cluster.names("v1/pods", "ml"))
    assert [line.split()[0] for line in no_helm_release.read_text().splitlines()] == ["status"]


def test_the_test_objects_are_the_charts_own_without_hook_annotations(no_helm_release: Path,
                                                                     argo_cluster: Cluster) -> None:
    from helm_rdma.cluster.release import parse_release
    from helm_rdma.cluster.testrun import plain_object

    [cm] = [d for d in applied() if d["metadata"]["name"].endswith("-release")]
    found = parse_release(cm)
    hooks = {f"{d['kind']}/{d['metadata']['name']}": d for d in render(namespace="ml")
             if (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"}
    assert [f"{t['kind']}/{t['metadata']['name']}" for t in found.tests] == [  # in hook-weight order
        "Job/llama405b-vllm-rdma-test-rdma", "Job/llama405b-vllm-rdma-test-api"] == sorted(hooks, reverse=True)
    for test in found.tests:
        plain = plain_object(test)
        assert not any(k.startswith("helm.sh/hook") for k in (plain["metadata"].get("annotations") or {}))
        assert plain["spec"] == hooks[f"{test['kind']}/{test['metadata']['name']}"]["spec"]
    assert found.values["nccl"]["settings"]["NCCL_IB_HCA"].startswith("=mlx5_0,")


def test_a_failing_rdma_test_job_fails_verify_with_its_pods_line(no_helm_release: Path,
                                                                 argo_cluster: Cluster) -> None:
    kubernetes_runs_the_tests(argo_cluster, rdma_passes=False)
    out = CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml", "--poll-interval", "0.05"])
    assert out.exit_code == 1, out.output
    assert "FAIL  test-rdma  Job llama405b-vllm-rdma-test-rdma: gpu-0: 2 of 16 RDMA NICs missing" in out.output
    assert "FAIL  RDMA NICs" in out.output and "PASS  test-api" in out.output


def test_a_test_that_never_finishes_fails_after_the_timeout(no_helm_release: Path, argo_cluster: Cluster) -> None:
    out = CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml", "--timeout", "1s", "--poll-interval", "0.05"])
    assert out.exit_code == 1
    assert "FAIL  test-rdma  Job llama405b-vllm-rdma-test-rdma: did not finish within 1s (0/2 pods succeeded" in out.output
    assert argo_cluster.names("batch/v1/jobs", "ml") == []


def test_neither_a_helm_release_nor_its_configmap_is_exit_1_naming_both(no_helm_release: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with Cluster([], tmp_path / "kubeconfig") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        for command in ("status", "verify"):
            out = CliRunner().invoke(main, [command, "llama405b", "-n", "ml"])
            assert out.exit_code == 1
            assert ('no release "llama405b" in namespace ml: helm knows none, and no ConfigMap labelled '
                    "app.kubernetes.io/instance=llama405b,app.kubernetes.io/component=release") in out.output


def test_doctor_prints_json_with_o_json() -> None:
    out = CliRunner().invoke(main, ["doctor", "llama405b", "-p", "h100", "--set", "nccl.settings.NCCL_TIMEOUT=5",
                                    "-o", "json"])
    assert out.exit_code == 1
    data = json.loads(out.output)
    assert data["summary"]["errors"] >= 1 and data["summary"]["passed"] is False
    assert {"severity": "error", "key": "nccl.settings.NCCL_TIMEOUT"}.items() <= data["values"][0].items()


# What a user may put in values that carries a credential: a cloud-init of their own (tokens, passwords), an Object
# Storage pre-authenticated request URL as the node package repository (the URL is the credential: OCI docs, "Using
# Pre-Authenticated Requests"), and the nodes' SSH keys. The namespace's `view` role reads ConfigMaps, pods and Jobs
# but not Secrets (kubernetes.io docs, "Using RBAC Authorization", User-facing roles: "It does not allow viewing
# Secrets"), so none of these may reach an object other than a Secret.
CREDENTIALS = {
    "clusterNetwork.oke.cloudInit": "#cloud-config runcmd: [registry-login --token tok-cloudinit-4f1c9a]",
    "clusterNetwork.oke.nodePackageRepository":
        "https://objectstorage.us-ashburn-1.oraclecloud.com/p/par-secret-9b2e7d/n/ns/b/repo/o/ubuntu-{codename}",
    "clusterNetwork.sshAuthorizedKeys": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIsshkey7e3f me@laptop",
}
TELLTALES = ("tok-cloudinit-4f1c9a", "par-secret-9b2e7d", "AAAAC3NzaC1lZDI1NTE5AAAAIsshkey7e3f")


def test_values_that_carry_credentials_reach_only_the_provisioners_secret_and_day2_still_reads_the_configmap(
        no_helm_release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(*PROVISION, *(f"{key}={value}" for key, value in CREDENTIALS.items()), namespace="ml")
    for doc in docs:
        if doc["kind"] != "Secret":
            text = json.dumps(doc)
            assert not [t for t in TELLTALES if t in text], f"{doc['kind']}/{doc['metadata']['name']}"
    # the provisioner still gets them, from its Secret (the volume it mounts at /etc/helm-rdma)
    [secret] = [d for d in docs if d["kind"] == "Secret"]
    held = json.loads(base64.b64decode(secret["data"]["values.json"]))
    assert held["clusterNetwork"]["oke"]["cloudInit"] == CREDENTIALS["clusterNetwork.oke.cloudInit"]
    assert held["clusterNetwork"]["oke"]["nodePackageRepository"] == CREDENTIALS[
        "clusterNetwork.oke.nodePackageRepository"]
    assert held["clusterNetwork"]["sshAuthorizedKeys"] == CREDENTIALS["clusterNetwork.sshAuthorizedKeys"]
    [job] = [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "llama405b-vllm-rdma-provision"]
    [volume] = [v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "values"]
    assert volume == {"name": "values", "secret": {"secretName": secret["metadata"]["name"]}}
    # the release ConfigMap says which keys it withholds, and keeps everything else
    [cm] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-release")]
    assert cm["data"]["valuesLeftOut"].split(",") == list(CREDENTIALS)
    kept = json.loads(cm["data"]["values.json"])
    assert kept["clusterNetwork"]["compartmentId"] == "ocid1.compartment.oc1..c" and kept["nodes"] == 2
    assert "cloudInit" not in kept["clusterNetwork"]["oke"] and "sshAuthorizedKeys" not in kept["clusterNetwork"]

    # status and verify without helm read that ConfigMap as before
    applied_docs = [json.loads(json.dumps(d)) for d in docs
                    if "helm.sh/hook" not in (d["metadata"].get("annotations") or {})]
    with argo_applied(applied_docs, tmp_path / "kubeconfig", monkeypatch) as cluster:
        out = CliRunner().invoke(main, ["status", "llama405b", "-n", "ml"])
        assert out.exit_code == 0, out.output
        assert "group 0: 2/2 pods ready, leader ready" in out.output
        kubernetes_runs_the_tests(cluster)
        out = CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml", "--poll-interval", "0.05", "-o", "json"])
        assert out.exit_code == 0, out.output
        checks = {c["name"]: c for c in json.loads(out.output)["checks"]}
        assert checks["release"]["detail"].startswith("llama405b: 2 x BM.GPU.H100.8 (2 per group, 1 group(s)); "
                                                      "no Helm release: read from ConfigMap")
        assert checks["test-rdma"]["passed"] and checks["RDMA NICs"]["passed"] and checks["group 0"]["passed"]
