"""Resizes of the cluster network with the real `oci` SDK against the fake OCI API and the real `kubernetes` client
against kmock: a shrink removes exactly the nodes that run no serving pod of the release, never lets OCI choose,
refuses (and changes nothing) when too few are idle; a grow carries the network's If-Match, so two resizes at once
never both write over what they read; a failed create leaves no instance configuration behind.

Rules of OCI (the fake holds them, tests/fake_oci.py):
- A smaller size terminates by fault domain, then age: "the number of instances is balanced across availability
  domains, and then balanced across fault domains. Finally, within a fault domain, the oldest instance is terminated
  first. If you need to perform tasks on an instance before deletion, then detach the instance from the pool"
  (Oracle, "Updating the Size of an Instance Pool", docs.oracle.com/iaas/Content/Compute/Tasks/
  updatinginstancepool_topic-update-instance-pool-size.htm).
- DetachInstancePoolInstance (oci 2.189.0, oci/core/compute_management_client.py detach_instance_pool_instance:
  POST /instancePools/{instancePoolId}/actions/detachInstance; oci/core/models/detach_instance_pool_instance_details.py:
  instance_id, is_decrement_size, is_auto_terminate) removes exactly the instance named.
- UpdateClusterNetwork takes an If-Match (compute_management_client.py update_cluster_network, ``if_match``: "the
  resource will be updated or deleted only if the etag you provide matches the resource's current etag value");
  GetClusterNetwork answers the ETag.
"""
# ruff: noqa: F811  (the fixtures imported from ocitest are redefined as test parameters)

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from helm_rdma.cluster.kube import cordon
from helm_rdma.commands.provision import ProvisionFlags, Watch, plan_from_flags, provision
from helm_rdma.errors import ClusterError
from helm_rdma.helmenv import HelmEnv
from helm_rdma.oci.clients import CountingApi, OciAuth

from .fake_oci import FakeOci
from .kmock_cluster import Cluster
from .ocitest import BASE, COMPARTMENT, config, fake, flags_plan, key, posts, run  # noqa: F401  (fixtures)

LABEL = "helm-rdma.io/cluster-network"


def with_nodes(count: int) -> list[str]:
    args = list(BASE)
    args[args.index("--nodes") + 1] = str(count)
    return args


def node(instance_id: str, name: str, network: str = "llama") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {LABEL: network}},
            "spec": {"providerID": f"oci://{instance_id}"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name: str, node_name: str, *, release: str = "llama", component: str = "leader", namespace: str = "ml",
        owner: str | None = None, phase: str = "Running", mirror: bool = False) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/instance": release, "app.kubernetes.io/component": component},
                         **({"ownerReferences": [{"apiVersion": "apps/v1", "kind": owner, "name": f"{name}-owner",
                                                  "uid": f"uid-{name}", "controller": True}]} if owner else {}),
                         **({"annotations": {"kubernetes.io/config.mirror": "abc"}} if mirror else {})},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": phase}}


def node_only(name: str) -> list[dict[str, Any]]:
    """Pods that hold no node: `kubectl drain` "evicts or deletes all pods except mirror pods (which cannot be deleted
    through the API server)" and "will not delete any daemon set-managed pods, because those pods would be immediately
    replaced by the daemon set controller, which ignores unschedulable markings" (the reference page of kubectl
    drain, kubernetes.io/docs/reference/kubectl/generated/kubectl_drain/); a finished pod runs nothing."""
    return [pod(f"{name}-rdma-plugin", name, release="net", namespace="kube-system", owner="DaemonSet"),
            pod(f"kube-proxy-{name}", name, release="", namespace="kube-system", mirror=True),
            pod(f"{name}-old-job", name, release="other", namespace="batch", owner="Job", phase="Succeeded")]


def api_for(config: Path, fake: FakeOci) -> CountingApi:
    return CountingApi.connect(OciAuth(mode="apiKey", config_file=str(config), profile="DEFAULT", endpoint=fake.url))


def by_size_order(fake: FakeOci, net_id: str, size: int) -> list[str]:
    """What OCI would terminate to bring the pool to ``size`` by a size decrement (on a copy of the pool)."""
    pool = {"_instances": fake.instances(net_id)}
    probe = FakeOci()
    probe.shrink_by_size(pool, size)
    return probe.terminated


