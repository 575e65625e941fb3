"""Rules that the consumers of our manifests apply, each citing where it comes from. Every rendered chart must pass
all of them (test_golden applies them to the whole matrix; test_consumers shows each one catching what it is for).

Each rule takes the rendered documents and returns the problems it finds (empty: the rule holds).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

Docs = list[dict[str, Any]]
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
MULTUS = "k8s.v1.cni.cncf.io/networks"


def pod_templates(docs: Docs) -> Iterator[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(object, role, pod template) of every object that makes pods."""
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] == "LeaderWorkerSet":
            lwt = spec["leaderWorkerTemplate"]
            if "leaderTemplate" in lwt:
                yield d, "leader", lwt["leaderTemplate"]
            yield d, "worker", lwt["workerTemplate"]
        elif d["kind"] in ("StatefulSet", "Job", "Deployment", "DaemonSet"):
            yield d, d["metadata"]["name"], spec["template"]
        elif d["kind"] == "Pod":
            yield d, d["metadata"]["name"], d


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template.get("spec", {})
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def requests_of(container: dict[str, Any]) -> dict[str, Any]:
    resources = container.get("resources") or {}
    return {**(resources.get("requests") or {}), **(resources.get("limits") or {})}


def lws_service_names_are_free(docs: Docs) -> list[str]:
    """kubernetes-sigs/lws: the controller creates the headless Service that publishes LWS_LEADER_ADDRESS
    (<lws>-<group>.<lws>.<namespace>) under the LeaderWorkerSet's own name, and only if no Service of that name
    exists (pkg/utils/controller/controller_utils.go CreateHeadlessServiceIfNotExists, called with lws.Name from
    pkg/controllers/leaderworkerset_controller.go). A chart Service of that name leaves the workers no leader."""
    lws = {(d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs if d["kind"] == "LeaderWorkerSet"}
    return [f"Service {d['metadata']['name']} has the name of a LeaderWorkerSet" for d in docs
            if d["kind"] == "Service" and (d["metadata"].get("namespace"), d["metadata"]["name"]) in lws]


def rdma_devices_can_be_opened(docs: Docs) -> list[str]:
    """The container runtime (runc, crun, CRI-O) lets a container open only default devices and those a device
    plugin grants: a hostPath /dev/infiniband mount is visible but `uverbs*` cannot be opened unless the container
    is privileged (oracle-quickstart/oci-hpc-oke docs/using-rdma-network-interfaces-in-manifests.md; FACTS.md "How a
    pod gets RDMA on OKE"). So a container that mounts the node's RDMA devices runs privileged, and one that uses
    RDMA without them gets the devices from a device plugin resource (SR-IOV VFs, or an RDMA shared device)."""
    problems = []
    for obj, role, template in pod_templates(docs):
        volumes = {v["name"]: v for v in template.get("spec", {}).get("volumes") or []}
        for c in containers(template):
            mounts_devices = any(str((volumes.get(m["name"]) or {}).get("hostPath", {}).get("path", "")).startswith(
                "/dev/infiniband") for m in c.get("volumeMounts") or [])
            privileged = bool((c.get("securityContext") or {}).get("privileged"))
            uses_rdma = any(e.get("name") == "NCCL_IB_HCA" for e in c.get("env") or [])
            granted = any("/" in k and k not in GPU_RESOURCES for k in requests_of(c))
            where = f"{obj['kind']} {obj['metadata']['name']} ({role}) container {c['name']}"
            if mounts_devices and not privileged:
                problems.append(f"{where} mounts the node's /dev/infiniband unprivileged: it cannot open uverbs*")
            if uses_rdma and not privileged and not granted and not mounts_devices:
                problems.append(f"{where} uses RDMA with no device access (not privileged, no device resource)")
    return problems


def hooks_never_take_gpus(docs: Docs) -> list[str]:
    """Helm runs pre-upgrade hooks on every upgrade and `helm test` hooks beside a serving release; Argo CD maps
    pre-install and pre-upgrade hooks to PreSync and runs them on every sync (FACTS.md "Helm"; argo-cd docs
    user-guide/helm.md). The serving pods hold every GPU (and VF) of their nodes, so a hook that requests them
    waits forever: no hook may request GPUs or RDMA VFs."""
    problems = []
    for obj, _role, template in pod_templates(docs):
        if "helm.sh/hook" not in (obj["metadata"].get("annotations") or {}):
            continue
        for c in containers(template):
            taken = [k for k in requests_of(c) if k in GPU_RESOURCES or "rdma" in k]
            if taken:
                problems.append(f"hook {obj['kind']} {obj['metadata']['name']} container {c['name']} requests "
                                f"{', '.join(taken)}")
    return problems


def multus_networks_are_namespaced(docs: Docs) -> list[str]:
    """Multus resolves a network named without a namespace in the pod's own namespace
    (k8snetworkplumbingwg/multus-cni docs/how-to-use.md, "<namespace>/<network name>"); Oracle's rdma-vf
    NetworkAttachmentDefinition lives in default, so pods elsewhere must write default/rdma-vf
    (oracle-quickstart/oci-hpc-oke docs/using-rdma-network-interfaces-in-manifests.md)."""
    problems = []
    for obj, role, template in pod_templates(docs):
        networks = (template.get("metadata", {}).get("annotations") or {}).get(MULTUS)
        if networks and any("/" not in n for n in networks.split(",")):
            problems.append(f"{obj['kind']} {obj['metadata']['name']} ({role}) names {networks} without a namespace")
    return problems


def statefulset_groups_restart_together(docs: Docs) -> list[str]:
    """vLLM's headless workers block forever when the leader goes away (vllm v1/executor/multiproc_executor.py,
    dequeue(indefinite=True)) and StatefulSets restart pods one by one; only LeaderWorkerSet's
    RecreateGroupOnPodRestart restarts a group as one (kubernetes-sigs/lws pkg/controllers/pod_controller.go). So
    every serving container (the one that runs vLLM, HELM_RDMA_TASK=serve) of a multi-node StatefulSet group runs
    under the group watch (files/group_watch.py); the API key gate and sidecars serve no rank of the group."""
    problems = []
    workers = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"].endswith("-worker")]
    for d in docs:
        if d["kind"] != "StatefulSet" or not workers:
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in c.get("env") or []}
            if env.get("HELM_RDMA_TASK") == "serve" and "HELM_RDMA_WATCH_PORT" not in env:
                problems.append(f"StatefulSet {d['metadata']['name']} container {c['name']} has no group watch")
    return problems


