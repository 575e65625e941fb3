"""The cluster network always matches what was asked, with the real `oci` SDK against the fake OCI API: resize,
refuse, recreate after death or deprovisioning (under both of OCI's answers to an old retry token), one network for
two runs at once, and network failures that end in one line."""
# ruff: noqa: F811  (the fixtures imported from ocitest are redefined as test parameters)

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from helm_rdma.commands.provision import Watch, provision
from helm_rdma.helmenv import HelmEnv
from helm_rdma.oci.network import TAG_NODES

from .fake_oci import FakeOci, refused_endpoint, silent_endpoint
from .kmock_cluster import Cluster
from .ocitest import BASE, COMPARTMENT, OURS, config, fake, flags_plan, key, posts, run  # noqa: F401  (fixtures)

DEPROVISION = ["deprovision", "--name", "llama", "--compartment", COMPARTMENT, "--poll-interval", "0.01", "--yes"]


def with_flag(flag: str, value: str) -> list[str]:
    args = list(BASE)
    args[args.index(flag) + 1] = value
    return args


def test_nothing_differs_returns_at_once_with_two_calls(config: Path, fake: FakeOci) -> None:
    assert run(config, fake).exit_code == 0
    before = len(fake.calls)
    result = run(config, fake, "-o", "json")
    assert result.exit_code == 0, result.output
    assert len(fake.calls) - before == json.loads(result.stdout)["api_calls"] == 2  # list networks, list instances


