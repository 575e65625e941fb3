"""Doubts about what is served around the model, before anything is applied: the routes to the API (ingress,
gateway), monitoring, LoRA adapters and the escape hatches (sidecars, Kueue, schedulers). Part of `helm-rdma doctor`
(see doctor.value_findings); what the chart refuses outright (names, mounts, security contexts, limits, routes without a
Gateway, adapters that cannot be served) is in the chart's rules, templates/_rules.tpl."""

from __future__ import annotations

from typing import Any

from helm_rdma.checks.finding import Finding


def serving_findings(values: dict[str, Any]) -> list[Finding]:
    """Every doubt about the routes, monitoring, LoRA and the escape hatches of ``values``."""
    return (_routes(values) + _parents(values) + _tls_hosts(values) + _monitoring(values) + _lora(values)
            + _scheduling(values) + _root(values) + _read_only(values))


def _routes(v: dict[str, Any]) -> list[Finding]:
    found = []
    ingress, gateway = v["ingress"], v["gateway"]
    keyless = not v["api"]["keySecret"]["name"]
    for key, route in (("ingress", ingress), ("gateway", gateway)):
        if not route["enabled"]:
            continue
        if keyless:
            found.append(Finding("warning", f"{key}.enabled", "the route publishes the OpenAI API with no key: "
                                 "anyone who reaches it can use the model",
                                 "kubectl create secret generic vllm-api-key --from-literal=api-key=$(openssl rand "
                                 "-hex 32), then set api.keySecret.name=vllm-api-key (clients send Authorization: "
                                 "Bearer KEY)"))
        if route["path"] == "/":
            found.append(Finding("warning", f"{key}.path", "/ routes /health and /metrics too, which stay open "
                                 "without the API key", "route /v1 (the OpenAI API) unless clients need more"))
    if gateway["enabled"] and not gateway["timeout"]:
        found.append(Finding("warning", "gateway.timeout", "is empty, so the Gateway's own request timeout applies "
                             "and may cut streamed completions", "set gateway.timeout=1h (Gateway API v1.2+)"))
    if ingress["enabled"]:
        if not ingress["tls"]:
            found.append(Finding("warning", "ingress.tls", "is empty: prompts, completions and the API key cross "
                                 "the network unencrypted", "name a kubernetes.io/tls Secret: "
                                 "ingress.tls[0].secretName=NAME, ingress.tls[0].hosts[0]=HOST"))
        if ingress["className"] != "nginx":
            found.append(Finding("warning", "ingress.className", f"is {ingress['className'] or 'empty'}: the chart "
                                 "sets the streaming timeouts for ingress-nginx only, and other controllers may cut "
                                 f"a response after their default (ingress-nginx: 60 s) instead of "
                                 f"ingress.timeoutSeconds ({ingress['timeoutSeconds']} s)",
                                 "set your controller's timeout annotations under ingress.annotations, and make "
                                 "sure it passes the Authorization header on"))
    return found


def _parents(v: dict[str, Any]) -> list[Finding]:
    """The HTTPRoute's two CEL rules on parentRefs, which helm's schema pass does not run (gateway-api
    apis/v1/shared_types.go, CommonRouteSpec.ParentRefs): refs to one parent (group, kind, namespace, name; an empty
    namespace or sectionName counts as absent) either all name a sectionName or none does, and no two name the same."""
    gateway = v["gateway"]
    if not gateway["enabled"]:
        return []
    seen: dict[tuple[str, ...], list[str]] = {}
    for ref in gateway["parentRefs"]:
        parent = tuple(str(ref.get(k) or "") for k in ("group", "kind", "namespace", "name"))
        seen.setdefault(parent, []).append(str(ref.get("sectionName") or ""))
    clashes = [parent[-1] for parent, sections in seen.items()
               if len(sections) > 1 and ("" in sections or len(set(sections)) < len(sections))]
    if not clashes:
        return []
    return [Finding("error", "gateway.parentRefs", f"name the parent {', '.join(clashes)} more than once without "
                    "a sectionName each, all different, so the API server refuses the HTTPRoute (Gateway API: "
                    "sectionName must be specified, and unique, when parentRefs includes 2 or more references to "
                    "the same parent)", "give each reference to that Gateway its listener's sectionName, or keep one")]


def _tls_hosts(v: dict[str, Any]) -> list[Finding]:
    ingress = v["ingress"]
    if not ingress["enabled"] or not ingress["tls"]:
        return []
    covered = {h for t in ingress["tls"] for h in t.get("hosts") or []}
    bare = [h for h in ingress["hosts"] if h not in covered]
    if not bare:
        return []
    return [Finding("warning", "ingress.tls", f"covers no certificate for {', '.join(bare)}, so the controller "
                    "serves its default certificate there and clients refuse it",
                    "list every host of ingress.hosts under ingress.tls[].hosts")]


