"""Golden renders: every preset x backend x workload kind x RDMA mode, with helm 3.17.2 and helm 4.1.4.

Refresh after an intended change: make golden   (HELM_RDMA_UPDATE_GOLDEN=1 pytest tests/test_golden.py)
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
import yaml

from helm_rdma.commands.template import template
from helm_rdma.presets import preset_names

from .conftest import SHARED_CRDS, helm_path
from .k8s_validation import validate_documents

GOLDEN = Path(__file__).parent / "golden"
KUBE_VERSION = "1.30.0"
CASES = list(itertools.product(preset_names(), ("native", "ray"), ("LeaderWorkerSet", "StatefulSet"),
                               ("hostNetwork", "sriov")))


def case_id(case: tuple[str, ...]) -> str:
    return "-".join(case)


def render(case: tuple[str, str, str, str], helm: str, monkeypatch: pytest.MonkeyPatch) -> str:
    preset, backend, kind, mode = case
    sets = [f"distributed.backend={backend}", f"workload.kind={kind}", f"rdma.mode={mode}"]
    if backend == "ray" and preset != "mi300x":
        sets.append("image.tag=v0.17.1")  # the last stock vLLM image with Ray
    monkeypatch.setenv("HELM_BIN", str(helm_path(helm)))
    return template(release="llama405b", preset=preset, set_values=tuple(sets),
                    helm_args=("--kube-version", KUBE_VERSION)).manifests


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_render_matches_golden_on_both_helms_and_validates(case: tuple[str, str, str, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    helm3 = render(case, "helm3", monkeypatch)
    helm4 = render(case, "helm4", monkeypatch)
    assert helm3 == helm4, "helm 3.17.2 and helm 4.1.4 render differently"
    golden = GOLDEN / f"{case_id(case)}.yaml"
    if os.environ.get("HELM_RDMA_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(helm4)
    assert golden.is_file(), f"{golden} is missing: run `make golden`"
    assert helm4 == golden.read_text(), f"{golden.name} differs: review, then `make golden`"

    documents = [d for d in yaml.safe_load_all(helm4) if d]
    crds = SHARED_CRDS if SHARED_CRDS.is_dir() else None
    if crds is None:
        print(f"LeaderWorkerSet CRD validation skipped: {SHARED_CRDS} is absent")
    assert validate_documents(documents, crds=crds) == []
    kinds = {d["kind"] for d in documents}
    preset, backend, kind, mode = case
    assert kind in kinds
    assert ("Service" in kinds) and ("ConfigMap" in kinds)


def test_shared_crds_are_present_for_lws_validation() -> None:
    if not SHARED_CRDS.is_dir():
        pytest.skip(f"{SHARED_CRDS} is absent: LeaderWorkerSets are validated only where it exists")
    assert (SHARED_CRDS / "leaderworkerset.x-k8s.io_leaderworkersets.yaml").is_file()


def test_lws_validation_rejects_an_unknown_field() -> None:
    if not SHARED_CRDS.is_dir():
        pytest.skip(f"{SHARED_CRDS} is absent")
    lws = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": {"name": "x"},
           "spec": {"leaderWorkerTemplate": {"size": 2, "restartPolicy": "RecreateGroupOnPodRestart",
                                             "workerTemplate": {"spec": {"containers": []}}},
                    "startupPolicy": "LeaderCreated", "bogus": 1}}
    problems = validate_documents([lws], crds=SHARED_CRDS)
    assert any("bogus" in p for p in problems)


def test_kubernetes_validation_rejects_an_unknown_field() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}, "bogus": 1}
    assert validate_documents([cm], crds=None)
