"""`helm-rdma plan`: how many nodes a model needs on a preset, what fits, and how long its weights take to arrive."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from helm_rdma.datafiles import schema_path, values_default
from helm_rdma.errors import SchemaViolation
from helm_rdma.resolve.values import ChartRequest, resolve
from helm_rdma.sizing.catalog import get_model
from helm_rdma.sizing.firsttoken import FirstToken, Group, Rates, duration, first_token
from helm_rdma.sizing.lora import LoraSlots
from helm_rdma.sizing.modelspec import ModelSpec
from helm_rdma.sizing.planner import GB, GIB, Plan, ScaleOut, plan_model, scale_out
from helm_rdma.sizing.presets import load_preset
from helm_rdma.yamlfile import load_json_schema


@dataclass(frozen=True)
class PlanReport:
    """A plan, the model it sizes, and the time-to-first-token estimate."""

    plan: Plan
    model: ModelSpec
    first_token: FirstToken
    scaling: ScaleOut | None = None  # with autoscaling.enabled in the values

    def sources(self) -> list[tuple[str, str]]:
        """(figure, where it came from) for the model's figures."""
        if self.model.from_hub:
            return [*self.model.origins, ("architecture", self.model.source)]
        return [("architecture and weights", f"the catalog (presets/models.yaml): {self.model.source}")]

    def to_dict(self) -> dict[str, Any]:
        return {**self.plan.to_dict(), "first_token": self.first_token.to_dict(),
                "autoscaling": self.scaling.to_dict() if self.scaling else None,
                "sources": [{"figure": f, "source": s} for f, s in self.sources()]}


def option_name(arg: str) -> str:
    """An argument's option name as vLLM's FlexibleArgumentParser reads it ("_" is "-"; utils/argparse_utils.py),
    without an "=VALUE"."""
    return arg.split("=", 1)[0].replace("_", "-")


def loader_settings(extra_args: list[str]) -> tuple[dict[str, Any], bool]:
    """vLLM's --model-loader-extra-config (as JSON) and whether it quantizes (--quantization, -q), from
    vllm.extraArgs, read as the chart's vllm-rdma.stageArgs passes them to the download."""
    config: Any = {}
    for i, arg in enumerate(extra_args):
        if option_name(arg) != "--model-loader-extra-config":
            continue
        text = arg.split("=", 1)[1] if "=" in arg else extra_args[i + 1] if i + 1 < len(extra_args) else None
        if text is not None:
            try:
                config = json.loads(text)
            except ValueError:
                config = {}
    quantize = any(option_name(a) in ("--quantization", "-q") or option_name(a).startswith("--quantization.")
                   for a in extra_args)
    return (config if isinstance(config, dict) else {}), quantize


def speculative(extra_args: list[str]) -> bool:
    """vllm.extraArgs turns speculative decoding on (--speculative-config, --speculative_config, or a dotted sub-key
    such as --speculative-config.method=mtp), as vllm-rdma.stageArgs reads it."""
    return any(option_name(a) == "--speculative-config" or option_name(a).startswith("--speculative-config.")
               for a in extra_args)


def group_of(values: dict[str, Any]) -> Group:
    """The group the values run (nodes, parallelism, backend, storage, vLLM's loader settings), as the download
    reads it."""
    vllm = values["vllm"]
    extra_args = [str(a) for a in vllm.get("extraArgs") or []]
    loader, quantize = loader_settings(extra_args)
    partition = next((str(e["value"]) for e in vllm.get("extraEnv") or []
                      if e.get("name") == "VLLM_PP_LAYER_PARTITION"), None)
    return Group(nodes=int(values["nodes"]), tensor_parallel_size=int(vllm["tensorParallelSize"]),
                 pipeline_parallel_size=int(vllm["pipelineParallelSize"]),
                 gpus_per_node=int(values["preset"]["gpusPerNode"]), backend=str(values["distributed"]["backend"]),
                 storage=str(values["model"]["storage"]["type"]), partition=partition, loader_config=loader,
                 quantize_flag=quantize, speculative=speculative(extra_args))


