{{/*
Label selector of one kind of pod of the release: (dict "root" $ "components" (list "leader" "worker")).
The serving pods' anti-affinity uses it so that test and preflight pods may share their nodes.
*/}}
{{- define "vllm-rdma.componentSelector" -}}
matchLabels:
  {{- include "vllm-rdma.selectorLabels" .root | nindent 2 }}
matchExpressions:
  - key: app.kubernetes.io/component
    operator: In
    values:
      {{- toYaml .components | nindent 6 }}
{{- end }}

{{/*
Where pods of the group's kind run, as pod spec fields: the RDMA network mode, the shape's nodes, the GPU taint, one
pod per node among (dict "root" $ "components" ...), and a preference for one RDMA block.
*/}}
{{- define "vllm-rdma.placement" -}}
{{- $v := .root.Values }}
{{- if eq $v.rdma.mode "hostNetwork" }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
nodeSelector:
  node.kubernetes.io/instance-type: {{ $v.preset.shape | quote }}
  {{- if include "vllm-rdma.clusterNetworkLabelEnabled" .root }}
  {{ $v.placement.clusterNetworkLabel.key | quote }}: {{ include "vllm-rdma.clusterNetworkLabelValue" .root | quote }}
  {{- end }}
  {{- with $v.placement.nodeSelector }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
tolerations:
  - key: {{ $v.preset.gpuTaint | quote }}
    operator: Exists
    effect: NoSchedule
  {{- with $v.placement.tolerations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- /* The user's affinity (values affinity) joins ours: nodeAffinity as given, pod (anti-)affinity terms added. */}}
{{- $user := $v.affinity | default dict }}
{{- $anti := get $user "podAntiAffinity" | default dict }}
{{- $near := get $user "podAffinity" | default dict }}
{{- $locality := and $v.placement.rdmaLocality.enabled $v.placement.rdmaLocality.topologyKeys }}
affinity:
  {{- with get $user "nodeAffinity" }}
  nodeAffinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          {{- include "vllm-rdma.componentSelector" . | nindent 10 }}
      {{- with get $anti "requiredDuringSchedulingIgnoredDuringExecution" }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with get $anti "preferredDuringSchedulingIgnoredDuringExecution" }}
    preferredDuringSchedulingIgnoredDuringExecution:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  {{- if or $locality (get $near "requiredDuringSchedulingIgnoredDuringExecution") (get $near "preferredDuringSchedulingIgnoredDuringExecution") }}
  podAffinity:
    {{- with get $near "requiredDuringSchedulingIgnoredDuringExecution" }}
    requiredDuringSchedulingIgnoredDuringExecution:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- if or $locality (get $near "preferredDuringSchedulingIgnoredDuringExecution") }}
    preferredDuringSchedulingIgnoredDuringExecution:
      {{- if $locality }}
      {{- range $i, $key := $v.placement.rdmaLocality.topologyKeys }}
      - weight: {{ max 1 (sub 100 (mul $i 30)) }}
        podAffinityTerm:
          topologyKey: {{ $key | quote }}
          labelSelector:
            {{- include "vllm-rdma.componentSelector" $ | nindent 12 }}
      {{- end }}
      {{- end }}
      {{- with get $near "preferredDuringSchedulingIgnoredDuringExecution" }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- end }}
  {{- end }}
{{- end }}

{{/*
The Multus annotation that attaches one rdma-vf network per VF (SR-IOV mode only).
*/}}
{{- define "vllm-rdma.sriovAnnotation" -}}
{{- $v := .Values }}
{{- if eq $v.rdma.mode "sriov" }}
{{- $networks := list }}
{{- range until (int $v.rdma.sriov.vfs) }}
{{- $networks = append $networks $v.rdma.sriov.networkName }}
{{- end }}
k8s.v1.cni.cncf.io/networks: {{ join "," $networks | quote }}
{{- end }}
{{- end }}

{{/*
Environment every GPU container of the group gets: pod identity, the TCP interface, and the NCCL settings.
*/}}
{{- define "vllm-rdma.ncclEnv" -}}
{{ include "vllm-rdma.identityEnv" . }}
{{- range $k, $val := (include "vllm-rdma.ncclSettings" . | fromYaml) }}
- name: {{ $k }}
  value: {{ $val | quote }}
{{- end }}
{{- end }}