def _read_only(v: dict[str, Any]) -> list[Finding]:
    """vLLM writes its compile and kernel caches under $HOME/.cache (/root/.cache in its images: vllm envs.py
    VLLM_CACHE_ROOT, Triton's and torch.compile's caches) and temporary files under /tmp, which the chart mounts
    writable in the preflight only."""
    if not (v.get("securityContext") or {}).get("readOnlyRootFilesystem"):
        return []
    mounted = [m.get("mountPath", "") for m in v["extraVolumeMounts"]]
    missing = [p for p in ("/tmp", "/root/.cache") if not any(p == m or p.startswith(m.rstrip("/") + "/")
                                                               for m in mounted)]
    if not missing:
        return []
    return [Finding("warning", "securityContext.readOnlyRootFilesystem", f"is true, but vLLM writes under "
                    f"{' and '.join(missing)} (caches and temporary files), which are not mounted writable",
                    "mount emptyDir volumes there (extraVolumes and extraVolumeMounts), or drop it")]


def _root(v: dict[str, Any]) -> list[Finding]:
    """vLLM's images run as root (vllm-project/vllm docker/Dockerfile sets no USER): runAsNonRoot without a
    runAsUser makes the kubelet refuse to start the containers (CreateContainerConfigError)."""
    pod, container = v.get("podSecurityContext") or {}, v.get("securityContext") or {}
    nonroot = container.get("runAsNonRoot", pod.get("runAsNonRoot"))
    if not nonroot or container.get("runAsUser") or pod.get("runAsUser"):
        return []
    key = "securityContext.runAsNonRoot" if "runAsNonRoot" in container else "podSecurityContext.runAsNonRoot"
    return [Finding("warning", key, "is true with no runAsUser, and vLLM's images run as root (no USER in their "
                    "Dockerfile), so the kubelet refuses to start the containers (CreateContainerConfigError)",
                    "set runAsUser (and an image that runs as that user), or drop runAsNonRoot")]


def _monitoring(v: dict[str, Any]) -> list[Finding]:
    mon = v["monitoring"]
    if mon["serviceMonitor"]["enabled"]:
        return []
    return [Finding("warning", f"monitoring.{part}.enabled", f"the {what} read vLLM's metrics, which no "
                    "ServiceMonitor of this release scrapes", "set monitoring.serviceMonitor.enabled=true, unless "
                    "your Prometheus scrapes the API Service's /metrics itself")
            for part, what in (("rules", "alerts"), ("dashboard", "dashboard's panels")) if mon[part]["enabled"]]


def _lora(v: dict[str, Any]) -> list[Finding]:
    download = v["model"]["download"]["enabled"]
    return [Finding("warning", f"vllm.lora.adapters[{i}].revision", "is ignored with model.download.enabled=false: "
                    "vLLM fetches an adapter's latest revision itself", "turn model.download back on, or drop the "
                    "revision")
            for i, adapter in enumerate(v["vllm"]["lora"]["adapters"])
            if adapter.get("repo") and adapter.get("revision") and not download]


def _scheduling(v: dict[str, Any]) -> list[Finding]:
    found = []
    sts = v["workload"]["kind"] == "StatefulSet"
    if v["kueue"]["queueName"] and sts and v["nodes"] > 1:
        found.append(Finding("warning", "kueue.queueName", "Kueue admits each StatefulSet as one independent "
                             "workload, so the leader and worker StatefulSets of a group may be admitted apart "
                             "(kueue docs: tasks/run/statefulset)", "use workload.kind=LeaderWorkerSet, which "
                             "Kueue admits group by group"))
    if v["schedulerName"] == "volcano":
        fix = ("use workload.kind=LeaderWorkerSet and run" if sts else "run") + (
            " the LWS controller (v0.7+) with gangSchedulingManagement.schedulerProvider=volcano, which creates a "
            "PodGroup per group")
        found.append(Finding("warning", "schedulerName", "Volcano gang-schedules pods of one PodGroup, which the "
                             "chart does not create" + (" (StatefulSets have no controller that does)" if sts
                                                        else ""), fix))
    if v["extraContainers"] and not sts and v["nodes"] > 1:
        found.append(Finding("warning", "extraContainers", "under LeaderWorkerSet (RecreateGroupOnPodRestart) a "
                             "restart of any container, a sidecar's included, restarts the whole group and reloads "
                             "the model", "keep sidecars that cannot fail, or give them no liveness probe"))
    return found