def default_group(the_plan: Plan, *, gpus_per_node: int) -> Group:
    """The group of ``the_plan`` with the chart's default backend and storage (the values schema's defaults)."""
    return Group(nodes=the_plan.nodes, tensor_parallel_size=the_plan.tensor_parallel_size,
                 pipeline_parallel_size=the_plan.pipeline_parallel_size, gpus_per_node=gpus_per_node,
                 backend=str(values_default("distributed.backend")), storage=str(values_default("model.storage.type")))


def plan(*, model: str, preset: str) -> PlanReport:
    """Size ``model`` (a catalog alias or ``ORG/NAME[@REVISION]``) on ``preset`` with the planner's choices (see
    sizing/planner.py), and estimate how long its weights take to download and load at the default rates (see
    sizing/firsttoken.py), with the chart's default backend and storage."""
    spec = get_model(model)
    shape = load_preset(preset)
    the_plan = plan_model(model=spec, preset=shape)
    estimate = first_token(spec, rates=Rates(), boot_volume_gb=values_default("clusterNetwork.bootVolumeSizeGBs"),
                           group=default_group(the_plan, gpus_per_node=shape.gpus_per_node))
    return PlanReport(plan=the_plan, model=spec, first_token=estimate)


def plan_values(request: ChartRequest, *, rates: Rates | None = None) -> PlanReport:
    """``plan`` of the values install would use with ``request`` (its -f files, --set family and flags, layered as
    install layers them; see resolve.values.resolve), the boot volume read from those values too.

    Raises:
        InputError: As ``resolve``: unknown preset or model, bad files or --set, values the schema refuses, too few
            nodes, a context longer than the model's.
    """
    resolved = resolve(request)
    boot = int(resolved.values["clusterNetwork"]["bootVolumeSizeGBs"])
    estimate = first_token(resolved.model, rates=rates or Rates(), boot_volume_gb=boot,
                           group=group_of(resolved.values))
    scaling = None
    auto = resolved.values["autoscaling"]
    if auto["enabled"]:
        ours = estimate.ways[0]
        scaling = scale_out(resolved.plan, min_groups=int(auto["minReplicas"]), max_groups=int(auto["maxReplicas"]),
                            gpus_per_node=resolved.preset.gpus_per_node, download_seconds=ours.download_seconds,
                            load_seconds=ours.read_seconds)
    return PlanReport(plan=resolved.plan, model=resolved.model, first_token=estimate, scaling=scaling)


def lora_option(*, max_rank: int | None, max_loras: int | None) -> LoraSlots | None:
    """The LoRA slots of plan's --max-lora-rank and --max-loras (None without them), the rank being one vLLM takes.

    Raises:
        SchemaViolation: The rank is not one of vllm.lora.maxRank's values, or --max-loras comes without a rank.
    """
    if max_rank is None and max_loras is None:
        return None
    schema = load_json_schema(schema_path("values.schema.json"))
    ranks = schema["properties"]["vllm"]["properties"]["lora"]["properties"]["maxRank"]["enum"]
    if max_rank is None or max_rank not in ranks:
        problem = f"--max-lora-rank: {max_rank} is not a rank vLLM takes" if max_rank else "--max-lora-rank: missing"
        raise SchemaViolation(what="plan options", problems=[problem],
                              fix=f"use one of {', '.join(map(str, ranks))} (vllm.lora.maxRank)")
    return LoraSlots(max_loras=max_loras or 1, max_rank=max_rank)


def _gb(n: int) -> str:
    return f"{n / GB:,.0f} GB" if n >= 10 * GB else f"{n / GB:.1f} GB"


def first_token_rows(estimate: FirstToken) -> list[tuple[str, ...]]:
    """The time-to-first-token table: a header, then one row per way (plan's output and docs/models.md)."""
    rows: list[tuple[str, ...]] = [("way", "storage", "download", "read", "download time", "load time", "total")]
    rows += [(w.name, w.storage, _gb(w.download_bytes), _gb(w.read_bytes), duration(w.download_seconds),
              duration(w.read_seconds), duration(w.seconds)) for w in estimate.ways]
    return rows


