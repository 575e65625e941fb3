{{/*
Named facts the templates and the rules share: each renders "true" or nothing, so `if include ...` reads it.
Python mirrors three of them (checks/facts.py: groupWatch, ociHooks, portGuard); tests/test_rules.py holds each mirror against
its helper over the render matrix.
*/}}

{{/*
Whether the node's /dev/infiniband is mounted: hostNetwork mode without a device plugin (which grants and mounts the
devices itself).
*/}}
{{- define "vllm-rdma.hostDevices" -}}
{{- $rdma := .Values.rdma }}
{{- if and (eq (toString $rdma.mode) "hostNetwork") (empty $rdma.devicePluginResource) }}true{{ end }}
{{- end }}

{{/*
Whether the RDMA containers run privileged: rdma.privileged, or when that is null, exactly in hostNetwork mode without
rdma.devicePluginResource. A hostPath /dev/infiniband adds no device-cgroup permission: an unprivileged container sees
the device nodes but cannot open uverbs* (runc, crun and CRI-O allow only default devices and those a device plugin
grants), so NCCL falls back to sockets. Source: oracle-quickstart/oci-hpc-oke
docs/using-rdma-network-interfaces-in-manifests.md (every RDMA manifest runs privileged).
*/}}
{{- define "vllm-rdma.privileged" -}}
{{- $privileged := .Values.rdma.privileged }}
{{- if kindIs "invalid" $privileged }}
{{- include "vllm-rdma.hostDevices" . }}
{{- else if $privileged }}true
{{- end }}
{{- end }}

{{/*
Whether the pods of a group watch each other and restart together (StatefulSet mode; LeaderWorkerSet's
RecreateGroupOnPodRestart does it there): vLLM's headless workers block forever when the leader goes away (vllm
v1/executor/multiproc_executor.py, dequeue(indefinite=True)), and a new leader waits for workers that never rejoin.
*/}}
{{- define "vllm-rdma.groupWatch" -}}
{{- if and (eq (toString .Values.workload.kind) "StatefulSet") (gt (float64 .Values.nodes) 1.0) }}true{{ end }}
{{- end }}

{{/*
Whether each group's pods run the NCCL preflight: enabled, and a group spans more than one node (one node has no RDMA
path to test).
*/}}
{{- define "vllm-rdma.preflight" -}}
{{- if and .Values.verify.preflight.enabled (gt (float64 .Values.nodes) 1.0) }}true{{ end }}
{{- end }}

{{/*
Whether the preflight is an init container (LeaderWorkerSet: a group restarts as new pods, so init containers run on
every group start). In StatefulSet mode the pods restart their containers in place, and init containers do not run
again on a container restart: there the preflight runs in the serving container, under the group watch, before vLLM,
so every re-formed group measures again on all its nodes.
*/}}
{{- define "vllm-rdma.preflightInit" -}}
{{- if and (include "vllm-rdma.preflight" .) (eq (toString .Values.workload.kind) "LeaderWorkerSet") }}true{{ end }}
{{- end }}

{{/*
Whether any OCI hook runs: provisioning before install/upgrade, or deprovisioning on uninstall (the hooks'
ServiceAccount, RBAC and values Secret exist exactly then).
*/}}
{{- define "vllm-rdma.ociHooks" -}}
{{- if or .Values.clusterNetwork.provision .Values.clusterNetwork.deleteOnUninstall }}true{{ end }}
{{- end }}

{{/*
Whether pods select nodes by the cluster-network label: placement.clusterNetworkLabel.enabled, and when that is null,
whether this release provisions the nodes (and so labels them).
*/}}
{{- define "vllm-rdma.clusterNetworkLabelEnabled" -}}
{{- $enabled := .Values.placement.clusterNetworkLabel.enabled }}
{{- if kindIs "invalid" $enabled }}
{{- if .Values.clusterNetwork.provision }}true{{ end }}
{{- else if $enabled }}true
{{- end }}
{{- end }}

{{/*
Whether each serving pod runs the port guard (files/port_guard.py, vllm-rdma.portGuardContainer): hostNetwork with
more than one node, where the group's own ports listen on the nodes' addresses (one node has no peers to listen for),
unless distributed.portGuard.enabled is false.
*/}}
{{- define "vllm-rdma.portGuard" -}}
{{- if and (eq (toString .Values.rdma.mode) "hostNetwork") (gt (float64 .Values.nodes) 1.0) .Values.distributed.portGuard.enabled }}true{{ end }}
{{- end }}
