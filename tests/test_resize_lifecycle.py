"""A release's network through install (2 groups) -> upgrade to 3 groups -> upgrade to 1 group -> rollback, with
the chart rendered by the real `helm template`, its hook Jobs run in-process as their arguments say (the real `oci`
SDK against the fake OCI API, the real `kubernetes` client against kmock), and a small stand-in for the workload's
controllers between them: the order of hooks and workload changes, and which instances go.

The order comes from helm, applied to the hook annotations of the render:
- install, upgrade and rollback run the hooks of their pre-event, then apply the release's objects (and wait, with
  --wait), then run the hooks of their post-event (helm/helm e9b85e4 pkg/action/upgrade.go: execHook(HookPreUpgrade)
  at line 460, KubeClient.Update, execHook(HookPostUpgrade) at line 508; rollback.go: execHook(HookPreRollback) at
  line 233, Update, execHook(HookPostRollback) at line 300).
- within an event, hooks run by weight, then name (pkg/action/hooks.go hookByWeight, line 172).
- a rollback runs the hooks of the revision rolled back to: its target release carries that revision's chart and
  values (rollback.go lines 190-194, Chart: previousRelease.Chart, Config: previousRelease.Config).
The workload: the LeaderWorkerSet's leaders are a StatefulSet, which removes pods from the highest ordinal down
(Kubernetes docs "StatefulSets", Deployment and Scaling Guarantees: "Pods are terminated in reverse order, from
{N-1..0}"), so a shrink of groups removes the newest groups; the stand-in scheduler puts a new group on the newest
free nodes, which is where OCI's own order of termination (fault domain, then oldest first: tests/fake_oci.py) would
hit a serving node.
"""
# ruff: noqa: F811  (the fixtures imported from ocitest are redefined as test parameters)

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from helm_rdma.commands.provision import Watch, plan_from_values, provision
from helm_rdma.helmenv import HelmEnv

from .fake_oci import FakeOci
from .kmock_cluster import Cluster
from .ocitest import config, fake, key  # noqa: F401  (fixtures)
from .rendering import PROVISION, render
from .test_lifecycle import helm_hooks, provision_values
from .test_resize import by_size_order, pod

NAMESPACE, RELEASE, NODES = "llm", "llama405b", 2


def revision(groups: int, *, upgrade: bool, fake: FakeOci) -> list[dict[str, Any]]:
    # The group's ports are not this test's subject (tests/test_provision.py has the hook's check of them).
    return render(*PROVISION, f"replicas={groups}", f"clusterNetwork.endpoint={fake.url}", "clusterNetwork.auth=apiKey",
                  "clusterNetwork.apiKeySecret=oci-api-key", "distributed.allowOpenGroupPorts=true", nodes=NODES,
                  release=RELEASE, namespace=NAMESPACE, upgrade=upgrade)


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