{{/*
A pod's identity and the TCP interface its group's rendezvous uses (torchrun's, gloo's).
*/}}
{{- define "vllm-rdma.identityEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: VLLM_HOST_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: GLOO_SOCKET_IFNAME
  value: {{ .Values.network.interface | quote }}
{{- end }}

{{/*
Resources of a GPU container: every GPU of the node, and the VFs in SR-IOV mode (requests = limits), and the limits
of resources.limits (cpu, memory, ephemeral storage, huge pages).
*/}}
{{- define "vllm-rdma.gpuResources" -}}
{{- $v := .Values }}
requests:
  cpu: {{ $v.resources.cpu | quote }}
  memory: {{ $v.resources.memory | quote }}
  {{- include "vllm-rdma.deviceResources" . | nindent 2 }}
limits:
  {{- range $name, $quantity := $v.resources.limits }}
  {{ $name }}: {{ $quantity | quote }}
  {{- end }}
  {{- include "vllm-rdma.deviceResources" . | nindent 2 }}
{{- end }}

{{/*
The extended resources of a GPU container (requests = limits): every GPU, the VFs in SR-IOV mode, and the RDMA
device plugin's resource when one grants the devices.
*/}}
{{- define "vllm-rdma.deviceResources" -}}
{{- $v := .Values -}}
{{ $v.preset.gpuResource | quote }}: {{ $v.preset.gpusPerNode }}
{{- if eq $v.rdma.mode "sriov" }}
{{ $v.rdma.sriov.resourceName | quote }}: {{ $v.rdma.sriov.vfs }}
{{- end }}
{{- with $v.rdma.devicePluginResource }}
{{ . | quote }}: 1
{{- end }}
{{- end }}

{{/*
Security context of a container that registers memory with the RDMA NICs: the user's securityContext, merged with
what RDMA needs, which always wins: privileged (see vllm-rdma.privileged), else the IPC_LOCK capability added to the
user's, which lifts the locked-memory limit for verbs memory registration. (validateValues refuses a
securityContext that contradicts it.)
*/}}
{{- define "vllm-rdma.rdmaSecurityContext" -}}
{{- $sc := deepCopy (.Values.securityContext | default dict) }}
{{- if include "vllm-rdma.privileged" . }}
{{- $_ := set $sc "privileged" true }}
{{- else }}
{{- $caps := deepCopy (get $sc "capabilities" | default dict) }}
{{- $_ := set $caps "add" (concat (get $caps "add" | default list) (list "IPC_LOCK") | uniq) }}
{{- $_ := set $sc "capabilities" $caps }}
{{- end }}
{{- toYaml $sc }}
{{- end }}

{{/*
Mounts of a GPU container: /dev/shm, the NCCL config file, the scripts, and /dev/infiniband in hostNetwork mode.
*/}}
{{- define "vllm-rdma.rdmaVolumeMounts" -}}
- name: dshm
  mountPath: /dev/shm
- name: nccl-config
  mountPath: {{ .Values.nccl.configFile }}
  subPath: nccl.conf
  readOnly: true
- name: scripts
  mountPath: /opt/helm-rdma
{{- if include "vllm-rdma.hostDevices" . }}
- name: infiniband
  mountPath: {{ .Values.rdma.devicePath | quote }}
{{- end }}
{{- end }}

{{/*
The volumes behind vllm-rdma.rdmaVolumeMounts.
*/}}
{{- define "vllm-rdma.rdmaVolumes" -}}
{{- $fullname := include "vllm-rdma.fullname" . -}}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.resources.shmSize | quote }}
- name: nccl-config
  configMap:
    name: {{ printf "%s-nccl" $fullname }}
- name: scripts
  configMap:
    name: {{ printf "%s-scripts" $fullname }}
    defaultMode: 0555
{{- if include "vllm-rdma.hostDevices" . }}
- name: infiniband
  hostPath:
    path: {{ .Values.rdma.devicePath | quote }}
    type: Directory
{{- end }}
{{- end }}

{{/*
Environment that tells the entrypoint where its pod stands in its group: (dict "root" $ "role" "leader"|"worker").
*/}}
{{- define "vllm-rdma.groupEnv" -}}
{{- $v := .root.Values -}}
- name: HELM_RDMA_ROLE
  value: {{ .role | quote }}
