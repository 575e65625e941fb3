"""`helm-rdma status`: group readiness read with the real kubernetes client from kmock, over a real socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from helm_rdma.cli import main
from helm_rdma.cluster.groups import group_states

from .helm_stand_in import recording_helm
from .kmock_cluster import Cluster
from .test_verify import recorded_event

STATUS_HELM = """#!/bin/sh
echo "$@" >> "{log}"
echo "NAME: $2"
echo "STATUS: deployed"
"""


def pod(name: str, *, release: str = "llama405b", component: str, ready: bool, group: int | None = None,
        nodes: int = 2) -> dict[str, Any]:
    labels = {"app.kubernetes.io/instance": release, "app.kubernetes.io/component": component}
    if group is not None:
        labels["leaderworkerset.sigs.k8s.io/group-index"] = str(group)
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml", "labels": labels},
        "spec": {"containers": [{"name": "vllm", "image": "i",
                                 "env": [{"name": "HELM_RDMA_NNODES", "value": str(nodes)}]}]},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


@pytest.fixture
def fake_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return recording_helm(tmp_path, monkeypatch, STATUS_HELM)


@pytest.fixture
def lws_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    pods = [
        pod("llama405b-vllm-rdma-0", component="leader", ready=True, group=0),
        pod("llama405b-vllm-rdma-0-1", component="worker", ready=True, group=0),
        pod("llama405b-vllm-rdma-1", component="leader", ready=False, group=1),
        pod("llama405b-vllm-rdma-1-1", component="worker", ready=True, group=1),
        pod("other-0", release="other", component="leader", ready=True, group=0),
    ]
    with Cluster(pods, tmp_path / "kubeconfig") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        yield cluster


def test_status_shows_helm_status_and_each_groups_readiness(fake_helm: Path, lws_cluster: Cluster,
                                                            tmp_path: Path) -> None:
    (tmp_path / "cache" / "rdma" / "ml" / "llama405b").mkdir(parents=True)
    result = CliRunner().invoke(main, ["status", "llama405b", "-n", "ml"])
    assert result.exit_code == 0, result.output
    assert "STATUS: deployed" in result.output
    assert "group 0: 2/2 pods ready, leader ready" in result.output
    assert "group 1: 1/2 pods ready, leader not ready" in result.output
    assert "group 2" not in result.output  # the other release's pod is not counted
    assert f"CHART: {tmp_path / 'cache' / 'rdma' / 'ml' / 'llama405b'}" in result.output
    assert fake_helm.read_text().split() == ["status", "llama405b", "--namespace", "ml", "--kubeconfig",
                                             str(lws_cluster.kubeconfig)]


def test_status_takes_the_namespace_from_the_kube_context(fake_helm: Path, lws_cluster: Cluster) -> None:
    result = CliRunner().invoke(main, ["status", "llama405b"])
    assert result.exit_code == 0, result.output
    assert "GROUPS (namespace ml):" in result.output and "group 0: 2/2" in result.output
    assert "CHART: not kept here" in result.output


def test_status_without_a_reachable_cluster_exits_1(fake_helm: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = tmp_path / "dead"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    result = CliRunner().invoke(main, ["status", "llama405b", "-n", "ml"])
    assert result.exit_code == 1
    assert "listing pods in namespace ml failed" in result.output and "check the kube context" in result.output


def test_statefulset_pods_are_grouped_by_ordinal() -> None:
    pods = [
        pod("r-vllm-rdma-leader-0", component="leader", ready=True, nodes=3),
        pod("r-vllm-rdma-leader-1", component="leader", ready=True, nodes=3),
        pod("r-vllm-rdma-worker-0", component="worker", ready=True, nodes=3),
        pod("r-vllm-rdma-worker-1", component="worker", ready=False, nodes=3),
        pod("r-vllm-rdma-worker-2", component="worker", ready=True, nodes=3),
        pod("r-vllm-rdma-worker-3", component="worker", ready=True, nodes=3),
    ]
    groups = group_states(pods)
    assert [(g.group, sorted(p.name for p in g.pods), g.serving) for g in groups] == [
        (0, ["r-vllm-rdma-leader-0", "r-vllm-rdma-worker-0", "r-vllm-rdma-worker-1"], True),
        (1, ["r-vllm-rdma-leader-1", "r-vllm-rdma-worker-2", "r-vllm-rdma-worker-3"], True),
    ]
    assert [sum(p.ready for p in g.pods) for g in groups] == [2, 3]


def test_status_shows_the_preflights_recorded_as_events_and_only_this_releases(
        fake_helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under LeaderWorkerSet a failed preflight recreates the group: its pods, logs and termination messages go, and
    the status of the new pods says only "preflight". The Events the leaders recorded (files/preflight_event.py)
    remain, so status shows them: why the group keeps starting over."""
    failed = {"verdict": "FAIL", "passed": False, "busbw_gbps": 23.0, "threshold_gbps": 440, "transport": "Socket",
              "nodes": 2, "ranks": 16, "reason": "NCCL used Socket", "time": "2026-12-06T20:00:00Z"}
    objects = [pod("llama405b-vllm-rdma-0", component="leader", ready=False, group=0),
               recorded_event(failed, "llama405b-vllm-rdma-0"),
               recorded_event({**failed, "busbw_gbps": 999.0}, "other-0", release="other")]
    with Cluster(objects, tmp_path / "kubeconfig") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        table = CliRunner().invoke(main, ["status", "llama405b", "-n", "ml"])
        as_json = CliRunner().invoke(main, ["status", "llama405b", "-n", "ml", "-o", "json"])
    assert table.exit_code == 0, table.output
    assert ("PREFLIGHTS (recorded as Events, oldest first):\n  2026-12-06T20:00:00Z llama405b-vllm-rdma-0: FAIL 23.0 "
            "GB/s (floor 440) over Socket") in table.output
    assert "999.0" not in table.output
    [recorded] = json.loads(as_json.stdout)["preflights"]
    assert recorded["pod"] == "llama405b-vllm-rdma-0" and recorded["busbw_gbps"] == 23.0
