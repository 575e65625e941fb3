{{/* Routing over many groups (router.*: the InferencePool and llm-d's endpoint picker) and groups that follow load
(autoscaling.*: KEDA's ScaledObject): their names, labels and cross-field rules. docs/routing.md says how they fit. */}}

{{/*
The InferencePool's name: the release's full name (no other object of the release has the kind).
*/}}
{{- define "vllm-rdma.poolName" -}}
{{- include "vllm-rdma.fullname" . }}
{{- end }}

{{/*
The endpoint picker's name, for its Deployment, Service, ServiceAccount, Role, RoleBinding and ConfigMap: FULLNAME-epp
(at most 56 characters, a DNS-1035 label as a Service name must be).
*/}}
{{- define "vllm-rdma.eppName" -}}
{{- printf "%s-epp" (include "vllm-rdma.fullname" .) }}
{{- end }}

{{/*
Selector labels of the endpoint picker's pods: the release's, plus a component no serving selector takes (the API
Service, the PodDisruptionBudget and the NetworkPolicy select leader and worker only).
*/}}
{{- define "vllm-rdma.eppSelectorLabels" -}}
{{ include "vllm-rdma.selectorLabels" . }}
app.kubernetes.io/component: endpoint-picker
{{- end }}

{{/*
The picker's configuration file, mounted at /config (llm-d-router config/charts/routerlib/templates/_config.yaml,
default-plugins.yaml, at v0.10.0 = 71f4f0999f95b96c49a9d0c4afbd18dfdb943c26).
*/}}
{{- define "vllm-rdma.eppConfigFile" -}}
default-plugins.yaml
{{- end }}

{{/*
terminationGracePeriodSeconds of the serving pods: 60 s, or with autoscaling on the leader's drain
(autoscaling.drainSeconds, vLLM's --shutdown-timeout) plus those 60 s, so a group the scaler removes finishes the
completions it is streaming before the kubelet kills it.
*/}}
{{- define "vllm-rdma.terminationGraceSeconds" -}}
{{- if .Values.autoscaling.enabled }}{{ add .Values.autoscaling.drainSeconds 60 }}{{ else }}60{{ end }}
{{- end }}

{{/*
The preStop of a worker when groups scale (autoscaling.enabled): a group removed gets SIGTERM on every pod at once,
and vLLM's headless worker exits on it (vllm/entrypoints/cli/serve.py, run_headless: the SIGTERM handler raises
SystemExit; 0.33.0 lines 207-216), which would end the requests its leader is still draining. So the worker waits
until its leader's API port closes, as vLLM closes it only after the drain (vllm/entrypoints/launchers/launcher.py,
handle_shutdown: the engine client's shutdown with shutdown_timeout, then server.should_exit). The leader's address
resolves while it terminates: LWS's headless Service publishes not-ready addresses. Bounded by the grace period.
*/}}
{{- define "vllm-rdma.workerDrainScript" -}}
ip=$(getent hosts "$LWS_LEADER_ADDRESS" | awk '{print $1; exit}'); [ -n "$ip" ] || exit 0; while timeout 2 bash -c "exec 3<>/dev/tcp/$ip/{{ .Values.vllm.port }}" 2>/dev/null; do sleep 2; done
{{- end }}

{{/*
Rule autoscaling-statefulset: autoscaling.enabled, workload.kind. KEDA scales one object through its scale
subresource; in StatefulSet mode a group is two StatefulSets (the leaders and the workers), which no scaler can
resize as one unit, so a scale step would leave groups without workers or workers without a leader.
*/}}
{{- define "vllm-rdma.rule.autoscaling-statefulset" -}}
{{- if and .Values.autoscaling.enabled (eq .Values.workload.kind "StatefulSet") }}
{{- print "autoscaling.enabled: groups cannot scale with load in StatefulSet mode: a group is two StatefulSets (leaders and workers) that no scaler resizes as one unit; fix: set workload.kind=LeaderWorkerSet (its scale subresource counts whole groups), or autoscaling.enabled=false and a fixed replicas" }}
{{- end }}
{{- end }}

