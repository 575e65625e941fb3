{{/*
Generated from schemas/rules.yaml by `python -m helm_rdma.dev.chart_sync` (make chart): edit the table, not this file.
The chart's cross-field rules, which `helm-rdma doctor` reports in the same words (generator/helm_rdma/checks/rules.py).
*/}}

{{/*
Whether the node's /dev/infiniband is mounted: hostNetwork mode without a device plugin (which grants and mounts the
devices itself).
*/}}
{{- define "vllm-rdma.hostDevices" -}}
{{- $v := .Values }}
{{- if (and (eq (toString $v.rdma.mode) "hostNetwork") (empty $v.rdma.devicePluginResource)) }}true{{ end }}
{{- end }}

{{/*
Whether the RDMA containers run privileged: rdma.privileged, or when that is null, exactly in hostNetwork mode without
rdma.devicePluginResource. A hostPath /dev/infiniband adds no device-cgroup permission: an unprivileged container sees
the device nodes but cannot open uverbs* (runc, crun and CRI-O allow only default devices and those a device plugin
grants), so NCCL falls back to sockets. Source: oracle-quickstart/oci-hpc-oke
docs/using-rdma-network-interfaces-in-manifests.md (every RDMA manifest runs privileged).
*/}}
{{- define "vllm-rdma.privileged" -}}
{{- $v := .Values }}
{{- if (ternary (include "vllm-rdma.hostDevices" $) $v.rdma.privileged (kindIs "invalid" $v.rdma.privileged)) }}true{{ end }}
{{- end }}

{{/*
Whether the pods of a group watch each other and restart together (StatefulSet mode; LeaderWorkerSet's
RecreateGroupOnPodRestart does it there): vLLM's headless workers block forever when the leader goes away (vllm
v1/executor/multiproc_executor.py, dequeue(indefinite=True)), and a new leader waits for workers that never rejoin.
*/}}
{{- define "vllm-rdma.groupWatch" -}}
{{- $v := .Values }}
{{- if (and (eq (toString $v.workload.kind) "StatefulSet") (gt (float64 $v.nodes) (float64 1))) }}true{{ end }}
{{- end }}

{{/*
Whether each group's pods run the NCCL preflight: enabled, and a group spans more than one node (one node has no RDMA
path to test).
*/}}
{{- define "vllm-rdma.preflight" -}}
{{- $v := .Values }}
{{- if (and $v.verify.preflight.enabled (gt (float64 $v.nodes) (float64 1))) }}true{{ end }}
{{- end }}

{{/*
Whether the preflight is an init container (LeaderWorkerSet: a group restarts as new pods, so init containers run on
every group start). In StatefulSet mode the pods restart their containers in place, and init containers do not run
again on a container restart: there the preflight runs in the serving container, under the group watch, before vLLM,
so every re-formed group measures again on all its nodes.
*/}}
{{- define "vllm-rdma.preflightInit" -}}
{{- $v := .Values }}
{{- if (and (include "vllm-rdma.preflight" $) (eq (toString $v.workload.kind) "LeaderWorkerSet")) }}true{{ end }}
{{- end }}

{{/*
Whether any OCI hook runs: provisioning before install/upgrade, or deprovisioning on uninstall (the hooks'
ServiceAccount, RBAC and values ConfigMap exist exactly then).
*/}}
{{- define "vllm-rdma.ociHooks" -}}
{{- $v := .Values }}
{{- if (or $v.clusterNetwork.provision $v.clusterNetwork.deleteOnUninstall) }}true{{ end }}
{{- end }}

{{/*
Whether pods select nodes by the cluster-network label: placement.clusterNetworkLabel.enabled, and when that is null,
whether this release provisions the nodes (and so labels them).
*/}}
{{- define "vllm-rdma.clusterNetworkLabelEnabled" -}}
{{- $v := .Values }}
{{- if (ternary $v.clusterNetwork.provision $v.placement.clusterNetworkLabel.enabled (kindIs "invalid" $v.placement.clusterNetworkLabel.enabled)) }}true{{ end }}
{{- end }}

{{/*
Rule parallelism (schemas/rules.yaml): vllm.tensorParallelSize, vllm.pipelineParallelSize, nodes, preset.gpusPerNode.
*/}}
{{- define "vllm-rdma.rule.parallelism" -}}
{{- $v := .Values }}
{{- if (ne (toString (mul $v.vllm.tensorParallelSize $v.vllm.pipelineParallelSize)) (toString (mul $v.nodes $v.preset.gpusPerNode))) }}
  {{- printf "vllm.tensorParallelSize: TP %s x PP %s = %s, but a group has %s GPUs (nodes %s x preset.gpusPerNode %s); fix: set vllm.tensorParallelSize=%s and vllm.pipelineParallelSize=%s, or change nodes" (join ", " $v.vllm.tensorParallelSize) (join ", " $v.vllm.pipelineParallelSize) (join ", " (mul $v.vllm.tensorParallelSize $v.vllm.pipelineParallelSize)) (join ", " (mul $v.nodes $v.preset.gpusPerNode)) (join ", " $v.nodes) (join ", " $v.preset.gpusPerNode) (join ", " $v.preset.gpusPerNode) (join ", " $v.nodes) }}
{{- end }}
{{- end }}

