"""Renders of every preset x backend x workload kind x RDMA mode, with helm 3.17.2 and helm 4.1.4: identical on
both, strictly valid for Kubernetes, the LWS CRD, and the rules of what consumes them (tests/consumer_rules.py).
Golden files are kept only for a pairwise set a reviewer can read: every value of every axis, every pair of
backend, workload kind and RDMA mode, and the optional parts (the OCI hooks in each auth mode, emptyDir storage with
replicas and monitoring, a device plugin with an API key, and the serving extras: routes, LoRA, escape hatches).
The router with autoscaling renders on both helms and validates too, without a golden file (tests/test_routing.py
reads its objects).

Refresh after an intended change: make golden   (HELM_RDMA_UPDATE_GOLDEN=1 pytest tests/test_golden.py)

Goldens hold structure: the data of the scripts and dashboard ConfigMaps (files/ of the chart, which have tests of
their own) is one line per file, its sha256 and length, so an edit to a pod script changes one line per golden. The
optional parts' goldens hold in full only the objects their values change: an object identical to the same object
of its base case (BASES) is one line, `# as in BASE.yaml: sha256:... (N lines)`, so a change to it still fails there.

The chart version's digest (the part after `+`, `_` in the helm.sh/chart label) changes with any template, value or
schema change; the goldens show it as DIGEST so that a change shows where it matters. tests/test_chart_identity.py
checks the digest itself.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from helm_rdma.commands.template import template
from helm_rdma.sizing.presets import preset_names

from . import consumer_rules
from .conftest import SHARED_CRDS, helm_path
from .k8s_validation import load_manifests, validate_documents
from .rendering import ROUTER_AUTOSCALING, request

GOLDEN = Path(__file__).parent / "golden"
KUBE_VERSION = "1.30.0"
CASES = list(itertools.product(preset_names(), ("native", "ray"), ("LeaderWorkerSet", "StatefulSet"),
                               ("hostNetwork", "sriov")))
CLUSTER_NETWORK = ("clusterNetwork.provision=true", "clusterNetwork.compartmentId=ocid1.compartment.oc1..c",
                   "clusterNetwork.availabilityDomain=Uocm:US-ASHBURN-AD-1", "clusterNetwork.subnetId=ocid1.subnet.oc1..s",
                   "clusterNetwork.imageId=ocid1.image.oc1..i",
                   "clusterNetwork.image.repository=iad.ocir.io/example/helm-rdma-provisioner")
# Around the model (issue 15): routes to the API, LoRA adapters, alerts and the escape hatches, on StatefulSets.
SERVING_EXTRAS = ("workload.kind=StatefulSet", "api.keySecret.name=vllm-api-key",
                  "ingress.enabled=true", "ingress.className=nginx", "ingress.hosts[0]=llm.example.com",
                  "ingress.tls[0].secretName=llm-tls", "ingress.tls[0].hosts[0]=llm.example.com",
                  "gateway.enabled=true", "gateway.parentRefs[0].name=public", "gateway.parentRefs[0].namespace=gateways",
                  "vllm.lora.enabled=true", "vllm.lora.maxRank=32", "vllm.lora.adapters[0].name=sql",
                  "vllm.lora.adapters[0].repo=example/llama-sql-lora", "vllm.lora.adapters[1].name=local",
                  "vllm.lora.adapters[1].path=/adapters/local", "extraVolumes[0].name=adapters",
                  "extraVolumes[0].persistentVolumeClaim.claimName=lora-adapters",
                  "extraVolumeMounts[0].name=adapters", "extraVolumeMounts[0].mountPath=/adapters",
                  "priorityClassName=llm-serving", "runtimeClassName=nvidia", "kueue.queueName=gpu-queue",
                  "podSecurityContext.fsGroup=1000", "securityContext.capabilities.add[0]=SYS_PTRACE",
                  "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
                  ".matchExpressions[0].key=example.com/pool",
                  "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
                  ".matchExpressions[0].operator=Exists",
                  "initContainers[0].name=warm", "initContainers[0].image=docker.io/library/busybox:1.36",
                  "extraContainers[0].name=exporter", "extraContainers[0].image=example.com/exporter:1",
                  "resources.limits.memory=256Gi", "podLabels.example\\.com/team=ml", "imagePullSecrets[0].name=regcred",
                  "monitoring.rules.enabled=true")
# Optional parts, each on the default preset: the OCI hooks in each auth mode, monitoring, model download.
EXTRAS = {
    "h100-provision-workload-identity": (*CLUSTER_NETWORK, "clusterNetwork.region=us-ashburn-1"),
    "h100-provision-api-key-delete-on-uninstall": (*CLUSTER_NETWORK, "clusterNetwork.auth=apiKey",
                                                   "clusterNetwork.apiKeySecret=oci-api-key",
                                                   "clusterNetwork.deleteOnUninstall=true"),
    "h100-provision-instance-principal": (*CLUSTER_NETWORK, "clusterNetwork.auth=instancePrincipal"),
    "h100-emptydir-replicas-monitoring": ("model.storage.type=emptyDir", "model.hfTokenSecret.name=hf-token",
                                          "replicas=2", "monitoring.serviceMonitor.enabled=true",
                                          "monitoring.dashboard.enabled=true", "monitoring.rules.enabled=true"),
    "h100-device-plugin-api-key": ("rdma.devicePluginResource=rdma/rdma_shared_device_a",
                                   "api.keySecret.name=vllm-api-key"),
    "h100-statefulset-serving-extras": SERVING_EXTRAS,
}
# The render each optional part is kept against: its objects identical to the base's are one digest line each.
BASES = {name: "h100-native-LeaderWorkerSet-hostNetwork" for name in EXTRAS} | {
    "h100-provision-api-key-delete-on-uninstall": "h100-provision-workload-identity",
    "h100-provision-instance-principal": "h100-provision-workload-identity",
}
# The matrix cases with golden files: each preset once, and together every pair of backend, kind and mode.
GOLDEN_CASES = {
    ("h100", "native", "LeaderWorkerSet", "hostNetwork"), ("a100-v2", "ray", "StatefulSet", "sriov"),
    ("gpu4", "native", "StatefulSet", "hostNetwork"), ("h200", "ray", "LeaderWorkerSet", "sriov"),
    ("b200", "native", "LeaderWorkerSet", "sriov"), ("mi300x", "ray", "StatefulSet", "hostNetwork"),
}


def case_id(case: tuple[str, ...]) -> str:
    return "-".join(case)


def render_sets(preset: str, sets: tuple[str, ...], helm: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HELM_BIN", str(helm_path(helm)))
    return template(request(preset=preset, sets=sets), helm_args=("--kube-version", KUBE_VERSION)).manifests


def render(case: tuple[str, str, str, str], helm: str, monkeypatch: pytest.MonkeyPatch) -> str:
    preset, backend, kind, mode = case
    sets = [f"distributed.backend={backend}", f"workload.kind={kind}", f"rdma.mode={mode}"]
    if backend == "ray" and preset != "mi300x":
        sets.append("image.tag=v0.17.1")  # the last stock vLLM image with Ray
    if backend == "ray":
        sets.append("distributed.ray.authTokenSecret.name=ray-token")
    return render_sets(preset, tuple(sets), helm, monkeypatch)


# helm.sh/chart labels (NAME-X.Y.Z_DIGEST) and the release ConfigMap's chart (NAME-X.Y.Z+DIGEST)
DIGEST = re.compile(r"(-\d+\.\d+\.\d+[_+])[0-9a-f]{12}\b")


# The ConfigMaps whose data are copies of the chart's files/: a golden keeps one digest line per file.
FILE_CONFIGMAPS = ("templates/configmap-scripts.yaml", "templates/configmap-dashboard.yaml")


def digest_line(text: str) -> str:
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()[:16]} ({len(text.splitlines())} lines)"


def source_of(document: str) -> str:
    """The `# Source: CHART/templates/X.yaml` line of a rendered document (helm writes `---` before the first)."""
    return next(line for line in document.split("\n", 2)[:2] if line.startswith("# Source:"))


def structure(manifests: str, *, base: str | None = None, base_name: str = "") -> str:
    """The render as a golden keeps it: helm's text, with each copied file's content as its digest line and, against
    a base render, each document identical to the base's document of the same source as one digest line."""
    documents = manifests.split("\n---\n")
    for i, doc in enumerate(documents):
        if source_of(doc).endswith(FILE_CONFIGMAPS):
            body = yaml.safe_load(doc)
            body["data"] = {key: digest_line(text) for key, text in body["data"].items()}
            head = doc[:doc.index(source_of(doc))] + source_of(doc)
            documents[i] = head + "\n" + yaml.safe_dump(body, sort_keys=False, width=120).rstrip("\n")
    if base is not None:
        kept = Counter(doc.removeprefix("---\n") for doc in structure(base).split("\n---\n"))
        for i, doc in enumerate(documents):
            if kept[body := doc.removeprefix("---\n")]:
                kept[body] -= 1
                head = doc[:doc.index(source_of(doc))] + source_of(doc)
                documents[i] = f"{head}\n# as in {base_name}.yaml: {digest_line(body)}"
    return "\n---\n".join(documents)


