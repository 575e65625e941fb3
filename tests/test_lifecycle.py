"""A release's life, step by step, and which hooks run at each step, under helm and under Argo CD.

The rules: helm runs pre-install/post-install hooks on install, pre-upgrade/post-upgrade on every upgrade (not
pre-install), pre-delete/post-delete on uninstall, and test hooks only on `helm test` (helm/helm pkg/action
install.go, upgrade.go, uninstall.go; FACTS.md "Helm"). Argo CD renders with `helm template`, maps pre-install and
pre-upgrade hooks to PreSync and runs them on every sync, never runs test hooks, maps pre-delete to PreDelete (run
when the Application is deleted, Argo CD 3.3 and later: argo-cd controller/hook.go, argoproj/argo-cd#22288; earlier
versions ignore it), and lets a resource's own argocd.argoproj.io/hook annotation replace the mapping (argo-cd docs
user-guide/helm.md, argoproj/argo-cd#14288).
An object with several events runs at each (helm: pkg/action/hooks.go execHook collects the hooks whose Events hold
the event; Argo CD: gitops-engine pkg/sync/sync_phase.go syncPhases gives a hook one task per phase its types map to,
pkg/sync/hook/helm/type.go maps only pre-install, pre-upgrade (PreSync), post-install and post-upgrade (PostSync), so
pre-rollback and post-rollback are ignored there). Upgrades are rendered with `helm template --is-upgrade`. No hook that runs while the serving pods hold the GPUs may
request them (tests/consumer_rules.py, hooks_never_take_gpus).

Hooks are not part of the release: `helm uninstall` deletes the release's manifest, never a hook (helm docs "Chart
Hooks"; pkg/action/uninstall.go runs the pre-delete and post-delete hooks, then deletes rel.Manifest). Only a hook's
delete policy removes it (pkg/action/hooks.go): before-hook-creation before the hook is created again; hook-succeeded
once every hook of the event succeeded; hook-failed when the hook itself failed; and from Helm 3.19 on (and in Helm 4)
the hooks that succeeded before a failed one go by their hook-succeeded policy too (deleteHooksByPolicy
(executingHooks[0:i], HookSucceeded), helm/helm 2eea520, "Delete previously successful hooks when a later hook
fails"). Argo CD deletes HookSucceeded hooks when the whole sync succeeded and only HookFailed ones when it failed
(gitops-engine pkg/sync/sync_context.go, hooksPendingDeletionSuccessful / hooksPendingDeletionFailed).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from . import consumer_rules as rules
from . import rendering
from .rendering import render

PROVISION = (*rendering.PROVISION, "clusterNetwork.deleteOnUninstall=true", "api.keySecret.name=vllm-api-key")
# Every hook the chart has: provisioning, deprovisioning, and both helm tests (hostNetwork mode).
CASES_ALL_HOOKS = (*PROVISION, "rdma.mode=hostNetwork")
HELM_EVENTS = {"install": {"pre-install", "post-install"}, "upgrade": {"pre-upgrade", "post-upgrade"},
               "rollback": {"pre-rollback", "post-rollback"}, "uninstall": {"pre-delete", "post-delete"},
               "test": {"test"}, **{e: {e} for e in ("pre-install", "post-install", "pre-upgrade", "post-upgrade",
                                                    "pre-rollback", "post-rollback")}}
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
            found = mapped or {"Skip"}  # test and rollback hooks: Argo never runs them
        else:
            found = {"Sync"}
        for phase in found:
            phases.setdefault(phase, []).append(f"{d['kind']}/{d['metadata']['name']}")
    return phases


def provision_values(docs: list[dict[str, Any]]) -> dict[str, Any]:
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-provisioner"))
    return json.loads(base64.b64decode(secret["data"]["values.json"]))


SHRINK = "Job/llama405b-vllm-rdma-shrink"
PROVISIONER = ["ServiceAccount/llama405b-vllm-rdma-provisioner", "ClusterRole/llm-llama405b-vllm-rdma-provisioner",
               "ClusterRoleBinding/llm-llama405b-vllm-rdma-provisioner", "Secret/llama405b-vllm-rdma-provisioner"]


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
    #    (pre-upgrade: grow if asked; post-upgrade: shrink if asked, after the workload has)
    changed = render(*PROVISION, "vllm.maxModelLen=32768", upgrade=True)
    assert names(helm_hooks(changed, "pre-upgrade")) == names(hooks)
    assert names(helm_hooks(changed, "post-upgrade")) == [*names(hooks)[:-1], SHRINK]
    assert names(helm_hooks(changed, "pre-rollback")) == names(hooks)
    assert names(helm_hooks(changed, "post-rollback")) == [*names(hooks)[:-1], SHRINK]
    assert helm_hooks(changed, "install") == hooks  # pre-install too: helm skips it on upgrade, Argo does not
    assert rules.hooks_never_take_gpus(changed) == []
    [lws] = [d for d in changed if d["kind"] == "LeaderWorkerSet"]
    init = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["port-guard", "download-model", "preflight", "preflight-verdict"]

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
    assert names(helm_hooks(bigger, "test")) == ["Job/llama405b-vllm-rdma-test-rdma", "Job/llama405b-vllm-rdma-test-api"]


def test_an_argo_cd_sync_runs_the_same_quick_presync_hooks_every_time_and_never_the_tests() -> None:
    for docs in (render(*PROVISION), render(*PROVISION, upgrade=True), render(*PROVISION, nodes=3, upgrade=True)):
        phases = argo_sync(docs)
        assert sorted(phases["PreSync"]) == sorted([*PROVISIONER, "Job/llama405b-vllm-rdma-provision"])
        # PostSync (after the synced workload is healthy): the shrink, with its own account, RBAC and values
        assert sorted(phases["PostSync"]) == sorted([*PROVISIONER, SHRINK])
        assert sorted(phases["Skip"]) == ["Job/llama405b-vllm-rdma-test-api", "Job/llama405b-vllm-rdma-test-rdma"]
        # pre-delete: run when the Application is deleted (Argo CD 3.3+), after the account, RBAC and values
        assert sorted(phases["PreDelete"]) == sorted([*PROVISIONER, "Job/llama405b-vllm-rdma-deprovision"])
        hooks = [d for d in docs if f"{d['kind']}/{d['metadata']['name']}" in phases["PreSync"] + phases["PostSync"]]
        assert rules.hooks_never_take_gpus(hooks) == []


def test_without_provisioning_no_hook_runs_on_install_upgrade_or_sync() -> None:
    for docs in (render(), render(upgrade=True)):
        assert helm_hooks(docs, "install") == helm_hooks(docs, "upgrade") == helm_hooks(docs, "uninstall") == []
        assert "PreSync" not in argo_sync(docs)


def policies(doc: dict[str, Any]) -> set[str]:
    notes = doc["metadata"].get("annotations") or {}
    return set(notes.get("helm.sh/hook-delete-policy", "before-hook-creation").split(","))


class Cluster:
    """The hook objects that exist in a namespace, as helm's hook rules leave them (pkg/action/hooks.go)."""

    def __init__(self, helm: str) -> None:
        self.helm = helm  # "3.17" keeps the hooks that succeeded before a failed one; "4" deletes them
        self.live: dict[str, dict[str, Any]] = {}

    def run(self, docs: list[dict[str, Any]], step: str, *, fail: str | None = None) -> bool:
        by_name = {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}
        done: list[str] = []
        for _, name in helm_hooks(docs, step):
            doc = by_name[name]
            if "before-hook-creation" in policies(doc):
                self.live.pop(name, None)
            self.live[name] = doc
            if name == fail:
                if "hook-failed" in policies(doc):
                    self.live.pop(name)
                if self.helm != "3.17":
                    self._delete_succeeded(done, by_name)
                return False
            done.append(name)
        self._delete_succeeded(reversed(done), by_name)
        return True

    def _delete_succeeded(self, names: Any, by_name: dict[str, dict[str, Any]]) -> None:
        for name in names:
            if "hook-succeeded" in policies(by_name[name]):
                self.live.pop(name, None)

    def uninstall(self, docs: list[dict[str, Any]]) -> None:
        assert self.run(docs, "uninstall")  # pre-delete (and post-delete) hooks; the manifest goes; hooks stay


