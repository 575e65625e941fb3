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
Cross-field checks that the schema cannot express. Fails once, listing every problem and the keys to change.
*/}}
{{- define "vllm-rdma.validateValues" -}}
{{- $v := .Values }}
{{- $problems := list }}
{{- $gpus := mul $v.nodes $v.preset.gpusPerNode | int }}
{{- $tpxpp := mul $v.vllm.tensorParallelSize $v.vllm.pipelineParallelSize | int }}
{{- if ne $gpus $tpxpp }}
{{- $problems = append $problems (printf "vllm.tensorParallelSize (%d) x vllm.pipelineParallelSize (%d) = %d, but a group has nodes (%d) x preset.gpusPerNode (%d) = %d GPUs: make them equal (usually TP = %d, PP = %d)" (int $v.vllm.tensorParallelSize) (int $v.vllm.pipelineParallelSize) $tpxpp (int $v.nodes) (int $v.preset.gpusPerNode) $gpus (int $v.preset.gpusPerNode) (int $v.nodes)) }}
{{- end }}
{{- if and (eq $v.preset.gpuVendor "nvidia") (ne $v.preset.gpuResource "nvidia.com/gpu") }}
{{- $problems = append $problems "preset.gpuVendor is nvidia but preset.gpuResource is not nvidia.com/gpu: set preset.gpuResource=nvidia.com/gpu" }}
{{- end }}
{{- if eq $v.preset.gpuVendor "amd" }}
{{- if ne $v.preset.gpuResource "amd.com/gpu" }}
{{- $problems = append $problems "preset.gpuVendor is amd but preset.gpuResource is not amd.com/gpu: set preset.gpuResource=amd.com/gpu" }}
{{- end }}
{{- if ne $v.nccl.configFile "/etc/rccl.conf" }}
{{- $problems = append $problems "preset.gpuVendor is amd: RCCL reads /etc/rccl.conf, set nccl.configFile=/etc/rccl.conf" }}
{{- end }}
{{- else if ne $v.nccl.configFile "/etc/nccl.conf" }}
{{- $problems = append $problems "preset.gpuVendor is nvidia: NCCL reads /etc/nccl.conf, set nccl.configFile=/etc/nccl.conf" }}
{{- end }}
{{- if eq $v.distributed.backend "ray" }}
{{- $tag := $v.image.tag | trimPrefix "v" }}
{{- if and (eq $v.image.repository "vllm/vllm-openai" "docker.io/vllm/vllm-openai") (regexMatch "^[0-9]+\\.[0-9]+\\.[0-9]+" $tag) }}
{{- if semverCompare ">=0.18.0-0" (regexFind "^[0-9]+\\.[0-9]+\\.[0-9]+" $tag) }}
{{- $problems = append $problems (printf "distributed.backend is ray but image %s:%s ships no Ray (stock vLLM images dropped it from v0.18): set image.tag=v0.17.1, use an image with Ray, or set distributed.backend=native" $v.image.repository $v.image.tag) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (eq $v.model.storage.type "pvc") (not $v.model.storage.claimName) }}
{{- $problems = append $problems "model.storage.type is pvc but model.storage.claimName is empty: name an existing ReadWriteMany/ReadOnlyMany claim" }}
{{- end }}
{{- if eq $v.rdma.mode "hostNetwork" }}
{{- $ports := list (int $v.vllm.port) (int $v.distributed.masterPort) }}
{{- if eq $v.distributed.backend "ray" }}
{{- $ports = concat $ports (list (int $v.distributed.ray.port) (int $v.distributed.ray.dashboardPort) (int $v.distributed.ray.clientPort)) }}
{{- end }}
{{- if include "vllm-rdma.groupWatch" . }}
{{- $ports = append $ports (int $v.distributed.groupWatchPort) }}
{{- end }}
{{- if $v.api.keySecret.name }}
{{- $ports = append $ports (int $v.api.internalPort) }}
{{- end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- $problems = append $problems (printf "under hostNetwork every port binds on the node, but vllm.port, api.internalPort, distributed.masterPort, distributed.groupWatchPort and the Ray ports repeat one (%s): make them distinct" (join ", " $ports)) }}
{{- end }}
{{- if and (eq (toString $v.rdma.privileged) "false") (not $v.rdma.devicePluginResource) }}
{{- $problems = append $problems "rdma.privileged is false in hostNetwork mode without rdma.devicePluginResource: an unprivileged container cannot open the node's /dev/infiniband devices and NCCL falls back to TCP sockets: set rdma.devicePluginResource (a device plugin that grants the RDMA devices) or leave rdma.privileged null" }}
{{- end }}
{{- if and (eq $v.distributed.backend "ray") (not $v.distributed.ray.authTokenSecret.name) (not $v.distributed.ray.allowUnauthenticated) }}
{{- $problems = append $problems "distributed.backend is ray under hostNetwork without distributed.ray.authTokenSecret.name: Ray's ports would listen on the node's VCN address without authentication, and anyone who reaches them can run code in the pods: name a Secret with a token (Ray 2.52+), or set distributed.ray.allowUnauthenticated=true where OCI security rules keep the ports closed" }}
{{- end }}
{{- end }}
{{- $cn := $v.clusterNetwork }}
{{- if or $cn.provision $cn.deleteOnUninstall }}
{{- range $key := list "compartmentId" "availabilityDomain" "subnetId" "imageId" }}
{{- if and (not (get $cn $key)) (or $cn.provision (eq $key "compartmentId")) }}
{{- $problems = append $problems (printf "clusterNetwork.%s is empty but provisioning is on: set it (or clusterNetwork.provision=false)" $key) }}
{{- end }}
{{- end }}
{{- if and (eq $cn.auth "apiKey") (not $cn.apiKeySecret) }}
{{- $problems = append $problems "clusterNetwork.auth is apiKey but clusterNetwork.apiKeySecret is empty: name a Secret with config and oci_api_key.pem" }}
{{- end }}
{{- end }}
{{- $fullname := include "vllm-rdma.fullname" . }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname) }}
{{- $problems = append $problems (printf "the chart names its Services %q (from the release name %q, nameOverride and fullnameOverride), but a Service name must be lower-case letters, digits and '-' starting with a letter: choose such a release name, or set fullnameOverride" $fullname .Release.Name) }}
{{- end }}
{{- $mounts := list "/dev/shm" "/opt/helm-rdma" "/tmp" $v.nccl.configFile $v.model.storage.mountPath }}
{{- if eq $v.rdma.mode "hostNetwork" }}
{{- $mounts = append $mounts $v.rdma.devicePath }}
{{- end }}
{{- if ne (len $mounts) (len (uniq $mounts)) }}
{{- $problems = append $problems (printf "model.storage.mountPath (%s) and rdma.devicePath (%s) must differ from each other and from the chart's own mounts /dev/shm, /opt/helm-rdma, /tmp and %s: choose another path" $v.model.storage.mountPath $v.rdma.devicePath $v.nccl.configFile) }}
{{- end }}
{{- $label := $v.placement.clusterNetworkLabel }}
{{- if and (include "vllm-rdma.clusterNetworkLabelEnabled" .) (hasKey $v.placement.nodeSelector $label.key) }}
{{- $problems = append $problems (printf "placement.nodeSelector repeats the key %q of placement.clusterNetworkLabel: remove it from one of them" $label.key) }}
{{- end }}
{{- if and (eq $v.rdma.mode "sriov") (eq $v.rdma.sriov.resourceName $v.preset.gpuResource) }}
{{- $problems = append $problems "rdma.sriov.resourceName equals preset.gpuResource: name the VFs' own resource (nvidia.com/rdma-vf)" }}
{{- end }}
{{- $problems = concat $problems (include "vllm-rdma.servingProblems" . | fromYamlArray) }}
{{- if $problems }}
{{- fail (printf "\n\nvllm-rdma: the values do not fit together:\n  - %s\n" (join "\n  - " $problems)) }}
{{- end }}
{{- end }}

