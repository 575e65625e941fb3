{{/*
Hook events of the objects the OCI hook Jobs need (ServiceAccount, RBAC, values Secret). Hooks are not part of the
release and helm uninstall never deletes them (helm docs "Chart Hooks"): these carry hook-delete-policy
before-hook-creation,hook-succeeded (vllm-rdma.hookDeletePolicy), so helm deletes them once every hook of the event
succeeded, and they are pre-delete hooks too, even without a deprovision Job: on helm uninstall helm deletes what a
failed install left of them (before-hook-creation), creates them again and deletes them again (hook-succeeded). Helm
3.17 and 3.18 do not delete the earlier hooks of an event whose later hook failed (3.19 and 4 do: pkg/action/hooks.go,
deleteHooksByPolicy(executingHooks[0:i], HookSucceeded)); this pre-delete pass removes them there too.
*/}}
{{- define "vllm-rdma.ociHookEvents" -}}
{{- $events := list }}
{{- if .Values.clusterNetwork.provision }}{{ $events = concat $events (list "pre-install" "pre-upgrade" "pre-rollback" "post-upgrade" "post-rollback") }}{{ end }}
{{- $events = append $events "pre-delete" }}
{{- join "," $events }}
{{- end }}

{{/*
Name of the provisioner's ServiceAccount (also its ClusterRole's, prefixed with the namespace).
*/}}
{{- define "vllm-rdma.provisionerName" -}}
{{- printf "%s-provisioner" (include "vllm-rdma.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The cluster network's display name: clusterNetwork.name, else RELEASE.NAMESPACE, so that one release name in two
namespaces never shares a network. It is also the nodes' placement label value, hence label-safe: at most 63
characters (a longer default keeps 54 and adds a hash of the whole).
*/}}
{{- define "vllm-rdma.clusterNetworkName" -}}
{{- $name := default (printf "%s.%s" .Release.Name .Release.Namespace) .Values.clusterNetwork.name }}
{{- if gt (len $name) 63 }}
{{- printf "%s-%s" ($name | trunc 54) ($name | sha256sum | trunc 8) }}
{{- else }}
{{- $name }}
{{- end }}
{{- end }}

{{/*
The cluster-network label value: placement.clusterNetworkLabel.value, else the cluster network's name.
*/}}
{{- define "vllm-rdma.clusterNetworkLabelValue" -}}
{{- default (include "vllm-rdma.clusterNetworkName" .) .Values.placement.clusterNetworkLabel.value }}
{{- end }}

{{/*
The pod spec of an OCI hook Job. Call with (dict "root" $ "args" (list ...)).
*/}}
{{- define "vllm-rdma.provisionerPod" -}}
{{- $root := .root }}
{{- $cn := $root.Values.clusterNetwork -}}
metadata:
  labels:
    {{- include "vllm-rdma.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: provisioner
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $root.Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "vllm-rdma.provisionerName" $root }}
  restartPolicy: Never
  {{- with include "vllm-rdma.offNetworkAffinity" $root }}
  {{- . | trim | nindent 2 }}
  {{- end }}
  {{- /* The provisioner image's own pull Secrets, then the release's (imagePullSecrets), each once. */}}
  {{- with concat $cn.image.pullSecrets $root.Values.imagePullSecrets | uniq }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    # The kubelet gives a Secret volume's files group fsGroup and group read: the apiKey Secret is root's otherwise.
    fsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: provisioner
      image: {{ include "vllm-rdma.provisionerImage" $root | quote }}
      imagePullPolicy: {{ $cn.image.pullPolicy }}
      args:
        {{- toYaml .args | nindent 8 }}
      env:
        - name: HOME
          value: /tmp
        {{- if $cn.region }}
        - name: OCI_RESOURCE_PRINCIPAL_REGION
          value: {{ $cn.region | quote }}
        {{- end }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: ["ALL"]
      resources:
        requests:
          cpu: 50m
          memory: 128Mi
        limits:
          memory: 512Mi
      volumeMounts:
        - name: values
          mountPath: /etc/helm-rdma
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if eq $cn.auth "apiKey" }}
        - name: oci
          mountPath: /etc/oci
          readOnly: true
        {{- end }}
  volumes:
    - name: values
      secret:
        secretName: {{ include "vllm-rdma.provisionerName" $root }}
    - name: tmp
      emptyDir: {}
    {{- if eq $cn.auth "apiKey" }}
    - name: oci
      secret:
        secretName: {{ $cn.apiKeySecret | quote }}
        defaultMode: 0440
    {{- end }}
{{- end }}

{{/*
Auth flags of the helm-rdma CLI for the configured auth mode.
*/}}
{{- define "vllm-rdma.ociAuthArgs" -}}
{{- $cn := .Values.clusterNetwork }}
- "--auth"
- {{ $cn.auth | quote }}
{{- if eq $cn.auth "apiKey" }}
- "--oci-config"
- "/etc/oci/config"
- "--oci-profile"
- {{ $cn.apiKeyProfile | quote }}
{{- end }}
{{- if $cn.endpoint }}
- "--oci-endpoint"
- {{ $cn.endpoint | quote }}
{{- end }}
{{- end }}