def check_golden(name: str, helm3: str, helm4: str, *, golden_file: bool = True, base: str | None = None) -> list[dict]:
    assert helm3 == helm4, "helm 3.17.2 and helm 4.1.4 render differently"
    helm4 = DIGEST.sub(r"\1DIGEST", helm4)
    if golden_file:
        golden = GOLDEN / f"{name}.yaml"
        kept = structure(helm4, base=base and DIGEST.sub(r"\1DIGEST", base), base_name=BASES.get(name, ""))
        if os.environ.get("HELM_RDMA_UPDATE_GOLDEN"):
            GOLDEN.mkdir(exist_ok=True)
            golden.write_text(kept)
        assert golden.is_file(), f"{golden} is missing: run `make golden`"
        assert kept == golden.read_text(), f"{golden.name} differs: review, then `make golden`"
    documents = load_manifests(helm4)
    crds = SHARED_CRDS if SHARED_CRDS.is_dir() else None
    if crds is None:
        print(f"LeaderWorkerSet CRD validation skipped: {SHARED_CRDS} is absent")
    assert validate_documents(documents, crds=crds) == []
    assert consumer_rules.problems(documents) == []
    return documents


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_render_matches_golden_on_both_helms_and_validates(case: tuple[str, str, str, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    documents = check_golden(case_id(case), render(case, "helm3", monkeypatch), render(case, "helm4", monkeypatch),
                             golden_file=case in GOLDEN_CASES)
    kinds = {d["kind"] for d in documents}
    preset, backend, kind, mode = case
    assert kind in kinds
    assert ("Service" in kinds) and ("ConfigMap" in kinds)


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_optional_parts_match_golden_on_both_helms_and_validate(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    base = BASES[name]
    base_render = (render_sets("h100", EXTRAS[base], "helm4", monkeypatch) if base in EXTRAS
                   else render(next(c for c in GOLDEN_CASES if case_id(c) == base), "helm4", monkeypatch))
    documents = check_golden(name, render_sets("h100", EXTRAS[name], "helm3", monkeypatch),
                             render_sets("h100", EXTRAS[name], "helm4", monkeypatch), base=base_render)
    hooks = {d["metadata"]["name"]: d["metadata"].get("annotations", {}) for d in documents
             if "helm.sh/hook" in d["metadata"].get("annotations", {})}
    if "provision" in name:
        job = hooks["llama405b-vllm-rdma-provision"]
        assert job["helm.sh/hook"] == "pre-install,pre-upgrade,pre-rollback"  # grows before the workload does
        assert hooks["llama405b-vllm-rdma-shrink"]["helm.sh/hook"] == "post-upgrade,post-rollback"  # shrinks after
        weights = {n: int(a["helm.sh/hook-weight"]) for n, a in hooks.items()}
        provision = weights["llama405b-vllm-rdma-provision"]
        # the provisioner's account, RBAC and values come before its Jobs
        assert max(w for n, w in weights.items() if n.endswith("provisioner")) < provision
        assert weights["llama405b-vllm-rdma-shrink"] == provision
        assert ("llama405b-vllm-rdma-deprovision" in hooks) == ("delete-on-uninstall" in name)


def test_the_router_with_autoscaling_renders_alike_on_both_helms_and_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    documents = check_golden("h100-router-autoscaling", render_sets("h100", ROUTER_AUTOSCALING, "helm3", monkeypatch),
                             render_sets("h100", ROUTER_AUTOSCALING, "helm4", monkeypatch), golden_file=False)
    assert {"InferencePool", "Deployment", "ScaledObject", "HTTPRoute"} <= {d["kind"] for d in documents}


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


@pytest.mark.parametrize("mode", ["hostNetwork", "sriov"])
@pytest.mark.parametrize("preset", preset_names())
def test_preflight_and_test_hooks_render_and_validate_for_every_preset(preset: str, mode: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Two nodes even where the model fits one: groups of one node have no preflight.
    manifests = template(request(preset=preset, model="llama70b", nodes=2, sets=(f"rdma.mode={mode}",)),
                         helm_args=("--kube-version", KUBE_VERSION)).manifests
    documents = [d for d in yaml.safe_load_all(manifests) if d]
    crds = SHARED_CRDS if SHARED_CRDS.is_dir() else None
    assert validate_documents(documents, crds=crds) == []
    assert consumer_rules.problems(documents) == []
    [lws] = [d for d in documents if d["kind"] == "LeaderWorkerSet"]
    pod = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    guard = ["port-guard"] if mode == "hostNetwork" else []  # first: no listener starts before its table
    assert [c["name"] for c in pod["initContainers"]] == [*guard, "download-model", "preflight", "preflight-verdict"]
    preflight = pod["initContainers"][len(guard) + 1]
    env = {e["name"]: e.get("value") for e in preflight["env"]}
    assert env["HELM_RDMA_TASK"] == "preflight" and env["HELM_RDMA_GPUS_PER_NODE"] == "8"
    assert env["NCCL_IB_GID_INDEX"] == "3" or preset == "mi300x" and env["NCCL_NET_PLUGIN"] == "none"
    assert env["NCCL_IB_HCA"] == "mlx5" if mode == "sriov" else env["NCCL_IB_HCA"].startswith("=mlx5_")
    assert pod.get("hostNetwork", False) == (mode == "hostNetwork")
    hooks = {d["metadata"]["name"]: d for d in documents if "helm.sh/hook" in d["metadata"].get("annotations", {})}
    assert ("llama405b-vllm-rdma-test-rdma" in hooks) == (mode == "hostNetwork")
    assert hooks["llama405b-vllm-rdma-test-api"]["kind"] == "Job"


def test_the_golden_set_covers_every_axis_value_and_pair_and_nothing_else_is_kept() -> None:
    for axis in range(4):
        assert {c[axis] for c in GOLDEN_CASES} == {c[axis] for c in CASES}
    for a, b in itertools.combinations(range(1, 4), 2):
        assert {(c[a], c[b]) for c in GOLDEN_CASES} == {(c[a], c[b]) for c in CASES}
    kept = {p.stem for p in GOLDEN.glob("*.yaml")}
    assert kept == {case_id(c) for c in GOLDEN_CASES} | set(EXTRAS)
    assert len(kept) <= 12


def test_goldens_keep_copied_files_as_one_digest_line_each() -> None:
    text = (GOLDEN / "h100-native-LeaderWorkerSet-hostNetwork.yaml").read_text()
    scripts = next(d for d in text.split("\n---\n") if source_of(d).endswith("configmap-scripts.yaml"))
    data = yaml.safe_load(scripts)["data"]
    entrypoint = (Path(__file__).parents[1] / "charts/vllm-rdma/files/entrypoint.sh").read_text()
    assert data["entrypoint.sh"] == digest_line(entrypoint)
    assert all(v.startswith("sha256:") for v in data.values())
    assert "-vllm-rdma.json: sha256:" in (GOLDEN / "h100-emptydir-replicas-monitoring.yaml").read_text()  # the dashboard


def test_an_optional_part_keeps_in_full_only_the_objects_its_values_change() -> None:
    a, b = "# Source: c/templates/a.yaml\nkind: A", "# Source: c/templates/b.yaml\nkind: B"
    kept = structure(f"---\n{a}\n---\n{b}\nx: 2", base=f"---\n{a}\n---\n{b}\nx: 1", base_name="base")
    assert kept == f"---\n# Source: c/templates/a.yaml\n# as in base.yaml: {digest_line(a)}\n---\n{b}\nx: 2"
    text = (GOLDEN / "h100-provision-instance-principal.yaml").read_text()
    [lws] = [d for d in text.split("\n---\n") if source_of(d).endswith("templates/leaderworkerset.yaml")]
    assert lws.splitlines()[1].startswith("# as in h100-provision-workload-identity.yaml: sha256:")
    jobs = [d for d in text.split("\n---\n") if source_of(d).endswith("templates/job-provision.yaml")]
    assert len(jobs) == 2 and all("\nkind: Job\n" in j for j in jobs)  # grow and shrink: their auth differs, kept
