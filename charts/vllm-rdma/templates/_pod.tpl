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
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          {{- include "vllm-rdma.componentSelector" . | nindent 10 }}
  {{- if and $v.placement.rdmaLocality.enabled $v.placement.rdmaLocality.topologyKeys }}
  podAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      {{- range $i, $key := $v.placement.rdmaLocality.topologyKeys }}
      - weight: {{ max 1 (sub 100 (mul $i 30)) }}
        podAffinityTerm:
          topologyKey: {{ $key | quote }}
          labelSelector:
            {{- include "vllm-rdma.componentSelector" $ | nindent 12 }}
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
{{- range $k, $val := (include "vllm-rdma.ncclSettings" . | fromYaml) }}
- name: {{ $k }}
  value: {{ $val | quote }}
{{- end }}
{{- end }}

{{/*
Resources of a GPU container: every GPU of the node, and the VFs in SR-IOV mode (requests = limits).
*/}}
{{- define "vllm-rdma.gpuResources" -}}
{{- $v := .Values }}
requests:
  cpu: {{ $v.resources.cpu | quote }}
  memory: {{ $v.resources.memory | quote }}
  {{ $v.preset.gpuResource }}: {{ $v.preset.gpusPerNode }}
  {{- if eq $v.rdma.mode "sriov" }}
  {{ $v.rdma.sriov.resourceName }}: {{ $v.rdma.sriov.vfs }}
  {{- end }}
limits:
  {{ $v.preset.gpuResource }}: {{ $v.preset.gpusPerNode }}
  {{- if eq $v.rdma.mode "sriov" }}
  {{ $v.rdma.sriov.resourceName }}: {{ $v.rdma.sriov.vfs }}
  {{- end }}
{{- end }}

{{/*
Security context of a container that registers memory with the RDMA NICs: IPC_LOCK, privileged only when asked.
*/}}
{{- define "vllm-rdma.rdmaSecurityContext" -}}
{{- if .Values.rdma.privileged }}
privileged: true
{{- else }}
capabilities:
  add: ["IPC_LOCK"]
{{- end }}
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
{{- if eq .Values.rdma.mode "hostNetwork" }}
- name: infiniband
  mountPath: {{ .Values.rdma.devicePath }}
{{- end }}
{{- end }}

{{/*
The volumes behind vllm-rdma.rdmaVolumeMounts: (dict "root" $ "configMap" NAME-OR-EMPTY). The release's own nccl and
scripts ConfigMaps by default; a hook (which runs before those exist) names its own ConfigMap holding both.
*/}}
{{- define "vllm-rdma.rdmaVolumes" -}}
{{- $root := .root }}
{{- $fullname := include "vllm-rdma.fullname" $root -}}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ $root.Values.resources.shmSize }}
- name: nccl-config
  configMap:
    name: {{ default (printf "%s-nccl" $fullname) .configMap }}
- name: scripts
  configMap:
    name: {{ default (printf "%s-scripts" $fullname) .configMap }}
    defaultMode: 0555
{{- if eq $root.Values.rdma.mode "hostNetwork" }}
- name: infiniband
  hostPath:
    path: {{ $root.Values.rdma.devicePath | quote }}
    type: Directory
{{- end }}
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
    {{- include "vllm-rdma.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $role }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ printf "%s%s" (include (print $root.Template.BasePath "/configmap-nccl.yaml") $root) (include (print $root.Template.BasePath "/configmap-scripts.yaml") $root) | sha256sum }}
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
  {{- include "vllm-rdma.placement" (dict "root" $root "components" (list "leader" "worker")) | trim | nindent 2 }}
  {{- if eq $v.model.storage.type "download" }}
  initContainers:
    - name: download-model
      image: "{{ $v.image.repository }}:{{ $v.image.tag }}"
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: ["/bin/bash", "/opt/helm-rdma/entrypoint.sh"]
      env:
        - name: HELM_RDMA_ROLE
          value: download
        - name: HELM_RDMA_MODEL
          value: {{ $v.model.name | quote }}
        - name: HELM_RDMA_MODEL_DIR
          value: {{ include "vllm-rdma.modelArg" $root | quote }}
        - name: HF_HOME
          value: {{ printf "%s/hf" $v.model.storage.mountPath | quote }}
        {{- with include "vllm-rdma.hfTokenEnv" $root }}
        {{- . | nindent 8 }}
        {{- end }}
      volumeMounts:
        - name: model
          mountPath: {{ $v.model.storage.mountPath | quote }}
        - name: scripts
          mountPath: /opt/helm-rdma
  {{- end }}
  containers:
    - name: vllm
      image: "{{ $v.image.repository }}:{{ $v.image.tag }}"
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: ["/bin/bash", "/opt/helm-rdma/entrypoint.sh"]
      args:
        {{- include "vllm-rdma.serveArgs" $root | nindent 8 }}
      env:
        - name: HELM_RDMA_ROLE
          value: {{ $role | quote }}
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
        {{- if eq $v.workload.kind "LeaderWorkerSet" }}
        - name: HELM_RDMA_GROUP
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['leaderworkerset.sigs.k8s.io/group-index']
        {{- else }}
        - name: HELM_RDMA_LEADER_PREFIX
          value: {{ printf "%s-leader" (include "vllm-rdma.fullname" $root) | quote }}
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
        {{- end }}
        - name: HF_HOME
          value: {{ printf "%s/hf" $v.model.storage.mountPath | quote }}
        {{- with include "vllm-rdma.hfTokenEnv" $root }}
        {{- . | nindent 8 }}
        {{- end }}
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
        - name: ray-dashboard
          containerPort: {{ $v.distributed.ray.dashboardPort }}
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
        failureThreshold: {{ mul $v.probes.startupMinutes 2 }}
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
  volumes:
    {{- include "vllm-rdma.rdmaVolumes" (dict "root" $root "configMap" "") | trim | nindent 4 }}
    - name: model
      {{- if eq $v.model.storage.type "hostPath" }}
      hostPath:
        path: {{ $v.model.storage.hostPath | quote }}
        type: DirectoryOrCreate
      {{- else if eq $v.model.storage.type "pvc" }}
      persistentVolumeClaim:
        claimName: {{ $v.model.storage.claimName | quote }}
      {{- else }}
      emptyDir:
        sizeLimit: {{ $v.model.storage.sizeLimit }}
      {{- end }}
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