{{/*
validateValues' checks of what is served around the model and of the escape hatches (the Kubernetes shapes the
schema checks one by one), as a YAML list: the names the API server wants unique in a pod and its volumes that mounts
name (pkg/apis/core/validation/validation.go: validateContainers, ValidateVolumes, validateVolumeMounts,
ValidateSecurityContext), limits below requests, what RDMA needs against the user's securityContext, and the routes
and LoRA adapters that cannot work.
*/}}
{{- define "vllm-rdma.servingProblems" -}}
{{- $v := .Values }}
{{- $problems := list }}
{{- /* Containers: the chart's names, then the user's; each name once in a pod. */}}
{{- $ours := list "vllm" "api-gate" "preflight" "download-model" }}
{{- range $i, $a := $v.vllm.lora.adapters }}{{ $ours = append $ours (printf "download-lora-%d" $i) }}{{ end }}
{{- $theirs := list }}
{{- range (concat $v.initContainers $v.extraContainers) }}{{ $theirs = append $theirs .name }}{{ end }}
{{- range $name := $theirs }}
{{- if has $name $ours }}
{{- $problems = append $problems (printf "initContainers/extraContainers name a container %q, which the chart's pods already have (%s): choose another name" $name (join ", " $ours)) }}
{{- end }}
{{- end }}
{{- if ne (len $theirs) (len (uniq $theirs)) }}
{{- $problems = append $problems (printf "initContainers and extraContainers repeat a container name (%s): each must be unique in the pod" (join ", " $theirs)) }}
{{- end }}
{{- /* Volumes: the chart's, then extraVolumes; each name once; every mount names one. */}}
{{- $volumes := list "dshm" "nccl-config" "scripts" "infiniband" "tmp" "model" }}
{{- $extra := list }}
{{- range $v.extraVolumes }}{{ $extra = append $extra .name }}{{ end }}
{{- range $name := $extra }}
{{- if has $name $volumes }}
{{- $problems = append $problems (printf "extraVolumes name a volume %q, which the chart's pods already have (%s): choose another name" $name (join ", " $volumes)) }}
{{- end }}
{{- end }}
{{- if ne (len $extra) (len (uniq $extra)) }}
{{- $problems = append $problems (printf "extraVolumes repeat a volume name (%s)" (join ", " $extra)) }}
{{- end }}
{{- $known := concat $volumes $extra }}
{{- $where := list (dict "what" "extraVolumeMounts" "mounts" $v.extraVolumeMounts) }}
{{- range (concat $v.initContainers $v.extraContainers) }}
{{- $where = append $where (dict "what" (printf "container %s" .name) "mounts" (.volumeMounts | default list)) }}
{{- end }}
{{- range $where }}
{{- $what := .what }}
{{- $paths := list }}
{{- range .mounts }}
{{- $paths = append $paths .mountPath }}
{{- if not (has .name $known) }}
{{- $problems = append $problems (printf "%s mount the volume %q, which the pods do not have: add it to extraVolumes" $what .name) }}
{{- end }}
{{- end }}
{{- if ne (len $paths) (len (uniq $paths)) }}
{{- $problems = append $problems (printf "%s mount two volumes at one path (%s)" $what (join ", " $paths)) }}
{{- end }}
{{- end }}
{{- $vllmPaths := list "/dev/shm" "/opt/helm-rdma" $v.nccl.configFile $v.model.storage.mountPath }}
{{- if include "vllm-rdma.hostDevices" . }}{{ $vllmPaths = append $vllmPaths $v.rdma.devicePath }}{{ end }}
{{- range $v.extraVolumeMounts }}
{{- if has .mountPath $vllmPaths }}
{{- $problems = append $problems (printf "extraVolumeMounts mount %q, where the vllm container already has one of the chart's mounts (%s): choose another path" .mountPath (join ", " $vllmPaths)) }}
{{- end }}
{{- end }}
{{- /* Security: what RDMA needs wins; the API server refuses allowPrivilegeEscalation=false with privileged. */}}
{{- $sc := $v.securityContext | default dict }}
{{- $privileged := include "vllm-rdma.privileged" . }}
{{- if and $privileged (eq (toString (get $sc "privileged")) "false") }}
{{- $problems = append $problems "securityContext.privileged is false, but the RDMA containers run privileged here (see rdma.privileged): set rdma.privileged=false with rdma.devicePluginResource instead, or drop securityContext.privileged" }}
{{- end }}
{{- if and (eq (toString (get $sc "allowPrivilegeEscalation")) "false") (or $privileged (eq (toString (get $sc "privileged")) "true")) }}
{{- $problems = append $problems "securityContext.allowPrivilegeEscalation is false, but the RDMA containers run privileged, and Kubernetes refuses both together: drop allowPrivilegeEscalation, or run unprivileged (rdma.privileged=false with rdma.devicePluginResource)" }}
{{- end }}
{{- /* A hostNetwork pod shares the node's network namespace: no network sysctl (validateSysctls). */}}
{{- if eq $v.rdma.mode "hostNetwork" }}
{{- range (get ($v.podSecurityContext | default dict) "sysctls" | default list) }}
{{- if hasPrefix "net." (toString (get . "name")) }}
{{- $problems = append $problems (printf "podSecurityContext.sysctls sets %s, a network sysctl, which Kubernetes refuses for a hostNetwork pod (it would change the node's): set it on the nodes, or use rdma.mode=sriov" (get . "name")) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Limits at least the requests (ValidateResourceRequirements). */}}
{{- range $name := list "cpu" "memory" }}
{{- with get $v.resources.limits $name }}
{{- if lt (include "vllm-rdma.quantity" .| float64) (include "vllm-rdma.quantity" (get $v.resources $name) | float64) }}
{{- $problems = append $problems (printf "resources.limits.%s (%s) is below resources.%s (%s), and Kubernetes refuses a limit below its request: raise it" $name . $name (get $v.resources $name)) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Routes. */}}
{{- if and $v.gateway.enabled (not $v.gateway.parentRefs) }}
{{- $problems = append $problems "gateway.enabled is true but gateway.parentRefs is empty: a route attached to no Gateway serves nothing; name your Gateway ([{name, namespace}])" }}
{{- end }}
{{- /* LoRA. */}}
{{- $lora := $v.vllm.lora }}
{{- if and $lora.adapters (not $lora.enabled) }}
{{- $problems = append $problems "vllm.lora.adapters are listed but vllm.lora.enabled is false: set vllm.lora.enabled=true, or remove the adapters" }}
{{- end }}
{{- $names := list }}
{{- range $lora.adapters }}{{ $names = append $names .name }}{{ end }}
{{- if ne (len $names) (len (uniq $names)) }}
{{- $problems = append $problems (printf "vllm.lora.adapters repeat a name (%s): clients pick an adapter by its name" (join ", " $names)) }}
{{- end }}
{{- if has $v.model.servedName $names }}
{{- $problems = append $problems (printf "a LoRA adapter is named %q, as the base model (model.servedName): rename the adapter" $v.model.servedName) }}
{{- end }}
{{- $mounted := list $v.model.storage.mountPath }}
{{- range $v.extraVolumeMounts }}{{ $mounted = append $mounted .mountPath }}{{ end }}
{{- range $lora.adapters }}
{{- if .path }}
{{- $path := .path }}
{{- $inside := false }}
{{- range $mounted }}
{{- if or (eq $path .) (hasPrefix (printf "%s/" (trimSuffix "/" .)) $path) }}{{ $inside = true }}{{ end }}
{{- end }}
{{- if not $inside }}
{{- $problems = append $problems (printf "vllm.lora.adapters %s: path %s is on no volume of the vllm container (model.storage.mountPath %s or extraVolumeMounts): mount the adapter's volume there" .name $path $v.model.storage.mountPath) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $problems }}
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
Whether the download init container fills the model directory before vLLM starts.
*/}}
{{- define "vllm-rdma.download" -}}
{{- if and .Values.model.download.enabled (not (hasPrefix "/" .Values.model.name)) }}true{{ end }}
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
{{- if .Values.api.keySecret.name }}
- "--host"
- "127.0.0.1"
- "--port"
- {{ .Values.api.internalPort | quote }}
{{- else }}
- "--port"
- {{ .Values.vllm.port | quote }}
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