def nothing_unauthenticated_on_the_node(docs: Docs) -> list[str]:
    """Under hostNetwork a pod's ports listen on the node's VCN address, and NetworkPolicies do not reliably apply
    to hostNetwork pods (FACTS.md "Controllers that consume our manifests"). Ray's dashboard and job API run code
    for anyone who reaches them (docs.ray.io ray-security/token-auth): the chart binds the dashboard to the node's
    loopback and runs Ray with RAY_AUTH_MODE=token, unless the user opted out explicitly. Keys come from a Secret
    through the environment, never in arguments anyone can read in the pod spec.

    vLLM's own key guards only /v1, /v2, /inference and /cohere (vllm-project/vllm
    vllm/entrypoints/serve/middleware/authenticate.py at baaf6e9c, GUARDED_PREFIX line 11): a serving vllm container
    (the one with the `http` port) under hostNetwork loads the chart's check on every path through vLLM's
    --middleware hook, which imports the dotted path with importlib (register.py at 41a041c8, lines 65-69), so the
    module's directory is on its PYTHONPATH and its key (HELM_RDMA_API_KEY) comes from a Secret."""
    problems = []
    for obj, _role, template in pod_templates(docs):
        spec = template.get("spec", {})
        name = obj["metadata"]["name"]
        for c in containers(template):
            args = [str(a) for a in (c.get("args") or []) + (c.get("command") or [])]
            if any(a.startswith("--api-key") for a in args):
                problems.append(f"{name} passes --api-key in its arguments")
            env = {e["name"]: e for e in c.get("env") or []}
            for e in env.values():
                if e["name"] in ("VLLM_API_KEY", "HELM_RDMA_API_KEY", "RAY_AUTH_TOKEN", "HF_TOKEN") and "value" in e:
                    problems.append(f"{name} container {c['name']} holds {e['name']} inline")
            if not spec.get("hostNetwork"):
                continue
            ports = {p.get("name") for p in c.get("ports") or []}
            if "ray-dashboard" in ports:
                problems.append(f"{name} publishes the Ray dashboard on the node")
            if c.get("name") == "vllm" and "http" in ports:
                middleware = args[args.index("--middleware") + 1] if "--middleware" in args else None
                module = (middleware or "").rpartition(".")[0]
                path = str(env.get("PYTHONPATH", {}).get("value", "")).split(":")
                scripts = [m["mountPath"] for m in c.get("volumeMounts") or [] if m.get("name") == "scripts"]
                key = (env.get("HELM_RDMA_API_KEY", {}).get("valueFrom") or {}).get("secretKeyRef")
                if middleware != "api_auth.ApiKeyMiddleware" or module != "api_auth":
                    problems.append(f"{name} serves vLLM's API on the node without the key check on every path")
                elif not set(scripts) & set(path):
                    problems.append(f"{name} loads {middleware} but its directory is not on PYTHONPATH")
                elif not key:
                    problems.append(f"{name} loads {middleware} without HELM_RDMA_API_KEY from a Secret")
    return problems


