"""Which nodes the pods select, read against who labels the nodes.

Rules of the consumers:
- Kubernetes: a label value is at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric
  (kubernetes/apimachinery pkg/util/validation/validation.go, IsValidLabelValue; FACTS.md "Node labels").
- OKE self-managed nodes get their initial labels from the instance metadata `oke-initial-node-labels`, which the
  provisioning hook writes from its --node-label (oracle-quickstart/oci-hpc-oke terraform/oke-workers.tf).
- The kube-scheduler places a pod only on nodes that carry every nodeSelector label: a label nobody put on the nodes
  keeps every pod Pending.
"""

from __future__ import annotations

import re

from .rendering import PROVISION, hooks, render, serving_pod_specs

KEY = "helm-rdma.io/cluster-network"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def selected(documents: list[dict]) -> set[str | None]:
    return {spec["nodeSelector"].get(KEY) for spec in serving_pod_specs(documents)}


def hook_args(documents: list[dict], name: str) -> list[str]:
    job = hooks(documents)[name]
    return job["spec"]["template"]["spec"]["containers"][0]["args"]


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_one_release_name_in_two_namespaces_selects_different_nodes() -> None:
    dev, prod = render(*PROVISION, namespace="dev"), render(*PROVISION, namespace="prod")
    assert selected(dev) == {"llama405b.dev"} and selected(prod) == {"llama405b.prod"}
    # and the two hooks create two networks, each labelling its own nodes
    for docs, ns in ((dev, "dev"), (prod, "prod")):
        args = hook_args(docs, "llama405b-vllm-rdma-provision")
        assert flag(args, "--name") == f"llama405b.{ns}"
        assert flag(args, "--node-label") == f"{KEY}=llama405b.{ns}"


def test_the_provisioner_labels_nodes_with_exactly_what_the_pods_select() -> None:
    docs = render(*PROVISION, "placement.clusterNetworkLabel.key=example.com/pool", namespace="team-a")
    key, _, value = flag(hook_args(docs, "llama405b-vllm-rdma-provision"), "--node-label").partition("=")
    for spec in serving_pod_specs(docs):
        assert spec["nodeSelector"][key] == value


def test_a_long_namespace_and_release_give_a_valid_label_value_unique_to_both() -> None:
    release, long_ns = "llama405b-" + "x" * 43, "n" * 63
    values = set()
    for ns in (long_ns, long_ns[:-1] + "m"):
        [value] = selected(render(*PROVISION, release=release, model="llama405b", namespace=ns))
        assert value is not None and len(value) <= 63 and LABEL_VALUE.match(value)
        values.add(value)
    assert len(values) == 2


def test_without_provisioning_pods_do_not_require_a_label_nobody_set() -> None:
    assert selected(render()) == {None}


def test_without_provisioning_the_label_can_still_be_required() -> None:
    docs = render("placement.clusterNetworkLabel.enabled=true", "placement.clusterNetworkLabel.value=pool-a")
    assert selected(docs) == {"pool-a"}


def test_a_given_cluster_network_name_is_the_label_value() -> None:
    docs = render(*PROVISION, "clusterNetwork.name=h100-pool")
    assert selected(docs) == {"h100-pool"}
    assert flag(hook_args(docs, "llama405b-vllm-rdma-provision"), "--name") == "h100-pool"


def notes(*sets: str) -> str:
    """NOTES.txt as helm prints it after an install (helm 4 renders a client dry run without a cluster)."""
    import subprocess

    from helm_rdma.datafiles import chart_dir

    from .conftest import helm_path

    args = [a for s in sets for a in ("--set", s)]
    out = subprocess.run([str(helm_path("helm4")), "install", "llama405b", str(chart_dir()), "--dry-run=client",
                          "-n", "llm", *args], capture_output=True, text=True, check=True).stdout
    return out[out.index("NOTES:"):]


def test_notes_say_which_nodes_to_label_when_the_release_does_not_label_them() -> None:
    text = notes("placement.clusterNetworkLabel.enabled=true")
    assert "kubectl label node NODE helm-rdma.io/cluster-network=llama405b.llm" in text
    assert "kubectl label node" not in notes()  # nothing required, nothing to do
    assert "kubectl label node" not in notes(*PROVISION)  # the provisioner labels what it creates
    assert "kubectl label namespace llm pod-security.kubernetes.io/enforce=privileged" in text


