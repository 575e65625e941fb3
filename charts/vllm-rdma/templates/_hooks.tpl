{{/*
The hook-delete-policy of every hook of the chart. Hooks are not part of the release: helm uninstall never deletes them
(helm docs "Chart Hooks"; Argo CD maps the same policies to BeforeHookCreation and HookSucceeded). hook-succeeded:
helm deletes a hook once every hook of its event succeeded (in reverse order, a Job with its pods in the background),
and Argo CD at the end of a successful sync. before-hook-creation: the next run replaces what a failed one left.
*/}}
{{- define "vllm-rdma.hookDeletePolicy" -}}
before-hook-creation,hook-succeeded
{{- end }}

{{/*
ttlSecondsAfterFinished of every hook Job: one that succeeded is deleted by helm at once (hook-succeeded); one that
failed keeps its pod and log this long (a day) for `kubectl logs`, then Kubernetes' TTL-after-finished controller
deletes it, so a failed hook leaves nothing behind for longer, helm uninstall or not.
*/}}
{{- define "vllm-rdma.failedHookTTLSeconds" -}}
86400
{{- end }}
