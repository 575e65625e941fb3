"""Resolving chart values: preset < model catalog < -f files in order < --set < explicit flags, then the schema."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from helm_rdma.datafiles import schema_path
from helm_rdma.errors import SchemaViolation, UnsupportedModelError
from helm_rdma.names import check_release
from helm_rdma.resolve.limits import check_annotations
from helm_rdma.resolve.overrides import Layered, origin_of
from helm_rdma.resolve.valuesources import ValueSources, user_values
from helm_rdma.sizing.catalog import pick_model
from helm_rdma.sizing.lora import LoraSlots
from helm_rdma.sizing.modelspec import ModelSpec
from helm_rdma.sizing.planner import DEFAULT_GPU_MEMORY_UTILIZATION, Plan, Sizing, plan_model
from helm_rdma.sizing.presets import Preset, load_preset
from helm_rdma.validation import schema_problems
from helm_rdma.yamlfile import load_json_schema

VALUES_SCHEMA = "values.schema.json"
# The Kubernetes definitions the values schema's escape hatches ($ref) name, trimmed from the official ones
# (scripts/kubernetes-definitions says from where); the published schema carries them, so it stays self-contained.
KUBERNETES_DEFINITIONS = "kubernetes-definitions.json"
# The origin of api.keySecret.name when helm-rdma named the Secret (install and upgrade create it; see apikey.py).
API_KEY_ORIGIN = "helm-rdma (a Secret named after the release)"


class Resolved(NamedTuple):
    """Everything a chart is written from."""

    release: str
    preset: Preset
    model: ModelSpec
    plan: Plan
    values: dict[str, Any]
    notes: dict[str, str]
    origins: dict[str, str]


def preset_values(preset: Preset) -> dict[str, Any]:
    """The chart values a preset alone determines."""
    gpu, rdma, bus, pod = preset.gpu, preset.rdma, preset.bus_bandwidth, preset.pod
    settings: dict[str, Any] = {"NCCL_IB_HCA": "=" + ",".join(rdma.hcas)}
    settings.update({s.name: s.value for s in preset.nccl.settings})
    return {
        "preset": {
            "name": preset.name,
            "shape": preset.shape,
            "gpuVendor": gpu.vendor,
            "gpuModel": gpu.model,
            "gpusPerNode": gpu.count,
            "gpuMemoryGiB": gpu.memory_gib,
            "gpuResource": gpu.resource,
            "gpuTaint": gpu.taint,
            "rdmaNics": rdma.nics,
            "rdmaNicGbps": rdma.nic_gbps,
            "busBandwidthExpectedGBps": bus.expected_gbps,
            "busBandwidthThresholdGBps": bus.threshold_gbps,
        },
        "image": {"repository": preset.image.repository, "tag": preset.image.tag},
        "rdma": {"sriov": {"vfs": rdma.sriov_vfs}},
        "nccl": {"configFile": preset.nccl.config_file, "settings": settings},
        "network": {"interface": preset.network.interface},
        "resources": {"cpu": pod.cpu, "memory": pod.memory, "shmSize": pod.shm_size},
        "verify": {"preflight": {"thresholdGBps": bus.threshold_gbps}},
    }


def model_values(model: ModelSpec) -> dict[str, Any]:
    """The chart values the model (catalog entry or Hub repository) determines."""
    values: dict[str, Any] = {
        "model": {"name": model.repo, "revision": model.commit or model.revision, "servedName": model.alias,
                  "gated": model.gated},
    }
    if model.max_context:  # a model whose context is unknown keeps the chart's default unless --max-model-len says
        values["vllm"] = {"maxModelLen": model.max_context}
    return values


def values_schema() -> dict[str, Any]:
    """The values schema with the Kubernetes definitions its ``$ref``s name, as one self-contained draft-07 schema."""
    schema = dict(load_json_schema(schema_path(VALUES_SCHEMA)))
    schema["definitions"] = load_json_schema(schema_path(KUBERNETES_DEFINITIONS))["definitions"]
    return schema


# A generated chart's published schema repeats each value as its key's ``default`` (an IDE shows what was generated),
# except a value too large to repeat: then OMITTED_DEFAULT stands in its place, naming its size and sha256, so that
# the user's values live in values.yaml once, not again in the schema and the README.
OMITTED_DEFAULT = "x-helm-rdma-default"
PUBLISHED_DEFAULT_LIMIT = 16 * 1024  # bytes of compact JSON; the chart's own largest default is about 1 KiB


def default_stand_in(value: Any) -> str:
    """What the published schema holds instead of a ``value`` too large to repeat there."""
    import hashlib
    import json

    data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return f"values.yaml holds it ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()})"


def schema_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The chart's own defaults: every ``default`` of the values schema, nested (a published schema's stand-in for a
    value too large to repeat, where it has one)."""
    out: dict[str, Any] = {}
    for key, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object" and "properties" in sub:
            out[key] = schema_defaults(sub)
        else:
            out[key] = sub.get("default", sub.get(OMITTED_DEFAULT))
    return out


