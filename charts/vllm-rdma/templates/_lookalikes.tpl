{{/*
Generated from schemas/values.schema.json (nccl.settings' patternProperties) by `python -m helm_rdma.dev.chart_sync`
(make chart): edit the schema, not this file. Names like NCCL's that NCCL does not read (checks/lookalikes.py), one
line each, as a key of nccl.settings or a name in vllm.extraEnv, for vllm-rdma.validateValues.
*/}}
{{- define "vllm-rdma.ncclLookalikes" -}}
{{- $lookalikes := dict
  "NCCL_TIMEOUT" "NCCL_TIMEOUT is not an NCCL variable: NCCL's verbs timeout is NCCL_IB_TIMEOUT (the preset sets it), and collective timeouts belong to PyTorch and vLLM; fix: remove it"
  "NCCL_ASYNC_ERROR_HANDLING" "NCCL_ASYNC_ERROR_HANDLING is PyTorch's old name, which current PyTorch no longer reads; fix: rename it TORCH_NCCL_ASYNC_ERROR_HANDLING (under vllm.extraEnv)"
  "NCCL_BLOCKING_WAIT" "NCCL_BLOCKING_WAIT is PyTorch's old name, which current PyTorch no longer reads; fix: rename it TORCH_NCCL_BLOCKING_WAIT (under vllm.extraEnv)"
  "NCCL_SHM_USE_CUDA_MEMCPY" "NCCL_SHM_USE_CUDA_MEMCPY was removed in NCCL 2.30.7 (it existed from 2.13.4) and never had to do with huge pages or RDMA; fix: remove it" }}
{{- $problems := list }}
{{- range $name, $_ := .Values.nccl.settings }}
  {{- with get $lookalikes $name }}
    {{- $problems = append $problems (printf "nccl.settings.%s: %s" $name .) }}
  {{- end }}
{{- end }}
{{- range $i, $env := .Values.vllm.extraEnv }}
  {{- with get $lookalikes (toString $env.name) }}
    {{- $problems = append $problems (printf "vllm.extraEnv[%d].name: %s" $i .) }}
  {{- end }}
{{- end }}
{{- join "\n" $problems }}
{{- end }}