{{/*
Rule nvidia-gpu-resource (schemas/rules.yaml): preset.gpuResource, preset.gpuVendor.
*/}}
{{- define "vllm-rdma.rule.nvidia-gpu-resource" -}}
{{- $v := .Values }}
{{- if (and (eq (toString $v.preset.gpuVendor) "nvidia") (ne (toString $v.preset.gpuResource) "nvidia.com/gpu")) }}
  {{- printf "preset.gpuResource: is %s, but preset.gpuVendor is nvidia; fix: set preset.gpuResource=nvidia.com/gpu" (join ", " $v.preset.gpuResource) }}
{{- end }}
{{- end }}

{{/*
Rule amd-gpu-resource (schemas/rules.yaml): preset.gpuResource, preset.gpuVendor.
*/}}
{{- define "vllm-rdma.rule.amd-gpu-resource" -}}
{{- $v := .Values }}
{{- if (and (eq (toString $v.preset.gpuVendor) "amd") (ne (toString $v.preset.gpuResource) "amd.com/gpu")) }}
  {{- printf "preset.gpuResource: is %s, but preset.gpuVendor is amd; fix: set preset.gpuResource=amd.com/gpu" (join ", " $v.preset.gpuResource) }}
{{- end }}
{{- end }}

{{/*
Rule nvidia-nccl-config (schemas/rules.yaml): nccl.configFile, preset.gpuVendor.
*/}}
{{- define "vllm-rdma.rule.nvidia-nccl-config" -}}
{{- $v := .Values }}
{{- if (and (ne (toString $v.preset.gpuVendor) "amd") (ne (toString $v.nccl.configFile) "/etc/nccl.conf")) }}
  {{- printf "nccl.configFile: is %s, but NCCL reads /etc/nccl.conf (preset.gpuVendor is %s); fix: set nccl.configFile=/etc/nccl.conf" (join ", " $v.nccl.configFile) (join ", " $v.preset.gpuVendor) }}
{{- end }}
{{- end }}

{{/*
Rule amd-nccl-config (schemas/rules.yaml): nccl.configFile, preset.gpuVendor.
*/}}
{{- define "vllm-rdma.rule.amd-nccl-config" -}}
{{- $v := .Values }}
{{- if (and (eq (toString $v.preset.gpuVendor) "amd") (ne (toString $v.nccl.configFile) "/etc/rccl.conf")) }}
  {{- printf "nccl.configFile: is %s, but RCCL reads /etc/rccl.conf (preset.gpuVendor is amd); fix: set nccl.configFile=/etc/rccl.conf" (join ", " $v.nccl.configFile) }}
{{- end }}
{{- end }}

{{/*
Rule ray-image (schemas/rules.yaml): distributed.backend, image.repository, image.tag.
*/}}
{{- define "vllm-rdma.rule.ray-image" -}}
{{- $v := .Values }}
{{- if (and (eq (toString $v.distributed.backend) "ray") (has $v.image.repository (list "vllm/vllm-openai" "docker.io/vllm/vllm-openai")) (and (regexMatch "^v?[0-9]{1,9}\\.[0-9]{1,9}\\.[0-9]{1,9}([^0-9]|$)" (toString $v.image.tag)) (semverCompare ">=0.18.0-0" (regexFind "^[0-9]{1,9}\\.[0-9]{1,9}\\.[0-9]{1,9}" (trimPrefix "v" (toString $v.image.tag)))))) }}
  {{- printf "distributed.backend: is ray, but the stock image %s:%s ships no Ray (stock vLLM images dropped it from v0.18); fix: set image.tag=v0.17.1, use an image with Ray, or set distributed.backend=native" (join ", " $v.image.repository) (join ", " $v.image.tag) }}
{{- end }}
{{- end }}

{{/*
Rule image-short-name (schemas/rules.yaml): image.repository.
*/}}
{{- define "vllm-rdma.rule.image-short-name" -}}
{{- $v := .Values }}
{{- $imageHost := "^(localhost|[^/]*[.:][^/]*)/" }}
{{- if (not (regexMatch $imageHost (toString $v.image.repository))) }}
  {{- printf "image.repository: is %s, a short name without a registry host, which CRI-O 1.34 and later may refuse to pull (short-name mode) on nodes not set up to allow it; fix: write the registry host, e.g. docker.io/%s" (join ", " $v.image.repository) (join ", " $v.image.repository) }}
{{- end }}
{{- end }}

{{/*
Rule test-image-short-name (schemas/rules.yaml): verify.tests.image.repository, verify.tests.enabled.
*/}}
{{- define "vllm-rdma.rule.test-image-short-name" -}}
{{- $v := .Values }}
{{- $imageHost := "^(localhost|[^/]*[.:][^/]*)/" }}
{{- if (and $v.verify.tests.enabled (not (regexMatch $imageHost (toString $v.verify.tests.image.repository)))) }}
  {{- printf "verify.tests.image.repository: is %s, a short name without a registry host, which CRI-O 1.34 and later may refuse to pull (short-name mode); fix: write the registry host, e.g. docker.io/library/%s for a Docker Official Image" (join ", " $v.verify.tests.image.repository) (join ", " $v.verify.tests.image.repository) }}
{{- end }}
{{- end }}

{{/*
Rule provisioner-image-short-name (schemas/rules.yaml): clusterNetwork.image.repository.
*/}}
{{- define "vllm-rdma.rule.provisioner-image-short-name" -}}
{{- $v := .Values }}
{{- $imageHost := "^(localhost|[^/]*[.:][^/]*)/" }}
{{- if (and (include "vllm-rdma.ociHooks" $) (not (empty $v.clusterNetwork.image.repository)) (not (regexMatch $imageHost (toString $v.clusterNetwork.image.repository)))) }}
  {{- printf "clusterNetwork.image.repository: is %s, a short name without a registry host, which CRI-O 1.34 and later may refuse to pull (short-name mode); fix: write the registry host, e.g. REGION-KEY.ocir.io/TENANCY-NAMESPACE/helm-rdma-provisioner" (join ", " $v.clusterNetwork.image.repository) }}
{{- end }}
{{- end }}

