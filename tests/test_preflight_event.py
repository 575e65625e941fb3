"""The preflight's figure outlives the group: the leader records its summary as a Kubernetes Event on its pod
(files/preflight_event.py), because under LeaderWorkerSet a failed preflight recreates the group and the pods, with
their termination messages, are deleted (kubernetes-sigs/lws, RecreateGroupOnPodRestart; FACTS.md). The API server
stand-in is kmock over HTTPS on 127.0.0.1 with a self-signed CA, reached as a pod reaches the API server
(KUBERNETES_SERVICE_HOST/PORT, the token and ca.crt of the ServiceAccount's directory:
kubernetes.io/docs/tasks/run-application/access-api-from-pod)."""

# ruff: noqa: F811  (the fixture imported from test_preflight_entrypoint is redefined as a test parameter)
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from helm_rdma import contract
from helm_rdma.datafiles import chart_dir

from .kmock_cluster import Cluster, self_signed
from .rendering import of_kind, render, serving_pod_specs
from .test_preflight_entrypoint import bin_dir, free_port, pod  # noqa: F401  (bin_dir: a fixture)

FILES = chart_dir() / "files"
ENTRYPOINT = FILES / "entrypoint.sh"
SCRIPT = FILES / "preflight_event.py"
TOKEN = "the-pods-bound-token"
LABELS = {"app.kubernetes.io/name": "vllm-rdma", "app.kubernetes.io/instance": "llama405b"}


def module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("preflight_event", SCRIPT)
    assert spec and spec.loader
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def preflight_container(spec: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in spec["initContainers"] if c["name"] == contract.PREFLIGHT_CONTAINER)


def chart_env(uid: str) -> dict[str, str]:
    """The preflight container's environment for the event, as the chart renders it: plain values as they are, the
    downward API's fields filled in as the kubelet would for pod llama405b-vllm-rdma-0 in namespace ml."""
    fields = {"metadata.name": "llama405b-vllm-rdma-0", "metadata.namespace": "ml", "metadata.uid": uid,
              "spec.nodeName": "gpu-0", "status.podIP": "127.0.0.1"}
    env = {}
    for e in preflight_container(serving_pod_specs(render())[0])["env"]:
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif "fieldPath" in e.get("valueFrom", {}).get("fieldRef", {}):
            path = e["valueFrom"]["fieldRef"]["fieldPath"]
            if path in fields:
                env[e["name"]] = fields[path]
    return {k: env[k] for k in ("HELM_RDMA_PREFLIGHT_EVENTS", "HELM_RDMA_EVENT_LABELS", "POD_NAME", "POD_NAMESPACE",
                                "POD_UID", "NODE_NAME")}


def account(tmp: Path, cluster: Cluster) -> dict[str, str]:
    """The in-cluster settings of a pod: the service's address, and the token and CA in the account's directory."""
    directory = tmp / "serviceaccount"
    directory.mkdir(exist_ok=True)
    (directory / "token").write_text(TOKEN + "\n")
    (directory / "ca.crt").write_bytes((tmp / "ca.crt").read_bytes())
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(cluster.port),
            "HELM_RDMA_ACCOUNT_DIR": str(directory)}


def events(cluster: Cluster) -> list[dict[str, Any]]:
    return [cluster.get("v1/events", "ml", n) for n in cluster.names("v1/events", "ml")]


def test_a_failed_measurement_is_recorded_by_the_leader_as_a_warning_event_on_its_pod(bin_dir: Path,
                                                                                      tmp_path: Path) -> None:
    with Cluster([], tmp_path / "kubeconfig", tls=tmp_path) as cluster:
        port, settings = free_port(), account(tmp_path, cluster)
        # gloo is no RDMA transport: --require-ib fails on every rank, as NET/Socket would
        leader = pod("leader", 0, port, bin_dir, tmp_path, "--require-ib", **chart_env("uid-0"), **settings)
        worker = pod("worker", 1, port, bin_dir, tmp_path, "--require-ib",
                     **{**chart_env("uid-1"), "POD_NAME": "llama405b-vllm-rdma-0-1"}, **settings)
        _, err = leader.communicate(timeout=180)
        worker.communicate(timeout=60)
        # the measured failure passes on to the preflight-verdict container, as without the Event
        assert leader.returncode == 0 and worker.returncode == 0, err
        assert "helm-rdma: preflight: recorded as Event llama405b-vllm-rdma-0." in err
        [event] = events(cluster)  # the leader's only: one Event per group start
        posts = [r for r in cluster.requests() if str(r.method).endswith("POST")]
    summary = json.loads((tmp_path / "logs-0" / "termination-log").read_text())
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "llama405b-vllm-rdma-0",
                                       "namespace": "ml", "uid": "uid-0",
                                       "fieldPath": "spec.initContainers{preflight}"}
    assert (event["type"], event["reason"]) == ("Warning", "PreflightFailed")
    assert event["message"].startswith("FAIL: group 0, 2 node(s), 2 ranks: NCCL all-reduce bus bandwidth ")
    assert f"{summary['busbw_gbps']:.1f} GB/s" in event["message"] and "instead of NET/IB" in event["message"]
    assert event["metadata"]["labels"] == LABELS
    assert json.loads(event["metadata"]["annotations"][contract.PREFLIGHT_EVENT_ANNOTATION]) == summary
    assert event["source"] == {"component": "helm-rdma-preflight", "host": "gpu-0"}
    [post] = posts
    assert str(post.url).startswith("https://127.0.0.1:") and post.url.path == "/api/v1/namespaces/ml/events"
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_passing_measurement_is_a_normal_event(tmp_path: Path) -> None:
    summary = tmp_path / "summary"
    summary.write_text(json.dumps({"verdict": "PASS", "passed": True, "busbw_gbps": 452.7, "threshold_gbps": 440,
                                   "transport": "IB", "nodes": 2, "ranks": 16, "reason": "452.7 >= 440",
                                   "time": "2026-12-06T20:00:00Z"}))
    with Cluster([], tmp_path / "kubeconfig", tls=tmp_path) as cluster:
        run = subprocess.run([sys.executable, str(SCRIPT), str(summary)], capture_output=True, text=True, timeout=60,
                             env={**os.environ, **chart_env("uid-0"), **account(tmp_path, cluster)})
        [event] = events(cluster)
    assert run.returncode == 0, run.stderr
    assert (event["type"], event["reason"]) == ("Normal", "PreflightPassed")
    assert "452.7 GB/s, threshold 440.0 GB/s, transport IB" in event["message"]


