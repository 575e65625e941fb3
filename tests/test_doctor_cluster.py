"""`helm rdma doctor --cluster` and the same checks `install` runs before helm: the real kubernetes client reads two
kmock clusters, one ready for the release and one that fails each cluster-wide check, and the chart is rendered by the
real helm. Each bad case names its object and its cause."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from helm_rdma.cli import main
from helm_rdma.cluster.needs import cluster_needs, parse_manifests, pod_security_level

from .conftest import helm_path
from .helm_stand_in import stand_in_helm
from .kmock_cluster import Cluster
from .rendering import PROVISION, request

SECRETS = "model.hfTokenSecret.name=hf-token,api.keySecret.name=vllm-api-key"
H100, H200 = "BM.GPU.H100.8", "BM.GPU.H200.8"
SHAPE = "node.kubernetes.io/instance-type"
NETWORK = "helm-rdma.io/cluster-network"
LWS_CRD = "leaderworkersets.leaderworkerset.x-k8s.io"


def meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "labels": labels}
    if namespace:
        found["namespace"] = namespace
    return found


def node(name: str, shape: str, *, ready: bool = True, network: str | None = None, gpus: int = 8, vfs: int = 0,
         taints: tuple[dict[str, str], ...] = ({"key": "nvidia.com/gpu", "effect": "NoSchedule"},),
         cordoned: bool = False) -> dict[str, Any]:
    labels = {SHAPE: shape, **({NETWORK: network} if network else {})}
    allocatable = {"cpu": "224", "memory": "2000Gi", "nvidia.com/gpu": str(gpus)}
    if vfs:
        allocatable["nvidia.com/rdma-vf"] = str(vfs)
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta(name, **labels),
            "spec": {"taints": list(taints), "unschedulable": cordoned},
            "status": {"allocatable": allocatable,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def namespace(name: str, level: str | None) -> dict[str, Any]:
    labels = {"pod-security.kubernetes.io/enforce": level} if level else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name, **labels)}


def secret(name: str, ns: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta(name, ns), "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def crd(name: str, *versions: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    found = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": meta(name),
             "spec": {"versions": [{"name": v, "served": True, "storage": True} for v in versions]}}
    found["metadata"]["annotations"] = annotations or {}
    return found


def lws_controller(ready: int, namespace: str = "lws-system") -> dict[str, Any]:
    """LWS's controller as its manifests and its chart label it (kubernetes-sigs/lws config/manager/manager.yaml,
    config/default/kustomization.yaml)."""
    labels = {"control-plane": "controller-manager", "app.kubernetes.io/name": "lws"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("lws-controller-manager", namespace,
                                                                             **labels),
            "spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": ready}}


def other_release_pod() -> dict[str, Any]:
    """A pod of release `other` in namespace team-b, on the nodes of cluster network net-b."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": meta("other-vllm-rdma-0", "team-b", **{"app.kubernetes.io/instance": "other"}),
            "spec": {"nodeSelector": {SHAPE: H100, NETWORK: "net-b"}, "containers": [{"name": "vllm", "image": "i"}]}}


READY = [
    namespace("ml", "privileged"), namespace("strict", "baseline"), namespace("open", None),
    namespace("team-b", "privileged"),
    *[secret("hf-token", ns, token="hf_x") for ns in ("ml", "strict")], secret("hf-token", "open", token=""),
    *[secret("vllm-api-key", ns, **{"api-key": "k"}) for ns in ("ml", "strict", "open")],
    crd(LWS_CRD, "v1"), crd("network-attachment-definitions.k8s.cni.cncf.io", "v1"),
    crd("servicemonitors.monitoring.coreos.com", "v1"), crd("prometheusrules.monitoring.coreos.com", "v1"),
    # Gateway API v1.1 (Standard): HTTPRoute v1 without rules[].timeouts (Standard from v1.2.0)
    crd("httproutes.gateway.networking.k8s.io", "v1", "v1beta1",
        annotations={"gateway.networking.k8s.io/bundle-version": "v1.1.0",
                     "gateway.networking.k8s.io/channel": "standard"}),
    crd("inferencepools.inference.networking.k8s.io", "v1"), crd("scaledobjects.keda.sh", "v1alpha1"),
    lws_controller(ready=2, namespace="lws-operator"),  # installed with helm into another namespace: found by labels
    {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition", "metadata": meta("rdma-vf", "default"),
     "spec": {"config": "{}"}},
    node("gpu-a1", H100, network="net-a", vfs=16), node("gpu-a2", H100, network="net-a", vfs=16),
    node("gpu-b1", H100, network="net-b"), node("gpu-b2", H100, network="net-b"),
    node("gpu-h1", H200, gpus=0), node("gpu-h2", H200, gpus=0),
    node("cpu-1", "VM.Standard.E4.Flex", taints=()),
    other_release_pod(),
]
BROKEN = [
    namespace("ml", None), lws_controller(ready=0),
    crd("httproutes.gateway.networking.k8s.io", "v1beta1"),  # an older Gateway API: no v1 yet
    node("gpu-1", H100, ready=False), node("gpu-2", H100, cordoned=True),
    node("gpu-3", H100, taints=({"key": "maintenance", "value": "true", "effect": "NoExecute"},)),
]


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Cluster]]:
    tmp = tmp_path_factory.mktemp("clusters")
    with Cluster(READY, tmp / "ready") as ready, Cluster(BROKEN, tmp / "broken", forbidden=("v1/secrets",)) as broken:
        yield {"ready": ready, "broken": broken}


@pytest.fixture
def use(clusters: dict[str, Cluster], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("HELM_RDMA_SKIP_CLUSTER_CHECKS", raising=False)

    def pick(name: str) -> Cluster:
        monkeypatch.setenv("KUBECONFIG", str(clusters[name].kubeconfig))
        return clusters[name]

    return pick


# The group-ports tests below judge OCI's rules, which install, upgrade and doctor read only when the pods' port guard
# is off (distributed.portGuard; tests/test_port_guard.py runs the guard itself).
UNGUARDED = "distributed.portGuard.enabled=false"


def doctor(*args: str, guarded: bool = False) -> Result:
    unguarded = () if guarded else ("--set", UNGUARDED)
    return CliRunner().invoke(main, ["doctor", "llama405b", "--cluster", *unguarded, *args])


def lines(result: Result, status: str, check: str) -> list[str]:
    """The lines of one status whose check (and subject) start with ``check``."""
    return [line for line in result.stdout.splitlines() if line.startswith(f"{status:<7} {check}")]


def test_helms_connection_overrides_reach_the_cluster_checks(clusters: dict[str, Cluster], use: Any,
                                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """helm hands a plugin its --kube-apiserver, --kube-token, ... as HELM_KUBEAPISERVER, HELM_KUBETOKEN, ... (helm
    pkg/cli/environment.go, EnvVars), and the helm that helm-rdma runs reads them from the same environment, over the
    kubeconfig (genericclioptions.ConfigFlags): the checks judge that API server too. Here the kubeconfig names the
    broken cluster and the overrides the ready one (the kubeconfig loader re-applies the kubeconfig's server before
    every request: the first try at this read /version from the ready one and everything else from the broken)."""
    use("broken")
    assert doctor("--preset", "h100", "-n", "ml", "--set", SECRETS).exit_code == 1
    server = yaml.safe_load(clusters["ready"].kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    monkeypatch.setenv("HELM_KUBEAPISERVER", server)
    monkeypatch.setenv("HELM_KUBETOKEN", "t")
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS)
    assert out.exit_code == 0, out.output
    assert f"cluster: kube context kmock ({server})" in out.stdout
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))  # no kubeconfig at all: the overrides alone
    out = doctor("--preset", "h100", "--set", SECRETS)
    assert f"cluster: kube context HELM_KUBEAPISERVER ({server}), namespace default" in out.stdout
    assert "ok      lws-crd" in out.stdout  # the ready cluster's answers (the emulator holds no namespace default)
    monkeypatch.setenv("HELM_KUBEASGROUPS", "a,b")
    out = doctor("--preset", "h100", "--set", SECRETS)
    assert out.exit_code == 2 and "HELM_KUBEASGROUPS (--kube-as-group) names 2 groups" in out.output