- name: HELM_RDMA_BACKEND
  value: {{ $v.distributed.backend | quote }}
- name: HELM_RDMA_WORKLOAD
  value: {{ $v.workload.kind | quote }}
- name: HELM_RDMA_NNODES
  value: {{ $v.nodes | quote }}
- name: HELM_RDMA_MASTER_PORT
  value: {{ $v.distributed.masterPort | quote }}
- name: HELM_RDMA_WAIT_SECONDS
  value: {{ $v.distributed.leaderWaitSeconds | quote }}
- name: HELM_RDMA_BARRIER_SECONDS
  value: {{ mul $v.distributed.barrierMinutes 60 | quote }}
{{- if eq $v.workload.kind "LeaderWorkerSet" }}
- name: HELM_RDMA_GROUP
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['leaderworkerset.sigs.k8s.io/group-index']
{{- else }}
- name: HELM_RDMA_LEADER_PREFIX
  value: {{ printf "%s-leader" (include "vllm-rdma.fullname" .root) | quote }}
{{- end }}
{{- if include "vllm-rdma.groupWatch" .root }}
- name: HELM_RDMA_WATCH_PORT
  value: {{ $v.distributed.groupWatchPort | quote }}
- name: HELM_RDMA_WORKER_PREFIX
  value: {{ printf "%s-worker" (include "vllm-rdma.fullname" .root) | quote }}
{{- end }}
{{- end }}

