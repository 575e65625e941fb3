"""`helm-rdma plan`: how many nodes a model needs on a preset, and what fits."""

from __future__ import annotations

from ..errors import SchemaViolation
from ..lora import LoraSlots
from ..models import get_model
from ..planner import DEFAULT_GPU_MEMORY_UTILIZATION, GIB, Plan, plan_model
from ..presets import load_preset


def plan(
    *,
    model: str,
    preset: str,
    nodes: int | None = None,
    max_model_len: int | None = None,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    lora: LoraSlots | None = None,
) -> Plan:
    """Size ``model`` on ``preset`` (see helm_rdma.planner for the arithmetic), with ``lora``'s adapter slots."""
    return plan_model(model=get_model(model), preset=load_preset(preset), nodes=nodes,
                      max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization, lora=lora)


def lora_option(*, max_rank: int | None, max_loras: int | None) -> LoraSlots | None:
    """The LoRA slots of plan's --max-lora-rank and --max-loras (None without them), the rank being one vLLM takes.

    Raises:
        SchemaViolation: The rank is not one of vllm.lora.maxRank's values, or --max-loras comes without a rank.
    """
    if max_rank is None and max_loras is None:
        return None
    from ..values import values_schema

    ranks = values_schema()["properties"]["vllm"]["properties"]["lora"]["properties"]["maxRank"]["enum"]
    if max_rank is None or max_rank not in ranks:
        problem = f"--max-lora-rank: {max_rank} is not a rank vLLM takes" if max_rank else "--max-lora-rank: missing"
        raise SchemaViolation(what="plan options", problems=[problem],
                              fix=f"use one of {', '.join(map(str, ranks))} (vllm.lora.maxRank)")
    return LoraSlots(max_loras=max_loras or 1, max_rank=max_rank)


def plan_table(p: Plan) -> str:
    """A plan as aligned `key  value` lines."""
    rows = [
        ("model", p.model),
        ("preset", p.preset),
        ("nodes", f"{p.nodes} (minimum {p.min_nodes})"),
        ("parallelism", f"TP {p.tensor_parallel_size} x PP {p.pipeline_parallel_size}"),
        ("max model len", f"{p.max_model_len} tokens"),
        ("weights", f"{p.weight_bytes / GIB:.1f} GiB"),
        ("KV cache per token", f"{p.kv_bytes_per_token / 2**20:.3f} MiB (whole group)"),
        ("KV cache per sequence", f"{p.kv_bytes_per_sequence / GIB:.1f} GiB"),
        ("usable per node",
         f"{p.usable_bytes_per_node / GIB:.1f} GiB at gpu-memory-utilization {p.gpu_memory_utilization}"),
        *([("LoRA slots", f"{p.lora_bytes_per_gpu / GIB:.2f} GiB per GPU (reserved by vLLM)")]
          if p.lora_bytes_per_gpu else []),
        ("KV cache budget", f"{p.kv_budget_bytes / GIB:.1f} GiB"),
        ("full-length sequences", str(p.full_length_sequences)),
        ("start-up budget", f"{p.startup_minutes} min: {p.startup_reason}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
