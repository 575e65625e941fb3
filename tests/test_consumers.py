"""The rules of what consumes our manifests (tests/consumer_rules.py), each shown catching the mistake it is for
(the shape the chart rendered before it was fixed) and holding on what the chart renders now."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from . import consumer_rules as rules
from .rendering import PROVISION, ROUTER_AUTOSCALING, hooks, of_kind, render

RAY_TOKEN = ("distributed.backend=ray", "image.tag=v0.17.1", "distributed.ray.authTokenSecret.name=ray-token")
CASES = {
    "lws-hostNetwork": (),
    "lws-sriov": ("rdma.mode=sriov",),
    "sts-hostNetwork": ("workload.kind=StatefulSet",),
    "sts-sriov-ray": ("workload.kind=StatefulSet", "rdma.mode=sriov", *RAY_TOKEN),
    "lws-ray": RAY_TOKEN,
    "device-plugin": ("rdma.devicePluginResource=rdma/rdma_shared_device_a",),
    "replicas-api-key": ("replicas=3", "api.keySecret.name=vllm-api-key"),
    "router-autoscaling": ROUTER_AUTOSCALING,
    "sts-sriov-router": ("workload.kind=StatefulSet", "rdma.mode=sriov", "router.enabled=true", "gateway.enabled=true",
                         "gateway.parentRefs[0].name=inference-gateway"),
}


def init(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """The init container ``name`` of a pod spec."""
    return next(c for c in spec["initContainers"] if c["name"] == name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rule_holds_on_what_the_chart_renders(case: str) -> None:
    assert rules.problems(render(*CASES[case])) == []


def first(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return of_kind(docs, kind)[0]


def test_a_service_named_like_the_leaderworkerset_is_caught() -> None:
    docs = copy.deepcopy(render())
    api = next(d for d in of_kind(docs, "Service") if d["metadata"]["name"].endswith("-api"))
    api["metadata"]["name"] = first(docs, "LeaderWorkerSet")["metadata"]["name"]  # what the chart once rendered
    assert rules.lws_service_names_are_free(docs) == ["Service llama405b-vllm-rdma has the name of a LeaderWorkerSet"]


def test_an_unprivileged_container_on_the_nodes_rdma_devices_is_caught() -> None:
    docs = copy.deepcopy(render())
    for c in first(docs, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"]:
        c["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}  # what the chart once rendered
    found = rules.rdma_devices_can_be_opened(docs)
    assert found and "mounts the node's /dev/infiniband unprivileged" in found[0]


def test_hostnetwork_defaults_to_privileged_and_a_device_plugin_to_ipc_lock_only() -> None:
    [lws] = of_kind(render(), "LeaderWorkerSet")
    vllm = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
    assert vllm["securityContext"] == {"privileged": True}
    [lws] = of_kind(render(*CASES["device-plugin"]), "LeaderWorkerSet")
    spec = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    assert spec["containers"][0]["securityContext"] == {"capabilities": {"add": ["IPC_LOCK"]}}
    assert spec["containers"][0]["resources"]["limits"]["rdma/rdma_shared_device_a"] == 1
    assert all(v["name"] != "infiniband" for v in spec["volumes"])  # the plugin mounts the devices itself
    [lws] = of_kind(render(*CASES["lws-sriov"]), "LeaderWorkerSet")  # the SR-IOV device plugin grants the VFs
    vllm = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
    assert vllm["securityContext"] == {"capabilities": {"add": ["IPC_LOCK"]}}


def test_a_hook_that_takes_the_gpus_is_caught() -> None:
    docs = copy.deepcopy(render())
    lws = first(docs, "LeaderWorkerSet")
    job = {"apiVersion": "batch/v1", "kind": "Job",  # the pre-install,pre-upgrade preflight Job the chart once had
           "metadata": {"name": "llama405b-vllm-rdma-preflight",
                        "annotations": {"helm.sh/hook": "pre-install,pre-upgrade"}},
           "spec": {"template": lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]}}
    found = rules.hooks_never_take_gpus([*docs, job])
    assert found and "requests nvidia.com/gpu" in found[0]


def test_an_unqualified_multus_network_is_caught() -> None:
    docs = copy.deepcopy(render(*CASES["lws-sriov"]))
    template = first(docs, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    assert template["metadata"]["annotations"][rules.MULTUS] == ",".join(["default/rdma-vf"] * 16)
    template["metadata"]["annotations"][rules.MULTUS] = "rdma-vf,rdma-vf"  # what the chart once rendered
    assert rules.multus_networks_are_namespaced(docs)


def test_a_statefulset_group_without_the_group_watch_is_caught() -> None:
    docs = copy.deepcopy(render(*CASES["sts-hostNetwork"]))
    for d in of_kind(docs, "StatefulSet"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            c["env"] = [e for e in c["env"] if e["name"] != "HELM_RDMA_WATCH_PORT"]
    assert len(rules.statefulset_groups_restart_together(docs)) == 2


def test_a_ray_dashboard_on_the_node_or_an_inline_key_is_caught() -> None:
    docs = copy.deepcopy(render(*CASES["lws-ray"]))
    vllm = first(docs, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    env = {e["name"]: e for e in vllm["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "ray-token", "key": "token"}
    vllm["ports"].append({"name": "ray-dashboard", "containerPort": 8265})
    vllm["env"].append({"name": "HF_TOKEN", "value": "hf_123"})
    assert len(rules.nothing_unauthenticated_on_the_node(docs)) == 2


def test_ray_without_a_token_renders_only_when_the_user_opts_out() -> None:
    docs = render("distributed.backend=ray", "image.tag=v0.17.1", "distributed.ray.allowUnauthenticated=true")
    vllm = first(docs, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    assert "RAY_AUTH_MODE" not in {e["name"] for e in vllm["env"]}
    assert not [d for d in of_kind(docs, "Service") if d["metadata"]["name"].endswith("-ray")]  # no Ray Service


def test_the_api_key_reaches_vllm_and_the_test_pod_from_the_secret_only() -> None:
    docs = render(*CASES["replicas-api-key"])
    leader = first(docs, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
    ref = {"secretKeyRef": {"name": "vllm-api-key", "key": "api-key"}}
    env = {e["name"]: e.get("valueFrom") for e in leader["containers"][0]["env"]}
    # the check inside vLLM reads its own variable: vLLM's (VLLM_API_KEY) would guard /v1 a second time
    assert env["HELM_RDMA_API_KEY"] == ref and "VLLM_API_KEY" not in env
    test_api = hooks(docs)["llama405b-vllm-rdma-test-api"]
    assert test_api["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "VLLM_API_KEY", "valueFrom": ref}]
    # vLLM itself holds the API port, every path checked inside it (tests/test_api_auth.py runs the check)
    args = leader["containers"][0]["args"]
    assert args[args.index("--port") + 1] == "8000" and "--host" not in args
    assert args[args.index("--middleware") + 1] == "api_auth.ApiKeyMiddleware"
    assert [c["name"] for c in leader["containers"]] == ["vllm"]
    assert {"name": "http", "containerPort": 8000, "protocol": "TCP"} in leader["containers"][0]["ports"]
    assert leader["containers"][0]["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    assert rules.nothing_unauthenticated_on_the_node(docs) == []


def test_a_default_render_protects_the_api_with_a_secret_named_after_the_release() -> None:
    leader = first(render(), "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
    env = {e["name"]: e.get("valueFrom") for e in leader["containers"][0]["env"]}
    assert env["HELM_RDMA_API_KEY"] == {"secretKeyRef": {"name": "llama405b-api-key", "key": "api-key"}}


def test_an_api_open_on_the_node_is_caught() -> None:
    docs = copy.deepcopy(render(*CASES["replicas-api-key"]))
    vllm = first(docs, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    args = vllm["args"]
    del args[args.index("--middleware"):args.index("--middleware") + 2]  # vLLM's own key alone guards /v1 only
    assert len(rules.nothing_unauthenticated_on_the_node(docs)) == 1
    docs = copy.deepcopy(render(*CASES["replicas-api-key"]))
    vllm = first(docs, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    vllm["env"] = [e for e in vllm["env"] if e["name"] != "PYTHONPATH"]  # vLLM would not start: no such module
    assert len(rules.nothing_unauthenticated_on_the_node(docs)) == 1
    docs = render("api.allowUnauthenticated=true")
    assert len(rules.nothing_unauthenticated_on_the_node(docs)) == 1


def test_every_group_runs_its_own_preflight_before_vllm() -> None:
    docs = render(*CASES["replicas-api-key"])
    lws = first(docs, "LeaderWorkerSet")
    assert lws["spec"]["replicas"] == 3
    for role in ("leaderTemplate", "workerTemplate"):
        spec = lws["spec"]["leaderWorkerTemplate"][role]["spec"]
        assert [c["name"] for c in spec["initContainers"]] == [
            "port-guard", "download-model", "preflight", "preflight-verdict"]
        preflight = init(spec, "preflight")
        assert preflight["resources"] == spec["containers"][0]["resources"]  # the pod's own GPUs, no more
    assert not [d for d in docs if d["kind"] == "Job" and "preflight" in d["metadata"]["name"]]


def test_a_statefulset_group_measures_in_its_serving_container_each_time_it_forms() -> None:
    """Init containers do not run again when a container restarts (kubernetes.io/docs/concepts/workloads/pods/
    init-containers), and StatefulSet groups restart their containers in place: there the preflight runs in the
    serving container, under the group watch, before vLLM."""
    docs = render(*CASES["sts-hostNetwork"])
    for d in of_kind(docs, "StatefulSet"):
        spec = d["spec"]["template"]["spec"]
        assert "preflight" not in [c["name"] for c in spec.get("initContainers", [])]
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert env["HELM_RDMA_PREFLIGHT_ARGS"].startswith("--sizes 1M,16M,256M,1G,4G,8G --iters 20")
        assert env["HELM_RDMA_PREFLIGHT_ARGS"].endswith(
            "--threshold-gbps 440 --expected-gbps 470 --require-ib --on-failure fail")
        assert "HELM_RDMA_WATCH_PORT" in env


@pytest.mark.parametrize("preset", ["h100", "mi300x"])
def test_every_image_the_chart_runs_names_its_registry_and_a_short_name_is_caught(preset: str) -> None:
    docs = copy.deepcopy(render(*PROVISION, preset=preset))
    assert rules.images_are_fully_qualified(docs) == []
    images = {c["image"] for _, _, t in rules.pod_templates(docs) for c in rules.containers(t)}
    assert {i.partition("/")[0] for i in images} == {"docker.io", "iad.ocir.io"}, images
    lws = first(docs, "LeaderWorkerSet")
    leader = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    leader["image"] = leader["image"].removeprefix("docker.io/")  # what the chart rendered before
    [found] = rules.images_are_fully_qualified(docs)
    assert found.startswith(f"LeaderWorkerSet {lws['metadata']['name']} (leader) container vllm runs 'vllm/")


def test_the_helm_test_rdma_job_runs_in_hostnetwork_mode_only_and_the_api_test_pod_is_small() -> None:
    host = hooks(render())
    assert host["llama405b-vllm-rdma-test-rdma"]["spec"]["template"]["spec"]["hostNetwork"] is True
    sriov = hooks(render(*CASES["lws-sriov"]))
    assert "llama405b-vllm-rdma-test-rdma" not in sriov
    api = sriov["llama405b-vllm-rdma-test-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["image"] == "docker.io/library/python:3.13-alpine"
    assert "http://llama405b-vllm-rdma-api.llm.svc:8000" in api["command"]


def test_the_start_up_budget_follows_the_model() -> None:
    """The leader's startup probe (kubelet: failureThreshold x periodSeconds) and vLLM's wait for its engine
    (VLLM_ENGINE_READY_TIMEOUT_S, 600 s by default in vLLM) follow the weights each node loads."""
    budgets = {}
    for model in ("llama70b", "llama405b"):
        [lws] = of_kind(render(model=model), "LeaderWorkerSet")
        leader = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
        probe = leader["startupProbe"]
        env = {e["name"]: e.get("value") for e in leader["env"]}
        budgets[model] = probe["failureThreshold"] * probe["periodSeconds"]
        assert int(env["VLLM_ENGINE_READY_TIMEOUT_S"]) == budgets[model]
    assert budgets == {"llama70b": 25 * 60, "llama405b": 70 * 60}


def lws_pod(docs: list[dict[str, Any]], role: str = "worker") -> dict[str, Any]:
    return first(docs, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"][f"{role}Template"]["spec"]


def test_a_group_that_meets_before_its_download_ends_is_caught() -> None:
    docs = copy.deepcopy(render())
    spec = lws_pod(docs)
    assert [c["name"] for c in spec["initContainers"]] == [
        "port-guard", "download-model", "preflight", "preflight-verdict"]
    guard, download, *rest = spec["initContainers"]
    spec["initContainers"] = [guard, *rest, download]  # the order the chart had
    found = rules.groups_meet_after_their_downloads(docs)
    assert found and "meets its group (preflight) before its download (download-model) ends" in found[0]


def test_a_group_with_the_preflight_off_still_meets_after_its_download() -> None:
    docs = copy.deepcopy(render("verify.preflight.enabled=false"))
    assert [c["name"] for c in lws_pod(docs)["initContainers"]] == ["port-guard", "download-model", "group-barrier"]
    lws_pod(docs)["initContainers"].pop()  # what the chart rendered: nothing between the download and vLLM
    assert rules.groups_meet_after_their_downloads(docs) == [
        "LeaderWorkerSet llama405b-vllm-rdma (worker) starts vLLM with no barrier after its download"]
    sts = copy.deepcopy(render("verify.preflight.enabled=false", "workload.kind=StatefulSet"))
    worker = next(d for d in of_kind(sts, "StatefulSet") if d["metadata"]["name"].endswith("-worker"))
    vllm = worker["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "HELM_RDMA_BARRIER", "value": "1"} in vllm["env"]
    vllm["env"] = [e for e in vllm["env"] if e["name"] != "HELM_RDMA_BARRIER"]
    assert rules.groups_meet_after_their_downloads(sts) == [
        "StatefulSet llama405b-vllm-rdma-worker (llama405b-vllm-rdma-worker) starts vLLM with no barrier after its "
        "download"]


def test_a_barrier_shorter_than_vllms_own_wait_is_caught() -> None:
    docs = copy.deepcopy(render())
    preflight = init(lws_pod(docs), "preflight")
    [wait] = [e for e in preflight["env"] if e["name"] == "HELM_RDMA_BARRIER_SECONDS"]
    assert int(wait["value"]) >= 600
    wait["value"] = "300"
    assert "waits 300s for its group, less than vLLM's" in rules.groups_meet_after_their_downloads(docs)[0]


def test_a_statefulset_leaders_startup_probe_allows_for_the_barrier_in_its_container() -> None:
    """Under StatefulSets the preflight runs in the serving container, so its wait counts against the startup probe
    (kubelet: periodSeconds x failureThreshold from the container's start); under LWS it is an init container."""
    docs = copy.deepcopy(render("workload.kind=StatefulSet"))
    leader = next(d for d in of_kind(docs, "StatefulSet") if d["metadata"]["name"].endswith("-leader"))
    vllm = leader["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in vllm["env"]}
    probe = vllm["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= (
        int(env["HELM_RDMA_BARRIER_SECONDS"]) + int(env["HELM_RDMA_PREFLIGHT_SECONDS"])
        + int(env["VLLM_ENGINE_READY_TIMEOUT_S"]))
    probe["failureThreshold"] = int(env["VLLM_ENGINE_READY_TIMEOUT_S"]) // 30  # the load budget alone, as before
    found = rules.groups_meet_after_their_downloads(docs)
    assert found and "its startup probe allows" in found[0]
    lws = lws_pod(render(), "leader")["containers"][0]
    assert lws["startupProbe"]["failureThreshold"] * 30 == int(
        {e["name"]: e.get("value") for e in lws["env"]}["VLLM_ENGINE_READY_TIMEOUT_S"])


def test_vllms_distributed_timeout_covers_the_load_not_the_download() -> None:
    docs = copy.deepcopy(render())
    vllm = lws_pod(docs)["containers"][0]
    args = vllm["args"]
    timeout = int(args[args.index("--distributed-timeout-seconds") + 1])
    barrier = int({e["name"]: e.get("value") for e in init(lws_pod(docs), "preflight")["env"]}[
        "HELM_RDMA_BARRIER_SECONDS"])
    load = int({e["name"]: e.get("value") for e in vllm["env"]}["VLLM_ENGINE_READY_TIMEOUT_S"])
    assert 600 < timeout <= load  # above vLLM's default, within the load budget
    args[args.index("--distributed-timeout-seconds") + 1] = str(barrier + 3 * 3600)  # download and load together
    found = rules.groups_meet_after_their_downloads(docs)
    assert any("more than the load budget" in f for f in found)


def test_a_disruption_budget_that_selects_the_test_jobs_is_caught() -> None:
    docs = copy.deepcopy(render("podDisruptionBudget.enabled=true"))
    [pdb] = of_kind(docs, "PodDisruptionBudget")
    assert rules.disruption_budgets_select_only_scalable_pods(docs) == []
    pdb["spec"]["selector"] = {"matchLabels": pdb["spec"]["selector"]["matchLabels"]}  # what the chart once rendered
    found = rules.disruption_budgets_select_only_scalable_pods(docs)
    assert found and all("which has no scale subresource" in f for f in found)
    assert any("test-api" in f for f in found)


@pytest.mark.parametrize("sets", [(), ("model.download.enabled=false",), ("workload.kind=StatefulSet",)])
def test_a_missing_api_key_secret_stops_the_leader_before_its_download(sets: tuple[str, ...]) -> None:
    docs = render(*sets)
    [leader] = [t for _obj, role, t in rules.pod_templates(docs) if role in ("leader", "llama405b-vllm-rdma-leader")]
    first_init = leader["spec"]["initContainers"][0]
    ref = {"secretKeyRef": {"name": "llama405b-api-key", "key": "api-key"}}
    assert {"name": "HELM_RDMA_API_KEY_SECRET_CHECK", "valueFrom": ref} in first_init["env"]
    assert rules.secrets_are_resolved_before_the_first_step(docs) == []
    docs = copy.deepcopy(docs)
    [leader] = [t for _obj, role, t in rules.pod_templates(docs) if role in ("leader", "llama405b-vllm-rdma-leader")]
    first_init = leader["spec"]["initContainers"][0]
    first_init["env"] = [e for e in first_init["env"] if e["name"] != "HELM_RDMA_API_KEY_SECRET_CHECK"]  # as before
    [problem] = rules.secrets_are_resolved_before_the_first_step(docs)
    assert f"its first init container {first_init['name']} runs without it" in problem


def test_workers_and_other_init_containers_never_see_the_api_key() -> None:
    for _obj, role, template in rules.pod_templates(render()):
        for c in rules.containers(template)[1:]:
            assert "HELM_RDMA_API_KEY_SECRET_CHECK" not in rules.env_of(c), (role, c["name"])


def test_a_download_that_fails_at_once_without_its_reason_kept_is_caught() -> None:
    docs = render("model.download.holdOnFailureMinutes=3")
    download = init(lws_pod(docs, "leader"), "download-model")
    args = download["args"]
    assert args[args.index("--hold-on-failure") + 1] == "180"
    assert args[args.index("--termination-log") + 1] == download["terminationMessagePath"] == "/dev/termination-log"
    assert rules.failed_downloads_hold_and_say_why(docs) == []
    docs = copy.deepcopy(docs)
    download = init(lws_pod(docs, "leader"), "download-model")
    i = download["args"].index("--hold-on-failure")
    del download["args"][i:i + 4]  # what the chart rendered before: exit 1 at once, the reason in the log only
    del download["terminationMessagePolicy"]
    assert len(rules.failed_downloads_hold_and_say_why(docs)) == 3


def serving_labels(docs: list[dict[str, Any]], role: str) -> dict[str, Any]:
    return dict(first(docs, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"][f"{role}Template"]["metadata"]["labels"])


@pytest.mark.parametrize("kind", ["LeaderWorkerSet", "StatefulSet"])
def test_in_sriov_mode_the_group_ports_admit_only_the_releases_pods_and_the_api_admits_everyone(kind: str) -> None:
    # Kubernetes NetworkPolicy semantics (tests/consumer_rules.py, ingress_admitted), on a policy that passes the
    # strict validation of the API's schema.
    from .conftest import SHARED_CRDS
    from .k8s_validation import validate_documents

    docs = render("rdma.mode=sriov", f"workload.kind={kind}")
    [policy] = of_kind(docs, "NetworkPolicy")
    assert validate_documents([policy], crds=SHARED_CRDS) == []
    pods = [(t.get("metadata") or {}).get("labels") or {} for obj, _r, t in rules.pod_templates(docs)
            if obj["kind"] in ("LeaderWorkerSet", "StatefulSet")]
    assert len(pods) == 2
    other_release = {**pods[0], "app.kubernetes.io/instance": "other"}
    test_pod = {k: v for k, v in pods[0].items() if k != "app.kubernetes.io/component"}  # helm test, same release
    for to in pods:
        for port in (29500, 29510, 45678):  # the torch store, the group watch, a port NCCL or ZMQ picks
            assert all(rules.ingress_admitted(docs, to=to, source=peer, port=port) for peer in pods)
            assert not rules.ingress_admitted(docs, to=to, source=other_release, port=port)
            assert not rules.ingress_admitted(docs, to=to, source=test_pod, port=port)
        assert rules.ingress_admitted(docs, to=to, source=other_release, port=8000)
        assert rules.ingress_admitted(docs, to=to, source={}, port=8000, namespace="ingress-nginx")
    assert rules.group_ports_closed_on_the_pod_network(docs) == []


def test_the_api_admits_only_the_named_peers_when_apifrom_is_set() -> None:
    docs = render("rdma.mode=sriov", "networkPolicy.apiFrom[0].podSelector.matchLabels.role=gateway")
    leader = next(t["metadata"]["labels"] for obj, role, t in rules.pod_templates(docs) if role == "leader")
    assert rules.ingress_admitted(docs, to=leader, source={"role": "gateway"}, port=8000)
    assert not rules.ingress_admitted(docs, to=leader, source={"role": "other"}, port=8000)
    assert not rules.ingress_admitted(docs, to=leader, source={"role": "gateway"}, port=29500)


def test_no_network_policy_under_hostnetwork_where_none_applies() -> None:
    assert of_kind(render(), "NetworkPolicy") == []
    assert of_kind(render("rdma.mode=sriov", "networkPolicy.enabled=false"), "NetworkPolicy") == []


def test_group_ports_open_to_every_pod_on_the_pod_network_are_caught() -> None:
    docs = [d for d in render("rdma.mode=sriov") if d["kind"] != "NetworkPolicy"]  # what the chart rendered before
    found = rules.group_ports_closed_on_the_pod_network(docs)
    assert len(found) == 6 and all("admits pods outside the release on group port" in p for p in found)
    docs = copy.deepcopy(render("rdma.mode=sriov"))
    [policy] = of_kind(docs, "NetworkPolicy")
    policy["spec"]["ingress"][0]["ports"] = [{"port": 29500, "protocol": "TCP"}]  # NCCL's and ZMQ's ports forgotten
    found = rules.group_ports_closed_on_the_pod_network(docs)
    assert found and all("refuses its group's pods on port" in p for p in found)


def test_a_pool_that_takes_the_workers_or_misses_its_picker_is_caught() -> None:
    docs = copy.deepcopy(render(*ROUTER_AUTOSCALING))
    pool = first(docs, "InferencePool")
    del pool["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]  # every pod of the release
    found = rules.pools_select_one_serving_pod_per_group(docs)
    assert "InferencePool llama405b-vllm-rdma selects LeaderWorkerSet llama405b-vllm-rdma (worker), which serves no " \
           "API on [8000]" in found
    assert "InferencePool llama405b-vllm-rdma selects Deployment llama405b-vllm-rdma-epp (llama405b-vllm-rdma-epp), " \
           "which serves no API on [8000]" in found  # the picker's own pod too
    docs = copy.deepcopy(render(*ROUTER_AUTOSCALING))
    first(docs, "InferencePool")["spec"]["endpointPickerRef"]["port"]["number"] = 9090  # the picker's metrics port
    assert rules.pools_select_one_serving_pod_per_group(docs) == [
        "InferencePool llama405b-vllm-rdma's picker Service llama405b-vllm-rdma-epp does not reach the picker's port "
        "9090"]
    first(docs, "HTTPRoute")["spec"]["rules"][0]["backendRefs"][0]["name"] = "elsewhere"
    assert rules.routes_reach_a_service_port(docs) == [
        "HTTPRoute llama405b-vllm-rdma-api sends traffic to InferencePool elsewhere, which the release does not have"]



def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector's rule (matchLabels, and matchExpressions with In), as the API server applies it
    (kubernetes apimachinery pkg/apis/meta/v1/helpers.go, LabelSelectorAsSelector)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(e["operator"] == "In" and labels.get(e["key"]) in e["values"]
               for e in selector.get("matchExpressions") or [])


def serving_template_labels(documents: list[dict[str, Any]]) -> list[dict[str, str]]:
    found = []
    for d in documents:
        if d["kind"] == "LeaderWorkerSet":
            lwt = d["spec"]["leaderWorkerTemplate"]
            found += [t["metadata"]["labels"] for t in (lwt.get("leaderTemplate"), lwt["workerTemplate"]) if t]
        elif d["kind"] == "StatefulSet":
            found.append(d["spec"]["template"]["metadata"]["labels"])
    return found


# The Job controller keeps `parallelism` pods running until `completions` succeed (kubernetes pkg/controller/job);
# the scheduler places each test pod on a node that runs a serving pod (required podAffinity) and none that runs
# another test pod (required podAntiAffinity on kubernetes.io/hostname): kubernetes.io/docs/concepts/scheduling-
# eviction/assign-pod-node, "Inter-pod affinity and anti-affinity". So every node of every group is checked once.
@pytest.mark.parametrize(("sets", "pods"), [
    ((), 2), (("nodes=4",), 4), (("replicas=3",), 6), (("nodes=3", "replicas=2"), 6),
    (("workload.kind=StatefulSet", "nodes=3", "replicas=2"), 6),
    # with autoscaling the groups the scaler always keeps (the hook is rendered at upgrade, not at `helm test`):
    # replicas is not rendered then, and more pods than serving nodes would stay Pending and fail the test
    (("autoscaling.enabled=true", "autoscaling.minReplicas=2", "autoscaling.maxReplicas=3", "replicas=5",
      "autoscaling.prometheusAddress=http://prometheus.monitoring.svc:9090", "monitoring.serviceMonitor.enabled=true"),
     4),
])
def test_the_rdma_test_checks_every_node_of_every_group_once(sets: tuple[str, ...], pods: int) -> None:
    documents = render(*sets)
    job = hooks(documents)["llama405b-vllm-rdma-test-rdma"]
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == pods
    assert job["spec"]["backoffLimit"] == 0  # one node without its NICs fails the test
    spec, labels = job["spec"]["template"]["spec"], job["spec"]["template"]["metadata"]["labels"]
    [apart] = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    [beside] = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert apart["topologyKey"] == beside["topologyKey"] == "kubernetes.io/hostname"
    assert selects(apart["labelSelector"], labels)  # the test pods keep apart from each other
    serving = serving_template_labels(documents)
    assert serving and all(selects(beside["labelSelector"], s) for s in serving)  # and go where the model runs
    assert not selects(beside["labelSelector"], labels) and not any(selects(apart["labelSelector"], s)
                                                                    for s in serving)
