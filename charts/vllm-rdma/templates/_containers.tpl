{{/* Containers of the serving pods: vLLM, the download, the preflight and the group's barrier, and their
environment, resources and mounts. */}}

{{/*
The serving container of one role of a group: vLLM with the group's environment, probes (the leader), GPUs,
RDMA devices and mounts. (dict "root" $ "role" "leader"|"worker")
*/}}
{{- define "vllm-rdma.vllmContainer" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $role := .role -}}
- name: vllm
  image: {{ include "vllm-rdma.image" $root | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command: ["/bin/bash", "/opt/helm-rdma/entrypoint.sh"]
  args:
    {{- include "vllm-rdma.serveArgs" $root | nindent 4 }}
  env:
    - name: HELM_RDMA_TASK
      value: serve
    {{- include "vllm-rdma.groupEnv" . | nindent 4 }}
    {{- if and (include "vllm-rdma.preflight" $root) (not (include "vllm-rdma.preflightInit" $root)) }}
    # The preflight, the group's barrier, before vLLM, each time the group forms (see vllm-rdma.preflightInit).
    - name: HELM_RDMA_PREFLIGHT_ARGS
      value: {{ include "vllm-rdma.preflightArgs" $root | fromYamlArray | join " " | quote }}
    {{- include "vllm-rdma.preflightEnv" $root | nindent 4 }}
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
    {{- include "vllm-rdma.apiKeyEnv" $root | nindent 4 }}
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
    {{- . | nindent 4 }}
    {{- end }}
    {{- end }}
    # How long vLLM's front end waits for its engine to load the model (vLLM's default, 600 s, is too short
    # for a large model): the start-up budget the plan chose (probes.startupMinutes).
    - name: VLLM_ENGINE_READY_TIMEOUT_S
      value: {{ mul $v.probes.startupMinutes 60 | quote }}
    {{- include "vllm-rdma.ncclEnv" $root | trim | nindent 4 }}
    {{- with $v.vllm.extraEnv }}
    {{- toYaml . | nindent 4 }}
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
  {{- if and (eq $role "worker") $v.autoscaling.enabled }}
  # A worker outlives its leader's drain (vllm-rdma.workerDrainScript).
  lifecycle:
    preStop:
      exec:
        command: ["/bin/bash", "-c", {{ include "vllm-rdma.workerDrainScript" $root | quote }}]
  {{- end }}
  resources:
    {{- include "vllm-rdma.gpuResources" $root | trim | nindent 4 }}
  securityContext:
    {{- include "vllm-rdma.rdmaSecurityContext" $root | trim | nindent 4 }}
  volumeMounts:
    {{- include "vllm-rdma.rdmaVolumeMounts" $root | trim | nindent 4 }}
    - name: model
      mountPath: {{ $v.model.storage.mountPath | quote }}
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
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
{{- with $v.api.keySecret.name }}
# A JOIN proves the release's key (an HMAC of a nonce the leader sends; files/group_watch.py): without it, a process
# on a worker's node could take that worker's rank before it joins.
- name: HELM_RDMA_WATCH_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $v.api.keySecret.key | quote }}
{{- end }}
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
    {{- if eq .role "leader" }}
    {{- include "vllm-rdma.preflightEventEnv" $root | nindent 4 }}
    {{- end }}
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
    {{- if eq .role "leader" }}
    # The only container with an API token: the leader records the figure as an Event (files/preflight_event.py).
    - name: {{ include "vllm-rdma.preflightEventsVolume" $root }}
      mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      readOnly: true
    {{- end }}
  # The summary (the measured figure and the verdict) stays in the pod's status after the container ended.
  terminationMessagePath: /dev/termination-log
  terminationMessagePolicy: FallbackToLogsOnError
{{- if eq $pf.onFailure "fail" }}
{{ include "vllm-rdma.preflightVerdictContainer" . }}
{{- end }}
{{- end }}

{{/*
The preflight's Event (files/preflight_event.py): the pod's uid and node from the downward API (its name and namespace
come with vllm-rdma.identityEnv), and the release's selector labels, which the Event carries so that verify and
status find it after the pods are gone.
*/}}
{{- define "vllm-rdma.preflightEventEnv" -}}
- name: HELM_RDMA_PREFLIGHT_EVENTS
  value: "true"
- name: HELM_RDMA_EVENT_LABELS
  value: {{ include "vllm-rdma.selectorLabels" . | fromYaml | toJson | quote }}
- name: POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
{{- end }}

{{/*
The name of the preflight's token volume.
*/}}
{{- define "vllm-rdma.preflightEventsVolume" -}}
preflight-api-token
{{- end }}