def test_a_ready_cluster_passes_every_check(use: Any) -> None:
    use("ready")
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS)
    assert out.exit_code == 0, out.output
    assert "cluster: kube context kmock (http://127.0.0.1:" in out.stdout and "namespace ml, release llama405b" \
        in out.stdout
    checks = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("ok ")]
    assert checks == ["namespace", "pod-security", "secret", "secret", "lws-crd", "lws-controller", "nodes",
                      "gpu-resource"]
    assert lines(out, "ok", "pod-security ml") == ["ok      pod-security ml: enforces privileged, which admits the "
                                                   "pods (they need privileged)"]
    assert lines(out, "ok", "secret hf-token/token")[0].endswith(
        "exists with key token (read by LeaderWorkerSet/llama405b-vllm-rdma, container download-model, env HF_TOKEN)")
    assert lines(out, "ok", "lws-controller") == [
        "ok      lws-controller lws-operator/lws-controller-manager: 2 of 2 replica(s) ready"]
    assert "4 Ready node(s) fit the pods' node selector and tolerations (gpu-a1, gpu-a2, gpu-b1, gpu-b2); 2 needed " \
           "(1 group(s), one pod per node)" in out.stdout
    assert out.stdout.endswith("0 error(s), 0 warning(s)\n")


def test_sriov_and_the_cluster_network_label_pass_where_they_are_there(use: Any) -> None:
    use("ready")
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--set", "rdma.mode=sriov,nccl.settings."
                 "NCCL_IB_HCA=mlx5,placement.clusterNetworkLabel.enabled=true,placement.clusterNetworkLabel.value=net-a")
    assert out.exit_code == 0, out.output
    assert lines(out, "ok", "nodes") == [f"ok      nodes {SHAPE}={H100}, {NETWORK}=net-a: 2 Ready node(s) fit the pods' "
                                         "node selector and tolerations (gpu-a1, gpu-a2); 2 needed (1 group(s), one "
                                         "pod per node)"]
    assert lines(out, "ok", "rdma-resource nvidia.com/rdma-vf") and lines(out, "ok", "network-attachment "
                                                                                       "default/rdma-vf")
    assert lines(out, "ok", f"cluster-network-label {NETWORK}=net-a") == [
        f"ok      cluster-network-label {NETWORK}=net-a: no other release selects these nodes"]


def test_nodes_the_release_provisions_are_not_expected_yet_but_the_hooks_secret_is(use: Any) -> None:
    use("ready")
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--set", ",".join([
        "clusterNetwork.provision=true", "clusterNetwork.compartmentId=ocid1.compartment.oc1..c",
        "clusterNetwork.availabilityDomain=AD-1", "clusterNetwork.subnetId=ocid1.subnet.oc1..s",
        "clusterNetwork.imageId=ocid1.image.oc1..i", "clusterNetwork.image.repository=iad.ocir.io/ns/provisioner",
        "clusterNetwork.oke.clusterId=ocid1.cluster.oc1..k", "clusterNetwork.auth=apiKey",
        "clusterNetwork.apiKeySecret=oci-api-key"]))
    assert out.exit_code == 1, out.output
    assert lines(out, "ok", "nodes ")[0].endswith(
        "none yet: the release's pre-install hook provisions 2 node(s) and waits until they are Ready")
    assert lines(out, "error", "secret oci-api-key:") == [
        "error   secret oci-api-key: Secret oci-api-key does not exist in namespace ml (read by "
        "Job/llama405b-vllm-rdma-provision, volume oci), so the pods cannot start; fix: kubectl -n ml create secret "
        "generic oci-api-key --from-literal=KEY=VALUE"]


@pytest.mark.parametrize(("args", "check", "cause", "fix"), [
    (("-n", "nowhere"), "namespace nowhere:", "does not exist, so helm install fails",
     "kubectl create namespace nowhere && kubectl label namespace nowhere pod-security.kubernetes.io/enforce="
     "privileged"),
    (("-n", "strict"), "pod-security strict:", "enforces Pod Security level baseline, which refuses the pods: they "
     "need privileged (LeaderWorkerSet/llama405b-vllm-rdma: hostNetwork: true; LeaderWorkerSet/llama405b-vllm-rdma: "
     "container preflight is privileged", "pod-security.kubernetes.io/enforce=privileged --overwrite"),
    (("--set", "model.hfTokenSecret.name=hf-tokn"), "secret hf-tokn/token:", "Secret hf-tokn does not exist in "
     "namespace ml (read by LeaderWorkerSet/llama405b-vllm-rdma, container download-model, env HF_TOKEN)",
     "kubectl -n ml create secret generic hf-tokn --from-literal=token=VALUE"),
    (("--set", "model.hfTokenSecret.key=hf"), "secret hf-token/hf:", "Secret hf-token has no key hf (its keys: "
     "token;", "or point the values at a key it has"),
    # the first container the kubelet would refuse to start names it (review M7)
    (("--set", "api.keySecret.name=api-key"), "secret api-key/api-key:", "Secret api-key does not exist in namespace "
     "ml (read by LeaderWorkerSet/llama405b-vllm-rdma, container download-model, env HELM_RDMA_API_KEY_SECRET_CHECK)",
     "create secret generic"),
    (("--nodes", "5"), "nodes ", "4 usable node(s) for the pods, 5 needed (1 group(s), one pod per node)",
     "add nodes of that shape"),
    (("--preset", "a100-v2"), "nodes ", "0 usable node(s) for the pods, 2 needed (1 group(s), one pod per node): 0 of "
     "7 carry node.kubernetes.io/instance-type=BM.GPU.A100-v2.8", "kubectl get nodes -L node.kubernetes.io/"
     "instance-type"),
    (("--set", "placement.clusterNetworkLabel.enabled=true"), "nodes ", f"0 of 4 carry {NETWORK}=llama405b.ml",
     "label the 2 nodes of one RDMA cluster network (only those have RDMA paths between them; of this shape: gpu-a1, "
     "gpu-a2, gpu-b1, gpu-b2): kubectl label node NODE... helm-rdma.io/cluster-network=llama405b.ml"),
    (("--preset", "h200", "--nodes", "2"), "gpu-resource nvidia.com/gpu:", "each pod requests 8, and only 0 of 2 "
     "node(s) advertise that many (gpu-h1 has 0, gpu-h2 has 0); 2 needed", "the GPU operator's device plugin"),
    (("--set", "rdma.devicePluginResource=rdma/rdma_shared_device_a"), "rdma-resource rdma/rdma_shared_device_a:",
     "each pod requests 1, and only 0 of 4 node(s) advertise that many", "RDMA shared device plugin"),
    (("--set", "rdma.mode=sriov,nccl.settings.NCCL_IB_HCA=mlx5,rdma.sriov.networkName=default/rdma-vfs"),
     "network-attachment default/rdma-vfs:", "NetworkAttachmentDefinition rdma-vfs does not exist in namespace "
     "default, so Multus refuses the pods", "set rdma.sriov.networkName to one that exists"),
    (("--set", "placement.clusterNetworkLabel.enabled=true,placement.clusterNetworkLabel.value=net-b"),
     f"cluster-network-label {NETWORK}=net-b:", "already selected by release other in namespace team-b (pod "
     "other-vllm-rdma-0): two releases on one cluster network's nodes compete for their GPUs",
     "give this release its own cluster network"),
], ids=["namespace", "pod-security", "hf-secret", "hf-key", "api-key-secret", "too-few-nodes", "no-node-of-shape",
        "unlabelled-nodes", "no-gpus", "no-rdma-device", "no-network-attachment", "cluster-network-taken"])