@pytest.mark.parametrize("broken", ["forbidden", "no server", "untrusted", "no token"])
def test_an_event_that_cannot_be_recorded_is_one_line_and_never_the_verdict(tmp_path: Path, broken: str) -> None:
    summary = tmp_path / "summary"
    summary.write_text(json.dumps({"verdict": "FAIL", "busbw_gbps": 3.0, "threshold_gbps": 440}))
    forbidden = ("v1/events",) if broken == "forbidden" else ()
    with Cluster([], tmp_path / "kubeconfig", tls=tmp_path, forbidden=forbidden) as cluster:
        settings = account(tmp_path, cluster)
        if broken == "no server":
            settings["KUBERNETES_SERVICE_PORT"] = str(free_port())
        elif broken == "untrusted":  # a CA that did not sign the server's certificate
            (tmp_path / "other").mkdir()
            (Path(settings["HELM_RDMA_ACCOUNT_DIR"]) / "ca.crt").write_bytes(
                self_signed(tmp_path / "other")[0].read_bytes())
        elif broken == "no token":
            (Path(settings["HELM_RDMA_ACCOUNT_DIR"]) / "token").unlink()
        run = subprocess.run([sys.executable, str(SCRIPT), str(summary)], capture_output=True, text=True, timeout=60,
                             env={**os.environ, **chart_env("uid-0"), **settings})
        if broken != "forbidden":  # kmock keeps a created object even when a reaction answers 403
            assert events(cluster) == []
    assert run.returncode == 0
    [line] = run.stderr.splitlines()
    assert line.startswith("helm-rdma: preflight: the result was not recorded as an Event (")
    assert line.endswith("it stays in this container's termination message")
    if broken == "forbidden":
        assert "(HTTP 403: " in line and "is forbidden" in line


def test_only_the_preflight_container_holds_a_token_and_it_may_only_create_events() -> None:
    documents = render()
    spec = serving_pod_specs(documents)[0]
    [account_] = of_kind(documents, "ServiceAccount")
    assert account_["automountServiceAccountToken"] is False and spec["automountServiceAccountToken"] is False
    mount = "/var/run/secrets/kubernetes.io/serviceaccount"
    holders = [c["name"] for c in spec["initContainers"] + spec["containers"]
               if any(m["mountPath"] == mount for m in c.get("volumeMounts", []))]
    assert holders == [contract.PREFLIGHT_CONTAINER]
    # Only the leader posts the Event (entrypoint.sh): a worker's pod holds no token at all.
    worker = serving_pod_specs(documents)[1]
    assert not [m for c in worker["initContainers"] + worker["containers"] for m in c.get("volumeMounts", [])
                if m["mountPath"] == mount]
    assert not [v for v in worker["volumes"] if "projected" in v]
    assert "HELM_RDMA_PREFLIGHT_EVENTS" not in {e["name"] for e in preflight_container(worker)["env"]}
    volume = next(m["name"] for m in preflight_container(spec)["volumeMounts"] if m["mountPath"] == mount)
    sources = next(v for v in spec["volumes"] if v["name"] == volume)["projected"]["sources"]
    # what the ServiceAccount admission plugin mounts (kubernetes plugin/pkg/admission/serviceaccount/admission.go,
    # TokenVolumeSource): a bound token, kube-root-ca.crt's ca.crt, the namespace
    assert sources[0]["serviceAccountToken"]["path"] == "token"
    assert sources[1]["configMap"] == {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    [role], [binding] = of_kind(documents, "Role"), of_kind(documents, "RoleBinding")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": spec["serviceAccountName"],
                                    "namespace": account_["metadata"]["namespace"]}]
    assert json.loads(chart_env("u")["HELM_RDMA_EVENT_LABELS"]) == LABELS


def test_without_the_init_preflight_no_token_and_no_role() -> None:
    for documents in (render("verify.preflight.enabled=false"), render("workload.kind=StatefulSet")):
        assert of_kind(documents, "Role") == [] and of_kind(documents, "RoleBinding") == []
        for spec in serving_pod_specs(documents):
            assert not any(m["mountPath"].startswith("/var/run/secrets") for c in
                           spec.get("initContainers", []) + spec["containers"] for m in c.get("volumeMounts", []))


def test_the_script_and_the_contract_name_one_annotation() -> None:
    assert module().SUMMARY_ANNOTATION == contract.PREFLIGHT_EVENT_ANNOTATION
