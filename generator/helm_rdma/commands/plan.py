"""`helm-rdma plan`: how many nodes a model needs on a preset, and what fits."""

from __future__ import annotations

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
) -> Plan:
    """Size ``model`` on ``preset`` (see helm_rdma.planner for the arithmetic)."""
    return plan_model(model=get_model(model), preset=load_preset(preset), nodes=nodes,
                      max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization)


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
        ("KV cache budget", f"{p.kv_budget_bytes / GIB:.1f} GiB"),
        ("full-length sequences", str(p.full_length_sequences)),
        ("start-up budget", f"{p.startup_minutes} min: {p.startup_reason}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