def test_each_missing_piece_is_an_error_naming_its_object_and_cause(use: Any, args: tuple[str, ...], check: str,
                                                                   cause: str, fix: str) -> None:
    use("ready")
    base = ("--preset", "h100", "-n", "ml")
    out = doctor(*base, "--set", SECRETS, *args) if "--preset" not in args else doctor(
        "-n", "ml", "--set", SECRETS, *args)
    assert out.exit_code == 1, out.output
    [line] = lines(out, "error", check)
    message, _, suggested = line.split(":", 1)[1].partition("; fix: ")
    assert cause in message and fix in suggested, line


def test_a_cluster_that_fails_every_cluster_wide_check(use: Any) -> None:
    use("broken")
    out = doctor("--preset", "h100", "--set", SECRETS)  # the kube context's namespace, ml
    assert out.exit_code == 1, out.output
    assert lines(out, "error", "lws-crd") == [
        f"error   lws-crd {LWS_CRD}: is not installed, so the cluster does not know the LeaderWorkerSet the release "
        "creates (helm install fails); fix: install the LeaderWorkerSet operator (https://lws.sigs.k8s.io/docs/"
        "installation/: `helm install lws oci://registry.k8s.io/lws/charts/lws -n lws-system --create-namespace`), "
        "or set workload.kind=StatefulSet"]
    [controller] = lines(out, "error", "lws-controller lws-system/lws-controller-manager")
    assert "has no ready replica (0 of 2), so nothing would create the pods of a LeaderWorkerSet" in controller
    [nodes] = lines(out, "error", "nodes")
    assert "0 usable node(s) for the pods, 2 needed (1 group(s), one pod per node): gpu-1 is not Ready; gpu-2 is " \
           "cordoned; gpu-3 has taint maintenance=true:NoExecute, which the pods do not tolerate; fix: kubectl " \
           "describe node gpu-1" in nodes
    [pss] = lines(out, "warning", "pod-security ml")
    assert "has no pod-security.kubernetes.io/enforce label, so the cluster's default level applies" in pss
    assert lines(out, "warning", "secret hf-token/token") == [
        "warning secret hf-token/token: not checked: HTTP 403: the kube user may not read secret hf-token in namespace "
        "ml; fix: ask for read access, or check it by hand with kubectl"]
    assert out.stdout.endswith("3 error(s), 3 warning(s)\n")
    statefulsets = doctor("--preset", "h100", "--set", SECRETS, "--set", "workload.kind=StatefulSet")
    assert not lines(statefulsets, "error", "lws-")  # no operator needed


# The options whose objects a CRD defines: the Prometheus Operator's and the Gateway API's (the chart renders
# monitoring.coreos.com/v1 and gateway.networking.k8s.io/v1; tests/crds holds their published schemas).
CRD_OPTIONS = ("monitoring.serviceMonitor.enabled=true,monitoring.rules.enabled=true,gateway.enabled=true,"
               "gateway.parentRefs[0].name=public")


def test_the_crds_of_monitoring_and_routes_must_serve_the_version_the_chart_renders(use: Any) -> None:
    use("ready")
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--set", CRD_OPTIONS)
    assert lines(out, "ok", "crd servicemonitors.monitoring.coreos.com: installed, serving v1")
    assert lines(out, "ok", "crd prometheusrules.monitoring.coreos.com: installed, serving v1")
    [route] = lines(out, "warning", "crd httproutes.gateway.networking.k8s.io")
    assert "is Gateway API v1.1.0 (Standard channel), which has no rules[].timeouts before v1.2" in route
    assert out.exit_code == 0, out.output
    untimed = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--set", CRD_OPTIONS,
                     "--set", "gateway.timeout=")
    assert lines(untimed, "ok", "crd httproutes.gateway.networking.k8s.io: installed, serving v1")
    assert not lines(doctor("--preset", "h100", "-n", "ml", "--set", SECRETS), "ok", "crd")  # off by default


def test_a_gateway_api_without_v1_is_an_error(use: Any) -> None:
    use("broken")
    out = doctor("--preset", "h100", "--set", SECRETS, "--set", CRD_OPTIONS)
    [route] = lines(out, "error", "crd httproutes.gateway.networking.k8s.io")
    assert "serves v1beta1, not v1, which the release uses; fix: upgrade them; install the Gateway API CRDs" in route


def test_a_missing_monitoring_crd_is_an_error_before_helm_says_no_matches_for_kind(use: Any) -> None:
    use("broken")
    out = doctor("--preset", "h100", "--set", SECRETS, "--set", "monitoring.serviceMonitor.enabled=true")
    assert lines(out, "error", "crd servicemonitors.monitoring.coreos.com") == [
        "error   crd servicemonitors.monitoring.coreos.com: is not installed, so the cluster does not know the "
        "ServiceMonitor the release creates (helm install fails); fix: install the Prometheus Operator's CRDs "
        "(kube-prometheus-stack installs them), or set monitoring.serviceMonitor.enabled=false"]


# The router's and the scaler's kinds: the Gateway API Inference Extension's InferencePool (its CRD in ../shared/crds
# serves inference.networking.k8s.io/v1) and KEDA's ScaledObject (tests/crds/keda.sh_scaledobjects.yaml, keda.sh/
# v1alpha1). The ready cluster has both CRDs, the broken one neither.
SCALING_OPTIONS = ("router.enabled=true,autoscaling.enabled=true,autoscaling.maxReplicas=3,"
                   "autoscaling.prometheusAddress=http://prometheus-operated.monitoring.svc:9090")


