{{/*
Whether the preflight runs: enabled, and a group spans more than one node (one node has no RDMA path to test).
*/}}
{{- define "vllm-rdma.preflight" -}}
{{- if and .Values.verify.preflight.enabled (gt (int .Values.nodes) 1) }}true{{ end }}
{{- end }}

{{/*
Name of the preflight's Job, ServiceAccount, Role, ConfigMap and headless Service.
*/}}
{{- define "vllm-rdma.preflightName" -}}
{{- printf "%s-preflight" (include "vllm-rdma.fullname" .) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/*
Hook annotations of the preflight's objects: (dict "weight" "-8" "delete" "before-hook-creation").
*/}}
{{- define "vllm-rdma.preflightHook" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: {{ .delete }}
{{- end }}