def plan_table(report: PlanReport) -> str:
    """A plan as aligned `key  value` lines, then the time to first token and where the figures come from."""
    p, m, t = report.plan, report.model, report.first_token
    ours = t.ways[0]
    rows = [
        ("model", f"{m.repo}@{m.revision}, served as {p.model}" if m.from_hub else p.model),
        ("preset", p.preset),
        ("nodes", f"{p.nodes} (minimum {p.min_nodes})"),
        ("parallelism", f"TP {p.tensor_parallel_size} x PP {p.pipeline_parallel_size}"),
        ("max model len", f"{p.max_model_len} tokens"),
        ("weights", f"{p.weight_bytes / GIB:.1f} GiB ({m.dtype})"),
    ]
    if m.unsized:
        rows.append(("KV cache", p.kv_note))
    else:
        rows += [
            ("KV cache per token", f"{p.kv_bytes_per_token / 2**20:.3f} MiB (whole group)"),
            ("KV cache per sequence", f"{p.kv_bytes_per_sequence / GIB:.1f} GiB" + (f" ({p.kv_note})" if p.kv_note
                                                                                     else "")),
        ]
    rows += [
        ("usable per node",
         f"{p.usable_bytes_per_node / GIB:.1f} GiB at gpu-memory-utilization {p.gpu_memory_utilization}"),
        *([("LoRA slots", f"{p.lora_bytes_per_gpu / GIB:.2f} GiB per GPU (reserved by vLLM)")]
          if p.lora_bytes_per_gpu else []),
        ("KV cache budget", f"{p.kv_budget_bytes / GIB:.1f} GiB"),
    ]
    if not m.unsized:
        rows.append(("full-length sequences", str(p.full_length_sequences)))
    share = t.share
    if share.fraction < 1.0:
        whole = t.ways[1]
        rows += [
            ("download per node", f"{_gb(ours.download_bytes)}, the shards of the node's pipeline stages "
                                  f"({share.stages}; the whole checkpoint {_gb(whole.download_bytes)})"),
            ("read per node", f"{_gb(ours.read_bytes)} (vLLM reads the shards on its node's disk)"),
        ]
    else:
        why = f": {share.why_whole}" if share.why_whole else ""
        rows += [
            ("download per node", f"{_gb(ours.download_bytes)}, the whole checkpoint{why}"),
            ("read per node", f"{_gb(ours.read_bytes)} (vLLM reads every shard on every node)"),
        ]
    rows += [("start-up budget", f"{p.startup_minutes} min: {p.startup_reason}")]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    r = t.rates
    lines += ["", f"time to first token, per node (network {r.network_gbs:g} GB/s, NVMe {r.nvme_gbs:g} GB/s; "
                  "engine start not included):"]
    table = first_token_rows(t)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += ["  " + "  ".join(c.ljust(wd) for c, wd in zip(row, widths, strict=True)).rstrip() for row in table]
    lines += [f"  {w.name}: {w.note}" for w in t.ways if w.note]
    lines += [f"  {t.basis}"]
    if report.scaling:
        lines += ["", *scaling_lines(report.scaling, preset=p.preset)]
    lines += ["", "where the figures come from:"]
    lines += [f"  {figure}: {source}" for figure, source in report.sources()]
    return "\n".join(lines)


def scaling_lines(s: ScaleOut, *, preset: str) -> list[str]:
    """What autoscaling.minReplicas..maxReplicas cost in nodes, and how long one more group takes to serve."""
    return [
        f"autoscaling: {s.min_groups} to {s.max_groups} groups of {s.nodes_per_group} node(s) = {s.min_nodes} to "
        f"{s.max_nodes} {preset} nodes ({s.max_nodes * s.gpus_per_node} GPUs at the most)",
        f"  one group more, once its nodes are up: {duration(s.cold_seconds)} (download {duration(s.download_seconds)}"
        f" + load {duration(s.load_seconds)}; engine start not included), {duration(s.load_seconds)} where the "
        f"nodes' NVMe already holds the weights; the chart allows it {s.budget_minutes} min (download and start-up "
        "budgets)",
        f"  nodes: until nodes follow load on their own, the cluster network holds {s.max_nodes} nodes for "
        f"{s.max_groups} groups, paid for while idle; a node provisioned on demand adds its bring-up (bare-metal "
        "GPU nodes: up to 2 hours)",
    ]