def test_the_pool_and_scaler_crds_must_be_installed_and_serve_what_the_chart_renders(use: Any) -> None:
    use("ready")
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--set", SCALING_OPTIONS)
    assert lines(out, "ok", "crd inferencepools.inference.networking.k8s.io: installed, serving v1")
    assert lines(out, "ok", "crd scaledobjects.keda.sh: installed, serving v1alpha1")
    use("broken")
    out = doctor("--preset", "h100", "--set", SECRETS, "--set", SCALING_OPTIONS)
    [pool] = lines(out, "error", "crd inferencepools.inference.networking.k8s.io")
    assert "is not installed, so the cluster does not know the InferencePool the release creates" in pool
    assert "or set router.enabled=false" in pool
    [scaler] = lines(out, "error", "crd scaledobjects.keda.sh")
    assert "the ScaledObject the release creates" in scaler and "install KEDA" in scaler
    assert not lines(doctor("--preset", "h100", "--set", SECRETS), "error", "crd inferencepools")  # off by default


def test_json_has_one_stable_shape(use: Any) -> None:
    use("broken")
    out = doctor("--preset", "h100", "--set", SECRETS, "-o", "json")
    assert out.exit_code == 1
    report = json.loads(out.stdout)
    assert set(report) == {"values", "cluster", "summary"}
    assert report["summary"] == {"errors": 3, "warnings": 3, "passed": False}
    cluster = report["cluster"]
    assert set(cluster) == {"context", "server", "namespace", "release", "checks"}
    assert (cluster["context"], cluster["namespace"], cluster["release"]) == ("kmock", "ml", "llama405b")
    assert all(set(c) == {"check", "status", "subject", "message", "fix"} for c in cluster["checks"])
    assert {c["check"] for c in cluster["checks"] if c["status"] == "error"} == {"lws-crd", "lws-controller", "nodes"}
    values = json.loads(doctor("--preset", "h100", "--set", "api.keySecret.name=,api.allowUnauthenticated=true", "-o",
                               "json").stdout)["values"]
    assert {"severity": "warning", "key": "api.allowUnauthenticated"} .items() <= values[0].items()


def test_an_unreachable_cluster_is_exit_1_naming_the_context_and_server(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}], "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "prod", "context": {"cluster": "c", "user": "u"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    out = doctor("--preset", "h100", "--set", SECRETS)
    assert out.exit_code == 1
    assert "helm-rdma: error: reaching the API server http://127.0.0.1:9 (kube context prod) failed:" in out.output
    assert "check the kube context (--kube-context, KUBECONFIG) and access" in out.output


def test_baseline_refuses_what_rdma_pods_need() -> None:
    """kubernetes.io/docs/concepts/security/pod-security-standards, Baseline: host namespaces, privileged, added
    capabilities beyond the default set (IPC_LOCK is not in it), hostPath volumes."""
    assert pod_security_level({"hostNetwork": True, "containers": [{"name": "c"}]})[0] == "privileged"
    assert pod_security_level({"containers": [{"name": "c", "securityContext": {"capabilities": {
        "add": ["IPC_LOCK"]}}}]}) == ("privileged", ["container c adds capability IPC_LOCK"])
    assert pod_security_level({"containers": [{"name": "c", "securityContext": {"capabilities": {
        "add": ["NET_BIND_SERVICE"]}}}]})[0] == "baseline"
    assert pod_security_level({"containers": [{"name": "c"}], "volumes": [{"name": "m", "hostPath": {
        "path": "/mnt"}}]}) == ("privileged", ["hostPath volume m"])
    restricted = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                  "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False,
                                                                   "capabilities": {"drop": ["ALL"]}}}]}
    assert pod_security_level(restricted) == ("restricted", [])


# ---- install: the same checks before helm runs ---------------------------------------------------------------------

HELM = """#!/bin/sh
case "$1" in
  install|upgrade) echo "$@" >> "{log}"; echo "NAME: $2"; echo "STATUS: deployed" ;;
  *) exec "{helm}" "$@" ;;
esac
"""


@pytest.fixture
def installs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A helm that renders for real and records install and upgrade instead of running them."""
    log = tmp_path / "installs.log"
    stand_in_helm(tmp_path, monkeypatch, HELM.format(log=log, helm=helm_path("helm4")))
    monkeypatch.setenv("HELM_CACHE_HOME", str(tmp_path / "cache"))
    return log


def install(*args: str, accept_open_ports: bool = True) -> Result:
    """install against the stand-in helm; unless told otherwise, with the group's ports accepted open (these tests
    are about the cluster checks: the group's ports have their own below)."""
    accept = ("--set", "distributed.allowOpenGroupPorts=true") if accept_open_ports else ("--set", UNGUARDED)
    return CliRunner().invoke(main, ["install", "llama405b", "--preset", "h100", "--set", SECRETS, *accept, *args])


def test_install_checks_the_cluster_first_and_stops_on_errors(use: Any, installs: Path) -> None:
    use("ready")
    ok = install("-n", "ml")
    assert ok.exit_code == 0, ok.output
    assert "helm-rdma: cluster checks (kube context kmock, namespace ml): 8 ok, 0 warning(s)" in ok.stderr
    assert installs.read_text().startswith("install llama405b")
    installs.unlink()
    bad = install("-n", "strict", "--nodes", "5")
    assert bad.exit_code == 1
    assert "helm-rdma: error: the cluster (kube context kmock, namespace strict) would not run the release:" \
        in bad.output
    assert "  error   pod-security strict: enforces Pod Security level baseline" in bad.output
    assert "  error   nodes node.kubernetes.io/instance-type=BM.GPU.H100.8: 4 usable node(s)" in bad.output
    assert "nothing was installed; fix them, or pass --skip-cluster-checks to install anyway" in bad.output
    assert not installs.exists()
    skipped = install("-n", "strict", "--nodes", "5", "--skip-cluster-checks")
    assert skipped.exit_code == 0 and "cluster checks" not in skipped.stderr
    assert installs.read_text().startswith("install llama405b")


def test_install_prints_warnings_and_goes_on(use: Any, installs: Path) -> None:
    use("ready")
    out = install("-n", "open")
    assert out.exit_code == 0, out.output
    assert "warning: pod-security open: has no pod-security.kubernetes.io/enforce label" in out.stderr
    assert "warning: secret hf-token/token: key token of Secret hf-token is empty" in out.stderr
    assert "helm-rdma: cluster checks (kube context kmock, namespace open): 6 ok, 2 warning(s)" in out.stderr
    assert installs.read_text().startswith("install llama405b")


