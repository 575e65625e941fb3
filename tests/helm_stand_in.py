"""A stand-in for helm: a shell script the CLI runs as HELM_BIN, so a test sees exactly how helm is called."""

from __future__ import annotations

from pathlib import Path

import pytest

# helm-rdma asks a helm for `helm version --short` before its first use (helm.find_helm): a stand-in answers as helm
# 4 does before its own script runs, unless that script answers `version` itself.
ANSWERS_VERSION = '[ "$1" = version ] && { echo "v4.1.4+gstandin"; exit 0; }\n'


def stand_in_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, *, answers_version: bool = True) -> Path:
    """``script`` as an executable ``helm`` in tmp_path, exported as HELM_BIN; returns its path. With
    ``answers_version``, a line before the script answers `helm version` as helm 4."""
    helm = tmp_path / "helm"
    if answers_version:
        shebang, _, rest = script.partition("\n")
        script = f"{shebang}\n{ANSWERS_VERSION}{rest}"
    helm.write_text(script)
    helm.chmod(0o755)
    monkeypatch.setenv("HELM_BIN", str(helm))
    return helm


def recording_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """A stand-in helm from ``script``, a template whose ``{log}`` names the file it appends its arguments to, with
    helm's cache (where generate keeps each release's chart) under tmp_path; returns that log."""
    log = tmp_path / "helm.log"
    stand_in_helm(tmp_path, monkeypatch, script.format(log=log))
    monkeypatch.setenv("HELM_CACHE_HOME", str(tmp_path / "cache"))
    return log


# A helm that, like the real one during install and upgrade, handles SIGINT and SIGTERM itself and needs a moment to
# record the release as failed (helm/helm v4.1.4 pkg/cmd/upgrade.go:245 signal.Notify, then "Release %s has been
# cancelled." and the context's cancel, which pkg/action/upgrade.go:437 handleContext turns into failRelease).
# `template` goes to the real helm (REAL_HELM). Each signal it gets is one line of its log, so a test counts them;
# IGNORE_SIGNALS=1 makes a helm that never ends, for the bound after which it is killed.
TRAPPING = """#!/bin/bash
case "$1" in template) exec "$REAL_HELM" "$@";; esac
log={log}
echo "start $1" >> "$log"
record() {{
  echo "got $1" >> "$log"
  [ -n "$IGNORE_SIGNALS" ] && return
  echo "Release has been cancelled."
  sleep 1
  echo "recorded the release as failed" >> "$log"
  echo "Error: UPGRADE FAILED: context canceled" >&2
  exit 1
}}
trap 'record INT' INT
trap 'record TERM' TERM
for i in $(seq 1 240); do sleep 0.25; done
echo "done $1" >> "$log"
"""


def trapping_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_helm: Path) -> Path:
    """The TRAPPING stand-in as HELM_BIN, with helm's cache under tmp_path; returns its log."""
    monkeypatch.setenv("REAL_HELM", str(real_helm))
    return recording_helm(tmp_path, monkeypatch, TRAPPING)