def preset_notes(preset: Preset) -> dict[str, str]:
    """Comments for generated values.yaml: the source of every preset-derived value."""
    gpu, rdma, bus = (f"Source: {preset.source(key)}" for key in
                      (preset.gpu.source, preset.rdma.source, preset.bus_bandwidth.source))
    notes = {
        "nccl.settings.NCCL_IB_HCA": f"The RDMA NICs, exact names (leading '='), front-end NICs left out. {rdma}",
    }
    for s in preset.nccl.settings:
        notes[f"nccl.settings.{s.name}"] = f"{s.note}. Source: {s.source}" if s.note else f"Source: {s.source}"
    for key, cited in (("gpuVendor", gpu), ("gpusPerNode", gpu), ("gpuMemoryGiB", gpu),
                       ("rdmaNics", rdma), ("rdmaNicGbps", rdma),
                       ("busBandwidthExpectedGBps", bus), ("busBandwidthThresholdGBps", bus)):
        notes[f"preset.{key}"] = cited
    notes["verify.preflight.thresholdGBps"] = bus
    notes["resources.shmSize"] = f"Source: {preset.source(preset.pod.source)}"
    notes["network.interface"] = f"Source: {preset.source(preset.network.source)}"
    notes["image.tag"] = f"Source: {preset.source(preset.image.source)}"
    return notes


@dataclass(frozen=True)
class ChartRequest:
    """One release's chart as the user asked for it: what generate, template, doctor, install, upgrade and diff all
    start from, built once by the CLI.

    Attributes:
        release: The release name; also the model alias when ``model`` is None.
        preset: Preset name.
        model: Catalog alias or Hub repository id ``ORG/NAME[@REVISION]``; None picks one from ``release`` (see
            catalog.pick_model).
        nodes: ``--nodes``; None lets values or the planner decide.
        max_model_len: ``--max-model-len``; None lets values or the model decide.
        sources: Every -f file and --set family argument, merged as helm merges them (see valuesources).
        flag_values: Values from other explicit flags (install --provision's clusterNetwork), applied last.
    """

    release: str
    preset: str
    model: str | None = None
    nodes: int | None = None
    max_model_len: int | None = None
    sources: ValueSources = field(default_factory=ValueSources)
    flag_values: Mapping[str, Any] | None = None


def resolve(request: ChartRequest, *, validate: bool = True) -> Resolved:
    """Resolve the values of one chart: defaults < preset < model < the request's files and --set family < its flags.

    The API is protected by default: unless the values name an API key Secret or set api.allowUnauthenticated,
    api.keySecret.name is RELEASE-api-key (a name, never a key: install and upgrade create the Secret).

    ``validate`` checks the values against the schema here. Commands that hand the chart to helm pass False: helm
    checks the same schema, and on failure they call ``check_values`` for our better message.

    Raises:
        InputError: A bad release name, unknown preset or model, bad files, bad --set, values the schema rejects,
            too few nodes, a context longer than the model's.
    """
    release, nodes, max_model_len = request.release, request.nodes, request.max_model_len
    check_release(release)
    the_preset = load_preset(request.preset)
    the_model = pick_model(release=release, model=request.model)
    schema = values_schema()

    layered = Layered()
    layered.apply(schema_defaults(schema), "defaults")
    layered.apply(preset_values(the_preset), "defaults")
    layered.apply(model_values(the_model), "defaults")
    user = user_values(request.sources)
    chart_own = copy.deepcopy(layered.values)
    layered.apply_user(user.values, user.origins)
    flags: dict[str, Any] = {}
    if nodes is not None:
        flags["nodes"] = nodes
    if max_model_len is not None:
        flags["vllm"] = {"maxModelLen": max_model_len}
    layered.apply(flags, "flags")
    if request.flag_values:
        layered.apply(copy.deepcopy(dict(request.flag_values)), "flags")

    if validate or not _plannable(layered.values) or not _shaped_like(layered.values, chart_own):
        _validate(layered.values, layered.origins, schema)
    values = layered.values
    api = values.get("api")
    if (isinstance(api, dict) and isinstance(api.get("keySecret"), dict) and api.get("allowUnauthenticated") is not True
            and not layered.set_by_user("api.keySecret.name")):
        api["keySecret"]["name"] = api_key_secret_name(release)
        layered.origins["api.keySecret.name"] = API_KEY_ORIGIN
    vllm = values["vllm"]
    if not the_model.max_context and not layered.set_by_user("vllm.maxModelLen"):
        raise UnsupportedModelError(model=the_model.repo, problem='config.json field "max_position_embeddings" could '
                                                                  "not be read (missing)")
    sizing = Sizing(
        nodes=values["nodes"] if layered.set_by_user("nodes") else None,
        max_model_len=vllm["maxModelLen"],
        gpu_memory_utilization=vllm.get("gpuMemoryUtilization", DEFAULT_GPU_MEMORY_UTILIZATION),
        tensor_parallel_size=vllm["tensorParallelSize"] if layered.set_by_user("vllm.tensorParallelSize") else None,
        lora=lora_slots(values),
    )
    plan = plan_model(model=the_model, preset=the_preset, sizing=sizing)
    if not layered.set_by_user("nodes"):
        values["nodes"] = plan.nodes
    for key, planned in (("vllm.tensorParallelSize", plan.tensor_parallel_size),
                         ("vllm.pipelineParallelSize", values["nodes"]),
                         ("probes.startupMinutes", plan.startup_minutes),
                         ("distributed.barrierMinutes", plan.download_minutes),
                         ("distributed.timeoutSeconds", plan.distributed_timeout_seconds)):
        if not layered.set_by_user(key):
            section, name = key.split(".")
            values[section][name] = planned

    check_annotations(values, layered.origins, schema)

    notes = preset_notes(the_preset)
    notes["probes.startupMinutes"] = f"From the plan: {plan.startup_reason}."
    notes["distributed.barrierMinutes"] = f"From the plan: {plan.download_reason}."
    notes["distributed.timeoutSeconds"] = f"From the plan: {plan.distributed_timeout_reason}."
    if the_model.from_hub:
        notes["model.name"] = f"From --model; figures read from {the_model.source}."
    for key, origin in layered.origins.items():
        if origin != "defaults":
            notes[key] = f"Set by {origin}."
    return Resolved(release=release, preset=the_preset, model=the_model, plan=plan, values=values, notes=notes,
                    origins=dict(layered.origins))


