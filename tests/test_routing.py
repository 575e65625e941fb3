"""One endpoint over many groups (router.*: an InferencePool of the leaders and llm-d's endpoint picker) and groups
that follow load (autoscaling.*: a KEDA ScaledObject of the LeaderWorkerSet). Every object renders, validates against
its CRD and the CRD's CEL rules, keeps its consumers' rules, and every misuse stops at the schema or a named rule."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml

from helm_rdma.commands.template import template
from helm_rdma.errors import ChartValuesError, SchemaViolation
from helm_rdma.resolve.values import resolve
from helm_rdma.resolve.valuesources import ValueSources

from . import consumer_rules
from .cel_rules import evaluate
from .conftest import SHARED_CRDS
from .k8s_validation import CRDS, crd_problems, crd_schema, validate_documents
from .rendering import request
from .test_serving import VLLM_METRICS, merged, one, plain_helm, render

PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
ROUTER: dict[str, Any] = {"router": {"enabled": True},
                          "gateway": {"enabled": True, "parentRefs": [{"name": "inference-gateway"}]}}
SCALING: dict[str, Any] = {"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 4,
                                           "prometheusAddress": PROMETHEUS},
                           "monitoring": {"serviceMonitor": {"enabled": True}}}
BOTH = merged(ROUTER, SCALING)
POOL_CRD = SHARED_CRDS / "inference.networking.k8s.io_inferencepools.yaml"
KEDA_CRD = CRDS / "keda.sh_scaledobjects.yaml"
needs_shared_crds = pytest.mark.skipif(not SHARED_CRDS.is_dir(), reason="../shared/crds holds the LWS and pool CRDs")


def labels_of(template: dict[str, Any]) -> dict[str, Any]:
    return dict((template.get("metadata") or {}).get("labels") or {})


# -- the pool and its picker ---------------------------------------------------------------------------------------

@needs_shared_crds
@pytest.mark.parametrize(("kind", "mode"), [("LeaderWorkerSet", "hostNetwork"), ("StatefulSet", "sriov")])
def test_the_router_renders_a_pool_of_the_leaders_its_picker_and_a_route_to_it(kind: str, mode: str) -> None:
    docs = render(merged(ROUTER, {"replicas": 3, "networkPolicy": {"apiFrom": [{"namespaceSelector": {}}]}}), kind, mode)
    assert validate_documents(docs, crds=SHARED_CRDS) == []
    assert consumer_rules.problems(docs) == []
    pool = one(docs, "InferencePool")
    assert pool["metadata"]["name"] == "llama405b-vllm-rdma"
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]  # vllm.port
    # The serving pod of each group: under LWS the leader template only (LWS labels its pods worker-index 0; the
    # selector needs no LWS label since only leaders carry component=leader); in StatefulSet mode the leader set's.
    picked = [(obj["metadata"]["name"], role) for obj, role, t in consumer_rules.pod_templates(docs)
              if consumer_rules.selects(pool["spec"]["selector"], labels_of(t))]
    assert picked == ([("llama405b-vllm-rdma", "leader")] if kind == "LeaderWorkerSet"
                      else [("llama405b-vllm-rdma-leader", "llama405b-vllm-rdma-leader")])
    # The picker, all under the name the pool gives it.
    picker = pool["spec"]["endpointPickerRef"]
    assert picker == {"name": "llama405b-vllm-rdma-epp", "port": {"number": 9002}, "failureMode": "FailOpen"}
    named = {d["kind"] for d in docs if d["metadata"]["name"] == picker["name"]}
    assert named == {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "ConfigMap"}
    deployment = one(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--pool-name") + 1] == pool["metadata"]["name"]
    assert args[args.index("--pool-namespace") + 1] == "llm"
    assert args[args.index("--pool-group") + 1] == "inference.networking.k8s.io"
    # The route targets the pool, the plain Service stays for clients inside the cluster.
    [rule] = one(docs, "HTTPRoute")["spec"]["rules"]
    assert rule["backendRefs"] == [{"group": "inference.networking.k8s.io", "kind": "InferencePool",
                                    "name": pool["metadata"]["name"]}]
    assert "llama405b-vllm-rdma-api" in {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    if mode == "sriov":  # the picker scrapes each leader's /metrics through the API port's policy
        picker_labels = labels_of(deployment["spec"]["template"])
        leader = labels_of(next(t for _o, _r, t in consumer_rules.pod_templates(docs)
                                if labels_of(t).get("app.kubernetes.io/component") == "leader"))
        assert consumer_rules.ingress_admitted(docs, to=leader, source=picker_labels, port=8000)
        assert not consumer_rules.ingress_admitted(docs, to=leader, source=picker_labels, port=29500)


def test_the_pickers_image_flags_scorers_and_rbac_are_llm_d_routers() -> None:
    # llm-d/llm-d-router at v0.10.0 (71f4f0999f95b96c49a9d0c4afbd18dfdb943c26): the image .github/workflows/
    # ci-release.yaml publishes for the tag (ghcr.io/llm-d + <repo>-endpoint-picker); config/charts/routerlib/
    # templates/_deployment.yaml (flags, ports 9002/9003/9090, gRPC probes on service inference-extension, Recreate);
    # _config.yaml (default-plugins.yaml: queue 2, kv-cache-utilization 2, prefix-cache 3, metrics-data-source);
    # _rbac.yaml and llm-d-router-gateway/templates/rbac.yaml (get/watch/list of pods, pools, objectives, rewrites).
    docs = render(ROUTER)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    [epp] = pod["containers"]
    assert epp["image"] == "ghcr.io/llm-d/llm-d-router-endpoint-picker:v0.10.0"
    assert epp["args"][epp["args"].index("--config-file") + 1] == "/config/default-plugins.yaml"
    assert {p["name"]: p["containerPort"] for p in epp["ports"]} == {"grpc": 9002, "grpc-health": 9003, "metrics": 9090}
    assert epp["readinessProbe"]["grpc"] == {"port": 9003, "service": "inference-extension"}
    assert one(docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    [cm] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "llama405b-vllm-rdma-epp"]
    config = yaml.safe_load(cm["data"]["default-plugins.yaml"])
    assert config["kind"] == "EndpointPickerConfig"
    [profile] = config["schedulingProfiles"]
    assert {p["pluginRef"]: p["weight"] for p in profile["plugins"]} == {
        "queue-scorer": 2, "kv-cache-utilization-scorer": 2, "prefix-cache-scorer": 3}
    assert {"type": "metrics-data-source", "parameters": {"scheme": "http", "path": "/metrics",
                                                          "insecureSkipVerify": True}} in config["plugins"]
    [role] = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "llama405b-vllm-rdma-epp"]
    rules = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert rules == {("", "pods"), ("inference.networking.k8s.io", "inferencepools"),
                     ("inference.networking.x-k8s.io", "inferenceobjectives"),
                     ("inference.networking.x-k8s.io", "inferencemodelrewrites"),
                     ("llm-d.ai", "inferenceobjectives"), ("llm-d.ai", "inferencemodelrewrites")}
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")
                and d["metadata"]["name"].endswith("-epp")]
    # A weight of 0 leaves its scorer out of both lists.
    no_queue = render(merged(ROUTER, {"router": {"scorerWeights": {"queue": 0}}}))
    text = next(d for d in no_queue if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-epp"))["data"]
    assert "queue-scorer" not in text["default-plugins.yaml"]


def test_without_the_router_the_route_keeps_the_service_and_nothing_of_it_renders() -> None:
    docs = render({"gateway": ROUTER["gateway"]})
    assert not [d for d in docs if d["kind"] in ("InferencePool", "Deployment", "ScaledObject")]
    [rule] = one(docs, "HTTPRoute")["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": "llama405b-vllm-rdma-api", "port": 8000}]


# -- the CRDs' CEL rules ---------------------------------------------------------------------------------------------

def cel_rules_of(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [r["rule"] for r in node.get("x-kubernetes-validations") or []] + [
            r for v in node.values() for r in cel_rules_of(v)]
    return [r for v in node for r in cel_rules_of(v)] if isinstance(node, list) else []


@needs_shared_crds
def test_cel_python_runs_every_rule_of_the_crds_the_chart_renders_against() -> None:
    """Every rule of these CRDs uses CEL's standard functions only (has, all, exists, exists_one, filter, size,
    matches, startsWith, endsWith, contains, duration): none of Kubernetes' own libraries, so none is skipped."""
    files = [POOL_CRD, KEDA_CRD, CRDS / "gateway.networking.k8s.io_httproutes.yaml",
             SHARED_CRDS / "leaderworkerset.x-k8s.io_leaderworkersets.yaml"]
    rules = {r for f in files for r in cel_rules_of(yaml.safe_load(f.read_text()))}
    assert len(rules) >= 45
    env = celpy.Environment()
    for rule in rules:
        env.program(env.compile(rule))  # a parse error or an unknown macro raises here
    docs = render(BOTH)
    for kind, crd, version in (("InferencePool", POOL_CRD, "v1"), ("ScaledObject", KEDA_CRD, "v1alpha1"),
                               ("HTTPRoute", CRDS / "gateway.networking.k8s.io_httproutes.yaml", "v1")):
        report = evaluate(crd_schema(crd, version), one(docs, kind))
        assert report.broken == [] and report.not_evaluated == [], kind
        assert report.evaluated, kind
    pool = evaluate(crd_schema(POOL_CRD, "v1"), one(docs, "InferencePool"))
    assert {e.split(": ", 1)[1] for e in pool.evaluated} == {
        "self.kind != 'Service' || has(self.port)", "self.all(p1, self.exists_one(p2, p1.number==p2.number))"}