def test_the_fake_terminates_a_smaller_size_by_fault_domain_then_age_and_detaches_exactly(config: Path,
                                                                                         fake: FakeOci) -> None:
    import oci

    assert run(config, fake, args=with_nodes(6)).exit_code == 0
    net_id = fake.network()["id"]
    ids = [i["id"] for i in fake.instances(net_id)]
    assert [i["faultDomain"][-1] for i in fake.instances(net_id)] == list("123123")  # spread evenly as launched
    api = api_for(config, fake)
    pool_id = fake.network()["instancePools"][0]["id"]
    api.call("update_instance_pool", pool_id, oci.core.models.UpdateInstancePoolDetails(size=2))
    # FD1 {0,3} FD2 {1,4} FD3 {2,5}: 0 (oldest of three equal), 1 (FD2, FD3 fuller), 2 (FD3 fullest), 3 (oldest left)
    assert fake.terminated == ids[:4] and [i["id"] for i in fake.instances(net_id)] == ids[4:]

    fake.cluster_networks[net_id]["lifecycleState"] = "RUNNING"
    detach = oci.core.models.DetachInstancePoolInstanceDetails
    api.call("detach_instance_pool_instance", pool_id,
             detach(instance_id=ids[5], is_decrement_size=True, is_auto_terminate=True))
    assert fake.terminated[-1] == ids[5] and fake.pool_size(net_id) == 1
    fake.cluster_networks[net_id]["lifecycleState"] = "RUNNING"
    api.call("detach_instance_pool_instance", pool_id,
             detach(instance_id=ids[4], is_decrement_size=False, is_auto_terminate=True))
    assert fake.pool_size(net_id) == 1 and ids[4] not in [i["id"] for i in fake.instances(net_id)]  # replaced


