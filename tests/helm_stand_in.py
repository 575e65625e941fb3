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
