"""A stand-in for helm: a shell script the CLI runs as HELM_BIN, so a test sees exactly how helm is called."""

from __future__ import annotations

from pathlib import Path

import pytest


def stand_in_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """``script`` as an executable ``helm`` in tmp_path, exported as HELM_BIN; returns its path."""
    helm = tmp_path / "helm"
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
