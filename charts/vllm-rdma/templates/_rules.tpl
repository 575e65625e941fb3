{{/*
The chart's cross-field rules: values that each pass the schema but do not fit together. Each rule is a define
vllm-rdma.rule.ID that renders one line, "KEY: MESSAGE; fix: FIX" (KEY the value to change), when the values break it
and nothing otherwise; vllm-rdma.validateValues (at the end) fails once with every broken rule listed. `helm-rdma
doctor` renders the chart and reports these lines as its findings, so plain helm and doctor say the same words.
To add a rule: write its define here, include it in validateValues, and add an example that breaks it and no other
rule to tests/fixtures/rules.yaml (tests/test_rules.py renders it on helm 3 and 4 and runs doctor on it).
*/}}

{{/*
vLLM spreads one copy of the model over TP x PP GPUs, and a group has nodes x preset.gpusPerNode of them: the two
must be equal.
*/}}
{{- define "vllm-rdma.rule.parallelism" -}}
{{- $tp := .Values.vllm.tensorParallelSize }}
{{- $pp := .Values.vllm.pipelineParallelSize }}
{{- $nodes := .Values.nodes }}
{{- $gpusPerNode := .Values.preset.gpusPerNode }}
{{- $modelGpus := mul $tp $pp }}
{{- $groupGpus := mul $nodes $gpusPerNode }}
{{- if ne $modelGpus $groupGpus }}
  {{- $message := printf "TP %v x PP %v = %v, but a group has %v GPUs (nodes %v x preset.gpusPerNode %v)" $tp $pp $modelGpus $groupGpus $nodes $gpusPerNode }}
  {{- $fix := printf "set vllm.tensorParallelSize=%v and vllm.pipelineParallelSize=%v, or change nodes" $gpusPerNode $nodes }}
  {{- printf "vllm.tensorParallelSize: %s; fix: %s" $message $fix }}
{{- end }}
{{- end }}