def routes_reach_a_service_port(docs: Docs) -> list[str]:
    """An ingress controller or Gateway sends a route's traffic to the Service and port its backend names, in the
    route's namespace (kubernetes.io/docs/concepts/services-networking/ingress, "Ingress rules"; Gateway API
    HTTPBackendRef: a Service by name and port). A backend naming no Service of the release, or a port that Service
    does not have, answers 503."""
    services = {(d["metadata"].get("namespace"), d["metadata"]["name"]): {p["port"] for p in d["spec"]["ports"]}
                for d in docs if d["kind"] == "Service"}
    problems = []
    for d in docs:
        ns, name = d["metadata"].get("namespace"), d["metadata"]["name"]
        backends = []
        if d["kind"] == "Ingress":
            backends = [(p["backend"]["service"]["name"], p["backend"]["service"]["port"].get("number"))
                        for r in d["spec"]["rules"] for p in r["http"]["paths"]]
        elif d["kind"] == "HTTPRoute":
            refs = [b for r in d["spec"]["rules"] for b in r.get("backendRefs", [])]
            backends = [(b["name"], b.get("port")) for b in refs if b.get("kind", "Service") == "Service"]
            pools = {p["metadata"]["name"] for p in docs if p["kind"] == "InferencePool"
                     and p["metadata"].get("namespace") == ns}
            problems += [f"HTTPRoute {name} sends traffic to InferencePool {b['name']}, which the release does not have"
                         for b in refs if b.get("kind") == "InferencePool" and (
                             b["name"] not in pools or b.get("group") != "inference.networking.k8s.io")]
        for service, port in backends:
            if port not in services.get((ns, service), set()):
                problems.append(f"{d['kind']} {name} sends traffic to {service}:{port}, which is no Service port")
    return problems


def dashboards_load_in_grafana(docs: Docs) -> list[str]:
    """Grafana's dashboard sidecar loads every key of a ConfigMap carrying its label as a dashboard file
    (kiwigrid/k8s-sidecar, the grafana chart's sidecar.dashboards.label, default grafana_dashboard); Grafana refuses
    a dashboard whose JSON does not parse or whose uid is longer than 40 characters (grafana docs, dashboard JSON
    model: "uid ... maximum length of 40")."""
    problems = []
    for d in docs:
        if d["kind"] != "ConfigMap" or "grafana_dashboard" not in (d["metadata"].get("labels") or {}):
            continue
        for key, text in (d.get("data") or {}).items():
            try:
                dashboard = json.loads(text)
            except ValueError as exc:
                problems.append(f"ConfigMap {d['metadata']['name']} key {key} is no JSON: {exc}")
                continue
            if not 0 < len(str(dashboard.get("uid", ""))) <= 40:
                problems.append(f"ConfigMap {d['metadata']['name']} key {key} has uid {dashboard.get('uid')!r}")
    return problems


