"""The GitOps examples (examples/gitops, shown verbatim in docs/gitops.md): the Argo CD health check for LeaderWorkerSets,
run in Lua as Argo CD runs it, and the Argo CD Application and Flux HelmRelease, with what each renders from a
generated chart.

Argo CD's health contract (argo-cd docs/operator-manual/health.md): the script sees the resource as the global `obj`
and returns a table with `status` (Healthy, Progressing, Degraded, Suspended) and `message`; only the base, table
and a safe os library are open (util/lua/lua.go, runLuaWithResourceActionParameters). The LeaderWorkerSet statuses
below follow kubernetes-sigs/lws api/leaderworkerset/v1/leaderworkerset_types.go and updateConditions in
pkg/controllers/leaderworkerset_controller.go.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_rdma.commands.deploy import default_timeout
from helm_rdma.commands.generate import generate
from helm_rdma.commands.status import StatusResult  # noqa: F401  (status and verify read what Argo CD applies)

from .conftest import REPO, SHARED_CRDS, helm_path
from .k8s_validation import validate_documents
from .rendering import request
from .test_lifecycle import argo_sync

EXAMPLES = REPO / "examples" / "gitops"
LUA = EXAMPLES / "leaderworkerset-health.lua"
HEALTH_KEY = "resource.customizations.health.leaderworkerset.x-k8s.io_LeaderWorkerSet"


def run_health(lws: dict[str, Any]) -> dict[str, Any]:
    """Run the health script on ``lws`` as Argo CD does: ``obj`` global, standard libraries other than base and
    table closed."""
    import lupa

    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    for library in ("string", "math", "io", "debug", "coroutine", "utf8", "require", "dofile", "loadfile"):
        lua.execute(f"{library} = nil")
    lua.globals().obj = lua.table_from(lws, recursive=True)
    result = lua.execute(LUA.read_text())
    return {k: result[k] for k in ("status", "message") if result[k] is not None}


def lws(*, replicas: int | None = 2, generation: int = 3, status: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"leaderWorkerTemplate": {"size": 2}}
    if replicas is not None:
        spec["replicas"] = replicas
    obj: dict[str, Any] = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
                           "metadata": {"name": "llama405b-vllm-rdma", "generation": generation}, "spec": spec}
    if status is not None:
        obj["status"] = status
    return obj


def condition(kind: str, state: str = "True", generation: int = 3) -> dict[str, Any]:
    reasons = {"Available": ("AllGroupsReady", "All replicas are ready"),
               "Progressing": ("GroupsProgressing", "Replicas are progressing"),
               "UpdateInProgress": ("GroupsUpdating", "Rolling Upgrade is in progress")}
    return {"type": kind, "status": state, "reason": reasons[kind][0], "message": reasons[kind][1],
            "observedGeneration": generation, "lastTransitionTime": "2026-11-27T01:00:00Z"}


CASES = {
    "just created, no status yet": (lws(status=None), "Progressing", "Waiting for the LeaderWorkerSet controller"),
    "a new generation not yet observed": (
        lws(status={"observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 2,
                    "conditions": [condition("Available", generation=2)]}),
        "Progressing", "Waiting for the LeaderWorkerSet controller to observe generation 3"),
    "groups loading (readyReplicas omitted when 0)": (
        lws(status={"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
                    "conditions": [condition("Progressing")]}),
        "Progressing", "0/2 groups ready"),
    "one group of two ready": (
        lws(status={"observedGeneration": 3, "replicas": 2, "readyReplicas": 1, "updatedReplicas": 2,
                    "conditions": [condition("Progressing")]}),
        "Progressing", "1/2 groups ready"),
    "a rolling update": (
        lws(status={"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 1,
                    "conditions": [condition("Available", "False"), condition("UpdateInProgress"),
                                   condition("Progressing")]}),
        "Progressing", "Rolling update: 1/2 groups updated, 2/2 groups ready"),
    "every group ready": (
        lws(status={"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
                    "conditions": [condition("Progressing", "False"), condition("UpdateInProgress", "False"),
                                   condition("Available")]}),
        "Healthy", "2/2 groups ready"),
    "spec.replicas defaulted to one group": (
        lws(replicas=None, status={"observedGeneration": 3, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                                   "conditions": [condition("Available")]}),
        "Healthy", "1/1 groups ready"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_argo_cd_shows_a_leaderworkerset_progressing_until_every_group_is_ready(case: str) -> None:
    obj, status, message = CASES[case]
    assert run_health(obj) == {"status": status, "message": message}


def test_the_health_statuses_are_ones_the_lws_crd_accepts() -> None:
    if not SHARED_CRDS.is_dir():
        pytest.skip(f"{SHARED_CRDS} is absent: the LWS CRD validates these statuses only where it exists")
    documents = []
    for obj, _, _ in CASES.values():
        full = yaml.safe_load(yaml.safe_dump(obj))
        full["metadata"]["namespace"] = "llm"
        full["spec"] = {"replicas": full["spec"].get("replicas", 1), "startupPolicy": "LeaderCreated",
                        "leaderWorkerTemplate": {"size": 2, "restartPolicy": "RecreateGroupOnPodRestart",
                                                 "workerTemplate": {"spec": {"containers": [
                                                     {"name": "vllm", "image": "vllm/vllm-openai:v0.33.0"}]}}}}
        documents.append(full)
    assert validate_documents(documents, crds=SHARED_CRDS) == []


def test_the_argocd_cm_example_holds_exactly_the_tested_script() -> None:
    cm = yaml.safe_load((EXAMPLES / "argocd-cm-leaderworkerset-health.yaml").read_text())
    assert cm["metadata"]["name"] == "argocd-cm" and cm["data"][HEALTH_KEY] == LUA.read_text()


def test_the_gitops_doc_shows_every_example_verbatim() -> None:
    doc = (REPO / "docs" / "gitops.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.DOTALL)
    for path in sorted(EXAMPLES.glob("*.yaml")):  # the Lua script is in the argocd-cm one
        assert path.read_text() in blocks, f"docs/gitops.md does not show {path.relative_to(REPO)} as it is"


@pytest.fixture(scope="module")
def gitops_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GitOps repository with the chart the examples point at."""
    root = tmp_path_factory.mktemp("gitops")
    generate(request(), output=root / "deploy" / "llama405b")
    return root


