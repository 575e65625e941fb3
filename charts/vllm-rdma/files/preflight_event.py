"""Records the preflight's summary (nccl_allreduce.py --summary-file) as a Kubernetes Event on this pod, so that the
measured figure outlives the group: under LeaderWorkerSet a failed preflight recreates the group, and the pods, with
their termination messages, are deleted with it. The API server keeps an Event for its --event-ttl (one hour by
default) whether or not the pod it names still exists; `helm rdma verify` lists them by the release's labels.

    python3 preflight_event.py SUMMARY_FILE

Best-effort: whatever goes wrong (no token, no RBAC, no API server) is one line on stderr and exit 0; the preflight's
verdict never depends on it. Standard library only: the API server as a pod reaches it (in-cluster configuration,
kubernetes.io/docs/tasks/run-application/access-api-from-pod): https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT,
the service account's token and CA under /var/run/secrets/kubernetes.io/serviceaccount (the chart mounts them in the
preflight container only). POST /api/v1/namespaces/NS/events (core/v1 Event), as the kubelet records its own.
Settings (set by the chart): POD_NAME, POD_NAMESPACE, POD_UID, NODE_NAME (downward API), HELM_RDMA_EVENT_LABELS (the
release's selector labels, JSON), HELM_RDMA_GROUP (the group's index); HELM_RDMA_ACCOUNT_DIR replaces the token's
directory (tests).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from typing import Any

ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
COMPONENT = "helm-rdma-preflight"
# The annotation that carries the summary as nccl_allreduce.py wrote it: what verify reads
# (generator/helm_rdma/contract.py, PREFLIGHT_EVENT_ANNOTATION).
SUMMARY_ANNOTATION = "helm-rdma.io/preflight-summary"
REASONS = {"PASS": ("PreflightPassed", "Normal"), "WARN": ("PreflightBelowThreshold", "Warning"),
           "FAIL": ("PreflightFailed", "Warning")}
MESSAGE_LIMIT = 1024  # events.k8s.io/v1 note's limit; the core API keeps more, kubectl shows a line
TIMEOUT_SECONDS = 10


def message(summary: dict[str, Any], group: str) -> str:
    """One line for `kubectl get events`: the verdict, the figure against the threshold, and why."""
    text = (f"{summary.get('verdict')}: group {group}, {summary.get('nodes')} node(s), {summary.get('ranks')} ranks: "
            f"NCCL all-reduce bus bandwidth {float(summary.get('busbw_gbps') or 0):.1f} GB/s, threshold "
            f"{float(summary.get('threshold_gbps') or 0):.1f} GB/s, transport {summary.get('transport')}: "
            f"{summary.get('reason')}")
    return text[:MESSAGE_LIMIT]


def event(summary: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """The core/v1 Event of a preflight summary for the pod the environment names."""
    reason, kind = REASONS.get(str(summary.get("verdict")), ("PreflightFailed", "Warning"))
    pod, namespace = env["POD_NAME"], env["POD_NAMESPACE"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    involved = {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": namespace,
                "fieldPath": "spec.initContainers{preflight}"}
    if env.get("POD_UID"):
        involved["uid"] = env["POD_UID"]
    return {
        "apiVersion": "v1", "kind": "Event",
        # named as client-go names the events it records (tools/record/event.go, makeEvent: "%v.%x", name, nanoseconds)
        "metadata": {"name": f"{pod}.{time.time_ns():x}", "namespace": namespace,
                     "labels": json.loads(env.get("HELM_RDMA_EVENT_LABELS") or "{}"),
                     "annotations": {SUMMARY_ANNOTATION: json.dumps(summary, sort_keys=True)}},
        "involvedObject": involved, "reason": reason, "type": kind,
        "message": message(summary, env.get("HELM_RDMA_GROUP", "0")),
        "source": {"component": COMPONENT, **({"host": env["NODE_NAME"]} if env.get("NODE_NAME") else {})},
        "reportingComponent": COMPONENT, "reportingInstance": pod,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }


def post(body: dict[str, Any], env: dict[str, str], account_dir: str) -> str:
    """POST the Event to the API server with the pod's token; returns the created Event's name."""
    host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "443")
    host = f"[{host}]" if ":" in host else host
    with open(os.path.join(account_dir, "token"), encoding="utf-8") as f:
        token = f.read().strip()
    context = ssl.create_default_context(cafile=os.path.join(account_dir, "ca.crt"))
    namespace = body["metadata"]["namespace"]
    request = urllib.request.Request(
        f"https://{host}:{port}/api/v1/namespaces/{namespace}/events", data=json.dumps(body).encode(),
        method="POST", headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS, context=context) as answer:
        return str(json.loads(answer.read() or b"{}").get("metadata", {}).get("name", ""))


def status(error: urllib.error.HTTPError) -> str:
    """The message of the Status the API server answered with, else the HTTP reason."""
    try:
        return str(json.loads(error.read(65536))["message"])[:300]
    except (OSError, ValueError, KeyError, TypeError):
        return str(error.reason)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: preflight_event.py SUMMARY_FILE", file=sys.stderr)
        return 2
    env = dict(os.environ)
    try:
        with open(argv[0], encoding="utf-8") as f:
            summary = json.load(f)
        name = post(event(summary, env), env, env.get("HELM_RDMA_ACCOUNT_DIR", ACCOUNT_DIR))
    except urllib.error.HTTPError as e:
        print(f"helm-rdma: preflight: the result was not recorded as an Event (HTTP {e.code}: {status(e)}); "
              "it stays in this container's termination message", file=sys.stderr)
        return 0
    except (OSError, ValueError, KeyError) as e:
        print(f"helm-rdma: preflight: the result was not recorded as an Event ({type(e).__name__}: {e}); "
              "it stays in this container's termination message", file=sys.stderr)
        return 0
    print(f"helm-rdma: preflight: recorded as Event {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