{{/*
Rule pvc-claim (schemas/rules.yaml): model.storage.claimName, model.storage.type.
*/}}
{{- define "vllm-rdma.rule.pvc-claim" -}}
{{- $v := .Values }}
{{- if (and (eq (toString $v.model.storage.type) "pvc") (empty $v.model.storage.claimName)) }}
  {{- printf "model.storage.claimName: is empty, but model.storage.type is pvc; fix: name an existing ReadWriteMany or ReadOnlyMany claim" }}
{{- end }}
{{- end }}

{{/*
Rule host-ports (schemas/rules.yaml): vllm.port, distributed.masterPort, distributed.groupWatchPort, distributed.ray.port, distributed.ray.dashboardPort, distributed.ray.clientPort.
*/}}
{{- define "vllm-rdma.rule.host-ports" -}}
{{- $v := .Values }}
{{- $hostPorts := (concat (list (int $v.vllm.port) (int $v.distributed.masterPort)) (ternary (list (int $v.distributed.ray.port) (int $v.distributed.ray.dashboardPort) (int $v.distributed.ray.clientPort)) (list) (eq (toString $v.distributed.backend) "ray")) (ternary (list (int $v.distributed.groupWatchPort)) (list) (not (empty (include "vllm-rdma.groupWatch" $))))) }}
{{- if (and (eq (toString $v.rdma.mode) "hostNetwork") (ne (len $hostPorts) (len (uniq $hostPorts)))) }}
  {{- printf "vllm.port: under hostNetwork every port binds on the node, but vllm.port, distributed.masterPort, distributed.groupWatchPort and the Ray ports repeat one (%s); fix: make them distinct" (join ", " $hostPorts) }}
{{- end }}
{{- end }}

{{/*
Rule unprivileged-host-devices (schemas/rules.yaml): rdma.privileged, rdma.mode, rdma.devicePluginResource.
*/}}
{{- define "vllm-rdma.rule.unprivileged-host-devices" -}}
{{- $v := .Values }}
{{- if (and (eq (toString $v.rdma.mode) "hostNetwork") (eq (toString $v.rdma.privileged) "false") (empty $v.rdma.devicePluginResource)) }}
  {{- printf "rdma.privileged: is false in hostNetwork mode without rdma.devicePluginResource: an unprivileged container cannot open the node's /dev/infiniband devices and NCCL falls back to TCP sockets; fix: set rdma.devicePluginResource (a device plugin that grants the RDMA devices, such as rdma/rdma_shared_device_a) or leave rdma.privileged null" }}
{{- end }}
{{- end }}

{{/*
Rule ray-without-token (schemas/rules.yaml): distributed.ray.authTokenSecret.name, distributed.backend, rdma.mode, distributed.ray.allowUnauthenticated.
*/}}
{{- define "vllm-rdma.rule.ray-without-token" -}}
{{- $v := .Values }}
{{- if (and (eq (toString $v.rdma.mode) "hostNetwork") (eq (toString $v.distributed.backend) "ray") (empty $v.distributed.ray.authTokenSecret.name) (not $v.distributed.ray.allowUnauthenticated)) }}
  {{- printf "distributed.ray.authTokenSecret.name: is empty with distributed.backend=ray under hostNetwork: Ray's ports would listen on the node's VCN address without authentication, and anyone who reaches them can run code in the pods; fix: kubectl create secret generic ray-token --from-literal=token=$(openssl rand -hex 32), then set distributed.ray.authTokenSecret.name=ray-token (Ray 2.52+); or set distributed.ray.allowUnauthenticated=true where OCI security rules keep the ports closed" }}
{{- end }}
{{- end }}

{{/*
Rule api-without-key (schemas/rules.yaml): api.keySecret.name, rdma.mode, api.allowUnauthenticated.
*/}}
{{- define "vllm-rdma.rule.api-without-key" -}}
{{- $v := .Values }}
{{- if (and (eq (toString $v.rdma.mode) "hostNetwork") (empty $v.api.keySecret.name) (not $v.api.allowUnauthenticated)) }}
  {{- printf "api.keySecret.name: is empty under hostNetwork: vLLM's API would listen on each leader node's VCN address without a key, and anyone who reaches it can use the model; fix: kubectl create secret generic api-key --from-literal=%s=$(openssl rand -hex 32), then set api.keySecret.name=api-key (helm rdma install and upgrade create one named after the release); or set api.allowUnauthenticated=true where OCI security rules keep vllm.port closed to everyone else" (join ", " $v.api.keySecret.key) }}
{{- end }}
{{- end }}