def images_are_fully_qualified(docs: Docs) -> list[str]:
    """CRI-O 1.34 enforces short-name resolution: an image without a registry host (`vllm/vllm-openai:TAG`) may be
    refused as ambiguous (containers/image docs/containers-registries.conf.5.md, `short-name-mode`; CRI-O's
    `[crio.image] short_name_mode`). Oracle's node script turns it off for Kubernetes >= v1.34
    (oracle-quickstart/oci-hpc-oke files/oke-ubuntu-cloud-init.sh, `configure_crio_defaults`, commit 61d210ac), so
    a short name pulls only on nodes set up that way. Every image a pod runs names its registry host (docker's rule:
    the first component holds '.' or ':' or is localhost)."""
    problems = []
    for obj, role, template in pod_templates(docs):
        for c in containers(template):
            first, _, rest = str(c.get("image", "")).partition("/")
            if not rest or not ("." in first or ":" in first or first == "localhost"):
                problems.append(f"{obj['kind']} {obj['metadata']['name']} ({role}) container {c.get('name')} runs "
                                f"{c.get('image')!r}, a short name")
    return problems


BARRIER_STEPS = ("preflight", "group-barrier")
VLLM_DEFAULT_DISTRIBUTED_TIMEOUT = 600


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def groups_meet_after_their_downloads(docs: Docs) -> list[str]:
    """vLLM gives its peers its distributed timeout to meet (vllm/config/parallel.py,
    ParallelConfig.distributed_timeout_seconds; None means torch's 600 s for NCCL; vllm-project/vllm@00193b82), and
    the same value is the timeout of every collective (vllm/distributed/parallel_state.py, init_distributed_environment
    passes it to torch.distributed.init_process_group; vllm-project/vllm@0c175ae9). Nodes finish an 812 GB download
    minutes apart, so each node of a multi-node group downloads, then meets the others at a barrier (the preflight,
    or a barrier of its own), and only then starts vLLM. Init containers run one after another, in order, before the
    app containers (kubernetes.io/docs/concepts/workloads/pods/init-containers); the kubelet kills a container whose
    startup probe failed periodSeconds x failureThreshold seconds after it started
    (kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes). So, in every serving pod of a group:
    under LeaderWorkerSet the barrier is an init container after every download; in StatefulSet mode (whose init
    containers do not run again on a container restart) it runs in the serving container, whose startup probe then
    allows for it; the barrier waits at least as long as vLLM would; and vLLM's timeout never includes the download
    (it stays within the load budget, VLLM_ENGINE_READY_TIMEOUT_S)."""
    problems = []
    for obj, role, template in pod_templates(docs):
        spec = template.get("spec", {})
        serving = [c for c in spec.get("containers") or [] if env_of(c).get("HELM_RDMA_TASK") == "serve"]
        if not serving or int(env_of(serving[0]).get("HELM_RDMA_NNODES") or 1) < 2:
            continue
        vllm, where = serving[0], f"{obj['kind']} {obj['metadata']['name']} ({role})"
        env = env_of(vllm)
        inits = [c["name"] for c in spec.get("initContainers") or []]
        downloads = [i for i, n in enumerate(inits) if n.startswith("download-")]
        barriers = [i for i, n in enumerate(inits) if n in BARRIER_STEPS]
        in_container = "HELM_RDMA_PREFLIGHT_ARGS" in env or "HELM_RDMA_BARRIER" in env
        if obj["kind"] == "LeaderWorkerSet":
            if not barriers:
                problems.append(f"{where} starts vLLM with no barrier after its download")
            elif downloads and barriers[-1] < downloads[-1]:
                problems.append(f"{where} meets its group ({inits[barriers[-1]]}) before its download "
                                f"({inits[downloads[-1]]}) ends: init containers {inits}")
            if in_container:
                problems.append(f"{where} runs a second barrier in its serving container")
        elif not in_container:
            problems.append(f"{where} starts vLLM with no barrier after its download")
        steps = [c for c in spec.get("initContainers") or [] if c["name"] in BARRIER_STEPS] + (
            [vllm] if in_container else [])
        args = [str(a) for a in vllm.get("args") or []]
        timeout = (int(args[args.index("--distributed-timeout-seconds") + 1])
                   if "--distributed-timeout-seconds" in args else VLLM_DEFAULT_DISTRIBUTED_TIMEOUT)
        for step in steps:
            wait = int(env_of(step).get("HELM_RDMA_BARRIER_SECONDS") or 0)
            if wait < timeout:
                problems.append(f"{where} container {step['name']} waits {wait}s for its group, less than vLLM's "
                                f"{timeout}s")
        load = int(env.get("VLLM_ENGINE_READY_TIMEOUT_S") or 0)
        if timeout > max(load, VLLM_DEFAULT_DISTRIBUTED_TIMEOUT):
            problems.append(f"{where} gives vLLM's peers {timeout}s, more than the load budget {load}s: a hung group "
                            "would go unnoticed that long")
        probe = vllm.get("startupProbe")
        if probe and in_container:
            budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
            before = int(env.get("HELM_RDMA_BARRIER_SECONDS") or 0) + int(env.get("HELM_RDMA_PREFLIGHT_SECONDS") or 0)
            if budget < before + load:
                problems.append(f"{where}: its startup probe allows {budget}s, less than the barrier and preflight "
                                f"({before}s) and vLLM's start ({load}s) in the same container")
    return problems


