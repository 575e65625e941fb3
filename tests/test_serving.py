"""What is served around the model: routes to the API (Ingress, HTTPRoute), monitoring (ServiceMonitor,
PrometheusRule, Grafana dashboard), LoRA adapters and the escape hatches every chart offers. Each renders, validates
strictly for Kubernetes 1.30 and 1.35 (the CRDs against tests/crds), keeps the consumers' rules, and its misuse
stops at the schema, validateValues or doctor."""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_rdma.checks.doctor import value_findings
from helm_rdma.commands.doctor import doctor
from helm_rdma.commands.template import template
from helm_rdma.datafiles import chart_dir
from helm_rdma.errors import ChartValuesError, LoraSizeUnknownError, SchemaViolation, TooFewNodesError
from helm_rdma.resolve.values import resolve
from helm_rdma.resolve.valuesources import ValueSources
from helm_rdma.sizing.catalog import get_model
from helm_rdma.sizing.lora import LoraSlots, layer_elements, lora_bytes_per_gpu
from helm_rdma.sizing.planner import Sizing, plan_model
from helm_rdma.sizing.presets import load_preset

from . import consumer_rules
from .conftest import REPO, SHARED_CRDS, helm_path
from .k8s_validation import CRDS, VENDORED_CRDS, crd_validator, load_manifests, validate_documents
from .rendering import request