{{/*
Rule provisioning-ids (schemas/rules.yaml): clusterNetwork.provision, clusterNetwork.deleteOnUninstall, clusterNetwork.compartmentId, clusterNetwork.availabilityDomain, clusterNetwork.subnetId, clusterNetwork.imageId.
*/}}
{{- define "vllm-rdma.rule.provisioning-ids" -}}
{{- $v := .Values }}
{{- $_1 := list }}
{{- range $k := (list "compartmentId" "availabilityDomain" "subnetId" "imageId") }}
  {{- if (and (empty (get $v.clusterNetwork $k)) (or $v.clusterNetwork.provision (eq (toString $k) "compartmentId"))) }}
    {{- $_1 = append $_1 $k }}
  {{- end }}
{{- end }}
{{- $missingIds := (ternary $_1 (list) (not (empty (include "vllm-rdma.ociHooks" $)))) }}
{{- if (not (empty $missingIds)) }}
  {{- printf "clusterNetwork.provision: is on (or clusterNetwork.deleteOnUninstall), so a hook provisions or deprovisions the cluster network, but these clusterNetwork keys are empty: %s; fix: set them (install --provision takes --compartment, --availability-domain, --subnet and --image), or set clusterNetwork.provision=false and clusterNetwork.deleteOnUninstall=false" (join ", " $missingIds) }}
{{- end }}
{{- end }}

{{/*
Rule provisioner-image (schemas/rules.yaml): clusterNetwork.image.repository, clusterNetwork.provision, clusterNetwork.deleteOnUninstall.
*/}}
{{- define "vllm-rdma.rule.provisioner-image" -}}
{{- $v := .Values }}
{{- if (and (include "vllm-rdma.ociHooks" $) (empty $v.clusterNetwork.image.repository)) }}
  {{- printf "clusterNetwork.image.repository: is empty, and no public registry holds the provisioner image, so the hook's pod could never start; fix: build and push it to your registry (in a checkout, `make provisioner-image` prints the docker build, login and push commands for OCIR), then set clusterNetwork.image.repository=REGION-KEY.ocir.io/TENANCY-NAMESPACE/helm-rdma-provisioner" }}
{{- end }}
{{- end }}

{{/*
Rule nodes-join (schemas/rules.yaml): clusterNetwork.oke.clusterId, clusterNetwork.provision.
*/}}
{{- define "vllm-rdma.rule.nodes-join" -}}
{{- $v := .Values }}
{{- if (and $v.clusterNetwork.provision (empty $v.clusterNetwork.oke.clusterId) (empty $v.clusterNetwork.oke.cloudInit) (or (empty $v.clusterNetwork.oke.apiServerHost) (empty $v.clusterNetwork.oke.clusterCaCert))) }}
  {{- printf "clusterNetwork.oke.clusterId: is empty and no cloudInit is given, so the GPU nodes (billed by the hour) never join the cluster and the hook waits for them in vain; fix: set clusterNetwork.oke.clusterId to the OKE cluster's OCID: the nodes' cloud-init is then generated" }}
{{- end }}
{{- end }}

{{/*
Rule provisioning-api-key (schemas/rules.yaml): clusterNetwork.apiKeySecret, clusterNetwork.auth.
*/}}
{{- define "vllm-rdma.rule.provisioning-api-key" -}}
{{- $v := .Values }}
{{- if (and (include "vllm-rdma.ociHooks" $) (eq (toString $v.clusterNetwork.auth) "apiKey") (empty $v.clusterNetwork.apiKeySecret)) }}
  {{- printf "clusterNetwork.apiKeySecret: is empty, but clusterNetwork.auth is apiKey and a hook provisions or deprovisions; fix: name a Secret with the files config and oci_api_key.pem" }}
{{- end }}
{{- end }}

