"""Shared fixtures: the real helm binaries fetched by scripts/fetch-helm, the shared CRDs, a CLI runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SHARED_CRDS = REPO.parent / "shared" / "crds"
BIN = Path(sys.executable).parent
HELM_VERSIONS = {"helm3": "v3.17.2", "helm4": "v4.1.4"}


def helm_path(name: str) -> Path:
    path = BIN / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make setup` (scripts/fetch-helm) first")
    return path


@pytest.fixture(params=sorted(HELM_VERSIONS))
def helm_bin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each real helm binary in turn, also exported as HELM_BIN."""
    path = helm_path(request.param)
    monkeypatch.setenv("HELM_BIN", str(path))
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def _default_helm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run helm 4 unless they ask for another: never a helm the machine happens to have. install and upgrade
    check no cluster unless a test asks (tests/test_doctor_cluster.py): never a cluster a kubeconfig happens to name."""
    if "HELM_BIN" not in os.environ:
        monkeypatch.setenv("HELM_BIN", str(BIN / "helm4"))
    monkeypatch.delenv("HELM_NAMESPACE", raising=False)
    monkeypatch.setenv("HELM_RDMA_SKIP_CLUSTER_CHECKS", "1")


@pytest.fixture(autouse=True)
def _fresh_validation_memo(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test validates shipped presets for real: no memo of earlier runs."""
    monkeypatch.setenv("HELM_RDMA_CACHE", str(tmp_path_factory.mktemp("helm-rdma-cache")))
