"""Variables named like NCCL's that NCCL does not read, written once in the values schema (nccl.settings'
patternProperties, one exact name each, whose ``deprecationMessage`` is ``MESSAGE; fix: FIX``): an editor shows the
message on the key, doctor reports it, and the chart's validateValues refuses it, all three in the same words, as a key
of nccl.settings or a name in vllm.extraEnv. The chart reads them from templates/_lookalikes.tpl, which `make chart`
writes from the schema (`go_template`), since a template cannot read the chart's values.schema.json."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from helm_rdma.checks.finding import Finding
from helm_rdma.resolve.values import values_schema

_EXACT = re.compile(r"^\^([A-Z][A-Z0-9_]*)\$$")
_FIX = "; fix: "
TEMPLATE = "templates/_lookalikes.tpl"


class LookalikeSchemaError(ValueError):
    """The values schema's look-alikes do not have their shape (a bug in the schema, not in values)."""


@functools.cache
def lookalikes() -> dict[str, tuple[str, str]]:
    """Each look-alike's name -> (message, fix), in the schema's order.

    Raises:
        LookalikeSchemaError: A pattern that is not one exact name, or a message without its fix.
    """
    settings = values_schema()["properties"]["nccl"]["properties"]["settings"]
    out: dict[str, tuple[str, str]] = {}
    for pattern, sub in settings.get("patternProperties", {}).items():
        name, text = _EXACT.match(pattern), str(sub.get("deprecationMessage", ""))
        if name is None or _FIX not in text:
            raise LookalikeSchemaError(f"schemas/values.schema.json: nccl.settings.patternProperties {pattern}: each "
                                 f"pattern is one exact name (^NAME$) with a deprecationMessage `MESSAGE{_FIX}FIX`")
        message, fix = text.split(_FIX, 1)
        out[name.group(1)] = (message, fix)
    return out


def findings(values: dict[str, Any]) -> list[Finding]:
    """An error for each look-alike among ``values``' nccl.settings keys and vllm.extraEnv names."""
    known = lookalikes()
    places = [(f"nccl.settings.{k}", k) for k in sorted(values["nccl"]["settings"])]
    places += [(f"vllm.extraEnv[{i}].name", str(e.get("name", ""))) for i, e in enumerate(values["vllm"]["extraEnv"])]
    return [Finding("error", key, known[name][0], known[name][1]) for key, name in places if name in known]


def go_template() -> str:
    """The text of templates/_lookalikes.tpl: the define vllm-rdma.ncclLookalikes, which renders one line
    ``KEY: MESSAGE; fix: FIX`` for each look-alike in the values (in the order of `findings`), or nothing."""
    pairs = "\n".join(f"  {json.dumps(name)} {json.dumps(m + _FIX + f)}" for name, (m, f) in lookalikes().items())
    return _GO_TEMPLATE.replace("PAIRS", pairs)


_GO_TEMPLATE = """{{/*
Generated from schemas/values.schema.json (nccl.settings' patternProperties) by `python -m helm_rdma.dev.chart_sync`
(make chart): edit the schema, not this file. Names like NCCL's that NCCL does not read (checks/lookalikes.py), one
line each, as a key of nccl.settings or a name in vllm.extraEnv, for vllm-rdma.validateValues.
*/}}
{{- define "vllm-rdma.ncclLookalikes" -}}
{{- $lookalikes := dict
PAIRS }}
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
{{- join "\\n" $problems }}
{{- end }}
"""
