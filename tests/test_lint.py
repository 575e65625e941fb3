"""`helm lint --strict` on charts/vllm-rdma and on generated charts, and plain `helm template` with no Python."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helm_rdma.commands.generate import generate
from helm_rdma.datafiles import chart_dir

from .conftest import HELM_VERSIONS, helm_path
from .rendering import request


def helm(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_path(name)), *args], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("name", sorted(HELM_VERSIONS))
def test_the_binary_is_the_pinned_version(name: str) -> None:
    out = helm(name, "version", "--short")
    assert out.stdout.startswith(HELM_VERSIONS[name])


@pytest.mark.parametrize("name", sorted(HELM_VERSIONS))
def test_lint_strict_passes_on_the_chart(name: str) -> None:
    out = helm(name, "lint", "--strict", str(chart_dir()))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", sorted(HELM_VERSIONS))
@pytest.mark.parametrize(("preset", "sets"), [("mi300x", ()), ("gpu4", ("workload.kind=StatefulSet", "rdma.mode=sriov"))])
def test_generated_chart_lints_and_renders_with_plain_helm(name: str, preset: str, sets: tuple[str, ...],
                                                          tmp_path: Path) -> None:
    out = generate(request(preset=preset, sets=sets), output=tmp_path / "chart")
    lint = helm(name, "lint", "--strict", str(out.path))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # No Python on PATH, no plugin: exactly what Argo CD or Flux run.
    rendered = helm(name, "template", "llama405b", str(out.path), "--namespace", "ml")
    assert rendered.returncode == 0, rendered.stderr
    assert "kind: Service" in rendered.stdout and 'namespace: "ml"' in rendered.stdout


@pytest.mark.parametrize("name", sorted(HELM_VERSIONS))
def test_plain_helm_rejects_values_the_schema_forbids(name: str) -> None:
    out = helm(name, "template", "x", str(chart_dir()), "--set", "rdma.mode=infiniband")
    assert out.returncode != 0
    assert "rdma" in out.stderr and "mode" in out.stderr


@pytest.mark.parametrize("name", sorted(HELM_VERSIONS))
def test_plain_helm_runs_the_cross_field_checks(name: str) -> None:
    out = helm(name, "template", "x", str(chart_dir()), "--set", "nodes=3")
    assert out.returncode != 0
    assert "vllm.tensorParallelSize: TP 8 x PP 2 = 16, but a group has 24 GPUs (nodes 3" in out.stderr