def disruption_budgets_select_only_scalable_pods(docs: Docs) -> list[str]:
    """A PodDisruptionBudget with maxUnavailable (or a percentage) is sized from each selected pod's controller's scale
    subresource; a Job or a bare Pod has none, and then the controller fails the budget (disruptionsAllowed 0) and every
    eviction of the serving pods is refused (kubernetes pkg/controller/disruption/disruption.go, getExpectedScale and
    getScaleController; kubernetes.io/docs/tasks/run-application/configure-pdb, "Arbitrary workloads and
    selectors"). So no Job or Pod template may match a budget's selector."""
    problems = []
    for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        selector = pdb["spec"].get("selector") or {}
        for obj, role, template in pod_templates(docs):
            if obj["kind"] not in ("Job", "Pod"):
                continue
            labels = (template.get("metadata") or {}).get("labels") or {}
            if selects(selector, labels):
                problems.append(f"PodDisruptionBudget {pdb['metadata']['name']} selects the pods of {obj['kind']} "
                                f"{obj['metadata']['name']} ({role}), which has no scale subresource")
    return problems


def secrets_are_resolved_before_the_first_step(docs: Docs) -> list[str]:
    """The kubelet resolves a container's environment, secretKeyRef included, just before it starts that container; a
    missing Secret or key leaves the container in CreateContainerConfigError and nothing after it starts
    (kubernetes pkg/kubelet/kuberuntime/kuberuntime_container.go startContainer -> generateContainerConfig ->
    kubelet_pods.go makeEnvironmentVariables: "couldn't find key %v in Secret"; init containers start one after
    another, in order). So a serving pod whose vllm container reads the API key from a Secret names that Secret in
    its first init container too: otherwise the leader finds the Secret missing only after its download and preflight,
    its workers time out, and LeaderWorkerSet recreates the group again and again."""
    problems = []
    for obj, role, template in pod_templates(docs):
        spec = template.get("spec", {})
        refs = {(ref["name"], ref["key"]) for c in spec.get("containers") or [] if c.get("name") == "vllm"
                for e in c.get("env") or [] if e["name"] == "HELM_RDMA_API_KEY"
                for ref in [((e.get("valueFrom") or {}).get("secretKeyRef") or {})] if ref}
        inits = spec.get("initContainers") or []
        if not refs or not inits:
            continue
        first = {(ref["name"], ref["key"]) for e in inits[0].get("env") or []
                 for ref in [((e.get("valueFrom") or {}).get("secretKeyRef") or {})] if ref}
        for name, key in sorted(refs - first):
            problems.append(f"{obj['kind']} {obj['metadata']['name']} ({role}) reads Secret {name} key {key} only "
                            f"in vllm: its first init container {inits[0]['name']} runs without it")
    return problems