@needs_shared_crds
def test_the_cel_rules_refuse_what_the_api_server_would() -> None:
    docs = render(BOTH)
    pool = one(docs, "InferencePool")
    pool["spec"]["targetPorts"] = [{"number": 8000}, {"number": 8000}]
    del pool["spec"]["endpointPickerRef"]["port"]  # kind defaults to Service, which needs a port
    assert [p.split("CEL ", 1)[1] for p in crd_problems(pool, POOL_CRD, "v1")] == [
        "spec.endpointPickerRef: port is required when kind is 'Service' or unspecified (defaults to 'Service')",
        "spec.targetPorts: port number must be unique"]
    scaler = one(docs, "ScaledObject")
    scaler["spec"]["minReplicaCount"] = 5
    assert crd_problems(scaler, KEDA_CRD, "v1alpha1") == [
        "ScaledObject/llama405b-vllm-rdma: CEL spec: minReplicaCount must be less than or equal to maxReplicaCount"]
    del scaler["spec"]["maxReplicaCount"]  # KEDA's default maximum, 100, in the rule itself
    assert crd_problems(scaler, KEDA_CRD, "v1alpha1") == []


# -- the scaler ------------------------------------------------------------------------------------------------------

@needs_shared_crds
def test_autoscaling_scales_whole_groups_and_leaves_the_count_to_the_scaler() -> None:
    docs = render(BOTH)
    assert validate_documents(docs, crds=SHARED_CRDS) == []
    assert consumer_rules.problems(docs) == []
    lws, scaler = one(docs, "LeaderWorkerSet"), one(docs, "ScaledObject")
    assert "replicas" not in lws["spec"]
    assert scaler["spec"]["scaleTargetRef"] == {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
                                               "name": lws["metadata"]["name"]}
    assert (scaler["spec"]["minReplicaCount"], scaler["spec"]["maxReplicaCount"]) == (1, 4)
    down = scaler["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] == 900 and down["policies"][0] == {"type": "Pods", "value": 1,
                                                                                  "periodSeconds": 900}
    assert {t["metadata"]["serverAddress"] for t in scaler["spec"]["triggers"]} == {PROMETHEUS}
    # A group removed drains: vLLM waits drainSeconds for its requests, the kubelet a minute more.
    lwt = lws["spec"]["leaderWorkerTemplate"]
    for pod in (lwt["leaderTemplate"], lwt["workerTemplate"]):
        assert pod["spec"]["terminationGracePeriodSeconds"] == 960
    vllm = next(c for c in lwt["leaderTemplate"]["spec"]["containers"] if c["name"] == "vllm")
    assert vllm["args"][vllm["args"].index("--shutdown-timeout") + 1] == "900"
    # Off, replicas is the chart's again and vLLM aborts at SIGTERM as before.
    fixed = one(render({"replicas": 3}), "LeaderWorkerSet")
    assert fixed["spec"]["replicas"] == 3
    assert fixed["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["terminationGracePeriodSeconds"] == 60
    assert "--shutdown-timeout" not in json.dumps(fixed)


def test_a_group_the_scaler_removes_that_would_cut_its_requests_breaks_the_consumer_rule() -> None:
    docs = render(BOTH)
    assert consumer_rules.removed_groups_drain_first(docs) == []
    lwt = one(docs, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]
    del next(c for c in lwt["workerTemplate"]["spec"]["containers"] if c["name"] == "vllm")["lifecycle"]
    lwt["leaderTemplate"]["spec"]["terminationGracePeriodSeconds"] = 60
    assert consumer_rules.removed_groups_drain_first(docs) == [
        "LeaderWorkerSet llama405b-vllm-rdma (leader): terminationGracePeriodSeconds does not outlast the 900s drain",
        "LeaderWorkerSet llama405b-vllm-rdma (worker): the worker stops with its leader's requests in flight "
        "(no preStop)"]


def test_the_alert_on_missing_groups_counts_the_fewest_groups_the_scaler_keeps() -> None:
    docs = render(merged(BOTH, {"replicas": 5, "autoscaling": {"minReplicas": 2},
                                "monitoring": {"rules": {"enabled": True}}}))
    rule = one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"][0]
    assert rule["alert"] == "VllmRdmaGroupNotReady" and rule["expr"].endswith(" < 4")  # 2 nodes x minReplicas 2


def test_a_scaler_that_would_fight_the_chart_breaks_the_consumer_rule() -> None:
    docs = render(BOTH)
    one(docs, "LeaderWorkerSet")["spec"]["replicas"] = 2
    assert consumer_rules.scalers_own_the_group_count(docs) == [
        "LeaderWorkerSet llama405b-vllm-rdma renders replicas, which every upgrade or sync would reset under "
        "ScaledObject llama405b-vllm-rdma"]
    one(docs, "ScaledObject")["spec"]["scaleTargetRef"] = {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                                           "name": "llama405b-vllm-rdma-leader"}
    assert "no LeaderWorkerSet of the release" in consumer_rules.scalers_own_the_group_count(docs)[0]


def test_the_scalers_queries_read_vllms_own_gauges_by_their_labels() -> None:
    # vLLM 0.33.0 (the image tag the values schema pins), vllm/v1/metrics/loggers.py in the release's sdist:
    # PrometheusStatLogger registers the gauge "vllm:num_requests_waiting" at line 538 and "vllm:kv_cache_usage_perc"
    # at line 620, with labelnames ["model_name", "engine"] (line 499; model_name is --served-model-name); the
    # ServiceMonitor's scrape adds namespace.
    scaler = one(render(BOTH), "ScaledObject")
    queries = {t["name"]: t["metadata"]["query"] for t in scaler["spec"]["triggers"]}
    assert queries == {
        "requests-waiting": 'sum(vllm:num_requests_waiting{namespace="llm", model_name="llama405b"})',
        "kv-cache-usage": 'sum(vllm:kv_cache_usage_perc{namespace="llm", model_name="llama405b"})'}
    used = {m for q in queries.values() for m in re.findall(r"\b(vllm:[a-z0-9_]+)\{", q)}
    assert used == {"vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"} and used <= VLLM_METRICS
    # Per group: AverageValue makes the HPA divide each sum by the groups (the LWS's scale subresource).
    assert {t["metricType"] for t in scaler["spec"]["triggers"]} == {"AverageValue"}
    assert [t["metadata"]["threshold"] for t in scaler["spec"]["triggers"]] == ["4", "0.8"]
    only_queue = one(render(merged(BOTH, {"autoscaling": {"targets": {"kvCacheUsage": 0}}})), "ScaledObject")
    assert [t["name"] for t in only_queue["spec"]["triggers"]] == ["requests-waiting"]


# -- misuse ----------------------------------------------------------------------------------------------------------

SCALING_ON = {"autoscaling": {"enabled": True, "prometheusAddress": PROMETHEUS}}


@pytest.mark.parametrize(("values", "needle"), [
    # Each example breaks its rule only (templates/_router.tpl, vllm-rdma.rule.<id>).
    (merged(SCALING_ON, {"workload": {"kind": "StatefulSet"}}),
     "autoscaling.enabled: groups cannot scale with load in StatefulSet mode: a group is two StatefulSets (leaders "
     "and workers) that no scaler resizes as one unit; fix: set workload.kind=LeaderWorkerSet"),
    ({"autoscaling": {"enabled": True}}, "autoscaling.prometheusAddress: is empty"),
    (merged(SCALING_ON, {"autoscaling": {"minReplicas": 3, "maxReplicas": 2}}),
     "autoscaling.minReplicas: 3 is more than autoscaling.maxReplicas (2); fix: set autoscaling.maxReplicas to at "
     "least 3"),
    (merged(SCALING_ON, {"autoscaling": {"targets": {"requestsWaiting": 0, "kvCacheUsage": 0}}}),
     "autoscaling.targets: both targets are 0"),
    ({"router": {"enabled": True, "scorerWeights": {"prefixCache": 0, "queue": 0, "kvCacheUtilization": 0}}},
     "router.scorerWeights: every weight is 0, so the endpoint picker scores nothing"),
], ids=["autoscaling-statefulset", "autoscaling-prometheus", "autoscaling-range", "autoscaling-targets",
        "router-scorers"])
def test_values_a_scaler_cannot_work_with_stop_at_a_named_rule(tmp_path: Path, values: dict[str, Any],
                                                                 needle: str) -> None:
    out = plain_helm(values, tmp_path)
    assert out.returncode != 0 and "the values do not fit together" in out.stderr and needle in out.stderr, out.stderr
    assert out.stderr.count("\n  - ") == 1  # that rule only
    with pytest.raises(ChartValuesError, match=re.escape(needle)):
        template(request(sources=ValueSources(set_json=(json.dumps(values),))))


@pytest.mark.parametrize(("values", "key"), [
    ({"autoscaling": {"minReplicas": 0}}, "autoscaling.minReplicas"),
    ({"autoscaling": {"targets": {"kvCacheUsage": 1.5}}}, "autoscaling.targets.kvCacheUsage"),
    ({"autoscaling": {"prometheusAddress": "prometheus:9090"}}, "autoscaling.prometheusAddress"),
    ({"router": {"failureMode": "Open"}}, "router.failureMode"),
    ({"router": {"image": {"digest": "sha256:abc"}}}, "router.image.digest"),
])
def test_the_schema_refuses_scaling_values_that_cannot_work(values: dict[str, Any], key: str) -> None:
    # minReplicas >= 1: a group scaled from zero has no node to learn the GPU shape from.
    with pytest.raises(SchemaViolation, match=re.escape(key)):
        resolve(request(sources=ValueSources(set_json=(json.dumps(values),))))


def test_a_worker_of_a_group_being_removed_waits_until_its_leader_has_drained() -> None:
    """The worker's preStop (vllm-rdma.workerDrainScript) runs under bash as the kubelet runs it: it holds the worker
    while its leader's API port still accepts connections (vLLM drains, then closes it), and lets it go once the port
    closes, or at once when the leader's address does not resolve."""
    import socket
    import subprocess
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    docs = render(merged(BOTH, {"vllm": {"port": port}}))
    lwt = one(docs, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]
    assert not [c for c in lwt["leaderTemplate"]["spec"]["containers"] if "lifecycle" in c]
    [worker] = [c for c in lwt["workerTemplate"]["spec"]["containers"] if c["name"] == "vllm"]
    command = worker["lifecycle"]["preStop"]["exec"]["command"]
    env = {"PATH": "/usr/bin:/bin", "LWS_LEADER_ADDRESS": "127.0.0.1"}
    hook = subprocess.Popen(command, env=env)
    try:
        time.sleep(3)
        assert hook.poll() is None  # the leader still serves: the worker stays
        server.close()
        assert hook.wait(timeout=15) == 0  # drained and closed: the worker may stop
    finally:
        hook.kill()
        server.close()
    gone = subprocess.run(command, env={**env, "LWS_LEADER_ADDRESS": "no-such-leader.invalid"}, timeout=15)
    assert gone.returncode == 0
    assert "lifecycle" not in json.dumps(one(render({}), "LeaderWorkerSet"))  # without autoscaling: no hook
