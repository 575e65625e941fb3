"""Checks of what is served around the model before anything is applied: the routes to the API (ingress, gateway),
monitoring, LoRA adapters and the escape hatches (security contexts, limits, sidecars, Kueue, schedulers). Part of
`helm-rdma doctor` (see doctor.diagnose). The chart's validateValues refuses the same errors when plain helm renders."""

from __future__ import annotations

from typing import Any

from .doctor import Finding, quantity

# Kubernetes refuses a pod with hostNetwork that sets a namespaced network sysctl (pkg/apis/core/validation/
# validation.go, validateSysctls: "not allowed with host net enabled").
NET_SYSCTL = "net."


def serving_findings(values: dict[str, Any]) -> list[Finding]:
    """Every finding about the routes, monitoring, LoRA and the escape hatches of ``values``."""
    return (_routes(values) + _monitoring(values) + _lora(values) + _security(values) + _limits(values)
            + _scheduling(values))


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
    if gateway["enabled"] and not gateway["parentRefs"]:
        found.append(Finding("error", "gateway.parentRefs", "is empty: an HTTPRoute attached to no Gateway serves "
                             "nothing", "name your Gateway: gateway.parentRefs[0].name=NAME (and .namespace)"))
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


def _monitoring(v: dict[str, Any]) -> list[Finding]:
    mon = v["monitoring"]
    if mon["serviceMonitor"]["enabled"]:
        return []
    return [Finding("warning", f"monitoring.{part}.enabled", f"the {what} read vLLM's metrics, which no "
                    "ServiceMonitor of this release scrapes", "set monitoring.serviceMonitor.enabled=true, unless "
                    "your Prometheus scrapes the API Service's /metrics itself")
            for part, what in (("rules", "alerts"), ("dashboard", "dashboard's panels")) if mon[part]["enabled"]]


def _lora(v: dict[str, Any]) -> list[Finding]:
    lora, model = v["vllm"]["lora"], v["model"]
    adapters = lora["adapters"]
    found = []
    if adapters and not lora["enabled"]:
        found.append(Finding("error", "vllm.lora.enabled", "is false but vllm.lora.adapters lists adapters",
                             "set vllm.lora.enabled=true, or remove the adapters"))
    names = [a.get("name") for a in adapters]
    for name in sorted({n for n in names if names.count(n) > 1}):
        found.append(Finding("error", "vllm.lora.adapters", f"name {name} is given twice; clients pick an adapter "
                             "by its name", "give each adapter its own name"))
    if model["servedName"] in names:
        found.append(Finding("error", "vllm.lora.adapters", f"an adapter is named {model['servedName']}, as the "
                             "base model (model.servedName)", "rename the adapter"))
    mounts = [model["storage"]["mountPath"], *(m.get("mountPath", "") for m in v["extraVolumeMounts"])]
    for i, adapter in enumerate(adapters):
        path = adapter.get("path")
        if path and not any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts):
            found.append(Finding("error", f"vllm.lora.adapters[{i}].path", f"{path} is on no volume of the vllm "
                                 f"container ({', '.join(mounts)})", "mount the adapter's volume with extraVolumes "
                                 "and extraVolumeMounts, or put it under model.storage.mountPath"))
        if adapter.get("repo") and adapter.get("revision") and not model["download"]["enabled"]:
            found.append(Finding("warning", f"vllm.lora.adapters[{i}].revision", "is ignored with "
                                 "model.download.enabled=false: vLLM fetches an adapter's latest revision itself",
                                 "turn model.download back on, or drop the revision"))
    return found


def _security(v: dict[str, Any]) -> list[Finding]:
    sc, rdma = v["securityContext"], v["rdma"]
    privileged = rdma["privileged"]
    if privileged is None:
        privileged = rdma["mode"] == "hostNetwork" and not rdma["devicePluginResource"]
    found = []
    if privileged and sc.get("privileged") is False:
        found.append(Finding("error", "securityContext.privileged", "is false, but the RDMA containers run "
                             "privileged here (the node's /dev/infiniband is opened only so)",
                             "drop it, or run unprivileged with a device plugin: rdma.privileged=false and "
                             "rdma.devicePluginResource"))
    if sc.get("allowPrivilegeEscalation") is False and (privileged or sc.get("privileged")):
        found.append(Finding("error", "securityContext.allowPrivilegeEscalation", "is false, but the RDMA containers "
                             "run privileged, and Kubernetes refuses both together", "drop it"))
    sysctls = (v["podSecurityContext"].get("sysctls") or []) if rdma["mode"] == "hostNetwork" else []
    for s in sysctls:
        if str((s or {}).get("name", "")).startswith(NET_SYSCTL):
            found.append(Finding("error", "podSecurityContext.sysctls", f"{s['name']} is a network sysctl, which "
                                 "Kubernetes refuses for a hostNetwork pod (it would change the node's)",
                                 "set it on the nodes instead, or use rdma.mode=sriov"))
    return found


def _limits(v: dict[str, Any]) -> list[Finding]:
    res = v["resources"]
    found = []
    for name in ("cpu", "memory"):
        limit = res["limits"].get(name)
        low, high = quantity(str(limit)) if limit else None, quantity(str(res[name]))
        if low is not None and high is not None and low < high:
            found.append(Finding("error", f"resources.limits.{name}", f"{limit} is below its request, "
                                 f"resources.{name} ({res[name]}), which Kubernetes refuses",
                                 f"raise it to at least {res[name]} (equal: Guaranteed QoS)"))
    return found


def _scheduling(v: dict[str, Any]) -> list[Finding]:
    found = []
    sts = v["workload"]["kind"] == "StatefulSet"
    if v["kueue"]["queueName"] and sts and v["nodes"] > 1:
        found.append(Finding("warning", "kueue.queueName", "Kueue admits each StatefulSet as one independent "
                             "workload, so the leader and worker StatefulSets of a group may be admitted apart "
                             "(kueue docs: tasks/run/statefulset)", "use workload.kind=LeaderWorkerSet, which "
                             "Kueue admits group by group"))
    if v["schedulerName"] == "volcano":
        fix = ("use workload.kind=LeaderWorkerSet and run the LWS controller (v0.7+) with "
               "gangSchedulingManagement.schedulerProvider=volcano, which creates a PodGroup per group")
        found.append(Finding("warning", "schedulerName", "Volcano gang-schedules pods of one PodGroup, which the "
                             "chart does not create" + (" (StatefulSets have no controller that does)" if sts
                                                        else ""), fix))
    if v["extraContainers"] and not sts and v["nodes"] > 1:
        found.append(Finding("warning", "extraContainers", "under LeaderWorkerSet (RecreateGroupOnPodRestart) a "
                             "restart of any container, a sidecar's included, restarts the whole group and reloads "
                             "the model", "keep sidecars that cannot fail, or give them no liveness probe"))
    return found