def failed_downloads_hold_and_say_why(docs: Docs) -> list[str]:
    """LeaderWorkerSet counts init-container restarts as restarts (kubernetes-sigs/lws pkg/utils/pod/pod_utils.go,
    ContainerRestarted, lines 28-44 at 1b17603c: InitContainerStatuses[].RestartCount > 0) and then recreates the
    whole group, deleting the leader (pkg/controllers/pod_controller.go, handleRestartPolicy). New pods start with no
    kubelet back-off and the failed pod's log goes with it. So a download init container that can fail at once (a
    gated repository, the boot volume, no space) holds for a while before exiting 1, and writes its reason where it
    outlives the log: its termination message (terminationMessagePath, kept in the pod's status and events;
    FallbackToLogsOnError if it wrote none; kubernetes.io/docs/tasks/debug/debug-application/
    determine-reason-pod-failure)."""
    problems = []
    for obj, role, template in pod_templates(docs):
        if obj["kind"] != "LeaderWorkerSet":
            continue
        for c in template.get("spec", {}).get("initContainers") or []:
            if not c["name"].startswith("download-"):
                continue
            where = f"{obj['kind']} {obj['metadata']['name']} ({role}) container {c['name']}"
            args = [str(a) for a in c.get("args") or []]
            hold = float(args[args.index("--hold-on-failure") + 1]) if "--hold-on-failure" in args else 0
            if hold < 60:
                problems.append(f"{where} fails at once ({hold:.0f}s hold): LeaderWorkerSet recreates the group "
                                "in a tight loop")
            path = c.get("terminationMessagePath", "/dev/termination-log")
            if "--termination-log" not in args or args[args.index("--termination-log") + 1] != path:
                problems.append(f"{where} does not write its reason to its termination message ({path})")
            if c.get("terminationMessagePolicy") != "FallbackToLogsOnError":
                problems.append(f"{where} has no terminationMessagePolicy FallbackToLogsOnError")
    return problems


def selects(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) selects LABELS; the empty selector selects all."""
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()) and all(
        (labels.get(e["key"]) in e.get("values", [])) == (e["operator"] == "In")
        if e["operator"] in ("In", "NotIn") else (e["key"] in labels) == (e["operator"] == "Exists")
        for e in selector.get("matchExpressions") or [])


def ingress_admitted(docs: Docs, *, to: dict[str, Any], source: dict[str, Any], port: int,
                     namespace: str | None = None) -> bool:
    """Whether a TCP connection from a pod of the policies' namespace (or NAMESPACE) labelled SOURCE to PORT of a pod
    labelled TO is admitted, by Kubernetes NetworkPolicy semantics (kubernetes.io/docs/concepts/services-networking/
    network-policies, "The two sorts of pod isolation" and "Behavior of to and from selectors"; API reference
    NetworkPolicyIngressRule): a pod no Ingress policy selects admits everything; a selected pod admits a connection
    that some ingress rule of some selecting policy matches, a rule matching when one of its `from` peers matches
    (none: every source) and one of its `ports` matches (none: every port); a podSelector peer without a
    namespaceSelector means the policy's own namespace. ipBlock and namespaceSelector peers are taken to match only
    a source of another namespace."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"
                and "Ingress" in (d["spec"].get("policyTypes") or ["Ingress"]) and selects(d["spec"]["podSelector"], to)]
    if not policies:
        return True
    for policy in policies:
        own = namespace is None or namespace == policy["metadata"].get("namespace")
        for rule in policy["spec"].get("ingress") or []:
            peers = rule.get("from") or []
            peer_ok = not peers or any(
                ("podSelector" in p and "namespaceSelector" not in p and own and selects(p["podSelector"], source))
                or ("podSelector" not in p and not own) for p in peers)
            ports = rule.get("ports") or []
            port_ok = not ports or any(p.get("protocol", "TCP") == "TCP" and (
                "port" not in p or (isinstance(p["port"], int) and p["port"] <= port <= p.get("endPort", p["port"]))) for p in ports)
            if peer_ok and port_ok:
                return True
    return False


GROUP_PORTS_PROBED = (29500, 29510, 40123)  # the torch store, the group watch, a port NCCL or ZMQ picks at run time


