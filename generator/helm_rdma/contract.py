"""The chart's contract with the Python side: the labels, container names and lines the templates and the pods'
scripts give the objects Python reads. Each is written here once, and nowhere else in Python;
tests/test_contract.py renders the chart and fails when a template and this file disagree.
"""

from __future__ import annotations

# The name of a release's objects without nameOverride (templates/_helpers.tpl, vllm-rdma.name), and the length
# vllm-rdma.fullname truncates the full name to (pod names of StatefulSets and LeaderWorkerSets add suffixes).
NAME = "vllm-rdma"
FULLNAME_MAX = 52
# Labels on every object of a release (templates/_helpers.tpl, vllm-rdma.selectorLabels / vllm-rdma.labels).
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
# app.kubernetes.io/component of the serving pods, of the release ConfigMap (templates/configmap-release.yaml).
LEADER, WORKER = "leader", "worker"
SERVING_COMPONENTS = (LEADER, WORKER)
RELEASE_COMPONENT = "release"
# Set by the LeaderWorkerSet controller on each pod of a group (kubernetes-sigs/lws api/leaderworkerset/v1).
LWS_GROUP_LABEL = "leaderworkerset.sigs.k8s.io/group-index"
# Containers of a serving pod (templates/_containers.tpl).
SERVING_CONTAINER = "vllm"
PREFLIGHT_CONTAINER = "preflight"
PREFLIGHT_VERDICT_CONTAINER = "preflight-verdict"
BARRIER_CONTAINER = "group-barrier"
DOWNLOAD_CONTAINER = "download-model"
PORT_GUARD_CONTAINER = "port-guard"
# The line rank 0 of the preflight prints (files/nccl_allreduce.py, RESULT_PREFIX), then a JSON object.
PREFLIGHT_RESULT_PREFIX = "helm-rdma preflight result: "
# The annotation of the Event the preflight records (files/preflight_event.py, SUMMARY_ANNOTATION): its summary, JSON.
PREFLIGHT_EVENT_ANNOTATION = "helm-rdma.io/preflight-summary"
# The helm test templates, as the release ConfigMap carries them (templates/configmap-release.yaml).
TEST_TEMPLATES = ("job-test-rdma.yaml", "job-test-api.yaml")
# How vllm-rdma.validateValues begins its one failure message (templates/_rules.tpl).
VALIDATE_MARKER = "vllm-rdma: the values do not fit together:"
# Values that may hold a credential, which the release ConfigMap leaves out and names in its valuesLeftOut
# (templates/configmap-release.yaml): never printed either.
CREDENTIAL_VALUES = ("clusterNetwork.oke.cloudInit", "clusterNetwork.oke.nodePackageRepository",
                     "clusterNetwork.sshAuthorizedKeys")
