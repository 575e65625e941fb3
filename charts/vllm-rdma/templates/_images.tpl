{{/*
An image reference, the one way every image of the chart is written: call with (dict "repository" R "tag" T "digest" D)
(the image values themselves have these keys). R:T@D with both, R@D with a digest only, R:T without a digest: the
container runtime pulls by digest whenever one is set, and the tag stays for people to read. helm_rdma.chart.images lists
the same references in Python (for Artifact Hub's artifacthub.io/images and `generate --pin-digests`).
*/}}
{{- define "vllm-rdma.imageRef" -}}
{{- $ref := .repository }}
{{- with .tag }}{{ $ref = printf "%s:%s" $ref (toString .) }}{{ end }}
{{- with .digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end }}
{{- $ref }}
{{- end }}

{{/*
The provisioner image: clusterNetwork.image, its tag defaulting to the helm-rdma version that generated the chart
(its helm-rdma.io/version annotation; the appVersion is the vLLM image's tag).
*/}}
{{- define "vllm-rdma.provisionerImage" -}}
{{- $image := .Values.clusterNetwork.image }}
{{- include "vllm-rdma.imageRef" (dict "repository" $image.repository "tag" (default (index .Chart.Annotations "helm-rdma.io/version") $image.tag) "digest" $image.digest) }}
{{- end }}