def merged(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


KEY = {"api": {"keySecret": {"name": "vllm-api-key"}}}
# Each feature of issue 15 as a user would write it; EVERYTHING has them all at once.
ESCAPE_HATCHES: dict[str, Any] = {
    "priorityClassName": "llm-serving", "schedulerName": "volcano", "runtimeClassName": "nvidia",
    "kueue": {"queueName": "gpu-queue"},
    "affinity": {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "example.com/pool", "operator": "In", "values": ["llm"]}]}]}},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                "labelSelector": {"matchLabels": {"app": "noisy"}}}}]}},
    "podSecurityContext": {"fsGroup": 1000},
    "securityContext": {"runAsUser": 0, "capabilities": {"add": ["SYS_PTRACE"], "drop": ["NET_RAW"]}},
    "extraVolumes": [{"name": "adapters", "persistentVolumeClaim": {"claimName": "lora-adapters"}}],
    "extraVolumeMounts": [{"name": "adapters", "mountPath": "/adapters", "readOnly": True}],
    "initContainers": [{"name": "warm", "image": "docker.io/library/busybox:1.36", "command": ["sh", "-c", "true"]}],
    "extraContainers": [{"name": "exporter", "image": "example.com/exporter:1",
                         "volumeMounts": [{"name": "adapters", "mountPath": "/data"}]}],
    "podLabels": {"example.com/team": "ml"}, "podAnnotations": {"example.com/owner": "ml"},
    "imagePullSecrets": [{"name": "regcred"}],
    "resources": {"limits": {"cpu": "32", "memory": "256Gi"}},
}
MONITORING: dict[str, Any] = {
    "monitoring": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}, "dashboard": {"enabled": True},
                   "rules": {"enabled": True, "labels": {"release": "kps"}}},
}
ROUTES: dict[str, Any] = {
    "ingress": {"enabled": True, "className": "nginx", "hosts": ["llm.example.com"],
                "tls": [{"secretName": "llm-tls", "hosts": ["llm.example.com"]}],
                "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "7200"}},
    "gateway": {"enabled": True, "parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
                "hostnames": ["llm.example.com"]},
}
LORA: dict[str, Any] = {
    "vllm": {"lora": {"enabled": True, "maxRank": 64, "maxLoras": 2, "adapters": [
        {"name": "sql", "repo": "example/llama-sql-lora", "revision": "v1"},
        {"name": "local", "path": "/adapters/local"}]}},
}
EVERYTHING = merged(KEY, ESCAPE_HATCHES, MONITORING, ROUTES, LORA)


@functools.lru_cache(maxsize=32)
def _render(values: str, kind: str, mode: str) -> tuple[dict[str, Any], ...]:
    sets = (f"workload.kind={kind}", f"rdma.mode={mode}")
    previous = os.environ.get("HELM_BIN")
    os.environ["HELM_BIN"] = str(helm_path("helm4"))
    try:
        out = template(request(sets=sets, sources=ValueSources(set_json=(values,))), namespace="llm",
                       helm_args=("--kube-version", "1.30.0")).manifests
    finally:
        os.environ.pop("HELM_BIN") if previous is None else os.environ.__setitem__("HELM_BIN", previous)
    return tuple(load_manifests(out))


def render(values: dict[str, Any], kind: str = "LeaderWorkerSet", mode: str = "hostNetwork") -> list[dict[str, Any]]:
    return copy.deepcopy(list(_render(json.dumps(values, sort_keys=True), kind, mode)))


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


def leader(docs: list[dict[str, Any]]) -> dict[str, Any]:
    lws = one(docs, "LeaderWorkerSet")
    spec: dict[str, Any] = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
    return spec


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


def plain_helm(values: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    f = tmp_path / "values.json"
    f.write_text(json.dumps(values))
    return subprocess.run([str(helm_path("helm4")), "template", "x", str(chart_dir()), "-f", str(f)],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})


# -- everything at once: valid for Kubernetes, the CRDs and the consumers --------------------------------------------

@pytest.mark.parametrize(("kind", "mode"), [("LeaderWorkerSet", "hostNetwork"), ("StatefulSet", "sriov")])
def test_every_serving_extra_renders_validates_and_keeps_the_consumers_rules(kind: str, mode: str) -> None:
    docs = render(EVERYTHING, kind, mode)
    assert {"Ingress", "HTTPRoute", "ServiceMonitor", "PrometheusRule"} <= {d["kind"] for d in docs}
    crds = SHARED_CRDS if SHARED_CRDS.is_dir() else None
    assert validate_documents(docs, crds=crds) == []
    assert consumer_rules.problems(docs) == []  # RDMA's device access among them, with the user's securityContext


def test_vendored_kubernetes_definitions_are_the_official_ones_trimmed() -> None:
    """schemas/kubernetes-definitions.json is what scripts/kubernetes-definitions makes of kubernetes-validate's
    Kubernetes 1.30 definitions: no hand edits."""
    out = subprocess.run([str(helm_path("helm4").parent / "python"), str(REPO / "scripts/kubernetes-definitions"),
                          "--check"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


# -- escape hatches ------------------------------------------------------------------------------------------------

def test_the_users_pod_settings_reach_the_serving_pods_and_join_the_charts() -> None:
    docs = render(EVERYTHING)
    spec = leader(docs)
    assert (spec["priorityClassName"], spec["schedulerName"], spec["runtimeClassName"]) == \
        ("llm-serving", "volcano", "nvidia")
    assert spec["securityContext"] == {"fsGroup": 1000}
    affinity = spec["affinity"]
    assert affinity["nodeAffinity"] == EVERYTHING["affinity"]["nodeAffinity"]
    assert affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == \
        "kubernetes.io/hostname"  # ours: one pod per node
    assert affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == \
        EVERYTHING["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert len(affinity["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]) == 3  # RDMA locality
    assert [c["name"] for c in spec["initContainers"]] == [  # the guard, downloads and the user's, then the barrier
        "port-guard", "download-model", "download-lora-0", "warm", "preflight", "preflight-verdict"]
    assert [c["name"] for c in spec["containers"]] == ["vllm", "exporter"]
    assert {"name": "adapters", "persistentVolumeClaim": {"claimName": "lora-adapters"}} in spec["volumes"]
    vllm = container(spec, "vllm")
    assert vllm["volumeMounts"][-1] == {"name": "adapters", "mountPath": "/adapters", "readOnly": True}
    assert vllm["resources"]["limits"] == {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": 8}


def test_a_users_security_context_keeps_what_rdma_needs() -> None:
    privileged = container(leader(render(EVERYTHING)), "vllm")["securityContext"]
    assert privileged["privileged"] is True and privileged["runAsUser"] == 0
    plugin = merged(EVERYTHING, {"rdma": {"devicePluginResource": "rdma/rdma_shared_device_a"}})
    docs = render(plugin)
    for name in ("vllm", "preflight"):
        sc = container(leader(docs), name)["securityContext"]
        assert "privileged" not in sc and sc["capabilities"] == {"add": ["SYS_PTRACE", "IPC_LOCK"], "drop": ["NET_RAW"]}
    assert consumer_rules.rdma_devices_can_be_opened(docs) == []


@pytest.mark.parametrize(("values", "needle"), [
    ({"securityContext": {"privileged": False}}, "securityContext.privileged: is false"),
    ({"securityContext": {"allowPrivilegeEscalation": False}}, "allowPrivilegeEscalation: is false"),
    ({"podSecurityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}}, "net.core.somaxconn"),
    ({"resources": {"limits": {"memory": "128Gi"}}}, "resources.limits.memory: 128Gi is below"),
    ({"extraVolumes": [{"name": "model", "emptyDir": {}}]}, "extraVolumes: a volume is named model"),
    ({"extraVolumeMounts": [{"name": "nothing", "mountPath": "/x"}]}, "names a volume the pods do not have (nothing)"),
    ({"extraVolumeMounts": [{"name": "model", "mountPath": "/dev/shm"}]}, "extraVolumeMounts: mount /dev/shm in the vllm container"),
    ({"extraContainers": [{"name": "vllm", "image": "x"}]}, "is named vllm, as one of the chart's containers"),
    ({"initContainers": [{"name": "a", "image": "x"}], "extraContainers": [{"name": "a", "image": "y"}]},
     "a container name repeats"),
])
def test_escape_hatches_that_kubernetes_or_rdma_refuse_stop_at_validate_values(
        tmp_path: Path, values: dict[str, Any], needle: str) -> None:
    out = plain_helm(values, tmp_path)
    assert out.returncode != 0 and "the values do not fit together" in out.stderr and needle in out.stderr, out.stderr
    with pytest.raises(ChartValuesError, match=re.escape(needle)):
        template(request(sources=ValueSources(set_json=(json.dumps(values),))))


@pytest.mark.parametrize(("values", "needle"), [
    ({"extraContainers": [{"name": "Bad_Name", "image": "x"}]}, "extraContainers[0].name"),
    ({"initContainers": [{"name": "a"}]}, "initContainers[0].image"),
    ({"extraVolumes": [{"name": "v", "hostPath": {"path": "/a/../etc"}}]}, "extraVolumes[0].hostPath.path"),
    ({"affinity": {"nodeAffinity": {"bogus": 1}}}, "affinity.nodeAffinity"),
    ({"securityContext": {"capabilities": {"add": "IPC_LOCK"}}}, "securityContext.capabilities.add"),
    ({"resources": {"limits": {"nvidia.com/gpu": "4"}}}, "resources.limits"),
    ({"kueue": {"queueName": "Queue A"}}, "kueue.queueName"),
])
def test_escape_hatches_are_checked_against_the_kubernetes_shapes(values: dict[str, Any], needle: str) -> None:
    with pytest.raises(SchemaViolation, match=re.escape(needle)):
        resolve(request(sources=ValueSources(set_json=(json.dumps(values),))))


def test_kueue_admits_by_the_label_on_the_leaderworkerset_or_each_statefulset() -> None:
    lws = one(render(EVERYTHING), "LeaderWorkerSet")
    assert lws["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    sets = [d for d in render(EVERYTHING, "StatefulSet", "sriov") if d["kind"] == "StatefulSet"]
    assert [s["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] for s in sets] == ["gpu-queue", "gpu-queue"]


def test_doctor_knows_the_scheduling_combinations_that_do_not_fit() -> None:
    def keys(kind: str) -> set[tuple[str, str]]:
        values = merged(EVERYTHING, {"workload": {"kind": kind}})
        found = value_findings(resolve(request(sources=ValueSources(set_json=(json.dumps(values),)))))
        return {(x.severity, x.key) for x in found}
    sts, lws = keys("StatefulSet"), keys("LeaderWorkerSet")
    assert ("warning", "kueue.queueName") in sts and ("warning", "kueue.queueName") not in lws
    assert ("warning", "schedulerName") in sts and ("warning", "schedulerName") in lws
    assert ("warning", "extraContainers") in lws and ("warning", "extraContainers") not in sts
    assert not [k for k in lws | sts if k[0] == "error"]


def found(values: dict[str, Any]) -> dict[str, Any]:
    """doctor's findings about the chart's defaults with ``values`` on top, by key."""
    resolved = resolve(request(sources=ValueSources(set_json=(json.dumps(merged(KEY, values)),))))
    return {x.key: x for x in value_findings(resolved)}


def test_doctor_knows_parent_refs_the_api_server_refuses() -> None:
    # gateway-api apis/v1/shared_types.go (CommonRouteSpec.ParentRefs, two CEL rules helm's schema pass does not
    # run; tests/crds/gateway.networking.k8s.io_httproutes.yaml): refs to one parent each name a sectionName, all
    # different.
    def parents(*refs: dict[str, str]) -> Any:
        return found({"gateway": {"enabled": True, "parentRefs": list(refs)}}).get("gateway.parentRefs")

    assert parents({"name": "gw"}, {"name": "gw"}).severity == "error"
    one_named = parents({"name": "gw", "sectionName": "https"}, {"name": "gw"})
    assert "name the parent gw more than once" in one_named.message
    assert parents({"name": "gw", "sectionName": "a"}, {"name": "gw", "sectionName": "a"}) is not None
    assert parents({"name": "gw", "sectionName": "http"}, {"name": "gw", "sectionName": "https"}) is None
    assert parents({"name": "gw"}, {"name": "gw", "namespace": "other"}) is None
    assert parents({"name": "public"}, {"name": "internal"}) is None


def test_doctor_warns_of_tls_that_misses_a_host_and_of_non_root_over_a_root_image() -> None:
    tls = found({"ingress": {"enabled": True, "hosts": ["a.example.com", "b.example.com"],
                             "tls": [{"secretName": "t", "hosts": ["a.example.com"]}]}})
    assert "covers no certificate for b.example.com" in tls["ingress.tls"].message
    assert found({"securityContext": {"runAsNonRoot": True}})["securityContext.runAsNonRoot"].severity == "warning"
    assert "podSecurityContext.runAsNonRoot" in found({"podSecurityContext": {"runAsNonRoot": True}})
    keys = found({"podSecurityContext": {"runAsNonRoot": True, "runAsUser": 1000}})
    assert "podSecurityContext.runAsNonRoot" not in keys and "securityContext.runAsNonRoot" not in keys
    read_only = {"securityContext": {"readOnlyRootFilesystem": True}}
    unmounted = found(read_only)["securityContext.readOnlyRootFilesystem"]
    assert "vLLM writes under /tmp and /root/.cache" in unmounted.message
    scratch = {"extraVolumes": [{"name": "scratch", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}],
               "extraVolumeMounts": [{"name": "scratch", "mountPath": "/tmp"}, {"name": "cache", "mountPath": "/root"}]}
    assert "securityContext.readOnlyRootFilesystem" not in found({**read_only, **scratch})
    volcano = found({"schedulerName": "volcano"})["schedulerName"].fix  # LeaderWorkerSet already: no advice to use it
    assert volcano.startswith("run the LWS controller (v0.7+)")


def test_hooks_get_the_pod_labels_annotations_and_pull_secrets_too() -> None:
    provision = ("clusterNetwork.provision=true", "clusterNetwork.compartmentId=ocid1.compartment.oc1..c",
                 "clusterNetwork.availabilityDomain=AD-1", "clusterNetwork.subnetId=ocid1.subnet.oc1..s",
                 "clusterNetwork.imageId=ocid1.image.oc1..i",
                 "clusterNetwork.image.repository=iad.ocir.io/example/helm-rdma-provisioner",
                 "clusterNetwork.image.pullSecrets[0].name=ocir-pull", "clusterNetwork.oke.clusterId=ocid1.cluster.x")
    values = {k: EVERYTHING[k] for k in ("podLabels", "podAnnotations", "imagePullSecrets")}
    out = template(request(sets=provision, sources=ValueSources(set_json=(json.dumps(values),)))).manifests
    jobs = {d["metadata"]["name"]: d["spec"]["template"] for d in yaml.safe_load_all(out) if d and d["kind"] == "Job"}
    assert set(jobs) == {"llama405b-vllm-rdma-provision", "llama405b-vllm-rdma-shrink", "llama405b-vllm-rdma-test-rdma",
                         "llama405b-vllm-rdma-test-api"}
    for name, pod in jobs.items():
        assert pod["metadata"]["labels"]["example.com/team"] == "ml", name
        assert pod["metadata"]["annotations"] == {"example.com/owner": "ml"}, name
        assert {"name": "regcred"} in pod["spec"]["imagePullSecrets"], name
    for provisioner in ("llama405b-vllm-rdma-provision", "llama405b-vllm-rdma-shrink"):
        assert jobs[provisioner]["spec"]["imagePullSecrets"] == [{"name": "ocir-pull"}, {"name": "regcred"}]


# -- monitoring ----------------------------------------------------------------------------------------------------

# vLLM's metric names as vllm/v1/metrics/loggers.py (PrometheusStatLogger) registers them (prometheus_client adds
# _total to counters, _bucket to histograms), and kube-state-metrics' (docs/metrics/workload/pod-metrics.md).
VLLM_METRICS = {"vllm:time_to_first_token_seconds_bucket", "vllm:inter_token_latency_seconds_bucket",
                "vllm:e2e_request_latency_seconds_bucket", "vllm:generation_tokens_total", "vllm:prompt_tokens_total",
                "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                "vllm:num_preemptions_total"}
KSM_METRICS = {"kube_pod_status_ready", "kube_pod_init_container_status_restarts_total",
               "kube_pod_container_status_restarts_total", "kube_pod_init_container_status_running",
               "kube_pod_container_status_last_terminated_exitcode"}
METRIC = re.compile(r"\b(vllm:[a-z0-9_]+|kube_[a-z0-9_]+)\{")


def test_vendored_crds_say_where_they_come_from_and_refuse_an_unknown_field() -> None:
    readme = (CRDS / "README.md").read_text()
    for kind, (name, version) in VENDORED_CRDS.items():
        text = (CRDS / name).read_text()
        assert text.startswith("# Source: https://raw.githubusercontent.com/") and name in readme
        doc = {"apiVersion": f"x/{version}", "kind": kind, "metadata": {"name": "x"}, "spec": {}, "bogus": 1}
        assert any("bogus" in e.message for e in crd_validator(CRDS / name, version).iter_errors(doc))


def test_alerts_and_dashboard_read_only_metrics_vllm_and_kube_state_metrics_export() -> None:
    docs = render(EVERYTHING)
    rules = one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == ["VllmRdmaGroupNotReady", "VllmRdmaQueueGrowing", "VllmRdmaKvCacheSaturated",
                                           "VllmRdmaPreflightFailed"]
    [cm] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
    dashboard = json.loads(cm["data"]["llama405b-vllm-rdma.json"])
    exprs = [r["expr"] for r in rules] + [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert used <= VLLM_METRICS | KSM_METRICS and VLLM_METRICS <= used
    assert all('namespace="llm", model_name="llama405b"' in e for e in exprs if "vllm:" in e)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1" and "__" not in json.dumps(dashboard).replace(
        "$__rate_interval", "")
    # The alert waits as long as a group's first start may take: the download and the group's barrier, the
    # preflight, then as long as the leader's startup probe lets vLLM start (kubelet: periodSeconds x
    # failureThreshold); it counts nodes x replicas pods. install --wait waits as long, plus the image pull.
    lws = one(docs, "LeaderWorkerSet")
    leader = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
    [probe] = [c["startupProbe"] for c in leader["containers"] if "startupProbe" in c]
    budget = probe["periodSeconds"] * probe["failureThreshold"] // 60
    [preflight] = [c for c in leader["initContainers"] if c["name"] == "preflight"]
    env = {e["name"]: e.get("value") for e in preflight["env"]}
    first_start = budget + (int(env["HELM_RDMA_BARRIER_SECONDS"]) + int(env["HELM_RDMA_PREFLIGHT_SECONDS"])) // 60
    not_ready = rules[0]
    assert budget > 30 and not_ready["for"] == f"{first_start}m" and not_ready["expr"].endswith("< 2")



def test_the_preflight_alert_reads_a_signal_that_outlives_the_groups_restart() -> None:
    """A failed preflight restarts its group, and under LeaderWorkerSet the group's pods are deleted within seconds
    (FACTS.md: a restart counter is usually gone before Prometheus scrapes it). Under LWS the alert reads the
    preflight-verdict init container running (held for minutes only after a failed measurement); under StatefulSets
    the pods stay, and so does the serving container's last exit code, 78 (kube-state-metrics
    docs/metrics/workload/pod-metrics.md: kube_pod_init_container_status_running,
    kube_pod_container_status_last_terminated_exitcode)."""
    lws = {r["alert"]: r for r in one(render(EVERYTHING), "PrometheusRule")["spec"]["groups"][0]["rules"]}
    expr = lws["VllmRdmaPreflightFailed"]["expr"]
    assert "restarts_total" not in expr and 'container="preflight-verdict"' in expr
    assert "kube_pod_init_container_status_running" in expr and expr.endswith(">= 2")
    sts = one(render(EVERYTHING, "StatefulSet"), "PrometheusRule")["spec"]["groups"][0]["rules"]
    [alert] = [r for r in sts if r["alert"] == "VllmRdmaPreflightFailed"]
    assert 'pod=~"llama405b-vllm-rdma-(leader|worker)-[0-9]+"' in alert["expr"]
    assert 'kube_pod_container_status_last_terminated_exitcode{' in alert["expr"] and alert["expr"].endswith("== 78")
    warned = merged(EVERYTHING, {"verify": {"preflight": {"onFailure": "warn"}}})
    warn = one(render(warned), "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert "VllmRdmaPreflightFailed" not in [r["alert"] for r in warn]  # a warning restarts nothing


def test_the_old_service_monitor_key_names_its_new_home(tmp_path: Path) -> None:
    with pytest.raises(SchemaViolation, match='"serviceMonitor" moved to "monitoring.serviceMonitor"'):
        resolve(request(sets=("serviceMonitor.enabled=true",)))
    out = plain_helm({"serviceMonitor": {"enabled": True}}, tmp_path)
    assert out.returncode != 0 and "serviceMonitor" in out.stderr


def test_doctor_says_rules_and_dashboard_need_the_metrics_scraped() -> None:
    values = {"monitoring": {"rules": {"enabled": True}, "dashboard": {"enabled": True}}}
    keys = {x.key for x in value_findings(resolve(request(sources=ValueSources(set_json=(json.dumps(values),)))))}
    assert {"monitoring.rules.enabled", "monitoring.dashboard.enabled"} <= keys


# -- routes to the API ---------------------------------------------------------------------------------------------

def test_the_ingress_routes_v1_to_the_api_service_and_streams_through_ingress_nginx() -> None:
    ingress = one(render(EVERYTHING), "Ingress")
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "llm.example.com"
    assert rule["http"]["paths"] == [{"path": "/v1", "pathType": "Prefix", "backend": {"service": {
        "name": "llama405b-vllm-rdma-api", "port": {"number": 8000}}}}]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "7200"  # the user's wins
    # ingress-nginx refuses bodies over its proxy-body-size, 1m by default, with 413 (its annotations.md, "Custom max
    # body size"): a 128k-token prompt or one image is more
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "64m"
    other = one(render(merged(KEY, {"ingress": {"enabled": True, "className": "oci-native-ic"}})), "Ingress")
    assert "annotations" not in other["metadata"] and other["spec"]["rules"][0].get("host") is None


def test_the_ingress_body_size_limit_is_a_value_in_nginx_size_syntax() -> None:
    limit = merged(KEY, ROUTES, {"ingress": {"maxBodySize": "0"}})
    assert one(render(limit), "Ingress")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
    with pytest.raises(SchemaViolation, match="ingress.maxBodySize"):
        resolve(request(sets=("ingress.maxBodySize=64 MB",)))


def test_the_httproute_attaches_to_the_gateways_with_timeouts_for_streaming() -> None:
    route = one(render(EVERYTHING), "HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways", "sectionName": "https"}]
    [rule] = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": "llama405b-vllm-rdma-api", "port": 8000}]
    # the CRD's CEL rule (not evaluated by the schema check): backendRequest no longer than request
    assert rule["timeouts"] == {"request": "1h", "backendRequest": "1h"}
    bare = one(render(merged(KEY, {"gateway": {"enabled": True, "parentRefs": [{"name": "gw"}], "timeout": ""}})),
               "HTTPRoute")
    assert "timeouts" not in bare["spec"]["rules"][0]  # works on Gateway API before v1.2 too


def test_a_route_without_a_gateway_is_refused_by_plain_helm_and_doctor(tmp_path: Path) -> None:
    values = {"gateway": {"enabled": True}}
    out = plain_helm(values, tmp_path)
    assert out.returncode != 0 and "gateway.parentRefs: is empty" in out.stderr
    f = tmp_path / "values.json"
    findings = doctor(request(files=(f,))).findings  # doctor renders the chart for its rules
    assert ("error", "gateway.parentRefs") in {(x.severity, x.key) for x in findings}


def test_doctor_warns_about_routes_that_publish_the_api_without_a_key_or_tls() -> None:
    values = {"ingress": {"enabled": True, "path": "/"}, "api": {"keySecret": {"name": ""}, "allowUnauthenticated": True}}
    f = {(x.severity, x.key) for x in value_findings(resolve(request(sources=ValueSources(set_json=(json.dumps(values),)))))}
    assert {("warning", "ingress.enabled"), ("warning", "ingress.path"), ("warning", "ingress.tls"),
            ("warning", "ingress.className")} <= f


# -- LoRA ----------------------------------------------------------------------------------------------------------

def test_lora_adapters_are_served_from_the_model_storage_or_their_volume() -> None:
    spec = leader(render(EVERYTHING))
    args = container(spec, "vllm")["args"]
    assert args[args.index("--enable-lora"):args.index("--lora-modules") + 3] == [
        "--enable-lora", "--max-lora-rank", "64", "--max-loras", "2", "--lora-modules",
        "sql=/models/example/llama-sql-lora/v1", "local=/adapters/local"]
    fetch = container(spec, "download-lora-0")["args"]
    assert fetch[:6] == ["--repo", "example/llama-sql-lora", "--revision", "v1", "--dest",
                         "/models/example/llama-sql-lora/v1"]
    no_download = merged(EVERYTHING, {"model": {"download": {"enabled": False}}})
    args = container(leader(render(no_download)), "vllm")["args"]
    assert "sql=example/llama-sql-lora" in args  # vLLM fetches it (HF_HUB_OFFLINE is not set then)


@pytest.mark.parametrize(("lora", "needle"), [
    ({"adapters": [{"name": "a", "repo": "org/a"}]}, "vllm.lora.enabled: is false"),
    ({"enabled": True, "adapters": [{"name": "a", "repo": "org/a"}, {"name": "a", "repo": "org/b"}]}, "a name repeats"),
    ({"enabled": True, "adapters": [{"name": "llama405b", "repo": "org/a"}]}, "as the base model"),
    ({"enabled": True, "adapters": [{"name": "a", "path": "/elsewhere/a"}]}, "is on no volume"),
])
def test_lora_adapters_that_cannot_be_served_are_refused(tmp_path: Path, lora: dict[str, Any], needle: str) -> None:
    out = plain_helm({"vllm": {"lora": lora}}, tmp_path)
    assert out.returncode != 0 and needle in out.stderr, out.stderr
    f = tmp_path / "values.json"
    assert [x for x in doctor(request(files=(f,))).findings  # doctor renders the chart for its rules
            if x.severity == "error" and x.key.startswith("vllm.lora")]


def test_an_adapter_is_a_hub_repo_or_a_path_never_both() -> None:
    for adapter in ({"name": "a"}, {"name": "a", "repo": "org/a", "path": "/models/a"},
                    {"name": "a", "path": "/models/a", "revision": "v1"}, {"name": "a=b", "repo": "org/a"}):
        with pytest.raises(SchemaViolation, match=r"vllm\.lora\.adapters\[0\]"):
            resolve(request(sources=ValueSources(set_json=(json.dumps(
                {"vllm": {"lora": {"enabled": True, "adapters": [adapter]}}}),))))


def test_plan_counts_the_memory_vllm_reserves_for_lora_slots() -> None:
    model, preset = get_model("llama405b"), load_preset("h100")
    base = plan_model(model=model, preset=preset)
    slots = LoraSlots(max_loras=4, max_rank=64)
    lora = plan_model(model=model, preset=preset, sizing=Sizing(lora=slots))
    # one layer on one of 8 TP ranks, by hand: q,k,v (A whole, B / TP) + o (A / TP, B whole) + gate,up + down
    hidden, q, kv, inter = 16384, 128 * 128, 8 * 128, 53248
    per_layer = 64 * ((3 * hidden + (q + 2 * kv) // 8) + (q // 8 + hidden)
                      + (2 * hidden + 2 * inter // 8) + (inter // 8 + hidden))
    assert layer_elements(model, tp=8, rank=64) == per_layer
    assert lora.lora_bytes_per_gpu == 4 * 2 * 63 * per_layer == lora_bytes_per_gpu(model, slots, tp=8, pp=2)
    assert base.kv_budget_bytes - lora.kv_budget_bytes == lora.lora_bytes_per_gpu * 16  # 2 stages x 8 GPUs
    assert lora.full_length_sequences < base.full_length_sequences


def test_lora_slots_that_do_not_fit_ask_for_more_nodes() -> None:
    sets = ("vllm.lora.enabled=true", "vllm.lora.maxRank=512", "vllm.lora.maxLoras=8")
    assert resolve(request()).values["nodes"] == 2
    # 16 GPUs x 67 GiB of slots on top of 756 GiB of weights: 4 nodes of 568 GiB
    assert resolve(request(sets=sets)).values["nodes"] == 4
    with pytest.raises(TooFewNodesError, match="LoRA slots"):
        resolve(request(nodes=2, sets=sets))


def test_lora_on_a_model_the_catalog_gives_no_layer_sizes_for_is_refused() -> None:
    model = replace(get_model("llama70b"), hidden_size=None)
    with pytest.raises(LoraSizeUnknownError, match="hiddenSize"):
        plan_model(model=model, preset=load_preset("a100-v2"), sizing=Sizing(lora=LoraSlots(max_loras=1, max_rank=16)))