def test_install_without_a_cluster_skips_the_checks_and_a_dry_run_never_looks(tmp_path: Path, installs: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HELM_RDMA_SKIP_CLUSTER_CHECKS", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    out = install("-n", "ml")
    assert out.exit_code == 0, out.output
    assert "helm-rdma: no kubeconfig: cluster checks skipped (`helm rdma doctor --cluster` runs them)" in out.stderr
    dry = install("-n", "ml", "--dry-run")
    assert dry.exit_code == 0 and "cluster checks" not in dry.stderr


def test_the_needs_come_from_the_rendered_objects() -> None:
    """Names the checks use are read from what the chart renders, never restated: a release's own label value."""
    from helm_rdma.commands.template import template

    rendered = template(request(sets=(SECRETS, "placement.clusterNetworkLabel.enabled=true")), namespace="team-a")
    from helm_rdma.resolve.values import resolve

    values = resolve(request(sets=(SECRETS,))).values
    needs = cluster_needs(parse_manifests(rendered.manifests), release="llama405b", namespace="team-a", values=values)
    assert needs.cluster_network_label == (NETWORK, "llama405b.team-a")
    assert (needs.pods, needs.groups, needs.lws_api) == (2, 1, ("leaderworkerset.x-k8s.io", "v1"))
    assert dict(needs.resources) == {"nvidia.com/gpu": 8}
    assert {(s.name, s.key) for s in needs.secrets} == {("hf-token", "token"), ("vllm-api-key", "api-key")}
    # With autoscaling the LeaderWorkerSet renders no replicas: the nodes needed are the fewest groups the scaler keeps.
    scaling = (SECRETS, "replicas=5", "autoscaling.enabled=true", "autoscaling.minReplicas=2",
               "autoscaling.maxReplicas=6", "autoscaling.prometheusAddress=http://prometheus:9090")
    rendered = template(request(sets=scaling), namespace="team-a")
    needs = cluster_needs(parse_manifests(rendered.manifests), release="llama405b", namespace="team-a",
                          values=resolve(request(sets=scaling)).values)
    assert (needs.pods, needs.groups) == (4, 2)




# --- the group's ports on the GPU nodes' network, under hostNetwork ------------------------------------------------
# The group's ports listen on the node's VNIC addresses with no authentication and NetworkPolicy behaviour for
# hostNetwork pods is undefined (kubernetes.io/docs/concepts/services-networking/network-policies, "NetworkPolicy and
# hostNetwork pods"). OCI admits the union of the VNIC's subnet security lists and its NSGs
# (docs.oracle.com/iaas/Content/Network/Concepts/securityrules.htm, "Comparison of Security Lists and Network
# Security Groups": "the union of all the rules"). An OKE node names its instance in spec.providerID as oci://OCID
# (oracle/oci-cloud-controller-manager, providerPrefix "oci://"); its VNICs are its VNIC attachments (Compute
# ListVnicAttachments, in the instance's compartment), each VNIC's subnet and NSGs its subnetId and nsgIds (Virtual
# Network GetVnic), a subnet's security lists its securityListIds (GetSubnet), their rules ingressSecurityRules
# (GetSecurityList), an NSG's rules ListNetworkSecurityGroupSecurityRules: docs.oracle.com API reference, Core
# Services. The rules' fields: tests/test_group_ports.py.
OKE_WORKERS = {"description": "Allow all traffic from worker nodes", "protocol": "all", "source": "10.0.20.0/24",
               "sourceType": "CIDR_BLOCK", "isStateless": False}  # OKE quick-create's worker subnet list
SSH = {"protocol": "6", "source": "0.0.0.0/0", "isStateless": False,
       "tcpOptions": {"destinationPortRange": {"min": 22, "max": 22}}}
KUBELET = {"protocol": "6", "source": "10.0.0.0/28", "isStateless": False,
           "tcpOptions": {"destinationPortRange": {"min": 10250, "max": 10250}}}
FROM_ITSELF = {"description": "the group", "direction": "INGRESS", "protocol": "6", "source": "SELF",
               "sourceType": "NETWORK_SECURITY_GROUP", "isStateless": False}
ACCEPT = "distributed.allowOpenGroupPorts=true"


def oci_node(name: str, instance: str) -> dict[str, Any]:
    found = node(name, H100, network="net-a")
    found["spec"]["providerID"] = f"oci://{instance}"
    return found


@pytest.fixture
def oci_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Path]]:
    """The fake OCI API with a subnet whose list admits only SSH and the kubelet, one whose list is OKE
    quick-create's (all protocols from the worker CIDR), an NSG that admits TCP from itself, and three instances
    carrying it: one on the closed subnet, one on the open subnet, one on the closed subnet with a detached VNIC on
    the open one; a kmock cluster whose GPU nodes are those instances, and one more GPU node with no providerID."""
    from .fake_oci import make_key, serve, write_config

    key, public, fingerprint = make_key(tmp_path)
    config = write_config(tmp_path, key, fingerprint)
    compartment = "ocid1.compartment.oc1..nodes"
    with serve(public) as fake:
        closed = fake.add_subnet("10.0.10.0/24", [SSH, KUBELET])
        opened = fake.add_subnet("10.0.20.0/24", [SSH, OKE_WORKERS])
        nsg = fake.add_nsg(FROM_ITSELF)
        guarded = fake.add_instance(compartment, [nsg], [nsg], subnet=closed)
        open_ = fake.add_instance(compartment, [nsg], subnet=opened)
        detached = fake.add_instance(compartment, [nsg], detached=(nsg,), subnet=closed)
        fake.vnics[[a for a in fake.vnic_attachments if a["instanceId"] == detached][-1]["vnicId"]]["subnetId"] = opened
        objects = [o for o in READY if o["kind"] != "Node"] + [
            oci_node("gpu-a1", guarded), oci_node("gpu-a2", open_), oci_node("gpu-a3", detached),
            node("gpu-elsewhere", H100, network="net-a")]  # no providerID: no OCI instance to read
        with Cluster(objects, tmp_path / "kubeconfig") as cluster:
            monkeypatch.delenv("HELM_RDMA_SKIP_CLUSTER_CHECKS", raising=False)
            monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
            monkeypatch.setenv("HELM_RDMA_OCI_ENDPOINT", fake.url)
            yield fake, config


def close_the_open_subnet(fake: Any) -> None:
    for rules in fake.security_lists.values():
        rules["ingressSecurityRules"] = [r for r in rules["ingressSecurityRules"] if r is not OKE_WORKERS]


def reads(fake: Any, kind: str) -> list[str]:
    return [p for m, p in fake.calls if m == "GET" and f"/{kind}" in p]


def test_gpu_nodes_whose_rules_open_the_group_ports_are_errors(oci_cluster: tuple[Any, Path]) -> None:
    fake, config = oci_cluster
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--oci-config", str(config))
    assert out.exit_code == 1, out.output
    [opened] = lines(out, "error", "group-ports")
    [listed] = [s for s, sub in fake.subnets.items() if sub["cidrBlock"] == "10.0.20.0/24"]
    security_list = fake.subnets[listed]["securityListIds"][0]
    assert opened.startswith("error   group-ports gpu-a2: the group's ports (the torch store's 29500 and NCCL's "
                             "bootstrap and vLLM's ZMQ sockets on the kernel's default ephemeral ports, 32768-60999) "
                             "are open to more than the group, with no authentication (hostNetwork): security list "
                             f'{security_list} ingress rule #1 (the 2nd, "Allow all traffic from worker nodes") admits '
                             "TCP from 10.0.20.0/24 to every port; fix: give the GPU nodes a subnet of their own (so "
                             "that other workers keep the rules they need)")
    assert "examples/nsg-rules.json" in opened and "clusterNetwork.nsgIds" in opened
    # The detached VNIC's open subnet is not gpu-a3's; the NSG's rule from itself opens nothing; a node that is no
    # OCI instance has no OCI rules to report (install refuses on it: see below).
    assert lines(out, "warning", "group-ports") == [] and "gpu-elsewhere" not in out.stdout.split("group-ports")[1]
    # the SDK's own calls, signed with the config's key; each subnet, security list and NSG read once
    assert not fake.rejected and len(reads(fake, "instances/")) == 3
    assert sorted(reads(fake, "subnets/")) == sorted({p for p in reads(fake, "subnets/")}) and \
        len(reads(fake, "subnets/")) == 2
    assert len(reads(fake, "securityLists/")) == 2
    # The NSG's rules once, its members once: 3 VNICs, 2 to a page (the NSG holds only the judged nodes' VNICs, so
    # its rule from itself is closed).
    nsg_reads = [p.rsplit("/", 1)[1] for p in reads(fake, "networkSecurityGroups/")]
    assert nsg_reads == ["securityRules", "vnics", "vnics"]


