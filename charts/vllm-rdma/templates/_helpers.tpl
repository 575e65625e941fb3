{{/*
The name of the release's objects and of the app.kubernetes.io/name label: vllm-rdma, or nameOverride. Not the
chart's name: a generated chart is named after what it serves (Chart.yaml), while object names and selectors stay
the same from one generated chart to the next.
*/}}
{{- define "vllm-rdma.name" -}}
{{- default "vllm-rdma" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else release name (plus the chart name when the release
name does not contain it). Truncated to 52 characters: StatefulSet and LeaderWorkerSet pod names add suffixes.
*/}}
{{- define "vllm-rdma.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := include "vllm-rdma.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label (a label value ends with a letter or digit).
*/}}
{{- define "vllm-rdma.chart" -}}
{{- $label := printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{- regexReplaceAll "[-_.]+$" $label "" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "vllm-rdma.labels" -}}
helm.sh/chart: {{ include "vllm-rdma.chart" . }}
{{ include "vllm-rdma.podLabels" . }}
{{- end }}

{{/*
Labels of the serving pods: those of every object but helm.sh/chart. The chart's version changes with anything in
the chart (a README, a ServiceMonitor); in a pod template it would restart every group, and reload the model, for
changes that do not touch the pods.
*/}}
{{- define "vllm-rdma.podLabels" -}}
{{ include "vllm-rdma.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm-rdma.io/preset: {{ .Values.preset.name | quote }}
{{- end }}

{{/*
Selector labels: name and instance only.
*/}}
{{- define "vllm-rdma.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vllm-rdma.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The Service in front of the leaders' OpenAI API: FULLNAME-api. Never the LeaderWorkerSet's name (FULLNAME): the LWS
controller creates the headless Service that publishes LWS_LEADER_ADDRESS under that name only if no Service of that
name exists (kubernetes-sigs/lws pkg/utils/controller/controller_utils.go, CreateHeadlessServiceIfNotExists).
*/}}
{{- define "vllm-rdma.apiServiceName" -}}
{{- printf "%s-api" (include "vllm-rdma.fullname" .) }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "vllm-rdma.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vllm-rdma.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Role (and RoleBinding) that lets the serving pods' ServiceAccount create Events: the preflight records its figure
as one (files/preflight_event.py).
*/}}
{{- define "vllm-rdma.preflightEventsName" -}}
{{- printf "%s-preflight-events" (include "vllm-rdma.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The NCCL settings in force: the preset's and the user's, plus NCCL_DEBUG, NCCL_SOCKET_IFNAME and, in SR-IOV mode,
NCCL_IB_HCA=mlx5 (the VFs' names are not the host's). Returned as YAML; callers use fromYaml.
*/}}
{{- define "vllm-rdma.ncclSettings" -}}
{{- $s := dict }}
{{- range $k, $v := .Values.nccl.settings }}
{{- $_ := set $s $k (toString $v) }}
{{- end }}
{{- if .Values.nccl.debug }}
{{- $_ := set $s "NCCL_DEBUG" .Values.nccl.debug }}
{{- end }}
{{- if .Values.nccl.debugSubsys }}
{{- $_ := set $s "NCCL_DEBUG_SUBSYS" .Values.nccl.debugSubsys }}
{{- end }}
{{- if not (hasKey $s "NCCL_SOCKET_IFNAME") }}
{{- $_ := set $s "NCCL_SOCKET_IFNAME" .Values.network.interface }}
{{- end }}
{{- if eq .Values.rdma.mode "sriov" }}
{{- $_ := set $s "NCCL_IB_HCA" "mlx5" }}
{{- end }}
{{- toYaml $s }}
{{- end }}

{{/*
The value of a Kubernetes quantity (schema-checked: digits, an optional fraction and suffix), as a number.
*/}}
{{- define "vllm-rdma.quantity" -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $units := dict "" 1.0 "m" 0.001 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 "P" 1000000000000000.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 }}
{{- mulf (float64 $number) (get $units (trimPrefix $number .)) }}
{{- end }}

{{/*
Where a pod finds the weights: MOUNTPATH/ORG/NAME/REVISION, one directory per model and revision, so that releases
serving the same one share it (hostPath, pvc). A model.name that is a path is used as it is.
*/}}
{{- define "vllm-rdma.modelDir" -}}
{{- if hasPrefix "/" .Values.model.name }}
{{- .Values.model.name }}
{{- else }}
{{- printf "%s/%s/%s" (trimSuffix "/" .Values.model.storage.mountPath) .Values.model.name .Values.model.revision }}
{{- end }}
{{- end }}

{{/*
Where the download container finds a file of the node's root filesystem (the node's /etc/hostname), with a
hostPath model directory that the download fills: files/fetch_model.py refuses a model directory on the same
filesystem, the boot volume, unless model.storage.allowBootVolume. Empty otherwise.
*/}}
{{- define "vllm-rdma.bootVolumeProbe" -}}
{{- if and (eq .Values.model.storage.type "hostPath") (include "vllm-rdma.download" .) }}/helm-rdma/node-root-probe{{ end }}
{{- end }}

{{/*
Whether the download init container fills the model directory before vLLM starts.
*/}}
{{- define "vllm-rdma.download" -}}
{{- if and .Values.model.download.enabled (not (hasPrefix "/" .Values.model.name)) }}true{{ end }}
{{- end }}

{{/*
Whether each group's pods meet at a barrier after their downloads and before vLLM (every group of more than one
node): the NCCL preflight when it runs, else a barrier of its own (vllm-rdma.barrierContainer, or in StatefulSet mode
the serving container's HELM_RDMA_BARRIER). vLLM gives its peers distributed.timeoutSeconds to meet; downloads can
finish much further apart than that.
*/}}
{{- define "vllm-rdma.groupBarrier" -}}
{{- if gt (int .Values.nodes) 1 }}true{{ end }}
{{- end }}

{{/*
The model argument of vllm serve: the downloaded directory, or (download off) the repository id, which vLLM then
fetches into HF_HOME itself.
*/}}
{{- define "vllm-rdma.modelArg" -}}
{{- if or (include "vllm-rdma.download" .) (hasPrefix "/" .Values.model.name) }}
{{- include "vllm-rdma.modelDir" . }}
{{- else }}
{{- .Values.model.name }}
{{- end }}
{{- end }}

{{/*
Arguments of vllm serve common to every pod; the entrypoint adds the multi-node ones for the pod's role.
*/}}
{{- define "vllm-rdma.serveArgs" -}}
- {{ include "vllm-rdma.modelArg" . | quote }}
{{- if not (or (include "vllm-rdma.download" .) (hasPrefix "/" .Values.model.name)) }}
- "--revision"
- {{ .Values.model.revision | quote }}
{{- end }}
- "--served-model-name"
- {{ .Values.model.servedName | quote }}
- "--tensor-parallel-size"
- {{ .Values.vllm.tensorParallelSize | quote }}
- "--pipeline-parallel-size"
- {{ .Values.vllm.pipelineParallelSize | quote }}
- "--max-model-len"
- {{ .Values.vllm.maxModelLen | quote }}
- "--gpu-memory-utilization"
- {{ .Values.vllm.gpuMemoryUtilization | quote }}
{{- if and (gt (int .Values.nodes) 1) (eq .Values.distributed.backend "native") }}
{{- /* How long vLLM's peers may take to meet, and every collective's timeout (vllm/config/parallel.py,
distributed_timeout_seconds; vllm/distributed/parallel_state.py init_distributed_environment): the group's
barrier lined the nodes up after their downloads, so it covers only their load-time skew. It reaches
init_process_group only: each GroupCoordinator's gloo (CPU) group is made with new_group(timeout=gloo_comm_timeout),
None unless vLLM's fault tolerance is on (which also makes NCCL non-blocking), so torch's gloo default, 30 min, holds;
vLLM has no flag for it. */}}
- "--distributed-timeout-seconds"
- {{ .Values.distributed.timeoutSeconds | quote }}
{{- end }}
- "--port"
- {{ .Values.vllm.port | quote }}
{{- if .Values.autoscaling.enabled }}
{{- /* A group the scaler removes finishes its in-flight requests first (vllm/config/vllm.py shutdown_timeout,
0.33: 0 aborts them at SIGTERM, N drains for up to N seconds). */}}
- "--shutdown-timeout"
- {{ .Values.autoscaling.drainSeconds | quote }}
{{- end }}
{{- if .Values.api.keySecret.name }}
- "--middleware"
- "api_auth.ApiKeyMiddleware"
{{- end }}
{{- with .Values.vllm.lora }}
{{- if .enabled }}
- "--enable-lora"
- "--max-lora-rank"
- {{ .maxRank | quote }}
- "--max-loras"
- {{ .maxLoras | quote }}
{{- if .adapters }}
- "--lora-modules"
{{- range .adapters }}
- {{ printf "%s=%s" .name (include "vllm-rdma.loraSource" (dict "root" $ "adapter" .)) | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- range .Values.vllm.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
The Kueue label of a workload (kueue.queueName): Kueue admits a LeaderWorkerSet group by group, and each StatefulSet
as one workload, by the kueue.x-k8s.io/queue-name label on the LeaderWorkerSet or StatefulSet itself
(kubernetes-sigs/kueue site/content/en/docs/tasks/run/leaderworkerset.md and statefulset.md, "Queue selection").
*/}}
{{- define "vllm-rdma.kueueLabel" -}}
{{- with .Values.kueue.queueName }}
kueue.x-k8s.io/queue-name: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
A Prometheus regular expression (fully anchored) matching the names of the serving pods: a LeaderWorkerSet's
FULLNAME-GROUP (leaders) and FULLNAME-GROUP-INDEX (workers); the StatefulSets' FULLNAME-leader-N and FULLNAME-worker-N.
*/}}
{{- define "vllm-rdma.servingPodPattern" -}}
{{- $fullname := include "vllm-rdma.fullname" . | replace "." "\\." }}
{{- if eq .Values.workload.kind "LeaderWorkerSet" }}
{{- printf "%s-[0-9]+(-[0-9]+)?" $fullname }}
{{- else }}
{{- printf "%s-(leader|worker)-[0-9]+" $fullname }}
{{- end }}
{{- end }}
