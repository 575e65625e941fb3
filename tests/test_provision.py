"""Provisioning with the real `oci` SDK, signing real requests to a fake Compute Management API on 127.0.0.1."""
# ruff: noqa: F811  (the fixtures imported from ocitest are redefined as test parameters)

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import oci
import pytest
import yaml

from helm_rdma.commands.generate import generate
from helm_rdma.commands.provision import ProvisionPlan, Watch, plan_from_values, provision
from helm_rdma.errors import CapacityError, GroupPortsOpenError, GroupPortsUncheckedError, InputError
from helm_rdma.helmenv import HelmEnv
from helm_rdma.oci.clients import OciAuth
from helm_rdma.oci.network import (
    TAG_NAMESPACE,
    TAG_NETWORK,
    TAG_NODES,
    TAG_RELEASE,
    NetworkSpec,
    instance_configuration_details,
)

from .fake_oci import FakeOci, make_key, write_config
from .kmock_cluster import Cluster
from .ocitest import COMPARTMENT, OURS, config, fake, key, posts, run  # noqa: F401  (fixtures)
from .rendering import request


def test_creates_the_instance_configuration_and_the_network_and_reports_running(config: Path, fake: FakeOci) -> None:
    result = run(config, fake, "-o", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["state"] == "RUNNING" and out["instances_running"] == 2
    assert out["created_cluster_network"] and out["created_instance_configuration"]
    assert out["cluster_network_id"] in fake.cluster_networks
    assert out["instance_configuration_id"] in fake.instance_configurations
    assert f"helm-rdma: {out['api_calls']} OCI API calls" in result.stderr
    assert "cluster network PROVISIONING, " in result.stderr and "cluster network RUNNING, 2/2" in result.stderr
    assert fake.rejected == []  # every request carried a valid signature

    [config_item] = fake.instance_configurations.values()
    launch = config_item["instanceDetails"]["launchDetails"]
    assert launch["shape"] == "BM.GPU.H100.8"
    assert {p["name"] for p in launch["agentConfig"]["pluginsConfig"]} == {
        "Compute HPC RDMA Authentication", "Compute HPC RDMA Auto-Configuration"}
    assert all(p["desiredState"] == "ENABLED" for p in launch["agentConfig"]["pluginsConfig"])
    assert launch["metadata"]["oke-initial-node-labels"] == "helm-rdma.io/cluster-network=llama"
    assert launch["createVnicDetails"]["assignPublicIp"] is False
    [network] = fake.cluster_networks.values()
    assert network["freeformTags"] == config_item["freeformTags"] == {**OURS, TAG_NODES: network["freeformTags"][TAG_NODES]}
    assert network["instancePools"][0]["size"] == 2
    assert network["placementConfiguration"]["primaryVnicSubnets"]["subnetId"] == "ocid1.subnet.oc1..sub"


def test_a_second_run_creates_nothing_and_returns_at_once(config: Path, fake: FakeOci) -> None:
    assert run(config, fake).exit_code == 0
    calls_before = len(fake.calls)
    result = run(config, fake, "-o", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert not out["created_cluster_network"] and not out["created_instance_configuration"]
    assert (len(fake.instance_configurations), len(fake.cluster_networks)) == (1, 1)
    assert posts(fake, "/clusterNetworks") == 1
    assert len(fake.calls) - calls_before == out["api_calls"] <= 4  # list networks, list instances (paged)


def test_a_run_after_a_crash_reuses_the_instance_configuration(config: Path, fake: FakeOci) -> None:
    # The crashed run got as far as the instance configuration.
    fake.polls_to_running = 10**6
    crashed = run(config, fake, "--timeout", "0.05s")
    assert crashed.exit_code == 1
    assert "not RUNNING after" in crashed.output and "the next run resumes this network" in crashed.output
    fake.cluster_networks.clear()
    fake.tokens = {t: s for t, s in fake.tokens.items() if s["id"] in fake.instance_configurations}
    fake.polls_to_running = 2
    result = run(config, fake, "-o", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert not out["created_instance_configuration"] and out["created_cluster_network"]
    assert len(fake.instance_configurations) == 1 and posts(fake, "/instanceConfigurations") == 1


def test_a_run_after_a_crash_resumes_waiting_for_the_network(config: Path, fake: FakeOci) -> None:
    fake.polls_to_running = 10**6
    assert run(config, fake, "--timeout", "0.05s").exit_code == 1
    fake.polls_to_running = 1
    result = run(config, fake, "-o", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["state"] == "RUNNING" and not out["created_cluster_network"]
    assert posts(fake, "/clusterNetworks") == 1


def test_throttling_and_server_errors_are_retried(config: Path, fake: FakeOci) -> None:
    fake.fail("POST", r".*/instanceConfigurations", 429, "TooManyRequests", "slow down")
    fake.fail("GET", r".*/clusterNetworks/[^/]+", 500, "InternalServerError", "try again")
    result = run(config, fake)
    assert result.exit_code == 0, result.output
    assert posts(fake, "/instanceConfigurations") == 2  # the 429, then the retry with the same token
    assert len(fake.instance_configurations) == 1


def test_out_of_capacity_names_shape_and_domain_and_cleans_up(config: Path, fake: FakeOci) -> None:
    fake.fail("POST", r".*/clusterNetworks", 400, "LimitExceeded", "Out of host capacity.")
    result = run(config, fake)
    assert result.exit_code == 1
    assert "OCI is out of host capacity for 2 x BM.GPU.H100.8 in Uocm:US-ASHBURN-AD-1" in result.output
    assert "another availability domain, a capacity reservation, or fewer nodes" in result.output
    assert "opc-request-id fake-" in result.output
    assert "was deleted" in result.output and fake.instance_configurations == {}


def test_out_of_capacity_as_a_server_error_after_retries(key: tuple[Path, Any, str], config: Path,
                                                         fake: FakeOci) -> None:
    fake.fail("POST", r".*/clusterNetworks", 500, "InternalError", "Out of host capacity.", times=100)
    quick = oci.retry.RetryStrategyBuilder(max_attempts=3, retry_base_sleep_time_seconds=0.01,
                                           retry_max_wait_between_calls_seconds=0.02).get_retry_strategy()
    plan = ProvisionPlan(spec=NetworkSpec(name="llama", compartment_id=COMPARTMENT, availability_domain="AD-2",
                                          subnet_id="s", image_id="i", shape="BM.GPU.H200.8", size=4,
                                          release="llama", namespace="default"),
                         auth=OciAuth(config_file=str(config), endpoint=fake.url), wait_nodes=False)
    with pytest.raises(CapacityError, match="out of host capacity for 4 x BM.GPU.H200.8 in AD-2"):
        provision(plan, env=HelmEnv(), watch=Watch(poll_seconds=0.01, retry_strategy=quick))
    assert posts(fake, "/clusterNetworks") == 3


def test_slow_progress_is_reported_until_running(config: Path, fake: FakeOci) -> None:
    fake.polls_to_running = 5
    result = run(config, fake)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "cluster network PROVISIONING" in line]
    assert len(lines) == 4  # the first look right after the create call is not reported
    assert "1/2 instances running" in result.stderr


def test_a_network_that_ends_terminated_is_an_error(config: Path, fake: FakeOci) -> None:
    fake.add_network("llama", COMPARTMENT, tags=OURS, state="STOPPED")
    result = run(config, fake)
    assert result.exit_code == 1
    assert "is STOPPED: start it again in the OCI console, or delete it (helm rdma deprovision --name llama" in result.output


def test_wrong_key_names_the_auth_mode_and_what_to_check(tmp_path: Path, fake: FakeOci) -> None:
    other_key, _, fingerprint = make_key(tmp_path)
    result = run(write_config(tmp_path, other_key, fingerprint), fake)
    assert result.exit_code == 1
    assert "OCI refused auth mode apiKey: 401 NotAuthenticated" in result.output
    assert "check user, fingerprint, key_file and tenancy" in result.output
    assert fake.cluster_networks == {} and fake.instance_configurations == {}


def test_missing_config_file_is_bad_input(tmp_path: Path, fake: FakeOci) -> None:
    result = run(tmp_path / "nope", fake)
    assert result.exit_code == 2
    assert f"--oci-config {tmp_path / 'nope'}, profile [DEFAULT]: no such file" in result.output


def test_missing_flags_are_named(config: Path, fake: FakeOci) -> None:
    result = run(config, fake, args=["provision", "--preset", "h100", "--nodes", "2"])
    assert result.exit_code == 2
    assert "provision needs --name, --compartment, --availability-domain, --subnet, --image" in result.output


def test_deprovision_touches_only_what_is_tagged_as_ours(config: Path, fake: FakeOci) -> None:
    assert run(config, fake).exit_code == 0
    foreign = fake.add_network("llama", COMPARTMENT, tags={})
    other_release = fake.add_network("llama", COMPARTMENT, tags={**OURS, TAG_RELEASE: "other"})
    [ours] = [i for i, n in fake.cluster_networks.items() if n["freeformTags"].get(TAG_NODES)]
    args = ["deprovision", "--name", "llama", "--compartment", COMPARTMENT, "--poll-interval", "0.01"]

    declined = run(config, fake, args=args, input="n\n")
    assert declined.exit_code == 1 and "nothing terminated" in declined.output
    assert ours in declined.output and foreign not in declined.output
    assert fake.cluster_networks[ours]["lifecycleState"] == "RUNNING"

    result = run(config, fake, "--yes", "-o", "json", args=args)
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["terminatedNetworks"] == [ours] and len(done["deletedInstanceConfigurations"]) == 1
    assert done["apiCalls"] > 0 and done["foundNetworks"] == [ours]
    assert fake.cluster_networks[ours]["lifecycleState"] == "TERMINATED"
    assert fake.cluster_networks[foreign]["lifecycleState"] == "RUNNING"
    assert fake.cluster_networks[other_release]["lifecycleState"] == "RUNNING"
    assert fake.instance_configurations == {}
    again = run(config, fake, "--yes", args=args)
    assert again.exit_code == 0 and "nothing tagged as ours" in again.output


def values_file(tmp_path: Path, fake: FakeOci, oke: dict[str, Any] | None = None, **cluster_network: Any) -> Path:
    """The generated chart's values with these clusterNetwork keys (and clusterNetwork.oke keys)."""
    chart = generate(request(), output=tmp_path / "chart").path
    values = yaml.safe_load((chart / "values.yaml").read_text())
    values["clusterNetwork"].update(cluster_network)
    values["clusterNetwork"]["oke"].update(oke or {})
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    return path


def test_from_values_is_what_the_hook_runs(config: Path, fake: FakeOci, tmp_path: Path) -> None:
    subnet, nsg = closed_subnet(fake)
    path = values_file(tmp_path, fake, compartmentId=COMPARTMENT, availabilityDomain="AD-1",
                       subnetId=subnet, imageId="ocid1.image.oc1..i", auth="apiKey", nsgIds=[nsg], oke=native(fake))
    # The hook passes the name and label its helpers computed (tests/test_placement.py checks the chart side).
    plan = plan_from_values(path, release="llama405b", namespace="ml", name="llama405b.ml",
                            node_label="helm-rdma.io/cluster-network=llama405b.ml")
    assert plan.spec.size == 2 and plan.spec.shape == "BM.GPU.H100.8" and plan.spec.name == "llama405b.ml"
    assert plan.node_label == ("helm-rdma.io/cluster-network", "llama405b.ml")
    assert plan.setup.labels == {"helm-rdma.io/cluster-network": "llama405b.ml"}
    assert plan.auth.mode == "apiKey"
    assert plan.auth.config_file == "/etc/oci/config"  # where the hook mounts the apiKey Secret
    plan = plan._replace(auth=plan.auth._replace(config_file=str(config), endpoint=fake.url), wait_nodes=False)
    result = provision(plan, env=HelmEnv(), watch=Watch(poll_seconds=0.01))
    assert result.network.state == "RUNNING"
    [network] = fake.cluster_networks.values()
    assert {k: network["freeformTags"][k] for k in (TAG_RELEASE, TAG_NAMESPACE, TAG_NETWORK)} == {
        TAG_RELEASE: "llama405b", TAG_NAMESPACE: "ml", TAG_NETWORK: "llama405b.ml"}


def test_with_a_scaler_the_network_holds_the_nodes_of_its_largest_count(fake: FakeOci, tmp_path: Path) -> None:
    """autoscaling.enabled: the scaler owns the group count (the LeaderWorkerSet renders no replicas), so the
    network is sized once for autoscaling.maxReplicas groups and the hooks never resize it to `replicas`."""
    path = values_file(tmp_path, fake, compartmentId=COMPARTMENT, availabilityDomain="AD-1",
                       subnetId="ocid1.subnet.oc1..s", imageId="ocid1.image.oc1..i")
    values = json.loads(path.read_text())
    values["replicas"] = 3
    assert plan_from_values(path.parent / _write(path, values), release="r", namespace="ml", name="r.ml",
                            node_label="k=v").spec.size == 6
    values["autoscaling"].update(enabled=True, minReplicas=1, maxReplicas=4)
    assert plan_from_values(path.parent / _write(path, values), release="r", namespace="ml", name="r.ml",
                            node_label="k=v").spec.size == 8


def _write(path: Path, values: dict[str, Any]) -> str:
    path.write_text(json.dumps(values))
    return path.name


def test_from_values_without_a_name_asks_for_one(tmp_path: Path, fake: FakeOci) -> None:
    path = values_file(tmp_path, fake, compartmentId=COMPARTMENT, availabilityDomain="AD-1",
                       subnetId="ocid1.subnet.oc1..s", imageId="ocid1.image.oc1..i")
    with pytest.raises(InputError, match="clusterNetwork.name is empty: provisioning needs it; .* --name"):
        plan_from_values(path, release="llama405b", namespace="ml")


# --- the hook judges the group's ports before it creates anything (hostNetwork, more than one node) ---------------
# OCI admits the union of the subnet's security lists and the VNIC's NSGs (docs.oracle.com/iaas/Content/Network/
# Concepts/securityrules.htm, "Comparison of Security Lists and Network Security Groups"); OKE quick-create's worker
# subnet list admits all protocols from the worker CIDR (docs.oracle.com/iaas/Content/ContEng/Concepts/
# contengnetworkconfigexample.htm). The judge's own rules: tests/test_group_ports.py.
WORKERS_ALL = {"description": "Allow all traffic from worker nodes", "protocol": "all", "source": "10.0.10.0/24",
               "sourceType": "CIDR_BLOCK", "isStateless": False}
SSH_AND_KUBELET = [{"protocol": "6", "source": "0.0.0.0/0", "isStateless": False,
                    "tcpOptions": {"destinationPortRange": {"min": 22, "max": 22}}},
                   {"protocol": "6", "source": "10.0.0.0/28", "isStateless": False,
                    "tcpOptions": {"destinationPortRange": {"min": 10250, "max": 10250}}}]


def closed_subnet(fake: FakeOci) -> tuple[str, str]:
    """A subnet whose list admits SSH and the kubelet only, and an NSG that admits TCP from itself."""
    nsg = fake.add_nsg({"direction": "INGRESS", "protocol": "6", "source": "SELF",
                        "sourceType": "NETWORK_SECURITY_GROUP", "isStateless": False})
    return fake.add_subnet("10.0.10.0/24", SSH_AND_KUBELET), nsg


def native(fake: FakeOci) -> dict[str, Any]:
    """clusterNetwork.oke of a VCN-native OKE cluster (pods have VCN addresses, so OCI's rules reach them), its pod
    subnet's list closed to the group's ports."""
    return {"clusterId": fake.add_cluster(cni="OCI_VCN_IP_NATIVE"),
            "podSubnetId": fake.add_subnet("10.0.64.0/18", SSH_AND_KUBELET)}


def hook_plan(path: Path, config: Path, fake: FakeOci) -> ProvisionPlan:
    """The hook's plan of the values at ``path`` (as `provision --from-values` reads them), signed in to ``fake``
    with the test key where the hook would read its mounted config."""
    plan = plan_from_values(path, release="llama405b", namespace="ml")
    return plan._replace(auth=OciAuth(config_file=str(config), endpoint=fake.url), wait_nodes=False)


def creates(fake: FakeOci) -> list[str]:
    return [f"{m} {p}" for m, p in fake.calls if m != "GET"]


def test_the_hook_refuses_a_subnet_that_opens_the_group_ports_before_it_creates_anything(
        config: Path, fake: FakeOci, tmp_path: Path) -> None:
    _, nsg = closed_subnet(fake)
    subnet = fake.add_subnet("10.0.10.0/24", SSH_AND_KUBELET, [WORKERS_ALL])
    oke = native(fake)
    path = unguarded(values_file(tmp_path, fake, compartmentId=COMPARTMENT, availabilityDomain="AD-1", subnetId=subnet,
                                 imageId="ocid1.image.oc1..i", nsgIds=[nsg], name="llama405b.ml", oke=oke))
    with pytest.raises(GroupPortsOpenError) as refused:
        provision(hook_plan(path, config, fake), env=HelmEnv(), watch=Watch(poll_seconds=0.01))
    assert refused.value.exit_code == 1
    [second] = fake.subnets[subnet]["securityListIds"][1:]
    assert (f'  clusterNetwork.subnetId {subnet}: security list {second} ingress rule #0 (the first, "Allow all '
            'traffic from worker nodes") admits TCP from 10.0.10.0/24 to every port\nnothing was created; fix: give '
            "the GPU nodes a subnet of their own") in str(refused.value)
    assert "or set distributed.allowOpenGroupPorts=true" in str(refused.value)
    assert creates(fake) == [] and not fake.instance_configurations and not fake.cluster_networks
    # Each object is read once: the network (none yet), the nodes' and the pods' subnets and their lists, the NSG's
    # rules and, as its rule from itself admits its members, its members (none: only the new nodes will carry it),
    # the cluster's CNI.
    first = fake.subnets[subnet]["securityListIds"][0]
    [pods] = fake.subnets[oke["podSubnetId"]]["securityListIds"]
    assert sorted(p.split("?")[0].split("/", 2)[2] for _, p in fake.calls) == sorted([
        "clusterNetworks", f"subnets/{subnet}", f"securityLists/{first}", f"securityLists/{second}",
        f"subnets/{oke['podSubnetId']}", f"securityLists/{pods}",
        f"networkSecurityGroups/{nsg}/securityRules", f"networkSecurityGroups/{nsg}/vnics",
        f"clusters/{next(iter(fake.clusters))}"])


def test_the_hook_that_cannot_read_the_rules_creates_nothing(config: Path, fake: FakeOci, tmp_path: Path) -> None:
    path = unguarded(values_file(tmp_path, fake, compartmentId=COMPARTMENT, availabilityDomain="AD-1",
                                 subnetId="ocid1.subnet.oc1..gone", imageId="ocid1.image.oc1..i", name="llama405b.ml"))
    with pytest.raises(GroupPortsUncheckedError) as refused:
        provision(hook_plan(path, config, fake), env=HelmEnv(), watch=Watch(poll_seconds=0.01))
    said = str(refused.value)
    assert refused.value.exit_code == 1 and "cannot tell whether OCI's ingress rules keep the group's ports" in said
    assert "get_subnet failed: 404" in said and "clusterNetwork.subnetId (--subnet)" in said
    assert "nothing was created; fix: make the check possible (a policy that lets the hook's sign-in" in said
    assert creates(fake) == []


def unguarded(chart: Path) -> Path:
    """The values with the pods' port guard off: OCI's rules are then what must close the group's ports."""
    values = json.loads(chart.read_text())
    values["distributed"]["portGuard"]["enabled"] = False
    chart.write_text(json.dumps(values))
    return chart


@pytest.mark.parametrize("accepted", ["portGuard", "allowOpenGroupPorts"])
def test_the_hook_with_the_ports_guarded_or_accepted_open_reads_no_rule(config: Path, fake: FakeOci, tmp_path: Path,
                                                                      accepted: str) -> None:
    """The default: each serving pod's port guard closes the ports on its node (files/port_guard.py)."""
    chart = values_file(tmp_path, fake, compartmentId=COMPARTMENT, availabilityDomain="AD-1",
                        subnetId="ocid1.subnet.oc1..unread", imageId="ocid1.image.oc1..i", name="llama405b.ml")
    if accepted == "allowOpenGroupPorts":
        values = json.loads(unguarded(chart).read_text())
        values["distributed"]["allowOpenGroupPorts"] = True
        chart.write_text(json.dumps(values))
    plan = hook_plan(chart, config, fake)
    assert plan.group_ports is None
    assert provision(plan, env=HelmEnv(), watch=Watch(poll_seconds=0.01)).network.state == "RUNNING"
    assert not [p for _, p in fake.calls if "/subnets/" in p or "/securityLists/" in p]


def test_a_shrink_creates_nothing_and_reads_no_rule(config: Path, fake: FakeOci, tmp_path: Path) -> None:
    path = unguarded(values_file(tmp_path, fake, compartmentId=COMPARTMENT, availabilityDomain="AD-1",
                                 subnetId="ocid1.subnet.oc1..unread", imageId="ocid1.image.oc1..i", name="llama405b.ml"))
    plan = hook_plan(path, config, fake)._replace(resize="shrink")
    assert plan.group_ports is not None
    assert provision(plan, env=HelmEnv(), watch=Watch(poll_seconds=0.01)).network.state == "ABSENT"
    assert not [p for _, p in fake.calls if "/subnets/" in p]


def test_from_values_names_a_missing_setting(config: Path, fake: FakeOci, tmp_path: Path) -> None:
    path = values_file(tmp_path, fake, compartmentId=COMPARTMENT)
    result = run(config, fake, args=["provision", "--from-values", str(path), "--release", "llama405b"])
    assert result.exit_code == 2
    assert "clusterNetwork.availabilityDomain is empty: provisioning needs it" in result.output


def node(name: str, *, ready: bool, label: str | None = "llama") -> dict[str, Any]:
    labels = {"node.kubernetes.io/instance-type": "BM.GPU.H100.8"}
    if label:
        labels["helm-rdma.io/cluster-network"] = label
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_waits_for_the_network_nodes_to_be_ready(config: Path, fake: FakeOci, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = [node("gpu-1", ready=True), node("gpu-2", ready=True), node("cpu-1", ready=True, label=None)]
    with Cluster(nodes, tmp_path / "kubeconfig") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        result = run(config, fake, "-o", "json", wait_nodes=True)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["nodes_ready"] == 2
    assert "nodes Ready 2/2 (2 seen)" in result.stderr


def test_nodes_that_never_register_fail_with_their_own_console_words(config: Path, fake: FakeOci, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The network keeps billing while the hook waits: when the nodes do not register in time the hook fails with
    what each unregistered node printed (OCI console history: CaptureConsoleHistory, then its content), and the
    node that did register is not asked about."""
    fake.consoles["*"] = ("[  OK  ] Started cloud-init\nhelm-rdma: installing oci-oke-node-all-1.34.1 from https://x\n"
                          "helm-rdma: could not install oci-oke-node-all-1.34.1 from https://x "
                          "(clusterNetwork.oke.nodePackageRepository): check ...\nCloud-init finished\n")
    assert run(config, fake).exit_code == 0  # the network exists; its first instance is the node that registered
    first, second = (i["id"] for i in fake.instances(fake.network()["id"]))
    registered = node("gpu-1", ready=True)
    registered["spec"] = {"providerID": f"oci://{first}"}
    with Cluster([registered], tmp_path / "kubeconfig") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        result = run(config, fake, "--node-timeout", "0.1s", wait_nodes=True)
    assert result.exit_code == 1
    assert "1 of 2 nodes with helm-rdma.io/cluster-network=llama are Ready after" in result.output
    assert (f"console of {second}, last lines:\n  helm-rdma: installing oci-oke-node-all-1.34.1 from https://x\n"
            "  helm-rdma: could not install oci-oke-node-all-1.34.1 from https://x "
            "(clusterNetwork.oke.nodePackageRepository)") in result.output
    assert first not in result.output.split("billed")[1]
    captured = [path for method, path in fake.calls if method == "POST" and path.endswith("/instanceConsoleHistories")]
    assert len(captured) == 1 and fake.console_histories == {}  # captured once, then deleted


def test_a_console_that_cannot_be_read_does_not_hide_why_the_hook_failed(config: Path, fake: FakeOci,
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fake.fail("POST", r".*/instanceConsoleHistories", 404, "NotAuthorizedOrNotFound", "no", times=5)
    with Cluster([node("cpu-1", ready=True, label=None)], tmp_path / "kubeconfig") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        result = run(config, fake, "--node-timeout", "0.1s", wait_nodes=True)
    assert result.exit_code == 1
    assert "0 of 2 nodes with helm-rdma.io/cluster-network=llama are Ready after" in result.output
    assert result.output.count(": not read (OCI capture_console_history failed: 404") == 2


def test_the_nodes_vnic_carries_the_nsgs_given(config: Path, fake: FakeOci) -> None:
    nsgs = ["ocid1.networksecuritygroup.oc1.iad.a", "ocid1.networksecuritygroup.oc1.iad.b"]
    result = run(config, fake, "--nsg", nsgs[0], "--nsg", nsgs[1])
    assert result.exit_code == 0, result.output
    [item] = fake.instance_configurations.values()
    assert item["instanceDetails"]["launchDetails"]["createVnicDetails"]["nsgIds"] == nsgs


def test_an_nsg_flag_that_is_no_nsg_ocid_is_refused_before_anything_is_made(config: Path, fake: FakeOci) -> None:
    result = run(config, fake, "--nsg", "ocid1.subnet.oc1..s")
    assert result.exit_code == 2
    assert ("--nsg: 'ocid1.subnet.oc1..s' is not an OCID of kind networksecuritygroup "
            "(ocid1.networksecuritygroup...) (clusterNetwork.nsgIds[0])") in result.output
    assert fake.calls == []


def test_the_hook_reads_the_nsgs_and_the_node_settings_from_the_values(fake: FakeOci, tmp_path: Path) -> None:
    path = values_file(tmp_path, fake, compartmentId=COMPARTMENT, availabilityDomain="AD-1",
                       subnetId="ocid1.subnet.oc1..s", imageId="ocid1.image.oc1..i",
                       nsgIds=["ocid1.networksecuritygroup.oc1..n"], nvmeRaidLevel=0)
    plan = plan_from_values(path, release="llama405b", namespace="ml", name="n", node_label="k=v")
    assert plan.spec.nsg_ids == ("ocid1.networksecuritygroup.oc1..n",)
    assert plan.setup.raid_level == 0 and "{codename}" in plan.setup.package_repository
    details = oci.util.to_dict(instance_configuration_details(plan.spec, {}))
    assert details["instance_details"]["launch_details"]["create_vnic_details"]["nsg_ids"] == [
        "ocid1.networksecuritygroup.oc1..n"]

def test_gives_up_when_the_nodes_never_turn_ready(config: Path, fake: FakeOci, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with Cluster([node("gpu-1", ready=True), node("gpu-2", ready=False)], tmp_path / "kubeconfig") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        result = run(config, fake, "--node-timeout", "0.1s", wait_nodes=True)
    assert result.exit_code == 1
    assert "1 of 2 nodes with helm-rdma.io/cluster-network=llama are Ready after" in result.output
    assert "(2 joined the cluster). Cluster network llama (ocid1.clusternetwork." in result.output
    assert "is still running and billed" in result.output
    assert "delete it: helm rdma deprovision --name llama --compartment ocid1.compartment.oc1..aaaaaaaatest " \
           "--release llama --namespace default" in result.output