def test_when_no_rule_opens_the_group_ports_the_nodes_are_ok(oci_cluster: tuple[Any, Path]) -> None:
    fake, config = oci_cluster
    close_the_open_subnet(fake)
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--oci-config", str(config))
    assert out.exit_code == 0, out.output
    assert lines(out, "ok", "group-ports") == [f"ok      group-ports {H100}: no OCI ingress rule opens the group's "
                                               "ports to more than the group on the 3 node(s) (gpu-a1, gpu-a2, "
                                               "gpu-a3); pods and hostNetwork processes on the GPU nodes themselves "
                                               "still reach the ports (the chart's pods take every GPU, so only pods "
                                               "that tolerate the GPU nodes' taints land there, DaemonSets among "
                                               "them): only a host firewall on the nodes closes that "
                                               "(distributed.portGuard.enabled=true, the default)"]


def test_an_nsg_that_a_cpu_node_carries_too_opens_the_gpu_nodes(oci_cluster: tuple[Any, Path]) -> None:
    """Oracle's OKE layout puts every worker in one "workers" NSG: its rule from itself admits every worker. The
    members are listed (ListNetworkSecurityGroupVnics); one that is not a VNIC of a judged GPU node is named."""
    fake, config = oci_cluster
    close_the_open_subnet(fake)
    [nsg] = fake.nsg_rules
    cpu = fake.add_instance("ocid1.compartment.oc1..nodes", [nsg], subnet=next(iter(fake.subnets)))
    [cpu_vnic] = [a["vnicId"] for a in fake.vnic_attachments if a["instanceId"] == cpu]
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--oci-config", str(config))
    assert out.exit_code == 1, out.output
    opened = lines(out, "error", "group-ports")
    assert [line.split(":")[0] for line in opened] == [f"error   group-ports gpu-a{n}" for n in (1, 2, 3)]
    assert f'ingress rule #0 (the first, 000000, "the group") admits TCP from NSG {nsg}, which admits its members, 1 ' \
           f"of them not the GPU nodes judged (VNIC {cpu_vnic} of instance {cpu}) to every port" in opened[0]
    assert lines(out, "ok", "group-ports") == []


