"""A release's life, step by step, and which hooks run at each step, under helm and under Argo CD.

The rules: helm runs pre-install/post-install hooks on install, pre-upgrade/post-upgrade on every upgrade (not
pre-install), pre-delete/post-delete on uninstall, and test hooks only on `helm test` (helm/helm pkg/action
install.go, upgrade.go, uninstall.go; FACTS.md "Helm"). Argo CD renders with `helm template`, maps pre-install and
pre-upgrade hooks to PreSync and runs them on every sync, never runs test hooks, maps pre-delete to PreDelete (run
when the Application is deleted, Argo CD 3.3 and later: argo-cd controller/hook.go, argoproj/argo-cd#22288; earlier
versions ignore it), and lets a resource's own argocd.argoproj.io/hook annotation replace the mapping (argo-cd docs
user-guide/helm.md, argoproj/argo-cd#14288).
Upgrades are rendered with `helm template --is-upgrade`. No hook that runs while the serving pods hold the GPUs may
request them (tests/consumer_rules.py, hooks_never_take_gpus).
"""

from __future__ import annotations

import json
from typing import Any

from . import consumer_rules as rules
from . import rendering
from .rendering import render

PROVISION = (*rendering.PROVISION, "clusterNetwork.deleteOnUninstall=true", "api.keySecret.name=vllm-api-key")
HELM_EVENTS = {"install": {"pre-install", "post-install"}, "upgrade": {"pre-upgrade", "post-upgrade"},
               "uninstall": {"pre-delete", "post-delete"}, "test": {"test"}}
ARGO_MAPPING = {"pre-install": "PreSync", "pre-upgrade": "PreSync", "post-install": "PostSync",
                "post-upgrade": "PostSync", "pre-delete": "PreDelete", "post-delete": "PostDelete"}
DELETE_PHASES = {"PreDelete", "PostDelete"}


def helm_hooks(docs: list[dict[str, Any]], step: str) -> list[tuple[int, str]]:
    """(weight, Kind/name) of the hooks helm runs at ``step``, in helm's order."""
    run = []
    for d in docs:
        notes = d["metadata"].get("annotations") or {}
        events = set(notes.get("helm.sh/hook", "").split(",")) - {""}
        if events & HELM_EVENTS[step]:
            run.append((int(notes.get("helm.sh/hook-weight", "0")), f"{d['kind']}/{d['metadata']['name']}"))
    return sorted(run)


def argo_sync(docs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What Argo CD does with each object: its sync phase (PreSync, Sync, PostSync), the deletion phases it runs in
    (PreDelete, PostDelete: when the Application is deleted), or Skip when it never applies it (test hooks)."""
    phases: dict[str, list[str]] = {}
    for d in docs:
        notes = d["metadata"].get("annotations") or {}
        if "argocd.argoproj.io/hook" in notes:
            found = {notes["argocd.argoproj.io/hook"]}
        elif "helm.sh/hook" in notes:
            events = notes["helm.sh/hook"].split(",")
            mapped = {ARGO_MAPPING[e] for e in events if e in ARGO_MAPPING}
            syncing = sorted(mapped - DELETE_PHASES)
            found = (mapped & DELETE_PHASES) | set(syncing[:1])
            found = found or {"Skip"}  # test hooks: Argo never runs them
        else:
            found = {"Sync"}
        for phase in found:
            phases.setdefault(phase, []).append(f"{d['kind']}/{d['metadata']['name']}")
    return phases


def provision_values(docs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-provisioner"))
    return json.loads(cm["data"]["values.json"])


PROVISIONER = ["ServiceAccount/llama405b-vllm-rdma-provisioner", "ClusterRole/llm-llama405b-vllm-rdma-provisioner",
               "ClusterRoleBinding/llm-llama405b-vllm-rdma-provisioner", "ConfigMap/llama405b-vllm-rdma-provisioner"]


def names(hooks: list[tuple[int, str]]) -> list[str]:
    return [n for _, n in hooks]


def test_install_then_upgrades_then_uninstall_run_only_quick_hooks_that_take_no_gpus() -> None:
    # 1. install: the provisioner's account, RBAC and values first, then the Job that creates (or finds) the nodes
    install = render(*PROVISION)
    hooks = helm_hooks(install, "install")
    assert sorted(names(hooks)[:-1]) == sorted(PROVISIONER) and names(hooks)[-1] == "Job/llama405b-vllm-rdma-provision"
    assert max(w for w, _ in hooks[:-1]) < hooks[-1][0]
    assert rules.hooks_never_take_gpus(install) == []

    # 2. upgrade with a changed value: the same quick hooks (the provisioner finds the network unchanged), and the
    #    change reaches the pods through the LeaderWorkerSet, whose group restarts and runs its preflight again
    changed = render(*PROVISION, "vllm.maxModelLen=32768", upgrade=True)
    assert names(helm_hooks(changed, "upgrade")) == names(hooks)
    assert helm_hooks(changed, "install") == hooks  # pre-install too: helm skips it on upgrade, Argo does not
    assert rules.hooks_never_take_gpus(changed) == []
    [lws] = [d for d in changed if d["kind"] == "LeaderWorkerSet"]
    init = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["preflight"]

    # 3. upgrade with more nodes: the provisioner is asked for the new size; the new group's preflight covers 3 nodes
    bigger = render(*PROVISION, nodes=3, upgrade=True)
    assert provision_values(bigger)["nodes"] == 3 and provision_values(changed)["nodes"] == 2
    [lws] = [d for d in bigger if d["kind"] == "LeaderWorkerSet"]
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 3
    assert rules.hooks_never_take_gpus(bigger) == []

    # 4. uninstall: only the deprovisioner (asked for with deleteOnUninstall), after its account and values
    gone = helm_hooks(bigger, "uninstall")
    assert names(gone)[-1] == "Job/llama405b-vllm-rdma-deprovision"
    assert sorted(names(gone)[:-1]) == sorted(PROVISIONER)

    # helm test (beside the serving pods): the RDMA check and the API check, neither takes a GPU
    assert names(helm_hooks(bigger, "test")) == ["Job/llama405b-vllm-rdma-test-rdma", "Pod/llama405b-vllm-rdma-test-api"]


def test_an_argo_cd_sync_runs_the_same_quick_presync_hooks_every_time_and_never_the_tests() -> None:
    for docs in (render(*PROVISION), render(*PROVISION, upgrade=True), render(*PROVISION, nodes=3, upgrade=True)):
        phases = argo_sync(docs)
        assert sorted(phases["PreSync"]) == sorted([*PROVISIONER, "Job/llama405b-vllm-rdma-provision"])
        assert "PostSync" not in phases
        assert sorted(phases["Skip"]) == ["Job/llama405b-vllm-rdma-test-rdma", "Pod/llama405b-vllm-rdma-test-api"]
        # pre-delete: run when the Application is deleted (Argo CD 3.3+), after the account, RBAC and values
        assert sorted(phases["PreDelete"]) == sorted([*PROVISIONER, "Job/llama405b-vllm-rdma-deprovision"])
        presync = [d for d in docs if f"{d['kind']}/{d['metadata']['name']}" in phases["PreSync"]]
        assert rules.hooks_never_take_gpus(presync) == []


def test_without_provisioning_no_hook_runs_on_install_upgrade_or_sync() -> None:
    for docs in (render(), render(upgrade=True)):
        assert helm_hooks(docs, "install") == helm_hooks(docs, "upgrade") == []
        assert "PreSync" not in argo_sync(docs)
