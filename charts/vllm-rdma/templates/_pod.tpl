{{/* Pods: the pod template of a group's roles, where its pods run, and their volumes (the containers are in
_containers.tpl). */}}

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
Where the release's pods that need no GPU (the endpoint picker, the provisioning Jobs) prefer to run: off the cluster
network's nodes, which a shrink removes only when no such pod holds them (cluster/kube.py network_nodes). Nodes
without the label score highest, then nodes of another network; NotIn also matches a node without the label
("NotIn and DoesNotExist allow you to define node anti-affinity behavior", kubernetes.io/docs/concepts/
scheduling-eviction/assign-pod-node/#node-affinity). Preferred, not required: on a cluster made only of the network's
GPU nodes a required rule would leave these pods unschedulable. Nothing when pods do not select by that label.
*/}}
{{- define "vllm-rdma.offNetworkAffinity" -}}
{{- if include "vllm-rdma.clusterNetworkLabelEnabled" . }}
{{- $key := .Values.placement.clusterNetworkLabel.key }}
affinity:
  nodeAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        preference:
          matchExpressions:
            - key: {{ $key | quote }}
              operator: NotIn
              values: [{{ include "vllm-rdma.clusterNetworkLabelValue" . | quote }}]
      - weight: 50
        preference:
          matchExpressions:
            - key: {{ $key | quote }}
              operator: DoesNotExist
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
  # No container of a serving pod talks to the API server but the preflight, which mounts its own token
  # (vllm-rdma.preflightEventsTokenVolume); this holds with a ServiceAccount the chart did not create too.
  automountServiceAccountToken: false
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: {{ include "vllm-rdma.terminationGraceSeconds" $root }}
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
  {{- $guard := include "vllm-rdma.portGuard" $root }}
  {{- $keyFirst := and (eq $role "leader") $v.api.keySecret.name }}
  {{- $keyCheck := and $keyFirst (not $guard) (include "vllm-rdma.download" $root) }}
  {{- $keyCheckLater := and $keyFirst (not $guard) (not (include "vllm-rdma.download" $root)) }}
  {{- if or $lwsBarrier (include "vllm-rdma.download" $root) $v.initContainers $guard }}
  initContainers:
    {{- /* The port guard first: no listener of the pod may start before its table is loaded. */}}
    {{- if $guard }}
    {{- include "vllm-rdma.portGuardContainer" (dict "root" $root "keyCheck" (and $keyFirst $guard)) | nindent 4 }}
    {{- end }}
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
    {{- include "vllm-rdma.vllmContainer" . | nindent 4 }}
    {{- with $v.extraContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumes:
    {{- include "vllm-rdma.rdmaVolumes" $root | trim | nindent 4 }}
    {{- if include "vllm-rdma.preflightInit" $root }}
    - name: tmp
      emptyDir: {}
    {{- if eq $role "leader" }}
    {{- include "vllm-rdma.preflightEventsTokenVolume" $root | nindent 4 }}
    {{- end }}
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
    {{- if include "vllm-rdma.portGuard" $root }}
    # The host's cgroup hierarchy, where the port guard finds its pod's cgroup and nft resolves it.
    - name: host-cgroup
      hostPath:
        path: /sys/fs/cgroup
        type: Directory
    {{- end }}
    {{- with $v.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