{{/*
The preflight init container, after the download (the group's barrier: every node has its weights before any starts
vLLM): torchrun all-reduces across every GPU of the group's nodes over the group's own RDMA devices and NCCL settings.
A measured failure (bus bandwidth below the threshold, or NCCL on sockets) is recorded in its termination message
and, with verify.preflight.onFailure=fail, held and failed by the preflight-verdict container after it (so the group
restarts); a preflight that cannot complete fails here. As an init container it holds the pod's own GPUs: it never
competes with a serving group, runs on every group start (every replica), and needs no hook. Rank 0 prints the result
as one line that `helm rdma verify` reads from the leader's log. (dict "root" $ "role" ...)
*/}}
{{- define "vllm-rdma.preflightContainer" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $pf := $v.verify.preflight -}}
- name: preflight
  image: {{ include "vllm-rdma.image" $root | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command: ["/bin/bash", "/opt/helm-rdma/entrypoint.sh"]
  args:
    {{- include "vllm-rdma.preflightArgs" $root | nindent 4 }}
  env:
    - name: HELM_RDMA_TASK
      value: preflight
    {{- include "vllm-rdma.groupEnv" . | nindent 4 }}
    {{- include "vllm-rdma.preflightEnv" $root | nindent 4 }}
    {{- include "vllm-rdma.ncclEnv" $root | trim | nindent 4 }}
    {{- if .keyCheck }}
    {{- include "vllm-rdma.apiKeySecretCheckEnv" $root | nindent 4 }}
    {{- end }}
  resources:
    {{- include "vllm-rdma.gpuResources" $root | trim | nindent 4 }}
  securityContext:
    {{- include "vllm-rdma.rdmaSecurityContext" $root | trim | nindent 4 }}
  volumeMounts:
    {{- include "vllm-rdma.rdmaVolumeMounts" $root | trim | nindent 4 }}
    - name: tmp
      mountPath: /tmp
  # The summary (the measured figure and the verdict) stays in the pod's status after the container ended.
  terminationMessagePath: /dev/termination-log
  terminationMessagePolicy: FallbackToLogsOnError
{{- if eq $pf.onFailure "fail" }}
{{ include "vllm-rdma.preflightVerdictContainer" . }}
{{- end }}
{{- end }}

{{/*
After a measured failure, the preflight-verdict init container keeps the pod (at least two minutes, or
verify.preflight.holdOnFailureMinutes) and fails, so the group restarts: while it runs, kube-state-metrics reports it
running (kube_pod_init_container_status_running), which is what VllmRdmaPreflightFailed reads. It exits at once
after a pass. (dict "root" $ "role" ...)
*/}}
{{- define "vllm-rdma.preflightVerdictContainer" -}}
{{- $root := .root }}
{{- $v := $root.Values -}}
- name: preflight-verdict
  image: {{ include "vllm-rdma.image" $root | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command: ["/bin/bash", "/opt/helm-rdma/entrypoint.sh"]
  env:
    - name: HELM_RDMA_TASK
      value: preflight-verdict
    {{- include "vllm-rdma.groupEnv" . | nindent 4 }}
    {{- include "vllm-rdma.identityEnv" $root | nindent 4 }}
    {{- include "vllm-rdma.preflightEnv" $root | nindent 4 }}
  resources:
    requests:
      cpu: 100m
      memory: 64Mi
  {{- with $v.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: scripts
      mountPath: /opt/helm-rdma
    - name: tmp
      mountPath: /tmp
{{- end }}

{{/*
The group's barrier when the preflight is off (LeaderWorkerSet): after the download, every node's pod meets the
others through torchrun's rendezvous on the leader and a gloo barrier, on the CPU, and only then does any start
vLLM. It waits distributed.barrierMinutes for the slowest node. (dict "root" $ "role" ...)
*/}}
{{- define "vllm-rdma.barrierContainer" -}}
{{- $root := .root }}
{{- $v := $root.Values -}}
- name: group-barrier
  image: {{ include "vllm-rdma.image" $root | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command: ["/bin/bash", "/opt/helm-rdma/entrypoint.sh"]
  env:
    - name: HELM_RDMA_TASK
      value: barrier
    {{- include "vllm-rdma.groupEnv" . | nindent 4 }}
    {{- include "vllm-rdma.identityEnv" $root | nindent 4 }}
    {{- if .keyCheck }}
    {{- include "vllm-rdma.apiKeySecretCheckEnv" $root | nindent 4 }}
    {{- end }}
  resources:
    requests:
      cpu: 500m
      memory: 1Gi
  {{- with $v.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: scripts
      mountPath: /opt/helm-rdma
{{- end }}

{{/*
The arguments of the preflight's nccl_allreduce.py, one per line.
*/}}
{{- define "vllm-rdma.preflightArgs" -}}
{{- $v := .Values }}
{{- $pf := $v.verify.preflight -}}
- "--sizes"
- {{ $pf.messageSizes | quote }}
- "--iters"
- {{ $pf.iterations | quote }}
- "--warmup"
- {{ $pf.warmupIterations | quote }}
- "--threshold-gbps"
- {{ $pf.thresholdGBps | quote }}
{{- if $v.preset.busBandwidthExpectedGBps }}
- "--expected-gbps"
- {{ $v.preset.busBandwidthExpectedGBps | quote }}
{{- end }}
{{- if $pf.requireInfiniband }}
- "--require-ib"
{{- end }}
- "--on-failure"
- {{ $pf.onFailure | quote }}
{{- end }}

{{/*
What the entrypoint's preflight needs besides its arguments: GPUs per node, its time limit, and how long a failed
one keeps its container (so that its log can be read before the group restarts).
*/}}
{{- define "vllm-rdma.preflightEnv" -}}
{{- $pf := .Values.verify.preflight -}}
- name: HELM_RDMA_GPUS_PER_NODE
  value: {{ .Values.preset.gpusPerNode | quote }}
- name: HELM_RDMA_PREFLIGHT_SECONDS
  value: {{ mul $pf.timeoutMinutes 60 | quote }}
- name: HELM_RDMA_PREFLIGHT_HOLD_SECONDS
  value: {{ mul $pf.holdOnFailureMinutes 60 | quote }}
{{- end }}


{{/*
Minutes the serving container may spend before vLLM starts, which its startup probe must allow on top of
probes.startupMinutes: in StatefulSet mode the group's barrier (and the preflight, with its hold on failure) run in
it; under LeaderWorkerSet they are init containers, before the probe starts.
*/}}
{{- define "vllm-rdma.inContainerWaitMinutes" -}}
{{- $v := .Values }}
{{- $pf := $v.verify.preflight }}
{{- if and (include "vllm-rdma.groupBarrier" .) (eq $v.workload.kind "StatefulSet") }}
{{- if include "vllm-rdma.preflight" . }}
{{- add $v.distributed.barrierMinutes $pf.timeoutMinutes (ternary (max $pf.holdOnFailureMinutes 2) 0 (eq $pf.onFailure "fail")) }}
{{- else }}
{{- add $v.distributed.barrierMinutes 2 }}
{{- end }}
{{- else }}0{{- end }}
{{- end }}

{{/*
Minutes a group may take from its pods' start to serving: the download and the group's barrier
(distributed.barrierMinutes, when a group has more than one node), the preflight (verify.preflight.timeoutMinutes),
then the leader's start-up budget (probes.startupMinutes). `helm rdma install --wait` waits as long
(commands/deploy.py, default_timeout, adds the image pull).
*/}}
{{- define "vllm-rdma.firstStartMinutes" -}}
{{- $v := .Values }}
{{- $barrier := ternary $v.distributed.barrierMinutes 0 (not (empty (include "vllm-rdma.groupBarrier" .))) }}
{{- $preflight := ternary $v.verify.preflight.timeoutMinutes 0 (not (empty (include "vllm-rdma.preflight" .))) }}
{{- add $barrier $preflight $v.probes.startupMinutes }}
{{- end }}

{{/*
The workload image, repository:tag, with @digest when image.digest is set (vllm-rdma.imageRef).
*/}}
{{- define "vllm-rdma.image" -}}
{{- include "vllm-rdma.imageRef" .Values.image }}
{{- end }}

{{/*
The pod template of one role of a group, shared by the LeaderWorkerSet and the StatefulSets.
Call with (dict "root" $ "role" "leader"|"worker").
*/}}
{{- define "vllm-rdma.podTemplate" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $role := .role -}}
metadata:
  labels:
    {{- include "vllm-rdma.podLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $role }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- /* The ConfigMaps' data only: their labels carry the chart's version, which changes with anything in the chart. */}}
    checksum/config: {{ list (include (print $root.Template.BasePath "/configmap-nccl.yaml") $root | fromYaml).data (include (print $root.Template.BasePath "/configmap-scripts.yaml") $root | fromYaml).data | toJson | sha256sum }}
    {{- with include "vllm-rdma.sriovAnnotation" $root | trim }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "vllm-rdma.serviceAccountName" $root }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: 60
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . | quote }}
  {{- end }}
  {{- with $v.schedulerName }}
  schedulerName: {{ . | quote }}
  {{- end }}
  {{- with $v.runtimeClassName }}
  runtimeClassName: {{ . | quote }}
  {{- end }}
  {{- with $v.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- include "vllm-rdma.placement" (dict "root" $root "components" (list "leader" "worker")) | trim | nindent 2 }}
  {{- $lwsBarrier := and (include "vllm-rdma.groupBarrier" $root) (eq $v.workload.kind "LeaderWorkerSet") }}
  {{- /* The leader's first init container of the chart also names the API key's Secret (vllm-rdma.apiKeySecretCheckEnv). */}}
  {{- $keyCheck := and (eq $role "leader") $v.api.keySecret.name (include "vllm-rdma.download" $root) }}
  {{- $keyCheckLater := and (eq $role "leader") $v.api.keySecret.name (not (include "vllm-rdma.download" $root)) }}
  {{- if or $lwsBarrier (include "vllm-rdma.download" $root) $v.initContainers }}
  initContainers:
    {{- /* Download first, then the group's barrier, then vLLM: vLLM gives its peers distributed.timeoutSeconds to
    meet (vllm/config/parallel.py), and nodes finish their downloads minutes apart. */}}
    {{- if include "vllm-rdma.download" $root }}
    {{- include "vllm-rdma.downloadContainer" (dict "root" $root "role" $role "keyCheck" $keyCheck) | nindent 4 }}
    {{- with include "vllm-rdma.loraDownloadContainers" . | trim }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- end }}
    {{- with $v.initContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- if include "vllm-rdma.preflightInit" $root }}
    {{- include "vllm-rdma.preflightContainer" (dict "root" $root "role" $role "keyCheck" $keyCheckLater) | nindent 4 }}
    {{- else if $lwsBarrier }}
    {{- include "vllm-rdma.barrierContainer" (dict "root" $root "role" $role "keyCheck" $keyCheckLater) | nindent 4 }}
    {{- end }}
  {{- end }}
  containers:
    - name: vllm
      image: {{ include "vllm-rdma.image" $root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: ["/bin/bash", "/opt/helm-rdma/entrypoint.sh"]
      args:
        {{- include "vllm-rdma.serveArgs" $root | nindent 8 }}
      env:
        - name: HELM_RDMA_TASK
          value: serve
        {{- include "vllm-rdma.groupEnv" . | nindent 8 }}
        {{- if and (include "vllm-rdma.preflight" $root) (not (include "vllm-rdma.preflightInit" $root)) }}
        # The preflight, the group's barrier, before vLLM, each time the group forms (see vllm-rdma.preflightInit).
        - name: HELM_RDMA_PREFLIGHT_ARGS
          value: {{ include "vllm-rdma.preflightArgs" $root | fromYamlArray | join " " | quote }}
        {{- include "vllm-rdma.preflightEnv" $root | nindent 8 }}
        {{- else if and (include "vllm-rdma.groupBarrier" $root) (eq $v.workload.kind "StatefulSet") }}
        # The group's barrier before vLLM, each time the group forms: every node has its weights by then.
        - name: HELM_RDMA_BARRIER
          value: "1"
        {{- end }}
        {{- if eq $v.distributed.backend "ray" }}
        - name: HELM_RDMA_RAY_PORT
          value: {{ $v.distributed.ray.port | quote }}
        - name: HELM_RDMA_RAY_DASHBOARD_PORT
          value: {{ $v.distributed.ray.dashboardPort | quote }}
        - name: HELM_RDMA_RAY_CLIENT_PORT
          value: {{ $v.distributed.ray.clientPort | quote }}
        - name: HELM_RDMA_RAY_JOIN_TIMEOUT
          value: {{ $v.distributed.ray.joinTimeoutSeconds | quote }}
        {{- with $v.distributed.ray.authTokenSecret.name }}
        # Ray's token authentication (Ray 2.52+): every Ray process of the group, vLLM's included, uses the token.
        - name: RAY_AUTH_MODE
          value: token
        - name: RAY_AUTH_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ . | quote }}
              key: {{ $v.distributed.ray.authTokenSecret.key | quote }}
        {{- end }}
        {{- end }}
        {{- if $v.api.keySecret.name }}
        # vLLM imports the API key check (files/api_auth.py, --middleware api_auth.ApiKeyMiddleware) from here.
        - name: PYTHONPATH
          value: /opt/helm-rdma
        {{- if eq $role "leader" }}
        {{- include "vllm-rdma.apiKeyEnv" $root | nindent 8 }}
        {{- end }}
        {{- end }}
        - name: HF_HOME
          value: {{ printf "%s/.hf-home" (trimSuffix "/" $v.model.storage.mountPath) | quote }}
        {{- if include "vllm-rdma.download" $root }}
        # The download container fetched everything: vLLM reads the directory and never reaches the Hub.
        - name: HF_HUB_OFFLINE
          value: "1"
        {{- else }}
        {{- with include "vllm-rdma.hfTokenEnv" $root }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- end }}
        # How long vLLM's front end waits for its engine to load the model (vLLM's default, 600 s, is too short
        # for a large model): the start-up budget the plan chose (probes.startupMinutes).
        - name: VLLM_ENGINE_READY_TIMEOUT_S
          value: {{ mul $v.probes.startupMinutes 60 | quote }}
        {{- include "vllm-rdma.ncclEnv" $root | trim | nindent 8 }}
        {{- with $v.vllm.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if eq $role "leader" }}
      ports:
        - name: http
          containerPort: {{ $v.vllm.port }}
          protocol: TCP
        {{- if eq $v.distributed.backend "ray" }}
        - name: ray-gcs
          containerPort: {{ $v.distributed.ray.port }}
          protocol: TCP
        - name: ray-client
          containerPort: {{ $v.distributed.ray.clientPort }}
          protocol: TCP
        {{- else }}
        - name: rendezvous
          containerPort: {{ $v.distributed.masterPort }}
          protocol: TCP
        {{- end }}
      startupProbe:
        httpGet:
          path: /health
          port: {{ $v.vllm.port }}
        periodSeconds: 30
        timeoutSeconds: 5
        failureThreshold: {{ mul (add $v.probes.startupMinutes (include "vllm-rdma.inContainerWaitMinutes" $root | int)) 2 }}
      readinessProbe:
        httpGet:
          path: /health
          port: {{ $v.vllm.port }}
        periodSeconds: {{ $v.probes.readinessPeriodSeconds }}
        timeoutSeconds: 5
        failureThreshold: 3
      {{- end }}
      resources:
        {{- include "vllm-rdma.gpuResources" $root | trim | nindent 8 }}
      securityContext:
        {{- include "vllm-rdma.rdmaSecurityContext" $root | trim | nindent 8 }}
      volumeMounts:
        {{- include "vllm-rdma.rdmaVolumeMounts" $root | trim | nindent 8 }}
        - name: model
          mountPath: {{ $v.model.storage.mountPath | quote }}
        {{- with $v.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    {{- with $v.extraContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumes:
    {{- include "vllm-rdma.rdmaVolumes" $root | trim | nindent 4 }}
    {{- if include "vllm-rdma.preflightInit" $root }}
    - name: tmp
      emptyDir: {}
    {{- end }}
    - name: model
      {{- if eq $v.model.storage.type "hostPath" }}
      hostPath:
        path: {{ $v.model.storage.hostPath | quote }}
        type: DirectoryOrCreate
      {{- else if eq $v.model.storage.type "pvc" }}
      persistentVolumeClaim:
        claimName: {{ $v.model.storage.claimName | quote }}
      {{- else }}
      # emptyDir: wiped at every group restart, so the model downloads again (the slow fallback).
      emptyDir:
        sizeLimit: {{ $v.model.storage.sizeLimit | quote }}
      {{- end }}
    {{- if include "vllm-rdma.bootVolumeProbe" $root }}
    # A file of the node's root filesystem: the download refuses a model directory on the same filesystem.
    - name: node-root-probe
      hostPath:
        path: /etc/hostname
        type: File
    {{- end }}
    {{- with $v.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
The download init container: fetches only what vLLM loads into the model directory, resuming and skipping complete
files, with progress (files/fetch_model.py). On a shared claim (pvc) the leader downloads and the workers wait for
it. (dict "root" $ "role" ...)
*/}}
{{- define "vllm-rdma.downloadContainer" -}}
{{- $v := .root.Values }}
{{- include "vllm-rdma.fetchContainer" (dict "root" .root "role" .role "name" "download-model" "repo" $v.model.name "revision" $v.model.revision "dest" (include "vllm-rdma.modelDir" .root) "keyCheck" .keyCheck) }}
{{- end }}

{{/*
One more download init container per LoRA adapter from the Hub (vllm.lora.adapters[].repo), after the model's and
like it, into MOUNTPATH/ORG/NAME/REVISION: every node's vLLM loads the adapters it serves from its own disk, and
vLLM runs with HF_HUB_OFFLINE=1 once everything is fetched. (dict "root" $ "role" ...)
*/}}
{{- define "vllm-rdma.loraDownloadContainers" -}}
{{- $root := .root }}
{{- $role := .role }}
{{- $lora := $root.Values.vllm.lora }}
{{- if $lora.enabled }}
{{- range $i, $adapter := $lora.adapters }}
{{- with $adapter.repo }}
{{ include "vllm-rdma.fetchContainer" (dict "root" $root "role" $role "name" (printf "download-lora-%d" $i) "repo" . "revision" (default "main" $adapter.revision) "dest" (include "vllm-rdma.loraDir" (dict "root" $root "adapter" $adapter))) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Where a LoRA adapter from the Hub lands: MOUNTPATH/ORG/NAME/REVISION, as the model. (dict "root" $ "adapter" ...)
*/}}
{{- define "vllm-rdma.loraDir" -}}
{{- printf "%s/%s/%s" (trimSuffix "/" .root.Values.model.storage.mountPath) .adapter.repo (default "main" .adapter.revision) }}
{{- end }}

{{/*
What vLLM loads an adapter from (--lora-modules NAME=PATH): its path, the directory the download container filled,
or with the download off the Hub id, which vLLM fetches itself (its latest revision: --lora-modules takes none).
*/}}
{{- define "vllm-rdma.loraSource" -}}
{{- if .adapter.path }}
{{- .adapter.path }}
{{- else if include "vllm-rdma.download" .root }}
{{- include "vllm-rdma.loraDir" . }}
{{- else }}
{{- .adapter.repo }}
{{- end }}
{{- end }}

{{/*
A container that fetches one repository with files/fetch_model.py, with model.download's patterns and settings.
(dict "root" $ "role" ... "name" ... "repo" ... "revision" ... "dest" ...)
*/}}
{{- define "vllm-rdma.fetchContainer" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $dl := $v.model.download -}}
- name: {{ .name }}
  image: {{ include "vllm-rdma.image" $root | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command: ["python3", "/opt/helm-rdma/fetch_model.py"]
  args:
    - "--repo"
    - {{ .repo | quote }}
    - "--revision"
    - {{ .revision | quote }}
    - "--dest"
    - {{ .dest | quote }}
    - "--workers"
    - {{ $dl.maxWorkers | quote }}
    - "--progress-seconds"
    - {{ $dl.progressSeconds | quote }}
    {{- range $dl.allowPatterns }}
    - "--allow"
    - {{ . | quote }}
    {{- end }}
    {{- range $dl.ignorePatterns }}
    - "--ignore"
    - {{ . | quote }}
    {{- end }}
    {{- if and (eq $v.model.storage.type "pvc") (eq .role "worker") }}
    - "--wait-only"
    - {{ mul $v.probes.startupMinutes 60 | quote }}
    {{- end }}
    {{- if include "vllm-rdma.bootVolumeProbe" $root }}
    - "--boot-volume-probe"
    - {{ include "vllm-rdma.bootVolumeProbe" $root | quote }}
    {{- if $v.model.storage.allowBootVolume }}
    - "--allow-boot-volume"
    {{- end }}
    {{- end }}
    {{- /* A failed init container makes LeaderWorkerSet recreate the group at once, with no restart back-off
    (kubernetes-sigs/lws pkg/controllers/pod_controller.go): the hold spaces the attempts, and the reason outlives the
    pod's log in its termination message. */}}
    - "--hold-on-failure"
    - {{ mul $dl.holdOnFailureMinutes 60 | quote }}
    - "--termination-log"
    - "/dev/termination-log"
  env:
    - name: HF_HOME
      value: {{ printf "%s/.hf-home" (trimSuffix "/" $v.model.storage.mountPath) | quote }}
    - name: HF_HUB_DISABLE_PROGRESS_BARS
      value: "1"
    {{- if .keyCheck }}
    {{- include "vllm-rdma.apiKeySecretCheckEnv" $root | nindent 4 }}
    {{- end }}
    {{- with include "vllm-rdma.hfTokenEnv" $root }}
    {{- . | nindent 4 }}
    {{- end }}
  resources:
    requests:
      cpu: "2"
      memory: 2Gi
  {{- with $v.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: model
      mountPath: {{ $v.model.storage.mountPath | quote }}
    {{- if include "vllm-rdma.bootVolumeProbe" $root }}
    - name: node-root-probe
      mountPath: {{ include "vllm-rdma.bootVolumeProbe" $root | quote }}
      readOnly: true
    {{- end }}
  terminationMessagePath: /dev/termination-log
  terminationMessagePolicy: FallbackToLogsOnError
{{- end }}

{{/*
The API key for the check inside vLLM (files/api_auth.py), from api.keySecret. Not VLLM_API_KEY: vLLM's own check
would guard /v1 a second time, with its own reading of the header.
*/}}
{{- define "vllm-rdma.apiKeyEnv" -}}
- name: HELM_RDMA_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.api.keySecret.name | quote }}
      key: {{ .Values.api.keySecret.key | quote }}
{{- end }}

{{/*
The API key's Secret named in the leader's first init container of the chart, which ignores the variable: the kubelet
resolves a container's environment before it starts it, so a missing Secret or key stops the leader at once
(CreateContainerConfigError) rather than after the whole download and preflight, when vLLM would start.
*/}}
{{- define "vllm-rdma.apiKeySecretCheckEnv" -}}
- name: HELM_RDMA_API_KEY_SECRET_CHECK
  valueFrom:
    secretKeyRef:
      name: {{ .Values.api.keySecret.name | quote }}
      key: {{ .Values.api.keySecret.key | quote }}
{{- end }}

{{/*
HF_TOKEN from an existing Secret, when one is named.
*/}}
{{- define "vllm-rdma.hfTokenEnv" -}}
{{- if .Values.model.hfTokenSecret.name }}
- name: HF_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.model.hfTokenSecret.name | quote }}
      key: {{ .Values.model.hfTokenSecret.key | quote }}
{{- end }}
{{- end }}