def test_a_shrink_removes_exactly_the_idle_node_cordoned_never_a_serving_one(
        config: Path, fake: FakeOci, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(config, fake, args=with_nodes(3)).exit_code == 0
    net_id = fake.network()["id"]
    i0, i1, i2 = (i["id"] for i in fake.instances(net_id))
    # OCI's own choice for 3 -> 2 would be the oldest, i0, which serves
    assert by_size_order(fake, net_id, 2) == [i0]
    objects = [node(i0, "gpu-0"), node(i1, "gpu-1"), node(i2, "gpu-2"),
               pod("llama-vllm-rdma-0", "gpu-0"), pod("llama-vllm-rdma-0-1", "gpu-1", component="worker"),
               *node_only("gpu-2")]
    with Cluster(objects, tmp_path / "kubeconfig") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        grown_only = run(config, fake, "--resize", "grow", args=with_nodes(2))
        assert grown_only.exit_code == 0, grown_only.output
        assert fake.pool_size(net_id) == 3 and "a grow-only run leaves it" in grown_only.stderr
        shrunk = run(config, fake, "--resize", "shrink", "-o", "json", args=with_nodes(2))
        assert shrunk.exit_code == 0, shrunk.output
        assert json.loads(shrunk.stdout)["removed_instances"] == [i2]
        assert fake.terminated == [i2] and fake.pool_size(net_id) == 2
        assert cluster.get("v1/nodes", None, "gpu-2")["spec"].get("unschedulable") is True
        assert not cluster.get("v1/nodes", None, "gpu-0")["spec"].get("unschedulable")
    assert not any(path.endswith(f"/instancePools/{fake.network()['instancePools'][0]['id']}")
                   for method, path in fake.calls if method == "PUT")  # never a size decrement


def test_too_few_idle_nodes_refuse_the_shrink_naming_them_and_change_nothing(
        config: Path, fake: FakeOci, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(config, fake, args=with_nodes(3)).exit_code == 0
    net_id = fake.network()["id"]
    i0, i1, i2 = (i["id"] for i in fake.instances(net_id))
    objects = [node(i0, "gpu-0"), node(i1, "gpu-1"), node(i2, "gpu-2"),
               pod("llama-vllm-rdma-0", "gpu-0"), pod("llama-vllm-rdma-0-1", "gpu-1", component="worker"),
               pod("llama-vllm-rdma-1", "gpu-2")]
    with Cluster(objects, tmp_path / "kubeconfig") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        result = run(config, fake, "--resize", "shrink", "--node-timeout", "0.2s", args=with_nodes(2))
        assert result.exit_code == 1
        assert "not shrunk: 1 node(s) must go but only 0 run no pod but DaemonSet, static or finished" in result.output
        assert "gpu-2 (ml/llama-vllm-rdma-1)" in result.output and "Nothing was cordoned or removed" in result.output
        assert all(not cluster.get("v1/nodes", None, n)["spec"].get("unschedulable")
                   for n in ("gpu-0", "gpu-1", "gpu-2"))
    assert fake.terminated == [] and fake.pool_size(net_id) == 3


def test_a_shrink_removes_only_a_node_that_runs_daemonset_pods_and_names_what_holds_the_others(
        config: Path, fake: FakeOci, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any pod but a DaemonSet's, a mirror or a finished one holds its node, in every namespace: another release's,
    a kube-system Deployment's. The shrink evicts nothing; it names the pods and how to move them, and once they have
    moved, a shrink removes their node."""
    assert run(config, fake, args=with_nodes(5)).exit_code == 0
    net_id = fake.network()["id"]
    i0, i1, i2, i3, i4 = (i["id"] for i in fake.instances(net_id))
    names = [f"gpu-{n}" for n in range(5)]
    coredns = pod("coredns-7d9f-x2k4p", "gpu-3", release="", namespace="kube-system", owner="ReplicaSet")
    objects = [*(node(i, n) for i, n in zip((i0, i1, i2, i3, i4), names, strict=True)),
               *(p for n in names for p in node_only(n)),
               pod("llama-vllm-rdma-0", "gpu-0"), pod("llama-vllm-rdma-0-1", "gpu-1", component="worker"),
               pod("chat-vllm-rdma-epp-5c7f-abcde", "gpu-2", release="chat", namespace="chat",
                   component="endpoint-picker", owner="ReplicaSet"),
               coredns]
    with Cluster(objects, tmp_path / "kubeconfig") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        refused = run(config, fake, "--resize", "shrink", "--node-timeout", "0.2s", args=with_nodes(2))
        assert refused.exit_code == 1, refused.output
        text = " ".join(refused.output.split())
        assert "3 node(s) must go but only 1 run no pod but DaemonSet, static or finished ones (free: gpu-4;" in text
        assert "gpu-2 (chat/chat-vllm-rdma-epp-5c7f-abcde); gpu-3 (kube-system/coredns-7d9f-x2k4p)" in text
        assert "gpu-0 (ml/llama-vllm-rdma-0)" in text and "kubectl drain NODE --ignore-daemonsets" in text
        assert "Nothing was cordoned or removed, and the shrink evicts nothing" in text
        assert fake.terminated == [] and fake.pool_size(net_id) == 5
        assert not any(cluster.get("v1/nodes", None, n)["spec"].get("unschedulable") for n in names)

        assert by_size_order(fake, net_id, 4) == [i0]  # OCI would take the leader's node
        shrunk = run(config, fake, "--resize", "shrink", "-o", "json", args=with_nodes(4))
        assert shrunk.exit_code == 0, shrunk.output
        assert json.loads(shrunk.stdout)["removed_instances"] == [i4] and fake.terminated == [i4]

        # the user drains gpu-3 (`kubectl drain`): its Deployment's pod comes back on a node of no network
        cluster.put({**coredns, "spec": {**coredns["spec"], "nodeName": "cpu-0"}})
        again = run(config, fake, "--resize", "shrink", "-o", "json", args=with_nodes(3))
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["removed_instances"] == [i3] and fake.terminated == [i4, i3]
        assert cluster.get("v1/nodes", None, "gpu-3")["spec"].get("unschedulable") is True
        assert not cluster.get("v1/nodes", None, "gpu-2")["spec"].get("unschedulable")
    # every node's pods were read across namespaces, by node (the provisioner's ClusterRole lists pods)
    paths = [str(r.url) for r in cluster.requests() if "/pods" in str(r.url)]
    assert paths and all("/api/v1/pods" in p and "fieldSelector=spec.nodeName" in p for p in paths), paths


def test_a_shrink_only_run_never_creates_and_a_grow_only_run_never_shrinks(config: Path, fake: FakeOci) -> None:
    result = run(config, fake, "--resize", "shrink", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "ABSENT" and fake.cluster_networks == {}
    assert "nothing to shrink" in result.stderr
    assert run(config, fake, args=with_nodes(3)).exit_code == 0
    again = run(config, fake, "--resize", "shrink", "-o", "json", args=with_nodes(4))  # a shrink-only run asked more
    assert again.exit_code == 0 and fake.pool_size(fake.network()["id"]) == 3


def test_two_grows_at_once_the_second_reads_again_instead_of_writing_over_the_first(config: Path,
                                                                                  fake: FakeOci) -> None:
    assert run(config, fake).exit_code == 0
    net_id = fake.network()["id"]
    fake.update_barrier = threading.Barrier(2)
    outcomes: dict[int, Any] = {}

    def go(nodes: int) -> None:
        plan = flags_plan(config, fake, nodes)._replace(resize="grow")
        try:
            outcomes[nodes] = provision(plan, env=HelmEnv(), watch=Watch(poll_seconds=0.01))
        except Exception as exc:  # reported below
            outcomes[nodes] = exc

    threads = [threading.Thread(target=go, args=(n,)) for n in (3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(isinstance(o, Exception) for o in outcomes.values()), outcomes
    # Both wrote with the ETag they had read; the one OCI took second was refused (412) and read the network again.
    stale = [r for r in fake.refusals if r[0] == "PUT" and r[2] == 412]
    assert len(stale) == 1
    puts = sum(1 for method, path in fake.calls if method == "PUT" and path.endswith(net_id))
    assert fake.pool_size(net_id) == 4  # both only grow: the larger ask stands, whichever OCI took first
    if puts == 3:  # the 3 went first; the 4 read 3 and grew from there
        assert outcomes[4].network.resized_from == 3
    else:  # the 4 went first; the 3 read 4 and, growing only, left it
        assert puts == 2 and outcomes[3].network.left_larger and outcomes[3].network.resized_from is None


def test_a_failed_create_deletes_the_instance_configuration_it_made(config: Path, fake: FakeOci) -> None:
    fake.fail("POST", r".*/clusterNetworks", 400, "LimitExceeded",
              "The following service limits were exceeded: bm-gpu-h100-count")
    result = run(config, fake)
    assert result.exit_code == 1
    assert "LimitExceeded" in result.output and "bm-gpu-h100-count" in result.output
    assert "The instance configuration this run created, ocid1.instanceconfiguration." in result.output
    assert "was deleted" in result.output
    assert fake.instance_configurations == {} and fake.cluster_networks == {}
    assert posts(fake, "/instanceConfigurations") == 1
    # the next run, once the limit is raised, makes both again
    again = run(config, fake, "-o", "json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["created_instance_configuration"]


def test_two_shrinks_at_once_remove_the_idle_nodes_once_and_never_more(
        config: Path, fake: FakeOci, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(config, fake, args=with_nodes(4)).exit_code == 0
    net_id = fake.network()["id"]
    i0, i1, i2, i3 = (i["id"] for i in fake.instances(net_id))
    objects = [node(i0, "gpu-0"), node(i1, "gpu-1"), node(i2, "gpu-2"), node(i3, "gpu-3"),
               pod("llama-vllm-rdma-0", "gpu-0"), pod("llama-vllm-rdma-0-1", "gpu-1", component="worker")]
    outcomes: list[Any] = []

    def go() -> None:
        flags = ProvisionFlags(preset="h100", nodes=2, name="llama", compartment=COMPARTMENT,
                               availability_domain="Uocm:US-ASHBURN-AD-1", subnet="ocid1.subnet.oc1..sub",
                               image="ocid1.image.oc1..img", wait_nodes=False)
        auth = OciAuth(mode="apiKey", config_file=str(config), profile="DEFAULT", endpoint=fake.url)
        plan = plan_from_flags(flags, auth=auth, release=None, namespace="default")._replace(resize="shrink")
        try:
            outcomes.append(provision(plan, env=HelmEnv(kubeconfig=str(tmp_path / "kubeconfig")),
                                      watch=Watch(poll_seconds=0.01)))
        except Exception as exc:  # reported below
            outcomes.append(exc)

    with Cluster(objects, tmp_path / "kubeconfig"):
        threads = [threading.Thread(target=go) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert sorted(fake.terminated) == sorted([i2, i3]) and fake.pool_size(net_id) == 2
    removed = [i for o in outcomes for i in o.network.removed_instances]
    assert sorted(removed) == sorted([i2, i3])  # each went once, by one of the two runs


def test_the_provisioner_may_cordon_nodes_and_read_pods_and_nothing_more() -> None:
    """What a shrink calls (cluster/kube.py network_nodes: list_node, list_pod_for_all_namespaces by spec.nodeName;
    cordon: patch_node), and nothing more: pods are read cluster-wide (any pod on a node holds it) but never evicted
    or deleted; no namespaced Role of the provisioner remains (the preflight's events Role is another's)."""
    from .rendering import PROVISION, render

    def rules(docs: list[dict[str, Any]], kind: str) -> list[tuple[str, tuple[str, ...]]]:
        return [(r, tuple(rule["verbs"])) for d in docs if d["kind"] == kind and "provisioner" in d["metadata"]["name"]
                for rule in d["rules"] for r in rule["resources"]]

    docs = render(*PROVISION)
    assert rules(docs, "ClusterRole") == [("nodes", ("get", "list", "watch")), ("nodes", ("patch",)),
                                          ("pods", ("get", "list"))]
    assert rules(docs, "Role") == []
    assert not [d for d in docs if d["kind"] == "RoleBinding" and "provisioner" in d["metadata"]["name"]]
    [binding] = [d for d in docs if d["kind"] == "ClusterRoleBinding" and "provisioner" in d["metadata"]["name"]]
    assert binding["subjects"][0] == {"kind": "ServiceAccount", "name": "llama405b-vllm-rdma-provisioner",
                                      "namespace": "llm"}
    # deprovisioning only: it reads nodes and nothing else
    only_delete = render("clusterNetwork.deleteOnUninstall=true", "clusterNetwork.compartmentId=ocid1.compartment.oc1..c",
                         "clusterNetwork.image.repository=iad.ocir.io/example/helm-rdma-provisioner")
    assert rules(only_delete, "ClusterRole") == [("nodes", ("get", "list", "watch"))]


def test_the_picker_and_the_provisioning_jobs_prefer_nodes_off_the_cluster_network() -> None:
    """A shrink keeps a node that runs the picker or its own Job: both prefer nodes without the network's label (NotIn
    matches a node without the label: "NotIn and DoesNotExist allow you to define node anti-affinity behavior",
    kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#node-affinity). Only preferred: on a cluster of
    the network's GPU nodes only, a required rule would leave them unschedulable."""
    from .rendering import PROVISION, render

    def affinities(docs: list[dict[str, Any]]) -> dict[str, Any]:
        return {d["metadata"]["name"]: d["spec"]["template"]["spec"].get("affinity") for d in docs
                if d["kind"] in ("Deployment", "Job") and "test" not in d["metadata"]["name"]}

    docs = render(*PROVISION, "router.enabled=true", "clusterNetwork.deleteOnUninstall=true")
    # the serving pods require the network's nodes by the label; the others prefer any node but those
    [lws] = [d for d in docs if d["kind"] == "LeaderWorkerSet"]
    network = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["nodeSelector"][LABEL]
    assert network == "llama405b.llm"
    off = {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {"matchExpressions": [{"key": LABEL, "operator": "NotIn", "values": [network]}]}},
        {"weight": 50, "preference": {"matchExpressions": [{"key": LABEL, "operator": "DoesNotExist"}]}}]}
    assert affinities(docs) == {name: {"nodeAffinity": off} for name in (
        "llama405b-vllm-rdma-epp", "llama405b-vllm-rdma-provision", "llama405b-vllm-rdma-shrink",
        "llama405b-vllm-rdma-deprovision")}
    # pods that do not select by the label: no preference either
    assert affinities(render("router.enabled=true")) == {"llama405b-vllm-rdma-epp": None}


def test_a_network_that_keeps_changing_under_a_grow_fails_after_a_few_reads_naming_why(config: Path,
                                                                                     fake: FakeOci) -> None:
    assert run(config, fake).exit_code == 0
    net_id = fake.network()["id"]
    fake.fail("PUT", rf".*/clusterNetworks/{net_id}", 412, "PreconditionFailed", "etag mismatch", times=10)
    result = run(config, fake, args=with_nodes(3))
    assert result.exit_code == 1
    assert f"cluster network llama ({net_id}) changed under this run 4 times" in result.output
    assert "another resize is running" in result.output
    assert sum(1 for r in fake.refusals if r[2] == 412) == 4 and fake.pool_size(net_id) == 2


@pytest.mark.parametrize("unschedulable, verb", [(True, "cordoning"), (False, "uncordoning")])
def test_a_node_patch_that_cannot_reach_the_api_server_names_what_it_was_doing(
        tmp_path: Path, unschedulable: bool, verb: str) -> None:
    """A shrink that gives a node back uncordons it: a failure then must not say it was cordoning it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing answers there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}], "users": [{"name": "u", "user": {}}]}))
    with pytest.raises(ClusterError, match=f"{verb} node gpu-1"):
        cordon(names=["gpu-1"], env=HelmEnv(kubeconfig=str(kubeconfig)), unschedulable=unschedulable)