{{/*
Rule autoscaling-prometheus: autoscaling.enabled, autoscaling.prometheusAddress. The scaler's triggers query vLLM's
metrics in Prometheus, at that address.
*/}}
{{- define "vllm-rdma.rule.autoscaling-prometheus" -}}
{{- if and .Values.autoscaling.enabled (not .Values.autoscaling.prometheusAddress) }}
{{- print "autoscaling.prometheusAddress: is empty, and the scaler reads vLLM's metrics from Prometheus; fix: set it to your Prometheus's URL (for example http://prometheus-operated.monitoring.svc:9090), and have it scrape the leaders (monitoring.serviceMonitor.enabled=true)" }}
{{- end }}
{{- end }}

{{/*
Rule autoscaling-range: autoscaling.minReplicas, autoscaling.maxReplicas (KEDA's ScaledObject CRD refuses
minReplicaCount above maxReplicaCount).
*/}}
{{- define "vllm-rdma.rule.autoscaling-range" -}}
{{- with .Values.autoscaling }}
{{- if and .enabled (gt (int .minReplicas) (int .maxReplicas)) }}
{{- printf "autoscaling.minReplicas: %d is more than autoscaling.maxReplicas (%d); fix: set autoscaling.maxReplicas to at least %d" (int .minReplicas) (int .maxReplicas) (int .minReplicas) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Rule autoscaling-targets: autoscaling.targets. A target of 0 leaves its trigger out; a ScaledObject needs one.
*/}}
{{- define "vllm-rdma.rule.autoscaling-targets" -}}
{{- with .Values.autoscaling }}
{{- if and .enabled (not .targets.requestsWaiting) (not .targets.kvCacheUsage) }}
{{- print "autoscaling.targets: both targets are 0, so the scaler has nothing to scale on; fix: set autoscaling.targets.requestsWaiting (for example 4) or autoscaling.targets.kvCacheUsage (for example 0.8)" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Rule shrink-wait: autoscaling.drainSeconds, clusterNetwork.nodeTimeoutMinutes. When the scaler drops groups (a lower
maxReplicas takes effect at once), the shrink hook waits for their pods to leave the nodes it removes for
nodeTimeoutMinutes (commands/provision.py idle_instances); a grace period longer than that fails the upgrade though
the pods would have left.
*/}}
{{- define "vllm-rdma.rule.shrink-wait" -}}
{{- if and .Values.autoscaling.enabled .Values.clusterNetwork.provision }}
{{- $grace := int (include "vllm-rdma.terminationGraceSeconds" .) }}
{{- $wait := mul .Values.clusterNetwork.nodeTimeoutMinutes 60 }}
{{- if gt $grace $wait }}
{{- printf "autoscaling.drainSeconds: %d s plus 60 s makes the pods' grace period %d s, longer than the shrink hook waits for pods to leave (clusterNetwork.nodeTimeoutMinutes %d = %d s); fix: set clusterNetwork.nodeTimeoutMinutes=%d, or autoscaling.drainSeconds=%d" (int .Values.autoscaling.drainSeconds) $grace (int .Values.clusterNetwork.nodeTimeoutMinutes) $wait (div (add $grace 59) 60) (sub $wait 60) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Rule router-scorers: router.scorerWeights. A weight of 0 leaves its scorer out; with none the picker's profile
scores nothing.
*/}}
{{- define "vllm-rdma.rule.router-scorers" -}}
{{- with .Values.router }}
{{- if and .enabled (not .scorerWeights.prefixCache) (not .scorerWeights.queue) (not .scorerWeights.kvCacheUtilization) }}
{{- print "router.scorerWeights: every weight is 0, so the endpoint picker scores nothing; fix: give router.scorerWeights.prefixCache a weight (3 by default), the scorer the router is for" }}
{{- end }}
{{- end }}
{{- end }}