def test_an_instance_with_no_attached_vnic_is_not_judged_closed(oci_cluster: tuple[Any, Path], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake, config = oci_cluster
    close_the_open_subnet(fake)
    [nsg] = fake.nsg_rules
    launching = fake.add_instance("ocid1.compartment.oc1..nodes", detached=(nsg,))
    with Cluster([o for o in READY if o["kind"] != "Node"] + [oci_node("gpu-new", launching)],
                 tmp_path / "launching") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--oci-config", str(config))
    assert lines(out, "ok", "group-ports") == []
    [unread] = lines(out, "warning", "group-ports")
    assert unread.startswith(f"warning group-ports gpu-new: not checked: instance {launching} has no attached VNIC "
                             "yet, so its rules could not be read")


# flannel's kube subnet manager annotates every node it runs on with the --kube-annotation-prefix (default
# "flannel.alpha.coreos.com", flannel-io/flannel main.go) + "/backend-type" etc. (pkg/subnet/kube/annotations.go); its
# VXLAN backend carries pod traffic between nodes inside UDP 8472 (Documentation/backends.md), which OKE's worker
# rules admit between workers: no OCI rule closes a GPU node's listeners to pods there.
def test_on_a_flannel_cluster_the_group_ports_are_open_whatever_ocis_rules_say(
        oci_cluster: tuple[Any, Path], installs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, config = oci_cluster
    close_the_open_subnet(fake)
    nodes = [oci_node(f"gpu-{n}", i) for n, i in enumerate(fake.instance_records)]
    nodes[0]["metadata"]["annotations"] = {"flannel.alpha.coreos.com/backend-type": "vxlan",
                                           "flannel.alpha.coreos.com/kube-subnet-manager": "true"}
    with Cluster([o for o in READY if o["kind"] != "Node"] + nodes, tmp_path / "flannel") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--oci-config", str(config))
        refused = install("-n", "ml", "--oci-config", str(config), accept_open_ports=False)
    [overlay] = lines(out, "error", "group-ports")
    assert overlay.startswith("error   group-ports pod network: the group's ports (") and \
        "the cluster's pods use flannel's VXLAN overlay (flannel's annotations on node(s) gpu-0): any pod on any " \
        "node reaches the GPU nodes' listeners through it" in overlay
    assert lines(out, "ok", "group-ports") == []
    assert refused.exit_code == 1 and "  pod network: the cluster's pods use flannel's VXLAN overlay" in \
        refused.output and refused_helm(installs)


def test_the_oke_clusters_cni_says_whether_pods_reach_the_nodes_past_ocis_rules(
        oci_cluster: tuple[Any, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, config = oci_cluster
    close_the_open_subnet(fake)
    flannel, native = fake.add_cluster(cni="FLANNEL_OVERLAY"), fake.add_cluster(cni="OCI_VCN_IP_NATIVE")
    nodes = [oci_node(f"gpu-{n}", i) for n, i in enumerate(fake.instance_records)]
    with Cluster([o for o in READY if o["kind"] != "Node"] + nodes, tmp_path / "cni") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        said = {cni: doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--set",
                            f"clusterNetwork.oke.clusterId={cluster_id}", "--oci-config", str(config))
                for cni, cluster_id in (("flannel", flannel), ("native", native))}
    [overlay] = lines(said["flannel"], "error", "group-ports")
    assert f"the cluster's pods use flannel's VXLAN overlay (cluster {flannel}'s CNI is FLANNEL_OVERLAY)" in overlay
    assert lines(said["native"], "error", "group-ports") == []
    assert len(lines(said["native"], "ok", "group-ports")) == 1


def test_open_ports_the_values_accept_are_a_warning(oci_cluster: tuple[Any, Path]) -> None:
    fake, config = oci_cluster
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--set", ACCEPT, "--oci-config", str(config))
    assert out.exit_code == 0, out.output
    [accepted] = [line for line in lines(out, "warning", "group-ports") if "gpu-a2" in line]
    assert "(hostNetwork); accepted by distributed.allowOpenGroupPorts=true: security list " in accepted


def test_a_release_that_provisions_is_judged_by_its_subnet_and_nsgs(oci_cluster: tuple[Any, Path]) -> None:
    fake, config = oci_cluster
    [opened] = [s for s, sub in fake.subnets.items() if sub["cidrBlock"] == "10.0.20.0/24"]
    provision = ",".join((*PROVISION, f"clusterNetwork.subnetId={opened}"))
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--set", provision, "--oci-config", str(config))
    [line] = lines(out, "error", "group-ports")
    assert line.startswith(f"error   group-ports clusterNetwork.subnetId {opened}: the group's ports")
    assert not reads(fake, "instances/")


def test_without_an_oci_config_the_rules_are_said_not_checked(oci_cluster: tuple[Any, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """No config at the default place: doctor says what it could not read. A config the user names that is not
    there is bad input (exit 2), as provision says it."""
    fake, _ = oci_cluster
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.oci/config
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS)
    assert out.exit_code == 0, out.output
    assert f"warning group-ports {H100}: not checked: no OCI config at ~/.oci/config, so the ingress rules of the 3 " \
           "GPU node(s) were not read; fix: pass --oci-config and --oci-profile, or --auth instancePrincipal on an " \
           "OCI instance" in out.stdout
    missing = tmp_path / "no-such-config"
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--oci-config", str(missing))
    assert out.exit_code == 2, out.output
    assert f"--oci-config {missing}, profile [DEFAULT]: no such file" in out.output
    assert not fake.calls


def test_an_instance_oci_does_not_show_is_not_checked_and_the_others_still_are(oci_cluster: tuple[Any, Path]) -> None:
    fake, config = oci_cluster
    gone = next(iter(fake.instance_records))
    del fake.instance_records[gone]
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--oci-config", str(config))
    assert [line.split(":")[0] for line in lines(out, "error", "group-ports")] == ["error   group-ports gpu-a2"]
    [unread] = [line for line in lines(out, "warning", "group-ports") if "gpu-a1" in line]
    assert "not checked: " in unread and "404" in unread and "get_instance" in unread


def test_sriov_mode_does_not_read_the_rules(oci_cluster: tuple[Any, Path]) -> None:
    fake, config = oci_cluster
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--set", "rdma.mode=sriov,rdma.sriov.networkName="
                 "default/rdma-vf", "--oci-config", str(config))
    assert "group-ports" not in out.stdout and not fake.calls


# --- install and upgrade refuse while OCI's rules open the group's ports ------------------------------------------
def refused_helm(installs: Path) -> bool:
    """helm never installed: the stand-in helm logs every install and upgrade it is asked for."""
    return not installs.exists()


def test_install_refuses_when_a_security_list_opens_the_group_ports(oci_cluster: tuple[Any, Path],
                                                                  installs: Path) -> None:
    fake, config = oci_cluster
    out = install("-n", "ml", "--oci-config", str(config), accept_open_ports=False)
    assert out.exit_code == 1, out.output
    [listed] = [s for s, sub in fake.subnets.items() if sub["cidrBlock"] == "10.0.20.0/24"]
    security_list = fake.subnets[listed]["securityListIds"][0]
    assert "helm-rdma: error: the group's ports (the torch store's 29500 and NCCL's bootstrap and vLLM's ZMQ " \
           "sockets on the kernel's default ephemeral ports, 32768-60999) listen on the GPU nodes' VCN addresses " \
           "with no authentication" in out.output
    # what an outsider gets: every request's tokens from vLLM's broadcast (its XPUB socket, vllm 0.33.0
    # shm_broadcast.py:567), and through the torch store's keys the group's peers and vLLM's readers, which unpickle
    # what they receive (shm_broadcast.py:1003, 1019)
    assert "read vLLM's broadcast socket, which sends the token IDs of every request, and write the torch store's " \
           "keys" in out.output
    assert f'  gpu-a2: security list {security_list} ingress rule #1 (the 2nd, "Allow all traffic from worker nodes") ' \
           "admits TCP from 10.0.20.0/24 to every port\nnothing was installed; fix: give the GPU nodes a subnet of " \
           "their own" in out.output
    assert "or set distributed.allowOpenGroupPorts=true to accept these ports open" in out.output
    assert refused_helm(installs)
    upgrade = CliRunner().invoke(main, ["upgrade", "llama405b", "--preset", "h100", "--set", SECRETS, "-n", "ml",
                                        "--set", UNGUARDED, "--oci-config", str(config)])
    assert upgrade.exit_code == 1 and f"  gpu-a2: security list {security_list} ingress rule #1" in upgrade.output
    assert refused_helm(installs)


def test_with_the_port_guard_on_no_oci_rule_is_read_and_open_rules_do_not_refuse(oci_cluster: tuple[Any, Path],
                                                                                  installs: Path) -> None:
    """The default: each serving pod's port guard closes the group's ports on its node (files/port_guard.py), so the
    OCI rules that open them (the worker subnet's "all from the worker CIDR", above) are not the last word: doctor
    says what closes them and install goes on, neither signing in to OCI."""
    fake, config = oci_cluster
    out = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--oci-config", str(config), guarded=True)
    assert out.exit_code == 0, out.output
    assert lines(out, "ok", "group-ports") == [
        f"ok      group-ports {H100}: the group's ports (the torch store's 29500 and NCCL's bootstrap and vLLM's ZMQ "
        "sockets on the kernel's default ephemeral ports, 32768-60999) are closed on each GPU node by the pods' port "
        "guard (distributed.portGuard): new connections to the serving pods' listeners come only from the node itself "
        "and the release's pods, and pods on a GPU node of the release reach the others only on vllm.port and "
        "openPorts"]
    ok = CliRunner().invoke(main, ["install", "llama405b", "--preset", "h100", "--set", SECRETS, "-n", "ml",
                                   "--oci-config", str(config)])
    assert ok.exit_code == 0, ok.output
    assert not fake.calls and not refused_helm(installs)


def test_install_refuses_when_a_node_is_no_oci_instance(oci_cluster: tuple[Any, Path], installs: Path) -> None:
    fake, config = oci_cluster
    close_the_open_subnet(fake)
    out = install("-n", "ml", "--oci-config", str(config), accept_open_ports=False)
    assert out.exit_code == 1, out.output
    assert "cannot tell whether OCI's ingress rules keep the group's ports" in out.output
    assert "1 GPU node(s) (gpu-elsewhere) name no OCI instance in spec.providerID" in out.output
    assert refused_helm(installs)


def test_install_goes_on_when_only_the_group_reaches_its_ports(oci_cluster: tuple[Any, Path], installs: Path,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The closed world: the subnet's list admits SSH and the kubelet only, the NSG on the nodes TCP from itself."""
    fake, config = oci_cluster
    close_the_open_subnet(fake)
    fake.add_instance("ocid1.compartment.oc1..nodes", [next(iter(fake.nsg_rules))],
                      subnet=next(iter(fake.subnets)))
    with Cluster([o for o in READY if o["kind"] != "Node"] + [
            oci_node(f"gpu-{n}", i) for n, i in enumerate(fake.instance_records)], tmp_path / "closed") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        out = install("-n", "ml", "--oci-config", str(config), accept_open_ports=False)
        upgrade = CliRunner().invoke(main, ["upgrade", "llama405b", "--preset", "h100", "--set", SECRETS, "-n", "ml",
                                            "--oci-config", str(config)])
    assert out.exit_code == 0, out.output
    assert ("helm-rdma: group ports: no OCI ingress rule opens them to more than the group, and no overlay reaches "
            "them (4 node(s) read); pods and processes on the GPU nodes themselves still reach them") in out.stderr
    assert upgrade.exit_code == 0, upgrade.output
    assert [line.split()[:2] for line in installs.read_text().splitlines()] == [["install", "llama405b"],
                                                                               ["upgrade", "--install"]]


def test_install_that_cannot_judge_refuses_and_names_both_ways_on(oci_cluster: tuple[Any, Path], installs: Path,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake, _ = oci_cluster
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.oci/config
    out = install("-n", "ml", accept_open_ports=False)
    assert out.exit_code == 1, out.output
    assert "no OCI config at ~/.oci/config, so the ingress rules of the 3 GPU node(s) were not read; nothing " \
           "was installed; fix: make the check possible (pass --oci-config and --oci-profile, or --auth " \
           "instancePrincipal on an OCI instance," in out.output
    assert "or set distributed.allowOpenGroupPorts=true to accept these ports open" in out.output
    out = install("-n", "ml", "--oci-config", str(tmp_path / "none"), accept_open_ports=False)
    assert out.exit_code == 2, out.output  # a config the user names that is not there: bad input
    assert f"--oci-config {tmp_path / 'none'}, profile [DEFAULT]: no such file" in out.output
    assert refused_helm(installs) and not fake.calls


def test_install_with_open_ports_accepted_reads_no_oci_rule(oci_cluster: tuple[Any, Path], installs: Path) -> None:
    fake, config = oci_cluster
    out = install("-n", "ml", "--oci-config", str(config))
    assert out.exit_code == 0, out.output
    assert installs.read_text().startswith("install llama405b") and not fake.calls


def test_a_dry_run_reads_no_oci_rule(oci_cluster: tuple[Any, Path], installs: Path) -> None:
    fake, config = oci_cluster
    for dry in ("--dry-run", "--dry-run=server"):
        out = install("-n", "ml", "--oci-config", str(config), dry, accept_open_ports=False)
        assert out.exit_code == 0, out.output
    assert not fake.calls and installs.read_text().split()[-1] == "--dry-run=server"  # helm's own dry run only


def test_install_that_provisions_judges_the_planned_subnet_before_helm(oci_cluster: tuple[Any, Path],
                                                                       installs: Path) -> None:
    fake, config = oci_cluster
    [opened] = [s for s, sub in fake.subnets.items() if sub["cidrBlock"] == "10.0.20.0/24"]
    [shared] = fake.nsg_rules  # the three GPU instances of the fixture carry it
    native = fake.add_cluster(cni="OCI_VCN_IP_NATIVE")

    def planned(nsg: str) -> Any:
        sets = ",".join((*PROVISION, f"clusterNetwork.subnetId={opened}", f"clusterNetwork.nsgIds={{{nsg}}}",
                         f"clusterNetwork.oke.clusterId={native}"))
        return install("-n", "ml", "--set", sets, "--oci-config", str(config), accept_open_ports=False)

    out = planned(shared)
    assert out.exit_code == 1, out.output
    assert f"  clusterNetwork.subnetId {opened}: security list " in out.output and "nothing was installed" in out.output
    assert refused_helm(installs) and not reads(fake, "instances/")
    close_the_open_subnet(fake)
    # The NSG's rule from itself admits its members: instances that are not the nodes this release provisions.
    out = planned(shared)
    assert out.exit_code == 1, out.output
    assert f"admits TCP from NSG {shared}, which admits its members, 4 of them not the GPU nodes judged (VNIC " \
        in out.output and refused_helm(installs)
    out = planned(fake.add_nsg(FROM_ITSELF))  # an NSG no VNIC carries yet: only the new nodes will
    assert out.exit_code == 0, out.output
    assert "no overlay reaches them (1 subject(s) read)" in out.stderr


@pytest.mark.parametrize(("nodes", "forbidden", "why"), [
    ([], (), f"no node of shape {H100} is in the cluster yet, so there are no rules to read"),
    ([node("gpu-a1", H100, network="net-a")], ("v1/nodes",),
     "the kube user may not list nodes, so the GPU nodes could not be read"),
], ids=["no-gpu-node-yet", "nodes-not-listable"])
def test_install_refuses_when_it_cannot_see_the_gpu_nodes(nodes: list[dict[str, Any]], forbidden: tuple[str, ...],
                                                          why: str, installs: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    objects = [o for o in READY if o["kind"] != "Node"] + nodes
    with Cluster(objects, tmp_path / "kubeconfig", forbidden=forbidden) as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        out = install("-n", "ml", "--skip-cluster-checks", accept_open_ports=False)
    assert out.exit_code == 1, out.output
    assert f"closed to all but the group (hostNetwork, no authentication on them): {why}" in out.output
    assert "or set distributed.allowOpenGroupPorts=true to accept these ports open" in out.output
    assert refused_helm(installs)


def test_install_that_provisions_refuses_no_hooks(oci_cluster: tuple[Any, Path], installs: Path) -> None:
    """The provisioning hook makes the network and judges the nodes OCI really has before anything bills; helm's
    --no-hooks would skip it and install on whatever nodes are there."""
    fake, config = oci_cluster
    [subnet] = [s for s, sub in fake.subnets.items() if sub["cidrBlock"] == "10.0.20.0/24"]
    sets = ",".join((*PROVISION, f"clusterNetwork.subnetId={subnet}"))
    out = install("-n", "ml", "--set", sets, "--oci-config", str(config), "--", "--no-hooks")
    assert out.exit_code == 2, out.output
    assert "install -- --no-hooks: the arguments after -- go to helm as they are, and with --no-hooks helm would " \
           "skip the hook that provisions the cluster network" in out.output
    assert "fix: drop --no-hooks, or set clusterNetwork.provision=false" in out.output
    assert refused_helm(installs) and not fake.calls


def test_only_the_nodes_the_pods_may_run_on_are_judged(oci_cluster: tuple[Any, Path], installs: Path,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the cluster-network label the pods run only on the labelled nodes (the rendered pods' nodeSelector): a
    node of the shape in another network is not judged as the group's. It is still no member of the group, so the
    NSG that admits TCP from itself, which that node carries too, opens the ports to it (named)."""
    fake, config = oci_cluster
    guarded, open_, detached = list(fake.instance_records)
    objects = [o for o in READY if o["kind"] != "Node"] + [
        oci_node("gpu-a1", guarded), oci_node("gpu-a3", detached),
        {**oci_node("gpu-b1", open_), "metadata": meta("gpu-b1", **{SHAPE: H100, NETWORK: "net-b"})}]
    label = "placement.clusterNetworkLabel.enabled=true,placement.clusterNetworkLabel.value=net-a"
    with Cluster(objects, tmp_path / "kubeconfig-b") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        everyone = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--oci-config", str(config))
        labelled = doctor("--preset", "h100", "-n", "ml", "--set", SECRETS, "--set", label, "--oci-config",
                          str(config))
        out = install("-n", "ml", "--set", label, "--oci-config", str(config), accept_open_ports=False)
    judged = [line.split(":")[0].split()[-1] for line in lines(everyone, "error", "group-ports")]
    assert "gpu-b1" in judged  # without the label the pods may land on it: judged
    judged = [line.split(":")[0].split()[-1] for line in lines(labelled, "error", "group-ports")]
    assert "gpu-b1" not in judged and judged, labelled.output
    assert out.exit_code == 1 and refused_helm(installs), out.output
    assert "gpu-b1" not in out.output.split("nothing was installed")[0].split("OCI's ingress rules")[0]
    assert f"of instance {open_})" in out.output  # named as the NSG's member outside the group
