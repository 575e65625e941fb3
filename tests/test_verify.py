"""`helm-rdma verify`: helm test through a stand-in helm, the preflight result from kmock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from helm_rdma.cli import main
from helm_rdma.commands.generate import generate
from helm_rdma.commands.verify import fullname

from .kmock_cluster import Cluster

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
    chart = generate(release="llama405b", preset="h100", output=tmp_path / "chart").path
    values = tmp_path / "values.json"
    values.write_text(json.dumps(yaml.safe_load((chart / "values.yaml").read_text())))
    paths = {"log": tmp_path / "helm.log", "values": values, "fail": tmp_path / "fail"}
    helm = tmp_path / "helm"
    helm.write_text(HELM.format(**paths))
    helm.chmod(0o755)
    monkeypatch.setenv("HELM_BIN", str(helm))
    return paths


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Start kmock holding the preflight's result ConfigMap (or none)."""

    def start(data: dict[str, Any] | None) -> Cluster:
        objects = [] if data is None else [{
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "llama405b-vllm-rdma-preflight-result", "namespace": "ml"},
            "data": {"result.json": json.dumps(data)}}]
        c = Cluster(objects, tmp_path / "kubeconfig")
        c.__enter__()
        monkeypatch.setenv("KUBECONFIG", str(c.kubeconfig))
        started.append(c)
        return c

    started: list[Cluster] = []
    yield start
    for c in started:
        c.__exit__(None, None, None)


def test_a_healthy_release_passes_with_one_summary(setup: dict[str, Path], kube: Any) -> None:
    kube(result())
    out = CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("      release    llama405b: 2 x BM.GPU.H100.8")
    assert "PASS  helm test  Phase: Succeeded" in out.output
    assert "PASS  RDMA NICs  16 per node expected (=mlx5_0,mlx5_1,mlx5_3" in out.output
    assert ("PASS  bandwidth  452.7 GB/s all_reduce bus bandwidth over IB with GPUDirect RDMA (floor 440, "
            "published 470, line rate 400 GB/s per node); NCCL 2.23.4, 16 ranks") in out.output
    calls = setup["log"].read_text().splitlines()
    assert calls[0] == "get values llama405b --all --output json --namespace ml --kubeconfig " + str(
        Path(setup["log"]).parent / "kubeconfig")
    assert calls[1].startswith("test llama405b --namespace ml") and calls[1].endswith("--timeout 15m")


def test_a_socket_fallback_fails_verify(setup: dict[str, Path], kube: Any) -> None:
    kube(result(passed=False, busbw=23.0, transport="Socket"))
    out = CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml"])
    assert out.exit_code == 1
    assert "FAIL  bandwidth  NCCL used Socket instead of NET/IB: RDMA is not in use: 23.0 GB/s" in out.output


def test_a_failed_helm_test_fails_verify(setup: dict[str, Path], kube: Any) -> None:
    kube(result())
    setup["fail"].write_text("")
    out = CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml"])
    assert out.exit_code == 1
    assert "FAIL  helm test  Error: 1 error occurred: pod llama405b-vllm-rdma-test-api failed" in out.output


def test_a_missing_preflight_result_fails_verify(setup: dict[str, Path], kube: Any) -> None:
    kube(None)
    out = CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml"])
    assert out.exit_code == 1
    assert "FAIL  bandwidth  no preflight result (ConfigMap llama405b-vllm-rdma-preflight-result)" in out.output


@pytest.mark.parametrize(("release", "values", "expected"), [
    ("llama405b", {}, "llama405b-vllm-rdma"),
    ("vllm-rdma-prod", {}, "vllm-rdma-prod"),
    ("x", {"nameOverride": "serve"}, "x-serve"),
    ("x", {"fullnameOverride": "mine"}, "mine"),
])
def test_fullname_matches_the_chart_helper(release: str, values: dict[str, Any], expected: str) -> None:
    assert fullname(release, values) == expected


LWS_OBJECT = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
              "metadata": {"name": "llama405b-vllm-rdma", "namespace": "ml"}, "spec": {"replicas": 2}}


@pytest.fixture
def kept(setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HELM_CACHE_HOME", str(tmp_path / "cache"))
    return generate(release="llama405b", preset="h100", output=tmp_path / "cache" / "rdma" / "ml" / "llama405b").path


def start_with_lws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    objects = [LWS_OBJECT, {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "llama405b-vllm-rdma-preflight-result", "namespace": "ml"},
                            "data": {"result.json": json.dumps(result())}}]
    c = Cluster(objects, tmp_path / "kubeconfig").__enter__()
    monkeypatch.setenv("KUBECONFIG", str(c.kubeconfig))
    return c


def test_nccl_stops_the_model_reruns_the_preflight_through_helm_upgrade(
        setup: dict[str, Path], kept: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = start_with_lws(tmp_path, monkeypatch)
    try:
        out = CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml", "--nccl", "--yes"])
        assert out.exit_code == 0, out.output
        assert "needs every GPU of the nodes: the LeaderWorkerSet llama405b-vllm-rdma is scaled to 0" in out.output
        assert "PASS  re-run     preflight ran again" in out.output
        assert c.get("leaderworkerset.x-k8s.io/v1/leaderworkersets", "ml", "llama405b-vllm-rdma")["spec"][
            "replicas"] == 0  # the real helm upgrade puts the chart's replicas back
        upgrade = next(line for line in setup["log"].read_text().splitlines() if line.startswith("upgrade"))
        assert upgrade.startswith(f"upgrade llama405b {kept} --reuse-values --namespace ml")
        assert upgrade.endswith("--set verify.preflight.enabled=true")
    finally:
        c.__exit__(None, None, None)


def test_nccl_puts_the_replicas_back_when_the_upgrade_fails(
        setup: dict[str, Path], kept: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Path(f"{setup['fail']}.upgrade").write_text("")
    c = start_with_lws(tmp_path, monkeypatch)
    try:
        out = CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml", "--nccl", "--yes"])
        assert out.exit_code == 1
        assert "FAIL  re-run     helm upgrade failed, replicas put back: Error: pre-upgrade hooks failed" in out.output
        assert c.get("leaderworkerset.x-k8s.io/v1/leaderworkersets", "ml", "llama405b-vllm-rdma")["spec"][
            "replicas"] == 2
    finally:
        c.__exit__(None, None, None)


def test_nccl_asks_first_and_declining_changes_nothing(
        setup: dict[str, Path], kept: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = start_with_lws(tmp_path, monkeypatch)
    try:
        out = CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml", "--nccl"], input="n\n")
        assert out.exit_code == 0, out.output
        assert "declined: the last preflight result is shown" in out.output
        assert not any(line.startswith("upgrade") for line in setup["log"].read_text().splitlines())
        assert c.get("leaderworkerset.x-k8s.io/v1/leaderworkersets", "ml", "llama405b-vllm-rdma")["spec"][
            "replicas"] == 2
    finally:
        c.__exit__(None, None, None)


def test_nccl_needs_the_chart_helm_rdma_installed(setup: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELM_CACHE_HOME", str(tmp_path / "empty-cache"))
    out = CliRunner().invoke(main, ["verify", "llama405b", "-n", "ml", "--nccl", "--yes"])
    assert out.exit_code == 2
    assert "verify --nccl re-runs the chart helm rdma installed, kept in" in out.output
