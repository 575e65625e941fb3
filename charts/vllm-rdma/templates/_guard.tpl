{{/*
The port guard of a serving pod under hostNetwork (vllm-rdma.portGuard): a restartable init container, so the
kubelet starts it before every other container of the pod (and the next only once its startup probe found the table
loaded), keeps it running beside vLLM, and stops it last (Kubernetes "Sidecar Containers"; beta and on by default
since 1.29). files/port_guard.py says what the table does and trusts. It needs: CAP_NET_ADMIN in the node's network
namespace (the pod's, under hostNetwork) to load nftables rules, and the node's cgroup namespace, both of which it has
privileged (as the RDMA containers are by default); the host's /sys/fs/cgroup at /sys/fs/cgroup, where
nft resolves the pod's cgroup path (nftables src/datatype.c, cgroupv2 paths are relative to /sys/fs/cgroup); and the
pod's uid (downward API), which names the pod's cgroup (kubelet, pkg/kubelet/cm). Requests equal limits, so a
Guaranteed pod stays Guaranteed. As the leader's first container it names the API key's Secret
(vllm-rdma.apiKeySecretCheckEnv). (dict "root" $ "keyCheck" bool)
*/}}
{{- define "vllm-rdma.portGuardContainer" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $g := $v.distributed.portGuard }}
{{- $fullname := include "vllm-rdma.fullname" $root }}
{{- $ns := $root.Release.Namespace }}
{{- $peers := list (printf "%s.%s.svc" $fullname $ns) }}
{{- if eq $v.workload.kind "StatefulSet" }}
{{- $peers = list (printf "%s-leader.%s.svc" $fullname $ns) (printf "%s-worker.%s.svc" $fullname $ns) }}
{{- end -}}
- name: port-guard
  image: {{ include "vllm-rdma.imageRef" $g.image | quote }}
  imagePullPolicy: IfNotPresent
  restartPolicy: Always
  command: ["python3", "/opt/helm-rdma/port_guard.py"]
  env:
    - name: HELM_RDMA_POD_UID
      valueFrom:
        fieldRef:
          fieldPath: metadata.uid
    # The release's pods, by the headless Services that publish them (ready or not): under LeaderWorkerSet the one
    # the controller names after it, which selects every group's pods (kubernetes-sigs/lws, the Shared subdomain
    # policy); under StatefulSets the leaders' and the workers'.
    - name: HELM_RDMA_GUARD_PEERS
      value: {{ join " " $peers | quote }}
    - name: HELM_RDMA_GUARD_OPEN
      value: {{ join "," (concat (list $v.vllm.port) $g.openPorts | uniq) | quote }}
    {{- with $g.peerNodePorts }}
    - name: HELM_RDMA_GUARD_NODE_PORTS
      value: {{ join "," (. | uniq) | quote }}
    {{- end }}
    - name: HELM_RDMA_GUARD_REFRESH_SECONDS
      value: {{ $g.refreshSeconds | quote }}
    - name: PYTHONDONTWRITEBYTECODE
      value: "1"
    {{- if .keyCheck }}
    {{- include "vllm-rdma.apiKeySecretCheckEnv" $root | nindent 4 }}
    {{- end }}
  startupProbe:
    exec:
      command: ["cat", "/tmp/port-guard.ready"]
    periodSeconds: 1
    failureThreshold: 120
  resources:
    requests:
      cpu: 50m
      memory: 128Mi
    limits:
      cpu: 50m
      memory: 128Mi
  securityContext:
    # Privileged for the node's cgroup namespace (and CAP_NET_ADMIN): containerd and CRI-O give every other container
    # on cgroup v2 a namespace of its own, from which the rule would match nothing (files/port_guard.py).
    privileged: true
    runAsUser: 0
  volumeMounts:
    - name: scripts
      mountPath: /opt/helm-rdma
      readOnly: true
    - name: host-cgroup
      mountPath: /sys/fs/cgroup
      readOnly: true
{{- end }}
