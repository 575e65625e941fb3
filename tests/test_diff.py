"""`diff`: the chart upgrade would install, handed to helm-diff; a stand-in helm records the calls.

The same through the real helm 3 and 4 with a stand-in helm-diff plugin is in tests/test_plugin.py.
"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from helm_rdma.cli import main

from .helm_stand_in import stand_in_helm

STAND_IN = """#!/bin/sh
python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$CALLS"
case "$1" in
  version) echo "$HELM_VERSION+g1234567"; exit 0 ;;
  plugin) printf 'NAME\\tVERSION\\tDESCRIPTION\\n'
          [ -n "$HAS_DIFF" ] && printf 'diff\\t3.15.11\\tPreview helm upgrade changes as a diff\\n'
          exit 0 ;;
  diff) cp -r "$4" "$CALLS.diff-chart"
        echo "team-a, llama405b-vllm-rdma-api, Service (v1) has changed:"; exit 0 ;;
  upgrade) cp -r "$4" "$CALLS.upgrade-chart"; echo "STATUS: deployed"; exit 0 ;;
esac
exit 1
"""


@pytest.fixture
def helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    stand_in_helm(tmp_path, monkeypatch, STAND_IN, answers_version=False)  # it answers HELM_VERSION
    calls = tmp_path / "calls"
    monkeypatch.setenv("CALLS", str(calls))
    monkeypatch.setenv("HELM_VERSION", "v4.1.4")
    monkeypatch.setenv("HELM_CACHE_HOME", str(tmp_path / "cache"))
    return calls


def recorded(calls: Path) -> list[list[str]]:
    return [json.loads(line) for line in calls.read_text().splitlines()]


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    return (not cmp.left_only and not cmp.right_only and not cmp.diff_files and not cmp.funny_files
            and all(same_tree(a / d, b / d) for d in cmp.common_dirs))


def test_diff_hands_helm_diff_the_chart_upgrade_would_install(runner: CliRunner, helm: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAS_DIFF", "1")
    # upgrade's check of the group's ports is tests/test_doctor_cluster.py's: accepted open here
    flags = ["llama405b", "--preset", "h100", "-n", "team-a", "--max-model-len", "65536", "--set", "replicas=2",
             "--set", "distributed.allowOpenGroupPorts=true"]
    result = runner.invoke(main, ["diff", *flags, "--", "--context", "3"])
    assert result.exit_code == 0, result.output
    assert "llama405b-vllm-rdma-api, Service (v1) has changed:" in result.output
    check, listing, call = recorded(helm)
    assert check == ["version", "--short"]
    assert listing == ["plugin", "list"]
    assert call[:3] == ["diff", "upgrade", "llama405b"]
    assert call[4:] == ["--allow-unreleased", "--namespace", "team-a", "--reset-values", "--context", "3"]
    assert not Path(call[3]).exists()  # a temporary chart, removed afterwards

    upgrade = runner.invoke(main, ["upgrade", *flags])
    assert upgrade.exit_code == 0, upgrade.output
    assert same_tree(helm.parent / "calls.diff-chart", helm.parent / "calls.upgrade-chart")


@pytest.mark.parametrize(("version", "line"), [
    ("v4.1.4", "helm plugin install https://github.com/databus23/helm-diff --verify=false"),
    ("v3.17.2", "helm plugin install https://github.com/databus23/helm-diff`"),
])
def test_without_helm_diff_it_says_how_to_install_it(runner: CliRunner, helm: Path, monkeypatch: pytest.MonkeyPatch,
                                                      version: str, line: str) -> None:
    monkeypatch.setenv("HELM_VERSION", version)
    result = runner.invoke(main, ["diff", "llama405b", "--preset", "h100"])
    assert result.exit_code == 1
    assert "diff runs the helm-diff plugin" in result.output and line in result.output
    # helm is checked once (find_helm), then asked for its plugins and, to word the fix, its major version
    assert [c[0] for c in recorded(helm)] == ["version", "plugin", "version"]


def test_bad_values_are_refused_before_helm_runs(runner: CliRunner, helm: Path) -> None:
    result = runner.invoke(main, ["diff", "llama405b", "--preset", "h100", "--set", "vllm.maxModelLength=1"])
    assert result.exit_code == 2 and 'did you mean "vllm.maxModelLen"?' in result.output
    assert not helm.exists()