class World:
    """The cluster as the stand-in controllers keep it: nodes join when their instance runs and go when it is
    terminated; the workload's pods sit on nodes. ``log`` records hooks and workload changes in order."""

    def __init__(self, cluster: Cluster, fake: FakeOci, config: Path, tmp_path: Path) -> None:
        self.cluster, self.fake, self.config, self.tmp = cluster, fake, config, tmp_path
        self.label: tuple[str, str] | None = None
        self.groups: dict[int, list[str]] = {}  # group index -> the nodes its pods run on
        self.log: list[tuple[str, ...]] = []
        self.removed_while_serving: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._nodes_follow_instances, daemon=True)

    def env(self) -> HelmEnv:
        return HelmEnv(namespace=NAMESPACE, kubeconfig=str(self.cluster.kubeconfig))

    def _instances(self) -> list[dict[str, Any]]:
        with self.fake.lock:
            nets = [n for n in self.fake.cluster_networks.values() if n["lifecycleState"] != "TERMINATED"]
            return [dict(i) for n in nets for i in n["instancePools"][0]["_instances"]]

    def _nodes_follow_instances(self) -> None:
        while not self.stop.wait(0.02):
            if self.label is None:
                continue
            with self.lock:
                alive = {i["id"] for i in self._instances()}
                known = set(self.cluster.names("v1/nodes", None))
                for instance in self._instances():
                    if f"node-{instance['id'][-4:]}" not in known:
                        self.cluster.put({"apiVersion": "v1", "kind": "Node",
                                          "metadata": {"name": f"node-{instance['id'][-4:]}",
                                                       "labels": {self.label[0]: self.label[1]}},
                                          "spec": {"providerID": f"oci://{instance['id']}"},
                                          "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
                for terminated in set(self.fake.terminated) - alive:
                    name = f"node-{terminated[-4:]}"
                    if name in known:
                        if any(name in nodes for nodes in self.groups.values()):
                            self.removed_while_serving.append(name)
                        self._delete("Node", name)

    def _delete(self, kind: str, name: str) -> None:
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(config_file=str(self.cluster.kubeconfig)))
        if kind == "Node":
            api.delete_node(name)
        else:
            api.delete_namespaced_pod(name, NAMESPACE)

    def run_hooks(self, docs: list[dict[str, Any]], event: str) -> None:
        """Every hook of ``event`` in helm's order; a Job runs its provisioner as its arguments say."""
        by_name = {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}
        values = self.tmp / f"values-{len(self.log)}.json"
        values.write_text(json.dumps(provision_values(docs)))
        for _, name in helm_hooks(docs, event):
            doc = by_name[name]
            if doc["kind"] != "Job":
                continue
            [container] = doc["spec"]["template"]["spec"]["containers"]
            args = container["args"]
            assert args[0] == "provision" and flag(args, "--from-values") == "/etc/helm-rdma/values.json"
            key, _, value = flag(args, "--node-label").partition("=")
            self.label = (key, value)
            plan = plan_from_values(values, release=flag(args, "--release"), namespace=flag(args, "--namespace"),
                                    name=flag(args, "--name"), node_label=flag(args, "--node-label"))
            plan = plan._replace(resize=flag(args, "--resize"),
                                 auth=plan.auth._replace(config_file=str(self.config)))
            assert plan.auth.endpoint == self.fake.url  # --oci-endpoint, from clusterNetwork.endpoint
            before = list(self.fake.terminated)
            result = provision(plan, env=self.env(), watch=Watch(poll_seconds=0.01))
            removed = [i for i in self.fake.terminated if i not in before]
            self.log.append(("hook", event, name, str(result.network.size), ",".join(removed)))

    def apply(self, docs: list[dict[str, Any]]) -> None:
        """The release's objects applied: the LeaderWorkerSet's groups follow its replicas."""
        [lws] = [d for d in docs if d["kind"] == "LeaderWorkerSet"]
        wanted, size = int(lws["spec"]["replicas"]), int(lws["spec"]["leaderWorkerTemplate"]["size"])
        name = lws["metadata"]["name"]
        with self.lock:
            for group in sorted(self.groups, reverse=True):  # the newest groups go first
                if group >= wanted:
                    for i in range(size):
                        self._delete("Pod", f"{name}-{group}" + (f"-{i}" if i else ""))
                    del self.groups[group]
            nodes = {self.cluster.get("v1/nodes", None, n)["spec"]["providerID"].removeprefix("oci://"): n
                     for n in self.cluster.names("v1/nodes", None)}
            taken = {n for ns in self.groups.values() for n in ns}
            free = [nodes[i["id"]] for i in sorted(self._instances(), key=lambda i: i["timeCreated"], reverse=True)
                    if i["id"] in nodes and nodes[i["id"]] not in taken
                    and not self.cluster.get("v1/nodes", None, nodes[i["id"]])["spec"].get("unschedulable")]
            for group in range(wanted):
                if group in self.groups:
                    continue
                assert len(free) >= size, f"group {group} has no nodes: the network did not grow first ({self.log})"
                placed, free = free[:size], free[size:]
                for i, node_name in enumerate(placed):
                    self.cluster.put(pod(f"{name}-{group}" + (f"-{i}" if i else ""), node_name, release=RELEASE,
                                         component="worker" if i else "leader", namespace=NAMESPACE))
                self.groups[group] = placed
        self.log.append(("workload", str(wanted)))

    def step(self, docs: list[dict[str, Any]], action: str) -> None:
        """install, upgrade or rollback: pre-hooks, the objects, post-hooks (helm's order)."""
        self.run_hooks(docs, f"pre-{action}")
        self.apply(docs)
        self.run_hooks(docs, f"post-{action}")

    def serving_instances(self) -> set[str]:
        by_name = {n: self.cluster.get("v1/nodes", None, n)["spec"]["providerID"].removeprefix("oci://")
                   for n in self.cluster.names("v1/nodes", None)}
        return {by_name[n] for nodes in self.groups.values() for n in nodes}


def test_install_grow_shrink_rollback_grows_first_shrinks_after_and_never_removes_a_serving_node(
        config: Path, fake: FakeOci, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    revisions = {1: revision(2, upgrade=False, fake=fake), 2: revision(3, upgrade=True, fake=fake),
                 3: revision(1, upgrade=True, fake=fake)}
    provision_job, shrink_job = "Job/llama405b-vllm-rdma-provision", "Job/llama405b-vllm-rdma-shrink"
    with Cluster([], tmp_path / "kubeconfig") as cluster:
        world = World(cluster, fake, config, tmp_path)
        world.thread.start()
        try:
            world.step(revisions[1], "install")
            net_id = fake.network()["id"]
            assert world.log == [("hook", "pre-install", provision_job, "4", ""), ("workload", "2")]

            world.log.clear()
            world.step(revisions[2], "upgrade")
            assert world.log == [("hook", "pre-upgrade", provision_job, "6", ""), ("workload", "3"),
                                 ("hook", "post-upgrade", shrink_job, "6", "")]

            world.log.clear()
            serving_after = {i for g, nodes in world.groups.items() if g < 1 for i in nodes}
            ids = [i["id"] for i in fake.instances(net_id)]
            by_size = by_size_order(fake, net_id, 2)
            world.step(revisions[3], "upgrade")
            [pre, workload, post] = world.log
            assert pre == ("hook", "pre-upgrade", provision_job, "6", "")  # grow-only: leaves the 6 while they serve
            assert workload == ("workload", "1")
            assert post[:4] == ("hook", "post-upgrade", shrink_job, "2")
            removed = set(post[4].split(","))
            kept = set(ids) - removed
            assert len(removed) == 4 and kept == world.serving_instances()
            assert {f"node-{i[-4:]}" for i in kept} == serving_after
            # OCI's order for a size of 2 would have terminated serving nodes: the test tells the two apart
            assert set(by_size) & kept
            assert fake.pool_size(net_id) == 2

            # helm rollback (to revision 2, 3 groups): its pre-rollback hook grows before the groups come back
            world.log.clear()
            world.step(revisions[2], "rollback")
            assert world.log == [("hook", "pre-rollback", provision_job, "6", ""), ("workload", "3"),
                                 ("hook", "post-rollback", shrink_job, "6", "")]
            assert fake.pool_size(net_id) == 6 and kept <= {i["id"] for i in fake.instances(net_id)}
        finally:
            world.stop.set()
            world.thread.join(5)
    assert world.removed_while_serving == []
    # four instances went, each by an exact detach; the two grows were the only size changes
    assert len(fake.terminated) == 4 and not any(method == "PUT" and "/instancePools/" in path
                                                  for method, path in fake.calls)
    assert sum(1 for method, path in fake.calls if method == "PUT" and "/clusterNetworks/" in path) == 2
    assert sum(1 for method, path in fake.calls if path.endswith("/actions/detachInstance")) == 4