{{/*
The GPU resource the pods request must be their vendor's device plugin resource.
*/}}
{{- define "vllm-rdma.rule.nvidia-gpu-resource" -}}
{{- $preset := .Values.preset }}
{{- if and (eq (toString $preset.gpuVendor) "nvidia") (ne (toString $preset.gpuResource) "nvidia.com/gpu") }}
  {{- printf "preset.gpuResource: is %v, but preset.gpuVendor is nvidia; fix: set preset.gpuResource=nvidia.com/gpu" $preset.gpuResource }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.amd-gpu-resource" -}}
{{- $preset := .Values.preset }}
{{- if and (eq (toString $preset.gpuVendor) "amd") (ne (toString $preset.gpuResource) "amd.com/gpu") }}
  {{- printf "preset.gpuResource: is %v, but preset.gpuVendor is amd; fix: set preset.gpuResource=amd.com/gpu" $preset.gpuResource }}
{{- end }}
{{- end }}

{{/*
NCCL reads its settings from /etc/nccl.conf and RCCL (AMD's) from /etc/rccl.conf: the chart mounts them at
nccl.configFile.
*/}}
{{- define "vllm-rdma.rule.nvidia-nccl-config" -}}
{{- $vendor := .Values.preset.gpuVendor }}
{{- $configFile := .Values.nccl.configFile }}
{{- if and (ne (toString $vendor) "amd") (ne (toString $configFile) "/etc/nccl.conf") }}
  {{- printf "nccl.configFile: is %v, but NCCL reads /etc/nccl.conf (preset.gpuVendor is %v); fix: set nccl.configFile=/etc/nccl.conf" $configFile $vendor }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.amd-nccl-config" -}}
{{- $configFile := .Values.nccl.configFile }}
{{- if and (eq (toString .Values.preset.gpuVendor) "amd") (ne (toString $configFile) "/etc/rccl.conf") }}
  {{- printf "nccl.configFile: is %v, but RCCL reads /etc/rccl.conf (preset.gpuVendor is amd); fix: set nccl.configFile=/etc/rccl.conf" $configFile }}
{{- end }}
{{- end }}

{{/*
Stock vLLM images ship no Ray from v0.18 on. A tag that starts with a version X.Y.Z (v optional; nine digits a part
at most, what semverCompare parses without overflow) at or above 0.18.0 is such an image; any other tag is not judged.
*/}}
{{- define "vllm-rdma.rule.ray-image" -}}
{{- $image := .Values.image }}
{{- $stock := list "vllm/vllm-openai" "docker.io/vllm/vllm-openai" }}
{{- $tag := toString $image.tag }}
{{- if and (eq (toString .Values.distributed.backend) "ray") (has $image.repository $stock) (regexMatch "^v?[0-9]{1,9}\\.[0-9]{1,9}\\.[0-9]{1,9}([^0-9]|$)" $tag) }}
  {{- $version := regexFind "^[0-9]{1,9}\\.[0-9]{1,9}\\.[0-9]{1,9}" (trimPrefix "v" $tag) }}
  {{- if semverCompare ">=0.18.0-0" $version }}
    {{- printf "distributed.backend: is ray, but the stock image %v:%v ships no Ray (stock vLLM images dropped it from v0.18); fix: set image.tag=v0.17.1, use an image with Ray, or set distributed.backend=native" $image.repository $image.tag }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.pvc-claim" -}}
{{- $storage := .Values.model.storage }}
{{- if and (eq (toString $storage.type) "pvc") (empty $storage.claimName) }}
  {{- print "model.storage.claimName: is empty, but model.storage.type is pvc; fix: name an existing ReadWriteMany or ReadOnlyMany claim" }}
{{- end }}
{{- end }}

{{/*
Under hostNetwork every port a serving pod listens on binds on the node: vLLM's, torch's master port, the group
watch's (vllm-rdma.groupWatch) and Ray's.
*/}}
{{- define "vllm-rdma.rule.host-ports" -}}
{{- $v := .Values }}
{{- $ports := list (int $v.vllm.port) (int $v.distributed.masterPort) }}
{{- if eq (toString $v.distributed.backend) "ray" }}
  {{- $ray := $v.distributed.ray }}
  {{- $ports = concat $ports (list (int $ray.port) (int $ray.dashboardPort) (int $ray.clientPort)) }}
{{- end }}
{{- if include "vllm-rdma.groupWatch" . }}
  {{- $ports = append $ports (int $v.distributed.groupWatchPort) }}
{{- end }}
{{- if and (eq (toString $v.rdma.mode) "hostNetwork") (ne (len $ports) (len (uniq $ports))) }}
  {{- printf "vllm.port: under hostNetwork every port binds on the node, but vllm.port, distributed.masterPort, distributed.groupWatchPort and the Ray ports repeat one (%s); fix: make them distinct" (join ", " $ports) }}
{{- end }}
{{- end }}

{{/*
An unprivileged container cannot open the node's /dev/infiniband (see vllm-rdma.privileged): only a device plugin
grants the devices.
*/}}
{{- define "vllm-rdma.rule.unprivileged-host-devices" -}}
{{- $rdma := .Values.rdma }}
{{- if and (eq (toString $rdma.mode) "hostNetwork") (eq (toString $rdma.privileged) "false") (empty $rdma.devicePluginResource) }}
  {{- print "rdma.privileged: is false in hostNetwork mode without rdma.devicePluginResource: an unprivileged container cannot open the node's /dev/infiniband devices and NCCL falls back to TCP sockets; fix: set rdma.devicePluginResource (a device plugin that grants the RDMA devices, such as rdma/rdma_shared_device_a) or leave rdma.privileged null" }}
{{- end }}
{{- end }}

{{/*
Under hostNetwork, Ray's ports and vLLM's API listen on the node's VCN address: without a token or key anyone who
reaches them runs code in the pods or uses the model, unless the user says the ports are closed otherwise.
*/}}
{{- define "vllm-rdma.rule.ray-without-token" -}}
{{- $v := .Values }}
{{- $ray := $v.distributed.ray }}
{{- if and (eq (toString $v.rdma.mode) "hostNetwork") (eq (toString $v.distributed.backend) "ray") (empty $ray.authTokenSecret.name) (not $ray.allowUnauthenticated) }}
  {{- print "distributed.ray.authTokenSecret.name: is empty with distributed.backend=ray under hostNetwork: Ray's ports would listen on the node's VCN address without authentication, and anyone who reaches them can run code in the pods; fix: kubectl create secret generic ray-token --from-literal=token=$(openssl rand -hex 32), then set distributed.ray.authTokenSecret.name=ray-token (Ray 2.52+); or set distributed.ray.allowUnauthenticated=true where OCI security rules keep the ports closed" }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.api-without-key" -}}
{{- $api := .Values.api }}
{{- if and (eq (toString .Values.rdma.mode) "hostNetwork") (empty $api.keySecret.name) (not $api.allowUnauthenticated) }}
  {{- printf "api.keySecret.name: is empty under hostNetwork: vLLM's API would listen on each leader node's VCN address without a key, and anyone who reaches it can use the model; fix: kubectl create secret generic api-key --from-literal=%v=$(openssl rand -hex 32), then set api.keySecret.name=api-key (helm rdma install and upgrade create one named after the release); or set api.allowUnauthenticated=true where OCI security rules keep vllm.port closed to everyone else" $api.keySecret.key }}
{{- end }}
{{- end }}

{{/*
The OCI hooks (vllm-rdma.ociHooks) need the compartment to deprovision in, and to provision also the availability
domain, subnet and node image.
*/}}
{{- define "vllm-rdma.rule.provisioning-ids" -}}
{{- $network := .Values.clusterNetwork }}
{{- $missing := list }}
{{- if include "vllm-rdma.ociHooks" . }}
  {{- range $id := list "compartmentId" "availabilityDomain" "subnetId" "imageId" }}
    {{- $needed := or $network.provision (eq $id "compartmentId") }}
    {{- if and $needed (empty (get $network $id)) }}
      {{- $missing = append $missing $id }}
    {{- end }}
  {{- end }}
{{- end }}
{{- if $missing }}
  {{- printf "clusterNetwork.provision: is on (or clusterNetwork.deleteOnUninstall), so a hook provisions or deprovisions the cluster network, but these clusterNetwork keys are empty: %s; fix: set them (install --provision takes --compartment, --availability-domain, --subnet and --image), or set clusterNetwork.provision=false and clusterNetwork.deleteOnUninstall=false" (join ", " $missing) }}
{{- end }}
{{- end }}

{{/*
No public registry holds the provisioner image, so the hooks need the user's.
*/}}
{{- define "vllm-rdma.rule.provisioner-image" -}}
{{- if and (include "vllm-rdma.ociHooks" .) (empty .Values.clusterNetwork.image.repository) }}
  {{- print "clusterNetwork.image.repository: is empty, and no public registry holds the provisioner image, so the hook's pod could never start; fix: build and push it to your registry (in a checkout, `make provisioner-image` prints the docker build, login and push commands for OCIR), then set clusterNetwork.image.repository=REGION-KEY.ocir.io/TENANCY-NAMESPACE/helm-rdma-provisioner" }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.provisioning-api-key" -}}
{{- $network := .Values.clusterNetwork }}
{{- if and (include "vllm-rdma.ociHooks" .) (eq (toString $network.auth) "apiKey") (empty $network.apiKeySecret) }}
  {{- print "clusterNetwork.apiKeySecret: is empty, but clusterNetwork.auth is apiKey and a hook provisions or deprovisions; fix: name a Secret with the files config and oci_api_key.pem" }}
{{- end }}
{{- end }}

{{/*
The chart names its Services after vllm-rdma.fullname, and a Service name is a DNS-1035 label.
*/}}
{{- define "vllm-rdma.rule.service-name" -}}
{{- $fullname := include "vllm-rdma.fullname" . }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname) }}
  {{- printf "fullnameOverride: the chart names its Services %s (from the release name %s, nameOverride and fullnameOverride), but a Service name must be lower-case letters, digits and '-' starting with a letter; fix: choose such a release name, or set fullnameOverride" $fullname .Release.Name }}
{{- end }}
{{- end }}

{{/*
The chart's own mounts of the vllm container (templates/_containers.tpl), with /tmp (the preflight's) and the node's
devices where they are mounted (vllm-rdma.hostDevices): no two at one path.
*/}}
{{- define "vllm-rdma.rule.mount-paths" -}}
{{- $v := .Values }}
{{- $paths := list "/dev/shm" "/opt/helm-rdma" "/tmp" $v.nccl.configFile $v.model.storage.mountPath }}
{{- if include "vllm-rdma.hostDevices" . }}
  {{- $paths = append $paths $v.rdma.devicePath }}
{{- end }}
{{- if ne (len $paths) (len (uniq $paths)) }}
  {{- printf "model.storage.mountPath: %v, rdma.devicePath (%v) and the chart's own mounts (/dev/shm, /opt/helm-rdma, /tmp and nccl.configFile, %v) repeat a path; fix: choose another path" $v.model.storage.mountPath $v.rdma.devicePath $v.nccl.configFile }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.node-selector-label" -}}
{{- $label := .Values.placement.clusterNetworkLabel }}
{{- if and (include "vllm-rdma.clusterNetworkLabelEnabled" .) (hasKey .Values.placement.nodeSelector $label.key) }}
  {{- printf "placement.nodeSelector: repeats the key %v of placement.clusterNetworkLabel; fix: remove it from one of them" $label.key }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.sriov-resource" -}}
{{- $gpuResource := .Values.preset.gpuResource }}
{{- if and (eq (toString .Values.rdma.mode) "sriov") (eq (toString .Values.rdma.sriov.resourceName) (toString $gpuResource)) }}
  {{- printf "rdma.sriov.resourceName: equals preset.gpuResource (%v); fix: name the VFs' own resource (nvidia.com/rdma-vf)" $gpuResource }}
{{- end }}
{{- end }}

{{/*
The names the API server wants unique in a pod, and the volumes mounts name (kubernetes pkg/apis/core/validation/
validation.go: validateContainers, ValidateVolumes, validateVolumeMounts). The chart's containers of a serving pod
are those of templates/_containers.tpl (generator/helm_rdma/contract.py names them for Python, and
tests/test_contract.py holds both against the rendered pods), and one download-lora-N per LoRA adapter.
*/}}
{{- define "vllm-rdma.chartContainerNames" -}}
{{- $names := list "vllm" "preflight" "preflight-verdict" "group-barrier" "download-model" }}
{{- range $index, $_ := .Values.vllm.lora.adapters | default list }}
  {{- $names = append $names (printf "download-lora-%d" $index) }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/*
The names of the user's containers, initContainers then extraContainers, as a JSON list.
*/}}
{{- define "vllm-rdma.userContainerNames" -}}
{{- $names := list }}
{{- range $container := concat (.Values.initContainers | default list) (.Values.extraContainers | default list) }}
  {{- $names = append $names (get $container "name") }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/*
The chart's volumes of a serving pod (templates/_pod.tpl: vllm-rdma.rdmaVolumes and the pod's own), as a JSON list.
*/}}
{{- define "vllm-rdma.chartVolumeNames" -}}
{{- $names := list "dshm" "nccl-config" "scripts" }}
{{- if include "vllm-rdma.hostDevices" . }}{{ $names = append $names "infiniband" }}{{ end }}
{{- if include "vllm-rdma.preflightInit" . }}
  {{- $names = concat $names (list "tmp" (include "vllm-rdma.preflightEventsVolume" .)) }}
{{- end }}
{{- toJson (append $names "model") }}
{{- end }}

{{- define "vllm-rdma.rule.container-name-taken" -}}
{{- $chartNames := include "vllm-rdma.chartContainerNames" . | fromJsonArray }}
{{- $taken := list }}
{{- range $name := include "vllm-rdma.userContainerNames" . | fromJsonArray }}
  {{- if has $name $chartNames }}
    {{- $taken = append $taken $name }}
  {{- end }}
{{- end }}
{{- if $taken }}
  {{- printf "extraContainers: a container of initContainers or extraContainers is named %s, as one of the chart's containers (%s); fix: choose another name" (join ", " $taken) (join ", " $chartNames) }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.container-name-repeat" -}}
{{- $names := include "vllm-rdma.userContainerNames" . | fromJsonArray }}
{{- if ne (len $names) (len (uniq $names)) }}
  {{- printf "extraContainers: a container name repeats across initContainers and extraContainers (%s); fix: give each container its own name" (join ", " $names) }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.volume-name-taken" -}}
{{- $chartNames := include "vllm-rdma.chartVolumeNames" . | fromJsonArray }}
{{- $taken := list }}
{{- range $volume := .Values.extraVolumes | default list }}
  {{- if has (get $volume "name") $chartNames }}
    {{- $taken = append $taken (get $volume "name") }}
  {{- end }}
{{- end }}
{{- if $taken }}
  {{- printf "extraVolumes: a volume is named %s, as one of the chart's volumes (%s); fix: choose another name" (join ", " $taken) (join ", " $chartNames) }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.volume-name-repeat" -}}
{{- $names := list }}
{{- range $volume := .Values.extraVolumes | default list }}
  {{- $names = append $names (get $volume "name") }}
{{- end }}
{{- if ne (len $names) (len (uniq $names)) }}
  {{- printf "extraVolumes: a volume name repeats (%s); fix: give each volume its own name" (join ", " $names) }}
{{- end }}
{{- end }}

{{/*
Every mount names a volume of the pod: the chart's or one of extraVolumes. The vllm container's mounts come first,
then those of each user container.
*/}}
{{- define "vllm-rdma.rule.unknown-volume" -}}
{{- $v := .Values }}
{{- $podVolumes := include "vllm-rdma.chartVolumeNames" . | fromJsonArray }}
{{- range $volume := $v.extraVolumes | default list }}
  {{- $podVolumes = append $podVolumes (get $volume "name") }}
{{- end }}
{{- $mounts := $v.extraVolumeMounts | default list }}
{{- range $container := concat ($v.initContainers | default list) ($v.extraContainers | default list) }}
  {{- $mounts = concat $mounts (get $container "volumeMounts" | default list) }}
{{- end }}
{{- $unknown := list }}
{{- range $mount := $mounts }}
  {{- if not (has (get $mount "name") $podVolumes) }}
    {{- $unknown = append $unknown (get $mount "name") }}
  {{- end }}
{{- end }}
{{- if $unknown }}
  {{- printf "extraVolumeMounts: a mount here or in a container's volumeMounts names a volume the pods do not have (%s); fix: add it to extraVolumes" (join ", " $unknown) }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.mount-path-repeat" -}}
{{- $paths := list }}
{{- range $mount := .Values.extraVolumeMounts | default list }}
  {{- $paths = append $paths (get $mount "mountPath") }}
{{- end }}
{{- if ne (len $paths) (len (uniq $paths)) }}
  {{- printf "extraVolumeMounts: two mounts share a path (%s); fix: mount each at its own path" (join ", " $paths) }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.container-mount-path-repeat" -}}
{{- $crowded := list }}
{{- range $container := concat (.Values.initContainers | default list) (.Values.extraContainers | default list) }}
  {{- $paths := list }}
  {{- range $mount := get $container "volumeMounts" | default list }}
    {{- $paths = append $paths (get $mount "mountPath") }}
  {{- end }}
  {{- if ne (len $paths) (len (uniq $paths)) }}
    {{- $crowded = append $crowded (get $container "name") }}
  {{- end }}
{{- end }}
{{- if $crowded }}
  {{- printf "extraContainers: two volumeMounts of container %s (initContainers or extraContainers) share a path; fix: mount each at its own path" (join ", " $crowded) }}
{{- end }}
{{- end }}

{{/*
Paths the chart mounts in the vllm container (templates/_containers.tpl), which extraVolumeMounts cannot take.
*/}}
{{- define "vllm-rdma.rule.vllm-mount-taken" -}}
{{- $v := .Values }}
{{- $chartMounts := list "/dev/shm" "/opt/helm-rdma" $v.nccl.configFile $v.model.storage.mountPath }}
{{- if include "vllm-rdma.hostDevices" . }}
  {{- $chartMounts = append $chartMounts $v.rdma.devicePath }}
{{- end }}
{{- $taken := list }}
{{- range $mount := $v.extraVolumeMounts | default list }}
  {{- if has (get $mount "mountPath") $chartMounts }}
    {{- $taken = append $taken (get $mount "mountPath") }}
  {{- end }}
{{- end }}
{{- if $taken }}
  {{- printf "extraVolumeMounts: mount %s in the vllm container, where one of the chart's mounts is (%s); fix: choose another path" (join ", " $taken) (join ", " $chartMounts) }}
{{- end }}
{{- end }}

{{/*
What RDMA needs wins over the user's securityContext; the API server refuses allowPrivilegeEscalation=false with
privileged (kubernetes pkg/apis/core/validation/validation.go, ValidateSecurityContext).
*/}}
{{- define "vllm-rdma.rule.unprivileged-security-context" -}}
{{- $userPrivileged := toString (get .Values.securityContext "privileged") }}
{{- if and (include "vllm-rdma.privileged" .) (eq $userPrivileged "false") }}
  {{- print "securityContext.privileged: is false, but the RDMA containers run privileged here (the node's /dev/infiniband opens only so); fix: drop it, or run unprivileged with a device plugin (rdma.privileged=false and rdma.devicePluginResource)" }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.privilege-escalation" -}}
{{- $escalation := toString (get .Values.securityContext "allowPrivilegeEscalation") }}
{{- $privileged := or (include "vllm-rdma.privileged" .) (eq (toString (get .Values.securityContext "privileged")) "true") }}
{{- if and (eq $escalation "false") $privileged }}
  {{- print "securityContext.allowPrivilegeEscalation: is false, but the RDMA containers run privileged, and Kubernetes refuses both together; fix: drop it, or run unprivileged with a device plugin (rdma.privileged=false and rdma.devicePluginResource)" }}
{{- end }}
{{- end }}

{{/*
A hostNetwork pod shares the node's network namespace: Kubernetes refuses network sysctls there (validateSysctls).
*/}}
{{- define "vllm-rdma.rule.host-network-sysctl" -}}
{{- $network := list }}
{{- range $sysctl := .Values.podSecurityContext.sysctls | default list }}
  {{- if hasPrefix "net." (toString (get $sysctl "name")) }}
    {{- $network = append $network (get $sysctl "name") }}
  {{- end }}
{{- end }}
{{- if and (eq (toString .Values.rdma.mode) "hostNetwork") $network }}
  {{- printf "podSecurityContext.sysctls: sets %s, network sysctls, which Kubernetes refuses for a hostNetwork pod (they would change the node's); fix: set them on the nodes instead, or use rdma.mode=sriov" (join ", " $network) }}
{{- end }}
{{- end }}

{{/*
A limit is at least its request (ValidateResourceRequirements); quantities compare as numbers (vllm-rdma.quantity).
*/}}
{{- define "vllm-rdma.rule.cpu-limit" -}}
{{- $limit := get .Values.resources.limits "cpu" }}
{{- $request := .Values.resources.cpu }}
{{- if $limit }}
  {{- if lt (include "vllm-rdma.quantity" (toString $limit) | float64) (include "vllm-rdma.quantity" (toString $request) | float64) }}
    {{- printf "resources.limits.cpu: %v is below its request, resources.cpu (%v), which Kubernetes refuses; fix: raise it to at least %v (equal gives Guaranteed QoS)" $limit $request $request }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.memory-limit" -}}
{{- $limit := get .Values.resources.limits "memory" }}
{{- $request := .Values.resources.memory }}
{{- if $limit }}
  {{- if lt (include "vllm-rdma.quantity" (toString $limit) | float64) (include "vllm-rdma.quantity" (toString $request) | float64) }}
    {{- printf "resources.limits.memory: %v is below its request, resources.memory (%v), which Kubernetes refuses; fix: raise it to at least %v (equal gives Guaranteed QoS)" $limit $request $request }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.gateway-parents" -}}
{{- if and .Values.gateway.enabled (empty .Values.gateway.parentRefs) }}
  {{- print "gateway.parentRefs: is empty, so the HTTPRoute attaches to no Gateway and serves nothing; fix: name your Gateway, gateway.parentRefs[0].name=NAME (and .namespace)" }}
{{- end }}
{{- end }}

{{/*
LoRA adapters are served by name beside the base model (vllm --lora-modules NAME=PATH), from a path the vllm
container mounts.
*/}}
{{- define "vllm-rdma.rule.lora-disabled" -}}
{{- if and .Values.vllm.lora.adapters (not .Values.vllm.lora.enabled) }}
  {{- print "vllm.lora.enabled: is false, but vllm.lora.adapters lists adapters; fix: set vllm.lora.enabled=true, or remove the adapters" }}
{{- end }}
{{- end }}

{{/*
The names of the LoRA adapters, as a JSON list.
*/}}
{{- define "vllm-rdma.loraNames" -}}
{{- $names := list }}
{{- range $adapter := .Values.vllm.lora.adapters | default list }}
  {{- $names = append $names (get $adapter "name") }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{- define "vllm-rdma.rule.lora-name-repeat" -}}
{{- $names := include "vllm-rdma.loraNames" . | fromJsonArray }}
{{- if ne (len $names) (len (uniq $names)) }}
  {{- printf "vllm.lora.adapters: a name repeats (%s), and clients pick an adapter by its name; fix: give each adapter its own name" (join ", " $names) }}
{{- end }}
{{- end }}

{{- define "vllm-rdma.rule.lora-base-name" -}}
{{- $base := .Values.model.servedName }}
{{- if has $base (include "vllm-rdma.loraNames" . | fromJsonArray) }}
  {{- printf "vllm.lora.adapters: an adapter is named %v, as the base model (model.servedName); fix: rename the adapter" $base }}
{{- end }}
{{- end }}

{{/*
An adapter's path is on one of the vllm container's volumes: the model storage or one of extraVolumeMounts (a path
is on a volume when it is the mount path or under it).
*/}}
{{- define "vllm-rdma.rule.lora-path" -}}
{{- $volumePaths := list .Values.model.storage.mountPath }}
{{- range $mount := .Values.extraVolumeMounts | default list }}
  {{- $volumePaths = append $volumePaths (get $mount "mountPath") }}
{{- end }}
{{- $unmounted := list }}
{{- range $adapter := .Values.vllm.lora.adapters | default list }}
  {{- $path := toString (get $adapter "path") }}
  {{- $mounted := false }}
  {{- range $volume := $volumePaths }}
    {{- if or (eq $path (toString $volume)) (hasPrefix (printf "%s/" (trimSuffix "/" (toString $volume))) $path) }}
      {{- $mounted = true }}
    {{- end }}
  {{- end }}
  {{- if and (get $adapter "path") (not $mounted) }}
    {{- $unmounted = append $unmounted (get $adapter "path") }}
  {{- end }}
{{- end }}
{{- if $unmounted }}
  {{- printf "vllm.lora.adapters: adapter path %s is on no volume of the vllm container (its volumes: %s); fix: mount the adapter's volume with extraVolumes and extraVolumeMounts, or put it under model.storage.mountPath" (join ", " $unmounted) (join ", " $volumePaths) }}
{{- end }}
{{- end }}

{{/*
Rule extra-args-layout: vllm.extraArgs. The chart passes vLLM the group's layout (TP, PP, the node count and rank,
the leader's address) and each node's download fetches the shards of the stages that layout gives it
(files/pipeline_stages.py). vLLM takes the last of a repeated flag and reads -tp/-pp/-dp as the long names (vllm 0.33.0
engine/arg_utils.py), and --config FILE may set any of them: a layout set there would differ from the one every node
prepared for, and vLLM would fail at load after the download.
*/}}
{{- define "vllm-rdma.rule.extra-args-layout" -}}
{{- $owned := list "-tp" "-pp" "-dp" "--tensor-parallel-size" "--pipeline-parallel-size" "--data-parallel-size"
      "--nnodes" "--node-rank" "--master-addr" "--master-port" "--headless" "--config" }}
{{- $found := list }}
{{- range $arg := .Values.vllm.extraArgs }}
  {{- $flag := splitList "=" (toString $arg) | first | replace "_" "-" }}
  {{- if has $flag $owned }}{{ $found = append $found $flag }}{{ end }}
{{- end }}
{{- if $found }}
  {{- printf "vllm.extraArgs: sets %s, which the chart sets itself from vllm.tensorParallelSize, vllm.pipelineParallelSize and nodes (every node downloads and ranks by them); fix: remove it and set those keys (a --config file's settings go in extraArgs one by one)" (join ", " $found) }}
{{- end }}
{{- end }}

{{/*
The group-ports check (helm-rdma's oci/groupports.py) judges the torch store's, the group watch's and the kernel's
ephemeral ports, where vLLM's and NCCL's sockets listen when they bind port 0. Three variables move a listener
elsewhere, on the node's VCN address under hostNetwork, with no authentication: VLLM_PORT (vLLM's envs.py: the base
port vLLM's own sockets take, upward from it), NCCL_COMM_ID (NVIDIA/nccl src/bootstrap.cc: a fixed host:port for the
bootstrap root) and NCCL_RAS_ADDR (src/ras/client_support.cc: the RAS client port, 28028 by default, beyond
localhost). Refused when that check is what closes the ports (distributed.portGuard off: the guard covers every
listener of the pod, wherever it binds) unless they are accepted open.
*/}}
{{- define "vllm-rdma.rule.group-port-env" -}}
{{- $moved := list }}
{{- $keys := list }}
{{- $watched := list "VLLM_PORT" "NCCL_COMM_ID" "NCCL_RAS_ADDR" }}
{{- range $env := .Values.vllm.extraEnv }}
  {{- if has (toString $env.name) $watched }}{{ $moved = append $moved $env.name }}{{ $keys = append $keys "vllm.extraEnv" }}{{ end }}
{{- end }}
{{- range $name := keys .Values.nccl.settings | sortAlpha }}
  {{- if has $name $watched }}{{ $moved = append $moved $name }}{{ $keys = append $keys "nccl.settings" }}{{ end }}
{{- end }}
{{- if and $moved (eq .Values.rdma.mode "hostNetwork") (gt (int .Values.nodes) 1) (not .Values.distributed.allowOpenGroupPorts) (not (include "vllm-rdma.portGuard" .)) }}
  {{- printf "%s: %s moves a listener of the group (VLLM_PORT: vLLM's own sockets, from that port up; NCCL_COMM_ID: NCCL's bootstrap root; NCCL_RAS_ADDR: NCCL's RAS client port) off the ports the group-ports check judges, onto the node's VCN address with no authentication (hostNetwork); fix: remove it, or set distributed.allowOpenGroupPorts=true to accept the group's ports open" (first $keys) (join ", " $moved) }}
{{- end }}
{{- end }}

{{/*
An NSG admits, through a rule whose source is itself, every VNIC in it (docs.oracle.com/iaas/Content/Network/Concepts/
networksecuritygroups.htm). Pods' VNICs carry clusterNetwork.oke.podNsgIds (OKE's pod-nsgids: VCN-native pods), so an
NSG in both lists makes every pod on those nodes a member of the GPU nodes' own NSG, admitted to the group's ports.
*/}}
{{- define "vllm-rdma.rule.pod-nsg-overlap" -}}
{{- $network := .Values.clusterNetwork }}
{{- $both := list }}
{{- range $id := ($network.oke.podNsgIds | default list) }}
  {{- if has $id ($network.nsgIds | default list) }}{{ $both = append $both $id }}{{ end }}
{{- end }}
{{- if and $network.provision $both }}
  {{- printf "clusterNetwork.oke.podNsgIds: %s is in clusterNetwork.nsgIds too, so every pod's VNIC on the GPU nodes would be a member of the nodes' own NSG, whose rule from itself admits its members to the group's ports; fix: give the pods NSGs of their own in clusterNetwork.oke.podNsgIds, none of them in clusterNetwork.nsgIds" (join ", " $both) }}
{{- end }}
{{- end }}

{{/*
Every rule above, and the NCCL look-alikes of the values schema (vllm-rdma.ncclLookalikes, templates/_lookalikes.tpl):
fails once, listing each problem, its key and fix. generator/helm_rdma/contract.py holds the first line
(VALIDATE_MARKER), by which helm-rdma finds the problems in helm's error.
*/}}
{{- define "vllm-rdma.validateValues" -}}
{{- $problems := list }}
{{- range $rule := list "parallelism" "nvidia-gpu-resource" "amd-gpu-resource" "nvidia-nccl-config" "amd-nccl-config"
      "ray-image" "pvc-claim" "host-ports" "unprivileged-host-devices" "ray-without-token" "api-without-key"
      "provisioning-ids" "provisioner-image" "provisioning-api-key" "service-name" "mount-paths"
      "node-selector-label" "sriov-resource" "container-name-taken" "container-name-repeat" "volume-name-taken"
      "volume-name-repeat" "unknown-volume" "mount-path-repeat" "container-mount-path-repeat" "vllm-mount-taken"
      "unprivileged-security-context" "privilege-escalation" "host-network-sysctl" "cpu-limit" "memory-limit"
      "gateway-parents" "lora-disabled" "lora-name-repeat" "lora-base-name" "lora-path" "extra-args-layout"
      "router-scorers" "autoscaling-statefulset" "autoscaling-prometheus" "autoscaling-range" "autoscaling-targets"
      "shrink-wait" "pod-nsg-overlap" "group-port-env" }}
  {{- with include (printf "vllm-rdma.rule.%s" $rule) $ }}{{ $problems = append $problems . }}{{ end }}
{{- end }}
{{- with include "vllm-rdma.ncclLookalikes" . }}
  {{- $problems = concat $problems (splitList "\n" .) }}
{{- end }}
{{- if $problems }}
  {{- fail (printf "\n\nvllm-rdma: the values do not fit together:\n  - %s\n" (join "\n  - " $problems)) }}
{{- end }}
{{- end }}