def api_key_secret_name(release: str) -> str:
    """The Secret helm-rdma names for the API key when the values name none: RELEASE-api-key."""
    return f"{release}-api-key"


def generated_api_key_secret(resolved: Resolved) -> str | None:
    """The API key Secret install and upgrade create when it is missing: the one helm-rdma named, else None."""
    if resolved.origins.get("api.keySecret.name") != API_KEY_ORIGIN:
        return None
    return str(resolved.values["api"]["keySecret"]["name"])


def check_values(resolved: Resolved) -> None:
    """Validate resolved values against the schema (for commands that resolved with ``validate=False``).

    Raises:
        SchemaViolation: Every problem, with its key and the file or flag it came from.
    """
    _validate(resolved.values, resolved.origins, values_schema())


def lora_slots(values: dict[str, Any]) -> LoraSlots | None:
    """The LoRA slots vLLM reserves with these values (vllm.lora), or None without LoRA."""
    lora = values["vllm"]["lora"]
    return LoraSlots(max_loras=lora["maxLoras"], max_rank=lora["maxRank"]) if lora["enabled"] else None


def _plannable(values: dict[str, Any]) -> bool:
    """Whether the keys the planner reads have usable types (else validate now, for a clear message)."""
    vllm = values.get("vllm")
    if not isinstance(vllm, dict):
        return False
    lora = vllm.get("lora")
    if not isinstance(lora, dict) or lora.get("enabled") not in (True, False):
        return False
    if lora["enabled"] and not all(isinstance(lora.get(k), int) and not isinstance(lora.get(k), bool)
                                   and lora.get(k, 0) > 0 for k in ("maxLoras", "maxRank")):
        return False
    ints = (values.get("nodes"), vllm.get("maxModelLen"), vllm.get("tensorParallelSize"))
    util = vllm.get("gpuMemoryUtilization")
    return (all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ints)
            and isinstance(util, (int, float)) and not isinstance(util, bool) and 0 < util <= 1)


def _shaped_like(values: dict[str, Any], chart_own: dict[str, Any]) -> bool:
    """Whether ``values`` keep every key of the chart's own values with a value of the same kind (a null default
    takes any): what the planner and the chart writer read before helm checks the schema. A null that removed a key or
    a key of another kind is the schema's to name, so such values are validated here."""
    for key, default in chart_own.items():
        if key not in values:
            return False
        value = values[key]
        if default is None:
            continue
        if _kind(value) != _kind(default):
            return False
        if isinstance(default, dict) and not _shaped_like(value, default):
            return False
    return True


def _kind(value: Any) -> str:
    """The JSON kind of a value, numbers as one (helm's schema and the templates take 1 where 1.0 is the default)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _validate(values: dict[str, Any], origins: dict[str, str], schema: dict[str, Any]) -> None:
    problems = schema_problems(values, schema)
    if problems:
        lines = [f"{path}: {message} (from {origin_of(path, origins)})" for path, message in problems]
        raise SchemaViolation(
            what="values", problems=lines,
            fix="Fix the keys above in the named -f file or --set flag; `helm-rdma presets show` and "
                "values.schema.json list every key.",
        )