def test_a_new_node_count_resizes_the_network_and_back(config: Path, fake: FakeOci, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(config, fake).exit_code == 0
    net_id = fake.network()["id"]
    grown = run(config, fake, "-o", "json", args=with_flag("--nodes", "3"))
    assert grown.exit_code == 0, grown.output
    out = json.loads(grown.stdout)
    assert (out["resized_from"], out["size"], out["instances_running"]) == (2, 3, 3)
    assert fake.pool_size(net_id) == 3 and "cluster network SCALING" in grown.stderr
    # A shrink reads the cluster for the nodes that serve (tests/test_resize.py); here no instance became a node.
    with Cluster([], tmp_path / "kubeconfig") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        shrunk = run(config, fake, args=with_flag("--nodes", "2"))
    assert shrunk.exit_code == 0, shrunk.output
    assert "resized                 3 -> 2 nodes" in shrunk.stdout
    assert fake.pool_size(net_id) == 2 and len(fake.cluster_networks) == 1
    assert sum(1 for method, _ in fake.calls if method == "PUT") == 1  # the grow; the shrink detached one instance
    assert len(fake.terminated) == 1


def test_other_nodes_are_refused_naming_each_field_and_both_ways_out(config: Path, fake: FakeOci) -> None:
    assert run(config, fake).exit_code == 0
    args = with_flag("--preset", "a100-v2")
    args[args.index("--image") + 1] = "ocid1.image.oc1..other"
    result = run(config, fake, args=args)
    assert result.exit_code == 2
    assert "shape is BM.GPU.H100.8, asked BM.GPU.A100-v2.8; image is ocid1.image.oc1..img, asked " \
           "ocid1.image.oc1..other." in result.output
    assert "availability domain" not in result.output
    assert "give the new nodes a new name (clusterNetwork.name, --name)" in result.output
    assert "delete this network first (helm rdma deprovision --name llama --compartment " in result.output
    assert len(fake.cluster_networks) == 1 and posts(fake, "/clusterNetworks") == 1


@pytest.mark.parametrize("reject", [False, True], ids=["first-answer-again", "token-rejected"])
@pytest.mark.parametrize("death", ["TERMINATED", "FAILED"])
def test_a_dead_network_is_replaced(config: Path, fake: FakeOci, death: str, reject: bool) -> None:
    fake.reject_tokens_of_deleted = reject
    assert run(config, fake).exit_code == 0
    old = fake.network()["id"]
    fake.cluster_networks[old]["lifecycleState"] = death  # terminated in the console, or failed for capacity
    result = run(config, fake, "-o", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["created_cluster_network"] and out["cluster_network_id"] != old
    assert fake.cluster_networks[out["cluster_network_id"]]["lifecycleState"] == "RUNNING"


@pytest.mark.parametrize("reject", [False, True], ids=["first-answer-again", "token-rejected"])
def test_a_run_after_deprovision_creates_everything_again(config: Path, fake: FakeOci, reject: bool) -> None:
    fake.reject_tokens_of_deleted = reject
    assert run(config, fake).exit_code == 0
    assert run(config, fake, args=DEPROVISION).exit_code == 0
    assert fake.instance_configurations == {}
    result = run(config, fake, "-o", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["created_cluster_network"] and out["created_instance_configuration"]
    assert out["instance_configuration_id"] in fake.instance_configurations
    assert fake.network()["id"] == out["cluster_network_id"]


def test_two_runs_at_once_with_different_sizes_leave_one_network(config: Path, fake: FakeOci, tmp_path: Path) -> None:
    fake.create_barrier = threading.Barrier(2)
    kubeconfig = tmp_path / "kubeconfig"  # a shrink (the 2 after the 3) reads the nodes and pods
    outcomes: dict[int, Any] = {}

    def go(nodes: int) -> None:
        plan = flags_plan(config, fake, nodes)
        try:
            outcomes[nodes] = provision(plan, env=HelmEnv(kubeconfig=str(kubeconfig)),
                                        watch=Watch(poll_seconds=0.01))
        except Exception as exc:  # reported below
            outcomes[nodes] = exc

    threads = [threading.Thread(target=go, args=(n,)) for n in (2, 3)]
    with Cluster([], kubeconfig):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not any(isinstance(o, Exception) for o in outcomes.values()), outcomes
    assert posts(fake, "/clusterNetworks") == 2  # both tried; OCI's token rules let one through
    [network] = fake.cluster_networks.values()
    assert len(fake.instance_configurations) == 1
    assert {o.network.cluster_network_id for o in outcomes.values()} == {network["id"]}
    assert network["lifecycleState"] == "RUNNING" and fake.pool_size(network["id"]) in (2, 3)


def test_a_connection_reset_after_the_create_makes_one_network(config: Path, fake: FakeOci) -> None:
    fake.reset_after("POST", r".*/clusterNetworks")
    result = run(config, fake, "--oci-retry-for", "20s")
    assert result.exit_code == 0, result.output
    assert posts(fake, "/clusterNetworks") == 2 and len(fake.cluster_networks) == 1


def test_an_unknown_lifecycle_state_is_reported_by_name(config: Path, fake: FakeOci) -> None:
    assert run(config, fake).exit_code == 0
    fake.network()["lifecycleState"] = "MIGRATING"
    result = run(config, fake)
    assert result.exit_code == 1
    assert "is MIGRATING: helm-rdma does not know this lifecycle state" in result.output


def test_a_404_says_which_compartment_and_policy_to_check(config: Path, fake: FakeOci) -> None:
    fake.fail("GET", r".*/clusterNetworks", 404, "NotAuthorizedOrNotFound", "Authorization failed or not found")
    result = run(config, fake)
    assert result.exit_code == 1
    assert "it does not exist, or auth mode apiKey may not see it: check clusterNetwork.compartmentId " \
           "(--compartment), and that a policy lets auth mode apiKey manage compute-management-family" in result.output


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "error:" in line]


def test_connection_refused_ends_in_one_line_within_the_retry_budget(config: Path) -> None:
    endpoint = refused_endpoint()
    result = run(config, None, "--oci-retry-for", "1s", endpoint=endpoint)
    assert result.exit_code == 1
    [line] = error_lines(result.output)
    assert f"cannot reach OCI at {endpoint}/20160918 (list_cluster_networks): connection refused, still after" in line
    assert "check the endpoint (clusterNetwork.endpoint, --oci-endpoint) (host and port)" in line
    assert "Traceback" not in result.output


def test_a_silent_endpoint_reports_progress_then_ends_in_one_line(config: Path) -> None:
    with silent_endpoint() as endpoint:
        result = run(config, None, "--oci-timeout", "0.4s", "--oci-retry-for", "1.5s", "--poll-interval", "0.5",
                     endpoint=endpoint)
    assert result.exit_code == 1
    waiting = [line for line in result.output.splitlines() if "still waiting for OCI at" in line]
    assert waiting and f"still waiting for OCI at {endpoint}/20160918 (list_cluster_networks)" in waiting[0]
    [line] = error_lines(result.output)
    assert "it accepted the connection but sent no answer in time" in line


def test_a_malformed_endpoint_is_bad_input(config: Path) -> None:
    result = run(config, None, endpoint="127.0.0.1:8080")
    assert result.exit_code == 2
    assert '--oci-endpoint "127.0.0.1:8080" is not an endpoint URL' in result.output


def test_the_snake_case_auth_spelling_is_an_alias(config: Path, fake: FakeOci) -> None:
    result = run(config, fake, "--auth", "api_key")
    assert result.exit_code == 0, result.output


def test_from_values_without_nodes_names_the_key(config: Path, fake: FakeOci, tmp_path: Path) -> None:
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"preset": {"shape": "BM.GPU.H100.8"}, "clusterNetwork": {
        "compartmentId": COMPARTMENT, "availabilityDomain": "AD-1", "subnetId": "ocid1.subnet.oc1..s",
        "imageId": "ocid1.image.oc1..i", "name": "llama"}}))
    result = run(config, fake, args=["provision", "--from-values", str(values), "--release", "llama"])
    assert result.exit_code == 2
    assert "nodes is missing or not a int" in result.output


def test_the_network_is_tagged_with_its_nodes(config: Path, fake: FakeOci) -> None:
    assert run(config, fake).exit_code == 0
    tags = fake.network()["freeformTags"]
    assert {k: tags[k] for k in OURS} == OURS and len(tags[TAG_NODES]) == 16