{{/*
Rule service-name (schemas/rules.yaml): fullnameOverride, nameOverride.
*/}}
{{- define "vllm-rdma.rule.service-name" -}}
{{- $v := .Values }}
{{- if (not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" (toString (include "vllm-rdma.fullname" $)))) }}
  {{- printf "fullnameOverride: the chart names its Services %s (from the release name %s, nameOverride and fullnameOverride), but a Service name must be lower-case letters, digits and '-' starting with a letter; fix: choose such a release name, or set fullnameOverride" (join ", " (include "vllm-rdma.fullname" $)) (join ", " $.Release.Name) }}
{{- end }}
{{- end }}

{{/*
Rule mount-paths (schemas/rules.yaml): model.storage.mountPath, rdma.devicePath, nccl.configFile.
*/}}
{{- define "vllm-rdma.rule.mount-paths" -}}
{{- $v := .Values }}
{{- $_1 := (concat (list "/dev/shm" "/opt/helm-rdma" "/tmp" $v.nccl.configFile $v.model.storage.mountPath) (ternary (list $v.rdma.devicePath) (list) (not (empty (include "vllm-rdma.hostDevices" $))))) }}
{{- if (ne (len $_1) (len (uniq $_1))) }}
  {{- printf "model.storage.mountPath: %s, rdma.devicePath (%s) and the chart's own mounts (/dev/shm, /opt/helm-rdma, /tmp and nccl.configFile, %s) repeat a path; fix: choose another path" (join ", " $v.model.storage.mountPath) (join ", " $v.rdma.devicePath) (join ", " $v.nccl.configFile) }}
{{- end }}
{{- end }}

{{/*
Rule node-selector-label (schemas/rules.yaml): placement.nodeSelector, placement.clusterNetworkLabel.key.
*/}}
{{- define "vllm-rdma.rule.node-selector-label" -}}
{{- $v := .Values }}
{{- if (and (include "vllm-rdma.clusterNetworkLabelEnabled" $) (hasKey $v.placement.nodeSelector $v.placement.clusterNetworkLabel.key)) }}
  {{- printf "placement.nodeSelector: repeats the key %s of placement.clusterNetworkLabel; fix: remove it from one of them" (join ", " $v.placement.clusterNetworkLabel.key) }}
{{- end }}
{{- end }}

{{/*
Rule sriov-resource (schemas/rules.yaml): rdma.sriov.resourceName, preset.gpuResource.
*/}}
{{- define "vllm-rdma.rule.sriov-resource" -}}
{{- $v := .Values }}
{{- if (and (eq (toString $v.rdma.mode) "sriov") (eq (toString $v.rdma.sriov.resourceName) (toString $v.preset.gpuResource))) }}
  {{- printf "rdma.sriov.resourceName: equals preset.gpuResource (%s); fix: name the VFs' own resource (nvidia.com/rdma-vf)" (join ", " $v.preset.gpuResource) }}
{{- end }}
{{- end }}

{{/*
Rule container-name-taken (schemas/rules.yaml): extraContainers, initContainers.
*/}}
{{- define "vllm-rdma.rule.container-name-taken" -}}
{{- $v := .Values }}
{{- $_1 := list }}
{{- range $_2 := ($v.initContainers | default list) }}
  {{- $_1 = append $_1 (get $_2 "name") }}
{{- end }}
{{- $_3 := list }}
{{- range $_4 := ($v.extraContainers | default list) }}
  {{- $_3 = append $_3 (get $_4 "name") }}
{{- end }}
{{- $userContainerNames := (concat $_1 $_3) }}
{{- $servingContainers := (list "vllm" "preflight" "preflight-verdict" "group-barrier" "download-model") }}
{{- $_5 := list }}
{{- range $_6, $_7 := ($v.vllm.lora.adapters | default list) }}
  {{- $_5 = append $_5 (printf "%s%d" "download-lora-" $_6) }}
{{- end }}
{{- $chartContainers := (concat $servingContainers $_5) }}
{{- $_8 := list }}
{{- range $n := $userContainerNames }}
  {{- if (has $n $chartContainers) }}
    {{- $_8 = append $_8 $n }}
  {{- end }}
{{- end }}
{{- $takenContainerNames := $_8 }}
{{- if (not (empty $takenContainerNames)) }}
  {{- printf "extraContainers: a container of initContainers or extraContainers is named %s, as one of the chart's containers (%s); fix: choose another name" (join ", " $takenContainerNames) (join ", " $chartContainers) }}
{{- end }}
{{- end }}

{{/*
Rule container-name-repeat (schemas/rules.yaml): extraContainers, initContainers.
*/}}
{{- define "vllm-rdma.rule.container-name-repeat" -}}
{{- $v := .Values }}
{{- $_1 := list }}
{{- range $_2 := ($v.initContainers | default list) }}
  {{- $_1 = append $_1 (get $_2 "name") }}
{{- end }}
{{- $_3 := list }}
{{- range $_4 := ($v.extraContainers | default list) }}
  {{- $_3 = append $_3 (get $_4 "name") }}
{{- end }}
{{- $userContainerNames := (concat $_1 $_3) }}
{{- if (ne (len $userContainerNames) (len (uniq $userContainerNames))) }}
  {{- printf "extraContainers: a container name repeats across initContainers and extraContainers (%s); fix: give each container its own name" (join ", " $userContainerNames) }}
{{- end }}
{{- end }}

{{/*
Rule volume-name-taken (schemas/rules.yaml): extraVolumes.
*/}}
{{- define "vllm-rdma.rule.volume-name-taken" -}}
{{- $v := .Values }}
{{- $chartVolumes := (concat (list "dshm" "nccl-config" "scripts") (ternary (list "infiniband") (list) (not (empty (include "vllm-rdma.hostDevices" $)))) (ternary (list "tmp") (list) (not (empty (include "vllm-rdma.preflightInit" $)))) (list "model")) }}
{{- $_2 := list }}
{{- range $_3 := ($v.extraVolumes | default list) }}
  {{- $_2 = append $_2 (get $_3 "name") }}
{{- end }}
{{- $_1 := list }}
{{- range $n := $_2 }}
  {{- if (has $n $chartVolumes) }}
    {{- $_1 = append $_1 $n }}
  {{- end }}
{{- end }}
{{- $takenVolumeNames := $_1 }}
{{- if (not (empty $takenVolumeNames)) }}
  {{- printf "extraVolumes: a volume is named %s, as one of the chart's volumes (%s); fix: choose another name" (join ", " $takenVolumeNames) (join ", " $chartVolumes) }}
{{- end }}
{{- end }}

{{/*
Rule volume-name-repeat (schemas/rules.yaml): extraVolumes.
*/}}
{{- define "vllm-rdma.rule.volume-name-repeat" -}}
{{- $v := .Values }}
{{- $_1 := list }}
{{- range $_2 := ($v.extraVolumes | default list) }}
  {{- $_1 = append $_1 (get $_2 "name") }}
{{- end }}
{{- if (ne (len $_1) (len (uniq $_1))) }}
  {{- $_3 := list }}
  {{- range $_4 := ($v.extraVolumes | default list) }}
    {{- $_3 = append $_3 (get $_4 "name") }}
  {{- end }}
  {{- printf "extraVolumes: a volume name repeats (%s); fix: give each volume its own name" (join ", " $_3) }}
{{- end }}
{{- end }}

{{/*
Rule unknown-volume (schemas/rules.yaml): extraVolumeMounts, initContainers, extraContainers.
*/}}
{{- define "vllm-rdma.rule.unknown-volume" -}}
{{- $v := .Values }}
{{- $userContainers := (concat ($v.initContainers | default list) ($v.extraContainers | default list)) }}
{{- $chartVolumes := (concat (list "dshm" "nccl-config" "scripts") (ternary (list "infiniband") (list) (not (empty (include "vllm-rdma.hostDevices" $)))) (ternary (list "tmp") (list) (not (empty (include "vllm-rdma.preflightInit" $)))) (list "model")) }}
{{- $_1 := list }}
{{- range $_2 := ($v.extraVolumes | default list) }}
  {{- $_1 = append $_1 (get $_2 "name") }}
{{- end }}
{{- $podVolumes := (concat $chartVolumes $_1) }}
{{- $_4 := list }}
{{- range $_5 := ($v.extraVolumeMounts | default list) }}
  {{- $_4 = append $_4 (get $_5 "name") }}
{{- end }}
{{- $_6 := list }}
{{- range $_7 := ($userContainers | default list) }}
  {{- range $_8 := ((get $_7 "volumeMounts") | default list) }}
    {{- $_6 = append $_6 (get $_8 "name") }}
  {{- end }}
{{- end }}
{{- $_3 := list }}
{{- range $n := (concat $_4 $_6) }}
  {{- if (not (has $n $podVolumes)) }}
    {{- $_3 = append $_3 $n }}
  {{- end }}
{{- end }}
{{- $unknownVolumes := $_3 }}
{{- if (not (empty $unknownVolumes)) }}
  {{- printf "extraVolumeMounts: a mount here or in a container's volumeMounts names a volume the pods do not have (%s); fix: add it to extraVolumes" (join ", " $unknownVolumes) }}
{{- end }}
{{- end }}

{{/*
Rule mount-path-repeat (schemas/rules.yaml): extraVolumeMounts.
*/}}
{{- define "vllm-rdma.rule.mount-path-repeat" -}}
{{- $v := .Values }}
{{- $_1 := list }}
{{- range $_2 := ($v.extraVolumeMounts | default list) }}
  {{- $_1 = append $_1 (get $_2 "mountPath") }}
{{- end }}
{{- if (ne (len $_1) (len (uniq $_1))) }}
  {{- $_3 := list }}
  {{- range $_4 := ($v.extraVolumeMounts | default list) }}
    {{- $_3 = append $_3 (get $_4 "mountPath") }}
  {{- end }}
  {{- printf "extraVolumeMounts: two mounts share a path (%s); fix: mount each at its own path" (join ", " $_3) }}
{{- end }}
{{- end }}

{{/*
Rule container-mount-path-repeat (schemas/rules.yaml): extraContainers, initContainers.
*/}}
{{- define "vllm-rdma.rule.container-mount-path-repeat" -}}
{{- $v := .Values }}
{{- $userContainers := (concat ($v.initContainers | default list) ($v.extraContainers | default list)) }}
{{- $_1 := list }}
{{- range $c := $userContainers }}
  {{- $_2 := list }}
  {{- range $_3 := ((get $c "volumeMounts") | default list) }}
    {{- $_2 = append $_2 (get $_3 "mountPath") }}
  {{- end }}
  {{- if (ne (len $_2) (len (uniq $_2))) }}
    {{- $_1 = append $_1 $c }}
  {{- end }}
{{- end }}
{{- $crowdedContainers := $_1 }}
{{- if (not (empty $crowdedContainers)) }}
  {{- $_4 := list }}
  {{- range $_5 := ($crowdedContainers | default list) }}
    {{- $_4 = append $_4 (get $_5 "name") }}
  {{- end }}
  {{- printf "extraContainers: two volumeMounts of container %s (initContainers or extraContainers) share a path; fix: mount each at its own path" (join ", " $_4) }}
{{- end }}
{{- end }}

{{/*
Rule vllm-mount-taken (schemas/rules.yaml): extraVolumeMounts.
*/}}
{{- define "vllm-rdma.rule.vllm-mount-taken" -}}
{{- $v := .Values }}
{{- $vllmMounts := (concat (list "/dev/shm" "/opt/helm-rdma" $v.nccl.configFile $v.model.storage.mountPath) (ternary (list $v.rdma.devicePath) (list) (not (empty (include "vllm-rdma.hostDevices" $))))) }}
{{- $_2 := list }}
{{- range $_3 := ($v.extraVolumeMounts | default list) }}
  {{- $_2 = append $_2 (get $_3 "mountPath") }}
{{- end }}
{{- $_1 := list }}
{{- range $p := $_2 }}
  {{- if (has $p $vllmMounts) }}
    {{- $_1 = append $_1 $p }}
  {{- end }}
{{- end }}
{{- $takenVllmMounts := $_1 }}
{{- if (not (empty $takenVllmMounts)) }}
  {{- printf "extraVolumeMounts: mount %s in the vllm container, where one of the chart's mounts is (%s); fix: choose another path" (join ", " $takenVllmMounts) (join ", " $vllmMounts) }}
{{- end }}
{{- end }}

{{/*
Rule unprivileged-security-context (schemas/rules.yaml): securityContext.privileged, rdma.privileged.
*/}}
{{- define "vllm-rdma.rule.unprivileged-security-context" -}}
{{- $v := .Values }}
{{- if (and (include "vllm-rdma.privileged" $) (eq (toString (get $v.securityContext "privileged")) "false")) }}
  {{- printf "securityContext.privileged: is false, but the RDMA containers run privileged here (the node's /dev/infiniband opens only so); fix: drop it, or run unprivileged with a device plugin (rdma.privileged=false and rdma.devicePluginResource)" }}
{{- end }}
{{- end }}

{{/*
Rule privilege-escalation (schemas/rules.yaml): securityContext.allowPrivilegeEscalation, rdma.privileged.
*/}}
{{- define "vllm-rdma.rule.privilege-escalation" -}}
{{- $v := .Values }}
{{- if (and (eq (toString (get $v.securityContext "allowPrivilegeEscalation")) "false") (or (include "vllm-rdma.privileged" $) (eq (toString (get $v.securityContext "privileged")) "true"))) }}
  {{- printf "securityContext.allowPrivilegeEscalation: is false, but the RDMA containers run privileged, and Kubernetes refuses both together; fix: drop it, or run unprivileged with a device plugin (rdma.privileged=false and rdma.devicePluginResource)" }}
{{- end }}
{{- end }}

{{/*
Rule host-network-sysctl (schemas/rules.yaml): podSecurityContext.sysctls, rdma.mode.
*/}}
{{- define "vllm-rdma.rule.host-network-sysctl" -}}
{{- $v := .Values }}
{{- $_2 := list }}
{{- range $_3 := ($v.podSecurityContext.sysctls | default list) }}
  {{- $_2 = append $_2 (get $_3 "name") }}
{{- end }}
{{- $_1 := list }}
{{- range $n := $_2 }}
  {{- if (hasPrefix "net." (toString $n)) }}
    {{- $_1 = append $_1 $n }}
  {{- end }}
{{- end }}
{{- $networkSysctls := $_1 }}
{{- if (and (eq (toString $v.rdma.mode) "hostNetwork") (not (empty $networkSysctls))) }}
  {{- printf "podSecurityContext.sysctls: sets %s, network sysctls, which Kubernetes refuses for a hostNetwork pod (they would change the node's); fix: set them on the nodes instead, or use rdma.mode=sriov" (join ", " $networkSysctls) }}
{{- end }}
{{- end }}

{{/*
Rule cpu-limit (schemas/rules.yaml): resources.limits.cpu, resources.cpu.
*/}}
{{- define "vllm-rdma.rule.cpu-limit" -}}
{{- $v := .Values }}
{{- if (and (get $v.resources.limits "cpu") (lt (float64 (include "vllm-rdma.quantity" (toString (get $v.resources.limits "cpu")) | float64)) (float64 (include "vllm-rdma.quantity" (toString $v.resources.cpu) | float64)))) }}
  {{- printf "resources.limits.cpu: %s is below its request, resources.cpu (%s), which Kubernetes refuses; fix: raise it to at least %s (equal gives Guaranteed QoS)" (join ", " (get $v.resources.limits "cpu")) (join ", " $v.resources.cpu) (join ", " $v.resources.cpu) }}
{{- end }}
{{- end }}

{{/*
Rule memory-limit (schemas/rules.yaml): resources.limits.memory, resources.memory.
*/}}
{{- define "vllm-rdma.rule.memory-limit" -}}
{{- $v := .Values }}
{{- if (and (get $v.resources.limits "memory") (lt (float64 (include "vllm-rdma.quantity" (toString (get $v.resources.limits "memory")) | float64)) (float64 (include "vllm-rdma.quantity" (toString $v.resources.memory) | float64)))) }}
  {{- printf "resources.limits.memory: %s is below its request, resources.memory (%s), which Kubernetes refuses; fix: raise it to at least %s (equal gives Guaranteed QoS)" (join ", " (get $v.resources.limits "memory")) (join ", " $v.resources.memory) (join ", " $v.resources.memory) }}
{{- end }}
{{- end }}

{{/*
Rule gateway-parents (schemas/rules.yaml): gateway.parentRefs, gateway.enabled.
*/}}
{{- define "vllm-rdma.rule.gateway-parents" -}}
{{- $v := .Values }}
{{- if (and $v.gateway.enabled (empty $v.gateway.parentRefs)) }}
  {{- printf "gateway.parentRefs: is empty, so the HTTPRoute attaches to no Gateway and serves nothing; fix: name your Gateway, gateway.parentRefs[0].name=NAME (and .namespace)" }}
{{- end }}
{{- end }}

{{/*
Rule lora-disabled (schemas/rules.yaml): vllm.lora.enabled, vllm.lora.adapters.
*/}}
{{- define "vllm-rdma.rule.lora-disabled" -}}
{{- $v := .Values }}
{{- if (and (not (empty $v.vllm.lora.adapters)) (not $v.vllm.lora.enabled)) }}
  {{- printf "vllm.lora.enabled: is false, but vllm.lora.adapters lists adapters; fix: set vllm.lora.enabled=true, or remove the adapters" }}
{{- end }}
{{- end }}

{{/*
Rule lora-name-repeat (schemas/rules.yaml): vllm.lora.adapters.
*/}}
{{- define "vllm-rdma.rule.lora-name-repeat" -}}
{{- $v := .Values }}
{{- $_1 := list }}
{{- range $_2 := ($v.vllm.lora.adapters | default list) }}
  {{- $_1 = append $_1 (get $_2 "name") }}
{{- end }}
{{- if (ne (len $_1) (len (uniq $_1))) }}
  {{- $_3 := list }}
  {{- range $_4 := ($v.vllm.lora.adapters | default list) }}
    {{- $_3 = append $_3 (get $_4 "name") }}
  {{- end }}
  {{- printf "vllm.lora.adapters: a name repeats (%s), and clients pick an adapter by its name; fix: give each adapter its own name" (join ", " $_3) }}
{{- end }}
{{- end }}

{{/*
Rule lora-base-name (schemas/rules.yaml): vllm.lora.adapters, model.servedName.
*/}}
{{- define "vllm-rdma.rule.lora-base-name" -}}
{{- $v := .Values }}
{{- $_1 := list }}
{{- range $_2 := ($v.vllm.lora.adapters | default list) }}
  {{- $_1 = append $_1 (get $_2 "name") }}
{{- end }}
{{- if (has $v.model.servedName $_1) }}
  {{- printf "vllm.lora.adapters: an adapter is named %s, as the base model (model.servedName); fix: rename the adapter" (join ", " $v.model.servedName) }}
{{- end }}
{{- end }}

{{/*
Rule lora-path (schemas/rules.yaml): vllm.lora.adapters.
*/}}
{{- define "vllm-rdma.rule.lora-path" -}}
{{- $v := .Values }}
{{- $_1 := list }}
{{- range $_2 := ($v.extraVolumeMounts | default list) }}
  {{- $_1 = append $_1 (get $_2 "mountPath") }}
{{- end }}
{{- $vllmVolumePaths := (concat (list $v.model.storage.mountPath) $_1) }}
{{- $_3 := list }}
{{- range $a := ($v.vllm.lora.adapters | default list) }}
  {{- $_4 := list }}
  {{- range $m := $vllmVolumePaths }}
    {{- if (or (eq (toString (get $a "path")) (toString $m)) (hasPrefix (printf "%s/" (trimSuffix "/" (toString $m))) (toString (get $a "path")))) }}
      {{- $_4 = append $_4 $m }}
    {{- end }}
  {{- end }}
  {{- if (and (not (empty (get $a "path"))) (empty $_4)) }}
    {{- $_3 = append $_3 $a }}
  {{- end }}
{{- end }}
{{- $unmountedAdapters := $_3 }}
{{- if (not (empty $unmountedAdapters)) }}
  {{- $_5 := list }}
  {{- range $_6 := ($unmountedAdapters | default list) }}
    {{- $_5 = append $_5 (get $_6 "path") }}
  {{- end }}
  {{- printf "vllm.lora.adapters: adapter path %s is on no volume of the vllm container (its volumes: %s); fix: mount the adapter's volume with extraVolumes and extraVolumeMounts, or put it under model.storage.mountPath" (join ", " $_5) (join ", " $vllmVolumePaths) }}
{{- end }}
{{- end }}

{{/*
Every rule above, and the NCCL look-alikes of the values schema (checks/lookalikes.py): fails once, listing each problem, its key and fix.
*/}}
{{- define "vllm-rdma.validateValues" -}}
{{- $v := .Values }}
{{- $problems := list }}
{{- with include "vllm-rdma.rule.parallelism" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.nvidia-gpu-resource" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.amd-gpu-resource" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.nvidia-nccl-config" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.amd-nccl-config" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.ray-image" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.pvc-claim" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.host-ports" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.unprivileged-host-devices" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.ray-without-token" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.api-without-key" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.provisioning-ids" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.provisioner-image" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.provisioning-api-key" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.service-name" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.mount-paths" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.node-selector-label" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.sriov-resource" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.container-name-taken" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.container-name-repeat" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.volume-name-taken" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.volume-name-repeat" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.unknown-volume" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.mount-path-repeat" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.container-mount-path-repeat" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.vllm-mount-taken" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.unprivileged-security-context" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.privilege-escalation" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.host-network-sysctl" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.cpu-limit" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.memory-limit" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.gateway-parents" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.lora-disabled" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.lora-name-repeat" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.lora-base-name" . }}{{ $problems = append $problems . }}{{ end }}
{{- with include "vllm-rdma.rule.lora-path" . }}{{ $problems = append $problems . }}{{ end }}
{{- $lookalikes := dict "NCCL_TIMEOUT" "NCCL_TIMEOUT is not an NCCL variable: NCCL's verbs timeout is NCCL_IB_TIMEOUT (the preset sets it), and collective timeouts belong to PyTorch and vLLM; fix: remove it" "NCCL_ASYNC_ERROR_HANDLING" "NCCL_ASYNC_ERROR_HANDLING is PyTorch's old name, which current PyTorch no longer reads; fix: rename it TORCH_NCCL_ASYNC_ERROR_HANDLING (under vllm.extraEnv)" "NCCL_BLOCKING_WAIT" "NCCL_BLOCKING_WAIT is PyTorch's old name, which current PyTorch no longer reads; fix: rename it TORCH_NCCL_BLOCKING_WAIT (under vllm.extraEnv)" "NCCL_SHM_USE_CUDA_MEMCPY" "NCCL_SHM_USE_CUDA_MEMCPY was removed in NCCL 2.30.7 (it existed from 2.13.4) and never had to do with huge pages or RDMA; fix: remove it" }}
{{- range $name, $_ := $v.nccl.settings }}
  {{- with get $lookalikes $name }}{{ $problems = append $problems (printf "nccl.settings.%s: %s" $name .) }}{{ end }}
{{- end }}
{{- range $i, $env := $v.vllm.extraEnv }}
  {{- with get $lookalikes (toString $env.name) }}{{ $problems = append $problems (printf "vllm.extraEnv[%d].name: %s" $i .) }}{{ end }}
{{- end }}
{{- if $problems }}
  {{- fail (printf "\n\nvllm-rdma: the values do not fit together:\n  - %s\n" (join "\n  - " $problems)) }}
{{- end }}
{{- end }}
