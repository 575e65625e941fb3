"""Sizing: how many nodes of a preset one model needs, at TP = GPUs per node and PP = nodes.

The estimate is deliberately simple and conservative enough to plan hardware:
- weights = parameters x bytes per parameter of the checkpoint dtype;
- KV cache per token, for the whole group = 2 (K and V) x layers x KV heads held x head dim x KV dtype bytes, where a
  tensor-parallel rank holds at least one KV head (vLLM replicates KV heads when TP exceeds them); with multi-head
  latent attention, every TP rank holds the full latent (kv_lora_rank + rope dim) per layer;
- usable memory per node = GPUs x GPU memory x gpu-memory-utilization, less an activation reserve per GPU;
- with LoRA, the slots vLLM reserves for adapters on every GPU (helm_rdma.lora says how they are counted).
A group fits when usable memory over all its nodes holds the weights, the LoRA slots and the KV cache of one
full-length sequence.

The start-up budget (how long the leader may take to serve, and how long vLLM's front end waits for its engine)
follows the bytes each node reads: a fixed part for what does not depend on the model's size (NCCL and engine
initialisation, CUDA graph capture, compilation), plus the weights one node loads (weights / nodes, as each
pipeline stage loads its own layers) at a stated, conservative load rate, doubled for headroom.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .errors import ContextTooLongError, ModelTooLargeError, ParallelismError, TooFewNodesError
from .lora import LoraSlots, lora_bytes_per_gpu, lora_bytes_per_group
from .models import DTYPE_BYTES, ModelSpec
from .presets import Preset

GIB = 1024**3
GB = 1000**3
ACTIVATION_RESERVE_GIB_PER_GPU = 1.0
STARTUP_FLOOR_MINUTES = 15  # engine and NCCL init, CUDA graph capture, torch.compile: independent of the model size
LOAD_GB_PER_SECOND = 0.5  # safetensors from local NVMe into GPU memory, per node, with sharding: conservative
STARTUP_HEADROOM = 2
MAX_NODES = 64
DEFAULT_GPU_MEMORY_UTILIZATION = 0.90


class Plan(NamedTuple):
    """The sizing of one model on one preset."""

    model: str
    preset: str
    nodes: int
    min_nodes: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    max_model_len: int
    gpu_memory_utilization: float
    weight_bytes: int
    kv_bytes_per_token: int
    kv_bytes_per_sequence: int
    usable_bytes_per_node: int
    kv_budget_bytes: int
    full_length_sequences: int
    startup_minutes: int = 0
    startup_reason: str = ""
    lora_bytes_per_gpu: int = 0

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


def startup_budget(weight_bytes: int, nodes: int) -> tuple[int, str]:
    """Minutes the leader may take to load and serve, and how they were reckoned."""
    per_node = weight_bytes / max(nodes, 1)
    load = per_node / (LOAD_GB_PER_SECOND * GB) / 60
    minutes = STARTUP_FLOOR_MINUTES + int(-(-STARTUP_HEADROOM * load // 1))
    return minutes, (f"{STARTUP_FLOOR_MINUTES} min fixed + {STARTUP_HEADROOM} x {per_node / GB:.0f} GB read per node "
                     f"at {LOAD_GB_PER_SECOND:g} GB/s ({load:.1f} min)")


def kv_bytes_per_token(model: ModelSpec, *, tp: int) -> int:
    """KV cache bytes one token takes across the whole group (all TP ranks and PP stages)."""
    dtype = DTYPE_BYTES[model.kv_cache_dtype]
    if model.mla_kv_lora_rank is not None and model.mla_rope_dim is not None:
        return model.layers * (model.mla_kv_lora_rank + model.mla_rope_dim) * dtype * tp
    heads_held = max(model.kv_heads, tp)
    return 2 * model.layers * heads_held * model.head_dim * dtype


def check_parallelism(model: ModelSpec, *, tp: int) -> None:
    """TP must divide the attention heads, and the KV heads (or be a multiple of them, which replicates them).

    Raises:
        ParallelismError: The heads cannot be split over ``tp`` ranks.
    """
    if model.attention_heads % tp:
        raise ParallelismError(model=model.alias, tp=tp, heads=model.attention_heads, kind="attention heads")
    if model.kv_heads % tp and tp % model.kv_heads:
        raise ParallelismError(model=model.alias, tp=tp, heads=model.kv_heads, kind="KV heads")


def usable_bytes_per_node(preset: Preset, *, gpu_memory_utilization: float) -> int:
    gpus = preset.gpus_per_node
    per_gpu = preset.gpu_memory_gib * gpu_memory_utilization - ACTIVATION_RESERVE_GIB_PER_GPU
    return int(gpus * per_gpu * GIB)


def plan_model(
    *,
    model: ModelSpec,
    preset: Preset,
    nodes: int | None = None,
    max_model_len: int | None = None,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    tensor_parallel_size: int | None = None,
    lora: LoraSlots | None = None,
) -> Plan:
    """Size ``model`` on ``preset``.

    Args:
        model: The catalog entry.
        preset: The shape preset.
        nodes: Nodes per group chosen by the user; None picks the smallest that fits.
        max_model_len: Context length to plan for; None uses the model's maximum.
        gpu_memory_utilization: The fraction of each GPU vLLM may use.
        tensor_parallel_size: TP; None uses the preset's GPUs per node.
        lora: The LoRA slots vLLM reserves (vllm.lora); None without LoRA.

    Raises:
        LoraSizeUnknownError: ``lora`` is given for a model without the layer sizes it needs.
        ParallelismError: TP does not split the model's heads.
        ContextTooLongError: ``max_model_len`` is above the model's context.
        ModelTooLargeError: Not even MAX_NODES nodes hold the model.
        TooFewNodesError: ``nodes`` is below the minimum (the message names it).
    """
    tp = tensor_parallel_size or preset.gpus_per_node
    check_parallelism(model, tp=tp)
    length = max_model_len or model.max_context
    if length > model.max_context:
        raise ContextTooLongError(model=model.alias, asked=length, maximum=model.max_context)
    per_token = kv_bytes_per_token(model, tp=tp)
    per_sequence = per_token * length
    usable = usable_bytes_per_node(preset, gpu_memory_utilization=gpu_memory_utilization)
    adapters = lora_bytes_per_group(model, lora, tp=tp) if lora else 0
    need = model.weight_bytes + adapters + per_sequence
    minimum = next((n for n in range(1, MAX_NODES + 1) if n * usable >= need), None)

    def detail(n: int) -> str:
        slots = f" + LoRA slots {adapters / GIB:.1f} GiB" if adapters else ""
        return (f"weights {model.weight_bytes / GIB:.0f} GiB{slots} + one {length}-token sequence "
                f"{per_sequence / GIB:.1f} GiB > {n} x {usable / GIB:.0f} GiB usable")

    if minimum is None:
        raise ModelTooLargeError(model=model.alias, preset=preset.name, max_nodes=MAX_NODES, detail=detail(MAX_NODES))
    chosen = nodes if nodes is not None else minimum
    if chosen < minimum:
        raise TooFewNodesError(model=model.alias, preset=preset.name, nodes=chosen, minimum=minimum,
                               detail=detail(chosen))
    budget = chosen * usable - model.weight_bytes - adapters
    startup, why = startup_budget(model.weight_bytes, chosen)
    return Plan(
        model=model.alias, preset=preset.name, nodes=chosen, min_nodes=minimum,
        tensor_parallel_size=tp, pipeline_parallel_size=chosen, max_model_len=length,
        gpu_memory_utilization=gpu_memory_utilization, weight_bytes=model.weight_bytes,
        kv_bytes_per_token=per_token, kv_bytes_per_sequence=per_sequence, usable_bytes_per_node=usable,
        kv_budget_bytes=budget, full_length_sequences=budget // per_sequence,
        startup_minutes=startup, startup_reason=why,
        lora_bytes_per_gpu=lora_bytes_per_gpu(model, lora, tp=tp, pp=chosen) if lora else 0,
    )