def leftovers(cluster: Cluster) -> dict[str, Any]:
    """What outlives the release, with how it goes: a failed Job after its ttlSecondsAfterFinished, or never."""
    return {name: doc["spec"].get("ttlSecondsAfterFinished") if doc["kind"] == "Job" else None
            for name, doc in cluster.live.items()}


def test_no_hook_object_outlives_helm_uninstall_after_installs_upgrades_and_tests_that_succeed() -> None:
    install, upgrade = render(*PROVISION), render(*PROVISION, nodes=3, upgrade=True)
    for helm in ("3.17", "4"):
        cluster = Cluster(helm)
        assert cluster.run(install, "install") and cluster.live == {}  # every hook is gone once the install is done
        assert cluster.run(upgrade, "upgrade") and cluster.live == {}
        assert cluster.run(upgrade, "test") and cluster.live == {}  # tests that pass leave nothing either
        cluster.uninstall(upgrade)
        assert cluster.live == {}


def test_what_a_failed_hook_leaves_is_gone_by_uninstall_or_by_its_own_ttl() -> None:
    install = render(*PROVISION)
    for helm in ("3.17", "4"):
        # The provision Job fails: it stays for its log; Helm 3.17 also keeps the account, RBAC and values it used.
        cluster = Cluster(helm)
        assert not cluster.run(install, "install", fail="Job/llama405b-vllm-rdma-provision")
        kept = set(cluster.live) - {"Job/llama405b-vllm-rdma-provision"}
        assert kept == (set(PROVISIONER) if helm == "3.17" else set())
        # helm uninstall: the pre-delete pass replaces and deletes the account, RBAC and values; the failed Job goes
        # by its TTL (hooks are not the release's: uninstall never deletes them)
        cluster.uninstall(install)
        assert leftovers(cluster) == {"Job/llama405b-vllm-rdma-provision": 86400}

        # A failed helm test: its Job stays for its log, a day at most; the test that passed before it is gone,
        # except on Helm 3.17, where it stays as long.
        cluster = Cluster(helm)
        assert cluster.run(install, "install")
        assert not cluster.run(install, "test", fail="Job/llama405b-vllm-rdma-test-api")
        cluster.uninstall(install)
        passed = {"Job/llama405b-vllm-rdma-test-rdma": 86400} if helm == "3.17" else {}
        assert leftovers(cluster) == {"Job/llama405b-vllm-rdma-test-api": 86400, **passed}


def test_every_hook_is_deleted_when_it_succeeds_and_every_hook_job_has_a_ttl() -> None:
    for docs in (render(*PROVISION), render(*CASES_ALL_HOOKS)):
        hooks = [d for d in docs if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]
        assert hooks
        for d in hooks:
            assert policies(d) == {"before-hook-creation", "hook-succeeded"}, d["metadata"]["name"]
            if d["kind"] == "Job":
                assert d["spec"]["ttlSecondsAfterFinished"] == 86400
            assert d["kind"] != "Pod", "a bare Pod hook that fails outlives the release: make it a Job with a TTL"


def test_an_argo_cd_sync_that_succeeds_leaves_no_hook_behind() -> None:
    # Argo CD maps helm's hook-succeeded to HookSucceeded and deletes those hooks when the sync succeeded; a failed
    # sync keeps them until the next sync replaces them (BeforeHookCreation). It never runs test or delete hooks.
    for docs in (render(*PROVISION), render(*PROVISION, upgrade=True)):
        presync = [d for d in docs if f"{d['kind']}/{d['metadata']['name']}" in argo_sync(docs)["PreSync"]]
        assert presync and all("hook-succeeded" in policies(d) for d in presync)