def helm_template(release: str, chart: Path, namespace: str) -> list[dict[str, Any]]:
    done = subprocess.run([str(helm_path("helm4")), "template", release, str(chart), "--namespace", namespace],
                          capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_the_argo_cd_application_renders_a_release_status_and_verify_can_read(gitops_repo: Path) -> None:
    app = yaml.safe_load((EXAMPLES / "argocd-application.yaml").read_text())
    source, destination = app["spec"]["source"], app["spec"]["destination"]
    # Argo CD's label tracking writes the Application's name into app.kubernetes.io/instance: keep them equal
    assert source["helm"]["releaseName"] == app["metadata"]["name"]
    chart = gitops_repo / source["path"]
    assert (chart / "Chart.yaml").is_file()
    docs = helm_template(source["helm"]["releaseName"], chart, destination["namespace"])
    assert {d["metadata"]["labels"]["app.kubernetes.io/instance"] for d in docs} == {"llama405b"}
    phases = argo_sync(docs)
    # applied on every sync: the serving objects and the release ConfigMap; the test hooks never
    assert "ConfigMap/llama405b-vllm-rdma-release" in phases["Sync"]
    assert sorted(phases["Skip"]) == ["Job/llama405b-vllm-rdma-test-api", "Job/llama405b-vllm-rdma-test-rdma"]
    assert "PreSync" not in phases  # no provisioning: nothing runs before the sync
    [workload] = [d for d in docs if d["kind"] == "LeaderWorkerSet"]
    assert run_health(workload)["status"] == "Progressing"  # as applied, before the controller answers


def test_the_flux_helmrelease_points_at_the_chart_with_helms_own_lifecycle(gitops_repo: Path) -> None:
    repo, release = yaml.safe_load_all((EXAMPLES / "flux-helmrelease.yaml").read_text())
    spec = release["spec"]
    assert spec["chart"]["spec"]["sourceRef"]["name"] == repo["metadata"]["name"]
    chart = gitops_repo / spec["chart"]["spec"]["chart"]
    values = yaml.safe_load((chart / "values.yaml").read_text())
    assert spec["timeout"] == default_timeout(values)  # what `helm rdma install` would give helm
    assert spec["test"]["enable"] is True
    docs = helm_template(spec["releaseName"], chart, release["metadata"]["namespace"])
    tests = [d for d in docs if (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
    assert sorted(f"{d['kind']}/{d['metadata']['name']}" for d in tests) == [
        "Job/llama405b-vllm-rdma-test-api", "Job/llama405b-vllm-rdma-test-rdma"]