def group_ports_closed_on_the_pod_network(docs: Docs) -> list[str]:
    """In sriov mode the serving pods are on the pod network, where a NetworkPolicy applies (and hostNetwork pods are
    not subject to one: kubernetes.io/docs/concepts/services-networking/network-policies, "NetworkPolicy and
    hostNetwork pods"). The group's ports (the torch TCPStore, the group watch, NCCL's bootstrap, vLLM's ZMQ
    sockets, some chosen at run time) take unauthenticated connections, so by the semantics of ingress_admitted:
    every serving pod admits the release's serving pods on any of them, admits no other pod on them, and admits the
    API port (vllm.port, the leader's `http` port)."""
    problems = []
    serving = [(obj, role, t) for obj, role, t in pod_templates(docs)
               if any(env_of(c).get("HELM_RDMA_TASK") == "serve" for c in t.get("spec", {}).get("containers") or [])]
    on_pod_network = [(o, r, t) for o, r, t in serving if not t.get("spec", {}).get("hostNetwork")]
    labels = [(t.get("metadata") or {}).get("labels") or {} for _o, _r, t in on_pod_network]
    for obj, role, template in on_pod_network:
        where = f"{obj['kind']} {obj['metadata']['name']} ({role})"
        me = (template.get("metadata") or {}).get("labels") or {}
        stranger = {k: v for k, v in me.items() if k != "app.kubernetes.io/instance"} | {
            "app.kubernetes.io/instance": "another-release"}
        for port in GROUP_PORTS_PROBED:
            if not all(ingress_admitted(docs, to=me, source=peer, port=port) for peer in labels):
                problems.append(f"{where} refuses its group's pods on port {port}")
            if ingress_admitted(docs, to=me, source=stranger, port=port):
                problems.append(f"{where} admits pods outside the release on group port {port}")
        for c in template.get("spec", {}).get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") == "http" and not (
                        ingress_admitted(docs, to=me, source=stranger, port=p["containerPort"])
                        or ingress_admitted(docs, to=me, source={}, port=p["containerPort"], namespace="elsewhere")):
                    problems.append(f"{where} admits no one on its API port {p['containerPort']}")
    return problems


def pools_select_one_serving_pod_per_group(docs: Docs) -> list[str]:
    """An InferencePool's endpoints are the pods its selector matches, each on every targetPorts number, and the
    Gateway asks the Service its endpointPickerRef names, on that port, where each request goes
    (kubernetes-sigs/gateway-api-inference-extension api/v1/inferencepool_types.go: Selector, TargetPorts,
    EndpointPickerRef; its CRD in ../shared/crds). A pod of a group that serves no HTTP (a worker, whose vLLM runs
    headless; a Job) chosen as an endpoint fails every request sent to it. So a pool selects exactly the pods with
    vLLM's `http` port (one per group: the leader) on that port, and names a Service of the release whose port
    reaches the picker's ext_proc port (llm-d-router's EPP: its `grpc` container port, 9002)."""
    problems = []
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for pool in (d for d in docs if d["kind"] == "InferencePool"):
        name, spec = pool["metadata"]["name"], pool["spec"]
        ports = {p["number"] for p in spec["targetPorts"]}
        for obj, role, template in pod_templates(docs):
            labels = (template.get("metadata") or {}).get("labels") or {}
            if not selects(spec["selector"], labels):
                continue
            http = {p["containerPort"] for c in template.get("spec", {}).get("containers") or [] if c["name"] == "vllm"
                    for p in c.get("ports") or [] if p.get("name") == "http"}
            if not http or not ports <= http:
                problems.append(f"InferencePool {name} selects {obj['kind']} {obj['metadata']['name']} ({role}), "
                                f"which serves no API on {sorted(ports)}")
        ref = spec["endpointPickerRef"]
        service = services.get(ref["name"])
        if ref.get("kind", "Service") != "Service" or service is None:
            problems.append(f"InferencePool {name} names the picker Service {ref['name']}, which the release lacks")
            continue
        port = next((p for p in service["spec"]["ports"] if p["port"] == ref["port"]["number"]), None)
        grpc = {p.get("name") for obj, _role, template in pod_templates(docs)
                if selects({"matchLabels": service["spec"]["selector"]}, (template.get("metadata") or {}).get("labels")
                           or {})
                for c in template.get("spec", {}).get("containers") or [] for p in c.get("ports") or []
                if p.get("name") == "grpc"}
        if port is None or port.get("targetPort") not in grpc:
            problems.append(f"InferencePool {name}'s picker Service {ref['name']} does not reach the picker's "
                            f"port {ref['port']['number']}")
    return problems