def test_notes_say_what_closes_the_groups_own_ports_under_host_network() -> None:
    # The torch store, vLLM's ZMQ sockets and NCCL's bootstrap take no key and, under hostNetwork, listen on the node's
    # VCN address, which NetworkPolicies do not reach (kubernetes.io/docs/concepts/services-networking/
    # network-policies, "NetworkPolicy and hostNetwork pods"). OCI admits the union of the subnet's security lists
    # and the VNIC's NSGs (docs.oracle.com/iaas/Content/Network/Concepts/securityrules.htm, "Comparison of Security
    # Lists and Network Security Groups"): an NSG alone never closes them, so an NSG no longer silences the note.
    guarded = notes()  # the default: each pod's port guard closes them on its node
    assert "The group's own ports (the torch store's 29500, vLLM's ZMQ sockets, NCCL's bootstrap) listen" in guarded
    assert "admits new connections to them only from the node itself and\nthe release's pods" in guarded
    assert "-c port-guard" in guarded and "subnet security lists" not in guarded
    text = notes("distributed.portGuard.enabled=false")  # OCI's rules are what closes them then
    assert "The group's own ports (the torch store's 29500, vLLM's ZMQ sockets, NCCL's bootstrap) listen" in text
    assert "the GPU nodes' subnet security lists must not admit these ports" in text
    assert "examples/nsg-rules.json" in text and "doctor --cluster" in text
    assert "give the GPU nodes a subnet of their own" in text  # the other workers keep their rules
    # what OCI's rules never see: flannel's overlay, and the GPU nodes' own pods and processes
    assert "On a flannel cluster every pod reaches these ports through the VXLAN overlay" in text
    assert "only a host firewall on\nthe nodes closes that: distributed.portGuard.enabled=true" in text
    assert "allowOpenGroupPorts is true" not in text
    assert "The group's own ports" in notes("clusterNetwork.nsgIds[0]=ocid1.networksecuritygroup.oc1..g")
    accepted = notes("distributed.allowOpenGroupPorts=true", "distributed.portGuard.enabled=false")
    assert "WARNING: distributed.allowOpenGroupPorts is true. The group's own ports" in accepted
    assert "can run code in the serving process" in accepted
    assert "The group's own ports" not in notes("rdma.mode=sriov")  # the pod network: a NetworkPolicy closes them
    assert "The group's own ports" not in notes("nodes=1", "vllm.pipelineParallelSize=1")


def test_notes_call_the_api_service_with_the_key_from_its_secret() -> None:
    text = notes("api.keySecret.name=vllm-api-key")
    assert "port-forward svc/llama405b-vllm-rdma-api 8000:8000" in text
    assert "get secret vllm-api-key -o jsonpath='{.data.api-key}'" in text
    assert 'curl -s localhost:8000/v1/models -H "Authorization: Bearer $KEY"' in text
    assert "# the API key, from Secret vllm-api-key: helm rdma install creates it when missing and never rotates it" \
        in text
    assert "kubectl -n llm create secret generic vllm-api-key --from-literal=api-key=$(openssl rand -hex 32)" in text
    assert "WARNING: api" not in text
    assert "WARNING: api.allowUnauthenticated is true" in notes("api.keySecret.name=", "api.allowUnauthenticated=true")


def test_notes_give_each_route_its_own_scheme_hosts_and_path() -> None:
    text = notes("api.keySecret.name=k", "ingress.enabled=true", "ingress.hosts={a.example.com,b.example.com}",
                 "ingress.tls[0].secretName=t", "ingress.tls[0].hosts[0]=a.example.com", "gateway.enabled=true",
                 "gateway.parentRefs[0].name=public", "gateway.hostnames[0]=c.example.com", "gateway.path=/")
    assert "through the Ingress (paths under /v1):" in text
    assert 'curl -s https://a.example.com/v1/models -H "Authorization: Bearer $KEY"' in text  # its TLS covers it
    assert "curl -s http://b.example.com/v1/models" in text
    assert "through the HTTPRoute on Gateway public (paths under /;" in text
    assert "curl -s http://c.example.com/v1/models" in text and "https://c.example.com" not in text
    assert "ADDRESS-OF-YOUR-GATEWAY" in notes("gateway.enabled=true", "gateway.parentRefs[0].name=public")