{{/*
The preflight's API token, as the ServiceAccount admission plugin would mount it in every container (a bound token,
kube-root-ca.crt's CA, the namespace, mode 0644: kubernetes plugin/pkg/admission/serviceaccount/admission.go,
TokenVolumeSource), but in the preflight container only: the ServiceAccount sets automountServiceAccountToken: false,
so vLLM and the other containers hold no token.
*/}}
{{- define "vllm-rdma.preflightEventsTokenVolume" -}}
- name: {{ include "vllm-rdma.preflightEventsVolume" . }}
  projected:
    defaultMode: 0644
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                apiVersion: v1
                fieldPath: metadata.namespace
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
The workload image, repository:tag, with @digest when image.digest is set (vllm-rdma.imageRef).
*/}}
{{- define "vllm-rdma.image" -}}
{{- include "vllm-rdma.imageRef" .Values.image }}
{{- end }}

{{/*
The download init container: fetches only what vLLM loads into the model directory, resuming and skipping complete
files, with progress (files/fetch_model.py). On a shared claim (pvc) the leader downloads and the workers wait for
it. (dict "root" $ "role" ...)
*/}}
{{- define "vllm-rdma.downloadContainer" -}}
{{- $v := .root.Values }}
{{- include "vllm-rdma.fetchContainer" (dict "root" .root "role" .role "name" "download-model" "repo" $v.model.name "revision" $v.model.revision "dest" (include "vllm-rdma.modelDir" .root) "keyCheck" .keyCheck "stages" (gt (int $v.nodes) 1)) }}
{{- end }}

{{/*
The download's arguments that say which pipeline stages the pod's node runs (files/fetch_model.py fetches only their
shards, or says why it fetches the whole checkpoint: pvc storage, Ray beyond 2 nodes, speculative decoding, a
quantized model whose loaded weights vLLM does not check), with vLLM's --model-loader-extra-config and --quantization
from vllm.extraArgs, which decide whether vLLM checks that every weight of its stage was loaded, and
--speculative-config (also spelt with "_" for "-", or as dotted sub-keys such as --speculative-config.method=mtp).
(dict "root" $ "role" ...)
*/}}
{{- define "vllm-rdma.stageArgs" -}}
{{- $v := .root.Values -}}
- "--pipeline-parallel-size"
- {{ $v.vllm.pipelineParallelSize | quote }}
- "--tensor-parallel-size"
- {{ $v.vllm.tensorParallelSize | quote }}
- "--gpus-per-node"
- {{ $v.preset.gpusPerNode | quote }}
- "--nodes"
- {{ $v.nodes | quote }}
- "--backend"
- {{ $v.distributed.backend | quote }}
- "--storage"
- {{ $v.model.storage.type | quote }}
- "--workload"
- {{ $v.workload.kind | quote }}
- "--role"
- {{ .role | quote }}
{{- $args := $v.vllm.extraArgs }}
{{- range $i, $a := $args }}
{{- /* the option's name as vLLM's FlexibleArgumentParser reads it: "_" is "-" (utils/argparse_utils.py) */}}
{{- $name := replace "_" "-" (regexReplaceAll "=.*$" (toString $a) "") }}
{{- if and (eq $name "--model-loader-extra-config") (not (contains "=" (toString $a))) (lt (add1 $i) (len $args)) }}
- "--loader-extra-config"
- {{ index $args (add1 $i) | quote }}
{{- else if eq $name "--model-loader-extra-config" }}
- "--loader-extra-config"
- {{ regexReplaceAll "^[^=]*=" (toString $a) "" | quote }}
{{- else if or (eq $name "--quantization") (eq $name "-q") (hasPrefix "--quantization." $name) }}
- "--quantize-flag"
{{- else if or (eq $name "--speculative-config") (hasPrefix "--speculative-config." $name) }}
- "--speculative-flag"
{{- end }}
{{- end }}
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
    {{- if .stages }}
    {{- include "vllm-rdma.stageArgs" (dict "root" $root "role" .role) | nindent 4 }}
    {{- end }}
  env:
    - name: HF_HOME
      value: {{ printf "%s/.hf-home" (trimSuffix "/" $v.model.storage.mountPath) | quote }}
    - name: HF_HUB_DISABLE_PROGRESS_BARS
      value: "1"
    {{- if .stages }}
    {{- if eq $v.workload.kind "StatefulSet" }}
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    {{- end }}
    {{- range $v.vllm.extraEnv }}
    {{- if eq .name "VLLM_PP_LAYER_PARTITION" }}
    - name: VLLM_PP_LAYER_PARTITION
      value: {{ .value | quote }}
    {{- end }}
    {{- end }}
    {{- end }}
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
    {{- /* fetch_model.py and the pipeline_stages.py it imports, from the scripts ConfigMap */}}
    - name: scripts
      mountPath: /opt/helm-rdma
      readOnly: true
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