def scalers_own_the_group_count(docs: Docs) -> list[str]:
    """KEDA scales the object its ScaledObject's scaleTargetRef names through that object's scale subresource
    (kedacore/keda v2.20.2 controllers/keda/scaledobject_controller.go line 463, ScaleClient.Scales(...).Get; the HPA it creates scales the same subresource), and a LeaderWorkerSet's scale subresource
    counts groups (kubernetes-sigs/lws api/leaderworkerset/v1/leaderworkerset_types.go line 418,
    `+kubebuilder:subresource:scale:specpath=.spec.replicas,...,selectorpath=.status.hpaPodSelector`; the selector
    holds the leaders only: lines 383-387, set in pkg/controllers/leaderworkerset_controller.go lines 541-554 to
    leaderworkerset.sigs.k8s.io/name=<lws>, worker-index=0). A StatefulSet-mode group is two StatefulSets that no
    scale subresource resizes together. And the scaler owns spec.replicas only if the chart never renders it: helm
    patches a custom resource with a three-way JSON merge patch of the last release's manifest, the new one and the
    live object (helm/helm pkg/kube/client.go, createPatch: jsonmergepatch.CreateThreeWayJSONMergePatch for a kind
    its scheme does not know), so a rendered replicas resets the scaler's count at every upgrade, while a field in
    neither manifest keeps the live value; Argo CD likewise compares and syncs only the fields the manifests hold
    (argo-cd docs/user-guide/best_practices.md, "Leaving Room For Imperativeness": leave replicas out for an HPA)."""
    problems = []
    lws = {d["metadata"]["name"]: d for d in docs if d["kind"] == "LeaderWorkerSet"}
    for so in (d for d in docs if d["kind"] == "ScaledObject"):
        ref = so["spec"]["scaleTargetRef"]
        target = lws.get(ref["name"])
        if (ref.get("apiVersion"), ref.get("kind")) != ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet") or not target:
            problems.append(f"ScaledObject {so['metadata']['name']} scales {ref.get('kind')} {ref['name']}, no "
                            "LeaderWorkerSet of the release")
        elif "replicas" in target["spec"]:
            problems.append(f"LeaderWorkerSet {ref['name']} renders replicas, which every upgrade or sync would reset "
                            f"under ScaledObject {so['metadata']['name']}")
    return problems


def removed_groups_drain_first(docs: Docs) -> list[str]:
    """A group the scaler removes gets SIGTERM on every pod at once (the kubelet's pod termination:
    kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle, "Termination of Pods": preStop, then SIGTERM, all
    within terminationGracePeriodSeconds). vLLM 0.33 aborts its requests at SIGTERM unless --shutdown-timeout N
    gives them N seconds (vllm/config/vllm.py, shutdown_timeout; vllm/entrypoints/launchers/launcher.py,
    handle_shutdown: mode "abort" at 0, "drain" above), and a headless worker exits at SIGTERM (vllm/entrypoints/cli/
    serve.py, run_headless), ending its leader's requests. So under a ScaledObject, the leader's vLLM drains, every
    pod of the group is granted more than the drain, and each worker's vLLM waits for its leader in a preStop hook."""
    problems = []
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "ScaledObject"}
    for obj, role, template in pod_templates(docs):
        if obj["kind"] != "LeaderWorkerSet" or obj["metadata"]["name"] not in scaled:
            continue
        spec = template.get("spec", {})
        vllm = next((c for c in spec.get("containers") or [] if c["name"] == "vllm"), {})
        args = [str(a) for a in vllm.get("args") or []]
        drain = int(args[args.index("--shutdown-timeout") + 1]) if "--shutdown-timeout" in args else 0
        where = f"{obj['kind']} {obj['metadata']['name']} ({role})"
        if drain <= 0:
            problems.append(f"{where}: vLLM aborts its requests at SIGTERM (no --shutdown-timeout)")
        if int(spec.get("terminationGracePeriodSeconds", 30)) <= drain:
            problems.append(f"{where}: terminationGracePeriodSeconds does not outlast the {drain}s drain")
        if role == "worker" and "preStop" not in (vllm.get("lifecycle") or {}):
            problems.append(f"{where}: the worker stops with its leader's requests in flight (no preStop)")
    return problems


RULES: tuple[Callable[[Docs], list[str]], ...] = (
    lws_service_names_are_free, rdma_devices_can_be_opened, hooks_never_take_gpus, multus_networks_are_namespaced,
    statefulset_groups_restart_together, nothing_unauthenticated_on_the_node, routes_reach_a_service_port,
    dashboards_load_in_grafana, images_are_fully_qualified, groups_meet_after_their_downloads,
    disruption_budgets_select_only_scalable_pods, secrets_are_resolved_before_the_first_step,
    failed_downloads_hold_and_say_why, group_ports_closed_on_the_pod_network, pools_select_one_serving_pod_per_group,
    scalers_own_the_group_count, removed_groups_drain_first,
)


def problems(docs: Docs) -> list[str]:
    """Every problem every rule finds."""
    return [p for rule in RULES for p in rule(docs)]
